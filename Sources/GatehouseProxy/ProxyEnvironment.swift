import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehouseGeo
import GatehousePolicy
import GatehouseSessions
import GatehouseStore
import Logging
import NIOSSL

/// Everything a proxied connection needs from the gateway, shared by all connections.
public struct ProxyEnvironment: Sendable {
    public var config: GatehouseConfig
    public var tokens: TokenService
    public var identities: IdentityService
    public var store: any GatehouseStore
    public var registry: SessionRegistry
    public var guardrails: Guardrails
    /// Source-country lookups, when the configuration names a GeoIP database.
    public var geoIP: GeoIPDatabase?
    /// Second factors and held statements; without it, step-up and approve rules refuse.
    public var stepUp: StepUpService?
    /// Just-in-time grants; without it, sessions never hold elevated roles.
    public var grants: GrantService?
    public var clientTLS: NIOSSLContext?
    /// Per connection name; absent when the connection does not use TLS.
    public var upstreamTLS: [String: NIOSSLContext]
    public var logger: Logger
    public var now: @Sendable () -> Date
    /// Per connection name, for connections with `database_roles`: each session logs in as its
    /// person's own role, made ready here first.
    public var databaseRoles: [String: any DatabaseRoleLogins] = [:]
    /// The tickets the gateway's MCP tools open their sessions with (the agent's token checked already).
    public var agentTickets = AgentTickets()

    public init(
        config: GatehouseConfig, tokens: TokenService, identities: IdentityService, store: any GatehouseStore,
        registry: SessionRegistry, guardrails: Guardrails, geoIP: GeoIPDatabase? = nil, stepUp: StepUpService? = nil,
        grants: GrantService? = nil, clientTLS: NIOSSLContext?, upstreamTLS: [String: NIOSSLContext], logger: Logger,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.config = config
        self.tokens = tokens
        self.identities = identities
        self.store = store
        self.registry = registry
        self.guardrails = guardrails
        self.geoIP = geoIP
        self.stepUp = stepUp
        self.grants = grants
        self.clientTLS = clientTLS
        self.upstreamTLS = upstreamTLS
        self.logger = logger
        self.now = now
    }

    /// Builds the TLS contexts the configuration asks for.
    public static func tlsContexts(
        for config: GatehouseConfig
    ) throws -> (client: NIOSSLContext, upstream: [String: NIOSSLContext]) {
        let client = try TLSMaterial.clientContext(config: config)
        var upstream: [String: NIOSSLContext] = [:]
        for connection in config.connections {
            if let context = try TLSMaterial.upstreamContext(for: connection) { upstream[connection.name] = context }
        }
        return (client, upstream)
    }
}

extension ProxyEnvironment {
    /// What a session's judge reads of the world now: the policy in force, the user's grants on the
    /// connection active now, the clock, the inspector, and whether statements can be held.
    func judgeWorld(user: String?, connection: String?) -> StatementJudge.World {
        worldSource.world(user: user, connection: connection)
    }

    /// The few parts of the environment the judge reads, to keep per session (the environment itself
    /// is large: copying it per statement costs every reference it holds).
    var worldSource: WorldSource {
        WorldSource(guardrails: guardrails, grants: grants, holdTimeout: stepUp?.holdTimeout, now: now)
    }
}

/// Where a session's judge reads the world from.
struct WorldSource: Sendable {
    let guardrails: Guardrails
    let grants: GrantService?
    /// nil when step-up and approval are not enabled.
    let holdTimeout: TimeInterval?
    let now: @Sendable () -> Date

    func world(user: String?, connection: String?) -> StatementJudge.World {
        let now = self.now()
        var active: [ActiveGrant] = []
        if let user, let connection, let grants {
            active = grants.activeGrants(for: user, on: connection, at: now).compactMap { grant in
                grant.expiresAt.map { ActiveGrant(id: grant.id, role: grant.role, expiresAt: $0) }
            }
        }
        return StatementJudge.World(
            policy: guardrails.compiled, inspect: guardrails.inspect, grants: active, now: now, holdTimeout: holdTimeout,
            newChallengeID: { RandomSecret.hex(8) })
    }
}
