import Foundation
import GatehouseCore
import GatehousePolicy

/// The validated gateway configuration. Every field has a documented default.
public struct GatehouseConfig: Sendable, Equatable {
    /// Where clients connect with the PostgreSQL protocol.
    public var postgresListen: HostPort = HostPort(host: "127.0.0.1", port: 6432)
    /// Where the HTTP API listens.
    public var httpListen: HostPort = HostPort(host: "127.0.0.1", port: 7070)
    /// Directory for the state store, signing key and generated TLS certificate.
    public var dataDirectory: String = ".gatehouse"
    /// State store URL: `sqlite:` (a file in the data directory, the default) or `sqlite:/path/file.db`.
    public var storeURL: String = "sqlite:"
    public var clientTLS: ClientTLS = ClientTLS()
    public var tokens: TokenSettings = TokenSettings()
    public var limits: Limits = Limits()
    public var connections: [Connection] = []
    public var users: [UserEntry] = []
    public var groups: [String] = []
    /// Guardrails judged for every statement. Without a `policy:` section, statements that can be
    /// classified are allowed and the rest are denied.
    public var policy: Policy = .permissive
    /// Machine identities (CI jobs, agents): API tokens only, never a password.
    public var serviceAccounts: [UserEntry] = []
    /// Where notifications go.
    public var webhooks: [Webhook] = []
    /// Other MCP servers whose tools the gateway's `/mcp` relays, and the rules on their calls.
    public var mcp = MCPSettings()
    /// Roles people may request just in time.
    public var roles: [RequestableRole] = []
    /// How long a statement held for step-up or approval waits before it fails.
    public var stepUpTimeout: TimeInterval = 120
    /// The longest statement decisions gather before one commit to the audit log. They are journaled
    /// first, so a crash of the gateway loses none; a power loss may lose up to this window.
    public var auditCommitInterval: TimeInterval = 0.01
    /// Whether statement decisions record the statement's constants (`full`) or `$n` in their place
    /// (`masked`, for data that must not reach the audit log).
    public var auditStatementText: AuditStatementText = .full
    /// A MaxMind-format country database (.mmdb) for rules on the source country; nil when not used.
    public var geoipDatabase: String?

    public init() {}

    public func connection(named name: String) -> Connection? {
        connections.first { $0.name == name }
    }

    /// The SQLite file the store uses.
    public var sqlitePath: String {
        let path = String(storeURL.dropFirst("sqlite:".count))
        return path.isEmpty ? (dataDirectory as NSString).appendingPathComponent("gatehouse.db") : path
    }
}

public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// TLS offered to clients that send SSLRequest.
public struct ClientTLS: Sendable, Equatable {
    /// PEM certificate chain; when nil a self-signed certificate is generated once into the data directory.
    public var certificateFile: String?
    public var keyFile: String?
    /// Accept token passwords over plaintext from non-loopback addresses. Off by default: tokens are secrets.
    public var allowPlaintextPasswords: Bool = false

    public init() {}
}

public struct TokenSettings: Sendable, Equatable {
    /// Lifetime of an access token (the psql password).
    public var accessTokenTTL: TimeInterval = 15 * 60
    /// Longest lifetime a caller may ask for.
    public var maxAccessTokenTTL: TimeInterval = 12 * 3600
    /// Longest lifetime of a service account's API token.
    public var maxServiceTokenTTL: TimeInterval = 90 * 86400
    /// Lifetime of the login that `gatehouse login` stores.
    public var loginTTL: TimeInterval = 12 * 3600

    public init() {}
}

public enum AuditStatementText: String, Sendable, Equatable, CaseIterable {
    case full, masked
}

public struct Limits: Sendable, Equatable {
    /// Largest protocol message accepted from a client or a server.
    public var maxMessageBytes: Int = 256 * 1024 * 1024
    /// Time allowed for a client to authenticate after connecting.
    public var authenticationTimeout: TimeInterval = 30
    /// Time allowed to connect and authenticate to the upstream server.
    public var upstreamConnectTimeout: TimeInterval = 10
    /// Client connections that may be waiting to authenticate at once; more are refused at once.
    public var maxUnauthenticatedConnections = 128
    /// Of those, how many one source address may hold: one address cannot lock everyone else out.
    public var maxUnauthenticatedPerSource = 32
    /// Sessions one user may have open at once (across connections).
    public var maxSessionsPerUser = 50
    /// Sessions one connection may have open at once: below PostgreSQL's default `max_connections`
    /// (100) so that the database keeps slots for others.
    public var maxSessionsPerConnection = 90

    public init() {}
}

/// An upstream PostgreSQL database that users reach by naming the connection as `dbname`.
public struct Connection: Sendable, Equatable {
    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        case disable
        case require
        case verifyFull = "verify-full"
    }

    public var name: String
    public var host: String
    public var port: Int = 5432
    public var database: String
    public var user: String
    /// The brokered password, resolved at start from `password_env` or `password_file`; nil for trust.
    public var password: String?
    public var tls: TLSMode = .disable
    public var caFile: String?
    /// How people appear in this database: a role of their own that follows their grants. nil: every
    /// session logs in as `user`.
    public var databaseRoles: DatabaseRoles?

    public init(name: String, host: String, port: Int = 5432, database: String, user: String, password: String?) {
        self.name = name
        self.host = host
        self.port = port
        self.database = database
        self.user = user
        self.password = password
    }
}

