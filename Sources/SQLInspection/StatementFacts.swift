/// What a statement does, as far as a rule needs to know. Each statement can have several kinds: the
/// worst effect wins, so a SELECT whose CTE deletes rows is also a `delete`.
public enum StatementKind: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case select, insert, update, delete, merge, truncate
    case copyFrom = "copy_from", copyTo = "copy_to"
    case create, alter, drop
    case grant, revoke
    case setRole = "set_role", set, show, reset
    case transaction
    case `do`, call
    case prepare, execute, deallocate
    case explain, cursor, lock, vacuum, analyze, listen, notify, discard, load
    case utility
    /// A statement type the inspector does not know: denied by default.
    case unknown

    public static func < (a: StatementKind, b: StatementKind) -> Bool { a.rawValue < b.rawValue }

    /// Kinds that change data, schema, privileges or server state.
    public var isWrite: Bool {
        switch self {
        case .insert, .update, .delete, .merge, .truncate, .copyFrom, .create, .alter, .drop, .grant, .revoke, .do,
            .call, .load, .vacuum, .analyze, .unknown:
            return true
        case .select, .copyTo, .setRole, .set, .show, .reset, .transaction, .prepare, .execute, .deallocate, .explain,
            .cursor, .lock, .listen, .notify, .discard, .utility:
            return false
        }
    }
}

/// A table named in a statement, as written: the schema is nil when the statement left it to the search path.
public struct TableName: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var schema: String?
    public var name: String

    public init(schema: String?, name: String) {
        self.schema = schema
        self.name = name
    }

    public var description: String { schema.map { "\($0).\(name)" } ?? name }

    public static func < (a: TableName, b: TableName) -> Bool { a.description < b.description }
}

/// The facts about one statement of a query string.
public struct StatementFacts: Sendable, Hashable, Codable {
    /// The statement's own text, without the others of a multi-statement string.
    public var text: String
    /// The top-level kind (`select` for a SELECT with a deleting CTE).
    public var primary: StatementKind
    /// Every effect found anywhere in the statement, `primary` included.
    public var kinds: Set<StatementKind>
    /// For create/alter/drop/grant: object types, lower case (`table`, `index`, `function`, `role`, ...).
    public var objectTypes: Set<String> = []
    public var tablesRead: Set<TableName> = []
    public var tablesWritten: Set<TableName> = []
    /// Functions called, lower case, schema-qualified when the statement qualified them.
    public var functions: Set<String> = []
    /// Names written in attribute notation, `t.f` or `(x).f`, lower case: PostgreSQL calls `f(t)` when
    /// `f` is not a column of `t` (or a field of `x`), so each may be a function call.
    public var attributeCalls: Set<String> = []
    /// Settings the statement changes: SET, RESET and `set_config(...)`, in order.
    public var settings: [SettingChange] = []
    /// An UPDATE or DELETE without a WHERE clause (all rows).
    public var wherelessWrite = false
    /// COPY ... TO/FROM PROGRAM (runs a shell command on the database server).
    public var copyProgram = false
    /// The effect cannot be known from the text: DO blocks, EXECUTE of a prepared statement not seen in
    /// this session, functions that run SQL given as a string.
    public var dynamic = false
    /// Why the statement counts as a write beyond its kind and the tables it writes: what PostgreSQL
    /// refuses in a read-only transaction, and what it lets through there that a read-only person must
    /// not do.
    public var writeEffects: Set<WriteEffect> = []
    /// Built-in functions called that signal or administer the server, or that only superusers and
    /// members of a predefined role may run (FunctionCatalogue).
    public var adminFunctions: Set<String> = []
    /// Files on the database server are read or written: COPY to or from a file, file functions.
    public var fileAccess = false
    /// Functions called that are not built in (as written): what they do cannot be known from the text.
    public var userFunctions: Set<String> = []
    /// For PREPARE, EXECUTE and DEALLOCATE: the prepared statement's name (nil for DEALLOCATE ALL).
    public var preparedName: String?
    /// For DECLARE, FETCH, MOVE and CLOSE: the cursor's name (nil for CLOSE ALL), and which of them.
    public var cursorName: String?
    public var cursorUse: CursorUse?
    /// Normalised fingerprint (constants and layout do not change it), from libpg_query.
    public var fingerprint: String

    public init(text: String, primary: StatementKind, fingerprint: String) {
        self.text = text
        self.primary = primary
        self.kinds = [primary]
        self.fingerprint = fingerprint
    }

    /// JSON keys in snake_case, as every JSON the gateway writes (the API's and the CLI's).
    enum CodingKeys: String, CodingKey {
        case text, primary, kinds, functions, settings, dynamic, fingerprint
        case objectTypes = "object_types"
        case tablesRead = "tables_read"
        case tablesWritten = "tables_written"
        case attributeCalls = "attribute_calls"
        case wherelessWrite = "whereless_write"
        case copyProgram = "copy_program"
        case preparedName = "prepared_name"
        case cursorName = "cursor_name"
        case cursorUse = "cursor_use"
        case writeEffects = "write_effects"
        case adminFunctions = "admin_functions"
        case fileAccess = "file_access"
        case userFunctions = "user_functions"
    }

    /// Whether anything in the statement writes.
    public var isWrite: Bool { kinds.contains { $0.isWrite } || !tablesWritten.isEmpty || !writeEffects.isEmpty }

