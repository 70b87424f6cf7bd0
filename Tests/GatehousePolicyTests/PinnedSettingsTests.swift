import GatehouseConfig
import GatehouseConfigYAML
import GatehousePolicy
import SQLInspection
import Testing

@Suite("Pinned settings and calls in every spelling")
struct PinnedSettingsTests {
    let starter: Policy
    let permissive: Policy

    init() throws {
        let text = try String(
            contentsOfFile: PolicyDecisionTests.repositoryFile("examples/starter-policy.yaml"), encoding: .utf8)
        starter = try ConfigLoader(environment: [:], baseDirectory: "/").parse(
            text.replacingOccurrences(
                of: "users: [{name: demo, groups: [developer]}]", with: "users: [{name: ada, groups: [developer]}]"),
            file: "starter-policy.yaml"
        ).policy
        permissive = try policy("  default: allow\n  unclassified: allow\n  rules: []")
    }

    @Test(
        "a change of how the server reads text is refused whatever the rules say",
        arguments: [
            "SET standard_conforming_strings = off", "SET standard_conforming_strings TO 'of'",
            "SET standard_conforming_strings = 0", "SET \"STANDARD_CONFORMING_STRINGS\" = false",
            "SET client_encoding = 'SJIS'", "SET NAMES 'GBK'", "SET client_encoding TO gb18030", "SET client_encoding = 'BIG5'",
            "SET client_encoding = 'LATIN1'", "SET client_encoding = 'SQL_ASCII'",
            "SELECT set_config('client_encoding', 'SJIS', false)",
            "SELECT set_config('standard_conforming_strings', 'off', true)",
            "SELECT set_config('client_encoding', lower('SJIS'), false)",
            "SELECT set_config(chr(99) || 'lient_encoding', 'SJIS', false)",
            "UPDATE pg_settings SET setting = 'SJIS' WHERE name = 'client_encoding'",
            "SELECT 1; SET client_encoding = 'SJIS'",
        ])
    func pinsHold(sql: String) {
        for policy in [starter, permissive] {
            let decision = decide(policy, sql)
            #expect(decision.action == .deny, "\(sql): \(decision.reason)")
            #expect(decision.matched.isEmpty)
        }
    }

    @Test(
        "keeping or restoring the pinned values is allowed",
        arguments: [
            "SET client_encoding = 'UTF8'", "SET client_encoding TO 'utf-8'", "SET NAMES 'Unicode'",
            "SET standard_conforming_strings = on", "SET standard_conforming_strings = 'true'", "RESET client_encoding",
            "RESET ALL", "SET standard_conforming_strings TO DEFAULT",
        ])
    func pinnedValuesAllowed(sql: String) {
        #expect(decide(permissive, sql).action == .allow, "\(sql)")
    }

    @Test(
        "every dangerous function in attribute notation is refused",
        arguments: [
            "SELECT (pid).pg_terminate_backend FROM pg_stat_activity WHERE usename = 'bob'",
            "SELECT a.pg_cancel_backend FROM pg_stat_activity a", "SELECT (oid).lo_unlink FROM pg_largeobject_metadata",
            "SELECT ('/etc/passwd'::text).pg_read_file", "SELECT ('.'::text).pg_ls_dir",
            "SELECT ('x'::text).pg_read_binary_file", "SELECT ('x'::text).dblink_exec",
        ])
    func attributeNotation(sql: String) {
        let decision = decide(starter, sql)
        #expect(decision.action == .deny, "\(sql)")
        #expect(decision.decidingRules.map(\.name).contains("no-dangerous-functions"), "\(decision.reason)")
    }

    @Test("an EXECUTE is judged by its own arguments as well as by what it runs")
    func executeArguments() {
        var prepared = PreparedStatements()
        let prepare = Inspector.inspect("PREPARE p(text) AS SELECT $1")
        #expect(starter.evaluate(prepared.resolve(prepare), in: context()).action == .allow)
        prepared.record(prepare)
        let plain = prepared.resolve(Inspector.inspect("EXECUTE p('x')"))
        #expect(starter.evaluate(plain, in: context()).action == .allow)
        for sql in [
            "EXECUTE p(set_config('role', 'powerful', false))", "EXECUTE p(('x'::text).pg_read_file)",
            "EXECUTE p(pg_terminate_backend(42)::text)",
        ] {
            let decision = starter.evaluate(prepared.resolve(Inspector.inspect(sql)), in: context())
            #expect(decision.action == .deny, "\(sql): \(decision.reason)")
        }
        let encoding = prepared.resolve(Inspector.inspect("EXECUTE p(set_config('client_encoding', 'SJIS', false))"))
        #expect(permissive.evaluate(encoding, in: context()).action == .deny)
        let dynamic = prepared.resolve(Inspector.inspect("EXECUTE p((SELECT 1)::text || ts_stat('select 1')::text)"))
        #expect(dynamic.statements.first?.dynamic == true)
    }

