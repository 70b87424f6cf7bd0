import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A connection with `database_roles`: each person logs in as a role of their own, and the database
/// itself refuses what their grants do not give, whatever a statement looks like to the guardrails.
@Suite("Per-person database roles", .timeLimit(.minutes(5)))
struct DatabaseRoleTests {
    /// The objects one test owns in the shared cluster: the gateway's login, the roles it hands out, a
    /// table and a plain (SECURITY INVOKER) function that deletes from it.
    struct Fixture {
        let tag: String
        var login: String { "gw_\(tag)" }
        var read: String { "read_\(tag)" }
        var write: String { "write_\(tag)" }
        var table: String { "orders_\(tag)" }
        var cleanup: String { "cleanup_\(tag)" }
        /// The role alice logs in as.
        var alice: String { "p\(tag)_alice" }
        let passwordFile: String

        var config: String {
            """
              - name: orders
                host: 127.0.0.1
                port: \(port)
                database: app
                user: \(login)
                password_file: \(passwordFile)
                database_roles:
                  mode: per_user
                  name: "p\(tag)_{user}"
                  base: [\(read)]
                  grants: {dba: [\(write)]}
            roles:
              - name: dba
                requesters: [developer]
                max_duration: 1h
                approvers: {groups: [dba]}
            policy:
              rules:
                - name: developers-read-only
                  match: {groups: [developer], writes: true, elevated: false}
                  action: deny
                  hint: request the dba role
            """
        }
        let port: Int

        static func make(_ cluster: TestCluster) async throws -> Fixture {
            let tag = UUID().uuidString.prefix(8).lowercased()
            let password = UUID().uuidString
            let passwordFile = "\(cluster.scratch)/gw_\(tag).secret"
            try password.write(toFile: passwordFile, atomically: true, encoding: .utf8)
            let fixture = Fixture(tag: String(tag), passwordFile: passwordFile, port: cluster.port)
            // What the README asks a DBA to run, and a table with a function that deletes from it.
            try await cluster.must(
                """
                CREATE ROLE \(fixture.login) LOGIN CREATEROLE PASSWORD '\(password)';
                CREATE ROLE \(fixture.read) NOLOGIN;
                CREATE ROLE \(fixture.write) NOLOGIN;
                GRANT \(fixture.read), \(fixture.write) TO \(fixture.login) WITH ADMIN OPTION;
                GRANT pg_signal_backend TO \(fixture.login);
                CREATE TABLE \(fixture.table) (id int PRIMARY KEY, note text);
                INSERT INTO \(fixture.table) VALUES (1, 'old'), (2, 'old'), (3, 'new');
                GRANT SELECT ON \(fixture.table) TO \(fixture.read);
                GRANT SELECT, DELETE ON \(fixture.table) TO \(fixture.write);
                CREATE FUNCTION \(fixture.cleanup)() RETURNS int LANGUAGE plpgsql AS $$
                DECLARE n int;
                BEGIN
                  DELETE FROM \(fixture.table) WHERE note = 'old';
                  GET DIAGNOSTICS n = ROW_COUNT;
                  RETURN n;
                END $$;
                """)
            return fixture
        }

        /// The database roles `role` is a member of, as the server says.
        func memberships(of role: String, _ cluster: TestCluster) async throws -> [String] {
            let out = try await cluster.must(
                """
                SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = '\(role)' ORDER BY 1
                """)
            return out.split(separator: "\n").map(String.init)
        }

