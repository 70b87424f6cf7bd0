import SQLInspection

/// What later statements of a session run when they name a prepared statement or a cursor: `EXECUTE
/// name` runs what was prepared under that name (by SQL `PREPARE` or by a protocol Parse, which share
/// the server's namespace), `FETCH` and `MOVE` run the query a cursor was declared for. Each is judged
/// by what it runs instead of as unknowable.
public struct PreparedStatements: Sendable {
    /// What a name may refer to on the server right now: every statement it may be (several while
    /// the server has not yet said which of the statements sent under that name it took), or nil when
    /// the session never prepared one under that name (as far as the gateway can know).
    public struct Lookup: Sendable {
        public var statement: @Sendable (String) -> [StatementFacts]?
        public var cursor: @Sendable (String) -> [StatementFacts]?

        public init(
            statement: @escaping @Sendable (String) -> [StatementFacts]?,
            cursor: @escaping @Sendable (String) -> [StatementFacts]? = { _ in nil }
        ) {
            self.statement = statement
            self.cursor = cursor
        }

        public static let none = Lookup(statement: { _ in nil })
    }

    /// By the name's bytes, as PostgreSQL tells names apart (Swift's `String ==` would hold two
    /// canonically equivalent spellings, two distinct prepared statements upstream, to be one).
    private var byName: [UTF8Bytes: StatementFacts] = [:]

    public init() {}

    /// Resolves against the statements `record(_:)` kept.
    public func resolve(_ inspection: Inspection) -> Inspection {
        let byName = byName
        return Self.resolve(inspection, lookup: Lookup(statement: { name in byName[UTF8Bytes(name)].map { [$0] } }))
    }

    /// Replaces each EXECUTE of a statement the session prepared with the prepared statement's facts,
    /// joined with those of the EXECUTE's own arguments (`EXECUTE p(set_config(...))` runs the call),
    /// and each FETCH or MOVE of a declared cursor with its query's. A statement prepared or declared
    /// earlier in the same text counts from there on; a name that may be several statements is judged
    /// as all of them at once.
    public static func resolve(_ inspection: Inspection, lookup: Lookup) -> Inspection {
        var resolved = inspection
        // What this text itself prepares, deallocates or declares, for its later statements.
        var prepared: [UTF8Bytes: [StatementFacts]] = [:]
        var cursors: [UTF8Bytes: [StatementFacts]] = [:]
        for index in resolved.statements.indices {
            let facts = resolved.statements[index]
            switch facts.primary {
            case .execute:
                guard let name = facts.preparedName,
                    let candidates = prepared[UTF8Bytes(name)] ?? lookup.statement(name), !candidates.isEmpty
                else { continue }
                resolved.statements[index] = executing(candidates, by: facts, lookup: lookup)
            case .prepare:
                if let name = facts.preparedName { prepared[UTF8Bytes(name)] = [facts] }
            case .deallocate:
                // The server forgets the name; an EXECUTE of it fails there. Nothing to resolve it to.
                if let name = facts.preparedName { prepared[UTF8Bytes(name)] = [] }
            case .cursor:
                guard let name = facts.cursorName else { continue }
                if facts.cursorUse == .declare {
                    cursors[UTF8Bytes(name)] = [facts]
                } else if facts.cursorUse == .fetch, let candidates = cursors[UTF8Bytes(name)] ?? lookup.cursor(name),
                    !candidates.isEmpty
                {
                    resolved.statements[index] = running(candidates, by: facts)
                }
            default:
                break
            }
        }
        return resolved
    }

    /// The facts of an EXECUTE that runs one of `candidates`.
    private static func executing(
        _ candidates: [StatementFacts], by execute: StatementFacts, lookup: Lookup, depth: Int = 0
    )
        -> StatementFacts
    {
        var facts = running(
            candidates.map { prepared in
                // A protocol-level statement may itself be an EXECUTE of another: followed a few levels deep.
                guard prepared.primary == .execute, let inner = prepared.preparedName else { return prepared }
                guard depth < 4, let next = lookup.statement(inner), !next.isEmpty else {
                    var unknown = prepared
                    unknown.dynamic = true
                    return unknown
                }
                return executing(next, by: prepared, lookup: lookup, depth: depth + 1)
            }, by: execute)
        facts.kinds = facts.kinds.subtracting([.prepare]).union(execute.kinds)
        // The EXECUTE itself is dynamic until resolved; its arguments are when they run SQL text.
        let calls = execute.functions.union(execute.attributeCalls).map {
            $0.split(separator: ".").last.map(String.init) ?? $0
        }
        if calls.contains(where: Inspector.dynamicSQLFunctions.contains) || execute.settings.contains(where: { $0.name == nil }) {
            facts.dynamic = true
        }
        facts.preparedName = execute.preparedName
        return facts
    }

    /// The facts of `statement` (an EXECUTE, FETCH or MOVE) running every one of `candidates`: the
    /// union of what they do, with the statement's own text, arguments and fingerprint.
    private static func running(_ candidates: [StatementFacts], by statement: StatementFacts) -> StatementFacts {
        var facts = candidates[0]
        for other in candidates.dropFirst() {
            facts.kinds.formUnion(other.kinds)
            facts.objectTypes.formUnion(other.objectTypes)
            facts.tablesRead.formUnion(other.tablesRead)
            facts.tablesWritten.formUnion(other.tablesWritten)
            facts.functions.formUnion(other.functions)
            facts.attributeCalls.formUnion(other.attributeCalls)
            facts.settings += other.settings
            facts.wherelessWrite = facts.wherelessWrite || other.wherelessWrite
            facts.copyProgram = facts.copyProgram || other.copyProgram
            facts.dynamic = facts.dynamic || other.dynamic
            facts.writeEffects.formUnion(other.writeEffects)
            facts.adminFunctions.formUnion(other.adminFunctions)
            facts.fileAccess = facts.fileAccess || other.fileAccess
            facts.userFunctions.formUnion(other.userFunctions)
        }
        facts.text = statement.text
        facts.primary = statement.primary
        facts.kinds.formUnion(statement.kinds)
        facts.functions.formUnion(statement.functions)
        facts.attributeCalls.formUnion(statement.attributeCalls)
        facts.tablesRead.formUnion(statement.tablesRead)
        facts.tablesWritten.formUnion(statement.tablesWritten)
        facts.objectTypes.formUnion(statement.objectTypes)
        facts.settings += statement.settings
        facts.writeEffects.formUnion(statement.writeEffects)
        facts.adminFunctions.formUnion(statement.adminFunctions)
        facts.userFunctions.formUnion(statement.userFunctions)
        facts.fileAccess = facts.fileAccess || statement.fileAccess
        facts.fingerprint = statement.fingerprint
        facts.cursorName = statement.cursorName
        facts.cursorUse = statement.cursorUse
        return facts
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