    @Test("set_config of role is a role change")
    func setConfigRole() {
        let decision = decide(starter, "SELECT set_config('role', 'powerful', false)")
        #expect(decision.action == .deny)
        #expect(Set(decision.decidingRules.map(\.name)) == ["no-dangerous-functions", "no-privilege-changes"])
    }

    @Test("bool and encoding names are read as the server reads them")
    func serverSpellings() {
        #expect(PostgresBool.parse("tr") == true && PostgresBool.parse("YE") == true && PostgresBool.parse("of") == false)
        #expect(PostgresBool.parse("o") == nil && PostgresBool.parse("onn") == nil && PostgresBool.parse("") == nil)
        #expect(
            PinnedSettings.normalizedEncoding("UTF-8") == "utf8" && PinnedSettings.normalizedEncoding("Shift_JIS") == "shiftjis")
    }

    @Test("a table rule follows the session's search path to an unqualified name")
    func searchPath() throws {
        let rules = try policy(
            "  default: allow\n  unclassified: deny\n  rules:\n    - {name: no-payroll, match: {tables: [secret.pay]}, action: deny}"
        )
        #expect(decide(rules, "SELECT * FROM secret.pay").action == .deny)
        #expect(decide(rules, "SELECT * FROM pay").action == .allow, "public.pay is another table")
        #expect(decide(rules, "SET search_path = secret; SELECT * FROM pay").action == .deny)
        #expect(decide(rules, "SELECT set_config('search_path', 'x, secret', false); SELECT * FROM pay").action == .deny)
        var session = context()
        session.searchPath.widen(by: Inspector.inspect("SET search_path TO \"secret\", public"))
        #expect(rules.evaluate(Inspector.inspect("SELECT * FROM pay"), in: session).action == .deny)
        var unknown = context()
        unknown.searchPath.widen(by: Inspector.inspect("SELECT set_config('search_path', current_user, false)"))
        #expect(rules.evaluate(Inspector.inspect("SELECT * FROM pay"), in: unknown).action == .deny)
        #expect(decide(starter, "SET local_preload_libraries = 'x'").action == .deny, "a startup LOAD")
    }

    @Test("large-object writes, setval and the *_old functions are dangerous in the starter policy")
    func starterFunctions() {
        for sql in [
            "SELECT lo_from_bytea(0, 'x')", "SELECT lo_put(1, 0, 'x')", "SELECT lowrite(lo_open(1, 131072), 'x')",
            "SELECT lo_truncate(lo_open(1, 131072), 5)", "SELECT lo_create(0)", "SELECT setval('s', 999)",
            "SELECT pg_read_file_old('x', 0, 1)", "SELECT pg_rotate_logfile_old()", "SELECT pg_ls_waldir()",
        ] {
            #expect(decide(starter, sql).action == .deny, "\(sql)")
        }
    }
}

@Suite("A session with a database role of its own cannot change who it runs as")
struct PinnedIdentityTests {
    @Test("every spelling of a role change is refused; going back to the login role is not")
    func spellings() {
        let refused = [
            "set role orders_write", "SET ROLE 'orders_write'", "set local role orders_write", "reset role",
            "set role none", "set session authorization postgres", "reset session authorization",
            "set session_authorization = 'postgres'", "select set_config('role', 'orders_write', false)",
            "select set_config('ROLE', 'orders_write', true)",
            "select pg_catalog.set_config('session_authorization', 'x', false)",
            "select 1; set role x",
            "alter role gh_alice password 'mine'", "ALTER USER gh_alice WITH PASSWORD 'SCRAM-SHA-256$4096:x'",
            "alter role gh_alice set role = 'orders_write'", "alter user current_user set role to orders_write",
            "alter role gh_alice in database app set session_authorization = 'postgres'",
        ]
        for sql in refused {
            #expect(PinnedIdentity.violation(in: Inspector.inspect(sql)) != nil, "\(sql)")
        }
        for sql in ["reset all", "discard all", "set search_path = public", "select current_user", "show role"] {
            #expect(PinnedIdentity.violation(in: Inspector.inspect(sql)) == nil, "\(sql)")
        }
    }
}
