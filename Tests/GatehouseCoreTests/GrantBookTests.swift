import Foundation
import GatehouseConfig
import GatehouseConfigYAML
import GatehouseCore
import Testing

@Suite("Just-in-time grants: the request and grant state machine")
struct GrantBookTests {
    /// Wednesday 2026-11-25 10:00 UTC.
    let t0 = Date(timeIntervalSince1970: 1_795_600_800)

    func book() -> GrantBook {
        GrantBook(roles: [
            RequestableRole(
                name: "dba", requesters: ["developer"], connections: ["prod"], maxDuration: 3600, reasonRequired: true,
                reasonPattern: "[A-Z]+-[0-9]+", approverGroups: ["dba-leads"], approvalsNeeded: 1,
                autoApprove: .init(groups: ["oncall"], maxDuration: 900, reasonPattern: "INC-[0-9]+"),
                breakGlass: .init(maxDuration: 1800), pendingTimeout: 600),
            RequestableRole(
                name: "auditor", requesters: ["developer"], maxDuration: 7200, reasonRequired: false,
                approverGroups: ["security"], approvalsNeeded: 2),
        ])
    }

    @Test("a request waits, an approver approves, the grant is active for its duration from approval, then ends")
    func lifecycle() throws {
        var grants = book()
        let request = try grants.submit(
            id: "r1", requester: "ada", groups: ["developer"], role: "dba", connection: "prod", duration: 1800,
            reason: "OPS-42 fix the index", at: t0)
        #expect(request.state == .pending)
        #expect(grants.activeGrants(for: "ada", at: t0).isEmpty)
        let approved = try grants.approve("r1", by: "lin", groups: ["dba-leads"], at: t0.addingTimeInterval(60))
        #expect(approved.state == .approved)
        #expect(approved.activeFrom == t0.addingTimeInterval(60))
        #expect(approved.expiresAt == t0.addingTimeInterval(60 + 1800))
        #expect(grants.activeGrants(for: "ada", on: "prod", at: t0.addingTimeInterval(61)).map(\.id) == ["r1"])
        #expect(grants.activeGrants(for: "ada", on: "staging", at: t0.addingTimeInterval(61)).isEmpty)
        #expect(grants.nextDeadline(after: t0.addingTimeInterval(61)) == t0.addingTimeInterval(1860))
        #expect(grants.grantsEnded(after: t0.addingTimeInterval(1859), upTo: t0.addingTimeInterval(1860)).map(\.id) == ["r1"])
        #expect(grants.activeGrants(for: "ada", at: t0.addingTimeInterval(1860)).isEmpty)
    }

