import Foundation
import GatehouseCore
import GatehousePolicy
import GatehouseTestSupport
import NIOCore
import PostgresWire
import SQLInspection
import Testing

@_spi(Fuzzing) @testable import GatehouseProxy

/// Frames of the extended protocol, both ways, for tests of the tracker and the machine.
enum Wire {
    static func cString(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }

    static func bind(_ portal: String = "", _ statement: String = "") -> PostgresFrame {
        Bench.frame(FrontendMessageType.bind, cString(portal) + cString(statement) + [0, 0, 0, 0, 0, 0])
    }

    static func execute(_ portal: String = "") -> PostgresFrame {
        Bench.frame(FrontendMessageType.execute, cString(portal) + [0, 0, 0, 0])
    }

    static func close(statement name: String) -> PostgresFrame {
        Bench.frame(FrontendMessageType.close, [UInt8(ascii: "S")] + cString(name))
    }

    static func close(portal name: String) -> PostgresFrame {
        Bench.frame(FrontendMessageType.close, [UInt8(ascii: "P")] + cString(name))
    }

    static let describe = Bench.frame(FrontendMessageType.describe, [UInt8(ascii: "P"), 0])
    static let sync = Bench.frame(FrontendMessageType.sync)
    static let flush = Bench.frame(FrontendMessageType.flush)
    static let copyData = Bench.frame(FrontendMessageType.copyData, [0x31, 0x0A])
    static let copyDone = Bench.frame(FrontendMessageType.copyDone)

    // The server's side.
    static let parseComplete = Bench.frame(UInt8(ascii: "1"))
    static let bindComplete = Bench.frame(UInt8(ascii: "2"))
    static let closeComplete = Bench.frame(UInt8(ascii: "3"))
    static let noData = Bench.frame(UInt8(ascii: "n"))
    static let copyInResponse = Bench.frame(UInt8(ascii: "G"), [0, 0, 0])
    static let portalSuspended = Bench.frame(UInt8(ascii: "s"))

    static func complete(_ tag: String) -> PostgresFrame { Bench.frame(UInt8(ascii: "C"), cString(tag)) }

    static func ready(_ status: Character = "I") -> PostgresFrame {
        Bench.frame(MessageType.readyForQuery, [status.asciiValue!])
    }

    static func error(_ message: String = "duplicate prepared statement") -> PostgresFrame {
        ErrorNoticeFields(severity: "ERROR", sqlState: "42P05", message: message).errorFrame
    }
}

@Suite("The statement tracker: the server's namespace as the server's answers shape it")
struct StatementTrackerTests {
    static let marker = "gatehouse_refused_tracker"

    static func entry(_ id: Int, _ sql: String, cycle: Int = 0) -> StatementTracker.Entry {
        StatementTracker.Entry(id: id, sql: sql, inspection: Inspector.inspect(sql), cycle: cycle)
    }

    /// Sends frames (a Parse or Query with its entry) and answers with server frames; every answer must fit.
    struct Run {
        var tracker = StatementTracker(marker: StatementTrackerTests.marker)

        mutating func send(_ frames: PostgresFrame...) {
            for frame in frames { tracker.sent(frame) }
        }

        mutating func send(_ frame: PostgresFrame, _ entry: StatementTracker.Entry) {
            tracker.sent(frame, entry: entry)
        }

        mutating func answer(_ frames: PostgresFrame..., sourceLocation: SourceLocation = #_sourceLocation) {
            for frame in frames {
                let answer = tracker.received(frame.type, frame.body)
                #expect(answer == .pass, "the server's \(frame.typeName) must fit", sourceLocation: sourceLocation)
            }
        }

        func statement(_ name: String) -> [String]? { tracker.statementCandidates(Array(name.utf8))?.map(\.sql) }
        func portal(_ name: String) -> [String]? { tracker.portalCandidates(Array(name.utf8))?.map(\.sql) }
    }

