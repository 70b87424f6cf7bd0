import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehousePolicy
import GatehouseTelemetry
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresWire
import SQLInspection

/// The client end of a proxied session: runs `ClientStateMachine`'s actions, then relays frames to
/// and from the upstream server.
///
/// Never throws past its boundary: every failure ends this connection with a FATAL ErrorResponse.
final class ClientConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = FrontendInput
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let environment: ProxyEnvironment
    private var machine: ClientStateMachine
    private var context: ChannelHandlerContext?
    private var upstream: UpstreamHandler?
    private var upstreamChannel: Channel?
    private var pendingRead = false
    private var timeout: Scheduled<Void>?

    private let sessionID = RandomSecret.hex(8)
    private var source = "unknown"
    private var isLoopback = false
    private var tlsActive = false
    private var user: User?
    private var connection: Connection?
    private var request: StartupRequest?
    private var sessionStarted: Date?
    private var endReason: String?
    private var logger: Logger
    private var statementGuard = StatementGuard(marker: "gatehouse_refused_\(RandomSecret.hex(12))")
    private var prepared = PreparedStatements()
    /// Where this session's unqualified table names may resolve.
    private var searchPath = SearchPath()
    private var lastActivity = Date()
    /// The rules that apply to this session's user, connection and source, per policy version.
    private var sessionRules: CompiledPolicy.SessionRules?
    /// A statement waiting for step-up or approval, and what the client sent after it meanwhile.
    private var held: (frame: PostgresFrame, challenge: Challenge, inspection: Inspection)?
    private var holdBeingOpened: (challenge: Challenge, inspection: Inspection)?
    private var backlog: [PostgresFrame] = []
    /// When this session's user last proved their second factor for a held statement.
    private var lastStepUp: Date?
    /// Whether the user has not yet proven a second factor from this source address with this client.
    private var newDevice = false
    /// The source's country, looked up once per session.
    private lazy var country: String? = environment.geoIP?.country(for: source)

    init(environment: ProxyEnvironment) {
        self.environment = environment
        self.machine = ClientStateMachine(allowPlaintextPasswords: environment.config.clientTLS.allowPlaintextPasswords)
        self.logger = environment.logger
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        if let address = context.channel.remoteAddress {
            source = address.ipAddress ?? "\(address)"
            isLoopback = Self.isLoopback(source)
        }
        machine = ClientStateMachine(
            allowPlaintextPasswords: environment.config.clientTLS.allowPlaintextPasswords || isLoopback,
            tlsAvailable: environment.clientTLS != nil)
        logger[metadataKey: "session"] = "\(sessionID)"
        logger[metadataKey: "source"] = "\(source)"
        let limit = environment.config.limits.maxUnauthenticatedConnections
        guard environment.registry.beginAuthentication(limit: limit) else {
            logger.warning("connection refused: too many waiting to authenticate", metadata: ["limit": "\(limit)"])
            machine.peerClosed()
            sendFatal(
                context: context, sqlState: "53300",
                message: "too many connections are waiting to authenticate (limits.max_unauthenticated_connections: \(limit))",
                hint: "try again in a moment")
            context.fireChannelActive()
            return
        }
        authenticating = true
        let timeoutSeconds = environment.config.limits.authenticationTimeout
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(timeoutSeconds * 1000))) {
            self.perform(self.machine.authenticationTimedOut(), context: context)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .frame(let frame):
            if case .relaying = machine.state {
                relayToUpstream(frame)
            } else {
                perform(machine.frame(frame), context: context)
            }
        case .startup(let packet):
            perform(machine.startupPacket(packet), context: context)
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
        if let current = held, let stepUp = environment.stepUp {
            let id = current.challenge.id
            Task { await stepUp.cancel(id: id, reason: "the client disconnected") }
        }
        machine.peerClosed()
        if let upstream {
            upstream.close()
        } else if let upstreamChannel {
            upstreamChannel.close(promise: nil)
        }
        endSession(reason: endReason ?? "client disconnected")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let wireError = error as? PostgresWireError {
            logger.info("closing connection after malformed client input", metadata: ["error": "\(wireError)"])
            sendFatal(
                context: context, sqlState: ProxyFailure.Code.protocolViolation, message: "protocol violation: \(wireError)",
                hint: nil)
        } else if error is NIOSSLError || error is BoringSSLError {
            logger.info("TLS failure with client", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        } else {
            logger.debug("connection error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    // Backpressure: read from the client only while the upstream can take what we write to it.
    func read(context: ChannelHandlerContext) {
        switch machine.state {
        case .authenticating, .connectingUpstream:
            // Between the password and the session's start nothing is read: a client not yet known
            // cannot make the gateway buffer what it sends.
            pendingRead = true
            return
        default:
            break
        }
        if held != nil {
            pendingRead = true
        } else if let upstream, !upstream.isWritable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { upstream?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Relay (called by the upstream handler, on this event loop)

    private func relayToUpstream(_ frame: PostgresFrame) {
        if closing { return }
        if frame.type == MessageType.terminate { endReason = endReason ?? "client ended the session" }
        // While a statement is held, what follows it waits behind it, in order.
        if held != nil {
            backlog.append(frame)
            return
        }
        switch statementGuard.client(frame, judge: judge) {
        case .forward:
            upstream?.write(frame.bytes)
        case .replace(let replacement):
            upstream?.write(replacement.bytes)
        case .refuseUnjudged(let replacement, let reason, let what):
            _ = recordDecision(
                Decision.refusal(reason),
                inspection: Inspection(statements: [], parseError: ParseError(message: reason, position: 0)), sql: what,
                verbatim: true)
            upstream?.write(replacement.bytes)
        case .hold:
            guard let (challenge, inspection) = holdBeingOpened else { return }
            holdBeingOpened = nil
            held = (frame, challenge, inspection)
            beginHold(challenge)
        case .protocolViolation(let reason):
            logger.info("closing session after a protocol violation", metadata: ["reason": "\(reason)"])
            if let context {
                sendFatal(
                    context: context, sqlState: ProxyFailure.Code.protocolViolation, message: "protocol violation: \(reason)",
                    hint: nil)
            }
        }
    }

    /// Server frames of the current read, gathered into one write (one pass through the pipeline).
    private var toClient: ByteBuffer?

    func forwardFromUpstream(_ frame: PostgresFrame) {
        if closing { return }
        if let violation = StatementGuard.pinViolation(frame) {
            // The server would now read text otherwise than the checks did (a function changed a pinned
            // setting): nothing more may reach it, and nothing more of it reaches the client.
            closing = true
            logger.warning("ending session: a pinned setting changed", metadata: ["reason": "\(violation)"])
            endReason = "pinned setting changed: \(violation)"
            if let context {
                sendFatal(
                    context: context, sqlState: ProxyFailure.Code.adminShutdown, message: "terminating connection: \(violation)",
                    hint: "Gatehouse sessions stay in UTF8 with standard_conforming_strings on")
            }
            upstream?.close()
            return
        }
        let bytes = statementGuard.upstream(frame).bytes
        if toClient == nil {
            toClient = bytes
        } else {
            toClient!.writeImmutableBuffer(bytes)
        }
    }

    /// Writes what was gathered from the server, keeping order with the gateway's own messages.
    private func writeGathered() {
        guard let context, let bytes = toClient else { return }
        toClient = nil
        context.write(wrapOutboundOut(bytes), promise: nil)
    }

    // MARK: Guardrails

    /// Inspects and judges one query text against the policy in force, and records the decision.
    private func judge(_ sql: String) -> StatementGuard.Verdict {
        guard let user, let connection, let request, let started = sessionStarted else {
            return .refuse(ErrorNoticeFields(severity: "ERROR", sqlState: ProxyFailure.Code.internalError, message: "no session"))
        }
        let began = DispatchTime.now().uptimeNanoseconds
        defer { Telemetry.decisionLatency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds &- began)) }
        let now = environment.now()
        let inspection = prepared.resolve(environment.guardrails.inspect(sql))
        let grants = (environment.grants?.activeGrants(for: user.name, on: connection.name, at: now) ?? []).compactMap { grant in
            grant.expiresAt.map { ActiveGrant(id: grant.id, role: grant.role, expiresAt: $0) }
        }
        var context = SessionContext(
            user: user.name, groups: user.groups, connection: connection.name, sourceAddress: source, country: country,
            applicationName: request.applicationName, sessionStartedAt: started, lastActivityAt: lastActivity,
            grants: grants, now: now, newDevice: newDevice)
        context.searchPath = searchPath
        // Widened before the decision: a refused SET never ran, but counting it costs nothing.
        searchPath.widen(by: inspection)
        lastActivity = now
        let policy = environment.guardrails.compiled
        if sessionRules?.policy != ObjectIdentifier(policy) { sessionRules = policy.sessionRules(for: context) }
        var decision = policy.evaluate(inspection, in: context, session: sessionRules)
        if !grants.isEmpty, decision.action.proceeds {
            // A grant is used when the statement would not run without it; the session then ends with it.
            var withoutGrants = context
            withoutGrants.grants = []
            if policy.evaluate(inspection, in: withoutGrants, session: sessionRules).action > decision.action {
                decision.usedGrants = Array(Set(decision.usedGrants).union(grants.map(\.id))).sorted()
            }
        }
        if !decision.usedGrants.isEmpty { environment.registry.noteGrantUse(id: sessionID, grants: decision.usedGrants) }
        // A fresh proof in this session covers step-up rules that grant a freshness window.
        if decision.action == .stepUp, let maxAge = decision.stepUpMaxAge, let last = lastStepUp,
            now.timeIntervalSince(last) <= maxAge
        {
            var satisfied = decision
            satisfied.action = .allow
            satisfied.reason =
                "step-up proven \(Int(now.timeIntervalSince(last)))s ago, within the rule's \(DurationText.format(maxAge))"
            guard recordDecision(satisfied, inspection: inspection, sql: sql, note: "fresh_step_up") else {
                return .refuse(Self.unrecorded)
            }
            prepared.record(inspection)
            return .proceed
        }
        guard recordDecision(decision, inspection: inspection, sql: sql) || decision.action == .deny else {
            return .refuse(Self.unrecorded)
        }
        if decision.action.proceeds {
            prepared.record(inspection)
            return .proceed
        }
        if (decision.action == .stepUp || decision.action == .approve), environment.stepUp != nil {
            let kind: Challenge.Kind = decision.action == .stepUp ? .stepUp : .approve
            let challenge = Challenge(
                id: RandomSecret.hex(8), kind: kind, user: user.name, session: sessionID, connection: connection.name,
                statement: sql, fingerprint: inspection.statements.map(\.fingerprint).joined(separator: ","),
                rules: decision.decidingRules.map(\.name), reason: decision.reason, approvers: decision.approvers,
                approverStepUp: decision.approverStepUp, createdAt: now,
                expiresAt: now.addingTimeInterval(environment.stepUp?.holdTimeout ?? 120))
            holdBeingOpened = (challenge, inspection)
            return .hold
        }
        return .refuse(Self.refusal(decision))
    }

    // MARK: Holds (step-up and approval)

    /// Tells the client what it is waiting for, then registers the challenge.
    private func beginHold(_ challenge: Challenge) {
        guard let context, let stepUp = environment.stepUp else { return }
        let rules = challenge.rules.map { "\"\($0)\"" }.joined(separator: ", ")
        let timeout = DurationText.format(challenge.expiresAt.timeIntervalSince(challenge.createdAt))
        let notice: ErrorNoticeFields
        switch challenge.kind {
        case .stepUp:
            notice = ErrorNoticeFields(
                severity: "NOTICE", sqlState: "00000",
                message: "Gatehouse is holding this statement: rule \(rules) needs step-up verification",
                detail:
                    "Run in another terminal: gatehouse verify \(challenge.id)    (within \(timeout); it covers this statement only)",
                hint: "the statement runs as soon as the code is accepted; cancel with Ctrl-C")
        case .approve:
            notice = ErrorNoticeFields(
                severity: "NOTICE", sqlState: "00000",
                message: "Gatehouse is holding this statement until another person approves it: rule \(rules)",
                detail:
                    "Approvers (\(challenge.approvers.joined(separator: ", "))) run: gatehouse approve \(challenge.id)    (within \(timeout))",
                hint: "the statement runs as soon as it is approved; cancel with Ctrl-C")
        }
        writeGathered()
        context.writeAndFlush(wrapOutboundOut(notice.noticeFrame.bytes), promise: nil)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let user = challenge.user
        Task {
            if challenge.kind == .stepUp, !((try? await stepUp.canStepUp(user: user, method: challenge.method)) ?? false) {
                var refused = challenge
                refused.state = .failed
                refused.decisionReason = "\(user) has no second factor: run `gatehouse mfa enroll` first"
                eventLoop.execute { loopBound.value.endHold(refused) }
                return
            }
            await stepUp.open(challenge) { final in
                eventLoop.execute { loopBound.value.endHold(final) }
            }
        }
    }

    /// The held statement was decided: run it or refuse it, then go on with what came after it.
    private func endHold(_ challenge: Challenge) {
        guard let current = held, current.challenge.id == challenge.id else { return }
        held = nil
        let verdict: StatementGuard.Verdict
        if challenge.state.releases {
            if challenge.kind == .stepUp {
                lastStepUp = environment.now()
                if newDevice, let request {
                    // Proven from here: this source and client are the user's from now on.
                    newDevice = false
                    let store = environment.store
                    let (user, source, application, now) = (challenge.user, source, request.applicationName, environment.now())
                    Task { try? await store.rememberDevice(user: user, source: source, application: application, at: now) }
                }
            }
            prepared.record(current.inspection)
            verdict = .proceed
        } else {
            verdict = .refuse(Self.holdRefusal(challenge))
        }
        switch statementGuard.client(current.frame, judge: { _ in verdict }) {
        case .forward: upstream?.write(current.frame.bytes)
        case .replace(let replacement), .refuseUnjudged(let replacement, _, _): upstream?.write(replacement.bytes)
        case .hold, .protocolViolation: break
        }
        let waiting = backlog
        backlog = []
        for frame in waiting { relayToUpstream(frame) }
        upstream?.flush()
        if held == nil { resumeClientReading() }
    }

    static func holdRefusal(_ challenge: Challenge) -> ErrorNoticeFields {
        let what = challenge.kind == .stepUp ? "step-up verification" : "approval"
        switch challenge.state {
        case .expired:
            return ErrorNoticeFields(
                severity: "ERROR", sqlState: "42501",
                message:
                    "Gatehouse did not run this statement: \(what) did not arrive in time (challenge \(challenge.id) expired)",
                hint: "run the statement again and answer the challenge sooner")
        case .denied:
            return ErrorNoticeFields(
                severity: "ERROR", sqlState: "42501",
                message:
                    "Gatehouse did not run this statement: \(challenge.decidedBy ?? "an approver") denied it\(challenge.decisionReason.map { ": \($0)" } ?? "")"
            )
        case .cancelled:
            return ErrorNoticeFields(
                severity: "ERROR", sqlState: "57014",
                message: "canceling statement due to user request (it was held by Gatehouse for \(what))")
        default:
            return ErrorNoticeFields(
                severity: "ERROR", sqlState: "42501",
                message: "Gatehouse did not run this statement: \(what) failed\(challenge.decisionReason.map { ": \($0)" } ?? "")"
            )
        }
    }

    /// The client sent a CancelRequest: a held statement is the gateway's to cancel.
    func clientCancelled() {
        guard let current = held, let stepUp = environment.stepUp else { return }
        let id = current.challenge.id
        Task { await stepUp.cancel(id: id, reason: "the client cancelled the statement") }
        // End the hold here at once: the service may not have registered the challenge yet.
        var cancelled = current.challenge
        cancelled.state = .cancelled
        cancelled.decisionReason = "the client cancelled the statement"
        endHold(cancelled)
    }

    private func resumeClientReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    /// What the client reads when a statement does not run.
    static func refusal(_ decision: Decision) -> ErrorNoticeFields {
        let rules = decision.decidingRules.map(\.name)
        let message: String
        var hint = decision.hint
        switch decision.action {
        case .stepUp:
            message =
                "Gatehouse held this statement: \(decision.reason); step-up verification is not enabled on this gateway, so it was not run"
        case .approve:
            message =
                "Gatehouse held this statement: \(decision.reason); approval is not enabled on this gateway, so it was not run"
        default:
            message = "Gatehouse denied this statement: \(decision.reason)"
        }
        if hint == nil {
            hint =
                rules.isEmpty
                ? "ask an administrator to allow it in the gateway's policy"
                : "ask for elevated access or an exception to rule \(rules.joined(separator: ", "))"
        }
        return ErrorNoticeFields(
            severity: "ERROR", sqlState: ProxyFailure.Code.insufficientPrivilege, message: message, hint: hint)
    }

    /// What the client reads when its statement's decision could not be recorded: nothing runs unaudited.
    static let unrecorded = ErrorNoticeFields(
        severity: "ERROR", sqlState: ProxyFailure.Code.internalError,
        message: "Gatehouse did not run this statement: its audit log cannot record it",
        hint: "the gateway's operator must free or repair the gateway's data directory")

    /// Records the decision in the audit log (journaled before this returns); false when it cannot be.
    private func recordDecision(
        _ decision: Decision, inspection: Inspection, sql: String, note: String? = nil, verbatim: Bool = false
    ) -> Bool {
        let type: AuditEventType
        let outcome: PolicyOutcome
        switch decision.action {
        case .allow: (type, outcome) = (.statementAllowed, .allow)
        case .alert: (type, outcome) = (.statementAlert, .alert)
        case .stepUp: (type, outcome) = (.statementHeld, .stepUp)
        case .approve: (type, outcome) = (.statementHeld, .approve)
        case .deny: (type, outcome) = (.statementDenied, .deny)
        }
        Telemetry.statement(outcome)
        var detail: [String: String] = [
            "action": decision.action.rawValue,
            "facts": inspection.unparsable ? "unparsable" : inspection.statements.map(\.summary).joined(separator: "; "),
            "fingerprint": inspection.statements.map(\.fingerprint).joined(separator: ","),
        ]
        if !decision.matched.isEmpty { detail["rules"] = decision.matched.map(\.name).joined(separator: ",") }
        // Every decision says what the statement was: in full, or with `$n` for its constants.
        let text =
            verbatim || environment.config.auditStatementText == .full
            ? sql : (PostgresParser.normalized(sql) ?? "(masked: \(sql.utf8.count) bytes that do not parse)")
        detail["statement"] = text.utf8.count > 2000 ? String(text.prefix(2000)) + "…" : text
        if decision.action != .allow { detail["reason"] = decision.reason }
        if !decision.shadowed.isEmpty {
            detail["shadow_rules"] = decision.shadowed.map(\.name).joined(separator: ",")
            detail["would_have"] = (decision.shadowed.map(\.action).max() ?? .allow).rawValue
        }
        if !decision.usedGrants.isEmpty { detail["grants"] = decision.usedGrants.joined(separator: ",") }
        if let note {
            detail["note"] = note
            detail["reason"] = decision.reason
        }
        let record = AuditRecord(
            type, actor: user?.name, session: sessionID, connection: connection?.name, source: source, detail: detail)
        if decision.action != .allow {
            logger.info("statement \(decision.action.rawValue)", metadata: ["reason": "\(decision.reason)"])
        }
        return journal(record, "a statement decision")
    }

    /// Hands an event that has happened (or is about to) to the audit log without waiting for its commit:
    /// journaled before this returns. False, logged and counted, when it cannot be recorded.
    @discardableResult
    private func journal(_ record: AuditRecord, _ what: String) -> Bool {
        let logger = self.logger
        do {
            try environment.store.enqueueAudit(record) { error in
                logger.error("cannot commit \(what) to the audit log", metadata: ["error": "\(error)"])
            }
            return true
        } catch {
            Telemetry.auditFailures.increment()
            logger.error("cannot record \(what) in the audit log", metadata: ["error": "\(error)"])
            return false
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
        guard let context, !closing else { return }
        endReason = endReason ?? "upstream server closed the connection"
        writeGathered()
        context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: nil)
        context.close(promise: nil)
    }

    /// Ends the session from outside (an administrator, a revoked grant, an expired token).
    ///
    /// From this moment nothing more the client sent reaches the server, whatever is in flight: what is
    /// held or waiting is dropped, the running statement is cancelled, the upstream connection is
    /// closed, and the session leaves the registry at once.
    func terminate(reason: String) {
        guard let context, !closing else { return }
        closing = true
        endReason = "terminated: \(reason)"
        held = nil
        backlog = []
        if let upstreamCancel {
            Self.sendCancel(to: upstreamCancel, on: context.eventLoop, logger: logger)
            // Queries already in the backend's receive buffer would still run after a cancel and a close:
            // the backend itself is ended, from a session of the same upstream role.
            if let connection {
                Self.terminateBackend(
                    upstreamCancel.processID, connection: connection, tlsContext: environment.upstreamTLS[connection.name],
                    limits: environment.config.limits, eventLoop: context.eventLoop, logger: logger)
            }
        }
        upstream?.close()
        environment.registry.remove(id: sessionID)
        sendFatal(
            context: context, sqlState: ProxyFailure.Code.adminShutdown,
            message: "terminating connection: \(reason)", hint: nil)
    }

    /// Whether this connection holds one of the places for connections waiting to authenticate.
    private var authenticating = false

    private func endAuthentication() {
        guard authenticating else { return }
        authenticating = false
        environment.registry.endAuthentication()
    }

    /// Set when the session is being ended by the gateway: no frame goes either way any more.
    private var closing = false
    /// Where to cancel the upstream backend's running statement.
    private var upstreamCancel: UpstreamCancelTarget?

    // MARK: Actions

    private func perform(_ action: ClientStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .startTLS:
            startTLS(context: context)
        case .refuseEncryption:
            var buffer = context.channel.allocator.buffer(capacity: 1)
            buffer.writeInteger(UInt8(ascii: "N"))
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        case .negotiateProtocol(let newestMinor, let unsupported):
            var body = ByteBuffer()
            body.writeInteger(StartupPacket.protocolVersion3 | newestMinor)
            body.writeInteger(Int32(unsupported.count))
            for option in unsupported { body.writeNullTerminatedString(option) }
            context.write(
                wrapOutboundOut(PostgresFrame(type: MessageType.negotiateProtocolVersion, body: body).bytes), promise: nil)
            perform(machine.afterNegotiation(), context: context)
        case .requestPassword:
            context.writeAndFlush(wrapOutboundOut(AuthenticationMessage.cleartextPassword.frame.bytes), promise: nil)
        case .verifyToken(let request, let token):
            self.request = request
            verify(request: request, token: token, context: context)
        case .connectUpstream(let request):
            connectUpstream(request: request, context: context)
        case .forwardCancel(let key):
            forwardCancel(key)
            context.close(promise: nil)
        case .completeStartup:
            break  // done by `startSession`, which owns the upstream's startup data
        case .fatal(let sqlState, let message, let hint):
            sendFatal(context: context, sqlState: sqlState, message: message, hint: hint)
        case .close:
            context.close(promise: nil)
        }
    }

    private func startTLS(context: ChannelHandlerContext) {
        guard let tls = environment.clientTLS else {
            var buffer = context.channel.allocator.buffer(capacity: 1)
            buffer.writeInteger(UInt8(ascii: "N"))
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: 1)
        buffer.writeInteger(UInt8(ascii: "S"))
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        do {
            try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .first)
            tlsActive = true
        } catch {
            context.close(promise: nil)
        }
    }

    /// Checks the token, the user as they stand now, and the connection name; audits the outcome.
    private func verify(request: StartupRequest, token: String, context: ChannelHandlerContext) {
        let environment = self.environment
        let source = self.source
        let sessionID = self.sessionID
        let tls = tlsActive
        runAsync(context: context) { () async throws -> Result<(User, Connection), ProxyFailure> in
            let outcome: Result<(User, Connection), ProxyFailure>
            do {
                let claims = try await environment.tokens.verify(token, kind: .access)
                if claims.sub != request.user {
                    outcome = .failure(
                        ProxyFailure(
                            sqlState: ProxyFailure.Code.invalidPassword,
                            message:
                                "password authentication failed for user \"\(request.user)\": the token belongs to another user",
                            hint: "use user=\(claims.sub), or a token of \(request.user)"))
                } else {
                    switch try await environment.identities.activeUser(named: request.user) {
                    case .failure(let error):
                        outcome = .failure(
                            ProxyFailure(
                                sqlState: ProxyFailure.Code.invalidAuthorization, message: "access refused: \(error.description)")
                        )
                    case .success(let user):
                        if let connection = environment.config.connection(named: request.connection) {
                            outcome = .success((user, connection))
                        } else {
                            let names = environment.config.connections.map(\.name).sorted().joined(separator: ", ")
                            outcome = .failure(
                                ProxyFailure(
                                    sqlState: ProxyFailure.Code.unknownDatabase,
                                    message: "connection \"\(request.connection)\" is not configured in Gatehouse",
                                    hint: names.isEmpty ? "no connections are configured" : "use dbname= one of: \(names)"))
                        }
                    }
                }
            } catch let error as TokenError {
                outcome = .failure(
                    ProxyFailure(
                        sqlState: ProxyFailure.Code.invalidPassword,
                        message: "password authentication failed for user \"\(request.user)\": \(error.description)",
                        hint: error.code == .expired || error.code == .revoked ? "run `gatehouse token` for a new token" : nil,
                        auditReason: error.description))
            }
            var detail = ["application": request.applicationName, "tls": tls ? "true" : "false"]
            switch outcome {
            case .success: break
            case .failure(let failure): detail["reason"] = failure.auditReason
            }
            let type: AuditEventType
            switch outcome {
            case .success: type = .authSuccess
            case .failure: type = .authFailure
            }
            _ = try await environment.store.appendAudit(
                AuditRecord(
                    type, actor: request.user, session: sessionID, connection: request.connection, source: source, detail: detail)
            )
            return outcome
        } then: { context, result in
            switch result {
            case .success(.success(let (user, connection))):
                self.user = user
                self.connection = connection
                self.endAuthentication()
                let limits = self.environment.config.limits
                if let full = self.environment.registry.admit(
                    id: sessionID, user: user.name, connection: connection.name, perUser: limits.maxSessionsPerUser,
                    perConnection: limits.maxSessionsPerConnection)
                {
                    self.journal(
                        AuditRecord(
                            .sessionRefused, actor: user.name, session: sessionID, connection: connection.name, source: source,
                            detail: ["reason": full]), "a session refusal")
                    self.logger.info("session refused: limit reached", metadata: ["reason": "\(full)"])
                    self.perform(
                        self.machine.authenticationFailed(
                            sqlState: "53300", message: "too many sessions: \(full)",
                            hint: "close a session you no longer use, or ask an administrator to raise the limit"),
                        context: context)
                    return
                }
                if let refusal = self.checkStartupSettings(request) {
                    self.journal(
                        AuditRecord(
                            .sessionRefused, actor: user.name, session: sessionID, connection: connection.name, source: source,
                            detail: ["reason": refusal.message]), "a session refusal")
                    self.logger.info("session refused at startup", metadata: ["reason": "\(refusal.message)"])
                    self.perform(
                        self.machine.authenticationFailed(
                            sqlState: refusal.sqlState, message: refusal.message, hint: refusal.hint),
                        context: context)
                    return
                }
                self.perform(self.machine.tokenVerified(), context: context)
            case .success(.failure(let failure)):
                self.logger.info(
                    "authentication refused", metadata: ["user": "\(request.user)", "reason": "\(failure.auditReason)"])
                self.perform(
                    self.machine.authenticationFailed(sqlState: failure.sqlState, message: failure.message, hint: failure.hint),
                    context: context)
            case .failure(let error):
                self.logger.error("cannot record authentication in the audit log", metadata: ["error": "\(error)"])
                self.perform(
                    self.machine.authenticationFailed(
                        sqlState: ProxyFailure.Code.internalError,
                        message: "the gateway cannot write its audit log; refusing the session", hint: nil),
                    context: context)
            }
        }
    }

    private func connectUpstream(request: StartupRequest, context: ChannelHandlerContext) {
        guard let connection else { return }
        let ready = context.eventLoop.makePromise(of: UpstreamStartup.self)
        let tlsContext = environment.upstreamTLS[connection.name]
        let startupParameters = upstreamStartup ?? StartupSettings().upstream(defaultApplicationName: "gatehouse")
        let limits = environment.config.limits
        let bootstrap = ClientBootstrap(group: context.eventLoop)
            .connectTimeout(.milliseconds(Int64(limits.upstreamConnectTimeout * 1000)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(
                            BackendDecoder(maxMessageLength: limits.maxMessageBytes, expectingSSLResponse: tlsContext != nil)))
                    try channel.pipeline.syncOperations.addHandler(
                        UpstreamHandler(
                            connection: connection, startupParameters: startupParameters, tlsContext: tlsContext, ready: ready))
                }
            }
        let upstreamTimeout = context.eventLoop.assumeIsolated().scheduleTask(
            in: .milliseconds(Int64(limits.upstreamConnectTimeout * 1000))
        ) {
            self.upstream?.abandon(
                "timed out after \(DurationText.format(limits.upstreamConnectTimeout)) waiting for the upstream server")
            ready.fail(
                ProxyFailure(
                    sqlState: ProxyFailure.Code.cannotConnect,
                    message:
                        "timed out after \(DurationText.format(limits.upstreamConnectTimeout)) waiting for the upstream server"))
        }
        bootstrap.connect(host: connection.host, port: connection.port).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                self.upstreamChannel = channel
                if let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) {
                    self.upstream = handler
                }
                if case .closed = self.machine.state { channel.close(promise: nil) }
            case .failure(let error):
                ready.fail(
                    ProxyFailure(
                        sqlState: ProxyFailure.Code.cannotConnect,
                        message: "cannot reach the upstream server \(connection.host):\(connection.port): \(Self.describe(error))"
                    ))
            }
        }
        ready.futureResult.assumeIsolated().whenComplete { result in
            upstreamTimeout.cancel()
            switch result {
            case .success(let startup):
                self.startSession(startup, context: context)
            case .failure(let error):
                let failure =
                    error as? ProxyFailure
                    ?? ProxyFailure(sqlState: ProxyFailure.Code.cannotConnect, message: "\(error)")
                self.refuseSession(
                    failure: ProxyFailure(
                        sqlState: failure.sqlState,
                        message: "connection \"\(connection.name)\" is unavailable: \(failure.message)",
                        hint: "the gateway could not open a session to the database; try again or tell its administrators"),
                    context: context)
            }
        }
    }

    /// The upstream startup's settings, once the client's were checked.
    private var upstreamStartup: StartupParameters?

    /// Reads the client's startup settings and judges those off the allow-list as SET statements, each
    /// decision audited; nil when the session may start (and `upstreamStartup` is set).
    private func checkStartupSettings(_ request: StartupRequest) -> StartupSettings.Refusal? {
        let settings: StartupSettings
        switch StartupSettings.read(request.passthrough) {
        case .success(let read): settings = read
        case .failure(let refusal): return refusal
        }
        guard let user, let connection else { return nil }
        // The name the server will show is the last one applied, from a key or from options.
        if let name = settings.allowed.last(where: { $0.name == "application_name" })?.value {
            self.request?.applicationName = name
        }
        let request = self.request ?? request
        let now = environment.now()
        let grants = (environment.grants?.activeGrants(for: user.name, on: connection.name, at: now) ?? []).compactMap { grant in
            grant.expiresAt.map { ActiveGrant(id: grant.id, role: grant.role, expiresAt: $0) }
        }
        let context = SessionContext(
            user: user.name, groups: user.groups, connection: connection.name, sourceAddress: source, country: country,
            applicationName: request.applicationName, sessionStartedAt: now, lastActivityAt: now, grants: grants, now: now,
            newDevice: newDevice)
        let policy = environment.guardrails.compiled
        for setting in settings.judged {
            if setting.name == "search_path" { searchPath.widen(by: [setting.value]) }
            let sql = setting.statement
            let inspection = environment.guardrails.inspect(sql)
            var decision = policy.evaluate(inspection, in: context)
            if decision.action == .stepUp || decision.action == .approve {
                // A startup cannot wait for a second factor or another person.
                decision.reason += "; a startup setting cannot wait for it: SET it in the session instead"
                decision.action = .deny
            }
            guard recordDecision(decision, inspection: inspection, sql: sql, note: "startup \(setting.written)") else {
                return StartupSettings.Refusal(
                    sqlState: ProxyFailure.Code.internalError,
                    message: "Gatehouse refused the session: its audit log cannot record the startup's settings", hint: nil)
            }
            if !decision.action.proceeds {
                return StartupSettings.Refusal(
                    sqlState: "42501",
                    message: "startup setting \(setting.written) is refused: \(decision.reason)",
                    hint: decision.hint ?? "connect without it, or ask for a grant that allows it")
            }
        }
        upstreamStartup = settings.upstream(defaultApplicationName: "gatehouse")
        return nil
    }

    /// Records the refusal, then tells the client.
    private func refuseSession(failure: ProxyFailure, context: ChannelHandlerContext) {
        let environment = self.environment
        let record = AuditRecord(
            .sessionRefused, actor: request?.user, session: sessionID, connection: connection?.name, source: source,
            detail: ["reason": failure.auditReason])
        logger.warning("session refused", metadata: ["reason": "\(failure.auditReason)"])
        runAsync(context: context) {
            _ = try await environment.store.appendAudit(record)
        } then: { context, _ in
            self.perform(
                self.machine.upstreamFailed(sqlState: failure.sqlState, message: failure.message, hint: failure.hint),
                context: context)
        }
    }

    /// Registers the session, records its start, then completes the client's startup.
    private func startSession(_ startup: UpstreamStartup, context: ChannelHandlerContext) {
        guard let connection, let user, let request else { return }
        if case .closed = machine.state {
            upstream?.close()
            return
        }
        let started = environment.now()
        let info = SessionInfo(
            id: sessionID, user: user.name, connection: connection.name, source: source,
            applicationName: request.applicationName, startedAt: started, tls: tlsActive)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let cancelTarget = UpstreamCancelTarget(
            host: connection.host, port: connection.port, processID: startup.processID, secretKey: startup.secretKey)
        upstreamCancel = cancelTarget
        let key = environment.registry.register(
            info,
            cancelTarget: cancelTarget
        ) { reason in
            eventLoop.execute { loopBound.value.terminate(reason: reason) }
        } cancelled: {
            eventLoop.execute { loopBound.value.clientCancelled() }
        }
        sessionStarted = started
        let environment = self.environment
        let record = AuditRecord(
            .sessionStart, actor: user.name, session: sessionID, connection: connection.name, source: source,
            detail: [
                "application": request.applicationName, "tls": tlsActive ? "true" : "false",
                "upstream": "\(connection.host):\(connection.port)/\(connection.database)",
            ])
        let (userName, source, application) = (user.name, source, request.applicationName)
        runAsync(context: context) { () async throws -> Bool in
            _ = try await environment.store.appendAudit(record)
            return try await environment.store.isKnownDevice(user: userName, source: source, application: application)
        } then: { context, result in
            if case .success(let known) = result { self.newDevice = !known }
            if case .failure(let error) = result {
                self.logger.error("cannot record session start in the audit log", metadata: ["error": "\(error)"])
                self.environment.registry.remove(id: self.sessionID)
                self.sessionStarted = nil
                self.perform(
                    self.machine.upstreamFailed(
                        sqlState: ProxyFailure.Code.internalError,
                        message: "the gateway cannot write its audit log; refusing the session", hint: nil),
                    context: context)
                return
            }
            guard case .connectingUpstream = self.machine.state else { return }
            if let violation = startup.parameterFrames.lazy.compactMap(StatementGuard.pinViolation).first {
                self.environment.registry.remove(id: self.sessionID)
                self.sessionStarted = nil
                self.upstream?.close()
                self.perform(
                    self.machine.upstreamFailed(
                        sqlState: ProxyFailure.Code.cannotConnect, message: "refusing the session: \(violation)", hint: nil),
                    context: context)
                return
            }
            _ = self.machine.upstreamReady()
            self.timeout?.cancel()
            context.write(self.wrapOutboundOut(AuthenticationMessage.ok.frame.bytes), promise: nil)
            for frame in startup.parameterFrames { context.write(self.wrapOutboundOut(frame.bytes), promise: nil) }
            context.write(
                self.wrapOutboundOut(WireMessages.backendKeyData(processID: key.processID, secretKey: key.secretKey).bytes),
                promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(startup.readyFrame.bytes), promise: nil)
            self.logger.info("session started", metadata: ["user": "\(user.name)", "connection": "\(connection.name)"])
            self.upstream?.link(self)
            self.resumeReading()
        }
    }

    private func endSession(reason: String) {
        guard let started = sessionStarted, let user, let connection else { return }
        sessionStarted = nil
        environment.registry.remove(id: sessionID)
        let seconds = environment.now().timeIntervalSince(started)
        let record = AuditRecord(
            .sessionEnd, actor: user.name, session: sessionID, connection: connection.name, source: source,
            detail: ["reason": reason, "duration_seconds": String(format: "%.3f", seconds)])
        let logger = self.logger
        logger.info("session ended", metadata: ["reason": "\(reason)"])
        // It has happened: journaled at once, so a crash cannot lose it, and committed with the next group.
        journal(record, "a session end")
    }

    private func forwardCancel(_ key: GatewayCancelKey) {
        guard let (sessionID, target) = environment.registry.cancelTarget(for: key) else {
            logger.info("cancel request for an unknown session ignored")
            return
        }
        environment.registry.notifyCancelled(id: sessionID)
        let source = self.source
        Self.sendCancel(to: target, on: context?.eventLoop ?? MultiThreadedEventLoopGroup.singleton.any(), logger: logger)
        journal(AuditRecord(.cancelRequest, session: sessionID, source: source), "a cancel request")
    }

    /// Opens a session as `connection`'s upstream role and ends backend `processID` with
    /// `pg_terminate_backend` (a role may end its own backends).
    static func terminateBackend(
        _ processID: Int32, connection: Connection, tlsContext: NIOSSLContext?, limits: Limits, eventLoop: EventLoop,
        logger: Logger
    ) {
        let ready = eventLoop.makePromise(of: UpstreamStartup.self)
        let parameters = StartupSettings().upstream(defaultApplicationName: "gatehouse-terminator")
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.milliseconds(Int64(limits.upstreamConnectTimeout * 1000)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(BackendDecoder(maxMessageLength: 1 << 20, expectingSSLResponse: tlsContext != nil)))
                    try channel.pipeline.syncOperations.addHandler(
                        UpstreamHandler(
                            connection: connection, startupParameters: parameters, tlsContext: tlsContext, ready: ready))
                }
            }
        bootstrap.connect(host: connection.host, port: connection.port).whenComplete { result in
            switch result {
            case .success(let channel):
                ready.futureResult.whenComplete { outcome in
                    switch outcome {
                    case .success:
                        var buffer = channel.allocator.buffer(capacity: 64)
                        buffer.writeImmutableBuffer(QueryMessage(sql: "SELECT pg_terminate_backend(\(processID))").frame.bytes)
                        buffer.writeImmutableBuffer(PostgresFrame(type: MessageType.terminate, body: ByteBuffer()).bytes)
                        channel.writeAndFlush(buffer, promise: nil)
                    case .failure(let error):
                        logger.warning("cannot end a terminated session's backend", metadata: ["error": "\(error)"])
                        channel.close(promise: nil)
                    }
                }
            case .failure(let error):
                ready.fail(error)
                logger.warning("cannot end a terminated session's backend", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Sends a CancelRequest for `target`'s running statement on a connection of its own.
    static func sendCancel(to target: UpstreamCancelTarget, on eventLoop: EventLoop, logger: Logger) {
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(5))
            .connect(host: target.host, port: target.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    var buffer = channel.allocator.buffer(capacity: 16)
                    StartupPacket.cancel(processID: target.processID, secretKey: target.secretKey).encode(into: &buffer)
                    channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
                case .failure(let error):
                    logger.warning("cannot forward a cancel request", metadata: ["error": "\(error)"])
                }
            }
    }

    private func sendFatal(context: ChannelHandlerContext, sqlState: String, message: String, hint: String?) {
        endReason = endReason ?? message
        writeGathered()
        let fields = ErrorNoticeFields(severity: "FATAL", sqlState: sqlState, message: message, hint: hint)
        context.writeAndFlush(wrapOutboundOut(fields.errorFrame.bytes)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// Runs async work off the event loop and continues on it with the result.
    private func runAsync<T: Sendable>(
        context: ChannelHandlerContext, _ work: @escaping @Sendable () async throws -> T,
        then: @escaping (ChannelHandlerContext, Result<T, Error>) -> Void
    ) {
        let promise = context.eventLoop.makePromise(of: T.self)
        promise.completeWithTask(work)
        promise.futureResult.assumeIsolated().whenComplete { result in then(context, result) }
    }

    static func isLoopback(_ address: String) -> Bool {
        address.hasPrefix("127.") || address == "::1" || address.hasPrefix("::ffff:127.")
    }

    static func describe(_ error: Error) -> String {
        if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
            return describe(first.error)
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ETIMEDOUT: return "timed out"
            case EHOSTUNREACH: return "host unreachable"
            default: return error.description
            }
        }
        if error is ChannelError { return "\(error)" }
        return "\(error)"
    }
}
