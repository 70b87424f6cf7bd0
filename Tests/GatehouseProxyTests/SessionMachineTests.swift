import Foundation
import GatehouseConfig
import GatehouseConfigYAML
import GatehouseCore
import GatehousePolicy
import NIOCore
import PostgresWire
import SQLInspection
import Testing

@testable import GatehouseProxy

/// A policy, a clock and a session to judge with: values only, no gateway.
struct Bench {
    static let policy = compile(
        """
          rules:
            - {name: no-drop, match: {kinds: [drop], elevated: false}, action: deny, message: no drops}
            - name: deletes-need-approval
              match: {kinds: [delete]}
              action: approve
              approvers: [bob]
            - name: writes-step-up
              match: {writes: true}
              action: step_up
              step_up: {method: totp, max_age: 15m}
        """)

    /// A policy section (its rules, indented under `policy:`) as the gateway compiles it.
    static func compile(_ rules: String) -> CompiledPolicy {
        let text = """
            groups: [developer, dba]
            connections: [{name: main, host: db, database: app, user: app, trust: true}]
            policy:
              default: allow
              unclassified: deny
            \(rules)
            """
        do {
            return CompiledPolicy(try ConfigLoader(environment: [:], baseDirectory: "/").parse(text, file: "bench.yaml").policy)
        } catch {
            Issue.record("the test policy does not load: \(error)")
            return CompiledPolicy(Policy())
        }
    }

    static let start = Date(timeIntervalSince1970: 1_795_600_800)

    static let session = StatementJudge.Session(
        id: "s1", user: "alice", groups: ["developer"], connection: "main", source: "10.0.0.7", country: nil,
        applicationName: "psql", startedAt: start)

    static func world(
        at now: Date = start, grants: [ActiveGrant] = [], holds: Bool = true, policy: CompiledPolicy = policy
    ) -> StatementJudge.World {
        StatementJudge.World(
            policy: policy, inspect: Inspector.inspect, grants: grants, now: now, holdTimeout: holds ? 120 : nil,
            newChallengeID: { "c1" })
    }

    /// A session machine waiting for its upstream session: startup, password and token check done.
    static func connecting() -> SessionStateMachine {
        var machine = SessionStateMachine(allowPlaintextPasswords: true, tlsAvailable: false)
        var parameters = StartupParameters()
        parameters.entries = [("user", "alice"), ("database", "main")]
        _ = machine.startupPacket(.startup(protocolVersion: 196_608, parameters: parameters))
        _ = machine.clientFrame(WireMessages.password("token"), world: { world() })
        _ = machine.tokenVerified()
        return machine
    }

    static func ready(_ parameterFrames: [PostgresFrame] = []) -> UpstreamStartup {
        UpstreamStartup(
            parameterFrames: parameterFrames, processID: 7, secretKey: 9,
            readyFrame: frame(MessageType.readyForQuery, [UInt8(ascii: "I")]))
    }

    /// A live session machine, as after a successful startup.
    static func live(judge: StatementJudge = StatementJudge(session: session)) -> SessionStateMachine {
        var machine = connecting()
        _ = machine.upstreamReady(ready(), judge: judge, marker: "gatehouse_refused_test")
        return machine
    }

    static func query(_ sql: String) -> PostgresFrame { QueryMessage(sql: sql).frame }

    static func parse(_ sql: String, name: String = "") -> PostgresFrame { ParseMessage(name: name, sql: sql).frame }

    static func frame(_ type: UInt8, _ body: [UInt8] = []) -> PostgresFrame {
        PostgresFrame(type: type, body: ByteBuffer(bytes: body))
    }
}

extension WireMessages {
    static func password(_ token: String) -> PostgresFrame {
        var body = ByteBuffer()
        body.writeNullTerminatedString(token)
        return PostgresFrame(type: MessageType.password, body: body)
    }
}

extension SessionStateMachine.Action {
    var forwardedSQL: String? {
        guard case .forward(let frame) = self else { return nil }
        if frame.type == FrontendMessageType.query { return try? QueryMessage.decode(frame.body).sql }
        if frame.type == FrontendMessageType.parse { return try? ParseMessage.decode(frame.body).sql }
        return nil
    }

