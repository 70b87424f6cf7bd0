import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehouseMCP
import GatehouseSessions
import GatehouseStore
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Prometheus

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
    public var stepUp: StepUpService?
    public var grants: GrantService?
    /// The policy in force (it may be reloaded while the gateway runs); the configuration's when nil.
    public var guardrails: Guardrails?
    /// Where `/metrics` reads from; the route answers 404 without one.
    public var metrics: PrometheusCollectorRegistry?
    /// The MCP server at `/mcp`; absent, the route is not served.
    public var mcp: MCPGateway?
    public var logger: Logger

    public init(
        config: GatehouseConfig, tokens: TokenService, identities: IdentityService, store: any GatehouseStore,
        registry: SessionRegistry, stepUp: StepUpService? = nil, grants: GrantService? = nil,
        guardrails: Guardrails? = nil, metrics: PrometheusCollectorRegistry? = nil, logger: Logger
    ) {
        self.stepUp = stepUp
        self.grants = grants
        self.guardrails = guardrails
        self.metrics = metrics
        self.config = config
        self.tokens = tokens
        self.identities = identities
        self.store = store
        self.registry = registry
        self.logger = logger
    }
}

/// The `/api/v1` routes. Every route but login, health and the OpenAPI document needs a login token
/// as a bearer token; the web console (`/console`) sits beside them on the same router.
public struct APIRoutes: Sendable {
    let environment: APIEnvironment
    /// Password and code guesses: 10 at once and 10 a minute per address; 5 and 5 per account from one
    /// address; 30 and 30 per account from everywhere.
    let loginThrottle = Throttle(what: "sign-in", perSource: (10, 10), perUser: (5, 5), perAccount: (30, 30))
    let codeThrottle = Throttle(what: "code", perSource: (20, 20), perUser: (10, 10), perAccount: (30, 30))
    /// The last walk of the audit chain, for the console to resume from.
    let chainMonitor = NIOLockedValueBox<AuditChain.Verifier?>(nil)

    public init(environment: APIEnvironment) {
        self.environment = environment
    }

    /// The API, the console, `/metrics`, and security headers on every answer.
    public func buildRouter() -> Router<GatehouseRequestContext> {
        let router = Router(context: GatehouseRequestContext.self)
        router.add(middleware: SecurityHeadersMiddleware())
        addAPIRoutes(to: router)
        router.get("metrics", use: metrics)
        if let mcp = environment.mcp { MCPRoutes(gateway: mcp).add(to: router) }
        ConsoleRoutes(api: self).add(to: router)
        return router
    }

    func addAPIRoutes(to router: Router<GatehouseRequestContext>) {
        let api = router.group("api/v1")
        api.get("openapi.yaml", use: openAPIYAML)
        api.get("openapi.json", use: openAPIJSON)
        api.get("users", use: users)
        api.get("groups", use: groups)
        api.get("service-accounts", use: serviceAccounts)
        api.get("connections", use: connections)
        api.get("policy", use: policy)
        api.post("policy/test", use: testPolicy)
        api.get("roles", use: roles)
        api.get("grants", use: listGrants)
        api.get("audit/export", use: exportAudit)
        api.get("health") { _, _ in
            API.Health(status: "ok", sessions: environment.registry.count)
        }
        api.post("login", use: login)
        api.post("logout", use: logout)
        api.get("me", use: me)
        api.post("tokens", use: issueToken)
        api.post("tokens/revoke", use: revoke)
        api.post("tokens/service", use: issueServiceToken)
        api.get("sessions", use: sessions)
        api.delete("sessions/:id", use: terminateSession)
        api.get("audit", use: audit)
        api.get("audit/verify", use: verifyAudit)
        api.put("users/:name/password", use: setPassword)
        api.post("mfa/enroll", use: enroll)
        api.post("mfa/confirm", use: confirmEnrolment)
        api.get("challenges", use: challenges)
        api.post("requests", use: submitRequest)
        api.get("requests", use: listRequests)
        api.post("requests/:id/approve") { request, context in try await self.decideRequest(request, context, action: "approve") }
        api.post("requests/:id/deny") { request, context in try await self.decideRequest(request, context, action: "deny") }
        api.post("requests/:id/revoke") { request, context in try await self.decideRequest(request, context, action: "revoke") }
        api.post("challenges/:id/verify", use: verifyChallenge)
        api.post("challenges/:id/approve") { request, context in try await self.decideChallenge(request, context, approve: true) }
        api.post("challenges/:id/deny") { request, context in try await self.decideChallenge(request, context, approve: false) }
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
        return try await authenticate(token: String(header.dropFirst("bearer ".count)))
    }

