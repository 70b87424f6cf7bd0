import Foundation

/// A statement held in a live session until its user proves who they are (`stepUp`) or another
/// person approves it (`approve`).
public struct Challenge: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case stepUp = "step_up"
        case approve
    }

    public enum State: String, Sendable, Codable {
        case pending, verified, approved, denied, failed, expired, cancelled

        public var isFinal: Bool { self != .pending }
        /// Whether the held statement may run.
        public var releases: Bool { self == .verified || self == .approved }
    }

    public var id: String
    public var kind: Kind
    public var user: String
    public var session: String
    public var connection: String
    /// The statement as the client sent it, and its fingerprint: the proof covers this statement only.
    public var statement: String
    public var fingerprint: String
    public var rules: [String]
    public var reason: String
    /// Users or `group:NAME` who may approve (approve challenges only).
    public var approvers: [String]
    /// Whether an approver must give their own second factor.
    public var approverStepUp: Bool
    /// How the user proves it is them (`totp`; later `webauthn`, `oidc`).
    public var method: String = "totp"
    public var createdAt: Date
    public var expiresAt: Date
    public var state: State = .pending
    public var failedAttempts = 0
    public var decidedBy: String?
    public var decisionReason: String?
    public var decidedAt: Date?
    /// The MCP client's name when an AI agent's tool call sent the statement.
    public var agent: String?

    public init(
        id: String, kind: Kind, user: String, session: String, connection: String, statement: String, fingerprint: String,
        rules: [String], reason: String, approvers: [String] = [], approverStepUp: Bool = false, createdAt: Date,
        expiresAt: Date
    ) {
        self.id = id
        self.kind = kind
        self.user = user
        self.session = session
        self.connection = connection
        self.statement = statement
        self.fingerprint = fingerprint
        self.rules = rules
        self.reason = reason
        self.approvers = approvers
        self.approverStepUp = approverStepUp
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

/// Why an action on a challenge was refused; `description` is what the caller reads.
public struct ChallengeError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// A right code already used once: not a guess, so it costs no attempt.
        case codeAlreadyUsed
        case notFound, notYours, notPending, expired, wrongCode, tooManyAttempts, selfApproval, notAnApprover
        case wrongKind, approverStepUpRequired, notEnrolled, lockedOut, passwordRequired
    }

    public var code: Code
    public var description: String

    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

/// The pending and recently decided challenges, and the rules for moving them. Pure: the caller
/// supplies the time and whether a code was right.
public struct ChallengeBook: Sendable {
    public private(set) var challenges: [String: Challenge] = [:]
    /// Wrong codes allowed on one challenge before it fails.
    public var maximumAttempts: Int

    public init(maximumAttempts: Int = 3) {
        self.maximumAttempts = maximumAttempts
    }

    public mutating func add(_ challenge: Challenge) {
        challenges[challenge.id] = challenge
    }

    public func challenge(_ id: String) -> Challenge? { challenges[id] }

    /// Checks that `user` may answer the step-up challenge `id` now.
    public func checkVerifiable(_ id: String, by user: String, at now: Date) throws -> Challenge {
        guard let challenge = challenges[id] else { throw ChallengeError(.notFound, "no challenge \(id)") }
        guard challenge.user == user else {
            throw ChallengeError(.notYours, "challenge \(id) belongs to another user's session")
        }
        guard challenge.kind == .stepUp else {
            throw ChallengeError(.wrongKind, "challenge \(id) waits for approval by another person, not for your code")
        }
        try checkPending(challenge, at: now)
        return challenge
    }

    /// Records the outcome of a code check on a step-up challenge.
    public mutating func verify(_ id: String, by user: String, codeAccepted: Bool, at now: Date) throws -> Challenge {
        var challenge = try checkVerifiable(id, by: user, at: now)
        if codeAccepted {
            challenge.state = .verified
            challenge.decidedBy = user
            challenge.decidedAt = now
            challenges[id] = challenge
            return challenge
        }
        challenge.failedAttempts += 1
        if challenge.failedAttempts >= maximumAttempts {
            challenge.state = .failed
            challenge.decisionReason = "\(challenge.failedAttempts) wrong codes"
            challenge.decidedAt = now
            challenges[id] = challenge
            throw ChallengeError(
                .tooManyAttempts,
                "wrong code; \(challenge.failedAttempts) wrong codes: challenge \(id) failed and the statement will not run")
        }
        challenges[id] = challenge
        let left = maximumAttempts - challenge.failedAttempts
        throw ChallengeError(.wrongCode, "wrong code for challenge \(id); \(left) attempt\(left == 1 ? "" : "s") left")
    }