    var journaled: AuditRecord? {
        if case .journal(let record, _, _) = self { return record }
        return nil
    }
}

@Suite("The statement judge, as a value")
struct StatementJudgeTests {
    @Test func aReadProceedsAndItsRecordSaysWhatRan() {
        var judge = StatementJudge(session: Bench.session)
        let judgement = judge.judge(
            "select * from orders", inspection: Inspector.inspect("select * from orders"), in: Bench.world())
        #expect(judgement.verdict == .proceed)
        #expect(judgement.record.type == .statementAllowed)
        #expect(judgement.record.detail["statement"] == "select * from orders")
        #expect(judgement.record.actor == "alice")
        #expect(judgement.record.session == "s1")
    }

    /// Judges `sql` in a fresh session and returns the refusal it must be, with the judgement.
    static func refusal(_ sql: String) throws -> (ClientMessage, StatementJudge.Judgement) {
        var judge = StatementJudge(session: Bench.session)
        let judgement = judge.judge(sql, inspection: Inspector.inspect(sql), in: Bench.world())
        guard case .refuse(let message) = judgement.verdict else {
            throw HarnessFailure("expected a refusal of \(sql.prefix(40)), got \(judgement.verdict)")
        }
        return (message, judgement)
    }

    struct HarnessFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    @Test func aDenyIsARefusalNamingTheRule() throws {
        let (message, judgement) = try Self.refusal("drop table t")
        #expect(message.fields.sqlState == "42501")
        #expect(message.fields.message?.contains("no drops") == true)
        #expect(judgement.record.type == .statementDenied)
    }

