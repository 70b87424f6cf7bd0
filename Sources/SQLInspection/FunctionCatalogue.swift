/// What PostgreSQL's built-in functions do, from the server's own catalogue (`pg_proc`): the table in
/// FunctionCatalogue+Generated.swift is made by scripts/function-catalogue, with the effects that the
/// catalogue cannot say reviewed in that script.
public enum FunctionCatalogue {
    /// Whether `name` (lower case, unqualified) is a function of pg_catalog.
    public static func isBuiltin(_ name: String) -> Bool { builtins.contains(name) }

    /// A built-in function's volatility, restriction and effects; nil when it is not built in.
    /// Immutable and stable functions that anyone may run read at most.
    public static func lookup(_ name: String) -> BuiltinFunction? {
        if let entry = classified[name] { return entry }
        return isBuiltin(name) ? BuiltinFunction(.stable, restricted: false, []) : nil
    }

    /// Whether the review gave `name` its effects (every volatile or restricted function must have them).
    public static func isClassified(_ name: String) -> Bool { classified[name] != nil }

    /// Whether `symbol` names an operator of pg_catalog.
    public static func isBuiltinOperator(_ symbol: String) -> Bool { builtinOperators.contains(symbol) }

    public static let builtinOperators: Set<String> = Set(builtinOperatorNames.split(separator: " ").map(String.init))

    /// Every function name in pg_catalog.
    public static let builtins: Set<String> = Set(builtinNames.split(separator: " ").map(String.init))
}

/// One built-in function, as the catalogue and its review describe it.
public struct BuiltinFunction: Sendable, Hashable {
    public enum Volatility: String, Sendable, Hashable { case immutable, stable, volatile }

    public struct Effects: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Changes data or state other sessions see: sequences, large objects, advisory locks, WAL, slots.
        public static let write = Effects(rawValue: 1)
        /// Signals or administers the server: other backends, configuration, logs, backups, statistics.
        public static let admin = Effects(rawValue: 2)
        /// Reads or writes files on the database server.
        public static let fileAccess = Effects(rawValue: 4)
        /// Runs SQL given as text, which the gateway never sees.
        public static let dynamic = Effects(rawValue: 8)
    }

    public var volatility: Volatility
    /// Revoked from PUBLIC: only superusers or members of a predefined role may run it.
    public var restricted: Bool
    public var effects: Effects

    public init(_ volatility: Volatility, restricted: Bool, _ effects: Effects) {
        self.volatility = volatility
        self.restricted = restricted
        self.effects = effects
    }
}
