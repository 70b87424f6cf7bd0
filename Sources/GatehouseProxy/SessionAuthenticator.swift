import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehousePolicy
import GatehouseStore
import GatehouseTelemetry
import Logging
import PostgresWire
import SQLInspection

/// Journals one session's audit records and says whether they were kept.
struct SessionRecorder: Sendable {
    let store: any GatehouseStore
    let logger: Logger

    /// Hands an event that has happened (or is about to) to the audit log without waiting for its commit:
    /// journaled before this returns. False, logged and counted, when it cannot be recorded.
    @discardableResult
    func journal(_ record: AuditRecord, _ what: String) -> Bool {
        let logger = self.logger
        do {
            try store.enqueueAudit(record) { error in
                logger.error("cannot commit \(what) to the audit log", metadata: ["error": "\(error)"])
            }
            return true
        } catch {
            Telemetry.auditFailures.increment()
            logger.error("cannot record \(what) in the audit log", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Records a session's end: it has happened, so it is journaled at once (a crash cannot lose it)
    /// and committed with the next group.
    func sessionEnded(
        _ session: String, user: String, connection: String, source: String, reason: String, after seconds: TimeInterval
    ) {
        logger.info("session ended", metadata: ["reason": "\(reason)"])
        journal(
            AuditRecord(
                .sessionEnd, actor: user, session: session, connection: connection, source: source,
                detail: ["reason": reason, "duration_seconds": String(format: "%.3f", seconds)]), "a session end")
    }
}

/// Who a client is, once its token, account and connection name were checked.
struct VerifiedClient: Sendable {
    var user: User
    var connection: Connection
    var token: TokenClaims
    /// The MCP client's name when an agent's tool call opened the session (with an agent ticket).
    var agent: String?
    /// Where the agent's HTTP request came from: the session's source, for rules and the audit log.
    var agentSource: String?
    var onSession: @Sendable (String) -> Void = { _ in }
}

/// A refusal at startup: what the client reads, and what the audit log says (it may say more).
struct StartupRefusal: Error, Sendable {
    var message: ClientMessage
    var auditReason: String

    init(_ message: ClientMessage, auditReason: String? = nil) {
        self.message = message
        self.auditReason = auditReason ?? message.fields.message ?? ""
    }
}

/// Authenticates a client and admits its session: the token, the account as it stands now, the
/// connection name, the session limits and the startup's settings, each outcome audited.
struct SessionAuthenticator: Sendable {
    let environment: ProxyEnvironment
    let recorder: SessionRecorder

    /// Checks the token, the user as they stand now, and the connection name; audits the outcome
    /// (`auth.success` or `auth.failure`) before it returns. Throws when the audit log cannot record it.
    func verify(
        _ request: StartupRequest, token: String, session: String, source: String, tls: Bool
    ) async throws -> Result<VerifiedClient, StartupRefusal> {
        let outcome = await check(request, token: token)
        var detail = ["application": request.applicationName, "tls": tls ? "true" : "false"]
        let type: AuditEventType
        switch outcome {
        case .success(let client):
            type = .authSuccess
            if let agent = client.agent { detail["agent"] = agent }
        case .failure(let refusal):
            type = .authFailure
            detail["reason"] = refusal.auditReason
        }
        _ = try await environment.store.appendAudit(
            AuditRecord(
                type, actor: request.user, session: session, connection: request.connection, source: source, detail: detail))
        return outcome
    }

    private func check(_ request: StartupRequest, token: String) async -> Result<VerifiedClient, StartupRefusal> {
        do {
            var agent: AgentTickets.Ticket?
            let claims: TokenClaims
            if token.hasPrefix(AgentTickets.prefix) {
                guard let ticket = environment.agentTickets.redeem(token) else {
                    return .failure(
                        StartupRefusal(.accountRefused("the agent ticket is not valid (each is used once, within seconds)")))
                }
                agent = ticket
                claims = ticket.claims
            } else {
                claims = try await environment.tokens.verify(token, kind: .access)
            }
            guard claims.sub == request.user else {
                return .failure(StartupRefusal(.tokenOfAnotherUser(requested: request.user, owner: claims.sub)))
            }
            switch try await environment.identities.activeUser(named: request.user) {
            case .failure(let error):
                return .failure(StartupRefusal(.accountRefused(error.description)))
            case .success(let user):
                guard let connection = environment.config.connection(named: request.connection) else {
                    let names = environment.config.connections.map(\.name).sorted()
                    return .failure(StartupRefusal(.unknownConnection(request.connection, configured: names)))
                }
                var client = VerifiedClient(user: user, connection: connection, token: claims)
                if let agent {
                    client.agent = agent.client
                    client.agentSource = agent.source
                    client.onSession = agent.onSession
                }
                return .success(client)
            }
        } catch let error as TokenError {
            return .failure(StartupRefusal(.tokenRefused(user: request.user, error), auditReason: error.description))
        } catch {
            return .failure(StartupRefusal(.accountRefused("\(error)")))
        }
    }

    /// Admits a verified client's session: within the session limits (its place is taken here), and
    /// with startup settings the policy allows, each judged as a `SET` and its decision recorded. The
    /// parameters to start the upstream session with, or the refusal (recorded as `session.refused`).
    func admit(
        _ client: VerifiedClient, request: StartupRequest, session id: String, source: String
    ) -> Result<(judge: StatementJudge, upstream: StartupParameters), ClientMessage> {
        var judge = StatementJudge(
            session: StatementJudge.Session(
                id: id, user: client.user.name, groups: client.user.groups, connection: client.connection.name,
                source: source, country: environment.geoIP?.country(for: source), applicationName: request.applicationName,
                startedAt: environment.now(), statementText: environment.config.auditStatementText,
                pinnedIdentity: client.connection.databaseRoles != nil))
        judge.session.agent = client.agent
        let world = environment.judgeWorld(user: client.user.name, connection: client.connection.name)
        let limits = environment.config.limits
        let session = judge.session
        if let full = environment.registry.admit(
            id: session.id, user: client.user.name, connection: client.connection.name, perUser: limits.maxSessionsPerUser,
            perConnection: limits.maxSessionsPerConnection)
        {
            refused(session, reason: full)
            return .failure(.tooManySessions(full))
        }
        let settings: StartupSettings
        switch StartupSettings.read(request.passthrough) {
        case .success(let read): settings = read
        case .failure(let refusal):
            refused(session, reason: refusal.message)
            return .failure(.startupSetting(refusal))
        }
        // The name the server will show is the last one applied, from a key or from options.
        if let name = settings.allowed.last(where: { $0.name == "application_name" })?.value {
            judge.session.applicationName = name
        }
        for setting in settings.judged {
            let judgement = judge.judgeStartupSetting(setting, inspection: world.inspect(setting.statement), in: world)
            Telemetry.statement(PolicyOutcome(judgement.decision.action))
            guard recorder.journal(judgement.record, "a startup setting's decision") else {
                return .failure(.auditCannotRecordStartupSettings)
            }
            if case .refuse(let message) = judgement.verdict {
                refused(session, reason: message.fields.message ?? "")
                return .failure(message)
            }
        }
        return .success((judge, settings.upstream(defaultApplicationName: "gatehouse")))
    }

    /// Records the session's start (committed before it returns), and reads what the session needs to
    /// know now that it is registered: whether this source and client are a device the user proved a
    /// second factor from, and whether the token was revoked in the gap after it was checked (a
    /// revocation then found no session to end).
    func recordStart(
        _ session: StatementJudge.Session, of client: VerifiedClient, tls: Bool
    ) async throws -> (knownDevice: Bool, tokenRevoked: Bool) {
        let upstream = client.connection
        _ = try await environment.store.appendAudit(
            AuditRecord(
                .sessionStart, actor: session.user, session: session.id, connection: session.connection,
                source: session.source,
                detail: [
                    "application": session.applicationName, "tls": tls ? "true" : "false",
                    "upstream": "\(upstream.host):\(upstream.port)/\(upstream.database)",
                ]))
        let known = try await environment.store.isKnownDevice(
            user: session.user, source: session.source, application: session.applicationName)
        return (known, await environment.tokens.isRevoked(client.token))
    }

    private func refused(_ session: StatementJudge.Session, reason: String) {
        recorder.journal(
            AuditRecord(
                .sessionRefused, actor: session.user, session: session.id, connection: session.connection,
                source: session.source, detail: ["reason": reason]), "a session refusal")
        recorder.logger.info("session refused at startup", metadata: ["reason": "\(reason)"])
    }
}

extension PolicyOutcome {
    init(_ action: PolicyAction) {
        switch action {
        case .allow: self = .allow
        case .alert: self = .alert
        case .stepUp: self = .stepUp
        case .approve: self = .approve
        case .deny: self = .deny
        }
    }
}
