import Foundation
import GatehouseConfig
import GatehouseCore
import GatehousePolicy
import Yams

/// A configuration problem, with the file and line it was found at.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var reason: String

    public var description: String {
        if let line { return "\(file):\(line): \(reason)" }
        return "\(file): \(reason)"
    }
}

/// Reads YAML configuration into a validated `GatehouseConfig`, refusing unknown keys, bad values
/// and secrets that cannot be resolved.
public struct ConfigLoader {
    /// Environment used to resolve `password_env`; injected so tests need not touch the process.
    public var environment: [String: String]
    /// Directory against which relative `password_file`, `ca_file` and certificate paths resolve.
    public var baseDirectory: String

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, baseDirectory: String) {
        self.environment = environment
        self.baseDirectory = baseDirectory
    }

    /// Loads and validates a configuration file.
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws
        -> GatehouseConfig
    {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, line: nil, reason: "cannot read the file: \(error.localizedDescription)")
        }
        let directory = (path as NSString).deletingLastPathComponent
        return try ConfigLoader(environment: environment, baseDirectory: directory.isEmpty ? "." : directory)
            .parse(text, file: path)
    }

    public func parse(_ text: String, file: String) throws -> GatehouseConfig {
        let expanded = try expandVariables(text, file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: expanded)
        } catch YamlError.duplicatedKeysInMapping(let duplicates, let context) {
            // Yams refuses repeated keys before `Reader` sees them; its own message quotes the whole file.
            let key = duplicates.first ?? ""
            throw ConfigError(
                file: file, line: Self.repeatedKeyLine(key, firstAt: context.mark, in: expanded),
                reason: "key '\(key)' appears twice in the same mapping")
        } catch let error as YamlError {
            throw ConfigError(file: file, line: Self.line(of: error), reason: "not valid YAML: \(Self.problem(of: error))")
        }
        guard let root else { throw ConfigError(file: file, line: nil, reason: "the file is empty") }
        var reader = Reader(file: file, loader: self)
        return try reader.readRoot(root)
    }

    /// Replaces `${NAME}` and `${NAME:-default}` with environment values, line by line so that
    /// error lines stay true. An unset variable without a default is an error.
    func expandVariables(_ text: String, file: String) throws -> String {
        guard text.contains("${") else { return text }
        var lines: [String] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            // Comments are left alone: a reference in a comment is documentation, not configuration.
            let commentStart = Self.commentStart(in: line)
            let comment = line[commentStart...]
            var output = ""
            var rest = line[..<commentStart]
            while let start = rest.range(of: "${") {
                output += rest[..<start.lowerBound]
                guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                    throw ConfigError(file: file, line: index + 1, reason: "unterminated ${ in a variable reference")
                }
                let reference = rest[start.upperBound..<end]
                let name: Substring
                let fallback: Substring?
                if let separator = reference.range(of: ":-") {
                    name = reference[..<separator.lowerBound]
                    fallback = reference[separator.upperBound...]
                } else {
                    name = reference
                    fallback = nil
                }
                if let value = environment[String(name)], !value.isEmpty {
                    output += value
                } else if let fallback {
                    output += fallback
                } else {
                    throw ConfigError(file: file, line: index + 1, reason: "environment variable \(name) is not set")
                }
                rest = rest[rest.index(after: end)...]
            }
            output += rest
            output += comment
            lines.append(output)
        }
        return lines.joined(separator: "\n")
    }

    /// Where a YAML comment starts in `line` (a `#` at the start or after a blank, outside quotes), or its end.
    static func commentStart(in line: Substring) -> Substring.Index {
        var quote: Character?
        var previous: Character = " "
        var index = line.startIndex
        while index < line.endIndex {
            let character = line[index]
            if let open = quote {
                if character == open { quote = nil }
            } else if character == "\"" || character == "'" {
                quote = character
            } else if character == "#" && (previous == " " || previous == "\t") {
                return index
            }
            previous = character
            index = line.index(after: index)
        }
        return line.endIndex
    }

    static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    /// The line where `key` is written again after its first occurrence at `first`, at the same
    /// indentation; the first occurrence's line when that cannot be told (e.g. in a flow mapping).
    static func repeatedKeyLine(_ key: String, firstAt first: Mark, in text: String) -> Int {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let indent = first.column - 1
        guard first.line >= 1, indent >= 0, !key.isEmpty else { return first.line }
        for index in first.line..<lines.count {
            let line = lines[index]
            guard line.prefix(indent).count == indent, line.prefix(indent).allSatisfy({ $0 == " " }) else { continue }
            let rest = line.dropFirst(indent)
            if rest.hasPrefix(key), rest.dropFirst(key.count).drop(while: { $0 == " " }).hasPrefix(":") {
                return index + 1
            }
        }
        return first.line
    }

    static func problem(of error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _):
            return problem
        default: return "\(error)"
        }
    }

    func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : (baseDirectory as NSString).appendingPathComponent(path)
    }
}

