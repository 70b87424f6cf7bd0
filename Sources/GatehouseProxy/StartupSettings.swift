import GatehousePolicy
import PostgresWire

/// The settings a client asks for in its StartupMessage, read as the server reads them, and the startup
/// the gateway sends upstream instead. Pure: no I/O.
///
/// The server applies a startup packet's settings in this order (`process_startup_options`): first the
/// switches inside `options` (split by `pg_split_opts`, read by `process_postgres_switches`: `-c name=value`
/// and `--name=value`), then every other key, in packet order; setting names are compared without regard
/// to case and the last value of a name wins. Each of them is one of:
/// - pinned: `client_encoding` and `standard_conforming_strings` decide how the server reads SQL text,
///   so the gateway's sessions always run in UTF8 with standard-conforming strings, the way the gateway's
///   parser reads text. A client asking for that is served; a client asking otherwise is refused;
/// - on `allowList`: settings that change how values are shown or how long things may take, never what
///   a statement does or as whom it runs;
/// - judged: anything else is judged by the policy as `SET name TO 'value'`, as if sent in the session.
///
/// `options` itself never reaches the server: what it held is sent as plain keys.
public struct StartupSettings: Sendable, Equatable {
    public struct Setting: Sendable, Equatable {
        /// Lower case, `-` in a `--name=value` switch read as `_`, as the server reads it.
        public var name: String
        public var value: String
        /// The key and value, or the switch, as the client wrote it, for messages.
        public var written: String

        /// The statement the policy judges for this setting.
        public var statement: String {
            "SET \"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\" TO '"
                + value.replacingOccurrences(of: "'", with: "''") + "'"
        }
    }

    public struct Refusal: Error, Sendable, Equatable {
        public var sqlState: String
        public var message: String
        public var hint: String?
    }

    /// Client settings passed on without judgment, and why each is safe: none changes how SQL text is
    /// read, which statements run, what they may touch, or the role they run as.
    public static let allowList: [String: String] = [
        "application_name": "a label shown in pg_stat_activity and logs",
        "datestyle": "how dates are shown and how ambiguous date input is read",
        "intervalstyle": "how intervals are shown",
        "timezone": "the zone timestamps are shown in",
        "extra_float_digits": "how many digits floats are shown with",
        "client_min_messages": "which notices the client is sent",
        "bytea_output": "how bytea values are shown",
        "backslash_quote":
            "whether \\' may stand for a quote; refusing it only raises errors, with standard strings it changes no parse",
        "escape_string_warning": "a warning about backslashes in ordinary strings",
        "statement_timeout": "cancels statements that run too long",
        "lock_timeout": "cancels statements that wait too long for a lock",
        "idle_in_transaction_session_timeout": "ends sessions left idle in a transaction",
        "idle_session_timeout": "ends idle sessions",
    ]

    /// Names that are not settings: the server reads `user`, `database`, `options` and `replication`
    /// keys itself (spelled exactly so) and refuses them as setting names.
    static let reserved: Set<String> = ["user", "database", "options", "replication"]

    /// Client encodings served as UTF8: UTF8 itself, and SQL_ASCII, which psql asks for under the C locale
    /// and which the server would check as UTF8 anyway (the gateway refuses text that is not UTF8).
    static let servedEncodings: Set<String> = ["utf8", "unicode", "sqlascii"]

    /// Settings on the allow-list, in the order the server would apply them.
    public var allowed: [Setting] = []
    /// Settings the policy must judge before the session starts, in order.
    public var judged: [Setting] = []