    @Test func aParseTheServerRefusesNeverReplacesTheStatementThatStays() {
        var run = Run()
        run.send(Bench.parse("delete from t", name: "s"), Self.entry(1, "delete from t"))
        run.send(Wire.sync)
        run.answer(Wire.parseComplete, Wire.ready())
        #expect(run.statement("s") == ["delete from t"])
        // The same name again: the server says 42P05 and keeps the DELETE.
        run.send(Bench.parse("select 1", name: "s"), Self.entry(2, "select 1", cycle: 1))
        run.send(Wire.sync)
        #expect(run.statement("s") == ["delete from t", "select 1"], "until the server answers, both are candidates")
        run.answer(Wire.error(), Wire.ready())
        #expect(run.statement("s") == ["delete from t"])
        run.send(Wire.bind("p", "s"))
        #expect(run.portal("p") == ["delete from t"], "a Bind of this cycle is the portal's only candidate")
    }

    @Test func withinACycleTheLatestParseIsTheOnlyCandidate() {
        var run = Run()
        run.send(Bench.parse("delete from t"), Self.entry(1, "delete from t"))
        run.send(Wire.sync)
        run.answer(Wire.parseComplete, Wire.ready())
        run.send(Bench.parse("select 1"), Self.entry(2, "select 1", cycle: 1))
        run.send(Wire.bind())
        // If the Parse fails the server skips the Bind and the Execute: only the new text can run.
        #expect(run.portal("") == ["select 1"])
        #expect(run.tracker.isFirstRunOfThisCycle([]))
        run.send(Wire.execute())
        #expect(!run.tracker.isFirstRunOfThisCycle([]), "a second Execute in the cycle is judged again")
    }

    @Test func aCloseSkippedAfterAnErrorKeepsTheStatement() {
        var run = Run()
        run.send(Bench.parse("delete from t", name: "s"), Self.entry(1, "delete from t"))
        run.send(Wire.sync)
        run.answer(Wire.parseComplete, Wire.ready())
        // A Bind to a statement that does not exist fails; the Close after it is skipped.
        run.send(Wire.bind("", "nope"), Wire.close(statement: "s"), Wire.sync)
        run.answer(Wire.error("prepared statement \"nope\" does not exist"), Wire.ready())
        #expect(run.statement("s") == ["delete from t"])
        #expect(run.tracker.pending.isEmpty)
        run.send(Wire.close(statement: "s"), Wire.sync)
        run.answer(Wire.closeComplete, Wire.ready())
        #expect(run.statement("s") == nil)
    }

    @Test func messagesSentAfterAnErrorUpToTheSyncAreSkipped() {
        var run = Run()
        run.send(Bench.parse("select 1", name: "s"), Self.entry(1, "select 1"))
        run.answer(Wire.error())
        #expect(run.tracker.cycleDoomed)
        run.send(Wire.bind("", "s"), Wire.execute())
        run.send(Wire.sync)
        #expect(!run.tracker.cycleDoomed)
        run.answer(Wire.ready())
        #expect(run.tracker.pending.isEmpty)
    }

    @Test func theUnnamedStatementIsDroppedByAFailedUnnamedParseAndBySimpleQueries() {
        var run = Run()
        run.send(Bench.parse("delete from t"), Self.entry(1, "delete from t"))
        run.send(Wire.sync)
        run.answer(Wire.parseComplete, Wire.ready())
        run.send(Bench.parse("selec 1"), Self.entry(2, "selec 1", cycle: 1))
        run.send(Wire.sync)
        run.answer(Wire.error("syntax error"), Wire.ready())
        #expect(run.statement("") == nil, "the server dropped the old unnamed statement before parsing")
        run.send(Bench.parse("delete from t"), Self.entry(3, "delete from t", cycle: 2))
        run.send(Wire.sync)
        run.answer(Wire.parseComplete, Wire.ready())
        run.send(Bench.query("select 1"), Self.entry(4, "select 1", cycle: 3))
        run.answer(Bench.frame(UInt8(ascii: "T"), [0, 0]), Wire.complete("SELECT 1"), Wire.ready())
        #expect(run.statement("") == nil)
    }

