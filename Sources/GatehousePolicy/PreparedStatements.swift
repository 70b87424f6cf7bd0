import SQLInspection

/// The SQL-level prepared statements (`PREPARE name AS ...`) of one session, so that a later
/// `EXECUTE name` is judged by what the prepared statement does instead of as unknowable.
public struct PreparedStatements: Sendable {
    /// By the name's bytes, as PostgreSQL tells names apart (Swift's `String ==` would hold two
    /// canonically equivalent spellings, two distinct prepared statements upstream, to be one).
    private var byName: [UTF8Bytes: StatementFacts] = [:]

    public init() {}

    /// Replaces each EXECUTE of a statement this session prepared with the prepared statement's facts,
    /// joined with those of the EXECUTE's own arguments: `EXECUTE p(set_config(...))` runs the call.
    public func resolve(_ inspection: Inspection) -> Inspection {
        var resolved = inspection
        for index in resolved.statements.indices where resolved.statements[index].primary == .execute {
            let execute = resolved.statements[index]
            guard let name = execute.preparedName, let prepared = byName[UTF8Bytes(name)] else { continue }
            var facts = prepared
            facts.text = execute.text
            facts.primary = .execute
            facts.kinds = prepared.kinds.subtracting([.prepare]).union(execute.kinds)
            facts.functions.formUnion(execute.functions)
            facts.attributeCalls.formUnion(execute.attributeCalls)
            facts.tablesRead.formUnion(execute.tablesRead)
            facts.tablesWritten.formUnion(execute.tablesWritten)
            facts.objectTypes.formUnion(execute.objectTypes)
            facts.settings += execute.settings
            // The EXECUTE itself is dynamic until resolved; its arguments are when they run SQL text.
            let calls = execute.functions.union(execute.attributeCalls).map {
                $0.split(separator: ".").last.map(String.init) ?? $0
            }
            if calls.contains(where: Inspector.dynamicSQLFunctions.contains)
                || execute.settings.contains(where: { $0.name == nil })
            {
                facts.dynamic = true
            }
            facts.fingerprint = execute.fingerprint
            facts.preparedName = name
            resolved.statements[index] = facts
        }
        return resolved
    }

    /// Records the PREPARE, DEALLOCATE and DISCARD statements of a query that was allowed to run.
    public mutating func record(_ inspection: Inspection) {
        for facts in inspection.statements {
            switch facts.primary {
            case .prepare:
                if let name = facts.preparedName { byName[UTF8Bytes(name)] = facts }
            case .deallocate:
                if let name = facts.preparedName { byName[UTF8Bytes(name)] = nil } else { byName.removeAll() }
            case .discard:
                byName.removeAll()
            default:
                break
            }
        }
    }

    public var names: [String] { byName.keys.map(\.text).sorted() }
}
