import Foundation
import GatehouseCore
import Testing

/// Every execution is judged when it runs, not only when its text was parsed: the extended protocol
/// (a raw client, psycopg, pgbench -M prepared) and SQL PREPARE/EXECUTE and cursors, against a real
/// server whose tables are checked afterwards.
@Suite("Every execution is judged when it runs", .timeLimit(.minutes(5)))
struct ExecutionTests {
    /// Writes (and reads of `secret_*` tables) are fine in a young session; in one older than `age`
    /// they are denied, or (`stepUp`) held for step-up.
    static func policy(age: String = "3s", stepUp: Bool = false) -> String {
        """
        step_up: {timeout: 60s}
        policy:
          rules:
            - name: old-session-writes
              match: {writes: true, session_age: \(age)}
              action: \(stepUp ? "step_up" : "deny")
            - name: old-session-secrets
              match: {tables_read: ["secret_*"], session_age: \(age)}
              action: deny
        """
    }

    static func table(_ cluster: TestCluster, _ prefix: String = "exec", rows: Int = 3) async throws -> String {
        let table = uniqueTable(prefix)
        try await cluster.must(
            """
            CREATE TABLE \(table) (id int PRIMARY KEY);
            INSERT INTO \(table) SELECT generate_series(1, \(rows));
            GRANT ALL ON \(table) TO PUBLIC;
            """)
        return table
    }

