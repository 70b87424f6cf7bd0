import Crypto
import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehouseSessions
import GatehouseStore
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import ServiceLifecycle

/// Why a person's database role could not be made ready, in words for the client and the operator.
public struct DatabaseRoleError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One connection's people in its database: each Gatehouse user logs in as a role of their own, which
/// holds the connection's base roles and, for exactly the lifetime of each grant, the roles it maps to.
///
/// The gateway's own login (the connection's `user`) creates the roles (marked by a comment, so no
/// other role is ever changed), sets their password from the gateway's key, and grants and revokes
/// their memberships. As a service it compares, several times a second, what each person's role holds
/// with what their active grants say, and rereads the database's own state at start and periodically,
/// so a crash between a grant's end and its REVOKE, or a change made by hand, is put right.
public actor DatabaseRoleService: DatabaseRoleLogins, Service {
    public nonisolated let connection: Connection
    public nonisolated let roles: DatabaseRoles
    private let key: SymmetricKey
    private let grants: GrantService
    private let store: any GatehouseStore
    private let tlsContext: NIOSSLContext?
    private let logger: Logger
    private let tick: Duration
    private let reread: Duration

    private var admin: PostgresConnection?
    /// What each role the gateway manages holds, as last read from the database or changed since.
    private var held: [String: Set<String>] = [:]
    /// Whether `held` was read from the database since the last failure.
    private var known = false
    /// Logins under way per role, and when the last began: its password works until the last is done
    /// (a login never reported done counts for a minute, as long as the password's VALID UNTIL).
    private var loggingIn: [String: (count: Int, last: ContinuousClock.Instant)] = [:]
    private var lastRead: ContinuousClock.Instant?
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// `tick`: how often held and due memberships are compared (how late a REVOKE may follow a grant's
    /// end, at most); `reread`: how often the database's own state is read again.
    public init(
        connection: Connection, key: SymmetricKey, grants: GrantService, store: any GatehouseStore,
        tlsContext: NIOSSLContext?, logger: Logger, tick: Duration = .milliseconds(200), reread: Duration = .seconds(30)
    ) {
        self.connection = connection
        self.roles = connection.databaseRoles ?? DatabaseRoles()
        self.key = key
        self.grants = grants
        self.store = store
        self.tlsContext = tlsContext
        var logger = logger
        logger[metadataKey: "connection"] = "\(connection.name)"
        self.logger = logger
        self.tick = tick
        self.reread = reread
    }

    // MARK: Logins

    /// Makes `user`'s role ready (created, its password and attributes as the gateway sets them, holding
    /// what is due now, its password working for a minute) and returns how to log in as it.
    public func login(for user: String) async throws -> DatabaseLogin {
        let role = roles.role(for: user)
        guard role.utf8.count <= 63 else {
            throw DatabaseRoleError(
                "the database role for \(user), \(role), is longer than PostgreSQL's 63 bytes: choose a shorter database_roles.name"
            )
        }
        try await exclusively {
            try await self.readIfNeeded()
            try await self.prepare(role, user: user)
            try await self.apply(role, user: user, reason: "session start")
        }
        let under = loggingIn[role].map { ContinuousClock.now - $0.last < .seconds(60) ? $0.count : 0 } ?? 0
        loggingIn[role] = (under + 1, .now)
        return DatabaseLogin(user: role, password: password(for: role))
    }

    /// A session's login as its role is done: when no other is under way, the password stops working, so
    /// nobody logs in as the person but the gateway (a role may set its own password, not its expiry).
    public func loggedIn(_ login: DatabaseLogin) async {
        let left = max(0, (loggingIn[login.user]?.count ?? 1) - 1)
        if left == 0 { loggingIn[login.user] = nil } else { loggingIn[login.user]?.count = left }
        guard left == 0 else { return }
        do {
            try await exclusively {
                guard self.loggingIn[login.user] == nil else { return }
                try await self.run(RoleSQL.expire(login.user), on: try await self.adminConnection())
            }
        } catch {
            // Its VALID UNTIL, a minute after the login began, ends it anyway.
            logger.warning(
                "cannot expire a database role's password after its login",
                metadata: ["role": "\(login.user)", "error": "\(Self.describe(error))"])
        }
    }

    private nonisolated func password(for role: String) -> String {
        DatabaseRolePassword.derive(key: key, connection: connection.name, role: role)
    }

    /// Creates the role, or checks it is one the gateway made (and still holds no attribute the gateway
    /// never gives) and reads what it holds now, so a membership added by hand is taken back before the
    /// session starts; puts its password (which the person may have changed), attributes and settings
    /// back, the password valid for the next minute by the server's clock.
    private func prepare(_ role: String, user: String) async throws {
        let admin = try await adminConnection()
        let existing = try await admin.query(
            """
            SELECT r.rolsuper OR r.rolreplication OR r.rolbypassrls, COALESCE(shobj_description(r.oid, 'pg_authid'), ''),
              ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)
            FROM pg_roles r WHERE r.rolname = \(role)
            """,
            logger: logger
        ).collect()
        let clock = try await admin.query(
            "SELECT to_char((now() + interval '60 seconds') AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
            logger: logger
        ).collect()
        let validUntil = try clock.first?.decode(String.self) ?? "1970-01-01 00:00:00+00"
        let salt = Array(HMAC<SHA256>.authenticationCode(for: Array("salt\u{0}\(role)".utf8), using: key).prefix(16))
        let verifier = DatabaseRolePassword.scramVerifier(password: password(for: role), salt: salt)
        if let row = existing.first {
            let (privileged, comment, memberOf) = try row.decode((Bool, String, [String]).self)
            guard comment == RoleSQL.marker(connection: connection.name) else {
                throw DatabaseRoleError(
                    "the database role \(role) exists but was not made by Gatehouse for connection \(connection.name): rename or drop it, or choose another database_roles.name"
                )
            }
            guard !privileged else {
                throw DatabaseRoleError(
                    "the database role \(role) has SUPERUSER, REPLICATION or BYPASSRLS, which Gatehouse never gives: a superuser must remove them"
                )
            }
            held[role] = Set(memberOf)
            for statement in RoleSQL.restore(role, verifier: verifier, validUntil: validUntil) {
                try await run(statement, on: admin)
            }
        } else {
            for statement in RoleSQL.create(role, verifier: verifier, connection: connection.name, validUntil: validUntil) {
                try await run(statement, on: admin)
            }
            held[role] = []
            try await audit(.databaseRoleCreated, user: user, detail: ["role": role])
        }
    }

    // MARK: Reconciling

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await reconcile()
            } catch {
                logger.warning(
                    "cannot bring the database roles in line with the grants; trying again",
                    metadata: ["error": "\(Self.describe(error))"])
                await dropAdmin()
            }
            try? await Task.sleep(for: tick)
        }
        await dropAdmin()
    }

    /// Brings every role the gateway manages in line with the grants in force now.
    public func reconcile() async throws {
        try await exclusively {
            try await self.readIfNeeded()
            // One role that cannot be changed now (a lock held on it) does not keep the others waiting.
            var failures: [String] = []
            for role in self.held.keys.sorted() {
                do {
                    try await self.apply(role, user: self.roles.user(of: role), reason: "grants changed")
                } catch {
                    failures.append("\(role): \(Self.describe(error))")
                }
            }
            if !failures.isEmpty { throw DatabaseRoleError(failures.joined(separator: "; ")) }
        }
    }

    /// Reads what every role the gateway made holds, at first and every `reread`.
    private func readIfNeeded() async throws {
        if known, let lastRead, ContinuousClock.now - lastRead < reread { return }
        let admin = try await adminConnection()
        let rows = try await admin.query(
            """
            SELECT r.rolname, COALESCE(array_agg(g.rolname ORDER BY g.rolname) FILTER (WHERE g.rolname IS NOT NULL), '{}')
            FROM pg_roles r LEFT JOIN pg_auth_members m ON m.member = r.oid LEFT JOIN pg_roles g ON g.oid = m.roleid
            WHERE shobj_description(r.oid, 'pg_authid') = \(RoleSQL.marker(connection: connection.name))
            GROUP BY r.rolname
            """,
            logger: logger
        ).collect()
        var read: [String: Set<String>] = [:]
        for row in rows {
            let (role, memberOf) = try row.decode((String, [String]).self)
            // Another gateway's connection of the same name may keep roles of another form here.
            guard roles.user(of: role) != nil else { continue }
            read[role] = Set(memberOf)
        }
        let first = lastRead == nil
        held = read
        known = true
        lastRead = .now
        if first { logger.info("database roles read", metadata: ["roles": "\(read.count)"]) }
    }

    /// What `user`'s role should hold now, and the grants that give it.
    private func due(for user: String?) -> (roles: Set<String>, grants: [String: [String]]) {
        guard let user else { return ([], [:]) }
        let active = grants.activeGrants(for: user, on: connection.name, at: grants.now())
        var by: [String: [String]] = [:]
        for grant in active {
            for role in roles.grants[grant.role] ?? [] { by[role, default: []].append(grant.id) }
        }
        return (roles.memberships(grantRoles: active.map(\.role)), by)
    }

    /// Grants and revokes what `role` holds against what is due, each change audited.
    private func apply(_ role: String, user: String?, reason: String) async throws {
        let (should, byGrant) = due(for: user)
        let changes = MembershipChange.plan(member: role, holds: held[role] ?? [], should: should)
        guard !changes.isEmpty else { return }
        let admin = try await adminConnection()
        for change in changes {
            try await run(change.sql, on: admin)
            var holds = held[role] ?? []
            if change.kind == .grant { holds.insert(change.role) } else { holds.remove(change.role) }
            held[role] = holds
            var detail = ["role": role, "member_of": change.role, "reason": reason]
            if change.kind == .grant {
                detail["grants"] = byGrant[change.role]?.sorted().joined(separator: ",") ?? "base"
            } else {
                detail["reason"] =
                    roles.handedOut.contains(change.role)
                    ? "no active grant gives it" : "not a role database_roles hands out"
            }
            logger.notice(
                "database role membership changed", metadata: ["change": "\(change)", "reason": "\(detail["reason"]!)"])
            try await audit(change.kind == .grant ? .databaseRoleGranted : .databaseRoleRevoked, user: user, detail: detail)
        }
    }

    private func audit(_ type: AuditEventType, user: String?, detail: [String: String]) async throws {
        _ = try await store.appendAudit(AuditRecord(type, actor: user, connection: connection.name, detail: detail))
    }

    // MARK: The gateway's login

    private func adminConnection() async throws -> PostgresConnection {
        if let admin, !admin.isClosed { return admin }
        let opened = try await Self.connect(
            connection, tlsContext: tlsContext, applicationName: "gatehouse-roles", purpose: "to manage database roles",
            logger: logger)
        // A person can lock their own role's row (an open transaction that altered it): the gateway waits
        // seconds for it, not forever, and goes on with everyone else.
        do {
            _ = try await opened.query("SET lock_timeout = '3s'", logger: logger).collect()
            _ = try await opened.query("SET statement_timeout = '20s'", logger: logger).collect()
        } catch {
            try? await opened.close()
            throw DatabaseRoleError("cannot set the role connection's timeouts: \(Self.describe(error))")
        }
        admin = opened
        known = false
        return opened
    }

    /// Logs in to `connection`'s database as the gateway's own login.
    static func connect(
        _ connection: Connection, tlsContext: NIOSSLContext?, applicationName: String, purpose: String, logger: Logger
    ) async throws -> PostgresConnection {
        var configuration = PostgresConnection.Configuration(
            host: connection.host, port: connection.port, username: connection.user, password: connection.password,
            database: connection.database, tls: tlsContext.map { .require($0) } ?? .disable)
        configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        do {
            return try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 1, logger: logger)
        } catch {
            throw DatabaseRoleError(
                "cannot log in to \(connection.host):\(connection.port) as \(connection.user) \(purpose): \(describe(error))")
        }
    }

    private func dropAdmin() async {
        if let admin { try? await admin.close() }
        admin = nil
        known = false
    }

    private func run(_ sql: String, on admin: PostgresConnection) async throws {
        do {
            _ = try await admin.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
        } catch {
            throw DatabaseRoleError("\(sql.prefix(200)) failed: \(Self.describe(error))")
        }
    }

    /// One change of roles at a time: a login and a tick never interleave their statements.
    private func exclusively(_ body: () async throws -> Void) async throws {
        while busy { await withCheckedContinuation { waiting.append($0) } }
        busy = true
        defer {
            busy = false
            if !waiting.isEmpty { waiting.removeFirst().resume() }
        }
        do { try await body() } catch {
            known = false
            throw error
        }
    }

    static func describe(_ error: Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                let code = error.serverInfo?[.sqlState].map { " (\($0))" } ?? ""
                return message + code
            }
            return "\(error.code)"
        }
        return "\(error)"
    }
}