    @Test func portalsEndWithTheirTransaction() {
        var run = Run()
        run.send(Bench.query("begin"), Self.entry(1, "begin"))
        run.answer(Wire.complete("BEGIN"), Wire.ready("T"))
        run.send(Bench.parse("select 1"), Self.entry(2, "select 1", cycle: 1))
        run.send(Wire.bind("p"), Wire.sync)
        run.answer(Wire.parseComplete, Wire.bindComplete, Wire.ready("T"))
        #expect(run.portal("p") == ["select 1"], "a portal outlives Sync inside a transaction")
        run.send(Bench.query("commit"), Self.entry(3, "commit", cycle: 2))
        run.answer(Wire.complete("COMMIT"), Wire.ready("I"))
        #expect(run.portal("p") == nil)
    }

    @Test func sqlPrepareDeallocateAndDeclareShareTheNamespace() {
        var run = Run()
        run.send(
            Bench.query("prepare a as select 1; prepare a as delete from t"),
            Self.entry(1, "prepare a as select 1; prepare a as delete from t"))
        #expect(run.statement("a") == ["prepare a as select 1", "prepare a as delete from t"])
        // The second PREPARE fails: only the first completed.
        run.answer(Wire.complete("PREPARE"), Wire.error(), Wire.ready())
        #expect(run.statement("a") == ["prepare a as select 1"])
        run.send(Bench.query("deallocate all"), Self.entry(2, "deallocate all", cycle: 1))
        run.answer(Wire.complete("DEALLOCATE ALL"), Wire.ready())
        #expect(run.statement("a") == nil)
        run.send(
            Bench.query("begin; declare c cursor for select * from t"),
            Self.entry(3, "begin; declare c cursor for select * from t", cycle: 2))
        run.answer(Wire.complete("BEGIN"), Wire.complete("DECLARE CURSOR"), Wire.ready("T"))
        #expect(run.portal("c") == ["declare c cursor for select * from t"])
    }

    @Test func aPortalOfAStatementSQLPreparedRunsItsQueryNotAPrepare() {
        // Found by the namespace fuzz: the PREPARE's facts must not expect the tag PREPARE at Execute.
        var run = Run()
        run.send(Bench.query("prepare a as select 3"), Self.entry(1, "prepare a as select 3"))
        run.answer(Wire.complete("PREPARE"), Wire.ready())
        run.send(Wire.bind("p", "a"), Wire.execute("p"), Wire.sync)
        #expect(run.portal("p") == ["prepare a as select 3"])
        run.answer(Wire.bindComplete, Wire.complete("SELECT 1"), Wire.ready())
        #expect(run.tracker.pending.isEmpty)
    }

    @Test func aCursorPortalRunsItsQueryAndAProtocolPrepareRunsThePrepare() {
        // Found by the namespace fuzz: an Execute of a declared cursor completes as its SELECT.
        var run = Run()
        run.send(Bench.query("begin"), Self.entry(1, "begin"))
        run.answer(Wire.complete("BEGIN"), Wire.ready("T"))
        run.send(Bench.query("declare c cursor for select 5"), Self.entry(2, "declare c cursor for select 5", cycle: 1))
        run.answer(Wire.complete("DECLARE CURSOR"), Wire.ready("T"))
        run.send(Wire.execute("c"), Wire.sync)
        run.answer(Wire.complete("SELECT 1"), Wire.ready("T"))
        #expect(run.portal("c") == ["declare c cursor for select 5"])
        // A PREPARE parsed through the protocol and executed is a PREPARE: it names a statement.
        run.send(Bench.parse("prepare b as select 2", name: "a"), Self.entry(3, "prepare b as select 2", cycle: 3))
        run.send(Wire.bind("", "a"), Wire.execute(), Wire.sync)
        run.answer(Wire.parseComplete, Wire.bindComplete, Wire.complete("PREPARE"), Wire.ready("T"))
        #expect(run.statement("b") == ["prepare b as select 2"])
    }