    /// A one-line summary for audit events and notices.
    public var summary: String {
        var parts = [kinds.sorted().map(\.rawValue).joined(separator: "+")]
        if !objectTypes.isEmpty { parts.append("objects=" + objectTypes.sorted().joined(separator: ",")) }
        if !tablesWritten.isEmpty { parts.append("writes=" + tablesWritten.sorted().map(\.description).joined(separator: ",")) }
        if !tablesRead.isEmpty { parts.append("reads=" + tablesRead.sorted().map(\.description).joined(separator: ",")) }
        if !functions.isEmpty { parts.append("functions=" + functions.sorted().joined(separator: ",")) }
        if !settings.isEmpty { parts.append("settings=" + settings.map(\.summary).joined(separator: ",")) }
        if wherelessWrite { parts.append("no-where") }
        if copyProgram { parts.append("program") }
        if !writeEffects.isEmpty { parts.append("effects=" + writeEffects.map(\.rawValue).sorted().joined(separator: ",")) }
        if !adminFunctions.isEmpty { parts.append("admin=" + adminFunctions.sorted().joined(separator: ",")) }
        if fileAccess { parts.append("server-files") }
        if !userFunctions.isEmpty { parts.append("user-functions=" + userFunctions.sorted().joined(separator: ",")) }
        if dynamic { parts.append("dynamic") }
        return parts.joined(separator: " ")
    }
}

/// What a cursor statement does with its cursor.
public enum CursorUse: String, Sendable, Hashable, Codable {
    /// DECLARE: the cursor's query is judged now and runs as it is fetched.
    case declare
    /// FETCH or MOVE: runs the cursor's query on.
    case fetch
    case close
}

/// A reason a statement writes that its kind does not give.
public enum WriteEffect: String, Sendable, Hashable, Codable, CaseIterable {
    /// SELECT ... FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE: row locks (refused read-only).
    case rowLock = "row_lock"
    /// LOCK TABLE: an explicit table lock, which blocks other sessions.
    case tableLock = "table_lock"
    /// PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED: a transaction that outlives the session.
    case twoPhase = "two_phase"
    /// CHECKPOINT: server administration.
    case checkpoint
    /// COPY ... TO a file: a file written on the database server.
    case serverFile = "server_file"
    /// A built-in function that writes or administers (nextval, lo_put, pg_advisory_lock, pg_switch_wal, ...).
    case function
    /// A setting that turns off triggers, logging or auditing, or one computed when the statement runs.
    case setting
}

/// A change of a server setting that a statement makes.
public struct SettingChange: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        /// `SET name TO value`, or `set_config('name', 'value', …)` with constant arguments.
        case value
        /// `RESET name`, `SET name TO DEFAULT`, `RESET ALL` (name `all`): back to the session's start value.
        case reset
        /// `set_config` whose name or value is computed: what it sets is known only when it runs.
        case computed
    }

    /// Lower case; nil when computed.
    public var name: String?
    /// The value as written; a list for `SET search_path TO a, b`. Empty for a reset or a computed value.
    public var values: [String]
    public var kind: Kind

    public init(name: String?, values: [String] = [], kind: Kind) {
        self.name = name
        self.values = values
        self.kind = kind
    }

    /// `name=value`, `name=DEFAULT`, `?=?`.
    public var summary: String {
        let value: String
        switch kind {
        case .value: value = values.joined(separator: ",")
        case .reset: value = "DEFAULT"
        case .computed: value = "?"
        }
        return "\(name ?? "?")=\(value)"
    }
}

/// The result of inspecting one query string.
public struct Inspection: Sendable, Hashable, Codable {
    /// One entry per statement; empty for an empty query or when the text does not parse.
    public var statements: [StatementFacts]
    /// Set when PostgreSQL's parser rejects the text.
    public var parseError: ParseError?

    public init(statements: [StatementFacts], parseError: ParseError? = nil) {
        self.statements = statements
        self.parseError = parseError
    }

    enum CodingKeys: String, CodingKey {
        case statements
        case parseError = "parse_error"
    }

    public var isMultiStatement: Bool { statements.count > 1 }
    public var unparsable: Bool { parseError != nil }
}

/// Why the parser refused a text, with the 1-based character position it pointed at.
public struct ParseError: Error, Sendable, Hashable, Codable, CustomStringConvertible {
    public var message: String
    /// The 1-based character position PostgreSQL would report (0: none).
    public var position: Int
    /// The SQLSTATE PostgreSQL gives the same text: 42601 for a syntax error, 54001 for nesting past
    /// its stack, 54000 for a text too long to check, XX000 when the gateway itself failed.
    public var sqlState: String

    public static let syntaxError = "42601"
    public static let stackDepthExceeded = "54001"
    public static let programLimitExceeded = "54000"
    public static let internalError = "XX000"

    public init(message: String, position: Int, sqlState: String = ParseError.syntaxError) {
        self.message = message
        self.position = position
        self.sqlState = sqlState
    }

    enum CodingKeys: String, CodingKey {
        case message, position
        case sqlState = "sql_state"
    }

    /// Whether the parser found the text to be wrong SQL (rather than too big or unreadable).
    public var isSyntaxError: Bool { sqlState == Self.syntaxError }

    public var description: String { position > 0 ? "\(message) (at character \(position))" : message }
}
