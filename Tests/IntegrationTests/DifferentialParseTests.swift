import Foundation
import SQLInspection
import Testing

/// The statements the gateway's parser finds in a text are the statements PostgreSQL executes.
///
/// Each text is sent as one simple Query straight to the test cluster, in a session with the settings
/// the gateway pins (UTF8, standard-conforming strings); the server's CommandComplete tags, in order,
/// must name the statements the inspector found, in order.
@Suite("Differential: libpg_query against PostgreSQL", .timeLimit(.minutes(5)))
struct DifferentialParseTests {
    /// Texts with every kind of literal, escape, comment and identifier, each built to split differently
    /// if one reader took a quote, a backslash or a comment otherwise than the other.
    static let corpus: [String] = [
        #"SELECT 'a\' , ' ; SELECT 2 ; -- '"#,
        #"SELECT 'a\'; SELECT 2"#,
        #"SELECT E'a\' ; SELECT 1 ; --'"#,
        #"SELECT E'Á\'; SELECT 2; --'"#,
        #"SELECT E'中\'; SELECT 2; --'"#,
        #"SELECT E'\\'; SELECT 2"#,
        #"SELECT E'\\\'; SELECT 2; --'"#,
        #"SELECT e'\u00C1\'; SELECT 2; --'"#,
        #"SELECT E'\x27; SELECT 2; --'"#,
        #"SELECT E'\047'; SELECT 2"#,
        #"SELECT '表\'; SELECT 2"#,
        #"SELECT 'Á\'; SELECT 2"#,
        "SELECT 'it''s; SELECT 2'; SELECT 3",
        "SELECT E'it''s \\'; SELECT 2'; SELECT 3",
        "SELECT $$; SELECT 2$$; SELECT $tag$ $$ ; $tag$; SELECT $é$;'$é$",
        "SELECT $a$ $b$ ; $a$; SELECT 2",
        "SELECT $中$ ; \\' $中$; SELECT 2",
        #"SELECT U&'\0041; SELECT 2' UESCAPE '!'; SELECT 3"#,
        #"SELECT U&'!0041;\' UESCAPE '!'; SELECT 2"#,
        #"SELECT U&'\00e9\0027'; SELECT 2"#,
        #"SELECT 1 AS U&"\00e9;"; SELECT 2"#,
        #"SELECT "a;b" FROM (SELECT 1 AS "a;b") s; SELECT 2"#,
        #"SELECT "a""'b" FROM (SELECT 1 AS "a""'b") s; SELECT 2"#,
        "SELECT 1 AS \"é;'\"; SELECT 2",
        "SELECT 1 /* nested /* ; SELECT 2 */ ; SELECT 3 */; SELECT 4",
        "SELECT 1 /* ' */; SELECT 2 /* $$ */; SELECT 3",
        "SELECT 1 -- ; SELECT 2 '\n; SELECT 3",
        "SELECT 1 --\\\n; SELECT 2",
        "SELECT B'101', X'1F', N'x;y'; SELECT 2",
        "SELECT b'1' AS \"x\", x'ff'::int; SELECT 2",
        "SELECT 'a'\n'b; SELECT 2'; SELECT 3",
        "SELECT 1;;; SELECT 2;",
        "SELECT 1 AS é, 'é''\\' AS \"é\"\"\"; SELECT 2",
        "SELECT '\u{00A0}'; SELECT '\u{2028}'; SELECT '\u{FEFF}'",
        "SELECT 1 \u{00A0}; SELECT 2",
        "SELECT 1 AS a\u{3000}b",
        "SELECT E'\\u0041\\U00000042'; SELECT 2",
        "SET search_path = public; SHOW search_path; RESET search_path",
        "SET client_min_messages TO 'warning'; SET application_name = E'x\\';'; RESET client_min_messages",
        "CREATE TEMP TABLE t_diff (v text); INSERT INTO t_diff VALUES (E'\\''), ($q$;$q$); "
            + "UPDATE t_diff SET v = 'x' WHERE v = ''''; DELETE FROM t_diff WHERE v = 'x'; DROP TABLE t_diff",
        "BEGIN; SELECT 'a\\'; COMMIT",
        "PREPARE q AS SELECT $$;$$; DEALLOCATE q",
        "EXPLAIN SELECT ';'; VALUES ('1'), (';'); TABLE pg_namespace LIMIT 0",
    ]