    @Test func aTypoIsASyntaxErrorWithItsPositionNotAPrivilegeRefusal() throws {
        let (message, judgement) = try Self.refusal("select 1; selct 2")
        #expect(message.fields.sqlState == "42601")
        #expect(message.fields["P"] == "11")
        #expect(
            message.fields.message
                == "syntax error at or near \"selct\" (the gateway could not parse this statement, so it did not run it)")
        #expect(message.fields["H"]?.contains("administrator") == false)
        #expect(judgement.record.type == .statementDenied)
    }

    @Test func aTextNestedPastTheStackKeepsPostgreSQLsSQLState() throws {
        // As PostgreSQL 15 answers: 54001 for expressions nested past its stack. (Calls nested 20,000 deep
        // exhaust its parser's stack first: 42601 "memory exhausted at or near", with a position, here too.)
        let (message, _) = try Self.refusal("select " + String(repeating: "1+", count: 100_000) + "1")
        #expect(message.fields.sqlState == "54001", "\(message.fields)")
        #expect(message.fields["P"] == nil)
    }

    @Test func aWriteHoldsForStepUpWithAChallengeForThisStatement() throws {
        var judge = StatementJudge(session: Bench.session)
        let judgement = judge.judge(
            "insert into t values (1)", inspection: Inspector.inspect("insert into t values (1)"), in: Bench.world())
        guard case .hold(let challenge) = judgement.verdict else {
            Issue.record("expected a hold, got \(judgement.verdict)")
            return
        }
        #expect(challenge.kind == .stepUp)
        #expect(challenge.id == "c1")
        #expect(challenge.statement == "insert into t values (1)")
        #expect(challenge.rules == ["writes-step-up"])
        #expect(challenge.expiresAt == Bench.start.addingTimeInterval(120))
        #expect(judgement.record.type == .statementHeld)
    }

    @Test func withoutStepUpEnabledAHoldIsARefusalSayingSo() {
        var judge = StatementJudge(session: Bench.session)
        let judgement = judge.judge(
            "insert into t values (1)", inspection: Inspector.inspect("insert into t values (1)"),
            in: Bench.world(holds: false))
        guard case .refuse(let message) = judgement.verdict else {
            Issue.record("expected a refusal, got \(judgement.verdict)")
            return
        }
        #expect(message.fields.message?.contains("step-up verification is not enabled on this gateway") == true)
    }

    @Test func aFreshProofCoversLaterWritesWithinTheWindowOnly() {
        var judge = StatementJudge(session: Bench.session)
        judge.steppedUp(at: Bench.start)
        let sql = "insert into t values (2)"
        let within = judge.judge(
            sql, inspection: Inspector.inspect(sql), in: Bench.world(at: Bench.start.addingTimeInterval(600)))
        #expect(within.verdict == .proceed)
        #expect(within.record.detail["note"] == "fresh_step_up")
        #expect(within.record.detail["reason"]?.contains("step-up proven 600s ago") == true)
        let after = judge.judge(sql, inspection: Inspector.inspect(sql), in: Bench.world(at: Bench.start.addingTimeInterval(901)))
        guard case .hold = after.verdict else {
            Issue.record("a proof older than the rule's max_age must not count: \(after.verdict)")
            return
        }
    }

    @Test func aPreparedStatementIsJudgedAtExecuteByWhatItPrepared() {
        var judge = StatementJudge(session: Bench.session)
        let prepare = "prepare p as drop table t"
        // The PREPARE itself is a drop in the making: refused, and so never remembered.
        let refused = judge.judge(prepare, inspection: Inspector.inspect(prepare), in: Bench.world())
        #expect(refused.verdict != .proceed)
        let harmless = "prepare q as select 1"
        let allowed = judge.judge(harmless, inspection: Inspector.inspect(harmless), in: Bench.world())
        #expect(allowed.verdict == .proceed)
        let q = allowed.inspection.statements[0]
        let prepared = PreparedStatements.Lookup(statement: { $0 == "q" ? [q] : nil })
        let execute = judge.judge("execute q", inspection: Inspector.inspect("execute q"), in: Bench.world(), prepared: prepared)
        #expect(execute.verdict == .proceed, "EXECUTE of a remembered harmless statement runs")
        let unknown = judge.judge("execute p", inspection: Inspector.inspect("execute p"), in: Bench.world(), prepared: prepared)
        #expect(unknown.verdict != .proceed, "EXECUTE of a statement never prepared here is unclassified")
    }

    @Test func maskedStatementTextKeepsTheShapeNotTheConstants() {
        var session = Bench.session
        session.statementText = .masked
        var judge = StatementJudge(session: session)
        let sql = "select * from users where email = 'a@example.com'"
        let judgement = judge.judge(sql, inspection: Inspector.inspect(sql), in: Bench.world())
        #expect(judgement.record.detail["statement"]?.contains("a@example.com") == false)
        #expect(judgement.record.detail["statement"]?.contains("$1") == true)
    }

    @Test func aStartupSettingThatWouldHoldIsRefused() {
        let policy = Bench.compile(
            """
              rules:
                - {name: settings-step-up, match: {kinds: [set]}, action: step_up}
            """)
        var judge = StatementJudge(session: Bench.session)
        let setting = StartupSettings.Setting(name: "work_mem", value: "1GB", written: "work_mem=1GB")
        let judgement = judge.judgeStartupSetting(
            setting, inspection: Inspector.inspect(setting.statement), in: Bench.world(policy: policy))
        guard case .refuse(let message) = judgement.verdict else {
            Issue.record("expected a refusal, got \(judgement.verdict)")
            return
        }
        #expect(message.fields.message?.hasPrefix("startup setting work_mem=1GB is refused") == true)
        #expect(message.fields.message?.contains("cannot wait for it") == true)
        #expect(judgement.record.detail["note"] == "startup work_mem=1GB")
    }

    @Test func aGrantedRoleLetsTheStatementThroughAndTheGrantIsNamed() {
        let policy = Bench.compile(
            """
              rules:
                - {name: no-drop, match: {kinds: [drop], elevated: false}, action: deny}
            """)
        let grant = ActiveGrant(id: "g1", role: "dba", expiresAt: Bench.start.addingTimeInterval(3600))
        var judge = StatementJudge(session: Bench.session)
        let expired = ActiveGrant(id: "g0", role: "dba", expiresAt: Bench.start)
        let stale = judge.judge(
            "drop table t", inspection: Inspector.inspect("drop table t"), in: Bench.world(grants: [expired], policy: policy))
        #expect(stale.verdict != .proceed, "a grant that has expired at `now` counts for nothing")
        let drop = judge.judge(
            "drop table t", inspection: Inspector.inspect("drop table t"), in: Bench.world(grants: [grant], policy: policy))
        #expect(drop.verdict == .proceed)
        #expect(drop.decision.usedGrants == ["g1"])
        #expect(drop.record.detail["grants"] == "g1")
        let read = judge.judge(
            "select 1", inspection: Inspector.inspect("select 1"), in: Bench.world(grants: [grant], policy: policy))
        #expect(read.decision.usedGrants.isEmpty, "a read runs without the grant: the session does not depend on it")
    }
}

