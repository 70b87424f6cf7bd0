import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehouseProxy
import GatehouseStore
import Hummingbird
import Logging
import NIOCore

/// Request context that remembers the caller's address for the audit log.
public struct GatehouseRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}

/// What the HTTP API works with; the same objects the proxy uses.
public struct APIEnvironment: Sendable {
    public var config: GatehouseConfig
    public var tokens: TokenService
    public var identities: IdentityService
    public var store: any GatehouseStore
    public var registry: SessionRegistry
    public var logger: Logger

    public init(
        config: GatehouseConfig, tokens: TokenService, identities: IdentityService, store: any GatehouseStore,
        registry: SessionRegistry, logger: Logger
    ) {
        self.config = config
        self.tokens = tokens
        self.identities = identities
        self.store = store
        self.registry = registry
        self.logger = logger
    }
}

/// The `/api/v1` routes. Every route but login and health needs a login token as a bearer token.
public struct APIRoutes: Sendable {
    let environment: APIEnvironment

    public init(environment: APIEnvironment) {
        self.environment = environment
    }

    public func buildRouter() -> Router<GatehouseRequestContext> {
        let router = Router(context: GatehouseRequestContext.self)
        let api = router.group("api/v1")
        api.get("health") { _, _ in
            API.Health(status: "ok", sessions: environment.registry.count)
        }
        api.post("login", use: login)
        api.post("logout", use: logout)
        api.get("me", use: me)
        api.post("tokens", use: issueToken)
        api.post("tokens/revoke", use: revoke)
        api.get("sessions", use: sessions)
        api.delete("sessions/:id", use: terminateSession)
        api.get("audit", use: audit)
        api.get("audit/verify", use: verifyAudit)
        api.put("users/:name/password", use: setPassword)
        return router
    }

    // MARK: Authentication

    struct Caller {
        var user: User
        var claims: TokenClaims
    }