        func rows(_ cluster: TestCluster) async throws -> String {
            try await cluster.must("SELECT string_agg(id::text, ',' ORDER BY id) FROM \(table)")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    static func requestID(_ output: String) throws -> String {
        let range = try #require(output.range(of: "req-"))
        return "req-" + output[range.upperBound...].prefix { $0.isHexDigit }
    }

    /// Waits until `role`'s memberships are `expected` (a REVOKE follows a grant's end within a tick).
    static func waitForMemberships(
        _ fixture: Fixture, _ role: String, _ expected: [String], _ cluster: TestCluster
    ) async throws -> [String] {
        var held: [String] = []
        for _ in 0..<100 {
            held = try await fixture.memberships(of: role, cluster)
            if held == expected { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return held
    }

    /// Rows of the gateway's audit table, read until there are `count` (events are committed in batches).
    static func auditRows(_ gateway: Gateway, _ sql: String, count: Int) async throws -> CommandResult {
        var result = CommandResult(status: -1, stdout: "", stderr: "")
        for _ in 0..<100 {
            result = try await Command.run("/usr/bin/sqlite3", [gateway.storePath, sql])
            if result.stdout.split(separator: "\n").count >= count { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return result
    }

    @Test(
        "the database refuses a delete a plain function hides from the guardrails; a dba grant allows it for exactly its lifetime"
    )
    func functionFollowsGrant() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let fixture = try await Fixture.make(cluster)
        let gateway = try await Gateway.start(extraConfig: fixture.config)
        let alice = try await gateway.aliceToken()
        _ = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        let verbose = ["-v", "VERBOSITY=verbose"]

        // Alice is her own role, in the session and in the server's view.
        let app = "dr-\(fixture.tag)"
        let who = try await gateway.psql(
            connection: "orders", password: alice, environment: ["PGAPPNAME": app],
            ["-c", "select current_user, session_user", "-c", "select count(*) from \(fixture.table)"])
        #expect(who.status == 0, "\(who)")
        #expect(who.stdout == "\(fixture.alice)|\(fixture.alice)\n3\n", "\(who)")
        #expect(try await fixture.memberships(of: fixture.alice, cluster) == [fixture.read])

        // The guardrails see a read; PostgreSQL refuses the delete inside, and the rows stay.
        let refused = try await gateway.psql(
            connection: "orders", password: alice, ["-c", "select \(fixture.cleanup)()"] + verbose)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("ERROR:  42501: permission denied for table \(fixture.table)"), "\(refused)")
        #expect(try await fixture.rows(cluster) == "1,2,3")

        // One open session, fed through a FIFO, sees pg_stat_activity name her and then gets the grant.
        let fifo = "\(gateway.directory)/alice.sql"
        #expect(mkfifo(fifo, 0o600) == 0)
        let session = try await Command.start(
            "\(cluster.binDirectory)/psql",
            [gateway.conninfo(connection: "orders", user: "alice"), "-X", "-At", "-v", "ON_ERROR_STOP=0", "-f", fifo]
                + verbose,
            environment: ["PGPASSWORD": alice, "PGAPPNAME": app])
        let descriptor = open(fifo, O_RDWR)
        #expect(descriptor >= 0)
        let input = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        input.write(Data("select 'ready';\n".utf8))
        try await session.waitForOutput("ready", timeout: 30)
        let activity = try await cluster.must(
            "SELECT usename FROM pg_stat_activity WHERE application_name = '\(app)' AND backend_type = 'client backend'")
        #expect(activity == "\(fixture.alice)\n", "\(activity)")

        let request = try await gateway.cli(
            "alice", ["request", "dba", "--duration", "15s", "--reason", "clean up old orders", "--no-wait"])
        let id = try Self.requestID(request.stdout + request.stderr)
        let approve = try await gateway.cli("bob", ["approve", id])
        #expect(approve.status == 0, "\(approve)")
        // In place by the time the approval returns.
        #expect(try await fixture.memberships(of: fixture.alice, cluster) == [fixture.read, fixture.write])

        input.write(Data("select \(fixture.cleanup)();\nselect pg_sleep(60);\n".utf8))
        let ended = try await session.wait(timeout: 60)
        try? input.close()
        #expect(ended.stdout.contains("ready\n2\n"), "\(ended)")
        #expect(ended.stderr.contains("terminating connection: grant \(id) (dba) expired"), "\(ended)")
        #expect(try await fixture.rows(cluster) == "3")
        // Its backend is gone too: the gateway's own login ended it (pg_signal_backend).
        var backends = ""
        for _ in 0..<50 {
            backends = try await cluster.must("SELECT count(*) FROM pg_stat_activity WHERE application_name = '\(app)'")
            if backends == "0\n" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(backends == "0\n")

        // The privilege is taken back in the database, and a new session is refused by the server again.
        #expect(try await Self.waitForMemberships(fixture, fixture.alice, [fixture.read], cluster) == [fixture.read])
        try await cluster.must("INSERT INTO \(fixture.table) VALUES (4, 'old')")
        let again = try await gateway.psql(
            connection: "orders", password: alice, ["-c", "select \(fixture.cleanup)()"] + verbose)
        #expect(again.stderr.contains("ERROR:  42501: permission denied for table \(fixture.table)"), "\(again)")
        #expect(try await fixture.rows(cluster) == "3,4")

        // Each change is audited with the grant that made it.
        let audit = try await Self.auditRows(
            gateway, "select type || ' ' || detail from audit_events where type like 'database_role.%' order by seq", count: 4)
        let lines = audit.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(audit)")
        #expect(lines.first?.hasPrefix("database_role.created") == true, "\(audit)")
        #expect(
            lines.contains { $0.hasPrefix("database_role.granted") && $0.contains(fixture.read) && $0.contains("base") },
            "\(audit)")
        #expect(
            lines.contains { $0.hasPrefix("database_role.granted") && $0.contains(fixture.write) && $0.contains(id) },
            "\(audit)")
        #expect(
            lines.contains { $0.hasPrefix("database_role.revoked") && $0.contains(fixture.write) }, "\(audit)")
    }

    @Test("killed while a grant runs out, the gateway takes the membership back at its next start, before any session")
    func reconcileAfterCrash() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let fixture = try await Fixture.make(cluster)
        let gateway = try await Gateway.start(extraConfig: fixture.config)
        let alice = try await gateway.aliceToken()
        _ = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        let first = try await gateway.psql(connection: "orders", password: alice, ["-c", "select current_user"])
        #expect(first.stdout == "\(fixture.alice)\n", "\(first)")

        let request = try await gateway.cli(
            "alice", ["request", "dba", "--duration", "15s", "--reason", "crash test", "--no-wait"])
        let id = try Self.requestID(request.stdout + request.stderr)
        let approve = try await gateway.cli("bob", ["approve", id])
        #expect(approve.status == 0, "\(approve)")
        #expect(try await fixture.memberships(of: fixture.alice, cluster) == [fixture.read, fixture.write])

        let process = try #require(gateway.process)
        process.signal(SIGKILL)
        _ = try await process.wait(timeout: 30)
        // The grant runs out while nothing watches it: the database still holds what it gave.
        let until = try #require(approve.stdout.range(of: " until "))
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let stamp = approve.stdout[until.upperBound...].prefix { $0 != "Z" } + "Z"
        let expiry = try #require(formatter.date(from: String(stamp)), "\(approve)")
        while Date() < expiry.addingTimeInterval(1) { try await Task.sleep(for: .milliseconds(200)) }
        #expect(try await fixture.memberships(of: fixture.alice, cluster) == [fixture.read, fixture.write])

        try await gateway.launch()
        #expect(try await fixture.memberships(of: fixture.alice, cluster) == [fixture.read])
        let audit = try await Self.auditRows(
            gateway, "select detail from audit_events where type = 'database_role.revoked' order by seq", count: 1)
        #expect(audit.stdout.contains(fixture.write), "\(audit)")

        // A membership a DBA added by hand is not one any grant gives: it goes too.
        try await cluster.must("GRANT \(fixture.write) TO \(fixture.alice)")
        let session = try await gateway.psql(
            connection: "orders", password: alice, ["-c", "select \(fixture.cleanup)()", "-v", "VERBOSITY=verbose"])
        #expect(session.stderr.contains("42501"), "\(session)")
        #expect(try await fixture.rows(cluster) == "1,2,3")
    }