    /// Reads a startup packet's parameters (without `user`, `database`, `replication` and `_pq_.` keys,
    /// which the startup machine has taken).
    public static func read(_ parameters: StartupParameters) -> Result<StartupSettings, Refusal> {
        var settings: [Setting] = []
        // `options`: the last value sent, as the server keeps it.
        if let options = parameters["options"] {
            switch switches(in: splitOptions(options)) {
            case .success(let found): settings += found
            case .failure(let refusal): return .failure(refusal)
            }
        }
        for (key, value) in parameters.entries where key != "options" {
            settings.append(Setting(name: key.lowercased(), value: value, written: "\(key)=\(value)"))
        }
        var result = StartupSettings()
        for setting in settings {
            if reserved.contains(setting.name) || setting.name.hasPrefix("_pq_.") {
                return .failure(
                    Refusal(
                        sqlState: "42704",
                        message: "unrecognized configuration parameter \"\(setting.name)\" (\(setting.written))",
                        hint: "connection parameters user, dbname and options are spelled in lower case"))
            }
            switch setting.name {
            case "client_encoding":
                guard servedEncodings.contains(PinnedSettings.normalizedEncoding(setting.value)) else {
                    return .failure(
                        Refusal(
                            sqlState: "0A000",
                            message:
                                "client_encoding \"\(setting.value)\" is not supported: Gatehouse sessions use UTF8, the encoding its statement checks read",
                            hint: "connect with PGCLIENTENCODING=UTF8 (client_encoding=UTF8)"))
                }
            case "standard_conforming_strings":
                guard PostgresBool.parse(setting.value) == true else {
                    return .failure(
                        Refusal(
                            sqlState: "0A000",
                            message:
                                "standard_conforming_strings \"\(setting.value)\" is not supported: Gatehouse sessions use standard-conforming strings, as its statement checks read them",
                            hint: "leave standard_conforming_strings on; write backslash escapes as E'...'"))
                }
            default:
                if allowList[setting.name] != nil { result.allowed.append(setting) } else { result.judged.append(setting) }
            }
        }
        return .success(result)
    }

    /// The parameters of the upstream startup (besides `user` and `database`): the client's settings in
    /// the order the server would have applied them, then the pinned ones, which the server applies last.
    public func upstream(defaultApplicationName: String) -> StartupParameters {
        var parameters = StartupParameters()
        var named: Set<String> = []
        // Settings of one name all fall in one list, in order, so the last value of each still wins.
        for setting in allowed + judged {
            parameters.entries.append((setting.name, setting.value))
            named.insert(setting.name)
        }
        if !named.contains("application_name") { parameters.entries.insert(("application_name", defaultApplicationName), at: 0) }
        parameters.entries.append(("client_encoding", "UTF8"))
        parameters.entries.append(("standard_conforming_strings", "on"))
        return parameters
    }

    /// `pg_split_opts`: words separated by white space (C's `isspace`), a backslash keeping the next
    /// character, white space included, and itself dropped.
    public static func splitOptions(_ text: String) -> [String] {
        var words: [String] = []
        var bytes = Array(text.utf8)[...]
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
        while true {
            while let first = bytes.first, isSpace(first) { bytes.removeFirst() }
            if bytes.isEmpty { break }
            var word: [UInt8] = []
            var escaped = false
            while let byte = bytes.first {
                if isSpace(byte) && !escaped { break }
                if !escaped && byte == UInt8(ascii: "\\") {
                    escaped = true
                } else {
                    escaped = false
                    word.append(byte)
                }
                bytes.removeFirst()
            }
            words.append(String(decoding: word, as: UTF8.self))
        }
        return words
    }

    /// The `-c name=value`, `-cname=value` and `--name=value` switches of `options`. Every other switch
    /// (`-B`, `-e`, `-S`, `-P`, ...) and every argument that is not a switch is refused: they configure the
    /// server itself, and the server refuses most of them from a client anyway.
    public static func switches(in words: [String]) -> Result<[Setting], Refusal> {
        var settings: [Setting] = []
        var index = 0
        func refuse(_ message: String) -> Result<[Setting], Refusal> {
            .failure(
                Refusal(
                    sqlState: "42501", message: "startup option \(message) is not accepted by Gatehouse",
                    hint: "in options, only -c name=value and --name=value settings are accepted"))
        }
        while index < words.count {
            let word = words[index]
            let assignment: String
            let written: String
            if word.hasPrefix("--") && word.count > 2 {
                assignment = String(word.dropFirst(2))
                written = word
            } else if word == "-c" {
                guard index + 1 < words.count else { return refuse("\"-c\" without a setting") }
                index += 1
                assignment = words[index]
                written = "-c " + assignment
            } else if word.hasPrefix("-c") {
                assignment = String(word.dropFirst(2))
                written = word
            } else {
                return refuse("\"\(word)\"")
            }
            guard let equals = assignment.firstIndex(of: "=") else {
                return refuse("\"\(written)\" without a value")
            }
            // ParseLongOption: the name's dashes are underscores.
            let name = String(assignment[..<equals]).replacingOccurrences(of: "-", with: "_").lowercased()
            guard !name.isEmpty else { return refuse("\"\(written)\" without a name") }
            settings.append(Setting(name: name, value: String(assignment[assignment.index(after: equals)...]), written: written))
            index += 1
        }
        return .success(settings)
    }
}