@Suite("The statement guard, as a value")
struct StatementGuardTests {
    let marker = "gatehouse_refused_guard"

    @Test func aRefusedQueryIsReplacedByTheMarkerAndTheServersErrorByTheRefusal() throws {
        let guardian = StatementGuard(marker: marker)
        var tracker = StatementTracker(marker: marker)
        let frame = Bench.query("drop table t")
        #expect(guardian.arrived(frame) == .statement("drop table t"))
        let refusal = ErrorNoticeFields(severity: "ERROR", sqlState: "42501", message: "denied")
        let sent = guardian.decided(frame, .refuse(refusal))
        #expect(try QueryMessage.decode(sent.body).sql == marker)
        tracker.sent(sent, refusal: refusal)
        #expect(tracker.hasPendingRefusals)
        let serverError = ErrorNoticeFields(
            severity: "ERROR", sqlState: "42601", message: "syntax error at or near \"\(marker)\"")
        #expect(tracker.received(MessageType.errorResponse, serverError.errorFrame.body) == .replace(refusal))
        #expect(tracker.received(MessageType.readyForQuery, ByteBuffer(bytes: [UInt8(ascii: "I")])) == .pass)
        #expect(!tracker.hasPendingRefusals)
    }

    @Test func aServerErrorThatIsNotTheMarkersPassesUnchanged() {
        let guardian = StatementGuard(marker: marker)
        var tracker = StatementTracker(marker: marker)
        let frame = Bench.query("drop table t")
        let refusal = ErrorNoticeFields(severity: "ERROR", sqlState: "42501", message: "denied")
        tracker.sent(guardian.decided(frame, .refuse(refusal)), refusal: refusal)
        let other = ErrorNoticeFields(severity: "ERROR", sqlState: "23505", message: "duplicate key").errorFrame
        #expect(tracker.received(other.type, other.body) == .pass)
    }

