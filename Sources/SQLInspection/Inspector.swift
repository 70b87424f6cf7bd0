import Foundation

/// Turns SQL text into statement facts by walking PostgreSQL's parse tree.
///
/// Fails closed: a node type it does not recognise as a statement makes the kind `unknown`; text the
/// parser refuses is reported, never guessed at.
public enum Inspector {
    /// Functions that run SQL the statement does not spell out, so their effect cannot be known from it.
    /// Taken from PostgreSQL 15's source (the C functions that call SPI or libpq on text built from their
    /// arguments, mapped to SQL names through pg_proc.dat and the extensions' scripts):
    /// - caller-supplied SQL text: `ts_stat`, `ts_rewrite(tsquery, text)`, `query_to_xml*`, dblink's
    ///   `dblink`, `dblink_exec`, `dblink_send_query`, `dblink_open`/`dblink_fetch`/`dblink_close` (cursor
    ///   names pasted in unquoted), tablefunc's `crosstab*` and `connectby` (names pasted unquoted), xml2's
    ///   `xpath_table` (its condition pasted unquoted, run with writes allowed);
    /// - tables read that the statement only names as values: `table_to_xml*`, `schema_to_xml*`,
    ///   `database_to_xml*`;
    /// - `cursor_to_xml*` fetch from a cursor declared earlier (judged then), kept here to fail closed.
    public static let dynamicSQLFunctions: Set<String> = [
        "ts_stat", "ts_rewrite", "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "table_to_xml",
        "table_to_xmlschema", "table_to_xml_and_xmlschema", "schema_to_xml", "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
        "cursor_to_xml", "cursor_to_xmlschema", "dblink", "dblink_exec", "dblink_send_query", "dblink_open",
        "dblink_fetch", "dblink_close", "crosstab", "crosstab2", "crosstab3", "crosstab4", "connectby", "xpath_table",
    ]

    /// Settings that turn off triggers, logging or auditing (or corrupt-data safety): changing one is a
    /// write whatever the value. A setting computed when the statement runs (nil) may be any of them.
    static func isGuardSetting(_ name: String?) -> Bool {
        guard let name else { return true }
        return name.hasPrefix("log_") || name.hasPrefix("pgaudit.")
            || [
                "session_replication_role", "zero_damaged_pages", "ignore_checksum_failure", "allow_system_table_mods",
                "ignore_system_indexes", "ignore_invalid_pages",
            ].contains(name)
    }

    static func trimmed(_ bytes: ArraySlice<UInt8>) -> String {
        var slice = bytes
        while let first = slice.first, first == 0x20 || (0x09...0x0D).contains(first) { slice.removeFirst() }
        while let last = slice.last, last == 0x20 || (0x09...0x0D).contains(last) { slice.removeLast() }
        return String(decoding: slice, as: UTF8.self)
    }

    public static func inspect(_ sql: String) -> Inspection {
        inspect(sql, constants: nil)
    }

    /// Inspects `sql` and also returns where its constants (`A_Const` nodes) start: byte offsets into
    /// the text, as the parser reports them. A cache uses them to know that a statement's constants
    /// change nothing in its inspection.
    public static func inspectNotingConstants(_ sql: String) -> (Inspection, Set<Int>) {
        var constants = Set<Int>()
        let inspection = inspect(sql, constants: &constants)
        return (inspection, constants)
    }

    /// Texts up to this many bytes are inspected on the caller's thread: they cannot nest deeply enough
    /// to exhaust an ordinary stack. Longer ones go to a thread with a large stack (`LargeStack`).
    public static let inlineTextBytes = 2048

    /// Longer texts are refused unread: what libpg_query would build for them (hundreds of bytes of
    /// tree for each byte of text) is more than a gateway should spend on one statement.
    public static let longestText = 1 << 20

    private static func inspect(_ sql: String, constants: UnsafeMutablePointer<Set<Int>>?) -> Inspection {
        let length = sql.utf8.count
        if length > longestText {
            return Inspection(
                statements: [],
                parseError: ParseError(
                    message: "the text is \(length) bytes long, more than the \(longestText >> 20) MiB Gatehouse checks",
                    position: 0, sqlState: ParseError.programLimitExceeded))
        }
        guard length > inlineTextBytes else { return inspectHere(sql, constants: constants) }
        nonisolated(unsafe) let constants = constants
        return LargeStack.run { inspectHere(sql, constants: constants) }
    }

