import Foundation
import GatehouseCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Step-up and four-eyes approval inside live psql sessions.
@Suite("Step-up and approval in live sessions", .timeLimit(.minutes(5)))
struct StepUpTests {
    static func policy(timeout: String = "30s", maxAge: String? = nil) -> String {
        """
        step_up: {timeout: \(timeout)}
        policy:
          rules:
            - name: writes-need-step-up
              match: {writes: true}
              action: step_up
        \(maxAge.map { "      step_up: {max_age: \($0)}" } ?? "")
            - name: ledger-four-eyes
              match: {tables_written: ["ledger_*"]}
              action: approve
              approvers: [bob]
        """
    }

    /// Enrols `user`'s TOTP through the CLI and returns it, confirmed with the current step's code.
    static func enrol(_ gateway: Gateway, _ user: String, password: String = Gateway.alicePassword) async throws -> TOTP {
        let enrol = try await gateway.cli(user, ["mfa", "enroll", "--json", "--password-stdin"], stdin: password + "\n")
        #expect(enrol.status == 0, "\(enrol)")
        let object = try JSONSerialization.jsonObject(with: Data(enrol.stdout.utf8)) as? [String: Any]
        let secretText = try #require(object?["secret"] as? String)
        let secret = try #require(Base32.decode(secretText))
        let uri = try #require(object?["uri"] as? String)
        #expect(uri.hasPrefix("otpauth://totp/Gatehouse:\(user)?secret="))
        let totp = TOTP(secret: secret)
        let confirm = try await gateway.cli(user, ["mfa", "confirm", totp.code(at: Date())])
        #expect(confirm.status == 0, "\(confirm)")
        return totp
    }

    /// The challenge id from the NOTICE psql printed, once it has printed it.
    static func challengeID(of psql: RunningCommand, command: String = "verify", timeout: Double = 30) async throws -> String {
        try await psql.waitForOutput("gatehouse \(command) ", timeout: timeout)
        // psql prints the notice on stderr; an MCP client's progress lines are on stdout.
        let text = psql.stderr + psql.stdout
        let range = try #require(text.range(of: "gatehouse \(command) "))
        return String(text[range.upperBound...].prefix { $0.isHexDigit })
    }