    @Test("every role change is refused whatever the policy says, through SQL and through startup parameters")
    func roleChangesRefused() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let fixture = try await Fixture.make(cluster)
        // A policy that allows everything: the refusal is the connection's, not a rule's.
        let config = fixture.config.replacingOccurrences(
            of: "match: {groups: [developer], writes: true, elevated: false}\n      action: deny",
            with: "match: {groups: [developer]}\n      action: allow")
        #expect(config.contains("action: allow"))
        let gateway = try await Gateway.start(extraConfig: config)
        let alice = try await gateway.aliceToken()
        // Alice's role is a member of read, so a SET ROLE to it is one the server itself would accept.
        let attacks = [
            "set role \(fixture.read)", "SET ROLE '\(fixture.read)'", "reset role", "set role none",
            "begin; set local role \(fixture.read); select current_user; commit",
            "set session authorization \(fixture.login)", "set session_authorization = '\(fixture.login)'",
            "reset session authorization", "select set_config('role', '\(fixture.read)', false)",
            "select pg_catalog.set_config('ROLE', '\(fixture.read)', false)",
            "select set_config('session_authorization', 'postgres', false)",
            "alter role \(fixture.alice) password 'mine-now'", "alter user current_user set role = '\(fixture.read)'",
            "select 1; set role \(fixture.read)",
        ]
        for attack in attacks {
            let result = try await gateway.psql(
                connection: "orders", password: alice, ["-v", "ON_ERROR_STOP=0", "-c", attack, "-c", "select current_user"])
            #expect(result.stderr.contains("a database role of their own"), "\(attack): \(result)")
            #expect(result.stdout.hasSuffix("\(fixture.alice)\n"), "\(attack): \(result)")
            #expect(!result.stdout.contains(fixture.read), "\(attack): \(result)")
        }
        // Nothing stuck to the role: no default setting, still its own password (a new session logs in).
        let settings = try await cluster.must(
            "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = '\(fixture.alice)'"
        )
        #expect(settings == "0\n")