    @Test func anErrorInAFailedTransactionBlockKeepsItsPortals() {
        // Found by the namespace fuzz: the server aborts a failed block only once, so a portal bound
        // there (only a COMMIT or ROLLBACK can be) outlives the errors after it, until the block ends.
        var run = Run()
        run.send(Bench.parse("commit", name: "a"), Self.entry(1, "commit"))
        run.send(Wire.sync)
        run.answer(Wire.parseComplete, Wire.ready("E"))
        run.send(Wire.bind("", "a"), Wire.sync)
        run.answer(Wire.bindComplete, Wire.ready("E"))
        run.send(Bench.parse("select 1", name: "b"), Self.entry(2, "select 1", cycle: 2))
        run.send(Wire.sync)
        run.answer(Wire.error("current transaction is aborted"), Wire.ready("E"))
        #expect(run.portal("") == ["commit"])
        // The block ends: so do its portals, within the cycle already.
        run.send(Wire.execute(), Wire.execute(), Wire.sync)
        run.answer(Wire.complete("ROLLBACK"))
        #expect(run.tracker.portals.isEmpty)
        run.answer(Wire.error("portal \"\" does not exist"), Wire.ready("I"))
        // In an open block an error forgets every portal: the server keeps them failed, never to run.
        run.send(Bench.query("begin"), Self.entry(3, "begin", cycle: 4))
        run.answer(Wire.complete("BEGIN"), Wire.ready("T"))
        run.send(Bench.parse("select 1"), Self.entry(4, "select 1", cycle: 5))
        run.send(Wire.bind("p"), Wire.sync)
        run.answer(Wire.parseComplete, Wire.bindComplete, Wire.ready("T"))
        run.send(Bench.query("select 1/0"), Self.entry(5, "select 1/0", cycle: 6))
        run.answer(Wire.error("division by zero"), Wire.ready("E"))
        #expect(run.portal("p") == nil)
    }

    @Test func aCommandTagThatDoesNotFitTheStatementLosesTheNamespace() {
        var tracker = StatementTracker(marker: Self.marker)
        tracker.sent(Bench.query("prepare a as select 1"), entry: Self.entry(1, "prepare a as select 1"))
        let tag = Wire.complete("SELECT 1")
        guard case .lost = tracker.received(tag.type, tag.body) else {
            Issue.record("a PREPARE completed as something else must not be trusted")
            return
        }
        var other = StatementTracker(marker: Self.marker)
        guard case .lost = other.received(Wire.bindComplete.type, Wire.bindComplete.body) else {
            Issue.record("an answer to nothing sent must not be trusted")
            return
        }
    }

    @Test func copyFromStdinSwallowsTheSyncsSentDuringIt() {
        var run = Run()
        run.send(Bench.parse("copy t from stdin"), Self.entry(1, "copy t from stdin"))
        run.send(Wire.bind(), Wire.execute(), Wire.sync)
        run.answer(Wire.parseComplete, Wire.bindComplete, Wire.copyInResponse)
        run.send(Wire.copyData, Wire.copyDone, Wire.sync)
        // The Sync after the Execute was read by the COPY: one ReadyForQuery, for the Sync after CopyDone.
        run.answer(Wire.complete("COPY 1"), Wire.ready())
        #expect(run.tracker.pending.isEmpty)
    }

    @Test func aRowLimitedPortalIsExecutedAgainAfterPortalSuspended() {
        var run = Run()
        run.send(Bench.query("begin"), Self.entry(1, "begin"))
        run.answer(Wire.complete("BEGIN"), Wire.ready("T"))
        run.send(Bench.parse("select * from t"), Self.entry(2, "select * from t", cycle: 1))
        run.send(Wire.bind("p"), Wire.execute("p"), Wire.sync)
        run.answer(Wire.parseComplete, Wire.bindComplete, Wire.portalSuspended, Wire.ready("T"))
        run.send(Wire.execute("p"), Wire.sync)
        #expect(run.portal("p") == ["select * from t"])
        #expect(!run.tracker.isFirstRunOfThisCycle(Array("p".utf8)), "bound in an earlier cycle: judged again")
        run.answer(Wire.complete("SELECT 3"), Wire.ready("T"))
    }
}