    @Test func aRefusedExecuteIsANamedParseTheServerRejects() throws {
        let guardian = StatementGuard(marker: marker)
        let execute = Bench.frame(FrontendMessageType.execute, [0x70, 0, 0, 0, 0, 0])
        #expect(guardian.arrived(execute) == .execute(portal: [0x70]))
        let sent = guardian.decided(execute, .refuse(ErrorNoticeFields(severity: "ERROR", sqlState: "42501", message: "no")))
        let parse = try ParseMessage.decode(sent.body)
        #expect(parse.name == marker, "not the unnamed statement, which a failed Parse of it would drop")
        #expect(parse.sql == marker)
        #expect(
            guardian.arrived(Bench.frame(FrontendMessageType.execute, [0x70, 0, 0]))
                == .protocolViolation("malformed Execute message"))
    }

    @Test func aRefusedParseKeepsItsStatementName() throws {
        let guardian = StatementGuard(marker: marker)
        let frame = Bench.parse("drop table t", name: "s7")
        #expect(guardian.arrived(frame) == .statement("drop table t"))
        let sent = guardian.decided(frame, .refuse(ErrorNoticeFields(severity: "ERROR", sqlState: "42501", message: "no")))
        let parse = try ParseMessage.decode(sent.body)
        #expect(parse.name == "s7")
        #expect(parse.sql == marker)
    }

    @Test func textThatIsNotUTF8AndFunctionCallsAreRefusedUnjudged() {
        let guardian = StatementGuard(marker: marker)
        var body = ByteBuffer(bytes: [0x73, 0x65, 0xFF, 0x00])
        guard
            case .refuseUnjudged(let replacement, _, let what) = guardian.arrived(
                PostgresFrame(type: FrontendMessageType.query, body: body))
        else {
            Issue.record("text that is not UTF-8 must be refused before any judgement")
            return
        }
        #expect(what == "(text that is not UTF-8)")
        #expect((try? QueryMessage.decode(replacement.body).sql) == marker)
        body = ByteBuffer()
        body.writeInteger(UInt32(1234))
        guard
            case .refuseUnjudged(_, _, let call) = guardian.arrived(
                PostgresFrame(type: FrontendMessageType.functionCall, body: body))
        else {
            Issue.record("a FunctionCall must be refused")
            return
        }
        #expect(call == "(FunctionCall of function 1234)")
    }

    @Test func messagesOfNoSessionEndIt() {
        let guardian = StatementGuard(marker: marker)
        #expect(
            guardian.arrived(Bench.frame(UInt8(ascii: "p"), [0]))
                == .protocolViolation("unexpected message type 'p' in a session"))
        #expect(guardian.arrived(Bench.frame(FrontendMessageType.query, [0x73])) == .protocolViolation("malformed Query message"))
    }

    @Test func aRefusalInAnExtendedBatchIsAnsweredOnceAndForgottenAtReadyForQuery() {
        let guardian = StatementGuard(marker: marker)
        var tracker = StatementTracker(marker: marker)
        let parse = Bench.parse("drop table t")
        let refusal = ErrorNoticeFields(severity: "ERROR", sqlState: "42501", message: "denied")
        tracker.sent(guardian.decided(parse, .refuse(refusal)), refusal: refusal)
        #expect(tracker.cycleDoomed, "the server skips the rest of the cycle")
        tracker.sent(Bench.frame(FrontendMessageType.bind, [0, 0, 0, 0, 0, 0, 0]))
        tracker.sent(Bench.frame(FrontendMessageType.sync))
        #expect(!tracker.cycleDoomed)
        let serverError = ErrorNoticeFields(severity: "ERROR", sqlState: "42601", message: "at \"\(marker)\"").errorFrame
        #expect(tracker.received(serverError.type, serverError.body) == .replace(refusal))
        #expect(tracker.received(serverError.type, serverError.body) == .pass, "one refusal answers one error")
        #expect(tracker.received(MessageType.readyForQuery, ByteBuffer(bytes: [UInt8(ascii: "I")])) == .pass)
        #expect(!tracker.hasPendingRefusals)
        #expect(tracker.pending.isEmpty)
    }

    @Test func aServerReportingAnotherEncodingBreaksThePins() {
        var body = ByteBuffer()
        body.writeNullTerminatedString("client_encoding")
        body.writeNullTerminatedString("SJIS")
        #expect(StatementGuard.pinViolation(PostgresFrame(type: MessageType.parameterStatus, body: body)) != nil)
        body = ByteBuffer()
        body.writeNullTerminatedString("TimeZone")
        body.writeNullTerminatedString("UTC")
        #expect(StatementGuard.pinViolation(PostgresFrame(type: MessageType.parameterStatus, body: body)) == nil)
    }
}

@Suite("The session machine, as a value")
struct SessionStateMachineTests {
    /// Runs the machine's journal requests as a journal that takes every record (or none), the way the
    /// handler does: the actions in order, a journal request answered with `recorded`.
    static func settle(
        _ machine: inout SessionStateMachine, _ first: [SessionStateMachine.Action], journal: Bool = true,
        world: StatementJudge.World = Bench.world()
    ) -> (actions: [SessionStateMachine.Action], records: [AuditRecord]) {
        var queue = first[...]
        var done: [SessionStateMachine.Action] = []
        var records: [AuditRecord] = []
        while let action = queue.popFirst() {
            if let record = action.journaled {
                records.append(record)
                queue.append(contentsOf: machine.recorded(journal, world: { world }))
            } else {
                done.append(action)
            }
        }
        return (done, records)
    }

