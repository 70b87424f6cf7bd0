import GatehouseCore

/// What `gatehouse connections check` reads from a connection's database, and what it concludes: pure,
/// so every conclusion is tested as a value.
public struct DatabaseRoleFacts: Sendable, Equatable {
    /// One role the connection hands out, as the database describes it.
    public struct HandedOut: Sendable, Equatable {
        public var exists: Bool
        /// SUPERUSER, REPLICATION or BYPASSRLS: more than a role handed to a person should carry.
        public var privilegedAttributes: [String]
        /// Whether the gateway's login holds it WITH ADMIN OPTION (what PostgreSQL 16 and later require
        /// of a CREATEROLE login to grant it).
        public var gatewayHasAdminOption: Bool
        /// What it may do, one line per object: `SELECT, DELETE on table public.orders`.
        public var privileges: [String]
        /// Roles it is a member of (and so passes on).
        public var memberOf: [String]
        /// Objects it owns (a few): a person holding it may act as their owner, and what an owner does
        /// (grant, reassign) outlives the grant.
        public var owns: [String]
        /// Privileges it holds WITH GRANT OPTION (a few): granted on by a person, they outlive the grant.
        public var grantOptions: [String]

        public init(
            exists: Bool, privilegedAttributes: [String] = [], gatewayHasAdminOption: Bool = false,
            privileges: [String] = [], memberOf: [String] = [], owns: [String] = [], grantOptions: [String] = []
        ) {
            self.exists = exists
            self.privilegedAttributes = privilegedAttributes
            self.gatewayHasAdminOption = gatewayHasAdminOption
            self.privileges = privileges
            self.memberOf = memberOf
            self.owns = owns
            self.grantOptions = grantOptions
        }
    }

    /// `server_version_num`, e.g. 150018.
    public var serverVersion: Int
    public var serverVersionText: String
    public var loginIsSuperuser: Bool
    public var loginCanCreateRoles: Bool
    /// Whether the login may end other roles' backends (pg_signal_backend), as a killed session needs.
    public var loginCanSignal: Bool = true
    public var handedOut: [String: HandedOut]
    /// People's roles the gateway made for this connection, and what each holds now.
    public var managed: [String: [String]]
    /// Roles of the people's form the gateway did not make: a person of that name could not log in.
    public var strangers: [String]

    public init(
        serverVersion: Int, serverVersionText: String, loginIsSuperuser: Bool, loginCanCreateRoles: Bool,
        handedOut: [String: HandedOut], managed: [String: [String]] = [:], strangers: [String] = []
    ) {
        self.serverVersion = serverVersion
        self.serverVersionText = serverVersionText
        self.loginIsSuperuser = loginIsSuperuser
        self.loginCanCreateRoles = loginCanCreateRoles
        self.handedOut = handedOut
        self.managed = managed
        self.strangers = strangers
    }
}

/// One conclusion of the check: a problem stops the gateway from managing roles (and fails the check),
/// a warning does not.
public struct DatabaseRoleFinding: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable, Equatable { case problem, warning }
    public var severity: Severity
    public var message: String
    /// SQL a superuser (or a role that may) runs to put it right; nil when there is nothing to run.
    public var fix: String?

    public init(_ severity: Severity, _ message: String, fix: String? = nil) {
        self.severity = severity
        self.message = message
        self.fix = fix
    }

    public var description: String { "\(severity): \(message)" + (fix.map { " (fix: \($0))" } ?? "") }
}

public enum DatabaseRoleCheck {
    /// PostgreSQL 16 changed CREATEROLE: a login may grant only roles it holds WITH ADMIN OPTION.
    public static let adminOptionVersion = 160000

