import Foundation
import GatehouseCore
import GatehouseStore

/// Why a login was refused. One message for unknown users and wrong passwords, so names cannot be probed.
public struct LoginError: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// What the audit log records (more precise than what the caller sees).
    public var auditReason: String

    /// What every failed sign-in says, whichever of name, password or code was wrong: a guesser learns
    /// nothing of which half was right.
    public static let refused = "invalid user name, password or code (give your authenticator's code if you have a second factor)"
}

/// Users, their passwords and the bootstrap of a fresh install.
public struct IdentityService: Sendable {
    public let store: any GatehouseStore
    public let now: @Sendable () -> Date
    /// PBKDF2 rounds for new hashes.
    public let hashRounds: Int
    /// Checked against when there is no real hash to check, to spend the same time.
    private let dummyHash: PasswordHash?

    public init(
        store: any GatehouseStore, hashRounds: Int = PasswordHash.defaultRounds, now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.store = store
        self.hashRounds = hashRounds
        self.dummyHash = try? PasswordHash.make(password: RandomSecret.password(), rounds: hashRounds)
        self.now = now
    }

    /// Whether `name` is a service account (API tokens only).
    public func isServiceAccount(_ name: String) async throws -> Bool {
        try await store.user(named: name)?.source == .service
    }

    /// The user as they stand now, or the reason they may not act.
    public func activeUser(named name: String) async throws -> Result<User, TokenError> {
        guard let stored = try await store.user(named: name) else {
            return .failure(TokenError(.unknownUser, "user \(name) does not exist"))
        }
        if let refusal = stored.user.refusal(at: now()) { return .failure(TokenError(.userRefused, refusal)) }
        return .success(stored.user)
    }

    /// Checks a password; the same error for an unknown user and a wrong password.
    public func login(user name: String, password: String) async throws -> User {
        let refused = LoginError.refused
        guard let stored = try await store.user(named: name) else {
            // One derivation, as for a real user, so response times do not reveal which names exist.
            _ = dummyHash?.matches(password)
            throw LoginError(description: refused, auditReason: "unknown user")
        }
        guard let text = stored.passwordHash, let hash = PasswordHash(text) else {
            _ = dummyHash?.matches(password)
            throw LoginError(description: refused, auditReason: "user has no password set")
        }
        guard hash.matches(password) else { throw LoginError(description: refused, auditReason: "wrong password") }
        if let refusal = stored.user.refusal(at: now()) {
            throw LoginError(description: refusal, auditReason: refusal)
        }
        return stored.user
    }

    /// Brings the store's users in line with the configuration: declared users are created or updated,
    /// users removed from the file are disabled. Returns the names disabled.
    @discardableResult
    public func synchronise(
        with entries: [(name: String, groups: [String], passwordHash: String?, expiresAt: Date?)],
        services: [(name: String, groups: [String], expiresAt: Date?)] = []
    ) async throws -> [String] {
        var disabled: [String] = []
        let declared = Set(entries.map(\.name)).union(services.map(\.name))
        for entry in entries {
            let existing = try await store.user(named: entry.name)
            let user = User(name: entry.name, groups: entry.groups, expiresAt: entry.expiresAt, disabled: false)
            try await store.saveUser(
                StoredUser(user: user, source: .config, passwordHash: entry.passwordHash ?? existing?.passwordHash))
        }
        for service in services {
            let user = User(name: service.name, groups: service.groups, expiresAt: service.expiresAt, disabled: false)
            try await store.saveUser(StoredUser(user: user, source: .service, passwordHash: nil))
        }
        for stored in try await store.users()
        where (stored.source == .config || stored.source == .service) && !declared.contains(stored.user.name) {
            if !stored.user.disabled {
                var user = stored
                user.user.disabled = true
                try await store.saveUser(user)
                disabled.append(stored.user.name)
            }
        }
        return disabled
    }

    /// On a fresh install (no admin with a password), creates `admin` with a random password and returns it.
    public func bootstrapAdminIfNeeded() async throws -> (user: String, password: String)? {
        let users = try await store.users()
        if users.contains(where: { $0.user.isAdmin && !$0.user.disabled && $0.passwordHash != nil }) { return nil }
        let name = "admin"
        let password = RandomSecret.password()
        let existing = try await store.user(named: name)
        var groups = existing?.user.groups ?? []
        if !groups.contains(Group.admins) { groups.append(Group.admins) }
        try await store.saveUser(
            StoredUser(
                user: User(name: name, groups: groups), source: existing?.source ?? .bootstrap,
                passwordHash: try PasswordHash.make(password: password, rounds: hashRounds).description))
        return (name, password)
    }

    /// Sets a user's password; returns false when the user does not exist.
    public func setPassword(_ password: String, forUser name: String) async throws -> Bool {
        guard let stored = try await store.user(named: name), stored.source != .service else { return false }
        try await store.setPasswordHash(
            try PasswordHash.make(password: password, rounds: hashRounds).description, forUser: name)
        return true
    }
}
