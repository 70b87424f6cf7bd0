import CPgQuery
import Foundation

/// PostgreSQL's own parser (libpg_query) behind a Swift face. Thread-safe: libpg_query keeps its
/// memory contexts per thread.
public enum PostgresParser {
    /// The parse tree of `sql` as libpg_query's JSON, or the parser's error.
    public static func parseJSON(_ sql: String) -> Result<Data, ParseError> {
        let result = pg_query_parse(sql)
        defer { pg_query_free_parse_result(result) }
        if let error = result.pointee_error {
            return .failure(error)
        }
        guard let tree = result.parse_tree else {
            return .failure(ParseError(message: "the parser returned no tree", position: 0, sqlState: ParseError.internalError))
        }
        return .success(Data(bytes: tree, count: strlen(tree)))
    }

    /// `sql` with every constant replaced by `$n` (libpg_query's normalisation), or nil when it does not
    /// parse. Texts the inspector would refuse unread are not normalised either.
    public static func normalized(_ sql: String) -> String? {
        let length = sql.utf8.count
        guard length <= Inspector.longestText else { return nil }
        let work: @Sendable () -> String? = {
            let result = pg_query_normalize(sql)
            defer { pg_query_free_normalize_result(result) }
            guard result.error == nil, let text = result.normalized_query else { return nil }
            return String(cString: text)
        }
        return length > Inspector.inlineTextBytes ? LargeStack.run(work) : work()
    }

    /// libpg_query's fingerprint of one statement: equal for statements that differ only in constants,
    /// comments and layout.
    public static func fingerprint(_ sql: String) -> String? {
        let result = pg_query_fingerprint(sql)
        defer { pg_query_free_fingerprint_result(result) }
        guard result.error == nil, let text = result.fingerprint_str else { return nil }
        return String(cString: text)
    }
}

extension PgQueryParseResult {
    fileprivate var pointee_error: ParseError? {
        guard let error else { return nil }
        let message = error.pointee.message.map { String(cString: $0) } ?? "syntax error"
        // libpg_query keeps the message, not the SQLSTATE: its errors are the raw parser's, syntax errors
        // but for the parser's own stack check.
        let sqlState = message.contains("stack depth limit exceeded") ? ParseError.stackDepthExceeded : ParseError.syntaxError
        return ParseError(message: message, position: Int(error.pointee.cursorpos), sqlState: sqlState)
    }
}

extension PostgresParser {
    /// Parses `sql` and lends the JSON parse tree to `body` without copying it.
    static func withParseTree<T>(_ sql: String, _ body: (UnsafeBufferPointer<UInt8>) -> T) -> Result<T, ParseError> {
        let result = pg_query_parse(sql)
        defer { pg_query_free_parse_result(result) }
        if let error = result.pointee_error { return .failure(error) }
        guard let tree = result.parse_tree else {
            return .failure(ParseError(message: "the parser returned no tree", position: 0, sqlState: ParseError.internalError))
        }
        return .success(
            tree.withMemoryRebound(to: UInt8.self, capacity: strlen(tree)) {
                body(UnsafeBufferPointer(start: $0, count: strlen(tree)))
            })
    }
}
