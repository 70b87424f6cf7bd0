import Foundation
import GatehouseAuth
import GatehouseCore
import GatehouseHTTP
import GatehouseStore
import Hummingbird
import HummingbirdTesting
import Testing

@testable import GatehouseProxy
@testable import GatehouseSessions

/// Who may see and do what: every API route, called by six principals on a fresh gateway each time.
@Suite("Authorization matrix")
struct AuthorizationMatrixTests {
    /// The callers: nobody, a requester (alice, who owns the session, request and challenges), another
    /// developer (bob), an approver of the `dba` role (dave), an auditor (carol) and an admin.
    static let principals = ["anonymous", "alice", "bob", "dave", "carol", "admin"]

    static let yaml = """
        groups: [developer, dba]
        connections:
          - {name: app, host: 127.0.0.1, port: 5432, database: app, user: app, trust: true}
        roles:
          - name: dba
            requesters: [developer]
            connections: [app]
            max_duration: 1h
            reason: {required: true}
            approvers: {groups: [dba]}
        policy:
          rules:
            - name: developers-read-only
              match: {groups: [developer], writes: true, elevated: false}
              action: deny
        """

    /// One route and the status each principal gets, in the order of `principals`.
    struct Case: Sendable, CustomTestStringConvertible {
        var route: String
        var uri: String
        var body: String?
        var expected: [Int]
        var testDescription: String { route }

        init(_ route: String, body: String? = nil, _ expected: [Int]) {
            self.init(route, String(route.split(separator: " ")[1]), body: body, expected)
        }

        init(_ route: String, _ uri: String, body: String? = nil, _ expected: [Int]) {
            self.route = route
            self.uri = uri
            self.body = body
            self.expected = expected
        }

        var method: HTTPRequest.Method { HTTPRequest.Method(String(route.split(separator: " ")[0]))! }
    }

    static let everyone = [200, 200, 200, 200, 200, 200]
    static let signedIn = [401, 200, 200, 200, 200, 200]
    static let seesAll = [401, 403, 403, 403, 200, 200]
    static let ownerOrAdmin = [401, 200, 403, 403, 403, 200]
    static let approverOnly = [401, 403, 403, 200, 403, 403]

