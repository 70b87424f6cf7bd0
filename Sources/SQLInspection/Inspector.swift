import Foundation

/// Turns SQL text into statement facts by walking PostgreSQL's parse tree.
///
/// Fails closed: a node type it does not recognise as a statement makes the kind `unknown`; text the
/// parser refuses is reported, never guessed at.
public enum Inspector {
    /// Functions that run SQL given to them as text: their effect cannot be known from the statement.
    public static let dynamicSQLFunctions: Set<String> = [
        "dblink", "dblink_exec", "dblink_send_query", "dblink_open", "dblink_fetch", "query_to_xml",
        "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
    ]

    public static func inspect(_ sql: String) -> Inspection {
        let json: Data
        switch PostgresParser.parseJSON(sql) {
        case .failure(let error): return Inspection(statements: [], parseError: error)
        case .success(let data): json = data
        }
        guard let root = (try? JSONSerialization.jsonObject(with: json)) as? [String: Any],
            let statements = root["stmts"] as? [Any]
        else {
            return Inspection(statements: [], parseError: ParseError(message: "unreadable parse tree", position: 0))
        }
        let utf8 = Array(sql.utf8)
        var result: [StatementFacts] = []
        for case let entry as [String: Any] in statements {
            let location = (entry["stmt_location"] as? NSNumber)?.intValue ?? 0
            let length = (entry["stmt_len"] as? NSNumber)?.intValue ?? 0
            let start = min(max(0, location), utf8.count)
            let end = length > 0 ? min(utf8.count, start + length) : utf8.count
            let text = String(decoding: utf8[start..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            var walker = Walker()
            walker.statement(entry["stmt"])
            var facts = StatementFacts(
                text: text, primary: walker.primary ?? .unknown,
                fingerprint: PostgresParser.fingerprint(text) ?? "")
            facts.kinds = walker.kinds.isEmpty ? [.unknown] : walker.kinds.union([facts.primary])
            facts.objectTypes = walker.objectTypes
            facts.tablesRead = walker.tablesRead
            facts.tablesWritten = walker.tablesWritten
            facts.functions = walker.functions
            facts.wherelessWrite = walker.wherelessWrite
            facts.copyProgram = walker.copyProgram
            facts.dynamic = walker.dynamic
            facts.preparedName = walker.preparedName
            result.append(facts)
        }
        return Inspection(statements: result)
    }
}

/// One pass over one statement's tree.
struct Walker {
    var primary: StatementKind?
    var kinds: Set<StatementKind> = []
    var objectTypes: Set<String> = []
    var tablesRead: Set<TableName> = []
    var tablesWritten: Set<TableName> = []
    var functions: Set<String> = []
    var wherelessWrite = false
    var copyProgram = false
    var dynamic = false
    var preparedName: String?

    /// CTE names visible at the current point, innermost scope last.
    private var cteScopes: [Set<String>] = []
    /// Inside EXPLAIN without ANALYZE: the inner statement is planned, not run.
    private var planOnly = false
    private var depth = 0

    mutating func statement(_ value: Any?) {
        node(value, write: false)
    }

    private mutating func add(_ kind: StatementKind) {
        if planOnly && kind != .explain { return }
        if primary == nil { primary = kind }
        kinds.insert(kind)
    }

    private mutating func node(_ value: Any?, write: Bool) {
        if let array = value as? [Any] {
            for element in array { node(element, write: write) }
        } else if let dictionary = value as? [String: Any] {
            if dictionary.count == 1, let (type, body) = dictionary.first, type.first?.isUppercase == true {
                // A node: {"TypeName": {fields}}.
                if let fields = body as? [String: Any] {
                    visit(type, fields, write: write)
                } else if let list = body as? [Any] {
                    node(list, write: write)
                }
            } else if dictionary["relname"] != nil {
                // A struct-typed field holding a RangeVar without its wrapper (e.g. `relation`).
                visit("RangeVar", dictionary, write: write)
            } else if dictionary["funcname"] != nil {
                visit("FuncCall", dictionary, write: write)
            } else {
                children(dictionary, write: write)
            }
        }
    }

    /// Visits every field of a node except `skipping`.
    private mutating func children(_ fields: [String: Any], skipping: Set<String> = [], write: Bool = false) {
        for (key, value) in fields where !skipping.contains(key) {
            if value is [String: Any] || value is [Any] {
                node(value, write: write)
            }
        }
    }

    private mutating func visit(_ type: String, _ f: [String: Any], write: Bool) {
        depth += 1
        defer { depth -= 1 }
        // A WITH clause scopes its CTE names over the statement that carries it.
        var pushedScope = false
        if let with = f["withClause"] as? [String: Any] {
            cteScopes.append(Self.cteNames(with))
            pushedScope = true
        }
        defer { if pushedScope { cteScopes.removeLast() } }

        switch type {
        case "RangeVar":
            table(f, write: write)
        case "SelectStmt":
            // Nested SELECTs (subqueries, VALUES lists, INSERT ... SELECT) only read: their tables say so.
            if depth == 1 { add(.select) }
            if let into = f["intoClause"] as? [String: Any] {
                add(.create)
                objectTypes.insert("table")
                node(into["rel"].map { ["RangeVar": $0] }, write: true)
            }
            children(f, skipping: ["intoClause"])
        case "InsertStmt":
            add(.insert)
            node(wrapRangeVar(f["relation"]), write: true)
            children(f, skipping: ["relation"])
        case "UpdateStmt", "DeleteStmt":
            add(type == "UpdateStmt" ? .update : .delete)
            if f["whereClause"] == nil { wherelessWrite = true }
            node(wrapRangeVar(f["relation"]), write: true)
            children(f, skipping: ["relation"])
        case "MergeStmt":
            add(.merge)
            node(wrapRangeVar(f["relation"]), write: true)
            children(f, skipping: ["relation"])
        case "TruncateStmt":
            add(.truncate)
            node(f["relations"], write: true)
        case "CopyStmt":
            let from = (f["is_from"] as? Bool) ?? false
            add(from ? .copyFrom : .copyTo)
            if (f["is_program"] as? Bool) ?? false { copyProgram = true }
            node(wrapRangeVar(f["relation"]), write: from)
            children(f, skipping: ["relation"])
        case "ExplainStmt":
            add(.explain)
            let analyze = (f["options"] as? [Any] ?? []).contains { option in
                ((option as? [String: Any])?["DefElem"] as? [String: Any])?["defname"] as? String == "analyze"
            }
            if analyze {
                node(f["query"], write: false)
            } else {
                let outer = planOnly
                planOnly = true
                node(f["query"], write: false)
                planOnly = outer
            }
        case "DoStmt":
            add(.do)
            dynamic = true
        case "CallStmt":
            add(.call)
            children(f)
        case "FuncCall":
            if let name = Self.qualifiedName(f["funcname"]) {
                functions.insert(name)
                let bare = name.split(separator: ".").last.map(String.init) ?? name
                if Inspector.dynamicSQLFunctions.contains(bare) { dynamic = true }
            }
            children(f, skipping: ["funcname"])
        case "PrepareStmt":
            add(.prepare)
            if depth == 1 { preparedName = f["name"] as? String }
            node(f["query"], write: false)
        case "ExecuteStmt":
            // Runs a statement prepared earlier; the session layer knows which one, the text does not.
            add(.execute)
            dynamic = true
            if depth == 1 { preparedName = f["name"] as? String }
            children(f)
        case "DeallocateStmt":
            add(.deallocate)
            if depth == 1 { preparedName = f["name"] as? String }
        case "DeclareCursorStmt":
            add(.cursor)
            node(f["query"], write: false)
        case "FetchStmt", "ClosePortalStmt":
            add(.cursor)
        case "TransactionStmt":
            add(.transaction)
        case "VariableSetStmt":
            let name = (f["name"] as? String ?? "").lowercased()
            if name == "role" || name == "session_authorization" || name == "session authorization" {
                add(.setRole)
            } else if (f["kind"] as? String) == "VAR_RESET" || (f["kind"] as? String) == "VAR_RESET_ALL" {
                add(.reset)
            } else {
                add(.set)
            }
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
            node(f["relations"], write: false)
        case "VacuumStmt":
            add((f["is_vacuumcmd"] as? Bool) ?? false ? .vacuum : .analyze)
            children(f, write: true)
        case "LoadStmt":
            add(.load)
        case "CheckPointStmt":
            add(.utility)
        case "GrantStmt":
            add((f["is_grant"] as? Bool) ?? false ? .grant : .revoke)
            objectTypes.insert(Self.objectType(f["objtype"]) ?? "object")
            node(f["objects"], write: true)
        case "GrantRoleStmt":
            add((f["is_grant"] as? Bool) ?? false ? .grant : .revoke)
            objectTypes.insert("role")
        case "DropStmt":
            add(.drop)
            let object = Self.objectType(f["removeType"]) ?? "object"
            objectTypes.insert(object)
            if ["table", "view", "materialized_view", "foreign_table", "sequence"].contains(object) {
                for name in (f["objects"] as? [Any]) ?? [] {
                    if let parts = Self.nameList(name) { tableWritten(parts) }
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
            node(wrapRangeVar(f["relation"]), write: true)
            children(f, skipping: ["relation"])
        case "CreateTableAsStmt":
            add(.create)
            objectTypes.insert(Self.objectType(f["objtype"]) ?? "table")
            if let into = f["into"] as? [String: Any] { node(into["rel"].map { ["RangeVar": $0] }, write: true) }
            node(f["query"], write: false)
        case "ViewStmt":
            add(.create)
            objectTypes.insert("view")
            node(wrapRangeVar(f["view"]), write: true)
            node(f["query"], write: false)
        case "IndexStmt":
            add(.create)
            objectTypes.insert("index")
            node(wrapRangeVar(f["relation"]), write: true)
        case "AlterTableStmt":
            add(.alter)
            objectTypes.insert(Self.objectType(f["objtype"]) ?? "table")
            node(wrapRangeVar(f["relation"]), write: true)
            children(f, skipping: ["relation"])
        case "RenameStmt", "AlterObjectSchemaStmt", "AlterOwnerStmt":
            add(.alter)
            objectTypes.insert(Self.objectType(f["renameType"] ?? f["objectType"]) ?? "object")
            node(wrapRangeVar(f["relation"]), write: true)
        case "CreateFunctionStmt":
            add(.create)
            objectTypes.insert((f["is_procedure"] as? Bool) ?? false ? "procedure" : "function")
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
            node(wrapRangeVar(f["sequence"]), write: true)
        case "AlterSeqStmt":
            add(.alter)
            objectTypes.insert("sequence")
            node(wrapRangeVar(f["sequence"]), write: true)
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
            node(wrapRangeVar(f["relation"]), write: true)
        case "RuleStmt":
            add(.create)
            objectTypes.insert("rule")
            node(wrapRangeVar(f["relation"]), write: true)
        case "CreatePolicyStmt", "AlterPolicyStmt":
            add(type == "CreatePolicyStmt" ? .create : .alter)
            objectTypes.insert("policy")
            node(wrapRangeVar(f["table"]), write: true)
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
        case "CommonTableExpr":
            children(f)
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

    private func wrapRangeVar(_ value: Any?) -> Any? {
        value.map { ["RangeVar": $0] }
    }

    private mutating func table(_ f: [String: Any], write: Bool) {
        guard let name = f["relname"] as? String else { return }
        let schema = f["schemaname"] as? String
        if !write, schema == nil, cteScopes.contains(where: { $0.contains(name) }) { return }
        let table = TableName(schema: schema, name: name)
        if write && !planOnly { tablesWritten.insert(table) } else { tablesRead.insert(table) }
    }

    private mutating func tableWritten(_ parts: [String]) {
        guard let name = parts.last else { return }
        let schema = parts.count >= 2 ? parts[parts.count - 2] : nil
        tablesWritten.insert(TableName(schema: schema, name: name))
    }

    static func cteNames(_ with: [String: Any]) -> Set<String> {
        var names: Set<String> = []
        for case let cte as [String: Any] in (with["ctes"] as? [Any]) ?? [] {
            if let body = cte["CommonTableExpr"] as? [String: Any], let name = body["ctename"] as? String {
                names.insert(name)
            }
        }
        return names
    }

    /// `[{"String":{"sval":"pg_catalog"}},{"String":{"sval":"now"}}]` → "pg_catalog.now".
    static func qualifiedName(_ value: Any?) -> String? {
        guard let parts = strings(value), !parts.isEmpty else { return nil }
        return parts.joined(separator: ".").lowercased()
    }

    static func strings(_ value: Any?) -> [String]? {
        guard let items = value as? [Any] else { return nil }
        var parts: [String] = []
        for case let item as [String: Any] in items {
            if let string = item["String"] as? [String: Any], let text = string["sval"] as? String { parts.append(text) }
        }
        return parts
    }

    /// A DropStmt object: `{"List":{"items":[String...]}}`.
    static func nameList(_ value: Any) -> [String]? {
        guard let node = value as? [String: Any], let list = node["List"] as? [String: Any] else { return nil }
        return strings(list["items"])
    }

    /// "OBJECT_MATVIEW" → "materialized_view", "OBJECT_TABLE" → "table".
    static func objectType(_ value: Any?) -> String? {
        guard let text = value as? String, text.hasPrefix("OBJECT_") else { return nil }
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
