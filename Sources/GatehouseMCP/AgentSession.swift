import Foundation
import GatehouseAuth
import GatehouseCore
import Logging
import MCP
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO

/// One agent's MCP session: its transport and server, who it is, and the gateway sessions its tools
/// opened (one per database connection, kept between calls as a psql session would be).
final class AgentSession: Sendable {
    private struct State {
        var claims: TokenClaims
        /// Where its requests come from (the latest).
        var source: String?
        var client = "unknown"
        var id: String?
        var lastUsed = ContinuousClock.now
        var databases: [String: PostgresConnection] = [:]
        /// The gateway's session id behind each database connection.
        var gatewaySessions: [String: String] = [:]
        var closed = false
        /// The client said who it is (`initialize`): the session started.
        var initialized = false
    }

    let principal: String
    let transport: StatefulHTTPServerTransport
    let server: Server
    private unowned(unsafe) let gateway: MCPGateway
    private let state: NIOLockedValueBox<State>
    /// One tool call at a time per database connection, as a client speaks on one session.
    private let calls = CallQueue()

    init(claims: TokenClaims, source: String?, gateway: MCPGateway) {
        self.principal = claims.sub
        self.gateway = gateway
        // Every request is authenticated by its bearer token before it reaches the transport, so an
        // Origin check adds nothing (a page elsewhere cannot make a browser send the token).
        let id = UUID().uuidString.lowercased()
        self.state = NIOLockedValueBox(State(claims: claims, source: source, id: id))
        self.transport = StatefulHTTPServerTransport(
            sessionIDGenerator: FixedSessionID(id: id),
            validationPipeline: StandardValidationPipeline(validators: [
                AcceptHeaderValidator(mode: .sseRequired), ContentTypeValidator(), ProtocolVersionValidator(),
                SessionValidator(),
            ]))
        self.server = Server(
            name: "gatehouse", version: "0.1.0", title: "Gatehouse",
            instructions: """
                SQL you send runs through Gatehouse, as the person or service account whose token you hold, and is \
                judged by the same rules as any session: a statement may be refused (the result says which rule and \
                what to do instead) or held until a person approves it or its owner proves a second factor (the call \
                stays open and reports progress meanwhile).
                """,
            capabilities: .init(resources: .init(subscribe: false, listChanged: false), tools: .init(listChanged: false)))
    }

    var id: String? { state.withLockedValue { $0.id } }
    var client: String { state.withLockedValue { $0.client } }
    var lastUsed: ContinuousClock.Instant { state.withLockedValue { $0.lastUsed } }

    /// The connections this principal may use, as the policy in force says now.
    var connections: [String] {
        let (claims, source, client) = state.withLockedValue { ($0.claims, $0.source, $0.client) }
        return gateway.connectionNames(user: claims.sub, groups: claims.groups, source: source, client: client)
    }

    /// A later request of the session, with its own (checked) token.
    func touch(_ claims: TokenClaims, source: String?) {
        state.withLockedValue {
            $0.claims = claims
            $0.source = source
            $0.lastUsed = .now
        }
    }

    func start() async throws {
        let gateway = self.gateway
        await server.withMethodHandler(ListTools.self) { [weak self] _ in
            let own = MCPTools.list(connections: self?.connections ?? [], limits: gateway.toolLimits)
            return ListTools.Result(tools: own + (await gateway.upstreams?.tools() ?? []))
        }
        await server.withMethodHandler(ListResources.self) { [weak self] _ in
            guard let self else { return ListResources.Result(resources: []) }
            return ListResources.Result(resources: await self.tables())
        }
        await server.withMethodHandler(ReadResource.self) { [weak self] params in
            guard let self else { throw MCPError.internalError("the session ended") }
            return try await self.read(params.uri)
        }
        await server.withMethodHandler(CallTool.self) { [weak self] params in
            guard let self else {
                return CallTool.Result(content: [.text(text: "the session ended", annotations: nil, _meta: nil)], isError: true)
            }
            return await self.call(params)
        }
        try await server.start(transport: transport) { [weak self] info, _ in
            guard let self else { return }
            self.state.withLockedValue {
                $0.client = String(info.name.prefix(100))
                $0.initialized = true
            }
            gateway.audit(.mcpSessionStart, session: self, detail: ["client_version": String(info.version.prefix(50))])
        }
    }

    func close(reason: String) async {
        let (databases, wasClosed) = state.withLockedValue { state -> ([PostgresConnection], Bool) in
            defer {
                state.closed = true
                state.databases = [:]
            }
            return (Array(state.databases.values), state.closed)
        }
        guard !wasClosed else { return }
        for database in databases { try? await database.close() }
        await server.stop()
        await transport.disconnect()
        if state.withLockedValue({ $0.initialized }) {
            gateway.audit(.mcpSessionEnd, session: self, detail: ["reason": reason])
        }
    }

