import Crypto
import Foundation
import GatehouseCore
import GatehouseStore
import GatehouseTelemetry
import Logging

/// A further way to prove presence for a held statement (WebAuthn, an OIDC re-authentication with
/// `acr_values`/`max_age` per RFC 9470, ...). Registered with `StepUpService.register`; rules name it in
/// `step_up: {method: NAME}`. The proxy does not change: it holds and releases by challenge.
public protocol StepUpMethod: Sendable {
    var name: String { get }
    /// Whether `user` can use this method (enrolled, linked to an identity provider, ...).
    func isAvailable(for user: String) async throws -> Bool
    /// Checks a proof (an assertion, an ID token, ...) for `challenge`; throws `ChallengeError` when wrong.
    func verify(user: String, proof: String, challenge: Challenge) async throws
}

/// Second factors (TOTP enrolment and checks) and the challenges that hold statements in live sessions.
///
/// A held statement costs a dictionary entry and a sleeping task for its deadline: no thread, no polling.
public actor StepUpService {
    private let store: any GatehouseStore
    private let sealingKey: SymmetricKey
    private let logger: Logger
    public nonisolated let now: @Sendable () -> Date
    /// How long a held statement waits for its proof or approval.
    public nonisolated let holdTimeout: TimeInterval
    public nonisolated let issuer: String
    private var book = ChallengeBook()
    private var limiter = AttemptLimiter()
    private var waiters: [String: @Sendable (Challenge) -> Void] = [:]
    private var methods: [String: any StepUpMethod] = [:]
    /// Challenges cancelled before `open` registered them (a cancel can overtake the hold).
    private var cancelledEarly: Set<String> = []

    /// Adds a step-up method besides the built-in `totp`.
    public func register(_ method: any StepUpMethod) {
        methods[method.name] = method
    }

    /// Whether `user` can answer a step-up with `method`.
    public func canStepUp(user: String, method: String) async throws -> Bool {
        if method == "totp" { return try await isEnrolled(user: user) }
        return try await methods[method]?.isAvailable(for: user) ?? false
    }

    public init(
        store: any GatehouseStore, sealingKey: [UInt8], holdTimeout: TimeInterval = 120, issuer: String = "Gatehouse",
        logger: Logger = Logger(label: "gatehouse.stepup"), now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.store = store
        self.sealingKey = SymmetricKey(data: sealingKey)
        self.holdTimeout = holdTimeout
        self.issuer = issuer
        self.logger = logger
        self.now = now
    }

    // MARK: Enrolment

    /// What vouches for the person starting an enrolment. A stolen login token alone must not be able
    /// to add the thief's authenticator to an account (or swap it in), and with it pass every step-up.
    public enum EnrolmentProof: Sendable, Equatable {
        /// A code from the confirmed factor being replaced.
        case currentCode(String)
        /// The user's own password, checked by the caller just now.
        case password
        /// An administrator enrols for the user (a lost authenticator, an account without a password).
        case admin(String)
    }

    /// Starts (or restarts) TOTP enrolment: a new secret, unconfirmed until the first valid code.
    /// A first factor needs the password (or an admin); replacing a confirmed one needs a code from it
    /// (or an admin).
    public func enroll(user: String, proof: EnrolmentProof) async throws -> (uri: String, secret: String) {
        var detail = ["method": "totp", "user": user]
        var actor = user
        switch (try await isEnrolled(user: user), proof) {
        case (_, .admin(let admin)):
            actor = admin
            detail["proof"] = "admin"
        case (true, .currentCode(let code)):
            try await verifyCode(user: user, code: code)
            detail["proof"] = "code"
        case (true, .password):
            throw ChallengeError(
                .approverStepUpRequired, "\(user) already has a second factor: give a code from it to replace it")
        case (false, .password):
            detail["proof"] = "password"
        case (false, .currentCode):
            throw ChallengeError(.passwordRequired, "\(user) has no second factor yet: give your password to enrol one")
        }
        let totp = TOTP(secret: TOTP.generateSecret())
        let sealed = try AES.GCM.seal(Data(totp.secret), using: sealingKey).combined ?? Data()
        try await store.saveMFA(StoredMFA(sealedSecret: sealed, confirmed: false, lastUsedStep: nil), forUser: user)
        try await audit(.mfaEnrolled, actor: actor, detail: detail)
        return (totp.provisioningURI(account: user, issuer: issuer), Base32.encode(totp.secret))
    }

    /// Confirms enrolment with the first code from the authenticator.
    public func confirm(user: String, code: String) async throws {
        guard let stored = try await store.mfa(ofUser: user) else {
            throw ChallengeError(.notEnrolled, "no enrolment to confirm: run `gatehouse mfa enroll` first")
        }
        let step = try await checkCode(user: user, code: code, stored: stored)
        try await store.confirmMFA(forUser: user, step: step)
        try await audit(.mfaConfirmed, actor: user, detail: ["method": "totp"])
    }

    /// Whether `user` has a confirmed second factor.
    public func isEnrolled(user: String) async throws -> Bool {
        try await store.mfa(ofUser: user)?.confirmed ?? false
    }

    /// Checks a code of a confirmed enrolment (login, approvals); throws a clear error otherwise.
    @discardableResult
    public func verifyCode(user: String, code: String) async throws -> Int64 {
        guard let stored = try await store.mfa(ofUser: user), stored.confirmed else {
            throw ChallengeError(.notEnrolled, "\(user) has no second factor: run `gatehouse mfa enroll`")
        }
        return try await checkCode(user: user, code: code, stored: stored)
    }

    private func checkCode(user: String, code: String, stored: StoredMFA) async throws -> Int64 {
        let time = now()
        try limiter.check(user, at: time)
        guard let secret = try? AES.GCM.open(AES.GCM.SealedBox(combined: stored.sealedSecret), using: sealingKey) else {
            throw ChallengeError(
                .notEnrolled, "the stored second factor of \(user) cannot be read with this gateway's key; enroll again")
        }
        let totp = TOTP(secret: Array(secret))
        if let step = totp.verify(code, at: time, lastUsedStep: stored.lastUsedStep),
            try await store.useMFAStep(step, forUser: user) || !stored.confirmed
        {
            limiter.recordSuccess(user)
            return step
        }
        if totp.verify(code, at: time, lastUsedStep: nil) != nil {
            // The right code, used before: a replay or a second use, not a guess. Refused, audited, and it
            // neither counts towards the lockout nor costs a held statement an attempt.
            try await audit(.mfaFailure, actor: user, detail: ["reason": "code already used"])
            throw ChallengeError(
                .codeAlreadyUsed, "that code was already used (each code is good once): wait for the next one")
        }
        if let until = limiter.recordFailure(user, at: time) {
            try await audit(.mfaLockedOut, actor: user, detail: ["until": Timestamp.format(until)])
        }
        try await audit(.mfaFailure, actor: user, detail: ["reason": "wrong code"])
        throw ChallengeError(.wrongCode, "wrong code (check the authenticator's clock)")
    }

    // MARK: Challenges

    /// Holds a statement, as `open` does; a step-up challenge of a user who has no way to prove it is
    /// them fails at once (never registered), with the reason. `onOpened` is called only when the
    /// challenge is really opened, before `onFinal` (the session tells its client it waits then, not
    /// before a refusal).
    public func hold(
        _ challenge: Challenge, onOpened: @escaping @Sendable () -> Void = {},
        onFinal: @escaping @Sendable (Challenge) -> Void
    ) async {
        if challenge.kind == .stepUp, !((try? await canStepUp(user: challenge.user, method: challenge.method)) ?? false) {
            var refused = challenge
            refused.state = .failed
            refused.decisionReason = "\(challenge.user) has no second factor: run `gatehouse mfa enroll` first"
            onFinal(refused)
            return
        }
        onOpened()
        await open(challenge, onFinal: onFinal)
    }

    /// Holds a statement: registers the challenge, calls `onFinal` once when it is decided, fails or
    /// expires (from this actor; hop to your own executor there).
    public func open(_ challenge: Challenge, onFinal: @escaping @Sendable (Challenge) -> Void) async {
        Telemetry.stepUp("opened")
        book.add(challenge)
        waiters[challenge.id] = onFinal
        if cancelledEarly.remove(challenge.id) != nil {
            if let cancelled = book.cancel(challenge.id, reason: "cancelled before it was registered", at: now()) {
                try? await finish(cancelled, event: .challengeCancelled)
            }
            return
        }
        try? await audit(
            .challengeCreated, actor: challenge.user, session: challenge.session, connection: challenge.connection,
            detail: [
                "challenge": challenge.id, "kind": challenge.kind.rawValue, "rules": challenge.rules.joined(separator: ","),
                "fingerprint": challenge.fingerprint, "statement": String(challenge.statement.prefix(2000)),
                "approvers": challenge.approvers.joined(separator: ","), "expires_at": Timestamp.format(challenge.expiresAt),
            ].merging(challenge.agent.map { ["agent": $0] } ?? [:]) { $1 })
        // Its expiry is `ChallengeExpiry`'s, one loop for every challenge.
    }

    /// The user answers their own step-up challenge with a code (or the proof its method takes).
    public func verify(id: String, user: String, code: String) async throws -> Challenge {
        let pending = try book.checkVerifiable(id, by: user, at: now())
        let accepted: Bool
        do {
            if pending.method == "totp" {
                try await verifyCode(user: user, code: code)
            } else if let method = methods[pending.method] {
                try await method.verify(user: user, proof: code, challenge: pending)
            } else {
                throw ChallengeError(.notEnrolled, "step-up method \(pending.method) is not available on this gateway")
            }
            accepted = true
        } catch let error as ChallengeError where error.code == .wrongCode {
            accepted = false
        }
        do {
            let challenge = try book.verify(id, by: user, codeAccepted: accepted, at: now())
            try await finish(challenge, event: .challengeVerified)
            return challenge
        } catch let error as ChallengeError where error.code == .tooManyAttempts {
            if let challenge = book.challenge(id) { try await finish(challenge, event: .challengeFailed) }
            throw error
        }
    }

    /// An approver approves or denies a statement waiting for approval.
    public func decide(
        id: String, approve: Bool, approver: String, groups: [String], reason: String?, code: String?
    )
        async throws -> Challenge
    {
        let pending = try book.checkDecidable(id, by: approver, groups: groups, at: now())
        if pending.approverStepUp && approve {
            guard let code else {
                throw ChallengeError(.approverStepUpRequired, "approving \(id) needs your own second factor: give --code")
            }
            try await verifyCode(user: approver, code: code)
        }
        let challenge = try book.decide(id, approve: approve, by: approver, groups: groups, reason: reason, at: now())
        try await finish(challenge, event: approve ? .challengeApproved : .challengeDenied)
        return challenge
    }

    /// The session gave up on a held statement (client cancel, disconnect, session end).
    public func cancel(id: String, reason: String) async {
        guard let challenge = book.cancel(id, reason: reason, at: now()) else {
            if book.challenge(id) == nil { cancelledEarly.insert(id) }
            return
        }
        try? await finish(challenge, event: .challengeCancelled)
    }

    /// Pending challenges `user` may act on: their own, and approvals they may give.
    public func challenges(for user: String, groups: [String], all: Bool = false) -> [Challenge] {
        let time = now()
        return book.challenges.values.filter { challenge in
            guard challenge.state == .pending, challenge.expiresAt > time else { return false }
            if all || challenge.user == user { return true }
            return challenge.kind == .approve && challenge.user != user && challenge.names(approver: user, groups: groups)
        }.sorted { $0.createdAt < $1.createdAt }
    }

    public func challenge(_ id: String) -> Challenge? { book.challenge(id) }

    /// Ends the challenges whose time ran out (the held statement is refused), and forgets old ones.
    public func expireDue() async {
        for challenge in book.expire(at: now()) {
            try? await finish(challenge, event: .challengeExpired)
        }
        book.prune(olderThan: 3600, at: now())
    }

    private func finish(_ challenge: Challenge, event: AuditEventType) async throws {
        var detail = ["challenge": challenge.id, "kind": challenge.kind.rawValue, "state": challenge.state.rawValue]
        if let by = challenge.decidedBy { detail["decided_by"] = by }
        if let reason = challenge.decisionReason { detail["reason"] = reason }
        if let waiter = waiters.removeValue(forKey: challenge.id) { waiter(challenge) }
        Telemetry.stepUp(challenge.state.rawValue)
        try await audit(
            event, actor: challenge.decidedBy ?? challenge.user, session: challenge.session, connection: challenge.connection,
            detail: detail)
    }

    private func audit(
        _ type: AuditEventType, actor: String?, session: String? = nil, connection: String? = nil, detail: [String: String]
    ) async throws {
        _ = try await store.appendAudit(AuditRecord(type, actor: actor, session: session, connection: connection, detail: detail))
    }
}
