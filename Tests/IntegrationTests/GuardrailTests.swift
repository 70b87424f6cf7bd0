import Foundation
import GatehouseTestSupport
import Testing

/// The starter rule pack's policy section, as shipped in examples/.
func starterPolicy() throws -> String {
    let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/starter-policy.yaml")
    let text = try String(contentsOf: file, encoding: .utf8)
    guard let range = text.range(of: "policy:") else { throw HarnessError("no policy section in \(file.path)") }
    // Office hours are all week in the tests, so results do not depend on when they run.
    return String(text[range.lowerBound...])
        .replacingOccurrences(
            of: "outside: {days: [mon-fri], hours: \"08:00-19:00\", timezone: UTC}", with: "outside: {days: [mon-sun]}")
}

@Suite("Guardrails on live sessions", .timeLimit(.minutes(5)))
struct GuardrailTests {
    @Test("a developer's write is denied with 42501, the rule and a hint; the session stays usable")
    func simpleProtocolDenial() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let bob = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        let table = uniqueTable("guard")
        let setup = try await gateway.psql(
            user: "bob", password: bob,
            ["-c", "create table \(table) (id int primary key, v text)", "-c", "insert into \(table) values (1, 'a'), (2, 'b')"])
        #expect(setup.status == 0, "\(setup)")

