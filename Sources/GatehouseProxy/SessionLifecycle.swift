import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehousePolicy
import GatehouseSessions
import GatehouseTelemetry
import Logging
import NIOCore
import NIOPosix
import PostgresWire
import SQLInspection

/// What a session's connection hears from outside, on the session's event loop.
protocol SessionEvents: AnyObject {
    /// Someone ended the session (an administrator, a revoked grant or token).
    func terminate(reason: String)
    /// The client sent a CancelRequest for this session.
    func clientCancelled()
    /// The held statement's challenge was decided.
    func holdEnded(_ challenge: Challenge)
    /// The held statement's challenge is open: the client is told it waits.
    func holdOpened(_ challenge: Challenge)
}

/// What the gateway holds of one session beside its state machine, and the asynchronous steps around
/// it: verifying the token and admitting the session, opening the upstream connection, registering the
/// session and recording its start, holding a statement, recording the end. Each step reports its
/// outcome on the session's event loop; the channel handler hands it to `SessionStateMachine`.
///
/// Used on the session's event loop only.
final class SessionLifecycle {
    let id = RandomSecret.hex(8)
    /// The client's address; for a session an MCP tool opened (on loopback), the agent's own address.
    private(set) var source: String
    let environment: ProxyEnvironment
    let eventLoop: any EventLoop
    let logger: Logger
    let recorder: SessionRecorder
    /// Whether the client's connection is encrypted.
    var tls = false
    /// Whether this connection holds one of the places for connections waiting to authenticate.
    private var authenticating = false
    /// Who the client is, once verified; the judge and upstream settings wait here for the session's start.
    private(set) var client: VerifiedClient?
    private var judge: StatementJudge?
    private var upstreamParameters: StartupParameters?
    private var connector: UpstreamConnector?
    /// The key the client cancels with, once the session is registered.
    private(set) var gatewayKey: GatewayCancelKey?
    /// Shared with whoever terminates the session.
    private(set) var ending: SessionEnding?
    private var started: Date?

    enum Opened {
        /// The upstream session is ready and the session's start recorded.
        case ready(UpstreamStartup, judge: StatementJudge, marker: String, tokenRevoked: Bool)
        case notRecorded
        /// The upstream connection could not be opened; the refusal is recorded.
        case unavailable(ClientMessage)
    }

    init(environment: ProxyEnvironment, remoteAddress: SocketAddress?, eventLoop: any EventLoop) {
        self.environment = environment
        self.eventLoop = eventLoop
        source = remoteAddress.map { $0.ipAddress ?? "\($0)" } ?? "unknown"
        var logger = environment.logger
        logger[metadataKey: "session"] = "\(id)"
        logger[metadataKey: "source"] = "\(source)"
        self.logger = logger
        recorder = SessionRecorder(store: environment.store, logger: logger)
    }

    /// Whether a token may arrive without TLS from this client.
    var allowsPlaintextPasswords: Bool {
        environment.config.clientTLS.allowPlaintextPasswords || Self.isLoopback(source)
    }

    static func isLoopback(_ address: String) -> Bool {
        address.hasPrefix("127.") || address == "::1" || address.hasPrefix("::ffff:127.")
    }

    // MARK: Authentication

    /// Takes one of the places for connections waiting to authenticate; the limit that is full, if one is.
    func beginAuthentication() -> SessionRegistry.AuthenticationLimit? {
        let limits = environment.config.limits
        if let full = environment.registry.beginAuthentication(
            source: source, limit: limits.maxUnauthenticatedConnections, perSource: limits.maxUnauthenticatedPerSource)
        {
            logger.warning("connection refused: too many waiting to authenticate", metadata: ["limit": "\(full)"])
            return full
        }
        authenticating = true
        return nil
    }

    func endAuthentication() {
        guard authenticating else { return }
        authenticating = false
        environment.registry.endAuthentication(source: source)
    }

    /// Verifies the token and admits the session (limits, startup settings), each outcome audited: nil
    /// when admitted, else what the client reads.
    func verify(_ request: StartupRequest, token: String, then: @escaping (ClientMessage?) -> Void) {
        let authenticator = SessionAuthenticator(environment: environment, recorder: recorder)
        let (session, source, tls) = (id, source, tls)
        runAsync {
            try await authenticator.verify(request, token: token, session: session, source: source, tls: tls)
        } then: { result in
            switch result {
            case .success(.success(let client)):
                self.client = client
                self.endAuthentication()
                if let agentSource = client.agentSource {
                    self.source = agentSource
                }
                switch authenticator.admit(client, request: request, session: session, source: self.source) {
                case .success(let admitted):
                    (self.judge, self.upstreamParameters) = (admitted.judge, admitted.upstream)
                    client.onSession(session)
                    then(nil)
                case .failure(let message):
                    then(message)
                }
            case .success(.failure(let refusal)):
                self.logger.info(
                    "authentication refused", metadata: ["user": "\(request.user)", "reason": "\(refusal.auditReason)"])
                then(refusal.message)
            case .failure(let error):
                self.logger.error("cannot record authentication in the audit log", metadata: ["error": "\(error)"])
                then(.auditUnavailable)
            }
        }
    }