    public static func findings(
        roles: DatabaseRoles, login: String, facts: DatabaseRoleFacts
    ) -> [DatabaseRoleFinding] {
        var findings: [DatabaseRoleFinding] = []
        let who = RoleSQL.identifier(login)
        if facts.loginIsSuperuser {
            findings.append(
                DatabaseRoleFinding(
                    .warning,
                    "\(login) is a superuser: it can manage the roles, but CREATEROLE (with ADMIN OPTION on the roles handed out) is all it needs",
                    fix: "ALTER ROLE \(who) NOSUPERUSER CREATEROLE;"))
        } else if !facts.loginCanCreateRoles {
            findings.append(
                DatabaseRoleFinding(
                    .problem, "\(login) may not create roles, so it cannot make a role for each person",
                    fix: "ALTER ROLE \(who) CREATEROLE;"))
        }
        if !facts.loginIsSuperuser && !facts.loginCanSignal {
            findings.append(
                DatabaseRoleFinding(
                    .problem,
                    "\(login) may not end a person's backend, as the gateway does when it ends their session (a kill, a grant's end)",
                    fix: "GRANT pg_signal_backend TO \(who);"))
        }
        let needsAdminOption = facts.serverVersion >= adminOptionVersion && !facts.loginIsSuperuser
        for name in roles.handedOut.sorted() {
            let role = RoleSQL.identifier(name)
            guard let held = facts.handedOut[name], held.exists else {
                findings.append(
                    DatabaseRoleFinding(
                        .problem, "\(name) does not exist in the database",
                        fix: "CREATE ROLE \(role) NOLOGIN; -- then GRANT it what it should allow"
                            + (needsAdminOption ? "\nGRANT \(role) TO \(who) WITH ADMIN OPTION;" : "")))
                continue
            }
            if !held.privilegedAttributes.isEmpty {
                findings.append(
                    DatabaseRoleFinding(
                        .problem,
                        "\(name) has \(held.privilegedAttributes.joined(separator: ", ")): handed to a person it would make them that",
                        fix: "ALTER ROLE \(role) \(held.privilegedAttributes.map { "NO" + $0 }.joined(separator: " "));"))
            }
            if needsAdminOption && !held.gatewayHasAdminOption {
                findings.append(
                    DatabaseRoleFinding(
                        .problem,
                        "\(login) does not hold \(name) WITH ADMIN OPTION, which PostgreSQL \(facts.serverVersion / 10000) requires to grant it",
                        fix: "GRANT \(role) TO \(who) WITH ADMIN OPTION;"))
            }
            if !held.owns.isEmpty && roles.grants.values.contains(where: { $0.contains(name) }) {
                findings.append(
                    DatabaseRoleFinding(
                        .problem,
                        "\(name) owns \(held.owns.joined(separator: ", ")): while a grant gives it, a person may act as the owner, and what an owner does (GRANT, REASSIGN OWNED) outlives the grant",
                        fix:
                            "REASSIGN OWNED BY \(role) TO <the objects' real owner>; -- then GRANT \(role) only the privileges it should give"
                    ))
            }
            if !held.grantOptions.isEmpty && roles.grants.values.contains(where: { $0.contains(name) }) {
                findings.append(
                    DatabaseRoleFinding(
                        .problem,
                        "\(name) holds \(held.grantOptions.joined(separator: ", ")) WITH GRANT OPTION: a person holding it could grant them on, and those grants outlive theirs",
                        fix: "REVOKE GRANT OPTION FOR ALL ON <those objects> FROM \(role);"))
            }
            if held.privileges.isEmpty && held.memberOf.isEmpty {
                findings.append(
                    DatabaseRoleFinding(.warning, "\(name) holds no privilege on any table, schema or function: it gives nothing")
                )
            }
        }
        for stranger in facts.strangers.sorted() {
            findings.append(
                DatabaseRoleFinding(
                    .warning,
                    "\(stranger) has the form of a person's role (\(roles.name)) but Gatehouse did not make it: that person could not connect until it is renamed or dropped"
                ))
        }
        return findings
    }

    /// The report `gatehouse connections check` prints.
    public static func report(
        connection: Connection, roles: DatabaseRoles?, facts: DatabaseRoleFacts, findings: [DatabaseRoleFinding]
    ) -> String {
        var lines = [
            "\(connection.name): PostgreSQL \(facts.serverVersionText) on \(connection.host):\(connection.port), database \(connection.database), logged in as \(connection.user)"
        ]
        guard let roles else {
            lines.append("database_roles is not set: every session logs in as \(connection.user).")
            return lines.joined(separator: "\n") + "\n"
        }
        lines.append("People log in as \(roles.name), holding:")
        var origins: [String: [String]] = [:]
        for name in roles.base { origins[name, default: []].append("everyone") }
        for (jit, names) in roles.grants.sorted(by: { $0.key < $1.key }) {
            for name in names { origins[name, default: []].append("grant of \(jit)") }
        }
        for name in roles.handedOut.sorted() {
            let held = facts.handedOut[name]
            lines.append("  \(name) (\(origins[name, default: []].joined(separator: ", "))):")
            guard let held, held.exists else {
                lines.append("    missing")
                continue
            }
            if !held.memberOf.isEmpty { lines.append("    member of \(held.memberOf.sorted().joined(separator: ", "))") }
            for privilege in held.privileges { lines.append("    \(privilege)") }
            if held.privileges.isEmpty && held.memberOf.isEmpty { lines.append("    nothing") }
        }
        if facts.managed.isEmpty {
            lines.append("No person's role yet: each is made at its person's first session.")
        } else {
            lines.append("People's roles the gateway made (\(facts.managed.count)):")
            for (role, holds) in facts.managed.sorted(by: { $0.key < $1.key }) {
                lines.append("  \(role): \(holds.isEmpty ? "nothing" : holds.sorted().joined(separator: ", "))")
            }
        }
        let problems = findings.filter { $0.severity == .problem }
        if findings.isEmpty {
            lines.append("OK: the gateway's login can manage these roles.")
        } else {
            for finding in findings {
                lines.append("\(finding.severity == .problem ? "PROBLEM" : "warning"): \(finding.message)")
                if let fix = finding.fix {
                    for (index, line) in fix.split(separator: "\n").enumerated() {
                        lines.append("  \(index == 0 ? "fix:" : "    ") \(line)")
                    }
                }
            }
            lines.append(
                problems.isEmpty
                    ? "OK, with \(findings.count) warning\(findings.count == 1 ? "" : "s")."
                    : "\(problems.count) problem\(problems.count == 1 ? "" : "s"): run the fixes as a superuser, then check again."
            )
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
