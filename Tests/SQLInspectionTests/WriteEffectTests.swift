import SQLInspection
import Testing

/// A write is what PostgreSQL says it is: what it refuses in a read-only transaction, and what it lets
/// through there that a read-only person must not do. (Tests/IntegrationTests/ReadOnlyAgreementTests.swift
/// asks the server itself.)
@Suite("SQL inspection: writes beyond the statement's kind")
struct WriteEffectTests {
    static func facts(_ sql: String) throws -> StatementFacts {
        let inspection = Inspector.inspect(sql)
        #expect(inspection.parseError == nil, "\(sql)")
        return try #require(inspection.statements.first)
    }

    static let writes: [(String, WriteEffect)] = [
        ("SELECT * FROM t FOR UPDATE", .rowLock),
        ("SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED", .rowLock),
        ("SELECT * FROM t FOR SHARE", .rowLock),
        ("SELECT * FROM t FOR KEY SHARE NOWAIT", .rowLock),
        ("SELECT * FROM (SELECT * FROM t FOR UPDATE) s", .rowLock),
        ("WITH l AS (SELECT id FROM t FOR UPDATE) SELECT * FROM l", .rowLock),
        ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", .tableLock),
        ("LOCK t", .tableLock),
        ("PREPARE TRANSACTION 'x'", .twoPhase),
        ("COMMIT PREPARED 'x'", .twoPhase),
        ("ROLLBACK PREPARED 'x'", .twoPhase),
        ("CHECKPOINT", .checkpoint),
        ("COPY t TO '/tmp/file'", .serverFile),
        ("COPY (SELECT 1) TO '/tmp/file' WITH (FORMAT csv)", .serverFile),
        ("SELECT nextval('s')", .function),
        ("SELECT pg_catalog.setval('s', 5)", .function),
        ("SELECT lo_from_bytea(0, 'x')", .function),
        ("SELECT lo_put(1, 0, 'x')", .function),
        ("SELECT lowrite(0, 'x')", .function),
        ("SELECT pg_advisory_lock(1)", .function),
        ("SELECT pg_try_advisory_xact_lock(1)", .function),
        ("SELECT pg_switch_wal()", .function),
        ("SELECT pg_stat_reset()", .function),
        ("SELECT pg_create_logical_replication_slot('s', 'test_decoding')", .function),
        ("SELECT pg_terminate_backend(42)", .function),
        ("SELECT lo_export(1, '/tmp/x')", .function),
        ("SELECT 1 WHERE nextval('s') > 0", .function),
        ("SET session_replication_role = replica", .setting),
        ("SET log_statement = 'none'", .setting),
        ("SET LOCAL log_min_duration_statement = -1", .setting),
        ("SELECT set_config('session_replication_role', 'replica', false)", .setting),
        ("SELECT set_config(current_setting('x'), 'replica', false)", .setting),
        ("SET pgaudit.log = 'none'", .setting),
    ]

    @Test("each is a write, and says why", arguments: writes)
    func write(_ sql: String, _ effect: WriteEffect) throws {
        let facts = try Self.facts(sql)
        #expect(facts.writeEffects.contains(effect), "\(facts.summary)")
        #expect(facts.isWrite, "\(facts.summary)")
    }

    @Test(
        "reads stay reads",
        arguments: [
            "SELECT * FROM t", "SELECT currval('s')", "SELECT random(), clock_timestamp(), pg_sleep(0)",
            "COPY t TO STDOUT", "SET search_path = app", "SET work_mem = '64MB'", "RESET log_statement",
            "SELECT pg_relation_size('t')", "EXPLAIN SELECT * FROM t FOR UPDATE", "BEGIN READ ONLY", "COMMIT",
            "SELECT lower('A'), now()", "SELECT pg_notify('c', 'x')",
        ])
    func read(_ sql: String) throws {
        let facts = try Self.facts(sql)
        #expect(facts.writeEffects.isEmpty, "\(facts.summary)")
        #expect(!facts.isWrite, "\(facts.summary)")
    }

    @Test("the catalogue's other facts: admin functions, server files, user functions")
    func otherFacts() throws {
        let admin = try Self.facts("SELECT pg_reload_conf(), pg_config()")
        #expect(admin.adminFunctions == ["pg_reload_conf", "pg_config"])
        let files = try Self.facts("SELECT pg_read_file('/etc/passwd')")
        #expect(files.fileAccess && files.adminFunctions == ["pg_read_file"], "\(files.summary)")
        #expect(!files.isWrite, "reading a server file is file access, not a write")
        #expect(try Self.facts("COPY t FROM '/tmp/in'").fileAccess)
        #expect(try !Self.facts("COPY t FROM STDIN").fileAccess)
        let user = try Self.facts("SELECT cleanup_old_orders(), app.f(1), pg_catalog.lower('A'), public.lower('A')")
        #expect(user.userFunctions == ["cleanup_old_orders", "app.f", "public.lower"], "\(user.summary)")
        #expect(try Self.facts("SELECT query_to_xml('delete from t', true, false, '')").dynamic)
        // Names as the server reads them: a quoted "Lower" is somebody's function, not lower().
        let quoted = try Self.facts("SELECT \"Lower\"('x'), \"NEXTVAL\"('s'), \"lower\"('y')")
        #expect(quoted.userFunctions == ["Lower", "NEXTVAL"], "\(quoted.summary)")
        #expect(!quoted.writeEffects.contains(.function), "\(quoted.summary)")
        // An operator runs a function too.
        let operators = try Self.facts(
            "SELECT 1 + 2, 'a' || 'b', 3 === 4, 5 OPERATOR(app.<~~>) 6, 7 OPERATOR(pg_catalog.+) 8 WHERE 1 IN (1)")
        #expect(operators.userFunctions == ["operator ===", "operator app.<~~>"], "\(operators.summary)")
    }

    @Test("the catalogue knows PostgreSQL's functions by name")
    func catalogue() {
        #expect(FunctionCatalogue.isBuiltin("nextval") && FunctionCatalogue.isBuiltin("lower"))
        #expect(!FunctionCatalogue.isBuiltin("cleanup_old_orders"))
        #expect(FunctionCatalogue.lookup("nextval")?.effects == [.write])
        #expect(FunctionCatalogue.lookup("lo_export")?.effects == [.write, .fileAccess])
        #expect(FunctionCatalogue.lookup("pg_switch_wal")?.restricted == true)
        #expect(FunctionCatalogue.lookup("lower")?.effects == [])
    }
}