    // MARK: The session's start

    /// Opens the upstream connection (handed to `connected` as soon as it exists), then registers the
    /// session and records its start, unless `abandoned` says the session closed meanwhile.
    func open(
        events: any SessionEvents, connected: @escaping (UpstreamHandler) -> Void, abandoned: @escaping () -> Bool,
        then: @escaping (Opened) -> Void
    ) {
        guard let client else { return }
        guard let roles = environment.databaseRoles[client.connection.name] else {
            connect(as: client.connection, events: events, connected: connected, abandoned: abandoned, then: then)
            return
        }
        // The person logs in as their own role, which holds what their grants give now.
        let user = client.user.name
        runAsync {
            try await roles.login(for: user)
        } then: { result in
            guard !abandoned() else { return }
            switch result {
            case .success(let login):
                var connection = client.connection
                (connection.user, connection.password) = (login.user, login.password)
                self.connect(
                    as: connection, terminator: client.connection, events: events, connected: connected,
                    abandoned: abandoned
                ) { opened in
                    // The role's password works only while one of its logins is under way.
                    Task { await roles.loggedIn(login) }
                    then(opened)
                }
            case .failure(let error):
                self.logger.error("cannot make the database role ready", metadata: ["error": "\(error)"])
                self.refuse(
                    .connectionUnavailable(client.connection.name, reason: "your database role is not ready: \(error)"),
                    then: then)
            }
        }
    }