    static func send(
        _ machine: inout SessionStateMachine, _ frame: PostgresFrame, journal: Bool = true,
        world: StatementJudge.World = Bench.world()
    ) -> (actions: [SessionStateMachine.Action], records: [AuditRecord]) {
        settle(&machine, [machine.clientFrame(frame, world: { world })], journal: journal, world: world)
    }

    @Test func anAllowedQueryIsJournaledThenForwarded() {
        var machine = Bench.live()
        #expect(machine.isLive)
        let (actions, records) = Self.send(&machine, Bench.query("select 1"))
        #expect(records.map(\.type) == [.statementAllowed])
        #expect(actions.compactMap(\.forwardedSQL) == ["select 1"])
    }

    @Test func framesThatAreNotStatementsGoStraightThrough() {
        var machine = Bench.live()
        let sync = Bench.frame(FrontendMessageType.sync)
        #expect(machine.clientFrame(sync, world: { Bench.world() }) == .forward(sync))
    }

    @Test func nothingRunsUnaudited() {
        var machine = Bench.live()
        let (actions, _) = Self.send(&machine, Bench.query("select 1"), journal: false)
        #expect(actions.compactMap(\.forwardedSQL) == ["gatehouse_refused_test"], "the marker goes instead")
    }

    @Test func aHoldQueuesWhatFollowsInOrderAndReleasesItAfterTheStatement() {
        var machine = Bench.live()
        let (held, records) = Self.send(&machine, Bench.query("insert into t values (1)"))
        #expect(records.map(\.type) == [.statementHeld])
        guard case .hold(let challenge)? = held.first else {
            Issue.record("expected a hold, got \(held)")
            return
        }
        #expect(!machine.readsClient, "the client is not read while a statement is held")
        // Pipelined behind the hold: a read and a Sync. Nothing goes upstream yet.
        #expect(machine.clientFrame(Bench.query("select 2"), world: { Bench.world() }) == .none)
        #expect(machine.clientFrame(Bench.frame(FrontendMessageType.sync), world: { Bench.world() }) == .none)
        var verified = challenge
        verified.state = .verified
        let (released, more) = Self.settle(&machine, machine.holdEnded(verified, world: { Bench.world() }))
        #expect(more.map(\.type) == [.statementAllowed], "the queued read is judged after the release")
        #expect(released.compactMap(\.forwardedSQL) == ["insert into t values (1)", "select 2"])
        #expect(released.contains(.forward(Bench.frame(FrontendMessageType.sync))))
        #expect(released.last == .resume)
        #expect(released.contains(.rememberDevice) == false, "a known device is not remembered again")
        #expect(machine.readsClient)
    }

    @Test func aLongTextIsInspectedOffTheLoopWithWhatFollowsQueuedBehindIt() {
        var machine = Bench.live()
        let long = "select 1 where " + Array(repeating: "1=1", count: 800).joined(separator: " and ")
        #expect(long.utf8.count > Inspector.inlineTextBytes)
        #expect(machine.clientFrame(Bench.query(long), world: { Bench.world() }) == .inspect(long))
        #expect(!machine.readsClient, "the client waits while its statement is inspected")
        #expect(machine.clientFrame(Bench.query("select 2"), world: { Bench.world() }) == .none)
        let (actions, records) = Self.settle(
            &machine, machine.inspected(Inspector.inspect(long), world: { Bench.world() }))
        #expect(records.map(\.type) == [.statementAllowed, .statementAllowed])
        #expect(actions.compactMap(\.forwardedSQL) == [long, "select 2"])
        #expect(actions.last == .resume)
        #expect(machine.readsClient)
    }

