import Foundation
import GatehouseAuth
import GatehouseCore
import GatehouseHTTP
import GatehouseStore
import Hummingbird
import HummingbirdTesting
import NIOConcurrencyHelpers
import Prometheus
import Testing

@testable import GatehouseProxy
@testable import GatehouseSessions

/// What the read routes answer, the audit filters and export, throttling, and `/metrics`.
@Suite("API read routes, audit queries, throttles and metrics")
struct APIReadRoutesTests {
    @Test func auditFiltersAgreeWithTheQueryValue() async throws {
        let harness = try await Harness.make()
        let records: [AuditRecord] = [
            AuditRecord(.sessionStart, actor: "alice", session: "a1", connection: "app"),
            AuditRecord(.statementDenied, actor: "alice", session: "a1", connection: "app"),
            AuditRecord(.statementAllowed, actor: "bob", session: "b1", connection: "crm"),
            AuditRecord(.grantActivated, actor: "dave"),
            AuditRecord(.statementHeld, actor: "bob", session: "b1", connection: "crm"),
        ]
        for record in records {
            _ = try await harness.store.appendAudit(record)
            harness.clock.advance(60)
        }
        let all = try await harness.auditEvents()
        let middle = try #require(Timestamp.parse(all[2].time))
        let queries: [AuditQuery] = [
            AuditQuery(type: "statement."), AuditQuery(type: "statement*"), AuditQuery(type: "statement.denied"),
            AuditQuery(type: "statement"), AuditQuery(actor: "bob"), AuditQuery(session: "a1"),
            AuditQuery(connection: "crm"), AuditQuery(since: middle), AuditQuery(until: middle),
            AuditQuery(type: "statement.", actor: "bob", since: middle),
        ]
        for query in queries {
            let stored = try await harness.store.queryAudit(query).map(\.seq)
            let expected = all.filter(query.matches).map(\.seq)
            #expect(stored == expected, "\(query)")
        }
        #expect(try await harness.store.queryAudit(AuditQuery(type: "statement.")).count == 3)
        #expect(try await harness.store.queryAudit(AuditQuery(type: "statement")).isEmpty)
        let newest = try await harness.store.queryAudit(AuditQuery(beforeSeq: 5, limit: 2, newestFirst: true))
        #expect(newest.map(\.seq) == [4, 3])
        try await harness.test { _ in }
    }

    @Test func adminsQueryAndExportTheTrailWithFilters() async throws {
        let harness = try await Harness.make()
        for n in 1...7 {
            _ = try await harness.store.appendAudit(
                AuditRecord(n.isMultiple(of: 2) ? .statementDenied : .statementAllowed, actor: "alice", session: "s\(n)"))
        }
        let admin = try await harness.loginToken("admin")
        try await harness.test { client in
            let denied = try await client.send(.get, "/api/v1/audit?type=statement.denied&order=desc", token: admin)
                .decode(API.AuditPage.self)
            #expect(denied.events.map(\.session) == ["s6", "s4", "s2"])
            expectAPIError(
                try await client.send(.get, "/api/v1/audit?since=yesterday", token: admin), .badRequest, code: "bad_request",
                messageContains: "since must be a date")
            expectAPIError(
                try await client.send(.get, "/api/v1/audit?order=sideways", token: admin), .badRequest, code: "bad_request")

            let export = try await client.send(.get, "/api/v1/audit/export?type=statement.", token: admin)
            #expect(export.status == .ok)
            #expect(export.headers[.contentType] == "application/x-ndjson")
            let lines = export.text.split(separator: "\n")
            #expect(lines.count == 7)
            let events = try lines.map { try JSONDecoder().decode(AuditEvent.self, from: Data($0.utf8)) }
            #expect(events.map(\.seq) == events.map(\.seq).sorted())
            // The exported events are the stored ones, hashes and all: the chain verifies offline.
            var verifier = AuditChain.Verifier()
            for event in try await harness.auditEvents() { verifier.add(event) }
            #expect(verifier.report.isIntact)
            #expect(Set(events.map(\.hash)).isSubset(of: Set(try await harness.auditEvents().map(\.hash))))
        }
    }

