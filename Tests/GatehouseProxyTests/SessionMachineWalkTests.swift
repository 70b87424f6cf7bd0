import Foundation
import GatehouseCore
import GatehouseTestSupport
import PostgresWire
import SQLInspection
import Testing

@testable import GatehouseProxy

/// Random walks through the live session machine: thousands of seeded sequences of every event it
/// takes (client frames of every kind, journal answers that come late or fail, holds that end every
/// way or not at all, cancels, server frames, the server or the client leaving, terminations), each
/// action list carried out as the handler would. Whatever the order, what must never happen does not.
@Suite("The session machine under random event sequences")
struct SessionMachineWalkTests {
    /// Texts the policy refuses outright (Bench.policy: no drops; unparsable text is denied).
    static let refused = ["drop table t", "selct 1"]
    /// Writes: held for a second factor or an approval.
    static let writes = ["insert into t values (1)", "delete from t where id = 1", "update t set a = 1 where id = 1"]
    static let long = "select 1 /* " + String(repeating: "x", count: Inspector.inlineTextBytes + 10) + " */"

    static let clientFrames: [PostgresFrame] =
        (["select 1", long] + refused + writes).map(Bench.query)
        + (["select 2"] + refused + writes).map { Bench.parse($0, name: "s") }
        + [
            Bench.frame(FrontendMessageType.bind, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Bench.frame(FrontendMessageType.execute, [0, 0, 0, 0, 0]),
            Bench.frame(FrontendMessageType.describe, [UInt8(ascii: "S"), 0]),
            Bench.frame(FrontendMessageType.sync), Bench.frame(FrontendMessageType.flush),
            Bench.frame(FrontendMessageType.close, [UInt8(ascii: "S"), UInt8(ascii: "s"), 0]),
            Bench.frame(FrontendMessageType.terminate), Bench.frame(UInt8(ascii: "z"), [1, 2, 3]),
        ]

    static let serverFrames: [PostgresFrame] = [
        Bench.frame(MessageType.readyForQuery, [UInt8(ascii: "I")]),
        Bench.frame(MessageType.readyForQuery, [UInt8(ascii: "T")]),
        Bench.frame(UInt8(ascii: "C"), Array("SELECT 1".utf8) + [0]),
        Bench.frame(UInt8(ascii: "D"), [0, 1, 0, 0, 0, 1, UInt8(ascii: "1")]),
    ]

    /// What one walk saw; the invariants are checked as it goes.
    struct Walk {
        var machine = Bench.live()
        var rng: SplitMix64
        let seed: UInt64
        var journals = 0
        var inspecting: String?
        var held: Challenge?
        var ended = false
        var released = false
        var log: [String] = []
        /// What the walks reached, so that a walk that never gets anywhere interesting cannot pass.
        var reached: [String: Int] = [:]

        init(seed: UInt64) {
            self.seed = seed
            rng = SplitMix64(seed: seed)
        }

        mutating func step() {
            let world = Bench.world(at: Bench.start.addingTimeInterval(Double(log.count)))
            var actions: [SessionStateMachine.Action]
            var releasing = false
            switch Int.random(in: 0..<36, using: &rng) {
            case 0...13:
                let frame = SessionMachineWalkTests.clientFrames.randomElement(using: &rng)!
                log.append("client \(Character(UnicodeScalar(frame.type)))")
                actions = [machine.clientFrame(frame, world: { world })]
            case 14...21:
                guard journals > 0 else { return }
                journals -= 1
                let kept = Int.random(in: 0..<8, using: &rng) > 0
                log.append("journaled \(kept)")
                actions = machine.recorded(kept, world: { world })
            case 22, 23:
                guard let sql = inspecting else { return }
                inspecting = nil
                log.append("inspected")
                actions = machine.inspected(Inspector.inspect(sql), world: { world })
            case 24...27:
                var challenge =
                    held
                    ?? Challenge(
                        id: "stale", kind: .stepUp, user: "alice", session: "s1", connection: "main", statement: "x",
                        fingerprint: "f", rules: [], reason: "r", approvers: [], approverStepUp: false, createdAt: Bench.start,
                        expiresAt: Bench.start.addingTimeInterval(120))
                let states: [Challenge.State] = [.verified, .approved, .denied, .failed, .expired, .cancelled]
                challenge.state = states.randomElement(using: &rng)!
                if Bool.random(using: &rng) { challenge.id = "stale" }
                releasing = challenge.state.releases && challenge.id == held?.id
                log.append("hold ended \(challenge.state) \(challenge.id)")
                actions = machine.holdEnded(challenge, world: { world })
                if challenge.id == held?.id { held = nil }
            case 28:
                log.append("cancel")
                actions = machine.cancelled(world: { world })
                held = nil
            case 29...33:
                let frame = SessionMachineWalkTests.serverFrames.randomElement(using: &rng)!
                log.append("server \(Character(UnicodeScalar(frame.type)))")
                if case .toClient = machine.upstreamFrame(frame) {
                    #expect(!ended, "a server frame reached the client after the end: \(trace)")
                }
                return
            case 34:
                log.append("terminated")
                actions = machine.terminated(reason: "walk")
                ended = true
                held = nil
            default:
                switch Int.random(in: 0..<3, using: &rng) {
                case 0:
                    log.append("upstream closed")
                    actions = [machine.upstreamClosed()]
                case 1:
                    log.append("client closed")
                    actions = machine.clientClosed()
                default:
                    log.append("failed")
                    actions = [machine.failed(.protocolViolation("walk"))]
                }
                ended = true
                held = nil
            }
            check(actions, releasing: releasing)
        }

        var trace: String { "seed \(seed): " + log.suffix(16).joined(separator: " → ") }

        mutating func check(_ actions: [SessionStateMachine.Action], releasing: Bool) {
            if releasing { released = true }
            var openedHold = false
            for action in actions {
                switch action {
                case .forward:
                    reached["forward", default: 0] += 1
                    #expect(!ended, "a frame went upstream after the session ended: \(trace)")
                    #expect(!openedHold, "a frame went upstream behind a new hold: \(trace)")
                    if let sql = action.forwardedSQL {
                        #expect(!SessionMachineWalkTests.refused.contains(sql), "\(sql) ran: \(trace)")
                        if SessionMachineWalkTests.writes.contains(sql) {
                            reached["write ran", default: 0] += 1
                            #expect(released, "\(sql) ran before any hold was released: \(trace)")
                        }
                    }
                case .journal(_, let decided, _):
                    journals += 1
                    reached["journal \(decided)", default: 0] += 1
                case .inspect(let sql):
                    reached["inspect", default: 0] += 1
                    inspecting = sql
                case .hold(let challenge):
                    #expect(held == nil, "a second hold while one is open: \(trace)")
                    held = challenge
                    openedHold = true
                    reached["hold", default: 0] += 1
                case .terminate, .fatal, .close, .refuseStart:
                    reached["end", default: 0] += 1
                    ended = true
                case .startup, .completeStartup:
                    Issue.record("a startup action in a live session: \(action) \(trace)")
                case .cancelChallenge, .rememberDevice, .resume, .none:
                    break
                }
            }
            if held != nil { #expect(!machine.readsClient, "the client is read while a statement is held: \(trace)") }
        }
    }

    @Test("3,000 walks of 60 events: nothing refused runs, no write runs unreleased, nothing passes after the end")
    func walks() {
        var reached: [String: Int] = [:]
        for seed in UInt64(1)...3000 {
            var walk = Walk(seed: seed)
            for _ in 0..<60 { walk.step() }
            reached.merge(walk.reached, uniquingKeysWith: +)
        }
        for what in [
            "forward", "write ran", "journal deny", "journal allow", "journal stepUp", "journal approve", "inspect", "hold",
            "end",
        ] {
            #expect(reached[what, default: 0] >= 50, "the walks reached '\(what)' \(reached[what, default: 0]) times: \(reached)")
        }
    }
}