    /// The caller behind a login token (bearer or console cookie), still active now.
    func authenticate(token: String) async throws -> Caller {
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

    func requireSeesAll(_ caller: Caller) throws {
        guard caller.user.seesAll else {
            throw APIError(.forbidden, "this needs membership of the \(Group.admins) or \(Group.auditors) group")
        }
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
        let (token, claims) = try await signIn(body, source: Self.source(context), via: "api")
        return Self.tokenResponse(token, claims)
    }

    /// Password, then the second factor when the user has one; every failure is audited and throttled.
    func signIn(_ body: API.LoginRequest, source: String?, via channel: String) async throws -> (String, TokenClaims) {
        // No account's name has control characters: such a name is refused before it reaches anything.
        guard !body.user.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw APIError(.badRequest, "user names cannot contain control characters")
        }
        try loginThrottle.check(source: source, user: body.user, at: environment.identities.now())
        let user: User
        do {
            user = try await environment.identities.login(user: body.user, password: body.password)
        } catch let error as LoginError {
            try await audit(
                AuditRecord(
                    .loginFailure, actor: body.user, source: source, detail: ["reason": error.auditReason, "via": channel]))
            throw APIError(.loginFailed, error.description)
        }
        var methods = ["pwd"]
        if let stepUp = environment.stepUp, try await stepUp.isEnrolled(user: user.name) {
            // A missing, wrong, used or locked code answers as a wrong password does: only the audit
            // log says that the password was right.
            guard let code = body.code, !code.isEmpty else {
                try await audit(
                    AuditRecord(
                        .loginFailure, actor: user.name, source: source,
                        detail: ["reason": "password right, second factor not given", "via": channel]))
                throw APIError(.loginFailed, LoginError.refused)
            }
            do {
                try await stepUp.verifyCode(user: user.name, code: code)
            } catch let error as ChallengeError {
                try await audit(
                    AuditRecord(
                        .loginFailure, actor: body.user, source: source,
                        detail: ["reason": "password right; \(error.description)", "via": channel]))
                throw APIError(.loginFailed, LoginError.refused)
            }
            methods.append("otp")
        }
        let (token, claims) = try await environment.tokens.issue(
            for: user, kind: .login, ttl: environment.config.tokens.loginTTL, methods: methods,
            authenticatedAt: environment.identities.now())
        try await audit(
            AuditRecord(
                .loginSuccess, actor: user.name, source: source,
                detail: ["token_id": claims.jti, "expires_at": Timestamp.format(claims.expiresAt), "via": channel]))
        return (token, claims)
    }

    @Sendable func logout(_ request: Request, context: GatehouseRequestContext) async throws -> API.Done {
        let caller = try await authenticate(request)
        try await environment.tokens.revoke(tokenID: caller.claims.jti, expiresAt: caller.claims.expiresAt)
        try await audit(
            AuditRecord(
                .tokenRevoked, actor: caller.user.name, source: Self.source(context),
                detail: ["token_id": caller.claims.jti, "kind": "login"]))
        return API.Done(ok: true)
    }