/// Each Gatehouse user logs in to a connection's database as a role of their own, which holds the
/// connection's `base` roles and, while one of their grants is active, the roles that grant's JIT role
/// maps to. The gateway's own login (`Connection.user`) creates these roles and changes their memberships.
public struct DatabaseRoles: Sendable, Equatable {
    public enum Mode: String, Sendable, Equatable, CaseIterable {
        /// A role per Gatehouse user, created on first use.
        case perUser = "per_user"
    }

    public var mode: Mode = .perUser
    /// The person's role name; `{user}` stands for the Gatehouse user name.
    public var name: String = "gh_{user}"
    /// Database roles every person's role holds.
    public var base: [String] = []
    /// Database roles a grant of each JIT role adds while it is active.
    public var grants: [String: [String]] = [:]

    public init(name: String = "gh_{user}", base: [String] = [], grants: [String: [String]] = [:]) {
        self.name = name
        self.base = base
        self.grants = grants
    }

    /// The role `user` logs in as.
    public func role(for user: String) -> String {
        name.replacingOccurrences(of: "{user}", with: user)
    }

    /// The Gatehouse user a role name stands for, if it has this connection's form.
    public func user(of role: String) -> String? {
        guard let marker = name.range(of: "{user}") else { return nil }
        let prefix = String(name[..<marker.lowerBound])
        let suffix = String(name[marker.upperBound...])
        guard role.count > prefix.count + suffix.count, role.hasPrefix(prefix), role.hasSuffix(suffix) else { return nil }
        return String(role.dropFirst(prefix.count).dropLast(suffix.count))
    }

    /// What a person's role holds while grants of `grantRoles` (JIT role names) are active.
    public func memberships(grantRoles: [String]) -> Set<String> {
        Set(base).union(grantRoles.flatMap { grants[$0] ?? [] })
    }

    /// Every database role this connection hands out.
    public var handedOut: Set<String> { Set(base).union(grants.values.joined()) }
}

public struct UserEntry: Sendable, Equatable {
    public var name: String
    public var groups: [String]
    public var passwordHash: String?
    public var expiresAt: Date?

    public init(name: String, groups: [String], passwordHash: String? = nil, expiresAt: Date? = nil) {
        self.name = name
        self.groups = groups
        self.passwordHash = passwordHash
        self.expiresAt = expiresAt
    }
}

/// An HTTP endpoint that receives notifications as signed JSON.
public struct Webhook: Sendable, Equatable {
    public var name: String
    public var url: String
    /// HMAC-SHA256 key for the `X-Gatehouse-Signature` header.
    public var secret: String
    /// Audit event types to send (prefixes such as `grant.` allowed); empty means the default set.
    public var events: [String]

    public init(name: String, url: String, secret: String, events: [String] = []) {
        self.name = name
        self.url = url
        self.secret = secret
        self.events = events
    }

    /// Requests, approvals, denials, grants (break-glass included), revocations, step-up failures and
    /// `alert` rules.
    public static let defaultEvents = [
        "request.created", "request.approved", "request.denied", "request.lapsed", "grant.", "challenge.failed",
        "challenge.denied", "mfa.locked_out", "statement.alert",
    ]

    public func wants(_ type: String) -> Bool {
        (events.isEmpty ? Self.defaultEvents : events).contains { $0.hasSuffix(".") ? type.hasPrefix($0) : type == $0 }
    }
}

/// `mcp:`: MCP servers the gateway relays (their tools appear under a prefix) and rules on those tools.
public struct MCPSettings: Sendable, Equatable {
    public var upstreams: [MCPUpstream] = []
    public var toolRules: [ToolRule] = []

    public init() {}
}

/// An MCP server the gateway starts (a command speaking MCP on stdin and stdout) and relays.
public struct MCPUpstream: Sendable, Equatable {
    public var name: String
    public var command: [String]
    /// What its tools are called under at the gateway: `PREFIX` + the tool's own name.
    public var prefix: String

    public init(name: String, command: [String], prefix: String? = nil) {
        self.name = name
        self.command = command
        self.prefix = prefix ?? name + "_"
    }
}

/// A rule on relayed tool calls: the tool's name (with its prefix) and argument values, as globs.
public struct ToolRule: Sendable, Equatable {
    public enum Action: String, Sendable, Equatable, CaseIterable { case allow, alert, approve, deny }
    public var name: String
    public var action: Action
    public var tools: [Glob]?
    /// Argument name → patterns its value (as text) must match one of.
    public var arguments: [String: [Glob]]?
    public var message: String?
    public var hint: String?
    /// Who may approve a call an `approve` rule holds: users, or `group:NAME`.
    public var approvers: [String] = []

    public init(name: String, action: Action, tools: [Glob]? = nil, arguments: [String: [Glob]]? = nil) {
        self.name = name
        self.action = action
        self.tools = tools
        self.arguments = arguments
    }
}
