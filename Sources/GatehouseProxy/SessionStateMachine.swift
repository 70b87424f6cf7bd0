import Foundation
import GatehouseCore
import GatehousePolicy
import GatehouseSessions
import PostgresWire
import SQLInspection

/// One proxied session, as a pure state machine: events in, actions out; the channel handler performs
/// the actions and decides nothing.
///
/// Startup and authentication are a machine of their own (`ClientStateMachine`); once the upstream
/// session is ready the session is live: every frame of the client goes through the `StatementGuard`,
/// each statement text through the session's `StatementJudge`, and a statement that must wait for a
/// second factor or an approver is held with whatever the client sent after it queued behind it, in
/// order. From the moment the gateway ends a session nothing more goes either way.
struct SessionStateMachine: Sendable {
    enum State: Sendable, Equatable {
        /// Startup and authentication, in `startup`.
        case starting
        /// In `live`.
        case live
        case closed
    }

    private(set) var state = State.starting
    private var startup: ClientStateMachine
    /// The live session, mutated in place (a copy per frame would cost every reference it holds).
    private var live: Live?
    /// Why the session ended, for its audit record; the first reason given wins.
    private(set) var endReason: String?

    init(allowPlaintextPasswords: Bool, tlsAvailable: Bool) {
        startup = ClientStateMachine(allowPlaintextPasswords: allowPlaintextPasswords, tlsAvailable: tlsAvailable)
    }

    var isLive: Bool { state == .live && live?.closing == false }

    /// Whether the client may be read: not before the session is live (a client not yet known cannot
    /// make the gateway buffer what it sends), nor while a statement is held.
    var readsClient: Bool {
        switch state {
        case .starting:
            switch startup.state {
            case .authenticating, .connectingUpstream: return false
            case .awaitingStartup, .awaitingPassword, .relaying, .closed: return true
            }
        case .live: return live?.isWaiting == false
        case .closed: return true
        }
    }

    /// The session's judge, once live.
    var judge: StatementJudge? { live?.judge }

    /// Whether this challenge's statement is still held (not cancelled, ended or decided meanwhile).
    func isHolding(_ challengeID: String) -> Bool { isLive && live?.held?.challenge.id == challengeID }

    // MARK: Startup

    mutating func startupPacket(_ packet: StartupPacket) -> Action {
        startup { $0.startupPacket(packet) }
    }

    mutating func tokenVerified() -> Action {
        startup { $0.tokenVerified() }
    }

    mutating func authenticationFailed(_ message: ClientMessage) -> Action {
        startup { $0.authenticationFailed(message) }
    }

    mutating func upstreamFailed(_ message: ClientMessage) -> Action {
        startup { $0.upstreamFailed(message) }
    }

    mutating func authenticationTimedOut() -> Action {
        startup { $0.authenticationTimedOut() }
    }

    /// The upstream session is ready and the session's start is recorded: the session goes live, unless
    /// the server's own settings already break the pins (a role or database setting the startup could
    /// not override).
    mutating func upstreamReady(
        _ startup: UpstreamStartup, judge: StatementJudge, marker: String, tokenRevoked: Bool = false
    ) -> Action {
        guard state == .starting, case .connectingUpstream = self.startup.state else { return .close }
        if tokenRevoked {
            let reason = "the token was revoked; sign in again with `gatehouse login` before reconnecting"
            state = .closed
            endReason = endReason ?? "terminated: \(reason)"
            return .terminate(.terminated(reason))
        }
        if let violation = startup.parameterFrames.lazy.compactMap(StatementGuard.pinViolation).first {
            return refuseStart(.upstreamPinViolation(violation))
        }
        _ = self.startup.upstreamReady()
        live = Live(statementGuard: StatementGuard(marker: marker), judge: judge, tracker: StatementTracker(marker: marker))
        state = .live
        return .completeStartup(startup)
    }

    /// The session's start could not be recorded: it does not start.
    mutating func startNotRecorded() -> Action {
        guard state == .starting, case .connectingUpstream = startup.state else { return .close }
        return refuseStart(.auditUnavailable)
    }

    private mutating func refuseStart(_ message: ClientMessage) -> Action {
        state = .closed
        endReason = endReason ?? message.fields.message
        return .refuseStart(message)
    }

    private mutating func startup(_ event: (inout ClientStateMachine) -> ClientStateMachine.Action) -> Action {
        guard state == .starting else { return .none }
        let action = event(&startup)
        if case .closed = startup.state { state = .closed }
        switch action {
        case .startTLS, .refuseEncryption, .negotiateProtocol, .requestPassword, .verifyToken, .connectUpstream,
            .forwardCancel:
            return .startup(action)
        case .completeStartup: return .none  // the session machine completes it, with the upstream's startup
        case .fatal(let message):
            endReason = endReason ?? message.fields.message
            return .fatal(message)
        case .close: return .close
        case .none: return .none
        }
    }

    // MARK: The client