@Suite("Every execution is judged in the world of its moment")
struct ExecutionJudgementTests {
    static let policy = Bench.compile(
        """
          rules:
            - {name: no-drop, match: {kinds: [drop], elevated: false}, action: deny, message: no drops}
            - {name: late-writes, match: {writes: true, session_age: 1h}, action: step_up, step_up: {method: totp}}
        """)

    static func world(after seconds: TimeInterval = 0, grants: [ActiveGrant] = []) -> StatementJudge.World {
        Bench.world(at: Bench.start.addingTimeInterval(seconds), grants: grants, policy: policy)
    }

    static func send(
        _ machine: inout SessionStateMachine, _ frames: [PostgresFrame], world: StatementJudge.World
    ) -> (actions: [SessionStateMachine.Action], records: [AuditRecord]) {
        var actions: [SessionStateMachine.Action] = []
        var records: [AuditRecord] = []
        for frame in frames {
            let (done, journaled) = SessionStateMachineTests.send(&machine, frame, world: world)
            actions += done
            records += journaled
        }
        return (actions, records)
    }

    static func answer(_ machine: inout SessionStateMachine, _ frames: PostgresFrame...) {
        for frame in frames {
            #expect(machine.upstreamFrame(frame) == .toClient(frame), "the server's \(frame.typeName) passes")
        }
    }

    /// The frames sent to the server, by type.
    static func forwarded(_ actions: [SessionStateMachine.Action]) -> [String] {
        actions.compactMap {
            guard case .forward(let frame) = $0 else { return nil }
            if frame.type == FrontendMessageType.parse, let parse = try? ParseMessage.decode(frame.body),
                parse.sql.hasPrefix("gatehouse_refused")
            {
                return "marker"
            }
            return frame.typeName
        }
    }

    @Test func aStatementParsedEarlyIsHeldAtAnExecuteThatALaterRuleCatches() {
        var machine = Bench.live()
        var (actions, records) = Self.send(
            &machine, [Bench.parse("update t set a = 1", name: "s"), Wire.sync], world: Self.world(after: 60))
        #expect(Self.forwarded(actions) == ["P", "S"], "a young session's write runs")
        #expect(records.count == 1)
        #expect(records[0].detail["statement_number"] == "1")
        Self.answer(&machine, Wire.parseComplete, Wire.ready())
        // Two hours later: the same statement, bound and executed, is a late write.
        (actions, records) = Self.send(
            &machine, [Wire.bind("", "s"), Wire.execute(), Wire.sync], world: Self.world(after: 7200))
        #expect(Self.forwarded(actions) == ["B"], "the Execute waits for its step-up, the Sync behind it")
        #expect(records.count == 1)
        #expect(records.first?.type == .statementHeld)
        #expect(records.first?.detail["execution_of"] == "1")
        #expect(records.first?.detail["rules"] == "late-writes")
        guard case .hold(var challenge)? = actions.first(where: { if case .hold = $0 { true } else { false } }) else {
            Issue.record("expected a hold, got \(actions)")
            return
        }
        #expect(challenge.statement == "update t set a = 1")
        challenge.state = .verified
        let released = machine.holdEnded(challenge, world: { Self.world(after: 7210) })
        #expect(Self.forwarded(released) == ["E", "S"], "after the proof the Execute runs")
    }