    func authenticate(_ request: Request) async throws -> Caller {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            throw APIError(.unauthenticated, "missing bearer token: run `gatehouse login`")
        }
        let token = String(header.dropFirst("bearer ".count))
        let claims: TokenClaims
        do {
            claims = try await environment.tokens.verify(token, kind: .login)
        } catch let error as TokenError {
            throw APIError(.unauthenticated, error.description)
        }
        switch try await environment.identities.activeUser(named: claims.sub) {
        case .success(let user): return Caller(user: user, claims: claims)
        case .failure(let error): throw APIError(.unauthenticated, error.description)
        }
    }

    func requireAdmin(_ caller: Caller) throws {
        guard caller.user.isAdmin else { throw APIError(.forbidden, "this needs membership of the \(Group.admins) group") }
    }

    func audit(_ record: AuditRecord) async throws {
        do { _ = try await environment.store.appendAudit(record) } catch {
            environment.logger.error("cannot write the audit log", metadata: ["error": "\(error)"])
            throw APIError(.internalError, "the gateway cannot write its audit log; nothing was done")
        }
    }

    static func source(_ context: GatehouseRequestContext) -> String? {
        (context.remoteAddress?.ipAddress)
    }

    // MARK: Routes

    @Sendable func login(_ request: Request, context: GatehouseRequestContext) async throws -> API.TokenResponse {
        let body = try await decode(API.LoginRequest.self, request, context)
        let user: User
        do {
            user = try await environment.identities.login(user: body.user, password: body.password)
        } catch let error as LoginError {
            try await audit(
                AuditRecord(.loginFailure, actor: body.user, source: Self.source(context), detail: ["reason": error.auditReason]))
            throw APIError(.loginFailed, error.description)
        }
        let (token, claims) = try await environment.tokens.issue(for: user, kind: .login, ttl: environment.config.tokens.loginTTL)
        try await audit(
            AuditRecord(
                .loginSuccess, actor: user.name, source: Self.source(context),
                detail: ["token_id": claims.jti, "expires_at": Timestamp.format(claims.expiresAt)]))
        return Self.tokenResponse(token, claims)
    }

    @Sendable func logout(_ request: Request, context: GatehouseRequestContext) async throws -> API.Done {
        let caller = try await authenticate(request)
        try await environment.tokens.revoke(tokenID: caller.claims.jti, expiresAt: caller.claims.expiresAt)
        try await audit(
            AuditRecord(.tokenRevoked, actor: caller.user.name, source: Self.source(context), detail: ["token_id": caller.claims.jti, "kind": "login"]))
        return API.Done(ok: true)
    }

    @Sendable func me(_ request: Request, context: GatehouseRequestContext) async throws -> API.Me {
        let caller = try await authenticate(request)
        return API.Me(user: caller.user.name, groups: caller.user.groups, login_expires_at: Timestamp.format(caller.claims.expiresAt))
    }

    @Sendable func issueToken(_ request: Request, context: GatehouseRequestContext) async throws -> API.TokenResponse {
        let caller = try await authenticate(request)
        let body = try await decodeOptional(API.TokenRequest.self, request, context) ?? API.TokenRequest(ttl: nil)
        var ttl = environment.config.tokens.accessTokenTTL
        if let text = body.ttl {
            guard let value = DurationText.parse(text) else {
                throw APIError(.badRequest, "ttl must be a duration such as 15m or 1h, not '\(text)'")
            }
            guard value <= environment.config.tokens.maxAccessTokenTTL else {
                throw APIError(.badRequest, "ttl may be at most \(DurationText.format(environment.config.tokens.maxAccessTokenTTL))")
            }
            ttl = value
        }
        // An access token never outlives the login it came from.
        ttl = min(ttl, caller.claims.expiresAt.timeIntervalSince(environment.identities.now()))
        let (token, claims) = try await environment.tokens.issue(for: caller.user, kind: .access, ttl: ttl)
        try await audit(
            AuditRecord(
                .tokenIssued, actor: caller.user.name, source: Self.source(context),
                detail: ["token_id": claims.jti, "kind": "access", "expires_at": Timestamp.format(claims.expiresAt)]))
        return Self.tokenResponse(token, claims)
    }

    @Sendable func revoke(_ request: Request, context: GatehouseRequestContext) async throws -> API.RevokeResponse {
        let caller = try await authenticate(request)
        let body = try await decode(API.RevokeRequest.self, request, context)
        switch (body.token, body.user) {
        case (let token?, nil):
            let claims: TokenClaims
            do {
                claims = try await environment.tokens.verify(token, kind: .access)
            } catch let error as TokenError where error.code == .wrongKind {
                claims = try await environment.tokens.verify(token, kind: .login)
            } catch let error as TokenError {
                throw APIError(.badRequest, "cannot revoke: \(error.description)")
            }
            guard claims.sub == caller.user.name || caller.user.isAdmin else {
                throw APIError(.forbidden, "only admins may revoke another user's token")
            }
            try await environment.tokens.revoke(tokenID: claims.jti, expiresAt: claims.expiresAt)
            try await audit(
                AuditRecord(
                    .tokenRevoked, actor: caller.user.name, source: Self.source(context),
                    detail: ["token_id": claims.jti, "owner": claims.sub, "kind": claims.kind.rawValue]))
            return API.RevokeResponse(revoked: "token \(claims.jti) of \(claims.sub)")
        case (nil, let user?):
            guard user == caller.user.name || caller.user.isAdmin else {
                throw APIError(.forbidden, "only admins may revoke another user's tokens")
            }
            guard try await environment.store.user(named: user) != nil else {
                throw APIError(.notFound, "user \(user) does not exist")
            }
            try await environment.tokens.revokeAll(ofUser: user)
            try await audit(
                AuditRecord(.tokenRevoked, actor: caller.user.name, source: Self.source(context), detail: ["owner": user, "scope": "all"]))
            return API.RevokeResponse(revoked: "every token of \(user) issued until now")
        default:
            throw APIError(.badRequest, "give either token or user")
        }
    }

    @Sendable func sessions(_ request: Request, context: GatehouseRequestContext) async throws -> API.Sessions {
        let caller = try await authenticate(request)
        let all = environment.registry.list()
        let visible = caller.user.isAdmin ? all : all.filter { $0.user == caller.user.name }
        return API.Sessions(sessions: visible.map(API.Session.init))
    }

    @Sendable func terminateSession(_ request: Request, context: GatehouseRequestContext) async throws -> API.TerminateResponse {
        let caller = try await authenticate(request)
        let id = try context.parameters.require("id")
        guard let session = environment.registry.session(id: id) else {
            throw APIError(.notFound, "no live session \(id)")
        }
        guard caller.user.isAdmin || session.user == caller.user.name else {
            throw APIError(.forbidden, "only admins may terminate another user's session")
        }
        let reason = request.uri.queryParameters.get("reason") ?? "terminated by \(caller.user.name)"
        try await audit(
            AuditRecord(
                .sessionTerminated, actor: caller.user.name, session: id, connection: session.connection,
                source: Self.source(context), detail: ["reason": reason, "owner": session.user]))
        environment.registry.terminate(id: id, reason: reason)
        return API.TerminateResponse(terminated: id)
    }

    @Sendable func audit(_ request: Request, context: GatehouseRequestContext) async throws -> API.AuditPage {
        let caller = try await authenticate(request)
        try requireAdmin(caller)
        let query = request.uri.queryParameters
        let limit = min(max(query.get("limit", as: Int.self) ?? 100, 1), 10_000)
        let events: [AuditEvent]
        if let after = query.get("after", as: Int64.self) {
            events = try await environment.store.auditEvents(afterSeq: after, limit: limit)
        } else {
            events = try await environment.store.latestAuditEvents(count: limit)
        }
        return API.AuditPage(events: events, next_after: events.last?.seq ?? (query.get("after", as: Int64.self) ?? 0))
    }

    @Sendable func verifyAudit(_ request: Request, context: GatehouseRequestContext) async throws -> API.AuditVerification {
        let caller = try await authenticate(request)
        try requireAdmin(caller)
        var verifier = AuditChain.Verifier()
        var after: Int64 = 0
        while true {
            let page = try await environment.store.auditEvents(afterSeq: after, limit: 5000)
            if page.isEmpty { break }
            for event in page { verifier.add(event) }
            after = page.last!.seq
        }
        return API.AuditVerification(verifier.report)
    }

    @Sendable func setPassword(_ request: Request, context: GatehouseRequestContext) async throws -> API.Done {
        let caller = try await authenticate(request)
        let name = try context.parameters.require("name")
        guard caller.user.isAdmin || caller.user.name == name else {
            throw APIError(.forbidden, "only admins may set another user's password")
        }
        let body = try await decode(API.PasswordRequest.self, request, context)
        guard body.password.count >= 12 else { throw APIError(.badRequest, "a password needs at least 12 characters") }
        guard try await environment.identities.setPassword(body.password, forUser: name) else {
            throw APIError(.notFound, "user \(name) does not exist")
        }
        try await audit(AuditRecord(.passwordSet, actor: caller.user.name, source: Self.source(context), detail: ["user": name]))
        return API.Done(ok: true)
    }

    // MARK: Helpers

    static func tokenResponse(_ token: String, _ claims: TokenClaims) -> API.TokenResponse {
        API.TokenResponse(
            token: token, id: claims.jti, user: claims.sub, groups: claims.groups, expires_at: Timestamp.format(claims.expiresAt))
    }

    func decode<T: Decodable>(_ type: T.Type, _ request: Request, _ context: GatehouseRequestContext) async throws -> T {
        do {
            return try await request.decode(as: T.self, context: context)
        } catch {
            throw APIError(.badRequest, "the request body is not the JSON this route expects")
        }
    }

    func decodeOptional<T: Decodable>(_ type: T.Type, _ request: Request, _ context: GatehouseRequestContext) async throws -> T? {
        guard let length = request.headers[.contentLength].flatMap(Int.init), length > 0 else { return nil }
        return try await decode(type, request, context)
    }
}