    static func count(_ cluster: TestCluster, _ table: String) async throws -> String {
        try await cluster.must("SELECT count(*) FROM \(table)").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func client(_ gateway: Gateway, token: String) throws -> RawClient {
        try RawClient(port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "main")], password: token)
    }

    /// The audit events of alice's sessions matching `condition` (SQL over `type` and `detail`), once at
    /// least `count` are in the store (the log commits a few milliseconds after the journal).
    static func events(_ gateway: Gateway, where condition: String, atLeast count: Int) async throws -> [String] {
        var rows: [String] = []
        for _ in 0..<200 {
            let result = try await Command.run(
                "/usr/bin/sqlite3",
                [
                    gateway.storePath,
                    "SELECT type || ' ' || detail FROM audit_events WHERE actor = 'alice' AND (\(condition)) ORDER BY seq",
                ])
            rows = result.stdout.split(separator: "\n").map(String.init)
            if rows.count >= count { return rows }
            try await Task.sleep(for: .milliseconds(100))
        }
        return rows
    }

    @Test(
        "a statement parsed in a young session is refused at an Execute after the session turns old, under its own name or another's"
    )
    func lateExecutionIsRefused() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        let table = try await Self.table(gateway.cluster)
        let raw = try Self.client(gateway, token: try await gateway.aliceToken())
        try raw.parse("del", "DELETE FROM \(table) WHERE id = $1")
        try raw.sync()
        #expect(try raw.readUntilReady().error == nil, "a young session's write is parsed")
        try await Task.sleep(for: .seconds(4))

        // The same statement executed now: a write in an old session.
        try raw.bind("", "del", ["1"])
        try raw.execute()
        try raw.sync()
        let late = try raw.readUntilReady()
        #expect(late.error?["C"] == "42501", "\(late)")
        #expect(late.error?["M"]?.contains("old-session-writes") == true, "\(late)")

        // A harmless text under the same name is refused by the server (42P05) and swaps nothing.
        try raw.parse("del", "SELECT 1")
        try raw.sync()
        #expect(try raw.readUntilReady().error?["C"] == "42P05")
        try raw.bind("", "del", ["2"])
        try raw.execute()
        try raw.sync()
        #expect(try raw.readUntilReady().error?["C"] == "42501")

        // SQL EXECUTE of the protocol-level statement is the same DELETE.
        let execute = try raw.query("EXECUTE del(3)")
        #expect(execute.error?["C"] == "42501", "\(execute)")

        // Pipelined: the failing Parse and the Execute in one cycle each; the server's answer decides.
        try raw.parse("del", "SELECT 2")
        try raw.sync()
        try raw.bind("p", "del", ["1"])
        try raw.execute("p")
        try raw.sync()
        #expect(try raw.readUntilReady().error?["C"] == "42P05")
        #expect(try raw.readUntilReady().error?["C"] == "42501")

        #expect(try await Self.count(gateway.cluster, table) == "3", "nothing was deleted")
        #expect(try raw.query("SELECT 'usable'").rows == [["usable"]], "the session goes on")
        let refused = try await Self.events(
            gateway, where: "type = 'statement.denied' AND detail LIKE '%execution_of%'", atLeast: 3)
        #expect(refused.count >= 3, "\(refused)")
    }

    @Test("a cursor declared in a young session is refused at a FETCH after the session turns old")
    func lateFetchIsRefused() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        let cluster = gateway.cluster
        let secret = uniqueTable("secret")
        try await cluster.must(
            "CREATE TABLE \(secret) (v text); INSERT INTO \(secret) VALUES ('s3cr3t'); GRANT ALL ON \(secret) TO PUBLIC;")
        let raw = try Self.client(gateway, token: try await gateway.aliceToken())
        #expect(try raw.query("BEGIN; DECLARE c CURSOR FOR SELECT v FROM \(secret)").error == nil)
        try await Task.sleep(for: .seconds(4))
        let fetch = try raw.query("FETCH ALL FROM c")
        #expect(fetch.error?["M"]?.contains("old-session-secrets") == true, "\(fetch)")
        #expect(fetch.rows.isEmpty)
        // And through the protocol: Execute of the cursor's portal.
        _ = try raw.query("ROLLBACK")
        #expect(try raw.query("BEGIN").error == nil)
        let declared = try raw.query("DECLARE d CURSOR FOR SELECT v FROM \(secret)")
        #expect(declared.error?["M"]?.contains("old-session-secrets") == true, "now the DECLARE itself is refused")
    }

    @Test("a named statement executed after its session turns old is held for step-up, then runs; each run is audited")
    func lateExecutionHeldForStepUp() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy(stepUp: true))
        let table = try await Self.table(gateway.cluster, rows: 0)
        let token = try await gateway.aliceToken()
        let totp = try await StepUpTests.enrol(gateway, "alice")
        let raw = try Self.client(gateway, token: token)
        try raw.parse("ins", "INSERT INTO \(table) VALUES ($1)")
        try raw.bind("", "ins", ["1"])
        try raw.execute()
        try raw.sync()
        #expect(try raw.readUntilReady().tags == ["INSERT 0 1"], "young: runs at once")
        try await Task.sleep(for: .seconds(4))

        try raw.bind("", "ins", ["2"])
        try raw.execute()
        try raw.sync()
        var notice: RawClient.Message?
        while notice == nil {
            let message = try raw.readMessage()
            if message.type == UInt8(ascii: "N") { notice = message }
            #expect(message.type != UInt8(ascii: "C"), "nothing runs before the proof")
        }
        let detail = try #require(notice?.fields["D"])
        let range = try #require(detail.range(of: "gatehouse verify "))
        let id = String(detail[range.upperBound...].prefix { $0.isHexDigit })
        #expect(try await Self.count(gateway.cluster, table) == "1", "held: the second row is not there")
        let verify = try await gateway.cli("alice", ["verify", id, "--code", totp.code(at: Date().addingTimeInterval(30))])
        #expect(verify.status == 0, "\(verify)")
        let released = try raw.readUntilReady()
        #expect(released.tags == ["INSERT 0 1"], "\(released)")
        #expect(try await Self.count(gateway.cluster, table) == "2")
        let events = try await Self.events(gateway, where: "detail LIKE '%\"execution_of\"%'", atLeast: 1)
        #expect(events.contains { $0.hasPrefix("statement.held ") && $0.contains("old-session-writes") }, "\(events)")
    }

    @Test("a portal executed again after the grant it ran under ends does not run")
    func portalAfterGrantEnds() async throws {
        let gateway = try await Gateway.start(
            extraConfig: """
                roles:
                  - name: dba
                    requesters: [developer]
                    max_duration: 1h
                    approvers: {groups: [dba]}
                policy:
                  rules:
                    - name: secrets-need-dba
                      match: {tables_read: ["secret_*"], elevated: false}
                      action: deny
                """)
        let secret = uniqueTable("secret")
        try await gateway.cluster.must(
            "CREATE TABLE \(secret) (v int); INSERT INTO \(secret) SELECT generate_series(1, 10); GRANT ALL ON \(secret) TO PUBLIC;"
        )
        let token = try await gateway.aliceToken()
        let request = try await gateway.cli("alice", ["request", "dba", "--duration", "30m", "--reason", "read", "--no-wait"])
        let id = try GrantTests.requestID(request.stdout + request.stderr)
        _ = try await gateway.token(for: "bob", password: Gateway.bobPassword)  // signs bob's command line in
        let approve = try await gateway.cli("bob", ["approve", id])
        #expect(approve.status == 0, "\(request) \(approve)")
        let raw = try Self.client(gateway, token: token)
        #expect(try raw.query("BEGIN").error == nil)
        try raw.parse("", "SELECT v FROM \(secret) ORDER BY v")
        try raw.bind("p")
        try raw.execute("p", maxRows: 2)
        try raw.sync()
        let first = try raw.readUntilReady()
        #expect(first.rows.count == 2, "under the grant: \(first)")
        #expect(first.messages.contains { $0.type == UInt8(ascii: "s") }, "the portal is suspended, not done")
        #expect(try await gateway.cli("bob", ["revoke", id]).status == 0)
        var after = RawClient.Reply()
        do {
            try raw.execute("p", maxRows: 2)
            try raw.sync()
            after = try raw.readUntilReady()
        } catch {
            // The session ended with the grant before the Execute reached it: that is a refusal too.
        }
        #expect(after.rows.isEmpty, "no row of the secret table after the grant ended: \(after)")
    }

    @Test("psycopg's prepared statements: each execution is judged and audited, and a sequence is not advanced read-only")
    func psycopg() async throws {
        let gateway = try await Gateway.start(
            extraConfig: """
                policy:
                  rules:
                    - {name: read-only, match: {writes: true}, action: deny}
                """)
        let cluster = gateway.cluster
        let table = try await Self.table(cluster)
        try await cluster.must("CREATE SEQUENCE \(table)_seq; GRANT ALL ON SEQUENCE \(table)_seq TO PUBLIC;")
        let token = try await gateway.aliceToken()
        let script = """
            import psycopg, sys
            conn = psycopg.connect(host="127.0.0.1", port=\(gateway.postgresPort), dbname="main", user="alice",
                                   password=sys.argv[1], sslmode="disable", autocommit=True)
            for i in range(5):
                print(conn.execute("SELECT count(*) FROM \(table) WHERE id > %s", [i], prepare=True).fetchone()[0])
            try:
                conn.execute("SELECT nextval(%s)", ["\(table)_seq"], prepare=True)
                print("nextval ran")
            except psycopg.Error as e:
                print("refused", e.sqlstate)
            print(conn.execute("SELECT 'usable'").fetchone()[0])
            """
        let result = try await Command.run("/usr/bin/python3", ["-c", script, token], environment: [:])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "3\n2\n1\n0\n0\nrefused 42501\nusable\n", "\(result)")
        #expect(try await cluster.must("SELECT last_value, is_called FROM \(table)_seq").hasPrefix("1|f"), "never advanced")
        // Five runs of one prepared text: its decision and each later execution are events.
        let text = try await Self.events(
            gateway, where: "type = 'statement.allowed' AND detail LIKE '%WHERE id > $1%'", atLeast: 1)
        #expect(text.count == 1, "the text's decision, once: \(text)")
        let runs = try await Self.events(gateway, where: Self.executions(of: "%WHERE id > $1%"), atLeast: 4)
        #expect(runs.count >= 4, "\(runs)")
    }

    @Test("pgbench -M prepared: every transaction's execution is an audit event pointing at the prepared text")
    func pgbenchPrepared() async throws {
        let gateway = try await Gateway.start()
        let cluster = gateway.cluster
        let token = try await gateway.aliceToken()
        let table = try await Self.table(cluster, "bench", rows: 10)
        let script = try testArtifact("execution-pgbench.sql")
        try "\\set id random(1, 10)\nSELECT id FROM \(table) WHERE id = :id;\n".write(
            toFile: script, atomically: true, encoding: .utf8)
        let run = try await Command.run(
            "\(cluster.binDirectory)/pgbench",
            [
                "-n", "-M", "prepared", "-t", "25", "-c", "1", "-f", script, "-h", "127.0.0.1", "-p",
                String(gateway.postgresPort),
                "-U", "alice", "main",
            ],
            environment: ["PGPASSWORD": token, "PGSSLMODE": "disable"])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.contains("number of transactions actually processed: 25/25"), "\(run)")
        let executions = try await Self.events(gateway, where: Self.executions(of: "%\(table)%"), atLeast: 25)
        #expect(executions.count == 25, "\(executions.count) execution events: \(executions.prefix(3))")
    }
    /// Where an audit event is an execution of the text whose decision `textLike` finds: same session,
    /// `execution_of` that decision's number (an execution points at its text rather than repeat it).
    static func executions(of textLike: String) -> String {
        """
        type = 'statement.allowed' AND EXISTS (SELECT 1 FROM audit_events AS text WHERE text.session = audit_events.session \
        AND text.detail LIKE '\(textLike)' AND json_extract(text.detail, '$.execution_of') IS NULL \
        AND json_extract(audit_events.detail, '$.execution_of') = json_extract(text.detail, '$.statement_number'))
        """
    }
}
