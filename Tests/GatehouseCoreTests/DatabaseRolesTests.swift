import Crypto
import Foundation
import GatehouseConfig
import GatehouseConfigYAML
import GatehouseCore
import Testing

@Suite("Per-person database roles: configuration and the pure parts")
struct DatabaseRolesTests {
    static func yaml(_ databaseRoles: String) -> String {
        """
        groups: [developer, dba-leads]
        connections:
          - name: orders
            host: db
            database: app
            user: gatehouse
            trust: true
            database_roles: \(databaseRoles)
        roles:
          - {name: dba, requesters: [developer], approvers: {groups: [dba-leads]}}
        """
    }

    @Test func aConnectionDeclaresHowPeopleAppear() throws {
        let config = try ConfigLoader(environment: [:], baseDirectory: "/").parse(
            Self.yaml("{mode: per_user, name: \"gh_{user}\", base: [orders_read], grants: {dba: [orders_write]}}"),
            file: "g.yaml")
        let roles = try #require(config.connection(named: "orders")?.databaseRoles)
        #expect(roles.role(for: "alice") == "gh_alice")
        #expect(roles.user(of: "gh_alice") == "alice")
        #expect(roles.user(of: "gh_") == nil)
        #expect(roles.user(of: "alice") == nil)
        #expect(roles.memberships(grantRoles: []) == ["orders_read"])
        #expect(roles.memberships(grantRoles: ["dba"]) == ["orders_read", "orders_write"])
        #expect(roles.handedOut == ["orders_read", "orders_write"])
    }

    @Test func mistakesAreRefusedClearly() {
        #expect(configError(Self.yaml("{name: gh_user}"))?.reason.contains("{user} exactly once") == true)
        #expect(configError(Self.yaml("{name: \"gh-{user}\"}"))?.reason.contains("only letters, digits and _") == true)
        #expect(configError(Self.yaml("{mode: shared}"))?.reason.contains("per_user") == true)
        #expect(configError(Self.yaml("{base: [pg_read_all_data]}"))?.reason.contains("role of PostgreSQL itself") == true)
        #expect(configError(Self.yaml("{grants: {auditor: [x]}}"))?.reason.contains("'auditor', which is not a role") == true)
        #expect(configError(Self.yaml("{base: [gatehouse]}"))?.reason.contains("cannot also be a role") == true)
        #expect(configError(Self.yaml("{colour: red}"))?.reason.contains("unknown key 'colour'") == true)
    }

    @Test func membershipChangesRevokeFirst() {
        let changes = MembershipChange.plan(
            member: "gh_alice", holds: ["orders_read", "orders_write", "by_hand"], should: ["orders_read", "pii_read"])
        #expect(
            changes.map(\.sql) == [
                "REVOKE \"by_hand\" FROM \"gh_alice\"", "REVOKE \"orders_write\" FROM \"gh_alice\"",
                "GRANT \"pii_read\" TO \"gh_alice\"",
            ])
        #expect(MembershipChange.plan(member: "m", holds: ["a"], should: ["a"]).isEmpty)
    }

    @Test func namesAndTextsAreQuotedAsPostgreSQLReadsThem() {
        #expect(RoleSQL.identifier("gh_a\"b") == "\"gh_a\"\"b\"")
        #expect(RoleSQL.literal("it's") == "'it''s'")
        #expect(
            RoleSQL.create("gh_x", verifier: "v", connection: "c'1", validUntil: "2026-12-07 10:00:00+00")[1].hasSuffix(
                "'managed by Gatehouse for connection c''1'"))
        // The password works only until the moment the gateway gave, and stops again after its login.
        #expect(
            RoleSQL.restore("gh_x", verifier: "v", validUntil: "2026-12-07 10:00:00+00")[0]
                == #"ALTER ROLE "gh_x" LOGIN NOCREATEDB NOCREATEROLE INHERIT PASSWORD 'v' VALID UNTIL '2026-12-07 10:00:00+00'"#)
        #expect(RoleSQL.restore("gh_x", verifier: "v", validUntil: "t")[1] == #"ALTER ROLE "gh_x" RESET ALL"#)
        #expect(RoleSQL.expire("gh_x") == #"ALTER ROLE "gh_x" VALID UNTIL '1970-01-01 00:00:00+00'"#)
    }

    @Test func thePasswordIsDerivedPerConnectionAndRole() {
        let key = SymmetricKey(data: [UInt8](repeating: 7, count: 32))
        let one = DatabaseRolePassword.derive(key: key, connection: "orders", role: "gh_alice")
        #expect(one == DatabaseRolePassword.derive(key: key, connection: "orders", role: "gh_alice"))
        #expect(one != DatabaseRolePassword.derive(key: key, connection: "billing", role: "gh_alice"))
        #expect(one != DatabaseRolePassword.derive(key: key, connection: "orders", role: "gh_bob"))
        #expect(one.count == 43 && !one.contains("+") && !one.contains("/"))
    }

    @Test func theVerifierHasPostgreSQLsForm() {
        // RFC 7677's test vector: user, password "pencil", this salt, 4096 iterations.
        let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
        let verifier = DatabaseRolePassword.scramVerifier(password: "pencil", salt: salt)
        #expect(
            verifier
                == "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        )
    }
}