    /// A frame of the client. `world` is read only when a statement is judged.
    mutating func clientFrame(_ frame: PostgresFrame, world: () -> StatementJudge.World) -> Action {
        switch state {
        case .starting:
            return startup { $0.frame(frame) }
        case .closed:
            return .none
        case .live:
            guard live?.closing == false else { return .none }
            if frame.type == FrontendMessageType.terminate { endReason = endReason ?? "client ended the session" }
            // While a statement is held or being recorded, what follows it waits behind it, in order.
            if live!.isWaiting {
                live!.backlog.append(frame)
                return .none
            }
            let action = Self.take(frame, into: &live!, world: world)
            if case .fatal(let message) = action {
                live!.closing = true
                endReason = endReason ?? message.fields.message
            }
            return action
        }
    }

    /// The long statement text being inspected was inspected: it is judged now.
    mutating func inspected(_ inspection: Inspection, world: () -> StatementJudge.World) -> [Action] {
        guard state == .live, live?.closing == false, let (frame, sql) = live!.inspecting.take() else { return [] }
        return [Self.judge(frame, sql: sql, inspection: inspection, into: &live!, world: world())]
    }

    /// The journal took (or could not take) the record of the statement being recorded.
    mutating func recorded(_ journaled: Bool, world: () -> StatementJudge.World) -> [Action] {
        guard state == .live, live?.closing == false, let pending = live!.recording.take() else { return [] }
        var actions: [Action] = []
        switch pending.outcome {
        case .unjudged(let replacement, let refusal):
            actions.append(live!.send(replacement, refusal: refusal))
        case .judged(let judgement):
            var verdict = judgement.verdict
            // Nothing runs unaudited; a refusal is refused whether or not its record was kept.
            if !journaled, judgement.decision.action != .deny { verdict = .refuse(.unrecorded) }
            switch verdict {
            case .proceed:
                actions.append(live!.send(pending.frame, entry: pending.entry))
            case .refuse(let message):
                actions.append(Self.refuse(pending.frame, message.fields, into: &live!))
            case .hold(let challenge):
                live!.held = Held(frame: pending.frame, challenge: challenge, entry: pending.entry)
                return [.hold(challenge)]
            }
        }
        actions += Self.drain(&live!, world: world)
        if case .fatal(let message)? = actions.last {
            live!.closing = true
            endReason = endReason ?? message.fields.message
        }
        return actions
    }

    /// The held statement's challenge was decided (verified, approved, denied, expired, cancelled).
    mutating func holdEnded(_ challenge: Challenge, world: () -> StatementJudge.World) -> [Action] {
        guard state == .live, live?.closing == false, let held = live?.held, held.challenge.id == challenge.id else {
            return []
        }
        live!.held = nil
        var actions: [Action] = []
        if challenge.state.releases {
            if challenge.kind == .stepUp {
                live!.judge.steppedUp(at: world().now)
                if live!.judge.newDevice {
                    // Proven from here: this source and client are the user's from now on.
                    live!.judge.newDevice = false
                    actions.append(.rememberDevice)
                }
            }
            actions.append(live!.send(held.frame, entry: held.entry))
        } else {
            actions.append(Self.refuse(held.frame, ClientMessage.holdEnded(challenge).fields, into: &live!))
        }
        actions += Self.drain(&live!, world: world)
        if case .fatal(let message)? = actions.last {
            live!.closing = true
            endReason = endReason ?? message.fields.message
        }
        return actions
    }

    /// Sends the refusal marker in place of `frame`; the client reads `refusal` where the server rejects it.
    private static func refuse(_ frame: PostgresFrame, _ refusal: ErrorNoticeFields, into live: inout Live) -> Action {
        live.send(live.statementGuard.decided(frame, .refuse(refusal)), refusal: refusal)
    }

    /// The client sent a CancelRequest for this session: a held statement is the gateway's to cancel.
    mutating func cancelled(world: () -> StatementJudge.World) -> [Action] {
        guard state == .live, live?.closing == false, let held = live?.held else { return [] }
        let reason = "the client cancelled the statement"
        var cancelled = held.challenge
        cancelled.state = .cancelled
        cancelled.decisionReason = reason
        // Ended here at once: the challenge service may not have registered the challenge yet.
        return [.cancelChallenge(id: held.challenge.id, reason: reason)] + holdEnded(cancelled, world: world)
    }

    /// Takes the backlog's frames in order until one must wait (a statement to record, a hold) or the
    /// backlog is empty; then the upstream writes are flushed and the client read again.
    private static func drain(_ live: inout Live, world: () -> StatementJudge.World) -> [Action] {
        var actions: [Action] = []
        while !live.isWaiting, !live.backlog.isEmpty {
            let frame = live.backlog.removeFirst()
            let action = take(frame, into: &live, world: world)
            if action != .none { actions.append(action) }
            if case .fatal = action { return actions }
        }
        if !live.isWaiting { actions.append(.resume) }
        return actions
    }