    private static func inspectHere(_ sql: String, constants: UnsafeMutablePointer<Set<Int>>?) -> Inspection {
        let utf8 = Array(sql.utf8)
        let outcome = PostgresParser.withParseTree(sql) { json -> Inspection in
            if JSONTape.nestsTooDeeply(json) {
                return Inspection(
                    statements: [],
                    parseError: ParseError(
                        message:
                            "the statement nests expressions more deeply than PostgreSQL accepts (stack depth limit exceeded, SQLSTATE 54001)",
                        position: 0, sqlState: ParseError.stackDepthExceeded))
            }
            guard let tape = JSONTape(json), let statements = tape.member(0, "stmts") else {
                return Inspection(
                    statements: [],
                    parseError: ParseError(message: "unreadable parse tree", position: 0, sqlState: ParseError.internalError))
            }
            if let constants { constantLocations(tape, 0, into: &constants.pointee) }
            var result: [StatementFacts] = []
            var failed = false
            // Constants whose values the facts hold (settings): a cache must not reuse these facts for
            // another value.
            var readConstants = Set<Int>()
            tape.forEachElement(statements) { entry in
                guard tape.kind(entry) == .object else {
                    failed = true
                    return
                }
                let location = tape.int(tape.member(entry, "stmt_location")) ?? 0
                let length = tape.int(tape.member(entry, "stmt_len")) ?? 0
                let start = min(max(0, location), utf8.count)
                let end = length > 0 ? min(utf8.count, start + length) : utf8.count
                let text = Self.trimmed(utf8[start..<end])
                var walker = Walker(tape: tape)
                let statement = tape.member(entry, "stmt")
                walker.statement(statement)
                var facts = StatementFacts(
                    text: text, primary: walker.primary ?? .unknown,
                    fingerprint: statement.map { Fingerprint.of(tape, $0) } ?? "")
                facts.kinds = walker.kinds.isEmpty ? [.unknown] : walker.kinds.union([facts.primary])
                facts.objectTypes = walker.objectTypes
                facts.tablesRead = walker.tablesRead
                facts.tablesWritten = walker.tablesWritten
                facts.functions = walker.functions
                facts.attributeCalls = walker.attributeCalls
                facts.settings = walker.settings
                readConstants.formUnion(walker.readConstants)
                facts.wherelessWrite = walker.wherelessWrite
                facts.copyProgram = walker.copyProgram
                facts.dynamic = walker.dynamic
                facts.preparedName = walker.preparedName
                facts.cursorName = walker.cursor?.name
                facts.cursorUse = walker.cursor?.use
                facts.writeEffects = walker.writeEffects
                if walker.settings.contains(where: { $0.kind != .reset && Inspector.isGuardSetting($0.name) }) {
                    facts.writeEffects.insert(.setting)
                }
                facts.adminFunctions = walker.adminFunctions
                facts.fileAccess = walker.fileAccess
                facts.userFunctions = walker.userFunctions
                result.append(facts)
            }
            if failed {
                return Inspection(
                    statements: [],
                    parseError: ParseError(message: "unreadable parse tree", position: 0, sqlState: ParseError.internalError))
            }
            if let constants { constants.pointee.subtract(readConstants) }
            return Inspection(statements: result)
        }
        switch outcome {
        case .success(let inspection): return inspection
        case .failure(let error): return Inspection(statements: [], parseError: error)
        }
    }
}

extension Inspector {
    /// The `location` of every `A_Const` node under `index`.
    static func constantLocations(_ tape: JSONTape, _ index: Int, into locations: inout Set<Int>) {
        switch tape.kind(index) {
        case .object:
            tape.forEachMember(index) { key, value in
                if tape.equals(key, "A_Const"), let location = tape.int(tape.member(value, "location")) {
                    locations.insert(location)
                }
                constantLocations(tape, value, into: &locations)
            }
        case .array:
            tape.forEachElement(index) { constantLocations(tape, $0, into: &locations) }
        default:
            break
        }
    }
}