@Suite("What `connections check` concludes from the database's roles")
struct DatabaseRoleCheckTests {
    let roles = DatabaseRoles(name: "gh_{user}", base: ["orders_read"], grants: ["dba": ["orders_write"]])

    func facts(version: Int = 150_000, superuser: Bool = false, createRole: Bool = true) -> DatabaseRoleFacts {
        DatabaseRoleFacts(
            serverVersion: version, serverVersionText: "\(version / 10000).0", loginIsSuperuser: superuser,
            loginCanCreateRoles: createRole,
            handedOut: [
                "orders_read": .init(exists: true, privileges: ["SELECT on table orders"]),
                "orders_write": .init(exists: true, privileges: ["DELETE, SELECT on table orders"]),
            ])
    }

    @Test("a CREATEROLE login on PostgreSQL 15 needs nothing more")
    func fifteen() {
        #expect(DatabaseRoleCheck.findings(roles: roles, login: "gatehouse", facts: facts()).isEmpty)
    }

    @Test("on PostgreSQL 16 and later each role handed out must be held WITH ADMIN OPTION")
    func sixteen() {
        var sixteen = facts(version: 160_004)
        let findings = DatabaseRoleCheck.findings(roles: roles, login: "gatehouse", facts: sixteen)
        #expect(
            findings.map(\.fix) == [
                #"GRANT "orders_read" TO "gatehouse" WITH ADMIN OPTION;"#,
                #"GRANT "orders_write" TO "gatehouse" WITH ADMIN OPTION;"#,
            ])
        #expect(findings.allSatisfy { $0.severity == .problem && $0.message.contains("PostgreSQL 16") })
        sixteen.handedOut["orders_read"]?.gatewayHasAdminOption = true
        sixteen.handedOut["orders_write"]?.gatewayHasAdminOption = true
        #expect(DatabaseRoleCheck.findings(roles: roles, login: "gatehouse", facts: sixteen).isEmpty)
        // A superuser needs no ADMIN OPTION, but is told it has more than it needs.
        let superuser = DatabaseRoleCheck.findings(
            roles: roles, login: "gatehouse", facts: facts(version: 170_000, superuser: true, createRole: false))
        #expect(superuser.map(\.severity) == [.warning])
    }

    @Test("no CREATEROLE, a missing role, a privileged role: each a problem with its fix; an empty role and a stranger warn")
    func problems() {
        var broken = facts(createRole: false)
        broken.handedOut["orders_write"] = .init(exists: false)
        broken.handedOut["orders_read"] = .init(exists: true, privilegedAttributes: ["BYPASSRLS"])
        broken.strangers = ["gh_bob"]
        let findings = DatabaseRoleCheck.findings(roles: roles, login: "gatehouse", facts: broken)
        #expect(
            findings.filter { $0.severity == .problem }.map(\.fix) == [
                #"ALTER ROLE "gatehouse" CREATEROLE;"#, #"ALTER ROLE "orders_read" NOBYPASSRLS;"#,
                #"CREATE ROLE "orders_write" NOLOGIN; -- then GRANT it what it should allow"#,
            ])
        let warnings = findings.filter { $0.severity == .warning }.map(\.message)
        #expect(warnings.count == 2)
        #expect(warnings.contains { $0.hasPrefix("orders_read holds no privilege") })
        #expect(warnings.contains { $0.hasPrefix("gh_bob has the form of a person's role") })
        let report = DatabaseRoleCheck.report(
            connection: Connection(name: "orders", host: "db", database: "app", user: "gatehouse", password: nil),
            roles: roles, facts: broken, findings: findings)
        #expect(report.contains("  orders_write (grant of dba):\n    missing\n"))
        #expect(report.hasSuffix("3 problems: run the fixes as a superuser, then check again.\n"))
    }
}