    @Test func aPortalExecutedAgainAfterItsGrantEndsIsRefused() {
        var machine = Bench.live()
        let grant = ActiveGrant(id: "g1", role: "dba", expiresAt: Bench.start.addingTimeInterval(600))
        var (actions, records) = Self.send(&machine, [Bench.query("begin")], world: Self.world())
        Self.answer(&machine, Wire.complete("BEGIN"), Wire.ready("T"))
        (actions, records) = Self.send(
            &machine, [Bench.parse("drop table t"), Wire.bind("p"), Wire.execute("p"), Wire.sync],
            world: Self.world(after: 10, grants: [grant]))
        #expect(Self.forwarded(actions) == ["P", "B", "E", "S"], "under the grant the drop runs")
        #expect(records.count == 1, "the Parse's decision is its first run's")
        Self.answer(&machine, Wire.parseComplete, Wire.bindComplete, Wire.complete("DROP TABLE"), Wire.ready("T"))
        (actions, records) = Self.send(&machine, [Wire.execute("p"), Wire.sync], world: Self.world(after: 700))
        #expect(Self.forwarded(actions) == ["marker", "S"], "the grant has ended: the Execute is refused")
        #expect(records.first?.type == .statementDenied)
        #expect(records.first?.detail["execution_of"] == "2", "the DROP's text was the session's second")
        #expect(records.first?.detail["portal"] == "p")
        // The server rejects the marker; the client reads the refusal, and the transaction is failed.
        let serverError = ErrorNoticeFields(severity: "ERROR", sqlState: "42601", message: "at \"gatehouse_refused_test\"")
        guard case .toClient(let reply) = machine.upstreamFrame(serverError.errorFrame) else {
            Issue.record("the refusal reaches the client")
            return
        }
        #expect(ErrorNoticeFields.decode(reply.body).message?.contains("no drops") == true)
        Self.answer(&machine, Wire.ready("E"))
    }

    @Test func anExecuteOfAPortalTheGatewayNeverSawBoundIsRefused() {
        var machine = Bench.live()
        let (actions, records) = Self.send(&machine, [Wire.execute("c"), Wire.sync], world: Self.world())
        #expect(Self.forwarded(actions) == ["marker", "S"])
        #expect(records.first?.type == .statementDenied)
        #expect(records.first?.detail["reason"]?.contains("portal \"c\" is not bound") == true)
    }

    @Test func anExecuteInACycleTheServerSkipsIsNotJudged() {
        var machine = Bench.live()
        let (actions, records) = Self.send(
            &machine, [Bench.parse("drop table t"), Wire.bind(), Wire.execute(), Wire.sync], world: Self.world())
        #expect(Self.forwarded(actions) == ["marker", "B", "E", "S"], "after the marker the server skips to the Sync")
        #expect(records.count == 1, "only the refused Parse is a decision")
    }

    @Test func eachExecutionOfAPreparedStatementIsAuditedPointingAtItsText() {
        var machine = Bench.live()
        _ = Self.send(&machine, [Bench.parse("select * from t", name: "q"), Wire.sync], world: Self.world())
        Self.answer(&machine, Wire.parseComplete, Wire.ready())
        var all: [AuditRecord] = []
        for run in 1...3 {
            let (actions, records) = Self.send(
                &machine, [Wire.bind("", "q"), Wire.execute(), Wire.sync], world: Self.world(after: Double(run)))
            #expect(Self.forwarded(actions) == ["B", "E", "S"])
            Self.answer(&machine, Wire.bindComplete, Wire.complete("SELECT 0"), Wire.ready())
            all += records
        }
        #expect(all.map(\.type) == [.statementAllowed, .statementAllowed, .statementAllowed])
        #expect(all.allSatisfy { $0.detail["execution_of"] == "1" })
    }

    @Test func sqlExecuteOfAProtocolStatementIsJudgedByItsText() {
        var machine = Bench.live()
        _ = Self.send(&machine, [Bench.parse("drop table t", name: "d")], world: Self.world())
        // Refused at Parse; the server never has it. A harmless statement under that name cannot be swapped.
        _ = Self.send(&machine, [Bench.parse("select 1", name: "s"), Wire.sync], world: Self.world())
        let (_, records) = Self.send(&machine, [Bench.query("execute d")], world: Self.world())
        #expect(records.first?.type == .statementDenied, "EXECUTE of a name never prepared here is unclassified")
    }
}