    @Test func aLongDeniedTextIsRefusedAfterItsInspectionAndATerminationDropsOneInFlight() {
        var machine = Bench.live()
        let drop = "drop table t -- " + String(repeating: "x", count: 3000)
        #expect(machine.clientFrame(Bench.query(drop), world: { Bench.world() }) == .inspect(drop))
        let (refused, _) = Self.settle(&machine, machine.inspected(Inspector.inspect(drop), world: { Bench.world() }))
        #expect(refused.compactMap(\.forwardedSQL) == ["gatehouse_refused_test"])
        #expect(machine.clientFrame(Bench.query(drop), world: { Bench.world() }) == .inspect(drop))
        _ = machine.terminated(reason: "stop")
        #expect(machine.inspected(Inspector.inspect(drop), world: { Bench.world() }).isEmpty, "nothing runs after the end")
    }

    @Test func aDeniedHoldSendsTheMarkerAndTheRestStillRuns() {
        var machine = Bench.live()
        let (held, _) = Self.send(&machine, Bench.query("delete from t where id = 1"))
        guard case .hold(var challenge)? = held.first else {
            Issue.record("expected a hold, got \(held)")
            return
        }
        #expect(challenge.kind == .approve)
        _ = machine.clientFrame(Bench.query("select 3"), world: { Bench.world() })
        challenge.state = .denied
        challenge.decidedBy = "bob"
        let (actions, _) = Self.settle(&machine, machine.holdEnded(challenge, world: { Bench.world() }))
        #expect(actions.compactMap(\.forwardedSQL) == ["gatehouse_refused_test", "select 3"])
    }

    @Test func aCancelOvertakesTheHold() {
        var machine = Bench.live()
        let (held, _) = Self.send(&machine, Bench.query("insert into t values (1)"))
        guard case .hold(let challenge)? = held.first else {
            Issue.record("expected a hold, got \(held)")
            return
        }
        let (actions, _) = Self.settle(&machine, machine.cancelled(world: { Bench.world() }))
        #expect(actions.first == .cancelChallenge(id: challenge.id, reason: "the client cancelled the statement"))
        #expect(actions.compactMap(\.forwardedSQL) == ["gatehouse_refused_test"])
        // The challenge service's own answer arrives later and changes nothing.
        var late = challenge
        late.state = .verified
        #expect(machine.holdEnded(late, world: { Bench.world() }).isEmpty)
    }

    @Test func aStepUpFromANewDeviceRemembersIt() {
        var machine = Bench.live(judge: StatementJudge(session: Bench.session, newDevice: true))
        let (held, _) = Self.send(&machine, Bench.query("insert into t values (1)"))
        guard case .hold(var challenge)? = held.first else {
            Issue.record("expected a hold, got \(held)")
            return
        }
        challenge.state = .verified
        let actions = machine.holdEnded(challenge, world: { Bench.world() })
        #expect(actions.first == .rememberDevice)
        #expect(machine.judge?.newDevice == false)
        #expect(machine.judge?.lastStepUp == Bench.start)
    }