    @Sendable func me(_ request: Request, context: GatehouseRequestContext) async throws -> API.Me {
        let caller = try await authenticate(request)
        return API.Me(
            user: caller.user.name, groups: caller.user.groups, login_expires_at: Timestamp.format(caller.claims.expiresAt))
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
                throw APIError(
                    .badRequest, "ttl may be at most \(DurationText.format(environment.config.tokens.maxAccessTokenTTL))")
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

    /// An administrator issues a service account's API token (a login token with a long lifetime).
    @Sendable func issueServiceToken(_ request: Request, context: GatehouseRequestContext) async throws -> API.TokenResponse {
        let caller = try await authenticate(request)
        guard caller.user.isAdmin else { throw APIError(.forbidden, "only admins issue service account tokens") }
        let body = try await decode(API.ServiceTokenRequest.self, request, context)
        guard let ttl = DurationText.parse(body.ttl), ttl > 0 else {
            throw APIError(.badRequest, "ttl must be a duration such as 30d, not '\(body.ttl)'")
        }
        guard ttl <= environment.config.tokens.maxServiceTokenTTL else {
            throw APIError(
                .badRequest, "a service token lasts at most \(DurationText.format(environment.config.tokens.maxServiceTokenTTL))")
        }
        guard try await environment.identities.isServiceAccount(body.user) else {
            throw APIError(.notFound, "\(body.user) is not a service account (declare it under service_accounts)")
        }
        let account: User
        switch try await environment.identities.activeUser(named: body.user) {
        case .success(let user): account = user
        case .failure(let error): throw APIError(.forbidden, error.description)
        }
        let (token, claims) = try await environment.tokens.issue(
            for: account, kind: .login, ttl: ttl, methods: ["svc"], authenticatedAt: environment.identities.now())
        try await audit(
            AuditRecord(
                .tokenIssued, actor: caller.user.name, source: Self.source(context),
                detail: [
                    "token_id": claims.jti, "kind": "service", "user": account.name,
                    "expires_at": Timestamp.format(claims.expiresAt),
                ]))
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
            try await endSessions(
                signedInWith: .token(id: claims.jti), actor: caller.user.name, source: Self.source(context),
                reason: "the token \(claims.jti) was revoked by \(caller.user.name)")
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
                AuditRecord(
                    .tokenRevoked, actor: caller.user.name, source: Self.source(context), detail: ["owner": user, "scope": "all"])
            )
            try await endSessions(
                signedInWith: .allOf(user: user), actor: caller.user.name, source: Self.source(context),
                reason: "the tokens of \(user) were revoked by \(caller.user.name)")
            return API.RevokeResponse(revoked: "every token of \(user) issued until now")
        default:
            throw APIError(.badRequest, "give either token or user")
        }
    }

    @Sendable func sessions(_ request: Request, context: GatehouseRequestContext) async throws -> API.Sessions {
        let caller = try await authenticate(request)
        return API.Sessions(sessions: visibleSessions(caller).map(API.Session.init))
    }

    @Sendable func terminateSession(_ request: Request, context: GatehouseRequestContext) async throws -> API.TerminateResponse {
        let caller = try await authenticate(request)
        let id = try context.parameters.require("id")
        let revoke = request.uri.queryParameters.get("revoke_tokens")
        guard [nil, "true", "false"].contains(revoke) else {
            throw APIError(.badRequest, "revoke_tokens must be true or false, not '\(revoke ?? "")'")
        }
        try await terminate(
            id, by: caller, reason: request.uri.queryParameters.get("reason"), revokeTokens: revoke == "true",
            source: Self.source(context))
        return API.TerminateResponse(terminated: id)
    }

    @Sendable func audit(_ request: Request, context: GatehouseRequestContext) async throws -> API.AuditPage {
        let caller = try await authenticate(request)
        let parameters = request.uri.queryParameters
        var query = try Self.auditQuery(parameters, defaultLimit: 100)
        // Without `after` or `order`: the latest events, oldest first (what `gatehouse audit tail` shows).
        let latest = query.afterSeq == nil && (parameters.get("order") ?? "").isEmpty
        if latest { query.newestFirst = true }
        var events = try await auditEvents(query, for: caller)
        if latest { events.reverse() }
        let next = query.newestFirst && !latest ? events.first?.seq : events.last?.seq
        return API.AuditPage(events: events, next_after: next ?? query.afterSeq ?? 0)
    }

    @Sendable func verifyAudit(_ request: Request, context: GatehouseRequestContext) async throws -> API.AuditVerification {
        let caller = try await authenticate(request)
        try requireSeesAll(caller)
        return API.AuditVerification(try await verifyChain())
    }

    @Sendable func setPassword(_ request: Request, context: GatehouseRequestContext) async throws -> API.Done {
        let caller = try await authenticate(request)
        let name = try context.parameters.require("name")
        guard caller.user.isAdmin || caller.user.name == name else {
            throw APIError(.forbidden, "only admins may set another user's password")
        }
        let body = try await decode(API.PasswordRequest.self, request, context)
        guard body.password.count >= 12 else { throw APIError(.badRequest, "a password needs at least 12 characters") }
        if caller.user.name == name, try await environment.store.user(named: name)?.passwordHash != nil {
            guard let current = body.current_password, !current.isEmpty else {
                throw APIError(.badRequest, "give your current password (current_password) to change it")
            }
            try await checkPassword(current, of: name, via: "password change", context, wrong: "the current password is wrong")
        } else if caller.user.name == name && !caller.user.isAdmin {
            // An account signed in with a token only (a service account) has no password to prove who
            // holds the token: a first password from its token would outlive every revocation of it.
            throw APIError(.forbidden, "\(name) has no password: only an admin sets a first password")
        }
        guard try await environment.identities.setPassword(body.password, forUser: name) else {
            throw APIError(.notFound, "user \(name) does not exist")
        }
        // Sessions signed in with the old password end with it: every token issued until now is revoked.
        try await environment.tokens.revokeAll(ofUser: name)
        try await audit(
            AuditRecord(
                .passwordSet, actor: caller.user.name, source: Self.source(context),
                detail: ["user": name, "tokens_revoked": "all"]))
        try await endSessions(
            signedInWith: .allOf(user: name), actor: caller.user.name, source: Self.source(context),
            reason: "the password of \(name) was changed")
        return API.Done(ok: true)
    }

    // MARK: Helpers

    // MARK: Second factors and held statements

    func requireStepUp() throws -> StepUpService {
        guard let stepUp = environment.stepUp else { throw APIError(.notFound, "step-up is not enabled on this gateway") }
        return stepUp
    }

    @Sendable func enroll(_ request: Request, context: GatehouseRequestContext) async throws -> API.Enrolment {
        let caller = try await authenticate(request)
        let stepUp = try requireStepUp()
        let body = try await decodeOptional(API.EnrolRequest.self, request, context) ?? API.EnrolRequest()
        let user = body.user ?? caller.user.name
        let proof: StepUpService.EnrolmentProof
        if user != caller.user.name {
            guard caller.user.isAdmin else { throw APIError(.forbidden, "only admins enrol a second factor for another user") }
            guard try await environment.store.user(named: user) != nil else {
                throw APIError(.notFound, "user \(user) does not exist")
            }
            proof = .admin(caller.user.name)
        } else if try await stepUp.isEnrolled(user: user) {
            guard let code = body.code, !code.isEmpty else {
                throw APIError(.secondFactorRequired, "\(user) already has a second factor: give a code from it to replace it")
            }
            try codeThrottle.check(source: Self.source(context), user: user, at: environment.identities.now())
            proof = .currentCode(code)
        } else {
            guard try await environment.store.user(named: user)?.passwordHash != nil else {
                throw APIError(
                    .forbidden,
                    "\(user) has no password to confirm it is you: an admin enrols your first second factor "
                        + "(`gatehouse mfa enroll --user \(user)`)")
            }
            guard let password = body.password, !password.isEmpty else {
                throw APIError(.passwordRequired, "give your password (password) to enrol a first second factor")
            }
            try await checkPassword(password, of: user, via: "mfa enrolment", context)
            proof = .password
        }
        let enrolment = try await stepUp.enroll(user: user, proof: proof)
        return API.Enrolment(uri: enrolment.uri, secret: enrolment.secret)
    }

    /// Checks the caller's own password again (throttled like a login; a wrong one is a login failure
    /// in the audit).
    func checkPassword(
        _ password: String, of name: String, via: String, _ context: GatehouseRequestContext,
        wrong: String = "the password is wrong"
    ) async throws {
        try loginThrottle.check(source: Self.source(context), user: name, at: environment.identities.now())
        do {
            _ = try await environment.identities.login(user: name, password: password)
        } catch is LoginError {
            try await audit(
                AuditRecord(
                    .loginFailure, actor: name, source: Self.source(context),
                    detail: ["reason": "wrong current password", "via": via]))
            throw APIError(.loginFailed, wrong)
        }
    }

    @Sendable func confirmEnrolment(_ request: Request, context: GatehouseRequestContext) async throws -> API.Done {
        let caller = try await authenticate(request)
        let body = try await decode(API.CodeRequest.self, request, context)
        guard let code = body.code else { throw APIError(.badRequest, "give the code from the authenticator") }
        try await requireStepUp().confirm(user: caller.user.name, code: code)
        return API.Done(ok: true)
    }

    @Sendable func challenges(_ request: Request, context: GatehouseRequestContext) async throws -> API.Challenges {
        let caller = try await authenticate(request)
        let list = try await requireStepUp().challenges(
            for: caller.user.name, groups: caller.user.groups, all: caller.user.seesAll)
        return API.Challenges(challenges: list.map(API.ChallengeView.init))
    }

    @Sendable func verifyChallenge(_ request: Request, context: GatehouseRequestContext) async throws -> API.ChallengeView {
        let caller = try await authenticate(request)
        let id = try context.parameters.require("id")
        let body = try await decode(API.CodeRequest.self, request, context)
        guard let code = body.code else { throw APIError(.badRequest, "give the code from the authenticator") }
        return API.ChallengeView(try await verifyChallenge(id, by: caller, code: code, source: Self.source(context)))
    }

    func decideChallenge(_ request: Request, _ context: GatehouseRequestContext, approve: Bool) async throws -> API.ChallengeView
    {
        let caller = try await authenticate(request)
        let id = try context.parameters.require("id")
        let code = approve ? try await decodeOptional(API.CodeRequest.self, request, context)?.code : nil
        let reason = approve ? nil : try await decodeOptional(API.DenyRequest.self, request, context)?.reason
        return API.ChallengeView(
            try await decideChallenge(id, approve: approve, by: caller, code: code, reason: reason, source: Self.source(context)))
    }

    // MARK: Just-in-time grants

    func requireGrants() throws -> GrantService {
        guard let grants = environment.grants else { throw APIError(.notFound, "no requestable roles are configured") }
        return grants
    }

    @Sendable func submitRequest(_ request: Request, context: GatehouseRequestContext) async throws -> API.AccessRequestView {
        let caller = try await authenticate(request)
        let body = try await decode(API.AccessRequestBody.self, request, context)
        return API.AccessRequestView(try await submitAccessRequest(body, by: caller), now: environment.identities.now())
    }

    @Sendable func listRequests(_ request: Request, context: GatehouseRequestContext) async throws -> API.AccessRequests {
        let caller = try await authenticate(request)
        let list = try await requireGrants().requests(
            for: caller.user.name, groups: caller.user.groups, isAdmin: caller.user.seesAll)
        let now = environment.identities.now()
        return API.AccessRequests(requests: list.map { API.AccessRequestView($0, now: now) })
    }

    func decideRequest(
        _ request: Request, _ context: GatehouseRequestContext, action: String
    ) async throws -> API.AccessRequestView {
        let caller = try await authenticate(request)
        let id = try context.parameters.require("id")
        let code = action == "approve" ? try await decodeOptional(API.CodeRequest.self, request, context)?.code : nil
        let reason = action == "deny" ? try await decodeOptional(API.DenyRequest.self, request, context)?.reason : nil
        let result = try await decideAccessRequest(id, action: action, by: caller, code: code, reason: reason)
        return API.AccessRequestView(result, now: environment.identities.now())
    }

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

    /// A body that may be left out: absent or empty means nil (chunked bodies included).
    func decodeOptional<T: Decodable>(_ type: T.Type, _ request: Request, _ context: GatehouseRequestContext) async throws -> T? {
        var request = request
        let buffer = try await request.collectBody(upTo: 1 << 20)
        guard buffer.readableBytes > 0 else { return nil }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch {
            throw APIError(.badRequest, "the request body is not the JSON this route expects")
        }
    }
}
