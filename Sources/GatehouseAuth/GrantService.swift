import Foundation
import GatehouseCore
import GatehouseStore
import GatehouseTelemetry
import Logging
import NIOConcurrencyHelpers

/// Just-in-time grants: requests, approvals, activation, expiry and revocation, kept in the store so
/// they survive a restart. When a grant ends, `onGrantEnded` is told, so every session that used it
/// can be terminated; when one is approved, `onGrantStarted` is awaited before the approval returns, so
/// what the grant gives in the database is in place by the time the requester hears of it.
public actor GrantService {
    private let store: any GatehouseStore
    private let stepUp: StepUpService?
    private let logger: Logger
    public nonisolated let now: @Sendable () -> Date
    private var book: GrantBook
    /// Active grants by user, for the proxy to read synchronously on every statement.
    private nonisolated let active = NIOLockedValueBox<[String: [AccessRequest]]>([:])
    private var onGrantEnded: @Sendable (AccessRequest, String) -> Void = { _, _ in }
    private var onGrantStarted: @Sendable (AccessRequest) async -> Void = { _ in }
    private var checkedUpTo: Date

    public init(
        roles: [RequestableRole], store: any GatehouseStore, stepUp: StepUpService?, logger: Logger,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.book = GrantBook(roles: roles)
        self.store = store
        self.stepUp = stepUp
        self.logger = logger
        self.now = now
        self.checkedUpTo = now()
    }

    /// Loads requests and grants from the store; `GrantExpiry` watches their deadlines from then on.
    public func start(
        onGrantEnded: @escaping @Sendable (AccessRequest, String) -> Void,
        onGrantStarted: @escaping @Sendable (AccessRequest) async -> Void = { _ in }
    ) async throws {
        self.onGrantEnded = onGrantEnded
        self.onGrantStarted = onGrantStarted
        book.restore(try await store.accessRequests())
        checkedUpTo = now()
        try await tick()
    }

    public var roles: [RequestableRole] { book.roles.values.sorted { $0.name < $1.name } }

    /// The grants `user` holds now (on `connection` when the grant is scoped), read without waiting.
    public nonisolated func activeGrants(for user: String, on connection: String, at time: Date) -> [AccessRequest] {
        active.withLockedValue { $0[user] ?? [] }.filter { $0.isActive(at: time, on: connection) }
    }

    public func request(_ id: String) -> AccessRequest? { book.request(id) }

    /// Requests `user` may see: their own, those they may approve, everything for admins.
    public func requests(for user: String, groups: [String], isAdmin: Bool) -> [AccessRequest] {
        book.requests.values.filter { request in
            isAdmin || request.requester == user || book.approves(request.role, groups: groups)
        }.sorted { $0.requestedAt > $1.requestedAt }
    }

    /// Pending requests `user` may still approve or deny.
    public func awaitingDecision(by user: String, groups: [String]) -> [AccessRequest] {
        book.awaitingDecision(by: user, groups: groups, at: now())
    }

    public func submit(
        requester: User, role: String, connection: String?, duration: TimeInterval, reason: String, startAt: Date?
    ) async throws -> AccessRequest {
        let request = try book.submit(
            id: "req-" + RandomSecret.hex(6), requester: requester.name, groups: requester.groups, role: role,
            connection: connection, duration: duration, reason: reason, startAt: startAt, at: now())
        try await persist(request, event: .requestCreated)
        if request.state == .approved {
            try await persist(request, event: .grantActivated, detail: ["auto_approved": "true"])
            await onGrantStarted(request)
        }
        return request
    }

    public func breakGlass(
        requester: User, role: String, connection: String?, duration: TimeInterval, reason: String, code: String
    )
        async throws -> AccessRequest
    {
        guard let stepUp else { throw GrantError(.stepUpRequired, "break-glass needs step-up, which is not enabled") }
        do {
            try await stepUp.verifyCode(user: requester.name, code: code)
        } catch let error as ChallengeError {
            throw GrantError(.stepUpRequired, "break-glass needs your second factor: \(error.description)")
        }
        let request = try book.breakGlass(
            id: "req-" + RandomSecret.hex(6), requester: requester.name, groups: requester.groups, role: role,
            connection: connection, duration: duration, reason: reason, at: now())
        try await persist(request, event: .grantBreakGlass)
        await onGrantStarted(request)
        logger.warning(
            "BREAK-GLASS access activated", metadata: ["user": "\(requester.name)", "role": "\(role)", "reason": "\(reason)"])
        return request
    }

    public func approve(_ id: String, by approver: User, code: String?) async throws -> AccessRequest {
        if let pending = book.request(id), book.roles[pending.role]?.approverStepUp == true {
            guard let stepUp, let code else {
                throw GrantError(.stepUpRequired, "approving \(id) needs your own second factor: give --code")
            }
            do { try await stepUp.verifyCode(user: approver.name, code: code) } catch let error as ChallengeError {
                throw GrantError(.stepUpRequired, error.description)
            }
        }
        let request = try book.approve(id, by: approver.name, groups: approver.groups, at: now())
        try await persist(request, event: .requestApproved, actor: approver.name)
        if request.state == .approved {
            try await persist(request, event: .grantActivated, actor: approver.name)
            await onGrantStarted(request)
        }
        return request
    }

    public func deny(_ id: String, by approver: User, reason: String?) async throws -> AccessRequest {
        let request = try book.deny(id, by: approver.name, groups: approver.groups, reason: reason, at: now())
        try await persist(request, event: .requestDenied, actor: approver.name)
        return request
    }

    public func revoke(_ id: String, by actor: User) async throws -> AccessRequest {
        let before = book.request(id)
        let request = try book.revoke(id, by: actor.name, groups: actor.groups, isAdmin: actor.isAdmin, at: now())
        try await persist(request, event: .grantRevoked, actor: actor.name)
        if before?.state == .approved {
            onGrantEnded(request, "grant \(id) (\(request.role)) was revoked by \(actor.name)")
        }
        return request
    }

    // MARK: Deadlines

    /// Lapses pending requests and ends grants whose deadline has passed (`GrantExpiry` calls it).
    public func expireDue() async {
        guard let next = book.nextDeadline(after: checkedUpTo), next <= now() else { return }
        do { try await tick() } catch {
            logger.error("cannot record a lapsed request or an ended grant", metadata: ["error": "\(error)"])
        }
    }

    /// Lapses pending requests, ends expired grants.
    private func tick() async throws {
        let time = now()
        for lapsed in book.lapse(at: time) { try await persist(lapsed, event: .requestLapsed) }
        for ended in book.grantsEnded(after: checkedUpTo, upTo: time) {
            try? await persist(ended, event: .grantExpired)
            onGrantEnded(ended, "grant \(ended.id) (\(ended.role)) expired at \(Timestamp.format(ended.expiresAt ?? time))")
        }
        checkedUpTo = time
        publishActive(at: time)
    }

    private func publishActive(at time: Date) {
        var byUser: [String: [AccessRequest]] = [:]
        for request in book.requests.values where request.state == .approved {
            // Grants starting later are published too; `isActive` checks the time on every read.
            if let until = request.expiresAt, until > time { byUser[request.requester, default: []].append(request) }
        }
        active.withLockedValue { $0 = byUser }
        Telemetry.activeGrants.set(byUser.values.reduce(0) { $0 + $1.filter { $0.isActive(at: time) }.count })
    }

    private func persist(
        _ request: AccessRequest, event: AuditEventType, actor: String? = nil, detail: [String: String] = [:]
    )
        async throws
    {
        try await store.saveAccessRequest(request)
        Telemetry.accessRequest(event.rawValue)
        var fields = detail
        fields["request"] = request.id
        fields["role"] = request.role
        fields["requester"] = request.requester
        fields["reason"] = request.reason
        fields["state"] = request.state.rawValue
        if let connection = request.connection { fields["scope"] = connection }
        if !request.approvals.isEmpty { fields["approvers"] = request.approvals.joined(separator: ",") }
        if let until = request.expiresAt { fields["expires_at"] = Timestamp.format(until) }
        if let reason = request.denialReason { fields["denial_reason"] = reason }
        if request.breakGlass { fields["break_glass"] = "true" }
        _ = try await store.appendAudit(
            AuditRecord(event, actor: actor ?? request.requester, connection: request.connection, detail: fields))
        publishActive(at: now())
    }
}
