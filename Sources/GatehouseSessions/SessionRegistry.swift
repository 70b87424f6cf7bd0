import Foundation
import GatehouseTelemetry
import Synchronization

/// What the gateway knows about one live proxied session.
public struct SessionInfo: Sendable, Equatable, Codable {
    public var id: String
    public var user: String
    public var connection: String
    public var source: String
    public var applicationName: String
    public var startedAt: Date
    public var tls: Bool

    public init(id: String, user: String, connection: String, source: String, applicationName: String, startedAt: Date, tls: Bool)
    {
        self.id = id
        self.user = user
        self.connection = connection
        self.source = source
        self.applicationName = applicationName
        self.startedAt = startedAt
        self.tls = tls
    }
}

/// Where to send a CancelRequest for a session: the upstream server and the upstream backend's key.
public struct UpstreamCancelTarget: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var processID: Int32
    public var secretKey: Int32

    public init(host: String, port: Int, processID: Int32, secretKey: Int32) {
        self.host = host
        self.port = port
        self.processID = processID
        self.secretKey = secretKey
    }
}

/// The key Gatehouse gives a client in BackendKeyData; never the upstream's own key.
public struct GatewayCancelKey: Sendable, Hashable {
    public var processID: Int32
    public var secretKey: Int32

    public init(processID: Int32, secretKey: Int32) {
        self.processID = processID
        self.secretKey = secretKey
    }
}

/// Live sessions: listed, terminated on demand, and found by cancel key.
///
/// A lock guards small synchronous state; the closures it holds hop to each session's event loop.
public final class SessionRegistry: Sendable {
    fileprivate struct Entry: Sendable {
        var info: SessionInfo
        var cancelKey: GatewayCancelKey
        var cancelTarget: UpstreamCancelTarget
        var terminate: @Sendable (String) -> Void
        var cancelled: @Sendable () -> Void
        /// The id of the access token the session signed in with.
        var tokenID: String?
        /// Grants this session's statements relied on.
        var usedGrants: Set<String> = []
    }

    private let state = Mutex<(sessions: [String: Entry], byCancelKey: [GatewayCancelKey: String])>(([:], [:]))

    public init() {}

    /// Sessions admitted (authenticated, possibly still connecting upstream), by id: who and where.
    private let admitted = Mutex<[String: (user: String, connection: String)]>([:])
    /// Connections that have not yet authenticated: in all, and by source address.
    private let unauthenticated = Mutex<(total: Int, bySource: [String: Int])>((0, [:]))

    /// Which limit refused a connection waiting to authenticate.
    public enum AuthenticationLimit: Sendable, Equatable {
        /// `limits.max_unauthenticated_connections`
        case total(Int)
        /// `limits.max_unauthenticated_per_source`
        case perSource(Int)
    }

    /// Takes a place for a connection from `source` that has yet to authenticate; the limit it would
    /// pass otherwise. One address cannot take every place, so others can still sign in.
    public func beginAuthentication(source: String, limit: Int, perSource: Int) -> AuthenticationLimit? {
        unauthenticated.withLock { state in
            guard state.total < limit else { return .total(limit) }
            let mine = state.bySource[source, default: 0]
            guard mine < perSource else { return .perSource(perSource) }
            state.total += 1
            state.bySource[source] = mine + 1
            return nil
        }
    }

    /// Gives the place back (authenticated, refused or gone): once per place `beginAuthentication` gave.
    public func endAuthentication(source: String) {
        unauthenticated.withLock { state in
            state.total = max(0, state.total - 1)
            let left = state.bySource[source, default: 1] - 1
            state.bySource[source] = left > 0 ? left : nil
        }
    }

    /// Admits session `id` of `user` on `connection` before its upstream connection is opened, or says
    /// which limit it would pass.
    public func admit(id: String, user: String, connection: String, perUser: Int, perConnection: Int) -> String? {
        admitted.withLock { sessions in
            let mine = sessions.values.filter { $0.user == user }.count
            if mine >= perUser {
                return "\(user) already has \(mine) sessions open, the most allowed per user (limits.max_sessions_per_user)"
            }
            let there = sessions.values.filter { $0.connection == connection }.count
            if there >= perConnection {
                return
                    "connection \"\(connection)\" already has \(there) sessions open, the most allowed (limits.max_sessions_per_connection)"
            }
            sessions[id] = (user, connection)
            return nil
        }
    }

    /// Frees the place `admit` took (the session ended or never started).
    public func release(id: String) {
        _ = admitted.withLock { $0.removeValue(forKey: id) }
    }

