import Foundation
import GatehouseCore
import MCP
import NIOCore
import PostgresNIO

/// The tools an agent sees, how their arguments are read, and how results and refusals are worded.
enum MCPTools {
    enum Tool: String, CaseIterable, Sendable {
        case query, listTables = "list_tables", describeTable = "describe_table", explain
    }

    struct Request: Sendable {
        var tool: Tool
        var connection: String
        /// The agent's own SQL, for `query` and `explain`.
        var sql: String?
        var query: PostgresQuery
    }

    struct ArgumentError: Error {
        var message: String
    }

    static func list(connections: [String], limits: MCPLimits) -> [MCP.Tool] {
        let connection: Value = .object([
            "type": "string", "enum": .array(connections.map { .string($0) }),
            "description": "The database, by its Gatehouse connection name.",
        ])
        func schema(_ properties: [String: Value], required: [String]) -> Value {
            var all = properties
            all["connection"] = connection
            return .object([
                "type": "object", "properties": .object(all), "required": .array((["connection"] + required).map { .string($0) }),
                "additionalProperties": false,
            ])
        }
        let sql: Value = .object(["type": "string", "description": "One SQL statement."])
        return [
            MCP.Tool(
                name: Tool.query.rawValue, title: "Run SQL",
                description: """
                    Runs one SQL statement through Gatehouse and returns its columns (with their PostgreSQL types) and \
                    rows, at most \(limits.maxRows) rows and \(limits.maxBytes / 1024) KiB. Gatehouse judges it as it \
                    judges every session: a refusal says the rule and what to do instead; a statement that needs a \
                    person's approval or a second factor waits (with progress notifications) until it is decided.
                    """,
                inputSchema: schema(["sql": sql], required: ["sql"]),
                annotations: .init(destructiveHint: true, openWorldHint: false)),
            MCP.Tool(
                name: Tool.listTables.rawValue, title: "List tables",
                description: "Lists the tables and views of a database (all schemas but the system's, or one schema).",
                inputSchema: schema(
                    ["schema": .object(["type": "string", "description": "Only this schema."])], required: []),
                annotations: .init(readOnlyHint: true, openWorldHint: false)),
            MCP.Tool(
                name: Tool.describeTable.rawValue, title: "Describe a table",
                description: "The columns of a table or view: name, type, whether it may be null, its default.",
                inputSchema: schema(
                    ["table": .object(["type": "string", "description": "The table, as schema.table or table."])],
                    required: ["table"]),
                annotations: .init(readOnlyHint: true, openWorldHint: false)),
            MCP.Tool(
                name: Tool.explain.rawValue, title: "Explain SQL",
                description: "PostgreSQL's plan for one statement (EXPLAIN, which does not run it).",
                inputSchema: schema(["sql": sql], required: ["sql"]),
                annotations: .init(readOnlyHint: true, openWorldHint: false)),
        ]
    }

