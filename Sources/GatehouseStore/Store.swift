import Foundation
import GatehouseCore

/// A user as the store keeps it: identity plus where it came from and its password hash.
public struct StoredUser: Sendable, Equatable {
    public enum Source: String, Sendable {
        /// Declared in the configuration file; groups follow the file.
        case config
        /// Created by the first start of a fresh install.
        case bootstrap
        /// A machine identity (CI job, agent) declared under `service_accounts`: API tokens only, no password.
        case service
    }

    public var user: User
    public var source: Source
    public var passwordHash: String?

    public init(user: User, source: Source, passwordHash: String?) {
        self.user = user
        self.source = source
        self.passwordHash = passwordHash
    }
}

/// A user's TOTP enrolment: the secret sealed with the gateway's key, whether the first code
/// confirmed it, and the last time step used (a code is good once).
public struct StoredMFA: Sendable, Equatable {
    public var sealedSecret: Data
    public var confirmed: Bool
    public var lastUsedStep: Int64?

    public init(sealedSecret: Data, confirmed: Bool, lastUsedStep: Int64?) {
        self.sealedSecret = sealedSecret
        self.confirmed = confirmed
        self.lastUsedStep = lastUsedStep
    }
}

/// Token revocations: single tokens by id, and every token of a user issued before a time.
public struct Revocations: Sendable, Equatable {
    public var tokenIDs: Set<String> = []
    public var userCutoffs: [String: Date] = [:]

    public init() {}

    public func isRevoked(tokenID: String, user: String, issuedAt: Date) -> Bool {
        if tokenIDs.contains(tokenID) { return true }
        if let cutoff = userCutoffs[user], issuedAt <= cutoff { return true }
        return false
    }
}

/// The gateway's state: audit chain, users and password hashes, token revocations.
///
/// Implementations must make `appendAudit` durable before it returns: callers forward the audited
/// action only after that.
public protocol GatehouseStore: Sendable {
    func appendAudit(_ record: AuditRecord) async throws -> AuditEvent
    /// Appends without waiting for the commit, keeping order. The record must be safe from a crash of
    /// the gateway when this returns (journaled); it throws when it is not, and the caller then does
    /// not go on. `onFailure` hears about a commit that failed.
    func enqueueAudit(_ record: AuditRecord, onFailure: @escaping @Sendable (Error) -> Void) throws
    func mfa(ofUser name: String) async throws -> StoredMFA?
    /// Replaces the user's enrolment (a new, unconfirmed secret).
    func saveMFA(_ mfa: StoredMFA, forUser name: String) async throws
    /// Marks the enrolment confirmed and records the step of the confirming code.
    func confirmMFA(forUser name: String, step: Int64) async throws
    /// Records a used step; refuses (returns false) when `step` is not after the last used one.
    func useMFAStep(_ step: Int64, forUser name: String) async throws -> Bool
    /// Access requests and grants, as JSON documents by id (the grant state machine owns their meaning).
    func accessRequests() async throws -> [AccessRequest]
    func saveAccessRequest(_ request: AccessRequest) async throws
    /// Whether `user` has proven a second factor from this source address with this client before.
    func isKnownDevice(user: String, source: String, application: String) async throws -> Bool
    func rememberDevice(user: String, source: String, application: String, at time: Date) async throws
    /// Events with a sequence number above `afterSeq`, oldest first.
    func auditEvents(afterSeq: Int64, limit: Int) async throws -> [AuditEvent]
    /// The newest `count` events, oldest first.
    func latestAuditEvents(count: Int) async throws -> [AuditEvent]
    /// Events that pass `query`, in the order it asks for, at most `query.limit`.
    func queryAudit(_ query: AuditQuery) async throws -> [AuditEvent]

    func user(named name: String) async throws -> StoredUser?
    func users() async throws -> [StoredUser]
    func saveUser(_ user: StoredUser) async throws
    func setPasswordHash(_ hash: String, forUser name: String) async throws

    func revocations() async throws -> Revocations
    func revokeToken(id: String, expiresAt: Date) async throws
    func revokeTokens(ofUser name: String, issuedBefore cutoff: Date) async throws

    func close() async throws
}

/// A store failure, safe to show to a client.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