    // MARK: Resources: the tables, each with its columns

    /// Every table and view the principal may see, per connection (read through the gateway, judged).
    private func tables() async -> [Resource] {
        var resources: [Resource] = []
        for connection in connections {
            guard
                case .success(let request) = MCPTools.parse(
                    "list_tables", ["connection": .string(connection)], connections: [connection])
            else { continue }
            let rows = await calls.run(connection) { await self.rows(request) }
            guard let rows else { continue }
            for row in rows.rows {
                guard row.count >= 2, case .string(let schema) = row[0], case .string(let table) = row[1] else { continue }
                resources.append(
                    Resource(
                        name: "\(connection): \(schema).\(table)", uri: MCPTools.resourceURI(connection, schema, table),
                        description: "The columns of \(schema).\(table) on \(connection)", mimeType: "application/json"))
            }
        }
        return resources
    }

    private func read(_ uri: String) async throws -> ReadResource.Result {
        guard let (connection, schema, table) = MCPTools.parseResourceURI(uri), connections.contains(connection) else {
            throw MCPError.invalidParams("no such resource: \(uri) (resources/list names them)")
        }
        let name = RoleSQL.identifier(schema) + "." + RoleSQL.identifier(table)
        guard
            case .success(let request) = MCPTools.parse(
                "describe_table", ["connection": .string(connection), "table": .string(name)], connections: [connection])
        else { throw MCPError.invalidParams("no such resource: \(uri)") }
        let result = await calls.run(connection) { await self.run(request, progress: nil) }
        gateway.audit(
            .mcpToolCall, session: self, connection: connection,
            detail: [
                "tool": "resources/read", "uri": String(uri.prefix(500)), "outcome": result.isError == true ? "error" : "ok",
            ])
        guard case .text(let text, _, _)? = result.content.first else { throw MCPError.internalError("no content") }
        if result.isError == true { throw MCPError.invalidRequest(text) }
        return ReadResource.Result(contents: [.text(text, uri: uri, mimeType: "application/json")])
    }

    /// A catalogue query's rows, or nil when it was refused or failed.
    private func rows(_ request: MCPTools.Request) async -> RowCollector.Rows? {
        guard let database = try? await database(request.connection) else { return nil }
        let collector = RowCollector(limits: gateway.toolLimits)
        do {
            _ = try await database.query(request.query, logger: Logger(label: "gatehouse.mcp")) { collector.add($0) }.get()
            return collector.finish()
        } catch {
            if database.isClosed { forget(request.connection) }
            return nil
        }
    }

    // MARK: Tool calls

    private func call(_ params: CallTool.Parameters) async -> CallTool.Result {
        state.withLockedValue { $0.lastUsed = .now }
        if let upstreams = gateway.upstreams, upstreams.relays(params.name) {
            let progress = params._meta?.progressToken
            let server = self.server
            return await upstreams.call(
                params.name, arguments: params.arguments ?? [:], principal: principal, client: client, session: id ?? ""
            ) { challenge in
                // A held relayed call: the agent hears once that a person decides, and how.
                guard let progress else { return }
                Task {
                    try? await server.notify(
                        ProgressNotification.message(
                            .init(progressToken: progress, progress: 1, total: nil, message: MCPTools.holdMessage(challenge))))
                }
            }
        }
        let names = connections
        let request: MCPTools.Request
        switch MCPTools.parse(params.name, params.arguments ?? [:], connections: names) {
        case .failure(let error):
            gateway.audit(
                .mcpToolCall, session: self, detail: ["tool": params.name, "outcome": "invalid", "error": error.message])
            return MCPTools.errorResult(error.message)
        case .success(let parsed): request = parsed
        }
        let progress = params._meta?.progressToken
        let result = await calls.run(request.connection) {
            await self.run(request, progress: progress)
        }
        var detail = ["tool": request.tool.rawValue, "outcome": result.isError == true ? "error" : "ok"]
        if let sql = request.sql { detail["sql"] = String(sql.prefix(2000)) }
        if result.isError == true, case .text(let text, _, _)? = result.content.first {
            detail["error"] = String(text.prefix(500))
        }
        gateway.audit(.mcpToolCall, session: self, connection: request.connection, detail: detail)
        return result
    }

    private func run(_ request: MCPTools.Request, progress: ProgressToken?) async -> CallTool.Result {
        let database: PostgresConnection
        do { database = try await self.database(request.connection) } catch {
            return MCPTools.errorResult(MCPTools.describe(error, connecting: request.connection))
        }
        let watcher = progress.map { token in Task { await self.reportHolds(request.connection, token: token) } }
        defer { watcher?.cancel() }
        let collector = RowCollector(limits: gateway.toolLimits)
        do {
            let metadata = try await database.query(request.query, logger: Logger(label: "gatehouse.mcp")) { row in
                collector.add(row)
            }.get()
            return MCPTools.result(request, rows: collector.finish(), command: metadata.command, rowCount: metadata.rows)
        } catch {
            if database.isClosed { forget(request.connection) }
            return MCPTools.errorResult(MCPTools.describe(error, connecting: nil))
        }
    }

