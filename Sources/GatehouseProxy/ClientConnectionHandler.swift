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
import NIOSSL
import PostgresWire
import SQLInspection

/// The client end of a proxied session: feeds `SessionStateMachine` the channel's events and performs
/// the actions it returns (I/O, backpressure, writes). It decides nothing itself.
///
/// Never throws past its boundary: every failure ends this connection with a FATAL ErrorResponse.
final class ClientConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = FrontendInput
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let environment: ProxyEnvironment
    private let worldSource: WorldSource
    private var machine: SessionStateMachine
    private var context: ChannelHandlerContext?
    private var upstream: UpstreamHandler?
    private var pendingRead = false
    private var timeout: Scheduled<Void>?
    private let sessionID = RandomSecret.hex(8)
    private var source = "unknown"
    private var tlsActive = false
    /// Whether this connection holds one of the places for connections waiting to authenticate.
    private var authenticating = false
    private var logger: Logger
    /// Made once the logger carries the session's id and source (`channelActive`).
    private var recorder: SessionRecorder
    /// Who the client is, once verified; the judge and upstream settings wait here for the session's start.
    private var client: VerifiedClient?
    private var judge: StatementJudge?
    private var upstreamParameters: StartupParameters?
    private var connector: UpstreamConnector?
    private var gatewayKey: GatewayCancelKey?
    /// Shared with whoever terminates the session; `terminationSeen` once this loop has acted on it.
    private var ending: SessionEnding?
    private var terminationSeen = false
    private var sessionStarted: Date?
    /// Server frames of the current read, gathered into one write (one pass through the pipeline).
    private var toClient: ByteBuffer?

    init(environment: ProxyEnvironment) {
        self.environment = environment
        self.worldSource = environment.worldSource
        self.machine = SessionStateMachine(allowPlaintextPasswords: false, tlsAvailable: environment.clientTLS != nil)
        self.logger = environment.logger
        self.recorder = SessionRecorder(store: environment.store, logger: environment.logger)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        if let address = context.channel.remoteAddress { source = address.ipAddress ?? "\(address)" }
        machine = SessionStateMachine(
            allowPlaintextPasswords: environment.config.clientTLS.allowPlaintextPasswords || Self.isLoopback(source),
            tlsAvailable: environment.clientTLS != nil)
        logger[metadataKey: "session"] = "\(sessionID)"
        logger[metadataKey: "source"] = "\(source)"
        recorder = SessionRecorder(store: environment.store, logger: logger)
        let limits = environment.config.limits
        if let full = environment.registry.beginAuthentication(
            source: source, limit: limits.maxUnauthenticatedConnections, perSource: limits.maxUnauthenticatedPerSource)
        {
            logger.warning("connection refused: too many waiting to authenticate", metadata: ["limit": "\(full)"])
            perform(machine.failed(.tooManyAuthenticating(full)))
        } else {
            authenticating = true
            let seconds = environment.config.limits.authenticationTimeout
            timeout = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(seconds * 1000))) {
                self.perform(self.machine.authenticationTimedOut())
            }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .frame(let frame):
            if !terminationSeen, let reason = ending?.requested { terminate(reason: reason) }
            // Only a statement text is judged: the clock is read for those alone.
            let judged = frame.type == FrontendMessageType.query || frame.type == FrontendMessageType.parse
            let began = judged ? DispatchTime.now().uptimeNanoseconds : 0
            let action = machine.clientFrame(frame, world: world)
            if judged, case .journal = action {
                Telemetry.decisionLatency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds &- began))
            }
            perform(action)
        case .startup(let packet):
            perform(machine.startupPacket(packet))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        upstream?.flush()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        endAuthentication()
        environment.registry.release(id: sessionID)
        run(machine.clientClosed())
        upstream?.close()
        endSession()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let wireError = error as? PostgresWireError {
            logger.info("closing connection after malformed client input", metadata: ["error": "\(wireError)"])
            perform(machine.failed(.protocolViolation("\(wireError)")))
        } else {
            logger.info("connection error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    // Backpressure: read from the client only while the session may and the upstream can take it.
    func read(context: ChannelHandlerContext) {
        if !machine.readsClient || !(upstream?.isWritable ?? true) {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { upstream?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: The upstream handler's calls (on this event loop)

    func forwardFromUpstream(_ frame: PostgresFrame) {
        if !terminationSeen, let reason = ending?.requested { terminate(reason: reason) }
        switch machine.upstreamFrame(frame) {
        case .toClient(let frame):
            if toClient == nil { toClient = frame.bytes } else { toClient!.writeImmutableBuffer(frame.bytes) }
        case .end(let message):
            logger.warning("ending session: a pinned setting changed", metadata: ["reason": "\(message.fields.message ?? "")"])
            sendFatal(message)
            upstream?.close()
        case .drop:
            break
        }
    }

    func flushToClient() {
        writeGathered()
        context?.flush()
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func upstreamClosed() {
        perform(machine.upstreamClosed())
    }

    // MARK: Outside events (from the registry, hopped to this event loop)

    func terminate(reason: String) {
        terminationSeen = true
        run(machine.terminated(reason: reason))
    }

    func clientCancelled() { run(machine.cancelled(world: world)) }

    private func holdEnded(_ challenge: Challenge) { run(machine.holdEnded(challenge, world: world)) }

    // MARK: Actions

    private func run(_ actions: [SessionStateMachine.Action]) {
        var queue = actions[...]
        while let action = queue.popFirst() {
            if case .journal(let record, let decided, let grants) = action {
                queue.append(contentsOf: machine.recorded(journal(record, decided, grants), world: world))
            } else {
                perform(action)
            }
        }
    }

    private func perform(_ action: SessionStateMachine.Action) {
        guard let context else { return }
        switch action {
        case .none:
            break
        case .forward(let frame):
            upstream?.write(frame.bytes)
        case .journal:
            run([action])
        case .startTLS:
            startTLS(context: context)
        case .refuseEncryption:
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(integer: UInt8(ascii: "N"))), promise: nil)
        case .negotiateProtocol(let newestMinor, let unsupported):
            let frame = WireMessages.negotiateProtocolVersion(newestMinor: newestMinor, unsupportedOptions: unsupported)
            context.write(wrapOutboundOut(frame.bytes), promise: nil)
            perform(.requestPassword)
        case .requestPassword:
            context.writeAndFlush(wrapOutboundOut(AuthenticationMessage.cleartextPassword.frame.bytes), promise: nil)
        case .verifyToken(let request, let token):
            verify(request, token: token)
        case .connectUpstream:
            connectUpstream()
        case .forwardCancel(let key):
            forwardCancel(key)
            context.close(promise: nil)
        case .completeStartup(let startup):
            completeStartup(startup)
        case .refuseStart(let message):
            environment.registry.remove(id: sessionID)
            sessionStarted = nil
            upstream?.close()
            sendFatal(message)
        case .hold(let challenge):
            hold(challenge)
        case .inspect(let sql):
            inspect(sql)
        case .cancelChallenge(let id, let reason):
            if let stepUp = environment.stepUp { Task { await stepUp.cancel(id: id, reason: reason) } }
        case .rememberDevice:
            guard let judge = machine.judge else { return }
            let (store, session, now) = (environment.store, judge.session, environment.now())
            Task {
                try? await store.rememberDevice(
                    user: session.user, source: session.source, application: session.applicationName, at: now)
            }
        case .resume:
            upstream?.flush()
            resumeReading()
        case .terminate(let message):
            ending?.endBackend()
            upstream?.close()
            environment.registry.remove(id: sessionID)
            sendFatal(message)
        case .fatal(let message):
            sendFatal(message)
        case .close:
            writeGathered()
            context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: nil)
            context.close(promise: nil)
        }
    }

    /// What the judge reads of the world now.
    private func world() -> StatementJudge.World {
        worldSource.world(user: client?.user.name, connection: client?.connection.name)
    }

    private func journal(_ record: AuditRecord, _ decided: PolicyAction, _ grants: [String]) -> Bool {
        Telemetry.statement(PolicyOutcome(decided))
        if decided != .allow {
            logger.info("statement \(decided.rawValue)", metadata: ["reason": "\(record.detail["reason"] ?? "")"])
        }
        if !grants.isEmpty { environment.registry.noteGrantUse(id: sessionID, grants: grants) }
        return recorder.journal(record, "a statement decision")
    }

    private func startTLS(context: ChannelHandlerContext) {
        guard let tls = environment.clientTLS else {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(integer: UInt8(ascii: "N"))), promise: nil)
            return
        }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(integer: UInt8(ascii: "S"))), promise: nil)
        do {
            try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .first)
            tlsActive = true
        } catch {
            context.close(promise: nil)
        }
    }

    /// Verifies the token and admits the session (limits, startup settings), each outcome audited.
    private func verify(_ request: StartupRequest, token: String) {
        let authenticator = SessionAuthenticator(environment: environment, recorder: recorder)
        let (session, source, tls) = (sessionID, source, tlsActive)
        runAsync {
            try await authenticator.verify(request, token: token, session: session, source: source, tls: tls)
        } then: { result in
            switch result {
            case .success(.success(let client)):
                self.client = client
                self.endAuthentication()
                switch authenticator.admit(client, request: request, session: session, source: source) {
                case .success(let admitted):
                    (self.judge, self.upstreamParameters) = (admitted.judge, admitted.upstream)
                    self.perform(self.machine.tokenVerified())
                case .failure(let message):
                    self.perform(self.machine.authenticationFailed(message))
                }
            case .success(.failure(let refusal)):
                self.logger.info(
                    "authentication refused", metadata: ["user": "\(request.user)", "reason": "\(refusal.auditReason)"])
                self.perform(self.machine.authenticationFailed(refusal.message))
            case .failure(let error):
                self.logger.error("cannot record authentication in the audit log", metadata: ["error": "\(error)"])
                self.perform(self.machine.authenticationFailed(.auditUnavailable))
            }
        }
    }

    private func connectUpstream() {
        guard let context, let client else { return }
        let connection = client.connection
        let connector = UpstreamConnector(
            connection: connection, tlsContext: environment.upstreamTLS[connection.name], limits: environment.config.limits,
            logger: logger)
        self.connector = connector
        let parameters = upstreamParameters ?? StartupSettings().upstream(defaultApplicationName: "gatehouse")
        connector.open(parameters, on: context.eventLoop) { upstream in
            self.upstream = upstream
            if case .closed = self.machine.state { upstream.close() }
        }.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let startup):
                self.startSession(startup)
            case .failure(let error):
                let reason = (error as? UpstreamFailure)?.reason ?? "\(error)"
                self.refuseSession(.connectionUnavailable(connection.name, reason: reason))
            }
        }
    }

    /// Records the refusal, then tells the client.
    private func refuseSession(_ message: ClientMessage) {
        let reason = message.fields.message ?? ""
        let record = AuditRecord(
            .sessionRefused, actor: client?.user.name, session: sessionID, connection: client?.connection.name,
            source: source, detail: ["reason": reason])
        logger.warning("session refused", metadata: ["reason": "\(reason)"])
        let store = environment.store
        runAsync {
            _ = try await store.appendAudit(record)
        } then: { _ in
            self.perform(self.machine.upstreamFailed(message))
        }
    }

    /// Registers the session and records its start; then the machine completes the client's startup.
    private func startSession(_ startup: UpstreamStartup) {
        guard let context, let client, let connector, var judge else { return }
        if case .closed = machine.state {
            upstream?.close()
            return
        }
        let started = environment.now()
        judge.begin(at: started)
        let session = judge.session
        let info = SessionInfo(
            id: sessionID, user: session.user, connection: session.connection, source: source,
            applicationName: session.applicationName, startedAt: started, tls: tlsActive)
        let target = UpstreamCancelTarget(
            host: client.connection.host, port: client.connection.port, processID: startup.processID,
            secretKey: startup.secretKey)
        let ending = SessionEnding(connector: connector, target: target)
        self.ending = ending
        let (loopBound, eventLoop) = (NIOLoopBound(self, eventLoop: context.eventLoop), context.eventLoop)
        gatewayKey = environment.registry.register(info, cancelTarget: target, tokenID: client.token.jti) { reason in
            // The backend is ended at once, whatever this session's event loop is busy with.
            ending.request(reason)
            eventLoop.execute { loopBound.value.terminate(reason: reason) }
        } cancelled: {
            eventLoop.execute { loopBound.value.clientCancelled() }
        }
        sessionStarted = started
        let authenticator = SessionAuthenticator(environment: environment, recorder: recorder)
        let tls = tlsActive
        runAsync {
            try await authenticator.recordStart(session, of: client, tls: tls)
        } then: { result in
            switch result {
            case .success(let outcome):
                judge.newDevice = !outcome.knownDevice
                let marker = "gatehouse_refused_\(RandomSecret.hex(12))"
                self.perform(
                    self.machine.upstreamReady(startup, judge: judge, marker: marker, tokenRevoked: outcome.tokenRevoked))
            case .failure(let error):
                self.logger.error("cannot record session start in the audit log", metadata: ["error": "\(error)"])
                self.perform(self.machine.startNotRecorded())
            }
        }
    }

    private func completeStartup(_ startup: UpstreamStartup) {
        guard let context, let key = gatewayKey else { return }
        timeout?.cancel()
        context.write(wrapOutboundOut(AuthenticationMessage.ok.frame.bytes), promise: nil)
        for frame in startup.parameterFrames { context.write(wrapOutboundOut(frame.bytes), promise: nil) }
        context.write(
            wrapOutboundOut(WireMessages.backendKeyData(processID: key.processID, secretKey: key.secretKey).bytes), promise: nil)
        context.writeAndFlush(wrapOutboundOut(startup.readyFrame.bytes), promise: nil)
        logger.info(
            "session started", metadata: ["user": "\(client?.user.name ?? "")", "connection": "\(client?.connection.name ?? "")"])
        upstream?.link(self)
        resumeReading()
    }

    /// Inspects a long statement text on the blocking-work pool, then judges it back on this loop.
    private func inspect(_ sql: String) {
        guard let context else { return }
        let guardrails = worldSource.guardrails
        NIOThreadPool.singleton.runIfActive(eventLoop: context.eventLoop) { guardrails.inspect(sql) }
            .assumeIsolated().whenComplete { result in
                let inspection =
                    (try? result.get())
                    ?? Inspection(statements: [], parseError: ParseError(message: "the gateway is stopping", position: 0))
                self.run(self.machine.inspected(inspection, world: self.world))
            }
    }

    /// Tells the client what its statement waits for, then opens the challenge.
    private func hold(_ challenge: Challenge) {
        guard let context, let stepUp = environment.stepUp else { return }
        writeGathered()
        context.writeAndFlush(wrapOutboundOut(ClientMessage.holding(challenge).frame.bytes), promise: nil)
        let (loopBound, eventLoop) = (NIOLoopBound(self, eventLoop: context.eventLoop), context.eventLoop)
        Task { await stepUp.hold(challenge) { final in eventLoop.execute { loopBound.value.holdEnded(final) } } }
    }

    private func endSession() {
        guard let started = sessionStarted, let client else { return }
        sessionStarted = nil
        environment.registry.remove(id: sessionID)
        recorder.sessionEnded(
            sessionID, user: client.user.name, connection: client.connection.name, source: source,
            reason: machine.endReason ?? "client disconnected", after: environment.now().timeIntervalSince(started))
    }

    private func forwardCancel(_ key: GatewayCancelKey) {
        guard let (session, target) = environment.registry.cancelTarget(for: key) else {
            logger.info("cancel request for an unknown session ignored")
            return
        }
        environment.registry.notifyCancelled(id: session)
        UpstreamConnector.sendCancel(
            to: target, on: context?.eventLoop ?? MultiThreadedEventLoopGroup.singleton.any(), logger: logger)
        recorder.journal(AuditRecord(.cancelRequest, session: session, source: source), "a cancel request")
    }

    private func endAuthentication() {
        guard authenticating else { return }
        authenticating = false
        environment.registry.endAuthentication(source: source)
    }

    /// Writes what was gathered from the server, keeping order with the gateway's own messages.
    private func writeGathered() {
        guard let context, let bytes = toClient else { return }
        toClient = nil
        context.write(wrapOutboundOut(bytes), promise: nil)
    }

    private func sendFatal(_ message: ClientMessage) {
        guard let context else { return }
        writeGathered()
        context.writeAndFlush(wrapOutboundOut(message.frame.bytes)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// Runs async work off the event loop and continues on it with the result.
    private func runAsync<T: Sendable>(
        _ work: @escaping @Sendable () async throws -> T, then: @escaping (Result<T, Error>) -> Void
    ) {
        guard let context else { return }
        let promise = context.eventLoop.makePromise(of: T.self)
        promise.completeWithTask(work)
        promise.futureResult.assumeIsolated().whenComplete(then)
    }

    static func isLoopback(_ address: String) -> Bool {
        address.hasPrefix("127.") || address == "::1" || address.hasPrefix("::ffff:127.")
    }
}