    @Test func terminatedMeansNothingMoreGoesEitherWay() {
        var machine = Bench.live()
        let (held, _) = Self.send(&machine, Bench.query("insert into t values (1)"))
        guard case .hold(let challenge)? = held.first else {
            Issue.record("expected a hold, got \(held)")
            return
        }
        _ = machine.clientFrame(Bench.query("select 2"), world: { Bench.world() })
        let actions = machine.terminated(reason: "incident 42")
        #expect(
            actions == [
                .cancelChallenge(id: challenge.id, reason: "the session was terminated"), .terminate(.terminated("incident 42")),
            ])
        #expect(machine.endReason == "terminated: incident 42")
        #expect(machine.clientFrame(Bench.query("insert into t values (2)"), world: { Bench.world() }) == .none)
        var verified = challenge
        verified.state = .verified
        #expect(machine.holdEnded(verified, world: { Bench.world() }).isEmpty, "the held statement never runs")
        let row = Bench.frame(UInt8(ascii: "D"), [0, 0])
        #expect(machine.upstreamFrame(row) == .drop)
        #expect(machine.terminated(reason: "again").isEmpty)
    }

    @Test func aPinnedSettingChangeEndsTheSessionBeforeAnythingElseOfTheServerReachesTheClient() {
        var machine = Bench.live()
        var body = ByteBuffer()
        body.writeNullTerminatedString("client_encoding")
        body.writeNullTerminatedString("LATIN1")
        guard case .end(let message) = machine.upstreamFrame(PostgresFrame(type: MessageType.parameterStatus, body: body)) else {
            Issue.record("the session must end")
            return
        }
        #expect(message.fields.sqlState == "57P01")
        #expect(machine.upstreamFrame(Bench.frame(UInt8(ascii: "D"), [0, 0])) == .drop)
        #expect(machine.clientFrame(Bench.query("select 1"), world: { Bench.world() }) == .none)
    }

    @Test func aProtocolViolationInTheSessionIsFatal() {
        var machine = Bench.live()
        let action = machine.clientFrame(Bench.frame(UInt8(ascii: "p"), [0]), world: { Bench.world() })
        #expect(action == .fatal(.protocolViolation("unexpected message type 'p' in a session")))
        #expect(!machine.isLive)
    }

    @Test func aServerWhoseOwnSettingsBreakThePinsIsRefusedAtStart() {
        var machine = Bench.connecting()
        var body = ByteBuffer()
        body.writeNullTerminatedString("standard_conforming_strings")
        body.writeNullTerminatedString("off")
        let ready = Bench.ready([PostgresFrame(type: MessageType.parameterStatus, body: body)])
        let action = machine.upstreamReady(ready, judge: StatementJudge(session: Bench.session), marker: "m")
        guard case .refuseStart(let message) = action else {
            Issue.record("the session must not start: \(action)")
            return
        }
        #expect(message.fields.sqlState == "08001")
        #expect(!machine.isLive)
    }

    @Test func aTokenRevokedWhileTheSessionStartedEndsItBeforeTheClientIsLetIn() {
        var machine = Bench.connecting()
        let action = machine.upstreamReady(
            Bench.ready(), judge: StatementJudge(session: Bench.session), marker: "m", tokenRevoked: true)
        guard case .terminate(let message) = action else {
            Issue.record("the session must not start: \(action)")
            return
        }
        #expect(message.fields.message?.contains("sign in again with `gatehouse login`") == true)
        #expect(!machine.isLive)
        #expect(machine.clientFrame(Bench.query("select 1"), world: { Bench.world() }) == .none)
    }

    @Test func aTerminationDuringStartupEndsTheConnectionAndNothingStarts() {
        var machine = Bench.connecting()
        #expect(machine.terminated(reason: "token revoked") == [.terminate(.terminated("token revoked"))])
        #expect(machine.upstreamReady(Bench.ready(), judge: StatementJudge(session: Bench.session), marker: "m") == .close)
    }

    @Test func nothingIsReadFromAClientNotYetKnown() {
        var machine = SessionStateMachine(allowPlaintextPasswords: true, tlsAvailable: false)
        #expect(machine.readsClient)
        var parameters = StartupParameters()
        parameters.entries = [("user", "alice"), ("database", "main")]
        _ = machine.startupPacket(.startup(protocolVersion: 196_608, parameters: parameters))
        #expect(machine.readsClient, "the password is read")
        _ = machine.clientFrame(WireMessages.password("token"), world: { Bench.world() })
        #expect(!machine.readsClient, "between the password and the session's start nothing is read")
    }

    @Test func aRefusalInsideAnExtendedBatchReplacesOnlyTheParse() throws {
        var machine = Bench.live()
        let (parsed, _) = Self.send(&machine, Bench.parse("drop table t", name: "s1"))
        let sent = try #require(parsed.first)
        guard case .forward(let frame) = sent else {
            Issue.record("expected a forward, got \(sent)")
            return
        }
        #expect(try ParseMessage.decode(frame.body).name == "s1")
        #expect(try ParseMessage.decode(frame.body).sql == "gatehouse_refused_test")
        let bind = Bench.frame(FrontendMessageType.bind, [0, 0x73, 0x31, 0, 0, 0, 0, 0, 0, 0])
        #expect(machine.clientFrame(bind, world: { Bench.world() }) == .forward(bind))
    }
}
