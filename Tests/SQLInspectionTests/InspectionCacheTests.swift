import Foundation
import Testing

@testable import SQLInspection

/// Every text of the inspector's own tests, and more with constants in every kind of place.
private let corpus: [String] =
    (InspectorTests.reads + InspectorTests.writes + InspectorTests.hiddenWrites + InspectorTests.utility
    + InspectorTests.functions).map(\.sql) + EvasionTests.disguisedDeletes + EvasionTests.hiddenCalls + [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 73918;",
        "UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 5;",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP);",
        "select * from t where a = 'x' and b = 12 and c in (1, 2, 3) order by 2 limit 10 offset 5",
        "select 'a' || 'b', interval '1 day', '2026-01-01'::date, -5, - 7, 3 - 4, a[1] from t",
        "insert into t values ('it is', 1), ('more', 22)",
        "update t set label = 'new' where id = 7",
        "delete from t where id = 9",
        "copy t from '/tmp/a.csv'",
        "copy t to program 'gzip > /tmp/x'",
        "copy (select 1) to '/tmp/out'",
        "create role r password 'secret-1'",
        "alter role r password 'secret-2'",
        "notify channel, 'payload one'",
        "comment on table t is 'a comment'",
        "fetch 5 from c",
        "move 3 in c",
        "set statement_timeout = 5000",
        "set role 'admin'",
        "set search_path = 'public'",
        "select set_config('role', 'admin', false)",
        "select nextval('seq_1')",
        "select pg_read_file('/etc/passwd')",
        "load 'auto_explain'",
        "do 'begin perform 1; end'",
        "create function f() returns int as 'select 1' language sql",
        "execute p(1, 'x')",
        "prepare p as select * from t where id = 1",
        "create table t2 (id int, label varchar(20) default 'none', n numeric(10, 2))",
        "alter table t alter column c set default 5",
        "create sequence s increment 5 start 10",
        "vacuum t",
        "select * from t where a between 1 and 2",
        "select 1; select 2",
        "select 1 # 2",
        "select * from t where id = 1 for update",
        "explain analyze select * from t where id = 5",
        "select * from t1 join t2 on t1.id = t2.id and t2.k = 'v'",
        "with w as (delete from t where id = 3 returning *) select * from w",
        "select 1.5, 2e3, 0.25",
    ]

/// The same text with its digits and the letters of its strings changed.
private func variant(_ sql: String) -> String {
    var out = ""
    var inString = false
    for character in sql {
        if character == "'" {
            inString.toggle()
            out.append(character)
        } else if let digit = character.wholeNumberValue, character.isASCII {
            out.append(String((digit + 3) % 10))
            if digit == 4 { out.append("8") }  // change lengths too
        } else if inString, character.isLetter, character.isASCII {
            out.append(character == "z" ? "a" : "z")
        } else {
            out.append(character)
        }
    }
    return out
}

private func remembered(_ sqls: [String]) -> InspectionCache {
    var cache = InspectionCache()
    for sql in sqls {
        let (inspection, constants) = Inspector.inspectNotingConstants(sql)
        cache.remember(inspection, for: InspectionCache.Key(sql), constants: constants)
    }
    return cache
}

@Suite("Inspection cache: statements of one shape are parsed once, and a hit is exactly a fresh inspection")
struct InspectionCacheTests {
    @Test("a hit for any text of the corpus with other constants equals the inspection of that text")
    func hitsAreExact() {
        let cache = remembered(corpus)
        var hits = 0
        for sql in corpus {
            let other = variant(sql)
            guard let hit = cache.inspection(for: InspectionCache.Key(other)) else { continue }
            hits += 1
            #expect(hit == Inspector.inspect(other), "\(sql) → \(other)")
        }
        #expect(hits > 20, "the shape map must serve the common statements")
    }

    @Test(
        "statements whose constants are plain values in the tree, or that the scanner cannot read exactly, are not served by shape",
        arguments: [
            "copy t from '/tmp/a.csv'", "copy (select 1) to '/tmp/out'", "create role r password 'secret-1'",
            "notify channel, 'payload one'", "comment on table t is 'a comment'", "fetch 5 from c",
            "create sequence s increment 5 start 10", "load 'auto_explain'", "select 1; select 2",
            "select 1 -- one", "select /* 1 */ 1", "select E'a\\nb'", "select $$x$$, 1", "select $1::int",
            "select \"col\" from t where id = 1", "select 'it''s'", "select U&'d\\0061t'", "select 'é', 1",
            "select 'a\\b'", "select x'1f'", "select b'101'", "select n'x'",
        ])
    func notByShape(_ sql: String) {
        let cache = remembered([sql])
        #expect(cache.inspection(for: InspectionCache.Key(sql)) != nil, "the exact text is always remembered")
        #expect(cache.inspection(for: InspectionCache.Key(variant(sql))) == nil, "\(variant(sql))")
    }