@Suite("The statement tracker under random messages")
struct StatementTrackerRandomTests {
    @Test("random messages both ways never trap it nor make it answer an error with a refusal never sent")
    func randomMessages() {
        var random = SplitMix64(seed: 0x5EED_0016)
        var applied = 0
        for _ in 0..<3000 {
            let bytes = (0..<Int(random.next() % 160)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            applied += StatementTrackerFuzz.run(bytes)
        }
        #expect(applied > 50_000, "the walks must get somewhere before the tracker gives up: \(applied)")
    }
}

@Suite("A decision is reused only while all it was made under holds")
struct DecisionReuseTests {
    typealias Run = ExecutionJudgementTests

    static let timeless = Bench.compile(
        """
          rules:
            - {name: no-secret, match: {tables: [secret.*]}, action: deny, message: not the secret schema}
            - {name: dba-writes, match: {writes: true, roles: [dba]}, action: allow}
            - {name: no-writes, match: {writes: true, elevated: false}, action: deny, message: read-only}
        """)

    static func world(
        after seconds: TimeInterval = 0, grants: [ActiveGrant] = [], policy: CompiledPolicy = timeless
    ) -> StatementJudge.World {
        Bench.world(at: Bench.start.addingTimeInterval(seconds), grants: grants, policy: policy)
    }

    /// Binds and executes statement `name` once; what went to the server and the execution's record.
    static func execute(
        _ machine: inout SessionStateMachine, _ name: String, world: StatementJudge.World, refused: Bool = false
    ) -> (forwarded: [String], record: AuditRecord?) {
        let (actions, records) = Run.send(&machine, [Wire.bind("", name), Wire.execute(), Wire.sync], world: world)
        if refused {
            Run.answer(&machine, Wire.bindComplete)
            _ = machine.upstreamFrame(
                ErrorNoticeFields(severity: "ERROR", sqlState: "42601", message: "at \"gatehouse_refused_test\"")
                    .errorFrame)
            Run.answer(&machine, Wire.ready())
        } else {
            Run.answer(&machine, Wire.bindComplete, Wire.complete("SELECT 0"), Wire.ready())
        }
        return (Run.forwarded(actions), records.first)
    }

    static func prepared(_ sql: String, name: String, world: StatementJudge.World) -> SessionStateMachine {
        var machine = Bench.live()
        _ = Run.send(&machine, [Bench.parse(sql, name: name), Wire.sync], world: world)
        Run.answer(&machine, Wire.parseComplete, Wire.ready())
        return machine
    }

    @Test func aNewPolicyDecidesTheNextExecution() {
        var machine = Self.prepared("select * from t", name: "q", world: Self.world())
        for run in 1...3 {
            #expect(Self.execute(&machine, "q", world: Self.world(after: Double(run))).forwarded == ["B", "E", "S"])
        }
        let stricter = Bench.compile(
            """
              rules:
                - {name: no-t, match: {tables: [t]}, action: deny, message: t is closed}
            """)
        let (forwarded, record) = Self.execute(
            &machine, "q", world: Self.world(after: 4, policy: stricter), refused: true)
        #expect(forwarded == ["B", "marker", "S"], "the reloaded policy applies to the next run")
        #expect(record?.detail["rules"] == "no-t")
        #expect(Self.execute(&machine, "q", world: Self.world(after: 5)).forwarded == ["B", "E", "S"])
    }

