import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehousePolicy
import GatehouseSessions
import GatehouseStore
import Hummingbird
import SQLInspection

/// What the API and the console both do, given an authenticated caller: authorization, the change,
/// its audit event. The JSON routes and the console's forms are thin around these.
extension APIRoutes {
    // MARK: Sessions

    /// Everyone sees their own sessions; admins and auditors see all.
    func visibleSessions(_ caller: Caller) -> [SessionInfo] {
        let all = environment.registry.list()
        return caller.user.seesAll ? all : all.filter { $0.user == caller.user.name }
    }

    /// Ends a live session (the owner or an admin); audited before the session is cut.
    func terminate(_ id: String, by caller: Caller, reason: String?, revokeTokens: Bool = false, source: String?) async throws {
        guard let session = environment.registry.session(id: id) else {
            throw APIError(.notFound, "no live session \(id)")
        }
        guard caller.user.isAdmin || session.user == caller.user.name else {
            throw APIError(.forbidden, "only admins may terminate another user's session")
        }
        if revokeTokens && !caller.user.isAdmin {
            throw APIError(.forbidden, "only admins may revoke another user's tokens with a termination")
        }
        let given = (reason?.isEmpty == false ? reason : nil) ?? "terminated by \(caller.user.name)"
        // The client reads whether it may come back.
        let reason =
            revokeTokens
            ? "\(given); your tokens were revoked: sign in again with `gatehouse login` before reconnecting"
            : "\(given); you may reconnect"
        if revokeTokens { try await environment.tokens.revokeAll(ofUser: session.user) }
        try await audit(
            AuditRecord(
                .sessionTerminated, actor: caller.user.name, session: id, connection: session.connection, source: source,
                detail: ["reason": given, "owner": session.user, "tokens_revoked": revokeTokens ? "true" : "false"]))
        environment.registry.terminate(id: id, reason: reason)
        if revokeTokens {
            // The person's other sessions end too: with the tokens gone, none of them may go on.
            try await endSessions(
                signedInWith: .allOf(user: session.user), except: id, actor: caller.user.name, source: source,
                reason: "the tokens of \(session.user) were revoked by \(caller.user.name)")
        }
    }

    /// Ends every live session that signed in with tokens just revoked, each audited before it is cut:
    /// a revoked token runs nothing more. A session that registers after this call reads the
    /// revocation itself.
    func endSessions(
        signedInWith revoked: SessionRegistry.RevokedTokens, except: String? = nil, actor: String, source: String?,
        reason: String
    ) async throws {
        let fatal = "\(reason): sign in again with `gatehouse login` before reconnecting"
        var audited = Set(except.map { [$0] } ?? [])
        func record(_ session: SessionInfo) async throws {
            try await audit(
                AuditRecord(
                    .sessionTerminated, actor: actor, session: session.id, connection: session.connection, source: source,
                    detail: ["reason": reason, "owner": session.user, "tokens_revoked": "true"]))
            audited.insert(session.id)
        }
        for session in environment.registry.sessions(signedInWith: revoked) where !audited.contains(session.id) {
            try await record(session)
        }
        for session in environment.registry.terminateSessions(signedInWith: revoked, reason: fatal)
        where !audited.contains(session.id) {
            try await record(session)
        }
    }

    // MARK: Audit

    /// Reads `type`, `actor`, `session`, `connection`, `since`, `until`, `after`, `before`, `limit` and
    /// `order` (`asc`, `desc`; oldest first by default).
    static func auditQuery(_ parameters: Parameters, defaultLimit: Int) throws -> AuditQuery {
        func time(_ name: String) throws -> Date? {
            guard let text = parameters.get(name), !text.isEmpty else { return nil }
            guard let date = Timestamp.parse(text) else {
                throw APIError(.badRequest, "\(name) must be a date or an RFC 3339 time, not '\(text)'")
            }
            return date
        }
        func sequence(_ name: String) throws -> Int64? {
            guard let text = parameters.get(name), !text.isEmpty else { return nil }
            guard let value = Int64(text), value >= 0 else { throw APIError(.badRequest, "\(name) must be a sequence number") }
            return value
        }
        var query = AuditQuery(
            type: parameters.get("type"), actor: parameters.get("actor"), session: parameters.get("session"),
            connection: parameters.get("connection"), since: try time("since"), until: try time("until"),
            afterSeq: try sequence("after"), beforeSeq: try sequence("before"))
        if let text = parameters.get("limit"), !text.isEmpty {
            guard let limit = Int(text), limit > 0 else { throw APIError(.badRequest, "limit must be a positive number") }
            query.limit = min(limit, 10_000)
        } else {
            query.limit = defaultLimit
        }
        switch parameters.get("order") {
        case nil, "", "asc": query.newestFirst = false
        case "desc": query.newestFirst = true
        case let other?: throw APIError(.badRequest, "order must be asc or desc, not '\(other)'")
        }
        return query
    }

    /// Admins and auditors read the whole trail; anyone else reads the events they caused.
    func auditEvents(_ query: AuditQuery, for caller: Caller) async throws -> [AuditEvent] {
        var query = query
        if !caller.user.seesAll {
            if let actor = query.actor, !actor.isEmpty, actor != caller.user.name {
                throw APIError(.forbidden, "only admins and auditors read other users' events")
            }
            query.actor = caller.user.name
        }
        return try await environment.store.queryAudit(query)
    }