    /// Checks that `approver` (with `groups`) may decide the approval challenge `id` now.
    public func checkDecidable(_ id: String, by approver: String, groups: [String], at now: Date) throws -> Challenge {
        guard let challenge = challenges[id] else { throw ChallengeError(.notFound, "no challenge \(id)") }
        guard challenge.kind == .approve else {
            throw ChallengeError(.wrongKind, "challenge \(id) waits for its user's own verification, not an approval")
        }
        guard challenge.user != approver else {
            throw ChallengeError(.selfApproval, "you cannot approve your own statement: another approver must")
        }
        guard challenge.names(approver: approver, groups: groups) else {
            throw ChallengeError(
                .notAnApprover,
                "you are not an approver of challenge \(id) (approvers: \(challenge.approvers.joined(separator: ", ")))")
        }
        try checkPending(challenge, at: now)
        return challenge
    }

    public mutating func decide(
        _ id: String, approve: Bool, by approver: String, groups: [String], reason: String?, at now: Date
    )
        throws -> Challenge
    {
        var challenge = try checkDecidable(id, by: approver, groups: groups, at: now)
        challenge.state = approve ? .approved : .denied
        challenge.decidedBy = approver
        challenge.decisionReason = reason
        challenge.decidedAt = now
        challenges[id] = challenge
        return challenge
    }

    /// Ends a pending challenge without a decision (its client cancelled or went away).
    public mutating func cancel(_ id: String, reason: String, at now: Date) -> Challenge? {
        guard var challenge = challenges[id], challenge.state == .pending else { return nil }
        challenge.state = .cancelled
        challenge.decisionReason = reason
        challenge.decidedAt = now
        challenges[id] = challenge
        return challenge
    }

    /// Marks pending challenges past their deadline as expired and returns them.
    public mutating func expire(at now: Date) -> [Challenge] {
        var expired: [Challenge] = []
        for (id, challenge) in challenges where challenge.state == .pending && challenge.expiresAt <= now {
            var updated = challenge
            updated.state = .expired
            updated.decidedAt = now
            challenges[id] = updated
            expired.append(updated)
        }
        return expired
    }

    /// Forgets decided challenges older than `age`.
    public mutating func prune(olderThan age: TimeInterval, at now: Date) {
        challenges = challenges.filter {
            $0.value.state == .pending || ($0.value.decidedAt ?? now) > now.addingTimeInterval(-age)
        }
    }

    private func checkPending(_ challenge: Challenge, at now: Date) throws {
        if challenge.state == .pending && challenge.expiresAt <= now {
            throw ChallengeError(.expired, "challenge \(challenge.id) expired at \(Timestamp.format(challenge.expiresAt))")
        }
        guard challenge.state == .pending else {
            throw ChallengeError(.notPending, "challenge \(challenge.id) is already \(challenge.state.rawValue)")
        }
    }
}

/// Wrong second-factor codes per user: after `limit` within `window`, the user is locked out for
/// `lockout`. Pure.
public struct AttemptLimiter: Sendable {
    public var limit: Int
    public var window: TimeInterval
    public var lockout: TimeInterval
    private var failures: [String: [Date]] = [:]
    private var lockedUntil: [String: Date] = [:]

    public init(limit: Int = 5, window: TimeInterval = 300, lockout: TimeInterval = 900) {
        self.limit = limit
        self.window = window
        self.lockout = lockout
    }

    /// Throws when `user` is locked out at `now`.
    public func check(_ user: String, at now: Date) throws {
        if let until = lockedUntil[user], until > now {
            throw ChallengeError(
                .lockedOut,
                "too many wrong codes: second-factor checks for \(user) are locked until \(Timestamp.format(until))")
        }
    }

    /// Records a wrong code; returns the lockout end when this failure locks the user out.
    public mutating func recordFailure(_ user: String, at now: Date) -> Date? {
        var recent = (failures[user] ?? []).filter { $0 > now.addingTimeInterval(-window) }
        recent.append(now)
        failures[user] = recent
        guard recent.count >= limit else { return nil }
        let until = now.addingTimeInterval(lockout)
        lockedUntil[user] = until
        failures[user] = []
        return until
    }

    public mutating func recordSuccess(_ user: String) {
        failures[user] = nil
    }
}

extension Challenge {
    /// Whether `user` (with `groups`) is one of this challenge's approvers: named, or in a named `group:`.
    public func names(approver user: String, groups: [String]) -> Bool {
        approvers.contains { entry in
            entry.hasPrefix("group:") ? groups.contains(String(entry.dropFirst("group:".count))) : entry == user
        }
    }
}