    @Test func aGrantThatRunsOutEndsTheReuseEvenIfStillListed() {
        let grant = ActiveGrant(id: "g1", role: "dba", expiresAt: Bench.start.addingTimeInterval(600))
        var machine = Self.prepared("delete from t", name: "d", world: Self.world(grants: [grant]))
        for run in [10.0, 20, 599] {
            let (forwarded, record) = Self.execute(&machine, "d", world: Self.world(after: run, grants: [grant]))
            #expect(forwarded == ["B", "E", "S"], "under the grant at \(run)s")
            #expect(record?.detail["grants"] == "g1", "each run says it used the grant")
        }
        // The world still lists the grant (its session has not heard yet), but its time is up.
        let (forwarded, record) = Self.execute(
            &machine, "d", world: Self.world(after: 600, grants: [grant]), refused: true)
        #expect(forwarded == ["B", "marker", "S"])
        #expect(record?.detail["rules"] == "no-writes")
    }

    @Test func theGrantsOfEachMomentDecide() {
        let grant = ActiveGrant(id: "g2", role: "dba", expiresAt: Bench.start.addingTimeInterval(600))
        var machine = Self.prepared("delete from t", name: "d", world: Self.world(grants: [grant]))
        #expect(Self.execute(&machine, "d", world: Self.world(after: 1, grants: [grant])).forwarded == ["B", "E", "S"])
        let revoked = Self.execute(&machine, "d", world: Self.world(after: 2), refused: true)
        #expect(revoked.forwarded == ["B", "marker", "S"], "revoked: the next run is refused")
        let renewed = ActiveGrant(id: "g3", role: "dba", expiresAt: Bench.start.addingTimeInterval(900))
        let again = Self.execute(&machine, "d", world: Self.world(after: 3, grants: [renewed]))
        #expect(again.forwarded == ["B", "E", "S"])
        #expect(again.record?.detail["grants"] == "g3", "the run names the grant of its moment")
    }

    @Test func aSearchPathSetLaterChangesWhatAnUnqualifiedNameMayBe() {
        var machine = Self.prepared("select * from pay", name: "q", world: Self.world())
        #expect(Self.execute(&machine, "q", world: Self.world(after: 1)).forwarded == ["B", "E", "S"])
        _ = Run.send(&machine, [Bench.query("set search_path = secret, public")], world: Self.world(after: 2))
        Run.answer(&machine, Wire.complete("SET"), Wire.ready())
        let (forwarded, record) = Self.execute(&machine, "q", world: Self.world(after: 3), refused: true)
        #expect(forwarded == ["B", "marker", "S"], "pay may now be secret.pay")
        #expect(record?.detail["rules"] == "no-secret")
    }

    @Test func aReadNoTimeRuleFitsIsReusedWhileAWriteIsJudgedByTheClock() {
        // late-writes (session_age 1h) speaks of writes only.
        var machine = Self.prepared("select * from t", name: "r", world: Run.world())
        _ = Run.send(&machine, [Bench.parse("update t set a = 1", name: "w"), Wire.sync], world: Run.world())
        Run.answer(&machine, Wire.parseComplete, Wire.ready())
        for at in [60.0, 3601] {
            #expect(Self.execute(&machine, "r", world: Run.world(after: at)).forwarded == ["B", "E", "S"])
        }
        let (actions, records) = Run.send(
            &machine, [Wire.bind("", "w"), Wire.execute(), Wire.sync], world: Run.world(after: 3602))
        #expect(Run.forwarded(actions) == ["B"], "the write waits for its step-up")
        #expect(records.first?.type == .statementHeld)
    }

    @Test func aTimeRuleIsJudgedAtEveryExecution() {
        // The policy of the suite above reads the clock (session_age): nothing is reused.
        var machine = Self.prepared("update t set a = 1", name: "u", world: Run.world())
        #expect(Self.execute(&machine, "u", world: Run.world(after: 60)).forwarded == ["B", "E", "S"])
        let (actions, records) = Run.send(
            &machine, [Wire.bind("", "u"), Wire.execute(), Wire.sync], world: Run.world(after: 3601))
        #expect(Run.forwarded(actions) == ["B"], "an hour on, the same statement waits for a step-up")
        #expect(records.first?.type == .statementHeld)
    }
}