/// One pass over one statement's tree.
struct Walker {
    let tape: JSONTape
    var primary: StatementKind?
    var kinds: Set<StatementKind> = []
    var objectTypes: Set<String> = []
    var tablesRead: Set<TableName> = []
    var tablesWritten: Set<TableName> = []
    var functions: Set<String> = []
    var attributeCalls: Set<String> = []
    var settings: [SettingChange] = []
    /// Where the constants whose values went into `settings` stand.
    var readConstants: Set<Int> = []
    var wherelessWrite = false
    var copyProgram = false
    var dynamic = false
    var preparedName: String?
    var cursor: (name: String?, use: CursorUse)?
    var writeEffects: Set<WriteEffect> = []
    var adminFunctions: Set<String> = []
    var fileAccess = false
    var userFunctions: Set<String> = []

    /// CTE names visible at the current point, innermost scope last.
    private var cteScopes: [Set<String>] = []
    /// Inside EXPLAIN without ANALYZE: the inner statement is planned, not run.
    private var planOnly = false
    private var depth = 0

    init(tape: JSONTape) {
        self.tape = tape
    }

    mutating func statement(_ index: Int?) {
        node(index, write: false)
    }

    private mutating func add(_ kind: StatementKind) {
        if planOnly && kind != .explain { return }
        if primary == nil { primary = kind }
        kinds.insert(kind)
    }

    /// A write effect, unless the statement is only planned (EXPLAIN without ANALYZE).
    private mutating func effect(_ effect: WriteEffect) {
        if !planOnly { writeEffects.insert(effect) }
    }

    private mutating func node(_ index: Int?, write: Bool) {
        guard let index else { return }
        switch tape.kind(index) {
        case .array:
            tape.forEachElement(index) { node($0, write: write) }
        case .object:
            // A node is {"TypeName": {fields}}; struct-typed fields hold their fields directly.
            let first = index + 1
            if first < tape.end(index), tape.end(first + 1) == tape.end(index), let byte = tape.raw(first).first,
                byte >= UInt8(ascii: "A"), byte <= UInt8(ascii: "Z")
            {
                let body = first + 1
                guard tape.kind(body) == .object else { return node(body, write: write) }
                let name = tape.raw(first)
                if name.count > 4, name[name.count - 4] == UInt8(ascii: "S"), name[name.count - 3] == UInt8(ascii: "t"),
                    name[name.count - 2] == UInt8(ascii: "m"), name[name.count - 1] == UInt8(ascii: "t")
                {
                    visit(String(decoding: name, as: UTF8.self), body, write: write)
                } else if tape.equals(first, "RangeVar") {
                    table(body, write: write)
                } else if tape.equals(first, "FuncCall") {
                    functionCall(body)
                } else if tape.equals(first, "A_Expr") {
                    operatorCall(body)
                    children(body, write: write)
                } else if tape.equals(first, "A_Indirection") {
                    // `(x).f`: PostgreSQL calls `f(x)` when x has no field f.
                    if let indirection = tape.member(body, "indirection") { attributes(strings(indirection) ?? []) }
                    children(body, write: write)
                } else if tape.equals(first, "ColumnRef") {
                    // `t.f`, `s.t.f`: the last name is `f(t)` when t has no column f.
                    if let parts = strings(tape.member(body, "fields")), parts.count >= 2,
                        let fields = tape.member(body, "fields"), lastFieldIsName(fields)
                    {
                        attributes([parts[parts.count - 1]])
                    }
                } else {
                    // Expressions, clauses and wrappers (VacuumRelation, ...) pass the write context on.
                    children(body, write: write)
                }
            } else if tape.member(index, "relname") != nil {
                // A RangeVar without its wrapper (e.g. `relation`).
                table(index, write: write)
            } else if tape.member(index, "funcname") != nil {
                functionCall(index)
            } else {
                children(index, write: write)
            }
        default:
            return
        }
    }

    /// Visits every field of a node except those named in `skipping`.
    private mutating func children(_ fields: Int, skipping: [StaticString] = [], write: Bool = false) {
        tape.forEachMember(fields) { key, value in
            let kind = tape.kind(value)
            guard kind == .object || kind == .array else { return }
            for name in skipping where tape.equals(key, name) { return }
            node(value, write: write)
        }
    }