    /// The session on `connection`, opened at first use (or again after it ended).
    private func database(_ connection: String) async throws -> PostgresConnection {
        if let open = state.withLockedValue({ $0.databases[connection] }), !open.isClosed { return open }
        let (claims, client, source) = state.withLockedValue { ($0.claims, $0.client, $0.source) }
        let opened = try await gateway.open(connection, claims: claims, client: client, source: source) {
            [weak self] session in
            self?.state.withLockedValue { $0.gatewaySessions[connection] = session }
        }
        let closed = state.withLockedValue { state -> Bool in
            if !state.closed { state.databases[connection] = opened }
            return state.closed
        }
        if closed {
            try? await opened.close()
            throw MCPError.internalError("the MCP session ended")
        }
        return opened
    }

    private func forget(_ connection: String) {
        state.withLockedValue {
            $0.databases[connection] = nil
            $0.gatewaySessions[connection] = nil
        }
    }

    /// While a statement runs, tells the agent when and why it is held, every `progressInterval`.
    private func reportHolds(_ connection: String, token: ProgressToken) async {
        var step = 0.0
        while !Task.isCancelled {
            try? await Task.sleep(for: gateway.toolLimits.progressInterval)
            guard !Task.isCancelled else { return }
            guard let session = state.withLockedValue({ $0.gatewaySessions[connection] }),
                let challenge = await gateway.pendingChallenge(session: session, user: principal)
            else { continue }
            step += 1
            let message = MCPTools.holdMessage(challenge)
            try? await server.notify(
                ProgressNotification.message(.init(progressToken: token, progress: step, total: nil, message: message)))
        }
    }
}

/// The session id the transport announces: chosen before it exists, so the session knows it at once.
struct FixedSessionID: SessionIDGenerator {
    let id: String
    func generateSessionID() -> String { id }
}

/// Tool calls on one database connection wait for each other (a PostgreSQL session runs one statement
/// at a time); calls on different connections go side by side.
final class CallQueue: Sendable {
    private let busy = NIOLockedValueBox<[String: [CheckedContinuation<Void, Never>]]>([:])

    func run<T: Sendable>(_ key: String, _ body: @Sendable () async -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let proceed = busy.withLockedValue { busy -> Bool in
                if busy[key] == nil {
                    busy[key] = []
                    return true
                }
                busy[key]!.append(continuation)
                return false
            }
            if proceed { continuation.resume() }
        }
        let result = await body()
        let next = busy.withLockedValue { busy -> CheckedContinuation<Void, Never>? in
            if busy[key]?.isEmpty ?? true {
                busy[key] = nil
                return nil
            }
            return busy[key]!.removeFirst()
        }
        next?.resume()
        return result
    }
}

/// Gathers a query's rows up to the limits, counting the rest.
final class RowCollector: Sendable {
    struct Rows: Sendable {
        var columns: [(name: String, type: String)] = []
        var rows: [[Value]] = []
        var seen = 0
        var bytes = 0
        var truncated: String?
    }

    private let limits: MCPLimits
    private let state = NIOLockedValueBox(Rows())

    init(limits: MCPLimits) { self.limits = limits }

    func add(_ row: PostgresRow) {
        state.withLockedValue { rows in
            rows.seen += 1
            if rows.columns.isEmpty {
                rows.columns = row.map { ($0.columnName, MCPTools.typeName($0.dataType)) }
            }
            guard rows.truncated == nil else { return }
            guard rows.rows.count < limits.maxRows else {
                rows.truncated = "only the first \(limits.maxRows) rows are shown"
                return
            }
            // Sized before it is decoded: one huge value is never copied into a string.
            let raw = row.reduce(0) { $0 + ($1.bytes?.readableBytes ?? 0) }
            guard rows.bytes + raw <= limits.maxBytes else {
                rows.truncated =
                    raw > limits.maxBytes
                    ? "row \(rows.seen) holds \(raw) bytes, more than the \(limits.maxBytes) a result may carry: select fewer or shorter columns (left(col, n)); only the first \(rows.rows.count) rows are shown"
                    : "only the first \(rows.rows.count) rows are shown (\(limits.maxBytes) bytes at most)"
                return
            }
            let values = row.map(MCPTools.value)
            let size = values.reduce(0) { $0 + MCPTools.size($1) }
            guard rows.bytes + size <= limits.maxBytes else {
                rows.truncated = "only the first \(rows.rows.count) rows are shown (\(limits.maxBytes) bytes at most)"
                return
            }
            rows.bytes += size
            rows.rows.append(values)
        }
    }

    func finish() -> Rows { state.withLockedValue { $0 } }
}