    /// Walks the whole chain; with `resume`, only the events after the last walk (the console's live
    /// refresh: re-hashing the whole log every two seconds per open page would be wasteful).
    func verifyChain(resume: Bool = false) async throws -> AuditChainReport {
        var verifier = (resume ? chainMonitor.withLockedValue { $0 } : nil) ?? AuditChain.Verifier()
        var after: Int64 = verifier.report.lastSeq ?? 0
        defer { chainMonitor.withLockedValue { $0 = verifier } }
        while true {
            let page = try await environment.store.auditEvents(afterSeq: after, limit: 5000)
            guard let last = page.last else { break }
            for event in page { verifier.add(event) }
            after = last.seq
        }
        return verifier.report
    }

    // MARK: Challenges

    func verifyChallenge(_ id: String, by caller: Caller, code: String, source: String?) async throws -> Challenge {
        try codeThrottle.check(source: source, user: caller.user.name, at: environment.identities.now())
        return try await requireStepUp().verify(id: id, user: caller.user.name, code: code)
    }

    func decideChallenge(
        _ id: String, approve: Bool, by caller: Caller, code: String?, reason: String?, source: String?
    ) async throws -> Challenge {
        if code != nil { try codeThrottle.check(source: source, user: caller.user.name, at: environment.identities.now()) }
        return try await requireStepUp().decide(
            id: id, approve: approve, approver: caller.user.name, groups: caller.user.groups, reason: reason, code: code)
    }

    // MARK: Access requests

    func submitAccessRequest(_ body: API.AccessRequestBody, by caller: Caller) async throws -> AccessRequest {
        guard let duration = DurationText.parse(body.duration), duration > 0 else {
            throw APIError(.badRequest, "duration must be such as 30m or 1h, not '\(body.duration)'")
        }
        var startAt: Date?
        if let text = body.start_at, !text.isEmpty {
            guard let date = Timestamp.parse(text) else { throw APIError(.badRequest, "start_at must be an RFC 3339 time") }
            startAt = date
        }
        let grants = try requireGrants()
        let connection = body.connection?.isEmpty == true ? nil : body.connection
        if body.break_glass == true {
            guard let code = body.code, !code.isEmpty else {
                throw APIError(.secondFactorRequired, "break-glass needs your code: give --code")
            }
            return try await grants.breakGlass(
                requester: caller.user, role: body.role, connection: connection, duration: duration,
                reason: body.reason ?? "", code: code)
        }
        return try await grants.submit(
            requester: caller.user, role: body.role, connection: connection, duration: duration,
            reason: body.reason ?? "", startAt: startAt)
    }

    func decideAccessRequest(
        _ id: String, action: String, by caller: Caller, code: String?, reason: String?
    ) async throws -> AccessRequest {
        let grants = try requireGrants()
        switch action {
        case "approve": return try await grants.approve(id, by: caller.user, code: code)
        case "deny": return try await grants.deny(id, by: caller.user, reason: reason)
        default: return try await grants.revoke(id, by: caller.user)
        }
    }

    /// Live grants: the caller's own, or all of them for admins and auditors; soonest to end first.
    func activeGrants(for caller: Caller) async throws -> [AccessRequest] {
        guard let grants = environment.grants else { return [] }
        let now = environment.identities.now()
        return await grants.requests(for: caller.user.name, groups: caller.user.groups, isAdmin: caller.user.seesAll)
            .filter { $0.isActive(at: now) && (caller.user.seesAll || $0.requester == caller.user.name) }
            .sorted { ($0.expiresAt ?? now) < ($1.expiresAt ?? now) }
    }

    /// Roles the caller may request (all of them for admins and auditors, to read).
    func requestableRoles(for caller: Caller) async -> [RequestableRole] {
        guard let grants = environment.grants else { return [] }
        let roles = await grants.roles
        if caller.user.seesAll { return roles }
        return roles.filter { role in role.requesters.contains(where: caller.user.groups.contains) }
    }

    // MARK: Policy

    var currentPolicy: Policy { environment.guardrails?.policy ?? environment.config.policy }

    /// The dry run: what the gateway would decide for `body.sql`. People test as themselves; admins
    /// and auditors may test as anyone declared.
    func testPolicy(_ body: API.PolicyTestRequest, by caller: Caller) async throws -> API.PolicyTestResult {
        let name = body.user?.isEmpty == false ? body.user! : caller.user.name
        guard name == caller.user.name || caller.user.seesAll else {
            throw APIError(.forbidden, "only admins and auditors test statements as another user")
        }
        guard let stored = try await environment.store.user(named: name) else {
            throw APIError(.notFound, "user \(name) does not exist")
        }
        guard environment.config.connections.isEmpty || environment.config.connection(named: body.connection) != nil else {
            throw APIError(.notFound, "connection \(body.connection) is not configured")
        }
        guard body.sql.utf8.count <= 1 << 20 else { throw APIError(.badRequest, "the statement is over 1 MiB") }
        var now = environment.identities.now()
        if let at = body.at, !at.isEmpty {
            guard let date = Timestamp.parse(at) else { throw APIError(.badRequest, "at must be an RFC 3339 time") }
            now = date
        }
        let context = SessionContext.dryRun(
            user: name, groups: stored.user.groups, connection: body.connection, sourceAddress: body.source ?? "127.0.0.1",
            country: body.country?.uppercased(), applicationName: body.application ?? "psql", roles: body.roles ?? [],
            newDevice: body.new_device ?? false, at: now)
        let inspection = Inspector.inspect(body.sql)
        let decision = currentPolicy.evaluate(inspection, in: context)
        return API.PolicyTestResult(
            user: name, connection: body.connection, decision: decision, inspection: inspection,
            summaries: inspection.statements.map(\.summary))
    }
}