    private mutating func visit(_ type: String, _ f: Int, write: Bool) {
        depth += 1
        defer { depth -= 1 }
        // A WITH clause scopes its CTE names over the statement that carries it.
        var pushedScope = false
        if let with = tape.member(f, "withClause") {
            cteScopes.append(cteNames(with))
            pushedScope = true
        }
        defer { if pushedScope { cteScopes.removeLast() } }

        switch type {
        case "SelectStmt":
            // Nested SELECTs (subqueries, VALUES lists, INSERT ... SELECT) only read: their tables say so.
            if depth == 1 { add(.select) }
            if tape.member(f, "lockingClause") != nil { effect(.rowLock) }
            if let into = tape.member(f, "intoClause") {
                add(.create)
                objectTypes.insert("table")
                node(tape.member(into, "rel"), write: true)
            }
            children(f, skipping: ["intoClause"])
        case "InsertStmt":
            add(.insert)
            node(tape.member(f, "relation"), write: true)
            children(f, skipping: ["relation"])
        case "UpdateStmt", "DeleteStmt":
            add(type == "UpdateStmt" ? .update : .delete)
            if tape.member(f, "whereClause") == nil { wherelessWrite = true }
            if type == "UpdateStmt", let relation = tape.member(f, "relation"),
                tape.string(tape.member(relation, "relname")) == "pg_settings",
                [nil, "pg_catalog"].contains(tape.string(tape.member(relation, "schemaname")))
            {
                // pg_settings' update rule calls set_config for each row: settings named by data.
                functions.insert("set_config")
                settings.append(SettingChange(name: nil, kind: .computed))
                dynamic = true
            }
            node(tape.member(f, "relation"), write: true)
            children(f, skipping: ["relation"])
        case "MergeStmt":
            add(.merge)
            node(tape.member(f, "relation"), write: true)
            children(f, skipping: ["relation"])
        case "TruncateStmt":
            add(.truncate)
            node(tape.member(f, "relations"), write: true)
        case "CopyStmt":
            let from = (tape.bool(tape.member(f, "is_from")) ?? false)
            add(from ? .copyFrom : .copyTo)
            if (tape.bool(tape.member(f, "is_program")) ?? false) {
                copyProgram = true
            } else if tape.member(f, "filename") != nil {
                // A file on the server (not the client's STDIN or STDOUT).
                fileAccess = true
                if !from { effect(.serverFile) }
            }
            node(tape.member(f, "relation"), write: from)
            children(f, skipping: ["relation"])
        case "ExplainStmt":
            add(.explain)
            var analyze = false
            if let options = tape.member(f, "options") {
                tape.forEachElement(options) { option in
                    if let element = tape.member(option, "DefElem"), let name = tape.member(element, "defname"),
                        tape.equals(name, "analyze")
                    {
                        analyze = true
                    }
                }
            }
            if analyze {
                node(tape.member(f, "query"), write: false)
            } else {
                let outer = planOnly
                planOnly = true
                node(tape.member(f, "query"), write: false)
                planOnly = outer
            }
        case "DoStmt":
            add(.do)
            dynamic = true
        case "CallStmt":
            add(.call)
            children(f)
        case "PrepareStmt":
            add(.prepare)
            if depth == 1 { preparedName = tape.string(tape.member(f, "name")) }
            node(tape.member(f, "query"), write: false)
        case "ExecuteStmt":
            // Runs a statement prepared earlier; the session layer knows which one, the text does not.
            add(.execute)
            dynamic = true
            if depth == 1 { preparedName = tape.string(tape.member(f, "name")) }
            children(f)
        case "DeallocateStmt":
            add(.deallocate)
            if depth == 1 { preparedName = tape.string(tape.member(f, "name")) }
        case "DeclareCursorStmt":
            add(.cursor)
            if depth == 1 { cursor = (tape.string(tape.member(f, "portalname")), .declare) }
            node(tape.member(f, "query"), write: false)
        case "FetchStmt":
            add(.cursor)
            if depth == 1 { cursor = (tape.string(tape.member(f, "portalname")), .fetch) }
        case "ClosePortalStmt":
            add(.cursor)
            if depth == 1 { cursor = (tape.string(tape.member(f, "portalname")), .close) }
        case "TransactionStmt":
            add(.transaction)
            if let kind = tape.member(f, "kind"),
                tape.equals(kind, "TRANS_STMT_PREPARE") || tape.equals(kind, "TRANS_STMT_COMMIT_PREPARED")
                    || tape.equals(kind, "TRANS_STMT_ROLLBACK_PREPARED")
            {
                effect(.twoPhase)
            }
        case "VariableSetStmt":
            let name = (tape.string(tape.member(f, "name")) ?? "").lowercased()
            let kind = tape.member(f, "kind")
            let resets = kind.map { tape.equals($0, "VAR_RESET") || tape.equals($0, "VAR_RESET_ALL") } ?? false
            if name == "role" || name == "session_authorization" || name == "session authorization" {
                add(.setRole)
            } else if resets {
                add(.reset)
            } else {
                add(.set)
            }
            // Libraries a session start loads: set at startup they are a LOAD.
            if name.hasSuffix("_preload_libraries") { add(.load) }
            variableSet(f, name: name)
        case "VariableShowStmt":
            add(.show)
        case "DiscardStmt":
            add(.discard)
        case "ListenStmt", "UnlistenStmt":
            add(.listen)
        case "NotifyStmt":
            add(.notify)
        case "LockStmt":
            add(.lock)
            effect(.tableLock)
            node(tape.member(f, "relations"), write: false)
        case "VacuumStmt":
            add((tape.bool(tape.member(f, "is_vacuumcmd")) ?? false) ? .vacuum : .analyze)
            children(f, write: true)
        case "LoadStmt":
            add(.load)
        case "CheckPointStmt":
            add(.utility)
            effect(.checkpoint)
        case "GrantStmt":
            add((tape.bool(tape.member(f, "is_grant")) ?? false) ? .grant : .revoke)
            objectTypes.insert(objectType(tape.member(f, "objtype")) ?? "object")
            node(tape.member(f, "objects"), write: true)
        case "GrantRoleStmt":
            add((tape.bool(tape.member(f, "is_grant")) ?? false) ? .grant : .revoke)
            objectTypes.insert("role")
        case "DropStmt":
            add(.drop)
            let object = objectType(tape.member(f, "removeType")) ?? "object"
            objectTypes.insert(object)
            if ["table", "view", "materialized_view", "foreign_table", "sequence"].contains(object) {
                if let objects = tape.member(f, "objects") {
                    tape.forEachElement(objects) { name in
                        if let parts = nameList(name) { tableWritten(parts) }
                    }
                }
            }
        case "DropRoleStmt":
            add(.drop)
            objectTypes.insert("role")
        case "DropdbStmt":
            add(.drop)
            objectTypes.insert("database")
        case "CreateStmt", "CreateForeignTableStmt":
            add(.create)
            objectTypes.insert("table")
            node(tape.member(f, "relation"), write: true)
            children(f, skipping: ["relation"])
        case "CreateTableAsStmt":
            add(.create)
            objectTypes.insert(objectType(tape.member(f, "objtype")) ?? "table")
            if let into = tape.member(f, "into") { node(tape.member(into, "rel"), write: true) }
            node(tape.member(f, "query"), write: false)
        case "ViewStmt":
            add(.create)
            objectTypes.insert("view")
            node(tape.member(f, "view"), write: true)
            node(tape.member(f, "query"), write: false)
        case "IndexStmt":
            add(.create)
            objectTypes.insert("index")
            node(tape.member(f, "relation"), write: true)
        case "AlterTableStmt":
            add(.alter)
            objectTypes.insert(objectType(tape.member(f, "objtype")) ?? "table")
            node(tape.member(f, "relation"), write: true)
            children(f, skipping: ["relation"])
        case "RenameStmt", "AlterObjectSchemaStmt", "AlterOwnerStmt":
            add(.alter)
            objectTypes.insert(objectType(tape.member(f, "renameType") ?? tape.member(f, "objectType")) ?? "object")
            node(tape.member(f, "relation"), write: true)
        case "CreateFunctionStmt":
            add(.create)
            objectTypes.insert((tape.bool(tape.member(f, "is_procedure")) ?? false) ? "procedure" : "function")
        case "AlterFunctionStmt":
            add(.alter)
            objectTypes.insert("function")
        case "CreateRoleStmt":
            add(.create)
            objectTypes.insert("role")
        case "AlterRoleStmt", "AlterRoleSetStmt":
            add(.alter)
            objectTypes.insert("role")
        case "CreateSchemaStmt":
            add(.create)
            objectTypes.insert("schema")
            children(f)
        case "CreateSeqStmt":
            add(.create)
            objectTypes.insert("sequence")
            node(tape.member(f, "sequence"), write: true)
        case "AlterSeqStmt":
            add(.alter)
            objectTypes.insert("sequence")
            node(tape.member(f, "sequence"), write: true)
        case "CreateExtensionStmt":
            add(.create)
            objectTypes.insert("extension")
        case "AlterExtensionStmt", "AlterExtensionContentsStmt":
            add(.alter)
            objectTypes.insert("extension")
        case "CreatedbStmt":
            add(.create)
            objectTypes.insert("database")
        case "AlterDatabaseStmt", "AlterDatabaseSetStmt":
            add(.alter)
            objectTypes.insert("database")
        case "AlterSystemStmt":
            add(.alter)
            objectTypes.insert("system")
        case "CreateTrigStmt":
            add(.create)
            objectTypes.insert("trigger")
            node(tape.member(f, "relation"), write: true)
        case "RuleStmt":
            add(.create)
            objectTypes.insert("rule")
            node(tape.member(f, "relation"), write: true)
        case "CreatePolicyStmt", "AlterPolicyStmt":
            add(type == "CreatePolicyStmt" ? .create : .alter)
            objectTypes.insert("policy")
            node(tape.member(f, "table"), write: true)
        case "CreateDomainStmt", "CompositeTypeStmt", "CreateEnumStmt", "CreateRangeStmt", "DefineStmt":
            add(.create)
            objectTypes.insert("type")
        case "AlterEnumStmt", "AlterDomainStmt":
            add(.alter)
            objectTypes.insert("type")
        case "CreateCastStmt", "CreateConversionStmt", "CreateOpClassStmt", "CreateOpFamilyStmt", "CreatePLangStmt",
            "CreateTableSpaceStmt", "CreateEventTrigStmt", "CreatePublicationStmt", "CreateSubscriptionStmt",
            "CreateFdwStmt", "CreateForeignServerStmt", "CreateUserMappingStmt", "CreateStatsStmt", "CreateAmStmt",
            "CreateTransformStmt":
            add(.create)
            objectTypes.insert(Self.snakeCase(type.dropFirst("Create".count).replacingOccurrences(of: "Stmt", with: "")))
        case "CommentStmt", "SecLabelStmt", "AlterDefaultPrivilegesStmt", "AlterTableSpaceOptionsStmt",
            "AlterPublicationStmt", "AlterSubscriptionStmt", "AlterEventTrigStmt", "AlterFdwStmt",
            "AlterForeignServerStmt", "AlterUserMappingStmt", "AlterOperatorStmt", "AlterTypeStmt", "AlterStatsStmt",
            "AlterCollationStmt", "AlterTSDictionaryStmt", "AlterTSConfigurationStmt", "ReassignOwnedStmt",
            "RefreshMatViewStmt", "ReindexStmt", "ClusterStmt", "ImportForeignSchemaStmt", "DropOwnedStmt",
            "DropTableSpaceStmt", "DropSubscriptionStmt", "DropUserMappingStmt", "AlterOpFamilyStmt":
            add(type.hasPrefix("Drop") ? .drop : .alter)
            objectTypes.insert(Self.snakeCase(type.replacingOccurrences(of: "Stmt", with: "")))
            children(f, write: true)
        case "RawStmt":
            children(f)
        default:
            if type.hasSuffix("Stmt") {
                // A statement type this inspector was not taught: fail closed.
                add(.unknown)
            }
            // Wrapper nodes (VacuumRelation, ...) pass the write context on to the tables they hold.
            children(f, write: write)
        }
    }

