import Foundation
import GatehouseConfig
import GatehouseConfigYAML
import GatehousePolicy
import GatehouseTestSupport
import SQLInspection
import Testing

/// 2026-11-25 was a Wednesday.
let wednesdayMorning = Date(timeIntervalSince1970: 1_795_600_800)  // 2026-11-25T10:00:00Z
let saturdayNight = Date(timeIntervalSince1970: 1_795_905_000)  // 2026-11-28T22:30:00Z, a Saturday

func context(
    user: String = "ada", groups: [String] = ["developer"], connection: String = "prod", source: String = "10.1.2.3",
    country: String? = nil, application: String = "psql", grants: [ActiveGrant] = [], now: Date = wednesdayMorning,
    sessionAge: TimeInterval = 60, idle: TimeInterval = 0
) -> SessionContext {
    SessionContext(
        user: user, groups: groups, connection: connection, sourceAddress: source, country: country,
        applicationName: application, sessionStartedAt: now.addingTimeInterval(-sessionAge),
        lastActivityAt: now.addingTimeInterval(-idle), grants: grants, now: now)
}

/// A GeoIP database for configurations whose rules name countries.
let testGeoDatabase: String = {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("policy-tests-\(UUID().uuidString).mmdb").path
    var writer = MMDBWriter()
    writer.add("10.0.0.0/8", country: "FR")
    try? writer.write(to: path)
    return path
}()

func policy(_ yaml: String) throws -> Policy {
    let text = """
        geoip: {database: \(testGeoDatabase)}
        groups: [developer, dba, contractors]
        connections:
          - {name: prod, host: db, database: app, user: app, trust: true}
          - {name: staging, host: db, database: app, user: app, trust: true}
        policy:
        \(yaml)
        """
    return try ConfigLoader(environment: [:], baseDirectory: "/").parse(text, file: "policy.yaml").policy
}

func decide(_ policy: Policy, _ sql: String, _ context: SessionContext = context()) -> Decision {
    policy.evaluate(Inspector.inspect(sql), in: context)
}

@Suite("Policy decisions")
struct PolicyDecisionTests {
    let starter: Policy

    init() throws {
        let text = try String(contentsOfFile: Self.repositoryFile("examples/starter-policy.yaml"), encoding: .utf8)
        let config = try ConfigLoader(environment: [:], baseDirectory: "/").parse(
            text.replacingOccurrences(
                of: "users: [{name: demo, groups: [developer]}]",
                with: "users: [{name: ada, groups: [developer]}, {name: ops, groups: [dba]}]"), file: "starter-policy.yaml")
        starter = config.policy
    }

    static func repositoryFile(_ path: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(path).path
    }

    @Test("the starter pack: reads pass, developers cannot write, WHERE-less writes and DROP are refused")
    func starterPack() {
        #expect(decide(starter, "select * from customers").action == .allow)
        let write = decide(starter, "update customers set name = 'x' where id = 1")
        #expect(write.action == .deny)
        #expect(write.decidingRules.map(\.name) == ["developers-read-only"])
        #expect(write.hint?.contains("dba") == true)

        let dba = context(user: "ops", groups: ["dba"])
        #expect(decide(starter, "update customers set name = 'x' where id = 1", dba).action == .allow)
        let whereless = decide(starter, "update customers set name = 'x'", dba)
        #expect(whereless.action == .deny)
        #expect(whereless.decidingRules.map(\.name) == ["no-whereless-writes"])
        #expect(decide(starter, "drop table customers", dba).action == .deny)
        #expect(decide(starter, "truncate customers", dba).action == .deny)
        #expect(decide(starter, "select pg_terminate_backend(42)", dba).action == .deny)
        #expect(decide(starter, "select pg_catalog.pg_read_file('/etc/passwd')", dba).action == .deny)
        #expect(decide(starter, "copy customers to program 'curl x'", dba).action == .deny)
        #expect(decide(starter, "set role postgres", dba).action == .deny)
    }