    @Test("a held write runs after `gatehouse verify` with a valid code; psql shows the notice while it waits")
    func verifyReleasesStatement() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        let token = try await gateway.aliceToken()
        let totp = try await Self.enrol(gateway, "alice")
        let table = uniqueTable("held")
        let psql = try await gateway.startPsql(
            password: token, ["-c", "select 'before'", "-c", "create table \(table) (id int)", "-c", "select 'after'"])
        let id = try await Self.challengeID(of: psql)
        #expect(
            psql.stderr.contains(
                "NOTICE:  Gatehouse is holding this statement: rule \"writes-need-step-up\" needs step-up verification"))
        #expect(psql.stderr.contains("DETAIL:  Run in another terminal: gatehouse verify \(id)"))

        let listed = try await gateway.cli("alice", ["challenges"])
        #expect(listed.stdout.contains(id), "\(listed)")
        #expect(listed.stdout.contains("create table \(table)"), "\(listed)")

        // The next step's code: the current one was spent confirming the enrolment.
        let code = totp.code(at: Date().addingTimeInterval(30))
        let verify = try await gateway.cli("alice", ["verify", id, "--code", code])
        #expect(verify.status == 0, "\(verify)")
        let result = try await psql.wait(timeout: 30)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "before\nCREATE TABLE\nafter\n", "\(result)")
        let exists = try await gateway.psql(password: token, ["-c", "select count(*) from \(table)"])
        #expect(exists.stdout == "0\n", "\(exists)")

        // The code was used: it cannot release anything else.
        let again = try await gateway.cli("alice", ["verify", id, "--code", code])
        #expect(again.status != 0)
    }

    @Test("wrong codes: the third one fails the challenge and the statement does not run; the session stays usable")
    func wrongCodes() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        let token = try await gateway.aliceToken()
        _ = try await Self.enrol(gateway, "alice")
        let table = uniqueTable("wrong")
        let psql = try await gateway.startPsql(
            password: token, ["-v", "ON_ERROR_STOP=0", "-c", "create table \(table) (id int)", "-c", "select 'usable'"])
        let id = try await Self.challengeID(of: psql)
        for attempt in 1...3 {
            let verify = try await gateway.cli("alice", ["verify", id, "--code", "000000"])
            #expect(verify.status != 0)
            #expect(verify.stderr.contains("wrong code"), "attempt \(attempt): \(verify)")
        }
        let result = try await psql.wait(timeout: 30)
        #expect(result.stderr.contains("Gatehouse did not run this statement: step-up verification failed"), "\(result)")
        #expect(result.stdout.contains("usable"), "\(result)")
        let missing = try await gateway.psql(password: token, ["-c", "select to_regclass('\(table)') is null"])
        #expect(missing.stdout == "t\n", "\(missing)")
    }

    @Test("a replayed code is refused as used, costs the held statement no attempt, and is audited as a replay")
    func replayedCode() async throws {
        // The held statement waits for a fresh code (up to a 30 s step) after five refusals: time enough
        // under the suite's load.
        let gateway = try await Gateway.start(extraConfig: Self.policy(timeout: "120s"))
        let token = try await gateway.aliceToken()
        let totp = try await Self.enrol(gateway, "alice")
        var codes = RisingCodes(totp, after: totp.step(at: Date()))
        let table = uniqueTable("replay")
        let first = try await gateway.startPsql(password: token, ["-c", "create table \(table) (id int)"])
        let used = try await codes.next()
        let verified = try await gateway.cli("alice", ["verify", try await Self.challengeID(of: first), "--code", used])
        #expect(verified.status == 0, "\(verified)")
        #expect(try await first.wait(timeout: 30).status == 0)

        let second = try await gateway.startPsql(
            password: token, ["-v", "ON_ERROR_STOP=0", "-c", "insert into \(table) values (1)", "-c", "select 'usable'"])
        let id = try await Self.challengeID(of: second)
        // Three replays, then two wrong codes: had the replays counted, the challenge would have failed.
        for attempt in 1...3 {
            let replay = try await gateway.cli("alice", ["verify", id, "--code", used])
            #expect(replay.status != 0)
            #expect(replay.stderr.contains("that code was already used (each code is good once)"), "replay \(attempt): \(replay)")
            #expect(!replay.stderr.contains("attempt"), "replay \(attempt): \(replay)")
        }
        for left in [2, 1] {
            let wrong = try await gateway.cli("alice", ["verify", id, "--code", "000000"])
            #expect(wrong.stderr.contains("\(left) attempt\(left == 1 ? "" : "s") left"), "\(wrong)")
        }
        let released = try await gateway.cli("alice", ["verify", id, "--code", try await codes.next()])
        #expect(released.status == 0, "\(released)")
        let result = try await second.wait(timeout: 30)
        #expect(result.stdout.contains("INSERT 0 1") && result.stdout.contains("usable"), "\(result)")
        let rows = try await gateway.psql(password: token, ["-c", "select count(*) from \(table)"])
        #expect(rows.stdout == "1\n", "\(rows)")

        try await gateway.loginAdmin()
        let audit = try await gateway.cli("admin", ["audit", "tail", "-n", "60", "--type", "mfa.failure", "--json"])
        #expect(audit.stdout.components(separatedBy: "code already used").count - 1 == 3, "\(audit)")
        #expect(audit.stdout.components(separatedBy: "\"wrong code\"").count - 1 == 2, "\(audit)")
    }

    @Test("a held statement fails with a clear error when nobody answers in time")
    func timeout() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy(timeout: "2s"))
        let token = try await gateway.aliceToken()
        _ = try await Self.enrol(gateway, "alice")
        let result = try await gateway.psql(
            password: token, ["-v", "ON_ERROR_STOP=0", "-c", "create table never (id int)", "-c", "select 'next'"])
        #expect(result.stderr.contains("did not arrive in time"), "\(result)")
        #expect(result.stdout.contains("next"), "\(result)")
        try await gateway.loginAdmin()
        let audit = try await gateway.cli("admin", ["audit", "tail", "-n", "30"])
        #expect(audit.stdout.contains("challenge.created"), "\(audit)")
        #expect(audit.stdout.contains("challenge.expired"), "\(audit)")
    }

    @Test("Ctrl-C while a statement is held cancels it like any statement")
    func cancelWhileHeld() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        let token = try await gateway.aliceToken()
        _ = try await Self.enrol(gateway, "alice")
        let psql = try await gateway.startPsql(password: token, ["-c", "create table cancelled_one (id int)"])
        _ = try await Self.challengeID(of: psql)
        psql.signal(SIGINT)
        let result = try await psql.wait(timeout: 30)
        #expect(result.stderr.contains("canceling statement due to user request"), "\(result)")
    }

    @Test("a step-up without an enrolled second factor is refused at once with advice")
    func notEnrolled() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        let token = try await gateway.aliceToken()
        let result = try await gateway.psql(password: token, ["-c", "create table unenrolled (id int)"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("gatehouse mfa enroll"), "\(result)")
        // Nothing is held for someone who cannot answer: no notice saying so comes first.
        #expect(!result.stderr.contains("NOTICE"), "\(result)")
        #expect(!result.stderr.contains("gatehouse verify"), "\(result)")
        let missing = try await gateway.psql(password: token, ["-c", "select to_regclass('unenrolled') is null"])
        #expect(missing.stdout == "t\n", "\(missing)")
    }

    @Test("a freshness window lets further step-up statements of the same session through, then expires")
    func freshness() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy(maxAge: "3s"))
        let token = try await gateway.aliceToken()
        let totp = try await Self.enrol(gateway, "alice")
        let table = uniqueTable("fresh")
        // One session: the first write is held and verified, the second passes on the fresh proof,
        // the third (after the window) is held again and left to fail.
        let psql = try await gateway.startPsql(
            password: token,
            [
                "-v", "ON_ERROR_STOP=0", "-c", "create table \(table) (id int)", "-c", "insert into \(table) values (1)",
                "-c", "select pg_sleep(4)", "-c", "insert into \(table) values (2)",
            ])
        let id = try await Self.challengeID(of: psql)
        let verify = try await gateway.cli("alice", ["verify", id, "--code", totp.code(at: Date().addingTimeInterval(30))])
        #expect(verify.status == 0, "\(verify)")
        try await psql.waitForOutput("INSERT 0 1", timeout: 30)
        // The third statement waits for a new proof; a second notice appears.
        _ = try await eventually(timeout: 30) { psql.stderr.components(separatedBy: "gatehouse verify ").count == 3 ? true : nil }
        psql.signal(SIGTERM)
        _ = try? await psql.wait(timeout: 10)
        let rows = try await gateway.psql(password: token, ["-c", "select count(*) from \(table)"])
        #expect(rows.stdout == "1\n", "\(rows)")
    }

    @Test("four-eyes: another user approves the exact statement; self-approval is refused; a denial says who and why")
    func approval() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        let token = try await gateway.aliceToken()
        let table = uniqueTable("ledger")
        _ = try await gateway.token(for: "bob", password: Gateway.bobPassword)

        let psql = try await gateway.startPsql(password: token, ["-c", "create table \(table) (id int)"])
        let id = try await Self.challengeID(of: psql, command: "approve")
        #expect(psql.stderr.contains("until another person approves it: rule \"ledger-four-eyes\""), "\(psql.stderr)")

        let own = try await gateway.cli("alice", ["approve", id])
        #expect(own.status != 0)
        #expect(own.stderr.contains("you cannot approve your own statement"), "\(own)")
        let inbox = try await gateway.cli("bob", ["challenges"])
        #expect(inbox.stdout.contains(id), "\(inbox)")
        let approve = try await gateway.cli("bob", ["approve", id])
        #expect(approve.status == 0, "\(approve)")
        let result = try await psql.wait(timeout: 30)
        #expect(result.status == 0, "\(result)")

        let second = try await gateway.startPsql(password: token, ["-c", "drop table \(table)"])
        let secondID = try await Self.challengeID(of: second, command: "approve")
        let deny = try await gateway.cli("bob", ["deny", secondID, "--reason", "ledger tables are kept"])
        #expect(deny.status == 0, "\(deny)")
        let denied = try await second.wait(timeout: 30)
        #expect(denied.stderr.contains("bob denied it: ledger tables are kept"), "\(denied)")
        try await gateway.loginAdmin()
        let audit = try await gateway.cli("admin", ["audit", "tail", "-n", "40"])
        #expect(audit.stdout.contains("challenge.approved actor=bob"), "\(audit)")
        #expect(audit.stdout.contains("challenge.denied actor=bob"), "\(audit)")
    }

    @Test("login asks for the second factor once enrolled")
    func loginWithSecondFactor() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        _ = try await gateway.aliceToken()
        let totp = try await Self.enrol(gateway, "alice")
        let without = try await gateway.cli(
            "alice2", ["login", "--user", "alice", "--password-stdin"], stdin: Gateway.alicePassword + "\n")
        #expect(without.status != 0)
        #expect(without.stderr.contains("invalid user name, password or code"), "\(without)")
        #expect(without.stderr.contains("with --password-stdin, a second factor's code comes with --code"), "\(without)")
        let with = try await gateway.cli(
            "alice2", ["login", "--user", "alice", "--password-stdin", "--code", totp.code(at: Date().addingTimeInterval(30))],
            stdin: Gateway.alicePassword + "\n")
        #expect(with.status == 0, "\(with)")
    }

    @Test("200 sessions holding a statement at once: no thread each, and the gateway stays responsive")
    func manyHolds() async throws {
        let gateway = try await Gateway.start(
            extraConfig: Self.policy(timeout: "40s")
                + "\nlimits: {max_sessions_per_user: 250, max_sessions_per_connection: 250}\n")
        let token = try await gateway.aliceToken()
        _ = try await Self.enrol(gateway, "alice")
        let pid = try #require(gateway.process?.pid)
        func threads() throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("Threads:") })
            return Int(line.split(separator: "\t").last.map(String.init) ?? "") ?? -1
        }
        // Warm up the pools, then count.
        _ = try await gateway.psql(password: token, ["-c", "select 1"])
        let before = try threads()

        let script = "\(gateway.directory)/held.sql"
        try "create temporary table held_here (id int);\n".write(toFile: script, atomically: true, encoding: .utf8)
        let pgbench = try await Command.start(
            "\(gateway.cluster.binDirectory)/pgbench",
            [
                "-n", "-c", "200", "-j", "4", "-t", "1", "-f", script, "-h", "127.0.0.1", "-p", "\(gateway.postgresPort)", "-U",
                "alice", "main",
            ],
            environment: ["PGPASSWORD": token, "PGSSLMODE": "disable"])
        let waiting = try await eventually(timeout: 60) { () -> Int? in
            let list = try await gateway.cli("alice", ["challenges", "--json"])
            let object = try? JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any]
            let count = (object?["challenges"] as? [Any])?.count ?? 0
            return count == 200 ? count : nil
        }
        #expect(waiting == 200)
        // Pools may still grow to their fixed sizes; a thread per held statement would add 200.
        let during = try threads()
        #expect(during - before < 16, "threads before: \(before), while 200 statements are held: \(during)")
        let other = try await gateway.psql(password: token, ["-c", "select 'responsive'"])
        #expect(other.stdout == "responsive\n", "\(other)")
        let result = try await pgbench.wait(timeout: 120)
        #expect(result.stderr.contains("did not arrive in time"), "\(result.stderr.prefix(2000))")
    }

    @Test("a new source or client needs a step-up on its first statement; once proven it is remembered")
    func newDevice() async throws {
        let gateway = try await Gateway.start(
            extraConfig: """
                policy:
                  rules:
                    - name: new-device
                      match: {new_device: true}
                      action: step_up
                """)
        let token = try await gateway.aliceToken()
        let totp = try await Self.enrol(gateway, "alice")
        let first = try await gateway.startPsql(password: token, ["-c", "select 'first'"])
        let id = try await Self.challengeID(of: first)
        #expect(first.stderr.contains("rule \"new-device\""), "\(first.stderr)")
        let verify = try await gateway.cli("alice", ["verify", id, "--code", totp.code(at: Date().addingTimeInterval(30))])
        #expect(verify.status == 0, "\(verify)")
        let firstResult = try await first.wait(timeout: 30)
        #expect(firstResult.stdout == "first\n", "\(firstResult)")

        // Same address, same client: known now.
        let again = try await gateway.psql(password: token, ["-c", "select 'known'"])
        #expect(again.stdout == "known\n", "\(again)")
        // Another client application is a new device.
        let other = try await Command.start(
            "\(gateway.cluster.binDirectory)/psql",
            [gateway.conninfo(connection: "main", user: "alice"), "-X", "-At", "-c", "select 'other app'"],
            environment: ["PGPASSWORD": token, "PGAPPNAME": "some-new-tool"])
        _ = try await Self.challengeID(of: other)
        other.signal(SIGINT)
        _ = try await other.wait(timeout: 30)
    }
}
