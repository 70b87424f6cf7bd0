import Foundation
import SQLInspection
import Testing

/// A policy with no rules: only the gateway's own invariants (pinned settings) stand.
let permissivePolicy = """
    policy:
      default: allow
      unclassified: allow
      rules: []
    """

/// The attacks of a read-only developer, each checked in the database afterwards.
@Suite("Walk-arounds: the judge sees what PostgreSQL executes", .timeLimit(.minutes(5)))
struct WalkAroundTests {
    /// A table `name` (id, name) with rows 7 and 999, readable and writable by the gateway's roles.
    private func usersTable(_ cluster: TestCluster) async throws -> String {
        let table = uniqueTable("users")
        try await cluster.must(
            """
            CREATE TABLE \(table) (id int PRIMARY KEY, name text);
            INSERT INTO \(table) VALUES (7, 'seven'), (999, 'orig');
            GRANT ALL ON \(table) TO gh_scram, gh_trust;
            """)
        return table
    }

    /// A role `powerful` the upstream role may SET ROLE to, and a function anyone may run that records
    /// the role the session runs as (`current_setting('role')`, `none` when no SET ROLE took effect).
    private func powerfulRole(_ cluster: TestCluster) async throws -> (role: String, note: String, marks: String) {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let (role, note, marks) = ("powerful_\(suffix)", "note_\(suffix)", "marks_\(suffix)")
        try await cluster.must(
            """
            CREATE ROLE \(role) NOLOGIN;
            GRANT \(role) TO gh_scram;
            CREATE TABLE \(marks) (role text);
            CREATE FUNCTION \(note)() RETURNS int LANGUAGE sql SECURITY DEFINER
                AS $$ INSERT INTO \(marks) VALUES (current_setting('role')) RETURNING 1 $$;
            GRANT EXECUTE ON FUNCTION \(note)() TO PUBLIC;
            """)
        return (role, note, marks)
    }

    /// How many times `note` ran as another role than the connection's own.
    private func elevatedMarks(_ cluster: TestCluster, _ marks: String) async throws -> String {
        try await cluster.must("SELECT count(*) FROM \(marks) WHERE role <> 'none'")
    }

    @Test("standard_conforming_strings off is refused at startup, by SET and set_config; the UPDATE in a literal never runs")
    func stringModes() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let table = try await usersTable(gateway.cluster)
        let alice = try await gateway.aliceToken()
        // With standard strings off, `\'` would be a quote inside the first literal and the UPDATE would run.
        let attack = "SELECT 'a\\' , ' ; UPDATE \(table) SET name = $$x$$ WHERE id = 999 ; -- '"

        let session = try await gateway.psql(
            password: alice, [],
            stdin: """
                \\set ON_ERROR_STOP 0
                SET standard_conforming_strings = off;
                SET standard_conforming_strings TO 'of';
                SELECT set_config('standard_conforming_strings', 'off', false);
                SHOW standard_conforming_strings;
                \(attack);
                """)
        #expect(session.stderr.components(separatedBy: "standard_conforming_strings").count >= 3, "\(session)")
        #expect(session.stdout.contains("on\n"), "\(session)")
        #expect(session.stdout.contains("a\\| ; UPDATE"), "the server read two literals, as the gateway did: \(session)")