    @Test("elevation lifts the DROP rule but not the WHERE-less rule")
    func elevation() {
        let grant = ActiveGrant(id: "g1", role: "dba", expiresAt: wednesdayMorning.addingTimeInterval(600))
        let elevated = context(user: "ops", groups: ["dba"], grants: [grant])
        let drop = decide(starter, "drop table scratch", elevated)
        #expect(drop.action == .allow)
        #expect(decide(starter, "delete from scratch", elevated).action == .deny)
        let expired = ActiveGrant(id: "g0", role: "dba", expiresAt: wednesdayMorning.addingTimeInterval(-1))
        #expect(decide(starter, "drop table scratch", context(user: "ops", groups: ["dba"], grants: [expired])).action == .deny)
    }

    @Test("writes outside office hours need step-up, with the rule's freshness window")
    func afterHours() {
        let dba = context(user: "ops", groups: ["dba"], now: saturdayNight)
        let decision = decide(starter, "insert into t values (1)", dba)
        #expect(decision.action == .stepUp)
        #expect(decision.stepUpMaxAge.map { Int($0) } == 900)
        #expect(decide(starter, "select 1", dba).action == .allow)
        #expect(decide(starter, "insert into t values (1)", context(user: "ops", groups: ["dba"])).action == .allow)
    }

    @Test("what cannot be classified is denied unless a rule names it")
    func unclassified() throws {
        let open = try policy("  default: allow\n  rules:\n    - {name: everything, action: allow, match: {}}")
        #expect(decide(open, "selec 1").action == .deny)
        #expect(decide(open, "do $$ begin perform 1; end $$").action == .deny)
        #expect(decide(open, "execute never_prepared").action == .deny)
        #expect(decide(open, "select * from dblink('x', 'drop table t') as r(a int)").action == .deny)
        #expect(decide(open, "selec 1").reason.contains("cannot be parsed"))
        let named = try policy(
            """
              rules:
                - {name: dba-do, action: alert, match: {groups: [dba], dynamic: true}}
            """)
        #expect(decide(named, "do $$ begin perform 1; end $$", context(groups: ["dba"])).action == .alert)
        #expect(decide(named, "do $$ begin perform 1; end $$").action == .deny)
        let permissive = try policy("  unclassified: allow")
        #expect(decide(permissive, "selec 1").action == .allow)
    }

    @Test("the most restrictive action wins and the decision names every rule that matched")
    func mostRestrictive() throws {
        let p = try policy(
            """
              rules:
                - {name: note-writes, action: alert, match: {writes: true}}
                - {name: orders-approval, action: approve, approvers: [group:dba], match: {tables_written: [public.orders]}}
                - {name: audit-locked, action: deny, match: {tables: [audit.*]}}
            """)
        let approve = decide(p, "update orders set paid = true where id = 1")
        #expect(approve.action == .approve)
        #expect(Set(approve.matched.map(\.name)) == ["note-writes", "orders-approval"])
        #expect(approve.decidingRules.map(\.name) == ["orders-approval"])
        #expect(approve.approvers == ["group:dba"])
        let deny = decide(p, "insert into audit.log select * from orders")
        #expect(deny.action == .deny)
        #expect(Set(deny.matched.map(\.name)) == ["note-writes", "audit-locked"])
        #expect(decide(p, "insert into notes values (1)").action == .alert)
        // In a multi-statement string, the worst statement decides.
        let multi = decide(p, "select 1; select * from audit.log; insert into notes values (1)")
        #expect(multi.action == .deny)
        #expect(multi.matched.first { $0.name == "audit-locked" }?.statement == 1)
    }

    @Test("shadow rules are reported, not enforced")
    func shadow() throws {
        let p = try policy(
            """
              rules:
                - {name: try-no-deletes, mode: shadow, action: deny, match: {kinds: [delete]}}
            """)
        let decision = decide(p, "delete from t where id = 1")
        #expect(decision.action == .allow)
        #expect(decision.shadowed.map(\.name) == ["try-no-deletes"])
        #expect(decision.matched.isEmpty)
    }

    @Test("defaults per connection apply when no rule matches")
    func defaults() throws {
        let p = try policy(
            """
              default: allow
              connections: {prod: deny}
              rules:
                - {name: reads, action: allow, match: {writes: false}}
            """)
        #expect(decide(p, "select 1", context(connection: "prod")).action == .allow)
        let write = decide(p, "insert into t values (1)", context(connection: "prod"))
        #expect(write.action == .deny)
        #expect(write.reason.contains("no rule allows it on connection \"prod\""))
        #expect(decide(p, "insert into t values (1)", context(connection: "staging")).action == .allow)
    }

