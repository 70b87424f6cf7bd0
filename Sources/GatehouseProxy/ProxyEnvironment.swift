import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehouseGeo
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

/// Errors ending a connection, mapped in one place to what the PostgreSQL client sees.
public struct ProxyFailure: Error, Sendable, CustomStringConvertible {
    public var sqlState: String
    public var message: String
    public var hint: String?
    /// Recorded in the audit log; may say more than the client sees.
    public var auditReason: String

    public init(sqlState: String, message: String, hint: String? = nil, auditReason: String? = nil) {
        self.sqlState = sqlState
        self.message = message
        self.hint = hint
        self.auditReason = auditReason ?? message
    }

    public var description: String { message }

    /// SQLSTATEs used by the gateway.
    public enum Code {
        public static let invalidAuthorization = "28000"
        public static let invalidPassword = "28P01"
        public static let unknownDatabase = "3D000"
        public static let cannotConnect = "08001"
        public static let connectionFailure = "08006"
        public static let protocolViolation = "08P01"
        public static let adminShutdown = "57P01"
        public static let insufficientPrivilege = "42501"
        public static let internalError = "XX000"
    }
}