    @Test("requests are checked: role, requester group, connection, duration, reason and its pattern")
    func validation() {
        var grants = book()
        func code(_ body: (inout GrantBook) throws -> AccessRequest) -> GrantError.Code? {
            do {
                _ = try body(&grants)
                return nil
            } catch let error as GrantError {
                return error.code
            } catch {
                return nil
            }
        }
        #expect(
            code {
                try $0.submit(
                    id: "a", requester: "ada", groups: ["developer"], role: "root", connection: "prod", duration: 60,
                    reason: "X-1", at: t0)
            } == .unknownRole)
        #expect(
            code {
                try $0.submit(
                    id: "b", requester: "eve", groups: ["sales"], role: "dba", connection: "prod", duration: 60, reason: "X-1",
                    at: t0)
            } == .notARequester)
        #expect(
            code {
                try $0.submit(
                    id: "c", requester: "ada", groups: ["developer"], role: "dba", connection: "staging", duration: 60,
                    reason: "X-1", at: t0)
            } == .wrongConnection)
        #expect(
            code {
                try $0.submit(
                    id: "d", requester: "ada", groups: ["developer"], role: "dba", connection: "prod", duration: 7200,
                    reason: "X-1", at: t0)
            } == .tooLong)
        #expect(
            code {
                try $0.submit(
                    id: "e", requester: "ada", groups: ["developer"], role: "dba", connection: "prod", duration: 60, reason: " ",
                    at: t0)
            } == .reasonRequired)
        #expect(
            code {
                try $0.submit(
                    id: "f", requester: "ada", groups: ["developer"], role: "dba", connection: "prod", duration: 60,
                    reason: "because", at: t0)
            } == .reasonMismatch)
        #expect(
            code {
                try $0.submit(
                    id: "g", requester: "ada", groups: ["developer"], role: "auditor", connection: nil, duration: 60, reason: "",
                    at: t0)
            } == nil)
    }

    @Test("no self-approval; only approver groups decide; a denial wins over approvals already given")
    func decisions() throws {
        var grants = book()
        _ = try grants.submit(
            id: "r", requester: "ada", groups: ["developer", "security"], role: "auditor", connection: nil, duration: 600,
            reason: "", at: t0)
        #expect(throws: GrantError.self) { _ = try grants.approve("r", by: "ada", groups: ["security"], at: t0) }
        #expect(throws: GrantError.self) { _ = try grants.approve("r", by: "bob", groups: ["developer"], at: t0) }
        let first = try grants.approve("r", by: "sam", groups: ["security"], at: t0)
        #expect(first.state == .pending, "two approvals are needed")
        #expect(throws: GrantError.self) { _ = try grants.approve("r", by: "sam", groups: ["security"], at: t0) }
        let denied = try grants.deny("r", by: "kim", groups: ["security"], reason: "not needed", at: t0)
        #expect(denied.state == .denied)
        #expect(denied.deniedBy == "kim")
        #expect(throws: GrantError.self) { _ = try grants.approve("r", by: "joe", groups: ["security"], at: t0) }
        #expect(grants.activeGrants(for: "ada", at: t0).isEmpty)
    }

    @Test("auto-approval when its conditions hold; otherwise the request waits")
    func autoApproval() throws {
        var grants = book()
        let auto = try grants.submit(
            id: "a", requester: "ada", groups: ["developer", "oncall"], role: "dba", connection: "prod", duration: 900,
            reason: "INC-7 outage", at: t0)
        #expect(auto.state == .approved)
        #expect(auto.autoApproved)
        let tooLong = try grants.submit(
            id: "b", requester: "ada", groups: ["developer", "oncall"], role: "dba", connection: "prod", duration: 901,
            reason: "INC-7 outage", at: t0)
        #expect(tooLong.state == .pending)
        let notOncall = try grants.submit(
            id: "c", requester: "bo", groups: ["developer"], role: "dba", connection: "prod", duration: 600, reason: "INC-7",
            at: t0)
        #expect(notOncall.state == .pending)
    }

    @Test("revocation ends a grant at once; only the requester, an approver or an admin may revoke")
    func revocation() throws {
        var grants = book()
        _ = try grants.submit(
            id: "r", requester: "ada", groups: ["developer"], role: "dba", connection: "prod", duration: 1800, reason: "OPS-1",
            at: t0)
        _ = try grants.approve("r", by: "lin", groups: ["dba-leads"], at: t0)
        #expect(throws: GrantError.self) { _ = try grants.revoke("r", by: "eve", groups: ["developer"], isAdmin: false, at: t0) }
        let revoked = try grants.revoke("r", by: "lin", groups: ["dba-leads"], isAdmin: false, at: t0.addingTimeInterval(10))
        #expect(revoked.state == .revoked)
        #expect(grants.activeGrants(for: "ada", at: t0.addingTimeInterval(11)).isEmpty)
        #expect(throws: GrantError.self) { _ = try grants.revoke("r", by: "lin", groups: ["dba-leads"], isAdmin: false, at: t0) }
    }

    @Test("pending requests lapse; a scheduled start waits for its time")
    func lapseAndSchedule() throws {
        var grants = book()
        _ = try grants.submit(
            id: "p", requester: "ada", groups: ["developer"], role: "dba", connection: "prod", duration: 600, reason: "OPS-2",
            at: t0)
        #expect(grants.lapse(at: t0.addingTimeInterval(599)).isEmpty)
        #expect(grants.lapse(at: t0.addingTimeInterval(600)).map(\.id) == ["p"])
        #expect(throws: GrantError.self) {
            _ = try grants.approve("p", by: "lin", groups: ["dba-leads"], at: t0.addingTimeInterval(601))
        }

        _ = try grants.submit(
            id: "s", requester: "ada", groups: ["developer"], role: "dba", connection: "prod", duration: 600, reason: "OPS-3",
            startAt: t0.addingTimeInterval(3600), at: t0)
        let approved = try grants.approve("s", by: "lin", groups: ["dba-leads"], at: t0.addingTimeInterval(10))
        #expect(approved.activeFrom == t0.addingTimeInterval(3600))
        #expect(grants.activeGrants(for: "ada", at: t0.addingTimeInterval(20)).isEmpty)
        #expect(grants.activeGrants(for: "ada", at: t0.addingTimeInterval(3601)).map(\.id) == ["s"])
    }

    @Test("break-glass: self-activated, short, only where the role allows it")
    func breakGlass() throws {
        var grants = book()
        let glass = try grants.breakGlass(
            id: "g", requester: "ada", groups: ["developer"], role: "dba", connection: "prod", duration: 1800,
            reason: "INC-9 down", at: t0)
        #expect(glass.state == .approved)
        #expect(glass.breakGlass)
        #expect(glass.expiresAt == t0.addingTimeInterval(1800))
        #expect(throws: GrantError.self) {
            _ = try grants.breakGlass(
                id: "h", requester: "ada", groups: ["developer"], role: "dba", connection: "prod", duration: 1801,
                reason: "INC-9", at: t0)
        }
        #expect(throws: GrantError.self) {
            _ = try grants.breakGlass(
                id: "i", requester: "ada", groups: ["developer"], role: "auditor", connection: nil, duration: 60, reason: "",
                at: t0)
        }
    }

    @Test("a restart restores requests and grants as they were")
    func restore() throws {
        var grants = book()
        _ = try grants.submit(
            id: "r", requester: "ada", groups: ["developer"], role: "dba", connection: "prod", duration: 1800, reason: "OPS-5",
            at: t0)
        _ = try grants.approve("r", by: "lin", groups: ["dba-leads"], at: t0)
        let encoded = try JSONEncoder().encode(Array(grants.requests.values))
        var restarted = book()
        restarted.restore(try JSONDecoder().decode([AccessRequest].self, from: encoded))
        #expect(restarted.activeGrants(for: "ada", on: "prod", at: t0.addingTimeInterval(5)).map(\.id) == ["r"])
    }
}