    /// Registers a session and returns the cancel key to hand to its client.
    public func register(
        _ info: SessionInfo, cancelTarget: UpstreamCancelTarget, tokenID: String? = nil,
        terminate: @escaping @Sendable (String) -> Void,
        cancelled: @escaping @Sendable () -> Void = {}
    ) -> GatewayCancelKey {
        state.withLock { state in
            var key: GatewayCancelKey
            repeat {
                key = GatewayCancelKey(
                    processID: Int32.random(in: 1...Int32.max), secretKey: Int32.random(in: Int32.min...Int32.max))
            } while state.byCancelKey[key] != nil
            // A replaced entry's key must not lead to the new session.
            if let replaced = state.sessions[info.id] { state.byCancelKey[replaced.cancelKey] = nil }
            state.sessions[info.id] = Entry(
                info: info, cancelKey: key, cancelTarget: cancelTarget, terminate: terminate, cancelled: cancelled,
                tokenID: tokenID)
            state.byCancelKey[key] = info.id
            Telemetry.sessions.set(state.sessions.count)
            Telemetry.sessionsOpened.increment()
            return key
        }
    }

    public func remove(id: String) {
        state.withLock { state in
            if let entry = state.sessions.removeValue(forKey: id) { state.byCancelKey[entry.cancelKey] = nil }
            Telemetry.sessions.set(state.sessions.count)
        }
    }

    public func list() -> [SessionInfo] {
        state.withLock { $0.sessions.values.map(\.info) }.sorted { $0.startedAt < $1.startedAt }
    }

    public func session(id: String) -> SessionInfo? {
        state.withLock { $0.sessions[id]?.info }
    }

    /// Ends a session with a FATAL error that tells its client why. Returns false when it is not live.
    @discardableResult
    public func terminate(id: String, reason: String) -> Bool {
        guard let entry = state.withLock({ $0.sessions[id] }) else { return false }
        entry.terminate(reason)
        return true
    }

    public func cancelTarget(for key: GatewayCancelKey) -> (sessionID: String, target: UpstreamCancelTarget)? {
        state.withLock { state in
            guard let id = state.byCancelKey[key], let entry = state.sessions[id] else { return nil }
            return (id, entry.cancelTarget)
        }
    }

    /// Records that a session relied on these grants (it ends when any of them does).
    public func noteGrantUse(id: String, grants: [String]) {
        state.withLock { state in state.sessions[id]?.usedGrants.formUnion(grants) }
    }

    /// Terminates every session that relied on `grant`; returns their ids.
    @discardableResult
    public func terminateSessions(usingGrant grant: String, reason: String) -> [String] {
        terminateAll(reason: reason) { $0.usedGrants.contains(grant) }.map(\.id)
    }

    /// Ends every session of `user` on `connections`: on a connection with database roles, what a
    /// grant gave is the database's privilege, whichever statement used it.
    public func terminateSessions(of user: String, on connections: Set<String>, reason: String) -> [String] {
        terminateAll(reason: reason) { $0.info.user == user && connections.contains($0.info.connection) }.map(\.id)
    }

    /// Which tokens a revocation took: one token by id, or every token of a user issued until now.
    public enum RevokedTokens: Sendable, Equatable {
        case token(id: String)
        case allOf(user: String)

        fileprivate func took(_ entry: Entry) -> Bool {
            switch self {
            case .token(let id): entry.tokenID == id
            case .allOf(let user): entry.info.user == user
            }
        }
    }

    /// The live sessions that signed in with `revoked` tokens.
    public func sessions(signedInWith revoked: RevokedTokens) -> [SessionInfo] {
        state.withLock { state in state.sessions.values.filter(revoked.took).map(\.info) }
    }

    /// Terminates the sessions that signed in with `revoked` tokens; returns them.
    @discardableResult
    public func terminateSessions(signedInWith revoked: RevokedTokens, reason: String) -> [SessionInfo] {
        terminateAll(reason: reason, where: revoked.took)
    }

    private func terminateAll(reason: String, where matches: (Entry) -> Bool) -> [SessionInfo] {
        let entries = state.withLock { state in state.sessions.values.filter(matches) }
        for entry in entries { entry.terminate(reason) }
        return entries.map(\.info)
    }

    /// Tells a session its client asked to cancel (a statement the gateway holds is the session's to end).
    public func notifyCancelled(id: String) {
        state.withLock { $0.sessions[id]?.cancelled }?()
    }

    public var count: Int { state.withLock { $0.sessions.count } }
}

/// How a session logs in to a connection whose people have database roles of their own.
public struct DatabaseLogin: Sendable, Equatable {
    public var user: String
    public var password: String

    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }
}

/// A connection's database roles, as the proxy sees them: the login of a person's own role, made ready.
public protocol DatabaseRoleLogins: Sendable {
    /// Makes the role ready and able to log in for a moment (until `loggedIn`, or a minute at most).
    func login(for user: String) async throws -> DatabaseLogin
    /// The session's login as `login` is done (or failed): the role can no longer log in with a password
    /// unless another of its logins is under way.
    func loggedIn(_ login: DatabaseLogin) async
}
