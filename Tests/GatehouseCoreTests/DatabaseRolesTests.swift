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
            RoleSQL.create("gh_x", verifier: "v", connection: "c'1")[1].hasSuffix("'managed by Gatehouse for connection c''1'"))
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