    @Test("session conditions: users, groups, sources, countries, applications, time, age and idleness")
    func sessionConditions() throws {
        let p = try policy(
            """
              rules:
                - {name: office-net, action: deny, match: {not_source: [10.0.0.0/8, "::1"]}}
                - {name: no-bots, action: deny, match: {applications: ["bot-*"]}}
                - {name: geo, action: deny, match: {not_countries: [FR, DE]}}
                - {name: old-session, action: step_up, match: {session_age: 8h}}
                - {name: idle, action: step_up, match: {idle: 15m}}
                - {name: weekend, action: alert, match: {during: {days: [sat, sun], timezone: Europe/Paris}}}
                - {name: contractors, action: deny, match: {groups: [contractors], users: ["vendor-*"]}}
            """)
        #expect(decide(p, "select 1", context(country: "FR")).action == .allow)
        #expect(decide(p, "select 1", context(source: "192.168.1.9", country: "FR")).decidingRules.map(\.name) == ["office-net"])
        #expect(decide(p, "select 1", context(source: "::1", country: "FR")).action == .allow)
        #expect(decide(p, "select 1", context(source: "::ffff:10.9.9.9", country: "FR")).action == .allow)
        #expect(decide(p, "select 1", context(country: "FR", application: "bot-7")).action == .deny)
        #expect(decide(p, "select 1", context(country: "US")).decidingRules.map(\.name) == ["geo"])
        #expect(decide(p, "select 1", context(country: "FR", sessionAge: 9 * 3600)).action == .stepUp)
        #expect(decide(p, "select 1", context(country: "FR", idle: 20 * 60)).decidingRules.map(\.name) == ["idle"])
        #expect(decide(p, "select 1", context(country: "FR", now: saturdayNight)).action == .alert)
        #expect(decide(p, "select 1", context(user: "vendor-jo", groups: ["contractors"], country: "FR")).action == .deny)
        #expect(decide(p, "select 1", context(user: "jo", groups: ["contractors"], country: "FR")).action == .allow)
    }

    @Test("agents: `agent` tells an MCP tool's session from any other, `agents` matches the client's name")
    func agents() throws {
        let p = try policy(
            """
              rules:
                - {name: bots-read-only, action: deny, match: {agents: ["cursor*"], writes: true}}
                - {name: agents-approve-writes, action: approve, approvers: [bob], match: {agent: true, writes: true}}
                - {name: people-no-agents-table, action: deny, match: {agent: false, tables: [agent_memory]}}
            """)
        func agent(_ name: String?) -> SessionContext {
            var session = context()
            session.agent = name
            return session
        }
        let write = "delete from orders where id = 1"
        #expect(decide(p, write, agent(nil)).action == .allow)
        #expect(decide(p, write, agent("claude-code")).decidingRules.map(\.name) == ["agents-approve-writes"])
        #expect(decide(p, write, agent("cursor-vscode")).decidingRules.map(\.name) == ["bots-read-only"])
        #expect(decide(p, "select * from agent_memory", agent(nil)).action == .deny)
        #expect(decide(p, "select * from agent_memory", agent("claude-code")).action == .allow)
        #expect(throws: (any Error).self) { try policy("  rules:\n    - {name: x, action: deny, match: {agent: maybe}}") }
    }

    @Test("a session every statement of which a rule denies, whatever it is, is told apart from one some are")
    func refusesEverything() throws {
        let p = try policy(
            """
              rules:
                - {name: contractors-not-on-prod, action: deny, match: {groups: [contractors], connections: [prod]}}
                - {name: no-writes, action: deny, match: {writes: true}}
                - {name: nights, action: deny, match: {users: [night-owl], during: {hours: "22:00-06:00"}}}
                - {name: shadowed, action: deny, mode: shadow, match: {users: [ada]}}
            """)
        let compiled = CompiledPolicy(p)
        #expect(compiled.refusesEverything(context(groups: ["contractors"])))
        #expect(!compiled.refusesEverything(context(groups: ["contractors"], connection: "staging")))
        #expect(!compiled.refusesEverything(context()))
        #expect(!compiled.refusesEverything(context(user: "night-owl")))
    }