    private mutating func functionCall(_ f: Int) {
        if let name = qualifiedName(tape.member(f, "funcname")) {
            functions.insert(name)
            let bare = name.split(separator: ".").last.map(String.init) ?? name
            if Inspector.dynamicSQLFunctions.contains(bare) { dynamic = true }
            if bare == "set_config" { setConfig(f) }
            // The catalogue is asked with the name as the server reads it: a quoted "Lower" is not lower.
            if let exact = strings(tape.member(f, "funcname")), let last = exact.last {
                builtin(exact.joined(separator: "."), bare: last, schema: exact.count > 1 ? exact[exact.count - 2] : nil)
            }
        }
        children(f, skipping: ["funcname"])
    }

    /// What the catalogue says of a function called: built in (unqualified, or in pg_catalog) or the user's.
    private mutating func builtin(_ name: String, bare: String, schema: String?) {
        guard schema == nil || schema == "pg_catalog", let function = FunctionCatalogue.lookup(bare) else {
            userFunctions.insert(name)
            return
        }
        if function.effects.contains(.write) || function.effects.contains(.admin) { effect(.function) }
        if function.effects.contains(.admin) || function.restricted { adminFunctions.insert(bare) }
        if function.effects.contains(.fileAccess) { fileAccess = true }
        if function.effects.contains(.dynamic) { dynamic = true }
    }