/// Walks the YAML tree; each accessor checks the type and reports the node's line.
struct Reader {
    let file: String
    let loader: ConfigLoader

    func fail(_ node: Node?, _ reason: String) -> ConfigError {
        ConfigError(file: file, line: node?.mark?.line, reason: reason)
    }

    /// The pairs of a mapping, refusing keys not in `allowed` and repeated keys.
    func mapping(_ node: Node, _ what: String, allowed: Set<String>) throws -> [(String, Node, Node)] {
        guard let mapping = node.mapping else { throw fail(node, "\(what) must be a mapping of keys to values") }
        var seen = Set<String>()
        var pairs: [(String, Node, Node)] = []
        for (key, value) in mapping {
            guard let name = key.string else { throw fail(key, "\(what): keys must be plain strings") }
            guard allowed.contains(name) else {
                throw fail(key, "unknown key '\(name)' in \(what) (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
            guard seen.insert(name).inserted else { throw fail(key, "key '\(name)' appears twice in \(what)") }
            pairs.append((name, key, value))
        }
        return pairs
    }

    func string(_ node: Node, _ what: String) throws -> String {
        guard let scalar = node.scalar, node.tag.description != "tag:yaml.org,2002:null" else {
            throw fail(node, "\(what) must be a string")
        }
        guard !scalar.string.isEmpty else { throw fail(node, "\(what) must not be empty") }
        return scalar.string
    }

    func int(_ node: Node, _ what: String, range: ClosedRange<Int>) throws -> Int {
        guard let value = node.scalar.flatMap({ Int($0.string) }) else { throw fail(node, "\(what) must be a whole number") }
        guard range.contains(value) else {
            throw fail(node, "\(what) must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
        }
        return value
    }

    func bool(_ node: Node, _ what: String) throws -> Bool {
        switch node.scalar?.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw fail(node, "\(what) must be true or false")
        }
    }

    func duration(_ node: Node, _ what: String) throws -> TimeInterval {
        let text = try string(node, what)
        guard let value = DurationText.parse(text) else {
            throw fail(node, "\(what) must be a duration such as 500ms, 30s, 15m, 12h or 7d, not '\(text)'")
        }
        return value
    }

    func hostPort(_ node: Node, _ what: String) throws -> HostPort {
        let text = try string(node, what)
        var host: Substring
        var portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[close...].dropFirst(2)
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            throw fail(node, "\(what) must be HOST:PORT, e.g. 127.0.0.1:6432, not '\(text)'")
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else {
            throw fail(node, "\(what) must be HOST:PORT with a port from 0 to 65535, not '\(text)'")
        }
        return HostPort(host: String(host), port: port)
    }

    func name(_ node: Node, _ what: String) throws -> String {
        let value = try string(node, what)
        guard Name.isValid(value) else {
            throw fail(
                node,
                "\(what) '\(value)' is not a valid name: start with a letter, then letters, digits, _, - or ., at most 63 characters"
            )
        }
        return value
    }

    func sequence(_ node: Node, _ what: String) throws -> [Node] {
        guard let sequence = node.sequence else { throw fail(node, "\(what) must be a list") }
        return Array(sequence)
    }

    mutating func readRoot(_ root: Node) throws -> GatehouseConfig {
        var config = GatehouseConfig()
        var usersNode: Node?
        var policyNode: Node?
        var rolesNode: Node?
        var servicesNode: Node?
        for (key, _, value) in try mapping(
            root, "the configuration",
            allowed: [
                "listen", "data_dir", "store", "tls", "tokens", "limits", "connections", "users", "groups", "policy", "geoip",
                "step_up", "roles", "webhooks", "service_accounts", "audit", "mcp",
            ])
        {
            switch key {
            case "listen":
                for (key, _, value) in try mapping(value, "listen", allowed: ["postgres", "http"]) {
                    if key == "postgres" { config.postgresListen = try hostPort(value, "listen.postgres") }
                    if key == "http" { config.httpListen = try hostPort(value, "listen.http") }
                }
            case "data_dir":
                config.dataDirectory = loader.resolve(try string(value, "data_dir"))
            case "store":
                let url = try string(value, "store")
                guard url.hasPrefix("sqlite:") else {
                    throw fail(
                        value,
                        "store '\(url)' is not supported: use sqlite: (a file in data_dir) or sqlite:/path/to/file.db")
                }
                config.storeURL = url
            case "tls":
                for (key, _, value) in try mapping(
                    value, "tls", allowed: ["cert_file", "key_file", "allow_plaintext_passwords"])
                {
                    switch key {
                    case "cert_file": config.clientTLS.certificateFile = try existingFile(value, "tls.cert_file")
                    case "key_file": config.clientTLS.keyFile = try existingFile(value, "tls.key_file")
                    default: config.clientTLS.allowPlaintextPasswords = try bool(value, "tls.allow_plaintext_passwords")
                    }
                }
                if (config.clientTLS.certificateFile == nil) != (config.clientTLS.keyFile == nil) {
                    throw fail(value, "tls needs both cert_file and key_file, or neither (a self-signed certificate)")
                }
            case "tokens":
                for (key, _, value) in try mapping(
                    value, "tokens", allowed: ["access_ttl", "max_access_ttl", "login_ttl", "max_service_ttl"])
                {
                    switch key {
                    case "max_service_ttl": config.tokens.maxServiceTokenTTL = try duration(value, "tokens.max_service_ttl")
                    case "access_ttl": config.tokens.accessTokenTTL = try duration(value, "tokens.access_ttl")
                    case "max_access_ttl": config.tokens.maxAccessTokenTTL = try duration(value, "tokens.max_access_ttl")
                    default: config.tokens.loginTTL = try duration(value, "tokens.login_ttl")
                    }
                }
                if config.tokens.accessTokenTTL > config.tokens.maxAccessTokenTTL {
                    throw fail(value, "tokens.access_ttl must not exceed tokens.max_access_ttl")
                }
            case "limits":
                for (key, _, value) in try mapping(
                    value, "limits",
                    allowed: [
                        "max_message_bytes", "authentication_timeout", "upstream_connect_timeout",
                        "max_unauthenticated_connections", "max_unauthenticated_per_source",
                        "max_sessions_per_user", "max_sessions_per_connection",
                    ])
                {
                    switch key {
                    case "max_unauthenticated_connections":
                        config.limits.maxUnauthenticatedConnections = try int(
                            value, "limits.max_unauthenticated_connections", range: 1...100_000)
                    case "max_unauthenticated_per_source":
                        config.limits.maxUnauthenticatedPerSource = try int(
                            value, "limits.max_unauthenticated_per_source", range: 1...100_000)
                    case "max_sessions_per_user":
                        config.limits.maxSessionsPerUser = try int(value, "limits.max_sessions_per_user", range: 1...100_000)
                    case "max_sessions_per_connection":
                        config.limits.maxSessionsPerConnection = try int(
                            value, "limits.max_sessions_per_connection", range: 1...100_000)
                    case "max_message_bytes":
                        config.limits.maxMessageBytes = try int(value, "limits.max_message_bytes", range: 1024...1_073_741_824)
                    case "authentication_timeout":
                        config.limits.authenticationTimeout = try duration(value, "limits.authentication_timeout")
                    default:
                        config.limits.upstreamConnectTimeout = try duration(value, "limits.upstream_connect_timeout")
                    }
                }
            case "connections":
                for item in try sequence(value, "connections") {
                    let connection = try readConnection(item)
                    if config.connection(named: connection.name) != nil {
                        throw fail(item, "connection '\(connection.name)' is declared twice")
                    }
                    config.connections.append(connection)
                }
            case "groups":
                for item in try sequence(value, "groups") {
                    let group = try name(item, "group")
                    guard !config.groups.contains(group) else { throw fail(item, "group '\(group)' is declared twice") }
                    config.groups.append(group)
                }
            case "policy":
                policyNode = value
            case "roles":
                rolesNode = value
            case "service_accounts":
                servicesNode = value
            case "mcp":
                config.mcp = try readMCP(value)
            case "webhooks":
                for item in try sequence(value, "webhooks") {
                    let hook = try readWebhook(item)
                    guard !config.webhooks.contains(where: { $0.name == hook.name }) else {
                        throw fail(item, "webhook '\(hook.name)' is declared twice")
                    }
                    config.webhooks.append(hook)
                }
            case "audit":
                for (key, _, value) in try mapping(value, "audit", allowed: ["commit_interval", "statement_text"]) {
                    if key == "statement_text" {
                        guard let text = AuditStatementText(rawValue: try string(value, "audit.statement_text")) else {
                            throw fail(value, "audit.statement_text must be full or masked")
                        }
                        config.auditStatementText = text
                        continue
                    }
                    let interval = try duration(value, "audit.commit_interval")
                    guard interval <= 60 else {
                        throw fail(
                            value,
                            "audit.commit_interval must be at most 60s (statement decisions wait that long to be committed)")
                    }
                    config.auditCommitInterval = interval
                }
            case "step_up":
                for (_, _, value) in try mapping(value, "step_up", allowed: ["timeout"]) {
                    config.stepUpTimeout = try duration(value, "step_up.timeout")
                }
            case "geoip":
                for (_, _, value) in try mapping(value, "geoip", allowed: ["database"]) {
                    config.geoipDatabase = try existingFile(value, "geoip.database")
                }
            default:
                usersNode = value
            }
        }
        // Built in: admins administer, auditors read everything.
        for group in [Group.admins, Group.auditors] where !config.groups.contains(group) { config.groups.append(group) }
        if let usersNode {
            for item in try sequence(usersNode, "users") {
                let user = try readUser(item, groups: config.groups)
                guard !config.users.contains(where: { $0.name == user.name }) else {
                    throw fail(item, "user '\(user.name)' is declared twice")
                }
                config.users.append(user)
            }
        }
        if let servicesNode {
            for item in try sequence(servicesNode, "service_accounts") {
                let account = try readUser(item, groups: config.groups)
                if account.passwordHash != nil {
                    throw fail(item, "service account '\(account.name)' cannot have a password: it uses API tokens")
                }
                guard !config.users.contains(where: { $0.name == account.name }),
                    !config.serviceAccounts.contains(where: { $0.name == account.name })
                else { throw fail(item, "'\(account.name)' is declared twice (users and service accounts share names)") }
                config.serviceAccounts.append(account)
            }
        }
        if let rolesNode { config.roles = try readRoles(rolesNode, config: config) }
        for connection in config.connections {
            for role in (connection.databaseRoles?.grants.keys).map(Array.init) ?? []
            where !config.roles.contains(where: { $0.name == role }) {
                throw fail(
                    root,
                    "connection '\(connection.name)': database_roles.grants names '\(role)', which is not a role under roles")
            }
        }
        if let policyNode {
            config.policy = try readPolicy(policyNode)
            try checkReferences(config.policy, config: config, node: policyNode)
            if config.geoipDatabase == nil,
                let rule = config.policy.rules.first(where: { $0.match.countries != nil || $0.match.notCountries != nil })
            {
                throw fail(policyNode, "rule '\(rule.name)' matches on countries and needs geoip.database (a MaxMind .mmdb file)")
            }
        }
        return config
    }

    func existingFile(_ node: Node, _ what: String) throws -> String {
        let path = loader.resolve(try string(node, what))
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw fail(node, "\(what): cannot read \(path)")
        }
        return path
    }

    /// `mcp:`: upstream MCP servers and the rules on their tools.
    func readMCP(_ node: Node) throws -> MCPSettings {
        var settings = MCPSettings()
        for (key, _, value) in try mapping(node, "mcp", allowed: ["upstreams", "tool_rules"]) {
            switch key {
            case "upstreams":
                for item in try sequence(value, "mcp.upstreams") {
                    var name: String?
                    var command: [String] = []
                    var prefix: String?
                    for (field, _, fieldValue) in try mapping(item, "an MCP upstream", allowed: ["name", "command", "prefix"]) {
                        switch field {
                        case "name": name = try string(fieldValue, "mcp.upstreams.name")
                        case "command":
                            command = try sequence(fieldValue, "mcp.upstreams.command").map {
                                try string($0, "mcp.upstreams.command")
                            }
                        default: prefix = try string(fieldValue, "mcp.upstreams.prefix")
                        }
                    }
                    guard let name, Name.isValid(name) else {
                        throw fail(item, "an MCP upstream needs a name (letters, digits, - and _)")
                    }
                    guard !command.isEmpty, !command[0].isEmpty else {
                        throw fail(item, "MCP upstream '\(name)' needs a command: [program, arguments...]")
                    }
                    let upstream = MCPUpstream(name: name, command: command, prefix: prefix)
                    guard !settings.upstreams.contains(where: { $0.name == name || $0.prefix == upstream.prefix }) else {
                        throw fail(item, "MCP upstream '\(name)' repeats a name or prefix")
                    }
                    settings.upstreams.append(upstream)
                }
            default:
                for item in try sequence(value, "mcp.tool_rules") {
                    var rule = ToolRule(name: "", action: .deny)
                    var hasAction = false
                    for (field, _, fieldValue) in try mapping(
                        item, "a tool rule", allowed: ["name", "action", "tools", "arguments", "message", "hint", "approvers"])
                    {
                        switch field {
                        case "name": rule.name = try string(fieldValue, "mcp.tool_rules.name")
                        case "action":
                            let text = try string(fieldValue, "mcp.tool_rules.action")
                            guard let action = ToolRule.Action(rawValue: text) else {
                                throw fail(fieldValue, "a tool rule's action is allow, alert, approve or deny, not '\(text)'")
                            }
                            rule.action = action
                            hasAction = true
                        case "tools":
                            rule.tools = try sequence(fieldValue, "mcp.tool_rules.tools").map {
                                Glob(try string($0, "mcp.tool_rules.tools"))
                            }
                        case "arguments":
                            var arguments: [String: [Glob]] = [:]
                            guard let pairs = fieldValue.mapping else {
                                throw fail(fieldValue, "mcp.tool_rules.arguments must map argument names to patterns")
                            }
                            for (key, patterns) in pairs {
                                guard let argument = key.string else { throw fail(key, "argument names must be strings") }
                                arguments[argument] =
                                    try patterns.scalar != nil
                                    ? [Glob(try string(patterns, "mcp.tool_rules.arguments"))]
                                    : sequence(patterns, "mcp.tool_rules.arguments").map {
                                        Glob(try string($0, "mcp.tool_rules.arguments"))
                                    }
                            }
                            rule.arguments = arguments
                        case "approvers":
                            for approver in try sequence(fieldValue, "mcp.tool_rules.approvers") {
                                let text = try string(approver, "mcp.tool_rules.approvers")
                                let bare = text.hasPrefix("group:") ? String(text.dropFirst("group:".count)) : text
                                guard Name.isValid(bare) else {
                                    throw fail(approver, "approver '\(text)' is not a user or group:NAME")
                                }
                                rule.approvers.append(text)
                            }
                        case "message": rule.message = try string(fieldValue, "mcp.tool_rules.message")
                        default: rule.hint = try string(fieldValue, "mcp.tool_rules.hint")
                        }
                    }
                    guard !rule.name.isEmpty else { throw fail(item, "a tool rule needs a name") }
                    guard hasAction else {
                        throw fail(item, "tool rule '\(rule.name)' needs an action (allow, alert, approve, deny)")
                    }
                    guard rule.action != .approve || !rule.approvers.isEmpty else {
                        throw fail(item, "tool rule '\(rule.name)' approves: it needs approvers (users or group:NAME)")
                    }
                    settings.toolRules.append(rule)
                }
            }
        }
        return settings
    }

    func readWebhook(_ node: Node) throws -> Webhook {
        var name: String?
        var url: String?
        var secret: String?
        var events: [String] = []
        for (key, _, value) in try mapping(node, "a webhook", allowed: ["name", "url", "secret_env", "secret_file", "events"]) {
            switch key {
            case "name": name = try self.name(value, "webhook name")
            case "url":
                let text = try string(value, "webhook url")
                guard let parsed = URL(string: text), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                    throw fail(value, "webhook url must be an http:// or https:// address, not '\(text)'")
                }
                url = text
            case "secret_env":
                let variable = try string(value, "secret_env")
                guard let found = loader.environment[variable], !found.isEmpty else {
                    throw fail(value, "secret_env: environment variable \(variable) is not set or empty")
                }
                secret = found
            case "secret_file":
                let path = loader.resolve(try string(value, "secret_file"))
                guard let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty else {
                    throw fail(value, "secret_file: cannot read \(path)")
                }
                secret = text.trimmingCharacters(in: .newlines)
            default:
                for item in try sequence(value, "webhook events") { events.append(try string(item, "webhook event")) }
            }
        }
        guard let name else { throw fail(node, "a webhook needs a name") }
        guard let url else { throw fail(node, "webhook '\(name)' needs a url") }
        guard let secret else { throw fail(node, "webhook '\(name)' needs secret_env or secret_file (it signs every delivery)") }
        return Webhook(name: name, url: url, secret: secret, events: events)
    }