    @Test("SQL-level PREPARE is remembered so EXECUTE is judged by what it runs")
    func preparedStatements() throws {
        let p = try policy("  rules:\n    - {name: no-deletes, action: deny, match: {kinds: [delete]}}")
        var prepared = PreparedStatements()
        let prepare = Inspector.inspect("prepare del(int) as delete from t where id = $1")
        #expect(p.evaluate(prepared.resolve(prepare), in: context()).action == .deny)
        let harmless = Inspector.inspect("prepare q(int) as select * from t where id = $1")
        #expect(p.evaluate(prepared.resolve(harmless), in: context()).action == .allow)
        prepared.record(harmless)
        #expect(p.evaluate(prepared.resolve(Inspector.inspect("execute q(1)")), in: context()).action == .allow)
        // Unknown names stay unknowable.
        #expect(p.evaluate(prepared.resolve(Inspector.inspect("execute other(1)")), in: context()).action == .deny)
        prepared.record(Inspector.inspect("deallocate q"))
        #expect(p.evaluate(prepared.resolve(Inspector.inspect("execute q(1)")), in: context()).action == .deny)
    }

    @Test("prepared statements are told apart by the bytes of their names, as PostgreSQL does")
    func preparedNamesAreBytes() throws {
        let p = try policy("  rules:\n    - {name: no-deletes, action: deny, match: {kinds: [delete]}}")
        var prepared = PreparedStatements()
        // "é" precomposed and decomposed: equal as Swift Strings, two statements upstream.
        let (composed, decomposed) = ("\u{E9}", "e\u{301}")
        prepared.record(Inspector.inspect("prepare \"\(composed)\" as select 1"))
        let execute = prepared.resolve(Inspector.inspect("execute \"\(decomposed)\""))
        #expect(execute.statements.first?.dynamic == true, "the decomposed name was never prepared here")
        #expect(p.evaluate(execute, in: context()).action == .deny)
        #expect(prepared.names == [composed])
    }
}

@Suite("Whether a decision read the clock")
struct ReadsClockTests {
    func readsClock(_ policy: Policy, _ sql: String) -> (PolicyAction, Bool) {
        var reads = false
        let decision = CompiledPolicy(policy).evaluate(Inspector.inspect(sql), in: context(), readsClock: &reads)
        return (decision.action, reads)
    }

    @Test("a time condition counts only when the rest of its rule matched")
    func onlyReachedTimeConditionsCount() throws {
        let rules = try policy(
            """
              rules:
                - {name: late-writes, match: {writes: true, outside: {days: [mon-fri], hours: "08:00-19:00"}}, action: step_up}
                - {name: old-sessions, match: {kinds: [drop], session_age: 8h}, action: deny}
                - {name: idle-reads, match: {tables: [payroll], idle: 10m}, action: step_up}
            """)
        #expect(readsClock(rules, "select * from t") == (.allow, false), "no time rule fits a plain read")
        #expect(readsClock(rules, "update t set a = 1") == (.allow, true), "office hours: allowed, by the clock")
        #expect(readsClock(rules, "drop table t") == (.allow, true))
        #expect(readsClock(rules, "select * from payroll") == (.allow, true))
        let timeless = try policy("  rules:\n    - {name: no-drop, match: {kinds: [drop]}, action: deny}")
        #expect(readsClock(timeless, "drop table t") == (.deny, false))
    }
}