        for options in ["-c standard_conforming_strings=off", "--standard-conforming-strings=0"] {
            let refused = try await gateway.psql(
                password: alice, environment: ["PGOPTIONS": options], ["-c", attack])
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("standard_conforming_strings"), "\(refused)")
        }
        for key in ["standard_conforming_strings", "Standard_Conforming_Strings"] {
            #expect(throws: RawClient.StartupRefused.self) {
                _ = try RawClient(
                    port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "main"), (key, "off")],
                    password: alice)
            }
        }
        // Under a policy with no rules at all, the pin still holds.
        let open = try await Gateway.start(extraConfig: permissivePolicy)
        let token = try await open.aliceToken()
        let raw = try RawClient(port: open.postgresPort, parameters: [("user", "alice"), ("database", "main")], password: token)
        for sql in [
            "SET standard_conforming_strings = off", "SELECT set_config('standard_conforming_strings', 'off', false)",
            "UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'",
        ] {
            let reply = try raw.query(sql)
            #expect(reply.error?["C"] == "42501", "\(sql): \(String(describing: reply.error))")
        }
        #expect(try raw.query("SHOW standard_conforming_strings").rows == [["on"]])
        let reply = try raw.query(attack)
        #expect(reply.tags == ["SELECT 1"], "\(reply.tags)")

        let state = try await gateway.cluster.must("SELECT name FROM \(table) WHERE id = 999")
        #expect(state == "orig\n")
    }

    @Test("client encodings other than UTF8 are refused at startup, by SET and set_config; bytes that are not UTF-8 are refused")
    func clientEncodings() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let table = try await usersTable(gateway.cluster)
        let alice = try await gateway.aliceToken()
        let open = try await Gateway.start(extraConfig: permissivePolicy)
        let openToken = try await open.aliceToken()
        let attack = "SELECT E'中\\'; DELETE FROM \(table) WHERE id = 7; --'"

        for encoding in ["SJIS", "GBK", "GB18030", "BIG5"] {
            let startup = try await gateway.psql(
                password: alice, environment: ["PGCLIENTENCODING": encoding], ["-c", "select 1"])
            #expect(startup.status != 0)
            #expect(startup.stderr.contains("client_encoding"), "\(encoding): \(startup)")
            for options in ["-c client_encoding=\(encoding)", "--client-encoding=\(encoding)"] {
                let refused = try await gateway.psql(password: alice, environment: ["PGOPTIONS": options], ["-c", "select 1"])
                #expect(refused.status != 0, "\(options)")
            }
            #expect(throws: RawClient.StartupRefused.self) {
                _ = try RawClient(
                    port: gateway.postgresPort,
                    parameters: [("user", "alice"), ("database", "main"), ("CLIENT_ENCODING", encoding)], password: alice)
            }

            let raw = try RawClient(
                port: open.postgresPort, parameters: [("user", "alice"), ("database", "main")], password: openToken)
            for sql in [
                "SET client_encoding = '\(encoding)'", "SET NAMES '\(encoding)'",
                "SELECT set_config('client_encoding', '\(encoding)', false)",
                "SELECT set_config('client_encoding', lower('\(encoding)'), false)",
            ] {
                let reply = try raw.query(sql)
                #expect(reply.error?["C"] == "42501", "\(sql): \(String(describing: reply.error))")
            }
            #expect(try raw.query("SHOW client_encoding").rows == [["UTF8"]])
            // In UTF8 the server reads one SELECT, as the gateway does.
            #expect(try raw.query(attack).tags == ["SELECT 1"])
        }

        // Bytes that are not UTF-8 are refused, never read as something else; the session goes on.
        let raw = try RawClient(
            port: open.postgresPort, parameters: [("user", "alice"), ("database", "main")], password: openToken)
        for bytes in [[0x81, 0x5C] as [UInt8], [0xC0, 0xAF], [0xE4, 0xB8]] {
            let text = Array("SELECT E'".utf8) + bytes + Array("'; DELETE FROM \(table) WHERE id = 7; --'".utf8)
            let reply = try raw.query(bytes: text)
            #expect(reply.error?["C"] == "22021", "\(String(describing: reply.error))")
            #expect(reply.tags.isEmpty)
        }
        #expect(try raw.query("SELECT 'still here'").rows == [["still here"]])

        let state = try await gateway.cluster.must("SELECT count(*) FROM \(table) WHERE id = 7")
        #expect(state == "1\n")
    }

    @Test("a role in the startup packet, however spelled, is judged as SET ROLE and refused with FATAL 42501")
    func startupRole() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let (role, note, marks) = try await powerfulRole(gateway.cluster)
        let alice = try await gateway.aliceToken()

        // The oracle: as the role, the function's mark says so.
        try await gateway.cluster.must("SET ROLE \(role); SELECT \(note)(); RESET ROLE;")
        #expect(try await elevatedMarks(gateway.cluster, marks) == "1\n")
        try await gateway.cluster.must("DELETE FROM \(marks)")

        for options in [
            "-c role=\(role)", "-crole=\(role)", "--role=\(role)", "-c ROLE=\(role)", "-c datestyle=ISO -c role=\(role)",
        ] {
            let result = try await gateway.psql(password: alice, environment: ["PGOPTIONS": options], ["-c", "select \(note)()"])
            #expect(result.status != 0, "\(options)")
            #expect(result.stderr.contains("FATAL:  startup setting"), "\(options): \(result)")
            #expect(result.stderr.contains("no-privilege-changes"), "\(options): \(result)")
        }
        let keys: [[(String, String)]] = [
            [("role", role)], [("ROLE", role)], [("Role", role)], [("role", "gh_scram"), ("ROLE", role)],
            [("options", "-c role=\(role)"), ("role", "none")],
        ]
        for extra in keys {
            do {
                let raw = try RawClient(
                    port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "main")] + extra, password: alice)
                _ = try raw.query("SELECT \(note)()")
                Issue.record("the startup with \(extra) was accepted")
            } catch let refused as RawClient.StartupRefused {
                #expect(refused.fields["C"] == "42501", "\(extra): \(refused)")
                #expect(refused.fields["S"] == "FATAL")
            }
        }
        // Settings on the allow-list, and judged ones the policy allows, are served.
        let allowed = try await gateway.psql(
            password: alice, environment: ["PGOPTIONS": "-c datestyle=German --search-path=public -c statement_timeout=5s"],
            ["-c", "show datestyle", "-c", "show search_path", "-c", "show statement_timeout", "-c", "show client_encoding"])
        #expect(allowed.stdout == "German, DMY\npublic\n5s\nUTF8\n", "\(allowed)")

        #expect(try await elevatedMarks(gateway.cluster, marks) == "0\n")
        try await gateway.loginAdmin()
        let refusals = try await gateway.cli("admin", ["audit", "tail", "--type", "session.refused"])
        #expect(refusals.stdout.contains("no-privilege-changes"), "\(refusals)")
    }

    @Test("attribute notation calls are judged as calls: no backend is signalled, no large object removed")
    func attributeNotation() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let alice = try await gateway.aliceToken()
        let victim = "victim_\(UUID().uuidString.prefix(8).lowercased())"
        let sleeper = try await Command.start(
            "\(gateway.cluster.binDirectory)/psql",
            [
                "host=127.0.0.1 port=\(gateway.cluster.port) dbname=app user=gh_scram application_name=\(victim)", "-X", "-At",
                // Longer than the test may take under the suite's load; ended below.
                "-c", "select pg_sleep(900)",
            ],
            environment: ["PGPASSWORD": gateway.cluster.scramPassword])
        defer { sleeper.signal(SIGKILL) }
        var waited = 0
        while try await gateway.cluster.must("SELECT count(*) FROM pg_stat_activity WHERE application_name = '\(victim)'")
            != "1\n"
        {
            waited += 1
            if waited > 100 { throw HarnessError("the victim session did not start") }
            try await Task.sleep(for: .milliseconds(100))
        }
        let object = try await gateway.cluster.must("SELECT lo_create(0)").trimmingCharacters(in: .whitespacesAndNewlines)
        try await gateway.cluster.must("ALTER LARGE OBJECT \(object) OWNER TO gh_scram")

        let statements = [
            "SELECT (pid).pg_terminate_backend FROM pg_stat_activity WHERE application_name = '\(victim)'",
            "SELECT a.pg_terminate_backend FROM pg_stat_activity a WHERE a.application_name = '\(victim)'",
            "SELECT (pid).pg_cancel_backend FROM pg_stat_activity WHERE application_name = '\(victim)'",
            "SELECT (oid).lo_unlink FROM pg_largeobject_metadata WHERE oid = \(object)",
            "SELECT m.lo_unlink FROM (SELECT oid FROM pg_largeobject_metadata WHERE oid = \(object)) m",
            "SELECT ('postgresql.conf'::text).pg_read_file", "SELECT ('.'::text).pg_ls_dir",
            "SELECT ('dbname=app'::text).dblink_exec",
        ]
        for sql in statements {
            let result = try await gateway.psql(password: alice, ["-c", sql])
            #expect(result.status != 0, "\(sql)")
            #expect(result.stderr.contains("rule \"no-dangerous-functions\""), "\(sql): \(result)")
        }
        #expect(
            try await gateway.cluster.must(
                "SELECT state FROM pg_stat_activity WHERE application_name = '\(victim)'") == "active\n",
            "the victim's backend still runs its statement")
        #expect(try await gateway.cluster.must("SELECT count(*) FROM pg_largeobject_metadata WHERE oid = \(object)") == "1\n")
        try await gateway.cluster.must("SELECT lo_unlink(\(object))")
        try await gateway.cluster.must(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '\(victim)'")
    }

    @Test("EXECUTE arguments and SQL-running built-ins are judged: the role never changes")
    func executeArgumentsAndTextSQL() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let (role, note, marks) = try await powerfulRole(gateway.cluster)
        let alice = try await gateway.aliceToken()
        let result = try await gateway.psql(
            password: alice, [],
            stdin: """
                \\set ON_ERROR_STOP 0
                PREPARE p(text) AS SELECT $1;
                EXECUTE p('harmless');
                EXECUTE p(set_config('role', '\(role)', false));
                SELECT \(note)();
                EXECUTE p((SELECT 1)::text || set_config('role', '\(role)', false));
                SELECT * FROM ts_stat($$select to_tsvector(set_config('role','\(role)',false))$$);
                SELECT \(note)();
                SELECT ts_rewrite('a'::tsquery, $$select set_config('role','\(role)',false)::tsquery, 'b'::tsquery$$);
                SELECT query_to_xml($$select set_config('role','\(role)',false)$$, true, true, '');
                SELECT \(note)();
                SELECT current_user;
                """)
        #expect(result.stdout.contains("harmless\n"), "\(result)")
        #expect(result.stdout.contains("gh_scram\n"), "\(result)")
        #expect(result.stderr.contains("rule \"no-dangerous-functions\""), "\(result)")
        #expect(result.stderr.contains("runs SQL whose effect cannot be known"), "\(result)")
        #expect(try await gateway.cluster.must("SELECT count(*) FROM \(marks)") == "3\n", "every note ran")
        #expect(try await elevatedMarks(gateway.cluster, marks) == "0\n")
    }

    @Test("a function body that changes the client encoding ends the session before anything else runs")
    func functionBodyChangesEncoding() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let table = try await usersTable(gateway.cluster)
        let function = "to_sjis_\(UUID().uuidString.prefix(8).lowercased())"
        try await gateway.cluster.must(
            """
            CREATE FUNCTION \(function)() RETURNS int LANGUAGE plpgsql
                AS $$ BEGIN PERFORM set_config('client_encoding', 'SJIS', false); RETURN 1; END $$;
            GRANT EXECUTE ON FUNCTION \(function)() TO PUBLIC;
            """)
        let alice = try await gateway.aliceToken()
        let result = try await gateway.psql(
            password: alice, [],
            stdin: """
                \\set ON_ERROR_STOP 0
                SELECT \(function)();
                SELECT E'Á\\'; DELETE FROM \(table) WHERE id = 7; --';
                """)
        #expect(result.stderr.contains("FATAL:  terminating connection: the server reports client_encoding SJIS"), "\(result)")
        #expect(try await gateway.cluster.must("SELECT count(*) FROM \(table) WHERE id = 7") == "1\n")
    }

    @Test("a table rule holds whatever search_path the session sets, at startup or later")
    func searchPathTableRule() async throws {
        let schema = "sec_\(UUID().uuidString.prefix(8).lowercased())"
        let policy =
            try starterPolicy()
            + "\n    - name: no-payroll\n      match: {tables: [\(schema).pay]}\n      action: deny\n      message: payroll is off limits\n"
        let gateway = try await Gateway.start(extraConfig: policy)
        try await gateway.cluster.must(
            """
            CREATE SCHEMA \(schema); CREATE TABLE \(schema).pay (v int); INSERT INTO \(schema).pay VALUES (123456);
            GRANT USAGE ON SCHEMA \(schema) TO gh_scram; GRANT SELECT ON \(schema).pay TO gh_scram;
            """)
        let alice = try await gateway.aliceToken()
        let later = try await gateway.psql(
            password: alice, [], stdin: "\\set ON_ERROR_STOP 0\nSET search_path = \(schema);\nSELECT v FROM pay;\n")
        #expect(!later.stdout.contains("123456"), "\(later)")
        #expect(later.stderr.contains("no-payroll"), "\(later)")
        let together = try await gateway.psql(password: alice, ["-c", "SET search_path = \(schema); SELECT v FROM pay"])
        #expect(!together.stdout.contains("123456") && together.stderr.contains("no-payroll"), "\(together)")
        let startup = try await gateway.psql(
            password: alice, environment: ["PGOPTIONS": "-c search_path=\(schema)"], ["-c", "SELECT v FROM pay"])
        #expect(!startup.stdout.contains("123456") && startup.stderr.contains("no-payroll"), "\(startup)")
    }

    @Test("built-in operators and casts run no function the starter policy names or that runs SQL text")
    func operatorsAndCasts() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let policy = try starterPolicy()
        guard let start = policy.range(of: "functions: ["), let end = policy[start.upperBound...].firstIndex(of: "]") else {
            throw HarnessError("no function list in the starter policy")
        }
        let names = policy[start.upperBound..<end].split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "_", with: "\\_")
                .replacingOccurrences(of: "*", with: "%")
        }
        let patterns = (names + Inspector.dynamicSQLFunctions.sorted()).map { "'\($0)'" }.joined(separator: ", ")
        let found = try await cluster.must(
            """
            SELECT p.proname FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode WHERE p.proname LIKE ANY (ARRAY[\(patterns)])
            UNION SELECT p.proname FROM pg_cast c JOIN pg_proc p ON p.oid = c.castfunc WHERE p.proname LIKE ANY (ARRAY[\(patterns)]);
            """)
        #expect(found == "", "operators or casts that call a listed function: \(found)")
    }
}