    static func parse(
        _ name: String, _ arguments: [String: Value], connections: [String]
    ) -> Result<Request, ArgumentError> {
        guard let tool = Tool(rawValue: name) else {
            return .failure(
                ArgumentError(
                    message: "no tool named '\(name)': the tools are \(Tool.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        guard case .string(let connection)? = arguments["connection"] else {
            return .failure(ArgumentError(message: "`connection` is required: one of \(connections.joined(separator: ", "))"))
        }
        guard connections.contains(connection) else {
            return .failure(
                ArgumentError(
                    message: "no connection named '\(connection)': the connections are \(connections.joined(separator: ", "))"))
        }
        func text(_ key: String) -> Result<String, ArgumentError> {
            guard case .string(let value)? = arguments[key], !value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            else { return .failure(ArgumentError(message: "`\(key)` is required and may not be empty")) }
            return .success(value)
        }
        let allowed: Set<String> =
            switch tool {
            case .query, .explain: ["connection", "sql"]
            case .listTables: ["connection", "schema"]
            case .describeTable: ["connection", "table"]
            }
        if let extra = arguments.keys.sorted().first(where: { !allowed.contains($0) }) {
            return .failure(ArgumentError(message: "\(name) takes no argument `\(extra)`"))
        }
        switch tool {
        case .query:
            return text("sql").map { Request(tool: tool, connection: connection, sql: $0, query: PostgresQuery(unsafeSQL: $0)) }
        case .explain:
            return text("sql").map {
                Request(tool: tool, connection: connection, sql: $0, query: PostgresQuery(unsafeSQL: "EXPLAIN " + $0))
            }
        case .listTables:
            var sql = """
                SELECT table_schema, table_name, table_type FROM information_schema.tables
                WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
                """
            if let schema = arguments["schema"] {
                guard case .string(let name) = schema else {
                    return .failure(ArgumentError(message: "`schema` must be a string"))
                }
                sql += " AND table_schema = \(RoleSQL.literal(name))"
            }
            sql += " ORDER BY 1, 2"
            return .success(Request(tool: tool, connection: connection, sql: nil, query: PostgresQuery(unsafeSQL: sql)))
        case .describeTable:
            return text("table").map { table in
                let sql = """
                    SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type,
                      NOT a.attnotnull AS nullable, pg_get_expr(d.adbin, d.adrelid) AS default_value
                    FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                    WHERE a.attrelid = to_regclass(\(RoleSQL.literal(table))) AND a.attnum > 0 AND NOT a.attisdropped
                    ORDER BY a.attnum
                    """
                return Request(tool: tool, connection: connection, sql: nil, query: PostgresQuery(unsafeSQL: sql))
            }
        }
    }

    // MARK: Resources

    static func resourceURI(_ connection: String, _ schema: String, _ table: String) -> String {
        func part(_ text: String) -> String {
            text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/.")))
                ?? text
        }
        return "gatehouse://\(part(connection))/\(part(schema)).\(part(table))"
    }

    /// The connection, schema and table a resource URI names.
    static func parseResourceURI(_ uri: String) -> (String, String, String)? {
        guard uri.hasPrefix("gatehouse://") else { return nil }
        let path = uri.dropFirst("gatehouse://".count).split(separator: "/", omittingEmptySubsequences: false)
        guard path.count == 2 else { return nil }
        let names = path[1].split(separator: ".", omittingEmptySubsequences: false)
        guard names.count == 2, let connection = String(path[0]).removingPercentEncoding,
            let schema = String(names[0]).removingPercentEncoding, let table = String(names[1]).removingPercentEncoding,
            !connection.isEmpty, !schema.isEmpty, !table.isEmpty
        else { return nil }
        return (connection, schema, table)
    }

    // MARK: Results

    static func result(_ request: Request, rows: RowCollector.Rows, command: String, rowCount: Int?) -> CallTool.Result {
        if request.tool == .describeTable, rows.seen == 0 {
            return errorResult("no table or view named '\(request.sql ?? "")' that you may see")
        }
        if request.tool == .explain {
            let plan = rows.rows.compactMap { $0.first.flatMap { if case .string(let line) = $0 { line } else { nil } } }
            return CallTool.Result(
                content: [.text(text: plan.joined(separator: "\n"), annotations: nil, _meta: nil)], structuredContent: nil,
                isError: false)
        }
        var object: [String: Value] = [
            "command": .string(command),
            "columns": .array(rows.columns.map { .object(["name": .string($0.name), "type": .string($0.type)]) }),
            "rows": .array(rows.rows.map { .array($0) }),
        ]
        if let rowCount { object["row_count"] = .int(rowCount) }
        if let truncated = rows.truncated {
            object["truncated"] = .string("\(truncated) of \(rows.seen)")
        }
        let structured = Value.object(object)
        let text = (try? String(decoding: JSONEncoder.sorted.encode(structured), as: UTF8.self)) ?? "{}"
        return CallTool.Result(
            content: [.text(text: text, annotations: nil, _meta: nil)], structuredContent: Optional<Value>.some(structured),
            isError: false)
    }

    static func errorResult(_ message: String) -> CallTool.Result {
        CallTool.Result(content: [.text(text: message, annotations: nil, _meta: nil)], structuredContent: nil, isError: true)
    }

    /// A refusal or an error as the agent reads it: the server's (or Gatehouse's) message, its code,
    /// and the hint, which says what to do instead.
    static func describe(_ error: Error, connecting connection: String?) -> String {
        let prefix = connection.map { "cannot open a session on \($0): " } ?? ""
        guard let error = error as? PSQLError else { return prefix + "\(error)" }
        guard let info = error.serverInfo, let message = info[.message] else {
            return prefix + "\(error.code)"
        }
        var lines = [prefix + message]
        if let code = info[.sqlState] { lines[0] += " (SQLSTATE \(code))" }
        if let detail = info[.detail] { lines.append("detail: \(detail)") }
        if let hint = info[.hint] { lines.append("hint: \(hint)") }
        return lines.joined(separator: "\n")
    }

    static func holdMessage(_ challenge: Challenge) -> String {
        let rules = challenge.rules.joined(separator: ", ")
        switch challenge.kind {
        case .approve:
            return
                "held for approval by rule \(rules): a person may approve it with `gatehouse approve \(challenge.id)` (expires \(Timestamp.format(challenge.expiresAt)))"
        case .stepUp:
            return
                "held until \(challenge.user) proves a second factor (rule \(rules)): `gatehouse verify \(challenge.id) CODE` (expires \(Timestamp.format(challenge.expiresAt)))"
        }
    }

    // MARK: Values

    static func typeName(_ type: PostgresDataType) -> String {
        switch type {
        case .bool: "boolean"
        case .int2: "smallint"
        case .int4: "integer"
        case .int8: "bigint"
        case .float4: "real"
        case .float8: "double precision"
        case .numeric: "numeric"
        case .text: "text"
        case .varchar: "character varying"
        case .bpchar: "character"
        case .name: "name"
        case .uuid: "uuid"
        case .json: "json"
        case .jsonb: "jsonb"
        case .date: "date"
        case .timestamp: "timestamp without time zone"
        case .timestamptz: "timestamp with time zone"
        case .bytea: "bytea"
        case .oid: "oid"
        default: "oid \(type.rawValue)"
        }
    }

    /// A cell as JSON: numbers and booleans as such, times in ISO 8601, the rest as PostgreSQL's text.
    static func value(_ cell: PostgresCell) -> Value {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .bool: if let value = try? cell.decode(Bool.self) { return .bool(value) }
        case .int2, .int4, .int8, .oid: if let value = try? cell.decode(Int.self) { return .int(value) }
        case .float4, .float8: if let value = try? cell.decode(Double.self) { return .double(value) }
        case .uuid: if let value = try? cell.decode(UUID.self) { return .string(value.uuidString.lowercased()) }
        case .timestamp, .timestamptz, .date:
            if let value = try? cell.decode(Date.self) { return .string(Timestamp.format(value)) }
        case .bytea:
            if let value = try? cell.decode(ByteBuffer.self) {
                return .string("\\x" + value.readableBytesView.map { String(format: "%02x", $0) }.joined())
            }
        default: break
        }
        if let text = try? cell.decode(String.self) { return .string(text) }
        if cell.format == .text, var bytes = cell.bytes, let text = bytes.readString(length: bytes.readableBytes) {
            return .string(text)
        }
        return .string("(\(typeName(cell.dataType)) value)")
    }

    static func size(_ value: Value) -> Int {
        switch value {
        case .string(let text): text.utf8.count + 2
        case .null: 4
        default: 8
        }
    }
}

extension JSONEncoder {
    static let sorted: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