    static let cases: [Case] = [
        Case("GET /api/v1/health", everyone),
        Case("GET /api/v1/openapi.yaml", everyone),
        Case("GET /api/v1/openapi.json", everyone),
        Case("POST /api/v1/login", body: #"{"user":"bob","password":"\#(Seed.bobPassword)"}"#, everyone),
        Case("POST /api/v1/logout", signedIn),
        Case("GET /api/v1/me", signedIn),
        Case("POST /api/v1/tokens", signedIn),
        Case("POST /api/v1/tokens/revoke", body: #"{"user":"alice"}"#, ownerOrAdmin),
        Case("POST /api/v1/tokens/service", body: #"{"user":"ci","ttl":"1d"}"#, [401, 403, 403, 403, 403, 200]),
        Case("GET /api/v1/sessions", signedIn),
        Case("DELETE /api/v1/sessions/:id", "/api/v1/sessions/s-alice", ownerOrAdmin),
        Case("GET /api/v1/audit", signedIn),
        Case("GET /api/v1/audit/verify", seesAll),
        Case("GET /api/v1/audit/export", "/api/v1/audit/export?actor=alice", [401, 200, 403, 403, 200, 200]),
        Case(
            "PUT /api/v1/users/:name/password", "/api/v1/users/alice/password",
            body: #"{"password":"a-new-password-1","current_password":"\#(Seed.alicePassword)"}"#, ownerOrAdmin),
        Case("GET /api/v1/users", seesAll),
        Case("GET /api/v1/groups", seesAll),
        Case("GET /api/v1/service-accounts", seesAll),
        Case("GET /api/v1/connections", signedIn),
        Case("GET /api/v1/policy", signedIn),
        Case(
            "POST /api/v1/policy/test", body: #"{"sql":"UPDATE t SET a = 1 WHERE id = 2","connection":"app","user":"bob"}"#,
            [401, 403, 200, 403, 200, 200]),
        Case("GET /api/v1/roles", signedIn),
        Case("GET /api/v1/grants", signedIn),
        // Enrolling for bob: only an admin may; bob himself is asked for his password.
        Case("POST /api/v1/mfa/enroll", body: #"{"user":"bob"}"#, [401, 403, 401, 403, 403, 200]),
        // Each caller confirms only their own enrolment: alice's code is wrong, the others have none.
        Case("POST /api/v1/mfa/confirm", body: #"{"code":"123456"}"#, [401, 401, 409, 409, 409, 409]),
        Case("GET /api/v1/challenges", signedIn),
        Case(
            "POST /api/v1/challenges/:id/verify", "/api/v1/challenges/c-step/verify", body: #"{"code":"{code}"}"#,
            ownerOrAdmin.replacing(5, 403)),
        Case("POST /api/v1/challenges/:id/approve", "/api/v1/challenges/c-approve/approve", approverOnly),
        Case("POST /api/v1/challenges/:id/deny", "/api/v1/challenges/c-approve/deny", approverOnly),
        Case(
            "POST /api/v1/requests", body: #"{"role":"dba","connection":"app","duration":"30m","reason":"OPS-2"}"#,
            [401, 200, 200, 403, 403, 403]),
        Case("GET /api/v1/requests", signedIn),
        Case("POST /api/v1/requests/:id/approve", "/api/v1/requests/{request}/approve", approverOnly),
        Case("POST /api/v1/requests/:id/deny", "/api/v1/requests/{request}/deny", approverOnly),
        Case("POST /api/v1/requests/:id/revoke", "/api/v1/requests/{request}/revoke", [401, 200, 403, 200, 403, 200]),
        Case("GET /metrics", seesAll),
    ]

    /// A gateway with something to act on: a live session each for alice and bob, a pending request of
    /// alice's, a statement of alice's waiting for her code and one waiting for a dba's approval.
    struct Fixture {
        var harness: Harness
        var requestID: String
        /// Alice's next valid code.
        var code: String

        static func make() async throws -> Fixture {
            let harness = try await Harness.make(yaml: yaml)
            try await harness.store.saveUser(
                StoredUser(user: User(name: "ci", groups: ["developer"]), source: .service, passwordHash: nil))
            let target = UpstreamCancelTarget(host: "db", port: 5432, processID: 1, secretKey: 2)
            _ = harness.registry.register(harness.session("s-alice", user: "alice"), cancelTarget: target) { _ in }
            _ = harness.registry.register(harness.session("s-bob", user: "bob"), cancelTarget: target) { _ in }
            let alice = try await harness.user("alice")
            let request = try await harness.grants.submit(
                requester: alice, role: "dba", connection: "app", duration: 1800, reason: "OPS-1", startAt: nil)
            let enrolment = try await harness.stepUp.enroll(user: "alice", proof: .password)
            let totp = TOTP(secret: try #require(Base32.decode(enrolment.secret)))
            try await harness.stepUp.confirm(user: "alice", code: totp.code(at: harness.clock.now))
            harness.clock.advance(30)
            let now = harness.clock.now
            for (id, kind) in [("c-step", Challenge.Kind.stepUp), ("c-approve", .approve)] {
                await harness.stepUp.open(
                    Challenge(
                        id: id, kind: kind, user: "alice", session: "s-alice", connection: "app",
                        statement: "UPDATE t SET a = 1 WHERE id = 2", fingerprint: "f", rules: ["r"], reason: "held",
                        approvers: kind == .approve ? ["group:dba"] : [], createdAt: now,
                        expiresAt: now.addingTimeInterval(120))
                ) { _ in }
            }
            return Fixture(harness: harness, requestID: request.id, code: totp.code(at: now))
        }
    }

    @Test("each principal gets the documented status", arguments: cases)
    func matrix(_ testCase: Case) async throws {
        for (index, principal) in Self.principals.enumerated() {
            let fixture = try await Fixture.make()
            let token = principal == "anonymous" ? nil : try await fixture.harness.loginToken(principal)
            let uri = testCase.uri.replacingOccurrences(of: "{request}", with: fixture.requestID)
            let body = testCase.body?.replacingOccurrences(of: "{code}", with: fixture.code)
            try await fixture.harness.test { client in
                let response = try await client.send(testCase.method, uri, token: token, json: body)
                #expect(
                    Int(response.status.code) == testCase.expected[index],
                    "\(testCase.route) as \(principal): \(response.status.code) \(response.text.prefix(300))")
            }
        }
    }

    @Test("the matrix covers every API route, and the OpenAPI document describes exactly those")
    func everyRouteIsCoveredAndDocumented() async throws {
        let harness = try await Harness.make(yaml: Self.yaml)
        let routes = Set(
            harness.router().routes.map { "\($0.method) \($0.path)" }.filter {
                !$0.contains(" /console") && !$0.hasSuffix(" /console")
            }
        )
        // The router writes parameters as {id}; the table as Hummingbird's :id.
        let braced = Self.cases.map { $0.route.replacing(/:([a-z]+)/) { "{\($0.output.1)}" } }
        #expect(routes == Set(braced))

        let document = try #require(try JSONSerialization.jsonObject(with: OpenAPIDocument.json()) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var documented = Set<String>()
        for (path, operations) in paths {
            for method in operations.keys where ["get", "post", "put", "delete", "patch"].contains(method) {
                documented.insert("\(method.uppercased()) \(path)")
            }
        }
        #expect(documented == routes)
        try await harness.test { _ in }
    }

    @Test("lists show each principal what they may see")
    func listsAreFilteredByWhoAsks() async throws {
        let fixture = try await Fixture.make()
        let harness = fixture.harness
        var tokens: [String: String] = [:]
        for name in Self.principals.dropFirst() { tokens[name] = try await harness.loginToken(name) }
        let frozen = tokens
        try await harness.test { client in
            func sessions(_ name: String) async throws -> [String] {
                try await client.send(.get, "/api/v1/sessions", token: frozen[name]).decode(API.Sessions.self).sessions.map(\.id)
                    .sorted()
            }
            #expect(try await sessions("alice") == ["s-alice"])
            #expect(try await sessions("dave") == [])
            #expect(try await sessions("carol") == ["s-alice", "s-bob"])
            #expect(try await sessions("admin") == ["s-alice", "s-bob"])

            func challenges(_ name: String) async throws -> [String] {
                try await client.send(.get, "/api/v1/challenges", token: frozen[name]).decode(API.Challenges.self).challenges
                    .map(\.id).sorted()
            }
            #expect(try await challenges("alice") == ["c-approve", "c-step"])
            #expect(try await challenges("bob") == [])
            #expect(try await challenges("dave") == ["c-approve"])
            #expect(try await challenges("carol") == ["c-approve", "c-step"])

            func requests(_ name: String) async throws -> [String] {
                try await client.send(.get, "/api/v1/requests", token: frozen[name]).decode(API.AccessRequests.self).requests
                    .map(\.requester)
            }
            #expect(try await requests("alice") == ["alice"])
            #expect(try await requests("bob") == [])
            #expect(try await requests("dave") == ["alice"])
            #expect(try await requests("carol") == ["alice"])

            func actors(_ name: String) async throws -> Set<String> {
                Set(
                    try await client.send(.get, "/api/v1/audit?limit=1000", token: frozen[name]).decode(API.AuditPage.self)
                        .events.compactMap(\.actor))
            }
            #expect(try await actors("alice") == ["alice"])
            #expect(try await actors("bob") == [])
            #expect(try await actors("carol").isSuperset(of: ["alice"]))

            let roles = try await client.send(.get, "/api/v1/roles", token: frozen["alice"]).decode(API.Roles.self)
            #expect(roles.roles.map(\.name) == ["dba"])
            let none = try await client.send(.get, "/api/v1/roles", token: frozen["dave"]).decode(API.Roles.self)
            #expect(none.roles.isEmpty)
        }
    }
}

extension Array where Element == Int {
    /// A copy with the status at `index` changed.
    func replacing(_ index: Int, _ status: Int) -> [Int] {
        var copy = self
        copy[index] = status
        return copy
    }
}