    private func connect(
        as connection: Connection, terminator: Connection? = nil, events: any SessionEvents,
        connected: @escaping (UpstreamHandler) -> Void, abandoned: @escaping () -> Bool,
        then: @escaping (Opened) -> Void
    ) {
        let connector = UpstreamConnector(
            connection: connection, tlsContext: environment.upstreamTLS[connection.name], limits: environment.config.limits,
            logger: logger, terminator: terminator)
        self.connector = connector
        let parameters = upstreamParameters ?? StartupSettings().upstream(defaultApplicationName: "gatehouse")
        connector.open(parameters, on: eventLoop, opened: connected).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let startup):
                guard !abandoned() else { return }
                self.start(startup, events: events, then: then)
            case .failure(let error):
                let reason = (error as? UpstreamFailure)?.reason ?? "\(error)"
                self.refuse(.connectionUnavailable(connection.name, reason: reason), then: then)
            }
        }
    }

    /// Records the refusal, then reports it.
    private func refuse(_ message: ClientMessage, then: @escaping (Opened) -> Void) {
        let reason = message.fields.message ?? ""
        let record = AuditRecord(
            .sessionRefused, actor: client?.user.name, session: id, connection: client?.connection.name, source: source,
            detail: ["reason": reason])
        logger.warning("session refused", metadata: ["reason": "\(reason)"])
        let store = environment.store
        runAsync {
            _ = try await store.appendAudit(record)
        } then: { _ in
            then(.unavailable(message))
        }
    }

    private func start(_ startup: UpstreamStartup, events: any SessionEvents, then: @escaping (Opened) -> Void) {
        guard let client, let connector, var judge else { return }
        let time = environment.now()
        judge.begin(at: time)
        let session = judge.session
        let info = SessionInfo(
            id: id, user: session.user, connection: session.connection, source: source,
            applicationName: session.applicationName, startedAt: time, tls: tls)
        let target = UpstreamCancelTarget(
            host: client.connection.host, port: client.connection.port, processID: startup.processID,
            secretKey: startup.secretKey)
        let ending = SessionEnding(connector: connector, target: target)
        self.ending = ending
        let (loopBound, eventLoop) = (NIOLoopBound(events, eventLoop: eventLoop), eventLoop)
        gatewayKey = environment.registry.register(info, cancelTarget: target, tokenID: client.token.jti) { reason in
            // The backend is ended at once, whatever this session's event loop is busy with.
            ending.request(reason)
            eventLoop.execute { loopBound.value.terminate(reason: reason) }
        } cancelled: {
            eventLoop.execute { loopBound.value.clientCancelled() }
        }
        started = time
        let authenticator = SessionAuthenticator(environment: environment, recorder: recorder)
        let tls = tls
        runAsync {
            try await authenticator.recordStart(session, of: client, tls: tls)
        } then: { result in
            switch result {
            case .success(let outcome):
                judge.newDevice = !outcome.knownDevice
                let marker = "gatehouse_refused_\(RandomSecret.hex(12))"
                then(.ready(startup, judge: judge, marker: marker, tokenRevoked: outcome.tokenRevoked))
            case .failure(let error):
                self.logger.error("cannot record session start in the audit log", metadata: ["error": "\(error)"])
                then(.notRecorded)
            }
        }
    }

    /// The session will not start after all (it was refused on its way in): it leaves the registry.
    func abandonStart() {
        environment.registry.remove(id: id)
        started = nil
    }

    // MARK: The live session

    /// Journals a statement's decision; false when it cannot be recorded.
    func journal(_ record: AuditRecord, _ decided: PolicyAction, _ grants: [String]) -> Bool {
        Telemetry.statement(PolicyOutcome(decided))
        if decided != .allow {
            logger.info("statement \(decided.rawValue)", metadata: ["reason": "\(record.detail["reason"] ?? "")"])
        }
        if !grants.isEmpty { environment.registry.noteGrantUse(id: id, grants: grants) }
        return recorder.journal(record, "a statement decision")
    }

    /// Opens the held statement's challenge; its outcome comes back through `events`.
    func hold(_ challenge: Challenge, events: any SessionEvents) {
        guard let stepUp = environment.stepUp else { return }
        let (loopBound, eventLoop) = (NIOLoopBound(events, eventLoop: eventLoop), eventLoop)
        Task {
            await stepUp.hold(challenge) {
                eventLoop.execute { loopBound.value.holdOpened(challenge) }
            } onFinal: { final in
                eventLoop.execute { loopBound.value.holdEnded(final) }
            }
        }
    }

    /// Inspects a long statement text on NIO's blocking-work pool (threads with a large stack), so the
    /// loop's other sessions go on meanwhile; the inspection comes back on this loop. A gateway that is
    /// stopping answers with an internal parse error, and the statement is refused.
    func inspect(_ sql: String, with guardrails: Guardrails, then: @escaping (Inspection) -> Void) {
        NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) { guardrails.inspect(sql) }
            .assumeIsolated().whenComplete { result in
                then(
                    (try? result.get())
                        ?? Inspection(
                            statements: [],
                            parseError: ParseError(
                                message: "the gateway is stopping", position: 0, sqlState: ParseError.internalError)))
            }
    }

    func cancelChallenge(id: String, reason: String) {
        if let stepUp = environment.stepUp { Task { await stepUp.cancel(id: id, reason: reason) } }
    }

    /// The user proved a second factor from this source and client: a known device from now on.
    func rememberDevice(_ session: StatementJudge.Session) {
        let (store, now) = (environment.store, environment.now())
        Task {
            try? await store.rememberDevice(
                user: session.user, source: session.source, application: session.applicationName, at: now)
        }
    }

    /// Relays a client's CancelRequest to the backend of the session its key names.
    func forwardCancel(_ key: GatewayCancelKey) {
        guard let (session, target) = environment.registry.cancelTarget(for: key) else {
            logger.info("cancel request for an unknown session ignored")
            return
        }
        environment.registry.notifyCancelled(id: session)
        UpstreamConnector.sendCancel(to: target, on: eventLoop, logger: logger)
        recorder.journal(AuditRecord(.cancelRequest, session: session, source: source), "a cancel request")
    }

    // MARK: The end

    /// The connection is gone: the session leaves the registry, and its end is recorded if it started.
    func ended(reason: String?) {
        endAuthentication()
        environment.registry.release(id: id)
        guard let started, let client else { return }
        self.started = nil
        environment.registry.remove(id: id)
        recorder.sessionEnded(
            id, user: client.user.name, connection: client.connection.name, source: source,
            reason: reason ?? "client disconnected", after: environment.now().timeIntervalSince(started))
    }

    /// Runs async work off the event loop and continues on it with the result.
    private func runAsync<T: Sendable>(
        _ work: @escaping @Sendable () async throws -> T, then: @escaping (Result<T, Error>) -> Void
    ) {
        let promise = eventLoop.makePromise(of: T.self)
        promise.completeWithTask(work)
        promise.futureResult.assumeIsolated().whenComplete(then)
    }
}