    /// The first word of the server's tag for each statement kind the corpus uses.
    static func tagWord(_ kind: StatementKind) -> String {
        switch kind {
        case .select: "SELECT"
        case .insert: "INSERT"
        case .update: "UPDATE"
        case .delete: "DELETE"
        case .create: "CREATE"
        case .drop: "DROP"
        case .set: "SET"
        case .show: "SHOW"
        case .reset: "RESET"
        case .transaction: "TRANSACTION"
        case .prepare: "PREPARE"
        case .execute: "EXECUTE"
        case .deallocate: "DEALLOCATE"
        case .explain: "EXPLAIN"
        default: kind.rawValue.uppercased()
        }
    }

    static func serverWord(_ tag: String) -> String {
        let word = String(tag.prefix { $0 != " " })
        switch word {
        case "BEGIN", "COMMIT", "ROLLBACK": return "TRANSACTION"
        default: return word
        }
    }

    @Test("every text of the corpus splits into the same statements for both")
    func corpusAgrees() throws {
        let cluster = try TestCluster.fromEnvironment()
        let server = try RawClient(
            port: cluster.port,
            parameters: [
                ("user", "gh_trust"), ("database", "app"), ("client_encoding", "UTF8"), ("standard_conforming_strings", "on"),
            ])
        var compared = 0
        for text in Self.corpus {
            let inspection = Inspector.inspect(text)
            let reply = try server.query(text)
            #expect(reply.error == nil, "the server refused \(text): \(String(describing: reply.error))")
            #expect(inspection.parseError == nil, "the inspector refused \(text)")
            let expected = inspection.statements.map { Self.tagWord($0.primary) }
            let actual = reply.tags.map(Self.serverWord)
            #expect(expected == actual, "\(text)\n  inspector: \(expected)\n  server:    \(actual)")
            compared += 1
        }
        #expect(compared == Self.corpus.count)
    }

    /// The same check can fail: in a client encoding whose characters may end in a backslash byte, the
    /// server splits the UTF-8 bytes of one statement into two, which is why the gateway pins UTF8.
    @Test(
        "in SJIS, GBK, GB18030 and BIG5 the server reads more statements than the inspector",
        arguments: [("SJIS", "Á"), ("GBK", "中"), ("GB18030", "中"), ("BIG5", "中")])
    func otherEncodingsDisagree(encoding: String, character: String) throws {
        let cluster = try TestCluster.fromEnvironment()
        let text = "SELECT E'\(character)\\'; SELECT 2; --'"
        let server = try RawClient(
            port: cluster.port, parameters: [("user", "gh_trust"), ("database", "app"), ("client_encoding", encoding)])
        let reply = try server.query(bytes: Array(text.utf8))
        #expect(Inspector.inspect(text).statements.count == 1)
        #expect(reply.tags == ["SELECT 1", "SELECT 1"], "\(encoding): \(reply.tags) \(String(describing: reply.error))")
        let utf8 = try RawClient(
            port: cluster.port, parameters: [("user", "gh_trust"), ("database", "app"), ("client_encoding", "UTF8")])
        #expect(try utf8.query(text).tags == ["SELECT 1"])
    }

    /// And with standard-conforming strings off, the server reads `\'` as a quote inside a literal.
    @Test("with standard_conforming_strings off the server reads other statements than the inspector")
    func stringModeDisagrees() throws {
        let cluster = try TestCluster.fromEnvironment()
        let server = try RawClient(
            port: cluster.port,
            parameters: [("user", "gh_trust"), ("database", "app"), ("standard_conforming_strings", "off")])
        let text = #"SELECT 'a\' , ' ; SELECT 2 ; -- '"#
        #expect(Inspector.inspect(text).statements.count == 1)
        #expect(try server.query(text).tags == ["SELECT 1", "SELECT 1"])
    }
}