    func readConnection(_ node: Node) throws -> Connection {
        var name: String?
        var host: String?
        var port = 5432
        var database: String?
        var user: String?
        var password: String?
        var passwordGiven = false
        var tls = Connection.TLSMode.disable
        var caFile: String?
        var databaseRoles: DatabaseRoles?
        for (key, keyNode, value) in try mapping(
            node, "a connection",
            allowed: [
                "name", "host", "port", "database", "user", "password_env", "password_file", "tls", "ca_file", "trust",
                "database_roles",
            ])
        {
            switch key {
            case "name": name = try self.name(value, "connection name")
            case "host": host = try string(value, "connection host")
            case "port": port = try int(value, "connection port", range: 1...65535)
            case "database": database = try string(value, "connection database")
            case "user": user = try string(value, "connection user")
            case "password_env", "password_file":
                guard !passwordGiven else { throw fail(keyNode, "give only one of password_env and password_file") }
                passwordGiven = true
                if key == "password_env" {
                    let variable = try string(value, "password_env")
                    guard let secret = loader.environment[variable], !secret.isEmpty else {
                        throw fail(value, "password_env: environment variable \(variable) is not set or empty")
                    }
                    password = secret
                } else {
                    let path = loader.resolve(try string(value, "password_file"))
                    guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
                        throw fail(value, "password_file: cannot read \(path)")
                    }
                    let secret = contents.trimmingCharacters(in: .newlines)
                    guard !secret.isEmpty else { throw fail(value, "password_file: \(path) is empty") }
                    password = secret
                }
            case "trust":
                // Explicitly no password: the upstream trusts this gateway (e.g. by address or certificate).
                guard try bool(value, "trust") else { throw fail(value, "trust can only be true; omit it otherwise") }
                guard !passwordGiven else { throw fail(keyNode, "trust: true excludes password_env and password_file") }
                passwordGiven = true
            case "tls":
                let text = try string(value, "connection tls")
                guard let mode = Connection.TLSMode(rawValue: text) else {
                    throw fail(value, "connection tls must be one of disable, require, verify-full, not '\(text)'")
                }
                tls = mode
            case "database_roles":
                databaseRoles = try readDatabaseRoles(value)
            default: caFile = try existingFile(value, "ca_file")
            }
        }
        guard let name else { throw fail(node, "a connection needs a name") }
        guard let host else { throw fail(node, "connection '\(name)' needs a host") }
        guard let database else { throw fail(node, "connection '\(name)' needs a database") }
        guard let user else { throw fail(node, "connection '\(name)' needs a user (the upstream role)") }
        guard passwordGiven else {
            throw fail(node, "connection '\(name)' needs password_env or password_file (or trust: true)")
        }
        if tls == .verifyFull && caFile == nil {
            throw fail(node, "connection '\(name)' uses tls: verify-full and needs ca_file")
        }
        var connection = Connection(name: name, host: host, port: port, database: database, user: user, password: password)
        connection.tls = tls
        connection.caFile = caFile
        connection.databaseRoles = databaseRoles
        if let databaseRoles, databaseRoles.handedOut.contains(user) || databaseRoles.user(of: user) != nil {
            throw fail(node, "connection '\(name)': the gateway's login \(user) cannot also be a role database_roles hands out")
        }
        return connection
    }

    /// `database_roles:` of a connection: the person's role name, and the database roles it holds.
    func readDatabaseRoles(_ node: Node) throws -> DatabaseRoles {
        var roles = DatabaseRoles()
        for (key, _, value) in try mapping(node, "database_roles", allowed: ["mode", "name", "base", "grants"]) {
            switch key {
            case "mode":
                let text = try string(value, "database_roles.mode")
                guard let mode = DatabaseRoles.Mode(rawValue: text) else {
                    throw fail(value, "database_roles.mode must be per_user, not '\(text)'")
                }
                roles.mode = mode
            case "name":
                let text = try string(value, "database_roles.name")
                let parts = text.components(separatedBy: "{user}")
                guard parts.count == 2 else {
                    throw fail(value, "database_roles.name must hold {user} exactly once, as in gh_{user}")
                }
                guard parts.joined().allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), parts[0].first?.isNumber != true
                else {
                    throw fail(value, "database_roles.name: around {user}, only letters, digits and _")
                }
                roles.name = text
            case "base":
                roles.base = try databaseRoleList(value, "database_roles.base")
            default:
                guard let mapping = value.mapping else {
                    throw fail(value, "database_roles.grants must map JIT roles to lists of database roles")
                }
                for (key, list) in mapping {
                    guard let role = key.string, Name.isValid(role) else {
                        throw fail(key, "database_roles.grants: keys are JIT role names")
                    }
                    guard roles.grants[role] == nil else { throw fail(key, "database_roles.grants names \(role) twice") }
                    roles.grants[role] = try databaseRoleList(list, "database_roles.grants.\(role)")
                }
            }
        }
        return roles
    }

    func databaseRoleList(_ node: Node, _ what: String) throws -> [String] {
        var list: [String] = []
        for item in try sequence(node, what) {
            let role = try string(item, what)
            guard !role.isEmpty, role.utf8.count <= 63, !role.contains("\0") else {
                throw fail(item, "\(what): '\(role)' is not a PostgreSQL role name (1 to 63 bytes)")
            }
            guard !role.hasPrefix("pg_") else {
                throw fail(item, "\(what): \(role) is a role of PostgreSQL itself; hand out roles of your own")
            }
            if !list.contains(role) { list.append(role) }
        }
        return list
    }

    func readUser(_ node: Node, groups declared: [String]) throws -> UserEntry {
        var name: String?
        var groups: [String] = []
        var passwordHash: String?
        var expiresAt: Date?
        for (key, _, value) in try mapping(node, "a user", allowed: ["name", "groups", "password_hash", "expires"]) {
            switch key {
            case "name": name = try self.name(value, "user name")
            case "groups":
                for item in try sequence(value, "user groups") {
                    let group = try self.name(item, "group")
                    guard declared.contains(group) else {
                        throw fail(item, "group '\(group)' is not declared under groups")
                    }
                    groups.append(group)
                }
            case "password_hash":
                let text = try string(value, "password_hash")
                guard PasswordHash(text) != nil else {
                    throw fail(value, "password_hash is not a hash made by `gatehouse hash-password`")
                }
                passwordHash = text
            default:
                let text = try string(value, "expires")
                guard let date = Timestamp.parse(text) else {
                    throw fail(value, "expires must be a date or time such as 2026-12-31 or 2026-12-31T18:00:00Z")
                }
                expiresAt = date
            }
        }
        guard let name else { throw fail(node, "a user needs a name") }
        return UserEntry(name: name, groups: groups, passwordHash: passwordHash, expiresAt: expiresAt)
    }
}