    /// An operator runs a function as well: one that is not built in is the user's.
    private mutating func operatorCall(_ f: Int) {
        guard let parts = strings(tape.member(f, "name")), let symbol = parts.last else { return }
        let schema = parts.count > 1 ? parts[parts.count - 2] : nil
        if (schema != nil && schema != "pg_catalog") || !FunctionCatalogue.isBuiltinOperator(symbol) {
            userFunctions.insert("operator " + parts.joined(separator: "."))
        }
    }

    private mutating func attributes(_ names: [String]) {
        for name in names {
            let lowered = name.lowercased()
            // Maybe a call of a built-in function: what it would do counts (a column of that name too).
            if let function = FunctionCatalogue.lookup(name), !function.effects.isEmpty || function.restricted {
                builtin(name, bare: name, schema: nil)
            }
            attributeCalls.insert(lowered)
            if Inspector.dynamicSQLFunctions.contains(lowered) { dynamic = true }
        }
    }

    /// Whether a ColumnRef's last field is a name (not `*`).
    private func lastFieldIsName(_ fields: Int) -> Bool {
        var last: Int?
        tape.forEachElement(fields) { last = $0 }
        return last.map { tape.member($0, "String") != nil } ?? false
    }

    /// SET, RESET and SET ... TO DEFAULT as setting changes (SET TRANSACTION and SET SESSION
    /// CHARACTERISTICS name transaction settings, not a parameter, and are left out).
    private mutating func variableSet(_ f: Int, name: String) {
        guard let kind = tape.member(f, "kind") else { return }
        if tape.equals(kind, "VAR_RESET_ALL") {
            settings.append(SettingChange(name: "all", kind: .reset))
        } else if tape.equals(kind, "VAR_RESET") || tape.equals(kind, "VAR_SET_DEFAULT") {
            settings.append(SettingChange(name: name, kind: .reset))
        } else if tape.equals(kind, "VAR_SET_VALUE") {
            var values: [String] = []
            var computed = false
            if let args = tape.member(f, "args") {
                tape.forEachElement(args) { argument in
                    if let value = constantText(argument) { values.append(value) } else { computed = true }
                }
            }
            settings.append(
                computed ? SettingChange(name: name, kind: .computed) : SettingChange(name: name, values: values, kind: .value))
        } else if tape.equals(kind, "VAR_SET_CURRENT") {
            // SET name FROM CURRENT: the value the session has now, set by an earlier (judged) change.
            settings.append(SettingChange(name: name, kind: .reset))
        }
    }