        // Going back to the login role is harmless, and allowed.
        for harmless in ["reset all", "discard all"] {
            let result = try await gateway.psql(
                connection: "orders", password: alice, ["-c", harmless, "-c", "select current_user, session_user"])
            #expect(result.stdout.hasSuffix("\(fixture.alice)|\(fixture.alice)\n"), "\(harmless): \(result)")
        }

        for options in [
            "-c role=\(fixture.read)", "-c session_authorization=\(fixture.login)", "--role=\(fixture.read)",
            "-crole=\(fixture.read)", "-c ROLE=\(fixture.read)", "-c Session_Authorization=\(fixture.login)",
        ] {
            let result = try await gateway.psql(
                connection: "orders", password: alice, environment: ["PGOPTIONS": options], ["-c", "select current_user"])
            #expect(result.status != 0, "\(options): \(result)")
            #expect(!result.stdout.contains(fixture.read), "\(options): \(result)")
            #expect(result.stderr.contains("role"), "\(options): \(result)")
        }
        // Startup parameters a driver sends as such, in any case.
        for parameter in [("role", fixture.read), ("ROLE", fixture.read), ("session_authorization", fixture.login)] {
            #expect(throws: RawClient.StartupRefused.self, "\(parameter)") {
                _ = try RawClient(
                    port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "orders"), parameter],
                    password: alice)
            }
        }
        // A driver's extended protocol: prepared, with the setting's name or value as a parameter.
        let script = """
            import psycopg, sys
            conn = psycopg.connect(host="127.0.0.1", port=\(gateway.postgresPort), dbname="orders", user="alice",
                                   password=sys.argv[1], sslmode="disable", autocommit=True)
            for sql, params in [("set role \(fixture.read)", None), ("select set_config(%s, %s, false)", ["role", "\(fixture.read)"]),
                                ("select set_config('role', %s, false)", ["\(fixture.read)"]),
                                ("select set_config(%s, 'x', false)", ["session_authorization"])]:
                for prepare in [False, True]:
                    try:
                        conn.execute(sql, params, prepare=prepare)
                        print("ran", sql)
                    except psycopg.Error as e:
                        print("refused", e.sqlstate)
            print(conn.execute("select current_user").fetchone()[0])
            """
        let driver = try await Command.run("/usr/bin/python3", ["-c", script, alice], environment: [:])
        #expect(driver.status == 0, "\(driver)")
        #expect(!driver.stdout.contains("ran"), "\(driver)")
        #expect(driver.stdout.hasSuffix("\(fixture.alice)\n"), "\(driver)")
        let raw = try RawClient(
            port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "orders")], password: alice)
        #expect(try raw.query("select current_user").rows == [[fixture.alice]])
    }

    @Test("one person cannot end another's session in the database; their own they can")
    func terminateOthers() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let fixture = try await Fixture.make(cluster)
        // Bob is a dba in Gatehouse, not a superuser in the database: both are plain roles there.
        let config = fixture.config.replacingOccurrences(
            of: "match: {groups: [developer], writes: true, elevated: false}\n      action: deny",
            with: "match: {groups: [developer, dba]}\n      action: allow")
        let gateway = try await Gateway.start(extraConfig: config)
        let alice = try await gateway.aliceToken()
        let bob = try await gateway.token(for: "bob", password: Gateway.bobPassword)

        let app = "victim-\(fixture.tag)"
        let victim = try await Command.start(
            "\(cluster.binDirectory)/psql",
            [
                gateway.conninfo(connection: "orders", user: "bob"), "-X", "-At", "-c", "select pg_sleep(60)",
            ],
            environment: ["PGPASSWORD": bob, "PGAPPNAME": app])
        var pid = ""
        for _ in 0..<100 where pid.isEmpty {
            pid = try await cluster.must(
                "SELECT pid FROM pg_stat_activity WHERE application_name = '\(app)' AND state = 'active'"
            )
            .trimmingCharacters(in: .whitespacesAndNewlines)
            if pid.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(!pid.isEmpty)
        for attack in [
            "select pg_terminate_backend(\(pid))", "select pg_cancel_backend(\(pid))",
            "select pg_catalog.pg_terminate_backend(pid) from pg_stat_activity where application_name = '\(app)'",
        ] {
            let result = try await gateway.psql(
                connection: "orders", password: alice, ["-c", attack, "-v", "VERBOSITY=verbose"])
            // The server's own refusal (the guardrails allowed it): same role or pg_signal_backend.
            #expect(result.stderr.contains("42501"), "\(attack): \(result)")
            #expect(result.stderr.contains("pg_signal_backend") && result.stderr.contains("LOCATION:"), "\(attack): \(result)")
        }
        // Still there, still running: then the superuser ends it.
        let still = try await cluster.must("SELECT state FROM pg_stat_activity WHERE pid = \(pid)")
        #expect(still == "active\n", "\(still)")
        #expect(victim.isRunning)
        try await cluster.must("SELECT pg_cancel_backend(\(pid))")
        let survived = try await victim.wait(timeout: 60)
        #expect(survived.stderr.contains("canceling statement due to user request"), "\(survived)")

        // Her own session, though, is hers to end.
        let own = "own-\(fixture.tag)"
        let mine = try await Command.start(
            "\(cluster.binDirectory)/psql",
            [gateway.conninfo(connection: "orders", user: "alice"), "-X", "-At", "-c", "select pg_sleep(30)"],
            environment: ["PGPASSWORD": alice, "PGAPPNAME": own])
        var ownPid = ""
        for _ in 0..<100 where ownPid.isEmpty {
            ownPid = try await cluster.must(
                "SELECT pid FROM pg_stat_activity WHERE application_name = '\(own)' AND state = 'active'"
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            if ownPid.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        }
        let cancel = try await gateway.psql(connection: "orders", password: alice, ["-c", "select pg_cancel_backend(\(ownPid))"])
        #expect(cancel.stdout == "t\n", "\(cancel)")
        let cancelled = try await mine.wait(timeout: 30)
        #expect(cancelled.stderr.contains("canceling statement due to user request"), "\(cancelled)")
    }

    @Test("`connections check` says what the gateway's login can do, what each role allows, and how to fix what is missing")
    func connectionsCheck() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let fixture = try await Fixture.make(cluster)
        let gateway = try await Gateway.start(extraConfig: fixture.config)
        let alice = try await gateway.aliceToken()
        _ = try await gateway.psql(connection: "orders", password: alice, ["-c", "select 1"])
        func check(_ name: String = "orders") async throws -> CommandResult {
            try await Command.run(
                cluster.gatehouse, ["connections", "check", name, "--config", gateway.configFile],
                environment: ["TEST_SCRAM_PASSWORD": cluster.scramPassword, "TEST_TLS_PASSWORD": cluster.tlsPassword])
        }

        let good = try await check()
        #expect(good.status == 0, "\(good)")
        for line in [
            "orders: PostgreSQL 1", "logged in as \(fixture.login)", "People log in as p\(fixture.tag)_{user}",
            "  \(fixture.read) (everyone):\n    SELECT on table \(fixture.table)",
            "  \(fixture.write) (grant of dba):\n    DELETE, SELECT on table \(fixture.table)",
            "  \(fixture.alice): \(fixture.read)", "OK: the gateway's login can manage these roles.",
        ] {
            #expect(good.stdout.contains(line), "missing \(line): \(good)")
        }

        // A plain connection: said so, and fine.
        let plain = try await check("main")
        #expect(plain.status == 0, "\(plain)")
        #expect(plain.stdout.contains("database_roles is not set: every session logs in as gh_scram"), "\(plain)")

        // The login loses CREATEROLE and a role handed out is gone: each is a problem with its fix.
        try await cluster.must(
            """
            ALTER ROLE \(fixture.login) NOCREATEROLE;
            REVOKE pg_signal_backend FROM \(fixture.login);
            REVOKE ALL ON \(fixture.table) FROM \(fixture.write);
            DROP ROLE \(fixture.write);
            """)
        let broken = try await check()
        #expect(broken.status == 1, "\(broken)")
        for line in [
            "PROBLEM: \(fixture.login) may not create roles", "  fix: ALTER ROLE \"\(fixture.login)\" CREATEROLE;",
            "PROBLEM: \(fixture.write) does not exist in the database", "  fix: CREATE ROLE \"\(fixture.write)\" NOLOGIN;",
            "PROBLEM: \(fixture.login) may not end a person's backend",
            "  fix: GRANT pg_signal_backend TO \"\(fixture.login)\";",
            "3 problems: run the fixes as a superuser, then check again.",
        ] {
            #expect(broken.stdout.contains(line), "missing \(line): \(broken)")
        }
        // Nothing changed in the database by checking.
        #expect(try await fixture.memberships(of: fixture.alice, cluster) == [fixture.read])

        try await cluster.must(
            "ALTER ROLE \(fixture.login) CREATEROLE; GRANT pg_signal_backend TO \(fixture.login); CREATE ROLE \(fixture.write) NOLOGIN;"
        )
        let fixed = try await check()
        #expect(fixed.status == 0, "\(fixed)")
        #expect(fixed.stdout.contains("warning: \(fixture.write) holds no privilege"), "\(fixed)")

        // A role a grant hands out that owns a table, or may grant on: what a person does with it outlives the grant.
        try await cluster.must(
            "CREATE TABLE \(fixture.table)_owned (id int); ALTER TABLE \(fixture.table)_owned OWNER TO \(fixture.write); GRANT SELECT ON \(fixture.table) TO \(fixture.write) WITH GRANT OPTION;"
        )
        let owner = try await check()
        #expect(owner.status == 1, "\(owner)")
        #expect(owner.stdout.contains("PROBLEM: \(fixture.write) owns \(fixture.table)_owned"), "\(owner)")
        #expect(
            owner.stdout.contains("PROBLEM: \(fixture.write) holds SELECT on table \(fixture.table) WITH GRANT OPTION"),
            "\(owner)")

        let unknown = try await check("order")
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("no connection named 'order'"), "\(unknown)")
        #expect(unknown.stderr.contains("orders"), "\(unknown)")
    }
    @Test("a password the person sets themselves opens nothing: the role logs in only while the gateway logs it in")
    func ownPasswordOpensNothing() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let fixture = try await Fixture.make(cluster)
        let config = fixture.config.replacingOccurrences(
            of: "match: {groups: [developer], writes: true, elevated: false}\n      action: deny",
            with: "match: {groups: [developer]}\n      action: allow")
        let gateway = try await Gateway.start(extraConfig: config + "\n  unclassified: allow")
        let alice = try await gateway.aliceToken()
        // The database lets a role set its own password; hidden in dynamic SQL the gateway cannot see it.
        let set = try await gateway.psql(
            connection: "orders", password: alice,
            [
                // First wait for the gateway to expire the password after this very login (it does so beside
                // the session, and two ALTER ROLEs at once collide), then set one's own.
                "-c",
                "DO $$BEGIN WHILE (SELECT rolvaliduntil > now() FROM pg_roles WHERE rolname = current_user) LOOP PERFORM pg_sleep(0.1); END LOOP; END$$",
                "-c", "DO $$BEGIN EXECUTE 'ALTER ROLE ' || current_user || ' PASSWORD ''mine-now'''; END$$",
            ])
        #expect(set.status == 0, "\(set)")
        // Straight to the server with it: the role's password has expired since the gateway's login.
        let direct = try await Command.run(
            "\(cluster.binDirectory)/psql",
            [
                "host=127.0.0.1 port=\(cluster.port) dbname=app user=\(fixture.alice) connect_timeout=10", "-X", "-At", "-c",
                "select 1",
            ],
            environment: ["PGPASSWORD": "mine-now"])
        #expect(direct.status != 0, "\(direct)")
        #expect(direct.stderr.contains("password authentication failed"), "\(direct)")
        let expired = try await cluster.must("SELECT rolvaliduntil < now() FROM pg_roles WHERE rolname = '\(fixture.alice)'")
        #expect(expired == "t\n", "\(expired)")
        // The gateway puts its own password back at the next session, which works as before.
        let again = try await gateway.psql(connection: "orders", password: alice, ["-c", "select current_user"])
        #expect(again.stdout == "\(fixture.alice)\n", "\(again)")
    }

    @Test("a lock held on one person's role delays only that person, for seconds, with a clear refusal")
    func lockedRole() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let fixture = try await Fixture.make(cluster)
        let gateway = try await Gateway.start(extraConfig: fixture.config)
        let alice = try await gateway.aliceToken()
        let bob = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        let first = try await gateway.psql(connection: "orders", password: alice, ["-c", "select 1"])
        #expect(first.status == 0, "\(first)")
        // A transaction that altered alice's role and stays open holds its row (she could do it herself).
        let holder = try await Command.start(
            "\(cluster.binDirectory)/psql",
            [
                "-h", cluster.socketDirectory, "-p", String(cluster.port), "-U", "postgres", "-d", "app", "-X", "-At",
                "-c", "BEGIN; ALTER ROLE \(fixture.alice) CONNECTION LIMIT 5; SELECT 'locked'; SELECT pg_sleep(30); COMMIT;",
            ])
        defer { holder.signal(SIGKILL) }
        try await Task.sleep(for: .seconds(1))
        let bobs = try await gateway.psql(connection: "orders", user: "bob", password: bob, ["-c", "select current_user"])
        #expect(bobs.stdout == "p\(fixture.tag)_bob\n", "\(bobs)")
        let refused = try await gateway.psql(connection: "orders", password: alice, ["-c", "select 1"])
        #expect(refused.status != 0, "\(refused)")
        #expect(refused.stderr.contains("your database role is not ready"), "\(refused)")
        #expect(refused.stderr.contains("lock timeout"), "\(refused)")
    }
}
