import SQLInspection

/// The schemas an unqualified table name may resolve to in a session: `public` (the usual path), and
/// every schema the session ever named in `search_path`, or any schema once it set the path to a
/// value the gateway cannot read. It only grows: a SET rolled back or a path set back still counts,
/// so a table rule on `schema.table` matches the unqualified name wherever the server might look.
public struct SearchPath: Sendable, Equatable {
    public private(set) var schemas: Set<String> = ["public"]
    public private(set) var anySchema = false

    public init() {}

    /// Adds what `inspection`'s statements set `search_path` to.
    public mutating func widen(by inspection: Inspection) {
        for facts in inspection.statements {
            for change in facts.settings {
                guard let name = change.name else {
                    anySchema = true
                    continue
                }
                guard name == "search_path" else { continue }
                switch change.kind {
                case .value: widen(by: change.values)
                case .computed: anySchema = true
                case .reset: break
                }
            }
        }
    }

    /// Adds the schemas of a path written as values (`a, "B"`, or one list `'a,b'` as set_config takes it).
    public mutating func widen(by values: [String]) {
        for value in values {
            for part in value.split(separator: ",") {
                var schema = part.trimmingCharacters(in: .whitespaces)
                if schema.hasPrefix("\""), schema.hasSuffix("\""), schema.count >= 2 {
                    schema = String(schema.dropFirst().dropLast()).replacingOccurrences(of: "\"\"", with: "\"")
                } else {
                    schema = schema.lowercased()
                }
                if !schema.isEmpty { schemas.insert(schema) }
            }
        }
    }

    /// Whether a table named without a schema may be `schema`'s.
    func mayResolve(to schema: Glob) -> Bool {
        anySchema || schemas.contains { schema.matches($0) }
    }
}