    /// `set_config(name, value, is_local)`, arguments by position or by name. A computed name makes the
    /// statement dynamic: what it changes is known only when it runs.
    private mutating func setConfig(_ f: Int) {
        var positional: [Int] = []
        var named: [String: Int] = [:]
        if let args = tape.member(f, "args") {
            tape.forEachElement(args) { argument in
                if let namedArg = tape.member(argument, "NamedArgExpr"), let name = tape.string(tape.member(namedArg, "name")),
                    let value = tape.member(namedArg, "arg")
                {
                    named[name.lowercased()] = value
                } else {
                    positional.append(argument)
                }
            }
        }
        let nameArgument = positional.count > 0 ? positional[0] : named["setting_name"]
        let valueArgument = positional.count > 1 ? positional[1] : named["new_value"]
        guard let nameArgument, let name = constantText(nameArgument)?.lowercased() else {
            settings.append(SettingChange(name: nil, kind: .computed))
            dynamic = true
            return
        }
        if name == "role" || name == "session_authorization" { add(.setRole) } else { add(.set) }
        if let valueArgument, isNullConstant(valueArgument) {
            settings.append(SettingChange(name: name, kind: .reset))
        } else if let valueArgument, let value = constantText(valueArgument) {
            settings.append(SettingChange(name: name, values: [value], kind: .value))
        } else {
            settings.append(SettingChange(name: name, kind: .computed))
        }
    }

