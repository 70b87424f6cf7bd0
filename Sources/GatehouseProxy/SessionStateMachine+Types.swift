import GatehouseCore
import GatehousePolicy
import PostgresWire
import SQLInspection

// What the live session holds, and the actions the machine asks of its handler.
extension SessionStateMachine {
    /// The live session.
    struct Live: Sendable {
        var statementGuard: StatementGuard
        var judge: StatementJudge
        /// What the session's statement and portal names stand for on the server.
        var tracker: StatementTracker
        /// A long statement text being inspected off the event loop.
        var inspecting: (frame: PostgresFrame, sql: String)?
        /// The statement being recorded: its verdict is carried out once its record is journaled.
        var recording: Pending?
        /// A statement waiting for step-up or approval.
        var held: Held?
        /// What the client sent after a held (or recording) statement, in order.
        var backlog: [PostgresFrame] = []
        /// Set when the gateway ends the session: no frame goes either way any more.
        var closing = false

        /// A statement is held or being recorded: what the client sends waits.
        var isWaiting: Bool { held != nil || recording != nil || inspecting != nil }

        /// Sends `frame` to the server, the tracker following (`entry`: the judged text of a Parse or
        /// Query; `refusal`: the frame is a marker, answered with this).
        mutating func send(
            _ frame: PostgresFrame, entry: StatementTracker.Entry? = nil, refusal: ErrorNoticeFields? = nil
        )
            -> Action
        {
            tracker.sent(frame, entry: entry, refusal: refusal)
            return .forward(frame)
        }

        /// What EXECUTE and FETCH in SQL sent now may run.
        var prepared: PreparedStatements.Lookup {
            let tracker = tracker
            return PreparedStatements.Lookup(
                statement: { name in tracker.statementCandidates(Array(name.utf8))?.compactMap(\.inspection.statements.first) },
                cursor: { name in tracker.portalCandidates(Array(name.utf8))?.compactMap(\.inspection.statements.first) })
        }

        /// The tracker's entry for a statement text judged now, as it will run.
        func entry(_ sql: String, parsed: Inspection) -> StatementTracker.Entry {
            StatementTracker.Entry(id: judge.lastNumber, sql: sql, inspection: parsed, cycle: tracker.cycle)
        }
    }

    struct Pending: Sendable {
        var frame: PostgresFrame
        var outcome: Outcome
        /// For a statement text: what the tracker keeps of it once sent.
        var entry: StatementTracker.Entry?

        enum Outcome: Sendable {
            /// Judged: carry out the judgement's verdict.
            case judged(StatementJudge.Judgement)
            /// Refused before any judgement: send the marker frame in its place, answered with `refusal`.
            case unjudged(PostgresFrame, refusal: ErrorNoticeFields)
        }
    }

    struct Held: Sendable {
        var frame: PostgresFrame
        var challenge: Challenge
        var entry: StatementTracker.Entry?
    }

    enum Action: Sendable, Equatable {
        // Startup.
        /// A step of startup and authentication, as `ClientStateMachine` decides it (its FATAL, close and
        /// nothing arrive as this machine's own `.fatal`, `.close` and `.none`).
        case startup(ClientStateMachine.Action)
        /// Send AuthenticationOk, the upstream's parameters, the gateway's cancel key and ReadyForQuery,
        /// then relay.
        case completeStartup(UpstreamStartup)
        /// The session cannot start after all: it leaves the registry, its upstream connection is
        /// closed, and the client gets this FATAL.
        case refuseStart(ClientMessage)

        // The live session.
        /// Write this frame to the server.
        case forward(PostgresFrame)
        /// Inspect this long statement text away from the event loop (a thread with a large stack, so the
        /// loop's other sessions go on meanwhile), then report with `inspected(_:world:)`.
        case inspect(String)
        /// Journal this record (noting the grants the decision relied on), then report with `recorded(_:)`.
        case journal(AuditRecord, action: PolicyAction, usedGrants: [String])
        /// Tell the client it waits (a NoticeResponse, flushed with what came before it), then open the
        /// challenge; its outcome comes back as `holdEnded(_:)`.
        case hold(Challenge)
        case cancelChallenge(id: String, reason: String)
        /// The user proved a second factor from this source and client: remember them as a known device.
        case rememberDevice
        /// Flush what was written to the server, and read from the client again.
        case resume
        /// End the session from the gateway's side: cancel the backend's running statement and end the
        /// backend, close the upstream connection, leave the registry, send this FATAL and close.
        case terminate(ClientMessage)

        // Either.
        /// Send this FATAL (after what the server sent), then close; the upstream connection is closed.
        case fatal(ClientMessage)
        /// Close without a message.
        case close
        case none
    }

    /// What to do with one frame of the server.
    enum UpstreamAction: Sendable, Equatable {
        case toClient(PostgresFrame)
        /// The session cannot go on (a pinned setting changed, the namespace is lost): FATAL, and close both ends.
        case end(ClientMessage)
        case drop
    }
}
