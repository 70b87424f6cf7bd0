import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehousePolicy
import GatehouseSessions
import GatehouseStore
import Logging
import MCP
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle

/// Limits on what one tool call answers with.
public struct MCPLimits: Sendable {
    /// Rows a `query` returns at most; more are counted and said to be left out.
    public var maxRows = 200
    /// Bytes of cell values a `query` returns at most.
    public var maxBytes = 256 * 1024
    /// How often an agent waiting on a held statement hears that it still waits.
    public var progressInterval: Duration = .seconds(2)
    /// An MCP session unused this long is closed.
    public var idleTimeout: Duration = .seconds(3600)
    /// MCP sessions one principal may have open at once.
    public var sessionsPerPrincipal = 16

    public init() {}
}

/// The gateway's MCP server, served over streamable HTTP at `/mcp`.
///
/// Every request carries a bearer token (a user's access token, or a service account's API token),
/// checked on each request. Tools run their SQL through the gateway's own PostgreSQL listener, as the
/// principal, with a one-time agent ticket: the statement is judged by the same guardrails as a psql
/// session's, held for step-up or approval the same way, audited the same way, and ends with the same
/// grants and kills. A held call stays open while a person decides, with progress notifications.
public actor MCPGateway {
    private let connections: [Connection]
    private let tokens: TokenService
    private let tickets: AgentTickets
    private let stepUp: StepUpService?
    private let guardrails: Guardrails?
    private let store: any GatehouseStore
    private let proxyHost: String
    private let proxyPort: Int
    private let limits: MCPLimits
    private let logger: Logger
    /// Other MCP servers whose tools are relayed.
    nonisolated let upstreams: MCPUpstreams?
    private var sessions: [String: AgentSession] = [:]

    public init(
        connections: [Connection], tokens: TokenService, tickets: AgentTickets, stepUp: StepUpService?,
        guardrails: Guardrails? = nil, store: any GatehouseStore, proxyHost: String, proxyPort: Int,
        limits: MCPLimits = MCPLimits(), upstreams: MCPUpstreams? = nil, logger: Logger
    ) {
        self.upstreams = upstreams
        self.connections = connections
        self.tokens = tokens
        self.tickets = tickets
        self.stepUp = stepUp
        self.guardrails = guardrails
        self.store = store
        // A listener on every address is reached on loopback.
        self.proxyHost = ["0.0.0.0", "::", "[::]", "*"].contains(proxyHost) ? "127.0.0.1" : proxyHost
        self.proxyPort = proxyPort
        self.limits = limits
        self.logger = logger
    }

    public static let endpoint = "/mcp"

    /// Answers one HTTP request to `/mcp`.
    /// `source`: the address the request came from (the sessions its tools open are from there).
    public func handle(_ request: MCP.HTTPRequest, source: String? = nil) async -> MCP.HTTPResponse {
        guard let header = request.header("Authorization"), header.lowercased().hasPrefix("bearer "),
            case let token = String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces),
            !token.isEmpty
        else {
            return Self.unauthorized("send a Gatehouse token as `Authorization: Bearer TOKEN` (`gatehouse token`)")
        }
        let claims: TokenClaims
        do { claims = try await tokens.verify(token, kind: .access) } catch {
            return Self.unauthorized("the token is refused: \(error)")
        }
        await sweep()
        if let id = request.header(HTTPHeaderName.sessionID) {
            guard let session = sessions[id] else {
                return .error(statusCode: 404, .invalidRequest("no such MCP session (it ended or expired): initialize again"))
            }
            guard session.principal == claims.sub else {
                return .error(statusCode: 403, .invalidRequest("this MCP session belongs to another principal"))
            }
            session.touch(claims, source: source)
            let response = await session.transport.handleRequest(request)
            if request.method == "DELETE" {
                sessions[id] = nil
                await session.close(reason: "the client ended it")
            }
            return response
        }
        guard request.method == "POST" else {
            return .error(statusCode: 400, .invalidRequest("no Mcp-Session-Id: initialize first (POST)"))
        }
        let own = sessions.filter { $0.value.principal == claims.sub }
        if own.count >= limits.sessionsPerPrincipal {
            // An agent that crashed leaves sessions behind: the longest idle goes, if it is idle at all.
            guard let (id, stale) = own.min(by: { $0.value.lastUsed < $1.value.lastUsed }),
                ContinuousClock.now - stale.lastUsed > .seconds(60)
            else {
                return .error(
                    statusCode: 429,
                    .invalidRequest(
                        "\(claims.sub) has \(limits.sessionsPerPrincipal) MCP sessions in use: end one (DELETE) first"))
            }
            sessions[id] = nil
            await stale.close(reason: "replaced by a new session of \(claims.sub) (\(limits.sessionsPerPrincipal) at most)")
        }
        let session = AgentSession(claims: claims, source: source, gateway: self)
        do {
            try await session.start()
        } catch {
            return .error(statusCode: 500, .internalError("cannot start an MCP session: \(error)"))
        }
        let response = await session.transport.handleRequest(request)
        if let id = response.headers[HTTPHeaderName.sessionID], id == session.id {
            sessions[id] = session
        } else {
            await session.close(reason: "not initialized")
        }
        return response
    }

    /// Ends every MCP session (the gateway stops).
    public func shutdown() async {
        await upstreams?.shutdown()
        for session in sessions.values { await session.close(reason: "the gateway stopped") }
        sessions = [:]
    }

    private func sweep() async {
        let now = ContinuousClock.now
        for (id, session) in sessions where now - session.lastUsed > limits.idleTimeout {
            sessions[id] = nil
            await session.close(reason: "idle for \(limits.idleTimeout)")
        }
    }

    static func unauthorized(_ why: String) -> MCP.HTTPResponse {
        .error(
            statusCode: 401, .invalidRequest("unauthorized: \(why)"),
            extraHeaders: ["WWW-Authenticate": "Bearer realm=\"gatehouse\""])
    }

    // MARK: What sessions read

    /// The connections a principal may use: all but those where a rule denies every statement of theirs
    /// (by who and where they are), which are not offered at all.
    nonisolated func connectionNames(user: String, groups: [String], source: String?, client: String) -> [String] {
        let policy = guardrails?.compiled
        let now = Date()
        return connections.map(\.name).sorted().filter { name in
            guard let policy else { return true }
            var context = SessionContext(
                user: user, groups: groups, connection: name, sourceAddress: source ?? "127.0.0.1", sessionStartedAt: now,
                lastActivityAt: now, now: now)
            context.agent = client
            return !policy.refusesEverything(context)
        }
    }
    nonisolated var toolLimits: MCPLimits { limits }

    nonisolated func audit(_ type: AuditEventType, session: AgentSession, connection: String? = nil, detail: [String: String]) {
        var detail = detail
        detail["client"] = session.client
        if let id = session.id { detail["mcp_session"] = id }
        let record = AuditRecord(type, actor: session.principal, connection: connection, source: "mcp", detail: detail)
        let logger = self.logger
        do {
            try store.enqueueAudit(record) { error in
                logger.error("cannot commit an MCP event to the audit log", metadata: ["error": "\(error)"])
            }
        } catch {
            logger.error("cannot record an MCP event in the audit log", metadata: ["error": "\(error)"])
        }
    }

    /// Opens a session on the gateway's own listener as the principal, with a fresh agent ticket.
    nonisolated func open(
        _ connection: String, claims: TokenClaims, client: String, source: String?,
        onSession: @escaping @Sendable (String) -> Void
    ) async throws -> PostgresConnection {
        let ticket = tickets.issue(for: claims, client: client, source: source, onSession: onSession)
        var configuration = PostgresConnection.Configuration(
            host: proxyHost, port: proxyPort, username: claims.sub, password: ticket, database: connection, tls: .disable)
        configuration.options.additionalStartupParameters = [("application_name", "mcp:\(client)".prefix(63).description)]
        return try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 1, logger: logger)
    }

    /// The pending challenge that holds a statement of the gateway session `session`, if any.
    nonisolated func pendingChallenge(session: String, user: String) async -> Challenge? {
        guard let stepUp else { return nil }
        return await stepUp.challenges(for: user, groups: [], all: true).first { $0.session == session }
    }
}

/// Ends the MCP sessions when the gateway stops, before the HTTP listener drains its requests (an
/// open event stream would otherwise hold it). Listed after the HTTP service, it is stopped before it.
public struct MCPShutdown: Service {
    let gateway: MCPGateway

    public init(_ gateway: MCPGateway) { self.gateway = gateway }

    public func run() async throws {
        try? await gracefulShutdown()
        await gateway.shutdown()
    }
}
