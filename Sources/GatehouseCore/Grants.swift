import Foundation

/// A role people may ask for just in time: who may ask, where, for how long, and who approves.
public struct RequestableRole: Sendable, Equatable {
    public var name: String
    /// Groups whose members may request the role.
    public var requesters: [String]
    /// Connections the grant applies to; empty means every connection.
    public var connections: [String]
    public var maxDuration: TimeInterval
    public var reasonRequired: Bool
    /// A regular expression the reason must match somewhere (e.g. a ticket id `[A-Z]+-[0-9]+`).
    public var reasonPattern: String?
    /// Groups whose members may approve; never the requester.
    public var approverGroups: [String]
    public var approvalsNeeded: Int
    public var approverStepUp: Bool
    /// Conditions under which a request is approved without anyone; a denial always wins over them.
    public var autoApprove: AutoApproval?
    /// Self-activation with step-up, for a short time, loudly.
    public var breakGlass: BreakGlass?
    /// How long a request waits for approval before it expires.
    public var pendingTimeout: TimeInterval

    public init(
        name: String, requesters: [String], connections: [String] = [], maxDuration: TimeInterval = 3600,
        reasonRequired: Bool = true, reasonPattern: String? = nil, approverGroups: [String] = [], approvalsNeeded: Int = 1,
        approverStepUp: Bool = false, autoApprove: AutoApproval? = nil, breakGlass: BreakGlass? = nil,
        pendingTimeout: TimeInterval = 3600
    ) {
        self.name = name
        self.requesters = requesters
        self.connections = connections
        self.maxDuration = maxDuration
        self.reasonRequired = reasonRequired
        self.reasonPattern = reasonPattern
        self.approverGroups = approverGroups
        self.approvalsNeeded = approvalsNeeded
        self.approverStepUp = approverStepUp
        self.autoApprove = autoApprove
        self.breakGlass = breakGlass
        self.pendingTimeout = pendingTimeout
    }

    public struct AutoApproval: Sendable, Equatable {
        /// Requesters in one of these groups (empty: any requester).
        public var groups: [String]
        /// Only for durations up to this.
        public var maxDuration: TimeInterval?
        /// The reason must match this pattern.
        public var reasonPattern: String?
        /// Only at these hours (weekdays 1 = Sunday ... 7; minutes after midnight; the time zone).
        public var weekdays: Set<Int>?
        public var startMinute: Int?
        public var endMinute: Int?
        public var timeZone: TimeZone?

        public init(
            groups: [String] = [], maxDuration: TimeInterval? = nil, reasonPattern: String? = nil, weekdays: Set<Int>? = nil,
            startMinute: Int? = nil, endMinute: Int? = nil, timeZone: TimeZone? = nil
        ) {
            self.groups = groups
            self.maxDuration = maxDuration
            self.reasonPattern = reasonPattern
            self.weekdays = weekdays
            self.startMinute = startMinute
            self.endMinute = endMinute
            self.timeZone = timeZone
        }
    }

    public struct BreakGlass: Sendable, Equatable {
        public var maxDuration: TimeInterval
        public init(maxDuration: TimeInterval) { self.maxDuration = maxDuration }
    }
}

/// One request for a role, and the grant it becomes.
public struct AccessRequest: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable {
        /// Waiting for approvals.
        case pending
        /// Approved; active from `activeFrom` until `expiresAt` unless revoked.
        case approved
        case denied
        /// Nobody decided before the pending timeout.
        case lapsed
        case revoked
    }

    public var id: String
    public var requester: String
    public var role: String
    public var connection: String?
    public var duration: TimeInterval
    public var reason: String
    public var requestedAt: Date
    /// When an approved grant may start (nil: at approval).
    public var startAt: Date?
    public var state: State = .pending
    public var approvals: [String] = []
    public var deniedBy: String?
    public var denialReason: String?
    public var activeFrom: Date?
    public var expiresAt: Date?
    public var revokedBy: String?
    public var revokedAt: Date?
    public var breakGlass = false
    public var autoApproved = false
    public var pendingUntil: Date

    public init(
        id: String, requester: String, role: String, connection: String?, duration: TimeInterval, reason: String,
        requestedAt: Date, startAt: Date? = nil, pendingUntil: Date
    ) {
        self.id = id
        self.requester = requester
        self.role = role
        self.connection = connection
        self.duration = duration
        self.reason = reason
        self.requestedAt = requestedAt
        self.startAt = startAt
        self.pendingUntil = pendingUntil
    }

    /// Whether the grant gives the role at `now` (on `connection`, when the grant names one).
    public func isActive(at now: Date, on connection: String? = nil) -> Bool {
        guard state == .approved, let from = activeFrom, let until = expiresAt, from <= now, now < until else { return false }
        if let scope = self.connection, let connection, scope != connection { return false }
        return true
    }
}

/// Why a request, decision or revocation was refused.
public struct GrantError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case unknownRole, notARequester, wrongConnection, tooLong, reasonRequired, reasonMismatch, notFound, notPending
        case selfApproval, notAnApprover, alreadyApproved, notAllowed, breakGlassUnavailable, stepUpRequired
    }

    public var code: Code
    public var description: String

    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