        let alice = try await gateway.aliceToken()
        let result = try await Command.run(
            "\(gateway.cluster.binDirectory)/psql",
            [
                gateway.conninfo(connection: "main", user: "alice"), "-X", "-At", "-v", "VERBOSITY=verbose",
                "-c", "select count(*) from \(table)",
                "-c", "update \(table) set v = 'x' where id = 1",
                "-c", "select 'still usable'",
            ], environment: ["PGPASSWORD": alice])
        #expect(result.stdout == "2\nstill usable\n", "\(result)")
        #expect(
            result.stderr.contains("ERROR:  42501: Gatehouse denied this statement: rule \"developers-read-only\""), "\(result)")
        #expect(result.stderr.contains("HINT:  request the dba role for a write"), "\(result)")

        let unchanged = try await gateway.psql(user: "bob", password: bob, ["-c", "select v from \(table) where id = 1"])
        #expect(unchanged.stdout == "a\n", "\(unchanged)")
    }

    @Test("inside a transaction a denial aborts it as any failed statement would, and ROLLBACK recovers")
    func transactionState() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let bob = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        let table = uniqueTable("tx")
        let result = try await gateway.psql(
            user: "bob", password: bob, [],
            stdin: """
                \\set ON_ERROR_STOP 0
                create table \(table) (id int);
                begin;
                insert into \(table) values (1);
                delete from \(table);
                insert into \(table) values (2);
                rollback;
                select 'rows: ' || count(*) from \(table);
                """)
        #expect(result.stderr.contains("rule \"no-whereless-writes\""), "\(result)")
        #expect(result.stderr.contains("current transaction is aborted"), "\(result)")
        #expect(result.stdout.contains("rows: 0"), "\(result)")
    }

    @Test("one denied statement in a multi-statement query stops the whole query")
    func multiStatement() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let bob = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        let table = uniqueTable("multi")
        _ = try await gateway.psql(user: "bob", password: bob, ["-c", "create table \(table) (id int)"])
        let result = try await gateway.psql(
            user: "bob", password: bob, ["-c", "insert into \(table) values (1); select pg_terminate_backend(pg_backend_pid())"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("rule \"no-dangerous-functions\""), "\(result)")
        let count = try await gateway.psql(user: "bob", password: bob, ["-c", "select count(*) from \(table)"])
        #expect(count.stdout == "0\n", "\(count)")
    }

    @Test("the extended protocol: a denied Parse fails like PostgreSQL's own errors; allowed prepared statements run")
    func extendedProtocol() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let alice = try await gateway.aliceToken()
        let pgbench = "\(gateway.cluster.binDirectory)/pgbench"
        let environment = ["PGPASSWORD": alice, "PGSSLMODE": "require"]
        let common = ["-h", "127.0.0.1", "-p", "\(gateway.postgresPort)", "-U", "alice", "-n"]

        let allowedScript = "\(gateway.directory)/allowed.sql"
        try "\\set n random(1, 1000)\nselect :n::int * 2;\nselect count(*) from pg_class where oid > :n;\n"
            .write(toFile: allowedScript, atomically: true, encoding: .utf8)
        for mode in ["extended", "prepared"] {
            let run = try await Command.run(
                pgbench, ["-M", mode, "-f", allowedScript, "-t", "50", "-c", "2"] + common + ["main"], environment: environment)
            #expect(run.stdout.contains("number of transactions actually processed: 100/100"), "\(mode): \(run)")
        }

        let deniedScript = "\(gateway.directory)/denied.sql"
        try "select 1;\ndelete from pg_class_copy;\n".write(toFile: deniedScript, atomically: true, encoding: .utf8)
        for mode in ["extended", "prepared"] {
            let run = try await Command.run(
                pgbench, ["-M", mode, "-f", deniedScript, "-t", "1"] + common + ["main"], environment: environment)
            #expect(run.status != 0)
            #expect(run.stderr.contains("Gatehouse denied this statement"), "\(mode): \(run)")
            #expect(!run.stderr.contains("gatehouse_refused_"), "the marker must never reach the client: \(run)")
        }
    }

    @Test("writes outside a safe table wait for step-up; rows of the safe table pass; a rule on it does not")
    func writesOutsideSafe() async throws {
        let (safe, other) = (uniqueTable("safe"), uniqueTable("other"))
        let gateway = try await Gateway.start(
            extraConfig: """
                policy:
                  rules:
                    - name: outside-safe
                      match: {writes: true, not_tables_written: [\(safe)]}
                      action: step_up
                """)
        try await gateway.cluster.must(
            "SET ROLE gh_scram; CREATE TABLE \(safe) (id int, note text); CREATE TABLE \(other) (id int)")
        let token = try await gateway.aliceToken()
        // alice has no second factor: what needs step-up is refused at once.
        let run = try await gateway.psql(
            password: token,
            [
                "-v", "ON_ERROR_STOP=0", "-c", "insert into \(safe) values (1, 'ok')",
                "-c", "insert into public.\(safe) values (2, 'ok')",
                "-c",
                "with moved as (insert into \(other) values (9) returning id) insert into \(safe) select id, 'x' from moved",
                "-c", "create rule sneak as on insert to \(safe) do also insert into \(other) values (7)",
                "-c", "set search_path = elsewhere, public", "-c", "insert into \(safe) values (3, 'path')",
            ])
        #expect(run.stderr.components(separatedBy: "step-up verification failed").count - 1 == 3, "\(run)")
        #expect(try await gateway.cluster.must("SELECT count(*) FROM \(safe)") == "2\n")
        #expect(try await gateway.cluster.must("SELECT count(*) FROM \(other)") == "0\n")
        #expect(try await gateway.cluster.must("SELECT count(*) FROM pg_rules WHERE tablename = '\(safe)'") == "0\n")
    }

    @Test("a typo is a syntax error (42601, with its position) the gateway could not parse; DO blocks are refused by default")
    func unclassified() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let bob = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        let result = try await gateway.psql(
            user: "bob", password: bob, [],
            stdin: "\\set ON_ERROR_STOP 0\nselec 1;\ndo $$ begin perform 1; end $$;\nselect 'ok';\n")
        // psql draws its caret from the position, as it does for the server's own syntax errors.
        #expect(
            result.stderr.contains(
                "ERROR:  syntax error at or near \"selec\" (the gateway could not parse this statement, so it did not run it)\nLINE 1: selec 1;\n        ^"
            ), "\(result)")
        #expect(result.stderr.contains("^\nHINT:  correct the statement and send it again\n"), "\(result)")
        #expect(result.stderr.contains("runs SQL whose effect cannot be known"), "\(result)")
        #expect(result.stdout.contains("ok"), "\(result)")

        // The same through the wire: PostgreSQL's SQLSTATE and position, in a multi-statement text too.
        let raw = try RawClient(
            port: gateway.postgresPort, parameters: [("user", "bob"), ("database", "main")], password: bob)
        let typo = try raw.query("select 1; selct 2")
        #expect(typo.error?["C"] == "42601", "\(String(describing: typo.error))")
        #expect(typo.error?["P"] == "11", "\(String(describing: typo.error))")
        #expect(try raw.query("select 'still here'").rows == [["still here"]])
    }

    @Test("decisions are audited with rules, fingerprint and facts; shadow rules record what they would have done")
    func auditedDecisions() async throws {
        let policy =
            try starterPolicy() + """

                    - name: try-no-counts
                      mode: shadow
                      match: {functions: [count]}
                      action: deny
                """
        let gateway = try await Gateway.start(extraConfig: policy)
        let alice = try await gateway.aliceToken()
        _ = try await gateway.psql(password: alice, ["-c", "select count(*) from pg_class"])
        _ = try await gateway.psql(password: alice, ["-c", "truncate pg_class"])
        try await gateway.loginAdmin()
        let tail = try await gateway.cli("admin", ["audit", "tail", "-n", "50"])
        let allowed = tail.stdout.split(separator: "\n").first { $0.contains("statement.allowed") && $0.contains("count") }
        #expect(allowed?.contains("would_have=deny") == true, "\(tail)")
        #expect(allowed?.contains("shadow_rules=try-no-counts") == true, "\(tail)")
        let denied = tail.stdout.split(separator: "\n").first { $0.contains("statement.denied") }
        #expect(denied?.contains("rules=no-drop-or-truncate,developers-read-only") == true, "\(tail)")
        #expect(denied?.contains("facts=truncate writes=pg_class") == true, "\(tail)")
        #expect(denied?.contains("fingerprint=") == true, "\(tail)")
        #expect(denied?.contains("statement=truncate pg_class") == true, "\(tail)")
        let verify = try await gateway.cli("admin", ["audit", "verify"])
        #expect(verify.status == 0, "\(verify)")
    }

    @Test("the policy reloads when the file changes; a bad file is refused and the old policy stays")
    func hotReload() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let alice = try await gateway.aliceToken()
        let before = try await gateway.psql(password: alice, ["-c", "select 'reads allowed'"])
        #expect(before.stdout == "reads allowed\n", "\(before)")

        let original = try String(contentsOfFile: gateway.configFile, encoding: .utf8)
        let locked =
            original + """

                    - name: maintenance-freeze
                      match: {connections: [main]}
                      action: deny
                      message: the database is frozen for maintenance
                """
        try locked.write(toFile: gateway.configFile, atomically: true, encoding: .utf8)
        let frozen = try await eventually {
            let result = try await gateway.psql(password: alice, ["-c", "select 1"])
            return result.stderr.contains("frozen for maintenance") ? result : nil
        }
        #expect(frozen.status != 0)

        try (original + "\n    - {name: broken, action: sometimes, match: {}}\n").write(
            toFile: gateway.configFile, atomically: true, encoding: .utf8)
        try await gateway.process!.waitForOutput("policy reload refused; the previous policy stays in force", timeout: 20)
        #expect(gateway.process!.stderr.contains("rule action must be one of"))
        let stillFrozen = try await gateway.psql(password: alice, ["-c", "select 1"])
        #expect(stillFrozen.stderr.contains("frozen for maintenance"), "\(stillFrozen)")

        try original.write(toFile: gateway.configFile, atomically: true, encoding: .utf8)
        _ = try await eventually {
            let result = try await gateway.psql(password: alice, ["-c", "select 'open again'"])
            return result.stdout == "open again\n" ? result : nil
        }
    }

    @Test("rules on the source country use the configured GeoIP database")
    func countries() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let database = "\(cluster.scratch)/geo-\(UUID().uuidString.prefix(8)).mmdb"
        var writer = MMDBWriter()
        writer.add("127.0.0.0/8", country: "FR")
        try writer.write(to: database)
        let gateway = try await Gateway.start(
            extraConfig: """
                geoip: {database: \(database)}
                policy:
                  rules:
                    - name: outside-eu
                      match: {not_countries: [FR, DE, NL]}
                      action: deny
                    - name: no-writes-from-france
                      match: {countries: [FR], writes: true}
                      action: deny
                """)
        let alice = try await gateway.aliceToken()
        let read = try await gateway.psql(password: alice, ["-c", "select 'from France'"])
        #expect(read.stdout == "from France\n", "\(read)")
        let write = try await gateway.psql(password: alice, ["-c", "create temporary table t (a int)"])
        #expect(write.stderr.contains("rule \"no-writes-from-france\""), "\(write)")
    }

    @Test("gatehouse policy check and policy test explain decisions offline")
    func dryRun() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        try await gateway.stop()
        let binary = gateway.cluster.gatehouse
        let environment = ["TEST_SCRAM_PASSWORD": "x", "TEST_TLS_PASSWORD": "x"]
        let check = try await Command.run(binary, ["policy", "check", gateway.configFile], environment: environment)
        #expect(check.status == 0, "\(check)")
        #expect(check.stdout.contains("policy OK: 10 rules"), "\(check)")

        let test = try await Command.run(
            binary,
            [
                "policy", "test", "--config", gateway.configFile, "--user", "bob", "--connection", "main", "--sql",
                "delete from orders",
            ],
            environment: environment)
        #expect(test.status == 3, "\(test)")
        #expect(test.stdout.contains("Decision: deny"), "\(test)")
        #expect(test.stdout.contains("no-whereless-writes → deny"), "\(test)")
        #expect(test.stdout.contains("Statement 1: delete writes=orders no-where"), "\(test)")

        let json = try await Command.run(
            binary,
            [
                "policy", "test", "--config", gateway.configFile, "--user", "alice", "--connection", "main", "--json", "--sql",
                "select 1",
            ],
            environment: environment)
        #expect(json.status == 0, "\(json)")
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((object?["decision"] as? [String: Any])?["action"] as? String == "allow", "\(json)")
    }
}

/// Retries `attempt` until it returns a value (at most `timeout` seconds).
func eventually<T>(timeout: Double = 20, _ attempt: () async throws -> T?) async throws -> T {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if let value = try await attempt() { return value }
        try await Task.sleep(for: .milliseconds(200))
    }
    throw HarnessError("condition not met within \(Int(timeout))s")
}