    @Test func directoryRoutesShowPeopleAndConnectionsButNoSecrets() async throws {
        let harness = try await Harness.make(yaml: AuthorizationMatrixTests.yaml)
        let carol = try await harness.loginToken("carol")
        let alice = try await harness.loginToken("alice")
        try await harness.test { client in
            let users = try await client.send(.get, "/api/v1/users", token: carol).decode(API.Users.self)
            #expect(users.users.map(\.name) == ["admin", "alice", "bob", "carol", "dave"])
            #expect(users.users.first { $0.name == "alice" }?.has_password == true)
            #expect(users.users.first { $0.name == "carol" }?.has_password == false)
            let groups = try await client.send(.get, "/api/v1/groups", token: carol).decode(API.Groups.self)
            #expect(groups.groups.first { $0.name == "developer" }?.members == ["alice", "bob"])
            #expect(groups.groups.first { $0.name == "auditors" }?.members == ["carol"])

            let connections = try await client.send(.get, "/api/v1/connections", token: alice)
            #expect(try connections.decode(API.Connections.self).connections.map(\.name) == ["app"])
            #expect(!connections.text.contains("password"))

            let policy = try await client.send(.get, "/api/v1/policy", token: alice).decode(API.PolicyView.self)
            #expect(policy.rules.map(\.name) == ["developers-read-only"])
            #expect(policy.rules[0].conditions == ["groups: developer", "not elevated", "writes"])
        }
    }