@Suite("Requestable roles in the configuration")
struct RolesConfigTests {
    let base = """
        groups: [developer, dba-leads, oncall]
        connections:
          - {name: prod, host: db, database: app, user: app, trust: true}
        """

    func load(_ roles: String) throws -> [RequestableRole] {
        try ConfigLoader(environment: [:], baseDirectory: "/").parse(base + "\n" + roles, file: "roles.yaml").roles
    }

    @Test("a complete role reads into the model")
    func complete() throws {
        let roles = try load(
            """
            roles:
              - name: dba
                requesters: [developer]
                connections: [prod]
                max_duration: 1h
                pending_timeout: 30m
                reason: {required: true, pattern: "[A-Z]+-[0-9]+"}
                approvers: {groups: [dba-leads], count: 2, step_up: true}
                auto_approve: {groups: [oncall], max_duration: 15m, reason_pattern: "INC-[0-9]+", during: {days: [mon-fri], hours: "09:00-18:00"}}
                break_glass: {max_duration: 20m}
            """)
        let role = try #require(roles.first)
        #expect(role.name == "dba")
        #expect(role.requesters == ["developer"])
        #expect(role.connections == ["prod"])
        #expect(role.maxDuration == 3600)
        #expect(role.pendingTimeout == 1800)
        #expect(role.reasonPattern == "[A-Z]+-[0-9]+")
        #expect(role.approverGroups == ["dba-leads"])
        #expect(role.approvalsNeeded == 2)
        #expect(role.approverStepUp)
        #expect(role.autoApprove?.groups == ["oncall"])
        #expect(role.autoApprove?.maxDuration == 900)
        #expect(role.autoApprove?.weekdays == [2, 3, 4, 5, 6])
        #expect(role.breakGlass?.maxDuration == 1200)
    }

    @Test("bad roles are refused with line and reason")
    func errors() {
        func error(_ yaml: String) -> String {
            do {
                _ = try load(yaml)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(
            error("roles:\n  - {name: dba, requesters: [nobody], approvers: {groups: [dba-leads]}}").contains(
                "group 'nobody' is not declared"))
        #expect(error("roles:\n  - {name: dba, requesters: [developer]}").contains("can never be granted"))
        #expect(
            error("roles:\n  - {name: dba, requesters: [developer], connections: [nowhere], approvers: {groups: [dba-leads]}}")
                .contains("'nowhere' is not declared"))
        #expect(
            error("roles:\n  - {name: dba, requesters: [developer], reason: {pattern: \"[\"}, approvers: {groups: [dba-leads]}}")
                .contains("not a valid regular expression"))
        #expect(
            error("roles:\n  - {name: dba, requesters: [developer], aprovers: {groups: [dba-leads]}}").contains(
                "roles.yaml:5: unknown key 'aprovers'"))
    }
}