@Suite("Policy configuration errors")
struct PolicyConfigTests {
    func error(_ yaml: String) -> String {
        do {
            _ = try policy(yaml)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test("bad policies are refused with file, line and reason")
    func errors() {
        #expect(
            error("  rules:\n    - {name: x, action: maybe, match: {}}").contains("policy.yaml:8: rule action must be one of"))
        #expect(
            error("  rules:\n    - name: x\n      action: deny\n      match: {kindz: [drop]}").contains(
                "policy.yaml:10: unknown key 'kindz'"))
        #expect(error("  rules:\n    - {name: x, action: deny, match: {kinds: [dropp]}}").contains("unknown kind 'dropp'"))
        #expect(error("  rules:\n    - {name: x, action: deny}").contains("rule 'x' needs a match"))
        #expect(error("  rules:\n    - {name: x, action: approve, match: {}}").contains("needs approvers"))
        #expect(
            error("  rules:\n    - {name: x, action: deny, match: {source: [10.0.0.0/33]}}").contains("not an address or network")
        )
        #expect(error("  rules:\n    - {name: x, action: deny, match: {during: {hours: 25:00-26:00}}}").contains("HH:MM-HH:MM"))
        #expect(
            error("  rules:\n    - {name: x, action: deny, match: {during: {timezone: Mars/Base}}}").contains("unknown time zone")
        )
        #expect(
            error("  rules:\n    - {name: x, action: deny, match: {groups: [nobody]}}").contains("group 'nobody' is not declared")
        )
        #expect(
            error("  rules:\n    - {name: x, action: deny, match: {connections: [nowhere]}}").contains(
                "connection 'nowhere' is not declared"))
        #expect(
            error("  rules:\n    - {name: x, action: deny, match: {}}\n    - {name: x, action: deny, match: {}}").contains(
                "declared twice"))
        #expect(error("  default: maybe").contains("policy.default must be one of"))
        #expect(
            error("  rules:\n    - {name: x, action: deny, step_up: {max_age: 5m}, match: {}}").contains("need action: step_up"))
    }
}

@Suite("Policy building blocks")
struct PolicyPartsTests {
    @Test("CIDR matching for IPv4, IPv6 and mapped addresses")
    func cidr() throws {
        let v4 = try #require(CIDR("10.0.0.0/8"))
        #expect(v4.contains("10.255.1.2"))
        #expect(!v4.contains("11.0.0.1"))
        #expect(v4.contains("::ffff:10.0.0.1"))
        let v6 = try #require(CIDR("2001:db8::/32"))
        #expect(v6.contains("2001:db8:1::5"))
        #expect(!v6.contains("2001:db9::1"))
        #expect(try #require(CIDR("127.0.0.1")).contains("127.0.0.1"))
        #expect(CIDR("300.1.1.1/8") == nil)
        #expect(CIDR("1.2.3.4/40") == nil)
        #expect(CIDR("fe80::1::2") == nil)
    }

    @Test("globs and table patterns")
    func patterns() {
        #expect(Glob("pg_*").matches("pg_read_file"))
        #expect(!Glob("pg_*").matches("lo_unlink"))
        #expect(Glob("*").matches(""))
        #expect(Glob("a*b*c").matches("aXXbYYc"))
        #expect(!Glob("a*b*c").matches("aXXbYY"))
        #expect(TablePattern("audit.*").matches(TableName(schema: "audit", name: "log")))
        #expect(!TablePattern("audit.*").matches(TableName(schema: nil, name: "log")))
        #expect(TablePattern("public.orders").matches(TableName(schema: nil, name: "orders")))
        #expect(TablePattern("orders").matches(TableName(schema: "sales", name: "orders")))
    }

    @Test("time windows agree with a Calendar in several zones, across DST changes, over two years")
    func windowsAgreeWithCalendar() throws {
        for identifier in ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"] {
            let zone = try #require(TimeZone(identifier: identifier))
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone
            let window = TimeWindow(weekdays: [2, 4, 6], start: 8 * 60 + 30, end: 2 * 60, timeZone: zone)
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<5000 {
                let date = Date(timeIntervalSince1970: Double.random(in: 1_767_225_600...1_830_297_600, using: &generator))
                let parts = calendar.dateComponents([.weekday, .hour, .minute], from: date)
                let minutes = parts.hour! * 60 + parts.minute!
                let day = parts.weekday!
                let expected =
                    minutes >= window.start
                    ? window.weekdays.contains(day)
                    : minutes < window.end ? window.weekdays.contains(day == 1 ? 7 : day - 1) : false
                #expect(window.contains(date) == expected, "\(identifier) \(date)")
            }
        }
    }

    @Test("time windows, including one that spans midnight")
    func windows() throws {
        let utc = TimeZone(identifier: "UTC")!
        let office = TimeWindow(weekdays: [2, 3, 4, 5, 6], start: 8 * 60, end: 19 * 60, timeZone: utc)
        #expect(office.contains(wednesdayMorning))
        #expect(!office.contains(saturdayNight))
        let night = TimeWindow(weekdays: [6], start: 22 * 60, end: 6 * 60, timeZone: utc)  // Friday 22:00 → Saturday 06:00
        let fridayLate = Date(timeIntervalSince1970: 1_795_820_400)  // 2026-11-27T23:00:00Z, a Friday
        let saturdayEarly = Date(timeIntervalSince1970: 1_795_834_800)  // 2026-11-28T03:00:00Z
        #expect(night.contains(fridayLate))
        #expect(night.contains(saturdayEarly))
        #expect(!night.contains(saturdayNight))
    }
}