    @Test func theDryRunAnswersAsTheGatewayWould() async throws {
        let harness = try await Harness.make(yaml: AuthorizationMatrixTests.yaml)
        let alice = try await harness.loginToken("alice")
        try await harness.test { client in
            let denied = try await client.send(
                .post, "/api/v1/policy/test", token: alice,
                json: #"{"sql":"DELETE FROM orders WHERE id = 1","connection":"app"}"#
            ).decode(API.PolicyTestResult.self)
            #expect(denied.user == "alice")
            #expect(denied.decision.action == .deny)
            #expect(denied.decision.matched.map(\.name) == ["developers-read-only"])
            #expect(denied.inspection.statements.count == 1)
            let elevated = try await client.send(
                .post, "/api/v1/policy/test", token: alice,
                json: #"{"sql":"DELETE FROM orders WHERE id = 1","connection":"app","roles":["dba"]}"#
            ).decode(API.PolicyTestResult.self)
            #expect(elevated.decision.action == .allow)
            expectAPIError(
                try await client.send(
                    .post, "/api/v1/policy/test", token: alice, json: #"{"sql":"SELECT 1","connection":"nowhere"}"#),
                .notFound, code: "not_found", message: "connection nowhere is not configured")
            let unparsable = try await client.send(
                .post, "/api/v1/policy/test", token: alice, json: #"{"sql":"SELEC 1","connection":"app"}"#
            ).decode(API.PolicyTestResult.self)
            #expect(unparsable.decision.action == .deny)
        }
    }

    @Test func passwordGuessesAreThrottledPerAccount() async throws {
        let harness = try await Harness.make()
        try await harness.test { client in
            for _ in 1...5 {
                let response = try await client.send(
                    .post, "/api/v1/login", json: #"{"user":"alice","password":"wrong-password"}"#)
                #expect(response.status == .unauthorized)
            }
            let limited = try await client.send(.post, "/api/v1/login", json: #"{"user":"alice","password":"wrong-password"}"#)
            expectAPIError(limited, .tooManyRequests, code: "rate_limited", messageContains: "too many sign-in attempts")
            #expect(Int(limited.headers[.retryAfter] ?? "") ?? 0 >= 1)
            // Even the right password waits: the bucket counts attempts, not failures.
            let right = try await client.send(
                .post, "/api/v1/login", json: #"{"user":"alice","password":"\#(Seed.alicePassword)"}"#)
            #expect(right.status == .tooManyRequests)
            // Another account is not affected, and time refills the bucket.
            let bob = try await client.send(.post, "/api/v1/login", json: #"{"user":"bob","password":"\#(Seed.bobPassword)"}"#)
            #expect(bob.status == .ok)
            harness.clock.advance(60)
            let later = try await client.send(
                .post, "/api/v1/login", json: #"{"user":"alice","password":"\#(Seed.alicePassword)"}"#)
            #expect(later.status == .ok)
        }
    }

    @Test func metricsAreServedInPrometheusTextFormat() async throws {
        let harness = try await Harness.make()
        harness.metrics.makeCounter(name: "gatehouse_statements_total", labels: [("decision", "deny")]).increment(by: Int64(3))
        let carol = try await harness.loginToken("carol")
        try await harness.test { client in
            let response = try await client.send(.get, "/metrics", token: carol)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(response.text.contains(#"gatehouse_statements_total{decision="deny"} 3"#))
        }
    }
}

@Suite("Hardening")
struct HardeningTests {
    @Test func aConfirmedSecondFactorIsReplacedOnlyWithACodeFromIt() async throws {
        let harness = try await Harness.make()
        let enrolment = try await harness.stepUp.enroll(user: "alice", proof: .password)
        let totp = TOTP(secret: try #require(Base32.decode(enrolment.secret)))
        try await harness.stepUp.confirm(user: "alice", code: totp.code(at: harness.clock.now))
        harness.clock.advance(30)
        let alice = try await harness.loginToken("alice")
        try await harness.test { client in
            expectAPIError(
                try await client.send(.post, "/api/v1/mfa/enroll", token: alice), .unauthorized, code: "second_factor_required",
                message: "alice already has a second factor: give a code from it to replace it")
            expectAPIError(
                try await client.send(.post, "/api/v1/mfa/enroll", token: alice, json: #"{"code":"000000"}"#), .unauthorized,
                code: "wrong_code")
            #expect(try await harness.stepUp.isEnrolled(user: "alice"))
            let replaced = try await client.send(
                .post, "/api/v1/mfa/enroll", token: alice, json: #"{"code":"\#(totp.code(at: harness.clock.now))"}"#)
            #expect(replaced.status == .ok)
            #expect(try replaced.decode(API.Enrolment.self).secret != enrolment.secret)
        }
    }

    @Test("a sign-in answers the same whichever of password and code was wrong; only the audit log says which")
    func signInNeverSaysWhichHalfWasRight() async throws {
        let harness = try await Harness.make()
        let enrolment = try await harness.stepUp.enroll(user: "alice", proof: .password)
        let totp = TOTP(secret: try #require(Base32.decode(enrolment.secret)))
        let confirming = totp.code(at: harness.clock.now)
        try await harness.stepUp.confirm(user: "alice", code: confirming)
        harness.clock.advance(30)
        let password = Seed.alicePassword
        let attempts: [(String, String)] = [
            ("wrong password, no code", #"{"user":"alice","password":"not-her-password"}"#),
            ("right password, no code", #"{"user":"alice","password":"\#(password)"}"#),
            ("right password, wrong code", #"{"user":"alice","password":"\#(password)","code":"000000"}"#),
            ("right password, a used code", #"{"user":"alice","password":"\#(password)","code":"\#(confirming)"}"#),
        ]
        // Four failures and one success: the sign-in throttle allows five at once per account and source.
        try await harness.test { client in
            var answers: [String] = []
            for (what, body) in attempts {
                let response = try await client.send(.post, "/api/v1/login", json: body)
                expectAPIError(response, .unauthorized, code: "login_failed", message: LoginError.refused)
                answers.append("\(response.status) \(response.text)")
                #expect(!response.text.contains("second factor:"), "\(what)")
            }
            #expect(Set(answers).count == 1, "\(answers)")
            let reasons = try await harness.auditEvents().filter { $0.type == "login.failure" }.compactMap { $0.detail["reason"] }
            #expect(reasons.contains("wrong password"))
            #expect(reasons.contains("password right, second factor not given"))
            #expect(reasons.contains { $0.hasPrefix("password right; wrong code") })
            #expect(reasons.contains { $0.hasPrefix("password right; that code was already used") })

            let right = try await client.send(
                .post, "/api/v1/login",
                json: #"{"user":"alice","password":"\#(password)","code":"\#(totp.code(at: harness.clock.now))"}"#)
            #expect(right.status == .ok)
        }
    }

    @Test("a first second factor needs the password again: a stolen token alone cannot add one")
    func aFirstSecondFactorNeedsThePassword() async throws {
        let harness = try await Harness.make()
        let bob = try await harness.loginToken("bob")
        try await harness.test { client in
            expectAPIError(
                try await client.send(.post, "/api/v1/mfa/enroll", token: bob), .unauthorized, code: "password_required",
                message: "give your password (password) to enrol a first second factor")
            expectAPIError(
                try await client.send(.post, "/api/v1/mfa/enroll", token: bob, json: #"{"code":"123456"}"#), .unauthorized,
                code: "password_required")
            expectAPIError(
                try await client.send(.post, "/api/v1/mfa/enroll", token: bob, json: #"{"password":"not-bobs-password"}"#),
                .unauthorized, code: "login_failed", message: "the password is wrong")
            #expect(try await harness.store.mfa(ofUser: "bob") == nil)
            let failure = try #require(try await harness.auditEvents().last)
            #expect(failure.type == "login.failure")
            #expect(failure.actor == "bob")
            #expect(failure.detail["via"] == "mfa enrolment")

            let enrolled = try await client.send(
                .post, "/api/v1/mfa/enroll", token: bob, json: #"{"password":"\#(Seed.bobPassword)"}"#)
            #expect(enrolled.status == .ok, "\(enrolled.text)")
            #expect(try await harness.store.mfa(ofUser: "bob")?.confirmed == false)
            let event = try #require(try await harness.auditEvents().last)
            #expect(event.type == "mfa.enrolled")
            #expect(event.actor == "bob")
            #expect(event.detail == ["method": "totp", "user": "bob", "proof": "password"])
        }
    }

    @Test("an account without a password has its first factor enrolled by an admin, and cannot give itself a password")
    func anAccountWithoutAPasswordNeedsAnAdmin() async throws {
        let harness = try await Harness.make()
        let dave = try await harness.loginToken("dave")
        let alice = try await harness.loginToken("alice")
        let admin = try await harness.loginToken("admin")
        try await harness.test { client in
            expectAPIError(
                try await client.send(.post, "/api/v1/mfa/enroll", token: dave, json: #"{"password":"anything-at-all"}"#),
                .forbidden, code: "forbidden",
                message:
                    "dave has no password to confirm it is you: an admin enrols your first second factor (`gatehouse mfa enroll --user dave`)"
            )
            expectAPIError(
                try await client.send(
                    .put, "/api/v1/users/dave/password", token: dave, json: #"{"password":"dave-picks-one-now"}"#),
                .forbidden, code: "forbidden", message: "dave has no password: only an admin sets a first password")
            #expect(try await harness.store.user(named: "dave")?.passwordHash == nil)
            expectAPIError(
                try await client.send(.post, "/api/v1/mfa/enroll", token: alice, json: #"{"user":"dave"}"#), .forbidden,
                code: "forbidden", message: "only admins enrol a second factor for another user")
            expectAPIError(
                try await client.send(.post, "/api/v1/mfa/enroll", token: admin, json: #"{"user":"nobody"}"#), .notFound,
                code: "not_found")
            #expect(try await harness.store.mfa(ofUser: "dave") == nil)

            let byAdmin = try await client.send(.post, "/api/v1/mfa/enroll", token: admin, json: #"{"user":"dave"}"#)
            #expect(byAdmin.status == .ok, "\(byAdmin.text)")
            let enrolment = try byAdmin.decode(API.Enrolment.self)
            #expect(enrolment.uri.hasPrefix("otpauth://totp/Gatehouse:dave?secret="))
            let event = try #require(try await harness.auditEvents().last)
            #expect(event.type == "mfa.enrolled")
            #expect(event.actor == "admin")
            #expect(event.detail == ["method": "totp", "user": "dave", "proof": "admin"])
            // dave confirms it with the first code, as after any enrolment.
            let totp = TOTP(secret: try #require(Base32.decode(enrolment.secret)))
            let confirmed = try await client.send(
                .post, "/api/v1/mfa/confirm", token: dave, json: #"{"code":"\#(totp.code(at: harness.clock.now))"}"#)
            #expect(confirmed.status == .ok, "\(confirmed.text)")
            #expect(try await harness.stepUp.isEnrolled(user: "dave"))
        }
    }

    @Test("revoking a token ends the live sessions it signed in, each audited; revoking all of a user's ends all of theirs")
    func revokingTokensEndsTheirSessions() async throws {
        let harness = try await Harness.make()
        let target = UpstreamCancelTarget(host: "db", port: 5432, processID: 1, secretKey: 2)
        let reasons = NIOLockedValueBox<[String: [String]]>([:])
        let first = try await harness.tokens.issue(for: try await harness.user("bob"), kind: .access, ttl: 600)
        let second = try await harness.tokens.issue(for: try await harness.user("bob"), kind: .access, ttl: 600)
        for (id, user, token) in [("b1", "bob", first.claims.jti), ("b2", "bob", second.claims.jti), ("a1", "alice", "t-a")] {
            _ = harness.registry.register(harness.session(id, user: user), cancelTarget: target, tokenID: token) { reason in
                reasons.withLockedValue { $0[id, default: []].append(reason) }
            }
        }
        let bob = try await harness.loginToken("bob")
        let admin = try await harness.loginToken("admin")
        try await harness.test { client in
            let one = try await client.send(.post, "/api/v1/tokens/revoke", token: bob, json: #"{"token":"\#(first.token)"}"#)
            #expect(one.status == .ok, "\(one.text)")
            #expect(
                reasons.withLockedValue { $0 } == [
                    "b1": [
                        "the token \(first.claims.jti) was revoked by bob: sign in again with `gatehouse login` before reconnecting"
                    ]
                ])
            let ended = try #require(try await harness.auditEvents().last)
            #expect(ended.type == "session.terminated")
            #expect(ended.session == "b1")
            #expect(ended.detail["tokens_revoked"] == "true")

            let all = try await client.send(.post, "/api/v1/tokens/revoke", token: admin, json: #"{"user":"bob"}"#)
            #expect(all.status == .ok, "\(all.text)")
            // The registry here is only a list (no session leaves it by itself): b1 is asked again.
            #expect(
                reasons.withLockedValue { $0["b2"] } == [
                    "the tokens of bob were revoked by admin: sign in again with `gatehouse login` before reconnecting"
                ])
            #expect(reasons.withLockedValue { $0["a1"] } == nil)
            let terminated = try await harness.auditEvents().filter { $0.type == "session.terminated" }.map(\.session)
            #expect(terminated.contains("b2"))
            #expect(!terminated.contains("a1"))
        }
    }

    @Test func exportingTheTrailIsItselfAudited() async throws {
        let harness = try await Harness.make()
        let carol = try await harness.loginToken("carol")
        try await harness.test { client in
            let export = try await client.send(.get, "/api/v1/audit/export?type=session.&actor=alice", token: carol)
            #expect(export.status == .ok)
            let event = try #require(try await harness.auditEvents().last)
            #expect(event.type == "audit.exported")
            #expect(event.actor == "carol")
            #expect(event.detail == ["type": "session.", "actor": "alice"])
        }
    }

    @Test func theServedOpenAPIDocumentIsTheYAMLFileByteForByte() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/GatehouseHTTP/Resources/openapi.yaml").standardized
        let text = try String(contentsOf: file, encoding: .utf8)
        // The file's text, without its final line break (a YAML file ends in one; the embedded string does not).
        #expect(OpenAPIDocument.yaml + "\n" == text)
        #expect(OpenAPIDocument.yaml.hasPrefix("openapi: 3.1.0\n"))
    }

    @Test func theOpenAPIDocumentListsEveryAuditEventType() throws {
        let document = try #require(try JSONSerialization.jsonObject(with: OpenAPIDocument.json()) as? [String: Any])
        let schemas = (document["components"] as? [String: Any])?["schemas"] as? [String: Any]
        let types = (schemas?["AuditEventType"] as? [String: Any])?["enum"] as? [String]
        #expect(Set(try #require(types)) == Set(AuditEventType.allCases.map(\.rawValue)))
    }

    @Test func guessesFromOneAddressDoNotLockTheOwnerOutElsewhere() {
        let throttle = Throttle(what: "sign-in", perSource: (100, 100), perUser: (5, 5), perAccount: (30, 30))
        let now = Date(timeIntervalSince1970: 1_000_000)
        for _ in 1...5 { #expect(throws: Never.self) { try throttle.check(source: "203.0.113.9", user: "admin", at: now) } }
        #expect(throws: APIError.self) { try throttle.check(source: "203.0.113.9", user: "admin", at: now) }
        #expect(throws: Never.self) { try throttle.check(source: "10.0.0.5", user: "admin", at: now) }
        // Many addresses together still meet the account's own limit.
        for n in 1...24 { try? throttle.check(source: "198.51.100.\(n)", user: "admin", at: now) }
        #expect(throws: APIError.self) { try throttle.check(source: "10.0.0.6", user: "ADMIN", at: now) }
    }
}

@Suite("Rate limiter")
struct RateLimiterTests {
    @Test func aBucketEmptiesThenRefillsAtItsRate() {
        var limiter = RateLimiter(burst: 3, perMinute: 6)
        let start = Date(timeIntervalSince1970: 1_000_000)
        for _ in 1...3 { #expect(limiter.take("a", at: start) == nil) }
        let wait = limiter.take("a", at: start)
        #expect(wait != nil && abs(wait! - 10) < 0.001)
        #expect(limiter.take("b", at: start) == nil)
        #expect(limiter.take("a", at: start.addingTimeInterval(9)) != nil)
        #expect(limiter.take("a", at: start.addingTimeInterval(10)) == nil)
        // A long pause refills only up to the burst.
        let later = start.addingTimeInterval(3600)
        for _ in 1...3 { #expect(limiter.take("a", at: later) == nil) }
        #expect(limiter.take("a", at: later) != nil)
    }
}
