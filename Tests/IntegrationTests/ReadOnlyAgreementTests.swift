import Foundation
import SQLInspection
import Testing

/// A write is what PostgreSQL says it is. The server the tests run is asked: its catalogue of
/// functions against the committed table (scripts/function-catalogue), and, statement by statement,
/// whether it refuses the statement in a read-only transaction (SQLSTATE 25006). Whatever it refuses,
/// the inspector calls a write; so too what it lets through there that a read-only person must not do.
@Suite("A write is what PostgreSQL says it is", .timeLimit(.minutes(4)))
struct ReadOnlyAgreementTests {
    @Test("the function table agrees with the server's pg_proc (regenerate with scripts/function-catalogue)")
    func catalogueAgrees() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let version = try await cluster.must("SHOW server_version_num")
        #expect(
            Int(version.trimmingCharacters(in: .whitespacesAndNewlines)).map { $0 / 10000 }
                == FunctionCatalogue.serverMajorVersion,
            "the table was made from PostgreSQL \(FunctionCatalogue.serverMajorVersion), the server is \(version)")
        let rows = try await cluster.must(
            """
            SELECT p.proname, max(p.provolatile),
                   bool_or(p.proacl IS NOT NULL AND NOT EXISTS (
                       SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))
            FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace GROUP BY p.proname
            """)
        var serverNames = Set<String>()
        var problems: [String] = []
        for row in rows.split(separator: "\n") {
            let fields = row.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3 else { continue }
            let (name, volatility, restricted) = (fields[0], fields[1], fields[2] == "t")
            serverNames.insert(name)
            guard let entry = FunctionCatalogue.lookup(name) else {
                problems.append("\(name): built into the server, not in the table")
                continue
            }
            if volatility == "v" || restricted {
                let expected: BuiltinFunction.Volatility =
                    volatility == "v" ? .volatile : volatility == "s" ? .stable : .immutable
                if entry.volatility != expected || entry.restricted != restricted || !FunctionCatalogue.isClassified(name) {
                    problems.append("\(name): the server says \(volatility) restricted=\(restricted), the table \(entry)")
                }
            }
        }
        for name in FunctionCatalogue.builtins.subtracting(serverNames) {
            problems.append("\(name): in the table, not built into the server")
        }
        let operators = try await cluster.must(
            "SELECT DISTINCT oprname FROM pg_operator WHERE oprnamespace = 'pg_catalog'::regnamespace")
        let serverOperators = Set(operators.split(separator: "\n").map(String.init))
        if serverOperators != FunctionCatalogue.builtinOperators {
            problems.append(
                "operators: the server has \(serverOperators.subtracting(FunctionCatalogue.builtinOperators).sorted()), "
                    + "the table \(FunctionCatalogue.builtinOperators.subtracting(serverOperators).sorted()) besides")
        }
        #expect(serverNames.count > 2000, "\(serverNames.count) functions read")
        #expect(problems.isEmpty, "\(problems.count) differences:\n\(problems.prefix(40).joined(separator: "\n"))")
    }

    /// Statements PostgreSQL refuses in a read-only transaction.
    static let refused = [
        "insert into {t} values (1, 'x')", "update {t} set v = 'y' where id = 1", "delete from {t} where id = 1",
        "truncate {t}", "create table {t}_new (a int)", "create temp table {t}_tmp (a int)", "drop table {t}",
        "alter table {t} add column w int", "create index on {t} (v)", "comment on table {t} is 'x'",
        "select * into {t}_copy from {t}", "create table {t}_as as select * from {t}",
        "select * from {t} for update", "select * from {t} for no key update", "select * from {t} for share",
        "select * from {t} for key share", "select nextval('{t}_seq')", "select setval('{t}_seq', 5)",
        "with n as (select nextval('{t}_seq')) select * from n", "copy {t} from stdin",
        "grant select on {t} to public", "create sequence {t}_s2", "alter sequence {t}_seq restart",
        "merge into {t} using (select 1 as id) s on {t}.id = s.id when matched then delete",
        "update {t} set v = 'y' where id = 1 returning *", "create view {t}_v as select 1",
    ]

    /// Statements PostgreSQL runs in a read-only transaction that still change the database or the
    /// server, or turn off what watches it: writes for the gateway.
    static let alsoWrites = [
        "select pg_advisory_lock({oid})", "select pg_advisory_xact_lock({oid})", "select pg_try_advisory_lock({oid})",
        "select lo_from_bytea({oid}, 'x')", "select lo_create({oid} + 1)", "select pg_switch_wal()", "select pg_stat_reset()",
        "select pg_logical_emit_message(true, 'a', 'b')", "checkpoint", "copy {t} to '/tmp/{t}.out'",
        "set session_replication_role = replica", "set log_statement = 'none'",
        "lock table {t} in access exclusive mode", "select pg_reload_conf()", "select pg_terminate_backend(0)",
        "analyze {t}",
    ]

    /// Reads: the server runs them read-only, and the inspector agrees.
    static let reads = [
        "select * from {t}", "select random(), clock_timestamp()", "copy {t} to stdout",
        "set work_mem = '8MB'", "show work_mem", "select pg_relation_size('{t}')", "explain select * from {t} for update",
        "select count(*) from pg_stat_activity",
    ]

    @Test("whatever the server refuses read-only is a write; so is what it lets through that changes the server")
    func readOnlyAgrees() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let table = uniqueTable("ro")
        try await cluster.must(
            """
            CREATE TABLE \(table) (id int PRIMARY KEY, v text); INSERT INTO \(table) VALUES (1, 'x');
            CREATE SEQUENCE \(table)_seq; SELECT nextval('\(table)_seq');
            """)
        var disagreements: [String] = []
        for (template, expectation) in Self.refused.map({ ($0, "refused") }) + Self.alsoWrites.map({ ($0, "write") })
            + Self.reads.map({ ($0, "read") })
        {
            let sql = template.replacingOccurrences(of: "{t}", with: table).replacingOccurrences(of: "{oid}", with: "0")
            let facts = Inspector.inspect(sql).statements.first
            let isWrite = facts?.isWrite ?? true
            let answer = try await cluster.superuser(
                "\\set VERBOSITY verbose\nBEGIN TRANSACTION READ ONLY;\n\(sql);\nROLLBACK;\n")
            let refusedReadOnly = answer.stderr.contains("25006")
            switch expectation {
            case "refused":
                if !refusedReadOnly {
                    disagreements.append("\(sql): expected the server to refuse it read-only: \(answer.stderr)")
                }
                if !isWrite {
                    disagreements.append("\(sql): the server refuses it read-only, the inspector reads \(facts?.summary ?? "")")
                }
            case "write":
                if refusedReadOnly { disagreements.append("\(sql): the server refuses it read-only now: move it to `refused`") }
                if !isWrite { disagreements.append("\(sql): not a write for the inspector (\(facts?.summary ?? ""))") }
            default:
                if answer.stderr.contains("ERROR") { disagreements.append("\(sql): the server refuses it: \(answer.stderr)") }
                if isWrite { disagreements.append("\(sql): a read, yet the inspector says \(facts?.summary ?? "")") }
            }
        }
        try? FileManager.default.removeItem(atPath: "/tmp/\(table).out")
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
    }

    @Test("through the gateway, a read-only policy denies each of them, and the database shows nothing happened")
    func readOnlyPolicy() async throws {
        let table = uniqueTable("ro")
        let gateway = try await Gateway.start(
            extraConfig: """
                policy:
                  rules:
                    - name: developers-read-only
                      match: {groups: [developer], writes: true}
                      action: deny
                      message: developers read only
                """)
        try await gateway.cluster.must(
            """
            SET ROLE gh_scram; CREATE TABLE \(table) (id int PRIMARY KEY, v text); INSERT INTO \(table) VALUES (1, 'x');
            CREATE SEQUENCE \(table)_seq; SELECT nextval('\(table)_seq');
            """)
        // Large objects of numbers of this test's own: other tests run beside it.
        let oid = Int.random(in: 1_000_000..<2_000_000_000)
        let token = try await gateway.aliceToken()
        let statements = (Self.refused + Self.alsoWrites).map {
            $0.replacingOccurrences(of: "{t}", with: table).replacingOccurrences(of: "{oid}", with: String(oid))
        }
        var arguments = ["-v", "ON_ERROR_STOP=0"]
        for sql in statements { arguments += ["-c", sql] }
        arguments += ["-c", "select 'still here'"]
        let run = try await gateway.psql(password: token, arguments)
        #expect(run.stdout.contains("still here"), "\(run)")
        let denials = run.stderr.components(separatedBy: "developers read only").count - 1
        #expect(denials == statements.count, "\(denials) of \(statements.count) denied:\n\(run.stderr)")
        // A setting in the startup packet is judged as the SET it is.
        let options = try await gateway.psql(
            password: token, environment: ["PGOPTIONS": "-c session_replication_role=replica"], ["-c", "select 1"])
        #expect(options.status != 0 && options.stderr.contains("developers read only"), "\(options)")
        // The database afterwards: nothing of it happened.
        #expect(try await gateway.cluster.must("SELECT v FROM \(table)") == "x\n")
        #expect(try await gateway.cluster.must("SELECT last_value FROM \(table)_seq") == "1\n")
        #expect(
            try await gateway.cluster.must("SELECT count(*) FROM pg_largeobject_metadata WHERE oid IN (\(oid), \(oid + 1))")
                == "0\n")
        #expect(
            try await gateway.cluster.must("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = \(oid)")
                == "0\n")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/\(table).out"))
        #expect(
            try await gateway.cluster.must(
                "SELECT count(*) FROM pg_class WHERE relname LIKE '\(table)\\_%' AND relname NOT IN ('\(table)_seq', '\(table)_pkey')"
            )
                == "0\n")
    }
}