    @Test(
        "texts Swift holds equal but PostgreSQL reads apart, and numbers past an int, are never served each other's inspection",
        arguments: [
            ("select 1 a\u{37E}delete from accounts", "select 1 a;delete from accounts"),
            ("select * from \u{212A}", "select * from K"),
            ("select 1 where 2 \u{2260} 3", "select 1 where 2 =\u{338} 3"),
            ("select '\u{E9}' = 'x'", "select 'e\u{301}' = 'x'"),
            ("select 'x'::varchar(20)", "select 'x'::varchar(2147483648)"),
            ("create table t (a varchar(20))", "create table t (a varchar(99999999999))"),
            ("select '2020-01-01'::timestamp(3)", "select '2020-01-01'::timestamp(3000000000)"),
            ("select interval '1' second(3)", "select interval '1' second(9999999999)"),
        ])
    func neverServedAcross(first: String, second: String) {
        let cache = remembered([first])
        if let hit = cache.inspection(for: InspectionCache.Key(second)) {
            #expect(hit == Inspector.inspect(second), "\(first) served for \(second)")
        }
        #expect(Array(first.utf8) == Array(second.utf8) || cache.inspection(for: InspectionCache.Key(second)) == nil)
    }

    @Test("pgbench's statements share one shape whatever their numbers")
    func pgbenchHits() throws {
        let cache = remembered(["SELECT abalance FROM pgbench_accounts WHERE aid = 73918;"])
        let hit = try #require(cache.inspection(for: InspectionCache.Key("SELECT abalance FROM pgbench_accounts WHERE aid = 5;")))
        #expect(hit.statements[0].text == "SELECT abalance FROM pgbench_accounts WHERE aid = 5")
        #expect(hit == Inspector.inspect("SELECT abalance FROM pgbench_accounts WHERE aid = 5;"))
        #expect(cache.inspection(for: InspectionCache.Key("SELECT abalance FROM pgbench_accounts WHERE bid = 5;")) == nil)
        #expect(cache.inspection(for: InspectionCache.Key("select abalance FROM pgbench_accounts WHERE aid = 5;")) == nil)
    }

    @Test("shapes keep everything but the constants: names, operators, layout and decimals")
    func shapes() throws {
        let one = try #require(ConstantMask.shape(of: "select a1, 1.5 from t where x = 12 and y = 'q'"))
        #expect(one.text == "select a1, 1.5 from t where x = \u{1} and y = '\u{2}'")
        #expect(one.constants == [32, 43])
        #expect(ConstantMask.shape(of: "select 1 # 2")?.text == "select \u{1} # \u{1}")
        #expect(ConstantMask.shape(of: "select \u{1}") == nil, "the marks cannot come from the text itself")
        #expect(ConstantMask.shape(of: "select 1234567890")?.text == "select 1234567890", "ten digits may not be an int")
        #expect(ConstantMask.shape(of: "select 123456789")?.text == "select \u{1}")
        #expect(ConstantMask.shape(of: "select 'unterminated") == nil)
    }

    @Test("a statement's text is the input without layout and one final semicolon")
    func statementText() {
        #expect(ConstantMask.statementText(of: "  select 1 ;\n") == "select 1")
        #expect(ConstantMask.statementText(of: "select 1") == "select 1")
        #expect(ConstantMask.statementText(of: "select 1;;") == "select 1;")
    }

    @Test("a full cache is emptied and goes on")
    func limit() {
        var cache = InspectionCache(limit: 2)
        for id in 0..<5 {
            let sql = "select c\(id) from t where id = 1"
            let (inspection, constants) = Inspector.inspectNotingConstants(sql)
            cache.remember(inspection, for: InspectionCache.Key(sql), constants: constants)
        }
        #expect(cache.inspection(for: InspectionCache.Key("select c4 from t where id = 2")) != nil)
        #expect(cache.inspection(for: InspectionCache.Key("select c0 from t where id = 1")) == nil)
    }
}