/// The request and grant state machine. Pure: every call takes the time; nothing here sleeps or stores.
public struct GrantBook: Sendable {
    public var roles: [String: RequestableRole]
    public private(set) var requests: [String: AccessRequest] = [:]

    public init(roles: [RequestableRole]) {
        self.roles = Dictionary(roles.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Restores requests kept by the store (after a restart).
    public mutating func restore(_ stored: [AccessRequest]) {
        for request in stored { requests[request.id] = request }
    }

    public func request(_ id: String) -> AccessRequest? { requests[id] }

    /// Files a request; approves it at once when the role's auto-approval conditions hold.
    public mutating func submit(
        id: String, requester: String, groups: [String], role name: String, connection: String?, duration: TimeInterval,
        reason: String, startAt: Date? = nil, at now: Date
    ) throws -> AccessRequest {
        let role = try checkRequest(
            requester: requester, groups: groups, role: name, connection: connection, duration: duration, reason: reason)
        var request = AccessRequest(
            id: id, requester: requester, role: name, connection: connection, duration: duration, reason: reason,
            requestedAt: now, startAt: startAt, pendingUntil: now.addingTimeInterval(role.pendingTimeout))
        if let auto = role.autoApprove, Self.autoApproves(auto, groups: groups, duration: duration, reason: reason, at: now) {
            request.autoApproved = true
            activate(&request, at: now)
        }
        requests[id] = request
        return request
    }

    /// Break-glass: the requester activates the role themself (the caller checks their step-up first).
    public mutating func breakGlass(
        id: String, requester: String, groups: [String], role name: String, connection: String?, duration: TimeInterval,
        reason: String, at now: Date
    ) throws -> AccessRequest {
        guard let role = roles[name] else { throw GrantError(.unknownRole, "no requestable role \(name)") }
        guard let glass = role.breakGlass else {
            throw GrantError(.breakGlassUnavailable, "role \(name) has no break-glass access")
        }
        guard duration <= glass.maxDuration else {
            throw GrantError(.tooLong, "break-glass for \(name) lasts at most \(DurationText.format(glass.maxDuration))")
        }
        _ = try checkRequest(
            requester: requester, groups: groups, role: name, connection: connection, duration: duration, reason: reason)
        var request = AccessRequest(
            id: id, requester: requester, role: name, connection: connection, duration: duration, reason: reason,
            requestedAt: now, pendingUntil: now)
        request.breakGlass = true
        activate(&request, at: now)
        requests[id] = request
        return request
    }

    /// An approver approves; the grant activates once enough approvals are in.
    public mutating func approve(_ id: String, by approver: String, groups: [String], at now: Date) throws -> AccessRequest {
        var request = try pending(id, at: now)
        try checkApprover(request, approver: approver, groups: groups)
        guard !request.approvals.contains(approver) else {
            throw GrantError(.alreadyApproved, "you already approved request \(id)")
        }
        request.approvals.append(approver)
        if request.approvals.count >= (roles[request.role]?.approvalsNeeded ?? 1) { activate(&request, at: now) }
        requests[id] = request
        return request
    }

    /// An approver denies; a denial wins over approvals already given.
    public mutating func deny(
        _ id: String, by approver: String, groups: [String], reason: String?, at now: Date
    ) throws -> AccessRequest {
        var request = try pending(id, at: now)
        try checkApprover(request, approver: approver, groups: groups)
        request.state = .denied
        request.deniedBy = approver
        request.denialReason = reason
        requests[id] = request
        return request
    }

    /// Ends an approved grant (or withdraws a pending request) before its time.
    public mutating func revoke(
        _ id: String, by actor: String, groups: [String], isAdmin: Bool, at now: Date
    ) throws -> AccessRequest {
        guard var request = requests[id] else { throw GrantError(.notFound, "no request \(id)") }
        guard request.state == .approved || request.state == .pending else {
            throw GrantError(.notPending, "request \(id) is \(request.state.rawValue); nothing to revoke")
        }
        guard isAdmin || approves(request.role, groups: groups) || actor == request.requester else {
            throw GrantError(
                .notAllowed, "only the requester, an approver of \(request.role) or an administrator may revoke request \(id)")
        }
        request.state = .revoked
        request.revokedBy = actor
        request.revokedAt = now
        requests[id] = request
        return request
    }

    /// Pending requests past their deadline lapse; returns them.
    public mutating func lapse(at now: Date) -> [AccessRequest] {
        var lapsed: [AccessRequest] = []
        for (id, request) in requests where request.state == .pending && request.pendingUntil <= now {
            var updated = request
            updated.state = .lapsed
            requests[id] = updated
            lapsed.append(updated)
        }
        return lapsed
    }

    /// Grants active for `user` at `now`, on `connection` when given.
    public func activeGrants(for user: String, on connection: String? = nil, at now: Date) -> [AccessRequest] {
        requests.values.filter { $0.requester == user && $0.isActive(at: now, on: connection) }
            .sorted { ($0.expiresAt ?? now) < ($1.expiresAt ?? now) }
    }

    /// Grants whose time ended in `(after, upTo]`: the sessions that used them must end.
    public func grantsEnded(after: Date, upTo now: Date) -> [AccessRequest] {
        requests.values.filter { request in
            guard request.state == .approved, let until = request.expiresAt else { return false }
            return until > after && until <= now
        }
    }

    /// The next moment something changes by itself (a grant ends, a pending request lapses, a scheduled one starts).
    public func nextDeadline(after now: Date) -> Date? {
        var moments: [Date] = []
        for request in requests.values {
            switch request.state {
            case .pending: moments.append(request.pendingUntil)
            case .approved:
                if let from = request.activeFrom, from > now { moments.append(from) }
                if let until = request.expiresAt { moments.append(until) }
            default: break
            }
        }
        return moments.filter { $0 > now }.min()
    }

    // MARK: Checks

    private func checkRequest(
        requester: String, groups: [String], role name: String, connection: String?, duration: TimeInterval, reason: String
    ) throws -> RequestableRole {
        guard let role = roles[name] else {
            throw GrantError(.unknownRole, "no requestable role \(name) (roles: \(roles.keys.sorted().joined(separator: ", ")))")
        }
        guard role.requesters.contains(where: groups.contains) else {
            throw GrantError(
                .notARequester,
                "\(requester) may not request \(name): only members of \(role.requesters.joined(separator: ", ")) may")
        }
        if !role.connections.isEmpty {
            guard let connection, role.connections.contains(connection) else {
                throw GrantError(
                    .wrongConnection,
                    "role \(name) is for connection\(role.connections.count == 1 ? "" : "s") \(role.connections.joined(separator: ", "))"
                )
            }
        }
        guard duration > 0, duration <= role.maxDuration else {
            throw GrantError(.tooLong, "role \(name) may be granted for at most \(DurationText.format(role.maxDuration))")
        }
        let trimmed = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        if role.reasonRequired && trimmed.isEmpty {
            throw GrantError(.reasonRequired, "role \(name) needs a reason (--reason)")
        }
        if let pattern = role.reasonPattern, !Self.matches(pattern, trimmed) {
            throw GrantError(.reasonMismatch, "the reason for \(name) must match \(pattern) (e.g. a ticket id)")
        }
        return role
    }

    private func pending(_ id: String, at now: Date) throws -> AccessRequest {
        guard let request = requests[id] else { throw GrantError(.notFound, "no request \(id)") }
        guard request.state == .pending, request.pendingUntil > now else {
            throw GrantError(.notPending, "request \(id) is \(request.state == .pending ? "lapsed" : request.state.rawValue)")
        }
        return request
    }

    /// Whether members of `groups` approve requests for `role`.
    public func approves(_ role: String, groups: [String]) -> Bool {
        roles[role]?.approverGroups.contains(where: groups.contains) ?? false
    }

    /// Pending requests `user` may still approve or deny at `now`: not their own, not yet approved by them.
    public func awaitingDecision(by user: String, groups: [String], at now: Date) -> [AccessRequest] {
        requests.values.filter { request in
            request.state == .pending && request.pendingUntil > now && request.requester != user
                && !request.approvals.contains(user) && approves(request.role, groups: groups)
        }.sorted { $0.requestedAt > $1.requestedAt }
    }

    private func checkApprover(_ request: AccessRequest, approver: String, groups: [String]) throws {
        guard approver != request.requester else {
            throw GrantError(.selfApproval, "you cannot approve or deny your own request")
        }
        let role = roles[request.role]
        guard let role, role.approverGroups.contains(where: groups.contains) else {
            throw GrantError(
                .notAnApprover,
                "only members of \(role?.approverGroups.joined(separator: ", ") ?? "the approver groups") may decide request \(request.id)"
            )
        }
    }

    private func activate(_ request: inout AccessRequest, at now: Date) {
        let start = max(request.startAt ?? now, now)
        request.state = .approved
        request.activeFrom = start
        request.expiresAt = start.addingTimeInterval(request.duration)
    }

    static func autoApproves(
        _ auto: RequestableRole.AutoApproval, groups: [String], duration: TimeInterval, reason: String, at now: Date
    ) -> Bool {
        if !auto.groups.isEmpty && !auto.groups.contains(where: groups.contains) { return false }
        if let maximum = auto.maxDuration, duration > maximum { return false }
        if let pattern = auto.reasonPattern, !matches(pattern, reason) { return false }
        if auto.weekdays != nil || auto.startMinute != nil {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = auto.timeZone ?? TimeZone(identifier: "UTC")!
            let parts = calendar.dateComponents([.weekday, .hour, .minute], from: now)
            if let weekdays = auto.weekdays, let weekday = parts.weekday, !weekdays.contains(weekday) { return false }
            let minute = (parts.hour ?? 0) * 60 + (parts.minute ?? 0)
            if let start = auto.startMinute, minute < start { return false }
            if let end = auto.endMinute, minute >= end { return false }
        }
        return true
    }

    static func matches(_ pattern: String, _ text: String) -> Bool {
        guard let regex = try? Regex(pattern) else { return false }
        return text.contains(regex)
    }
}