    /// One frame of the live session, when nothing is held.
    private static func take(_ frame: PostgresFrame, into live: inout Live, world: () -> StatementJudge.World) -> Action {
        switch live.statementGuard.arrived(frame) {
        case .forward:
            return live.send(frame)
        case .protocolViolation(let reason):
            return .fatal(.protocolViolation(reason))
        case .refuseUnjudged(let replacement, let refusal, let what):
            live.recording = Pending(frame: frame, outcome: .unjudged(replacement, refusal: refusal))
            return .journal(
                live.judge.unjudgedRecord(reason: refusal.message ?? "", what: what), action: .deny, usedGrants: [])
        case .execute(let portal):
            // The server skips it (an earlier message of its cycle fails), or it is the first run of a text
            // judged moments ago in this cycle: that decision is this run's.
            if live.tracker.cycleDoomed || live.tracker.isFirstRunOfThisCycle(portal) { return live.send(frame) }
            let judgement = live.judge.judgeExecution(
                portal: portal, candidates: live.tracker.portalCandidates(portal), in: world(), prepared: live.prepared)
            live.recording = Pending(frame: frame, outcome: .judged(judgement))
            return .journal(judgement.record, action: judgement.decision.action, usedGrants: judgement.decision.usedGrants)
        case .statement(let sql) where sql.utf8.count > Inspector.inlineTextBytes:
            // Parsing it may take a while: the event loop serves its other sessions meanwhile.
            live.inspecting = (frame, sql)
            return .inspect(sql)
        case .statement(let sql):
            let world = world()
            return judge(frame, sql: sql, inspection: world.inspect(sql), into: &live, world: world)
        }
    }

    /// Judges a statement text (a Query or a Parse) and asks for its record.
    private static func judge(
        _ frame: PostgresFrame, sql: String, inspection: Inspection, into live: inout Live, world: StatementJudge.World
    ) -> Action {
        let judgement = live.judge.judge(sql, inspection: inspection, in: world, prepared: live.prepared)
        live.recording = Pending(frame: frame, outcome: .judged(judgement), entry: live.entry(sql, parsed: inspection))
        return .journal(judgement.record, action: judgement.decision.action, usedGrants: judgement.decision.usedGrants)
    }

    // MARK: The server

    mutating func upstreamFrame(_ frame: PostgresFrame) -> UpstreamAction {
        guard state == .live, live?.closing == false else { return .drop }
        if let violation = StatementGuard.pinViolation(frame) {
            // The server would now read text otherwise than the checks did (a function changed a pinned
            // setting): nothing more may reach it, and nothing more of it reaches the client.
            live!.closing = true
            endReason = endReason ?? "pinned setting changed: \(violation)"
            return .end(.pinnedSettingChanged(violation))
        }
        switch live!.tracker.received(frame.type, frame.body) {
        case .pass:
            return .toClient(frame)
        case .replace(let refusal):
            return .toClient(refusal.errorFrame)
        case .lost(let what):
            live!.closing = true
            endReason = endReason ?? "lost track of the server's prepared statements: \(what)"
            return .end(.namespaceLost(what))
        }
    }

    /// The server closed the connection.
    mutating func upstreamClosed() -> Action {
        guard state == .live, live?.closing == false else { return .none }
        // Nothing more goes either way: what the client sent in the same read is not forwarded.
        live!.closing = true
        endReason = endReason ?? "upstream server closed the connection"
        return .close
    }

    // MARK: Ending

    /// Ends the session from outside (an administrator, a revoked grant or token).
    ///
    /// From this moment nothing more the client sent reaches the server, whatever is in flight: what is
    /// held or waiting is dropped and its challenge cancelled.
    mutating func terminated(reason: String) -> [Action] {
        switch state {
        case .live:
            guard live?.closing == false else { return [] }
            live!.closing = true
            endReason = endReason ?? "terminated: \(reason)"
            var actions: [Action] = []
            if let held = live?.held {
                actions.append(.cancelChallenge(id: held.challenge.id, reason: "the session was terminated"))
            }
            live!.held = nil
            live!.inspecting = nil
            live!.recording = nil
            live!.backlog = []
            return actions + [.terminate(.terminated(reason))]
        case .starting:
            state = .closed
            endReason = endReason ?? "terminated: \(reason)"
            return [.terminate(.terminated(reason))]
        case .closed:
            return []
        }
    }

    /// The client's connection is gone.
    mutating func clientClosed() -> [Action] {
        defer { state = .closed }
        endReason = endReason ?? "client disconnected"
        if state == .live, let held = live?.held {
            return [.cancelChallenge(id: held.challenge.id, reason: "the client disconnected")]
        }
        return []
    }

    /// A FATAL for a failure outside the machine (a malformed frame the decoder refused).
    mutating func failed(_ message: ClientMessage) -> Action {
        endReason = endReason ?? message.fields.message
        switch state {
        case .starting:
            startup.peerClosed()
            state = .closed
        case .live:
            live?.closing = true
        case .closed:
            break
        }
        return .fatal(message)
    }
}