    /// The text of a constant (`'x'`, `1`, `1.5`, `true`, `'x'::text`), noting where it stands.
    private mutating func constantText(_ index: Int) -> String? {
        if let cast = tape.member(index, "TypeCast"), let argument = tape.member(cast, "arg") {
            return constantText(argument)
        }
        guard let constant = tape.member(index, "A_Const") else { return nil }
        if let location = tape.int(tape.member(constant, "location")) { readConstants.insert(location) }
        if let string = tape.member(constant, "sval") { return tape.string(tape.member(string, "sval")) ?? "" }
        if let integer = tape.member(constant, "ival") { return String(tape.int(tape.member(integer, "ival")) ?? 0) }
        if let float = tape.member(constant, "fval") { return tape.string(tape.member(float, "fval")) ?? "0" }
        if let boolean = tape.member(constant, "boolval") {
            return (tape.bool(tape.member(boolean, "boolval")) ?? false) ? "true" : "false"
        }
        if let bits = tape.member(constant, "bsval") { return tape.string(tape.member(bits, "bsval")) ?? "" }
        return nil
    }

    private func isNullConstant(_ index: Int) -> Bool {
        let inner = tape.member(index, "TypeCast").flatMap { tape.member($0, "arg") } ?? index
        guard let constant = tape.member(inner, "A_Const") else { return false }
        return tape.bool(tape.member(constant, "isnull")) ?? false
    }

    private mutating func table(_ f: Int, write: Bool) {
        guard let name = tape.string(tape.member(f, "relname")) else { return }
        let schema = tape.string(tape.member(f, "schemaname"))
        if !write, schema == nil, cteScopes.contains(where: { $0.contains(name) }) { return }
        let table = TableName(schema: schema, name: name)
        if write && !planOnly { tablesWritten.insert(table) } else { tablesRead.insert(table) }
    }

    private mutating func tableWritten(_ parts: [String]) {
        guard let name = parts.last else { return }
        let schema = parts.count >= 2 ? parts[parts.count - 2] : nil
        tablesWritten.insert(TableName(schema: schema, name: name))
    }

    func cteNames(_ with: Int) -> Set<String> {
        var names: Set<String> = []
        guard let ctes = tape.member(with, "ctes") else { return names }
        tape.forEachElement(ctes) { cte in
            if let body = tape.member(cte, "CommonTableExpr"), let name = tape.string(tape.member(body, "ctename")) {
                names.insert(name)
            }
        }
        return names
    }

    /// `[{"String":{"sval":"pg_catalog"}},{"String":{"sval":"now"}}]` → "pg_catalog.now".
    func qualifiedName(_ index: Int?) -> String? {
        guard let parts = strings(index), !parts.isEmpty else { return nil }
        return parts.count == 1 ? parts[0].lowercased() : parts.joined(separator: ".").lowercased()
    }

    func strings(_ index: Int?) -> [String]? {
        guard let index, tape.kind(index) == .array else { return nil }
        var parts: [String] = []
        tape.forEachElement(index) { item in
            if let string = tape.member(item, "String"), let text = tape.string(tape.member(string, "sval")) {
                parts.append(text)
            }
        }
        return parts
    }

    /// A DropStmt object: `{"List":{"items":[String...]}}`.
    func nameList(_ index: Int) -> [String]? {
        guard let list = tape.member(index, "List") else { return nil }
        return strings(tape.member(list, "items"))
    }

    /// "OBJECT_MATVIEW" → "materialized_view", "OBJECT_TABLE" → "table".
    func objectType(_ index: Int?) -> String? {
        guard let text = tape.string(index), text.hasPrefix("OBJECT_") else { return nil }
        let name = text.dropFirst("OBJECT_".count).lowercased()
        return name == "matview" ? "materialized_view" : name
    }

    static func snakeCase(_ text: String) -> String {
        var output = ""
        for character in text {
            if character.isUppercase, !output.isEmpty { output.append("_") }
            output.append(contentsOf: character.lowercased())
        }
        return output
    }
}