@Suite("Writes outside named tables (not_tables_written)")
struct WritesOutsideTests {
    let policy: Policy

    init() throws {
        policy = try GatehousePolicyTests.policy(
            """
              rules:
                - name: outside-safe
                  match: {writes: true, not_tables_written: [safe]}
                  action: step_up
            """)
    }

    func stepsUp(_ sql: String, _ context: SessionContext = context()) -> Bool {
        decide(policy, sql, context).action == .stepUp
    }

    @Test("a write to the named table alone passes; one to any other table, or to both, is matched")
    func onlyTheNamedTablePasses() {
        #expect(!stepsUp("insert into safe values (1)"))
        #expect(!stepsUp("update safe set note = 'x' where id = 1"))
        #expect(!stepsUp("delete from public.safe where id = 1"))
        #expect(!stepsUp("insert into \"safe\" values (1)"))
        #expect(stepsUp("insert into customers values (1)"))
        #expect(stepsUp("insert into other.safe values (1)"), "another schema's safe is another table")
        #expect(stepsUp("with gone as (delete from customers where id = 1 returning id) insert into safe select id from gone"))
        #expect(stepsUp("insert into safe values (1); delete from customers where id = 2"))
        #expect(stepsUp("update safe set note = 'x' from customers where safe.id = customers.id; truncate customers"))
    }

    @Test("changing the named table itself is outside: a rule or trigger on it could write anywhere")
    func ddlOnTheNamedTableIsOutside() {
        #expect(stepsUp("create rule r as on insert to safe do also delete from customers where true"))
        #expect(stepsUp("create trigger t after insert on safe for each row execute function f()"))
        #expect(stepsUp("alter table safe add column x int"))
        #expect(stepsUp("create index on safe (note)"))
        #expect(stepsUp("grant all on safe to public"))
        #expect(stepsUp("truncate safe"))
        #expect(stepsUp("select * into stolen from safe"))
        #expect(stepsUp("copy customers from stdin"))
        #expect(!stepsUp("copy safe from stdin"))
        #expect(!stepsUp("merge into safe s using customers c on s.id = c.id when matched then update set note = c.name"))
    }

    @Test("reads are not matched; writes the parser names no table for are, as outside")
    func readsAndNamelessWrites() {
        #expect(!stepsUp("select * from customers"))
        #expect(!stepsUp("select * from safe"))
        #expect(stepsUp("create table scratch (id int)"))
        #expect(stepsUp("create index on customers (id)"))
    }

    @Test("the session's search path decides what an unqualified name is")
    func searchPath() {
        var elsewhere = context()
        elsewhere.searchPath.widen(by: ["other"])
        #expect(stepsUp("insert into safe values (1)", elsewhere), "safe may be other.safe on this search path")
        #expect(!stepsUp("insert into public.safe values (1)", elsewhere))
        var everywhere = context()
        everywhere.searchPath.widen(by: ["\"$user\", public"])
        #expect(stepsUp("insert into safe values (1)", everywhere), "safe may be the user's own schema's")
    }
}

@Suite("Time windows read back as written")
struct TimeWindowNameTests {
    @Test("a window's zone is shown as the configuration names it (UTC, not Foundation's GMT)")
    func zoneAsWritten() throws {
        let policy = try GatehousePolicyTests.policy(
            """
              rules:
                - name: office
                  match: {outside: {days: [mon-fri], hours: "08:00-19:00", timezone: UTC}}
                  action: step_up
                - name: paris
                  match: {during: {days: [sat], hours: "10:00-12:00", timezone: Europe/Paris}}
                  action: deny
            """)
        #expect(policy.rules[0].match.outside?.description == "mon,tue,wed,thu,fri 08:00-19:00 UTC")
        #expect(policy.rules[1].match.during?.description == "sat 10:00-12:00 Europe/Paris")
    }
}
