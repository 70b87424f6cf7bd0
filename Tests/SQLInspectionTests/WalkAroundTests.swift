import SQLInspection
import Testing

/// Calls and setting changes the inspector must see however they are spelled.
@Suite struct WalkAroundInspectionTests {
    private func facts(_ sql: String) throws -> StatementFacts {
        let inspection = Inspector.inspect(sql)
        #expect(inspection.parseError == nil, "\(sql)")
        return try #require(inspection.statements.first)
    }

    @Test(
        "attribute notation names a possible call",
        arguments: [
            ("SELECT (pid).pg_terminate_backend FROM pg_stat_activity", "pg_terminate_backend"),
            ("SELECT a.pg_cancel_backend FROM pg_stat_activity a", "pg_cancel_backend"),
            ("SELECT (oid).lo_unlink FROM pg_largeobject_metadata", "lo_unlink"),
            ("SELECT ('/etc/passwd'::text).pg_read_file", "pg_read_file"),
            ("SELECT (x).a.\"PG_Read_File\" FROM t x", "pg_read_file"),
            ("SELECT public.t.set_config FROM public.t", "set_config"),
            ("SELECT 1 FROM t WHERE t.pg_terminate_backend", "pg_terminate_backend"),
        ])
    func attributeCalls(sql: String, name: String) throws {
        let facts = try facts(sql)
        #expect(facts.attributeCalls.contains(name), "\(facts.summary)")
    }

    @Test("a plain column or star is not an attribute call")
    func plainColumns() throws {
        #expect(try facts("SELECT id, t.* FROM t").attributeCalls.isEmpty)
    }

    @Test(
        "functions that run SQL text are dynamic, in call and attribute notation",
        arguments: [
            "SELECT * FROM ts_stat($$select to_tsvector(set_config('role','x',false))$$)",
            "SELECT ts_rewrite('a'::tsquery, 'select set_config(''role'',''x'',false)::tsquery, ''b''::tsquery')",
            "SELECT query_to_xml('select 1', true, true, '')",
            "SELECT table_to_xml('secret'::regclass, true, true, '')",
            "SELECT schema_to_xml('public', true, true, '')",
            "SELECT database_to_xml(true, true, '')",
            "SELECT * FROM crosstab('select 1')",
            "SELECT * FROM xpath_table('id', 'x', 't', '/a', 'true')",
            "SELECT dblink_exec('dbname=app', 'drop table t')",
            "SELECT ($$select 1$$::text).ts_stat",
            "SELECT pg_catalog.ts_stat('select 1')",
        ])
    func dynamicFunctions(sql: String) throws {
        #expect(try facts(sql).dynamic, "\(sql)")
    }

    @Test("SET, RESET and set_config are setting changes with their values")
    func settings() throws {
        #expect(
            try facts("SET client_encoding = 'SJIS'").settings == [
                SettingChange(name: "client_encoding", values: ["SJIS"], kind: .value)
            ])
        #expect(try facts("SET NAMES 'GBK'").settings == [SettingChange(name: "client_encoding", values: ["GBK"], kind: .value)])
        #expect(
            try facts("SET standard_conforming_strings TO off").settings == [
                SettingChange(name: "standard_conforming_strings", values: ["off"], kind: .value)
            ])
        #expect(try facts("SET \"Standard_Conforming_Strings\" = 0").settings.first?.values == ["0"])
        #expect(try facts("RESET client_encoding").settings == [SettingChange(name: "client_encoding", kind: .reset)])
        #expect(try facts("SET client_encoding TO DEFAULT").settings == [SettingChange(name: "client_encoding", kind: .reset)])
        #expect(try facts("RESET ALL").settings == [SettingChange(name: "all", kind: .reset)])
        #expect(try facts("SET search_path TO a, b").settings.first?.values == ["a", "b"])
        let config = try facts("SELECT set_config('client_encoding'::text, 'BIG5', false)")
        #expect(config.settings == [SettingChange(name: "client_encoding", values: ["BIG5"], kind: .value)])
        #expect(config.functions.contains("set_config"))
        let named = try facts("SELECT pg_catalog.set_config(new_value => 'p', is_local => false, setting_name => 'ROLE')")
        #expect(named.settings == [SettingChange(name: "role", values: ["p"], kind: .value)])
        #expect(named.kinds.contains(.setRole))
        #expect(try facts("SELECT set_config('role', NULL, false)").settings == [SettingChange(name: "role", kind: .reset)])
        let computedValue = try facts("SELECT set_config('client_encoding', lower('SJIS'), false)")
        #expect(computedValue.settings == [SettingChange(name: "client_encoding", kind: .computed)])
        let computedName = try facts("SELECT set_config(current_setting('x.y'), 'SJIS', false)")
        #expect(computedName.settings == [SettingChange(name: nil, kind: .computed)])
        #expect(computedName.dynamic)
        let rule = try facts("UPDATE pg_settings SET setting = 'SJIS' WHERE name = 'client_encoding'")
        #expect(rule.settings == [SettingChange(name: nil, kind: .computed)] && rule.functions.contains("set_config"))
    }

    @Test("a setting's value keeps its statement out of the cache's shapes")
    func settingsAreNotCachedByShape() throws {
        var cache = InspectionCache()
        for sql in ["SET standard_conforming_strings = 'on'", "SELECT set_config('client_encoding', 'UTF8', false)"] {
            let key = InspectionCache.Key(sql)
            let (inspection, constants) = Inspector.inspectNotingConstants(sql)
            cache.remember(inspection, for: key, constants: constants)
        }
        for (sql, value) in [
            ("SET standard_conforming_strings = 'of'", "of"), ("SELECT set_config('client_encoding', 'SJIS', false)", "SJIS"),
        ] {
            let key = InspectionCache.Key(sql)
            #expect(key.shape != nil, "the scanner reads \(sql)")
            #expect(cache.inspection(for: key) == nil, "\(sql) must be parsed, not taken from the shape of another value")
            #expect(Inspector.inspect(sql).statements.first?.settings.first?.values == [value])
        }
    }
}
