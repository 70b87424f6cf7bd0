import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehouseHTTP
import GatehouseStore
import Hummingbird
import HummingbirdTesting
import NIOConcurrencyHelpers
import Testing

@testable import GatehouseProxy
@testable import GatehouseSessions

@Suite("HTTP API routes")
struct APIRoutesTests {
    // MARK: Health

    @Test func healthNeedsNoAuthentication() async throws {
        let harness = try await Harness.make()
        try await harness.test { client in
            let response = try await client.send(.get, "/api/v1/health")
            #expect(response.status == .ok)
            let health = try response.decode(API.Health.self)
            #expect(health.status == "ok")
            #expect(health.sessions == 0)
            _ = harness.registry.register(
                harness.session("s1", user: "alice"),
                cancelTarget: UpstreamCancelTarget(host: "db", port: 5432, processID: 1, secretKey: 2)
            ) { _ in }
            #expect(try await client.send(.get, "/api/v1/health").decode(API.Health.self).sessions == 1)
        }
    }

    // MARK: Login

    @Test func loginIssuesALoginToken() async throws {
        let harness = try await Harness.make()
        try await harness.test { client in
            let response = try await client.send(
                .post, "/api/v1/login", json: #"{"user":"alice","password":"\#(Seed.alicePassword)"}"#)
            #expect(response.status == .ok)
            let body = try response.decode(API.TokenResponse.self)
            #expect(body.user == "alice")
            #expect(body.groups == ["developer"])
            #expect(body.expires_at == Timestamp.format(Harness.start.addingTimeInterval(harness.config.tokens.loginTTL)))
            let claims = try await harness.tokens.verify(body.token, kind: .login)
            #expect(claims.sub == "alice")
            #expect(claims.jti == body.id)
            let me = try await client.send(.get, "/api/v1/me", token: body.token)
            #expect(me.status == .ok)
            #expect(try me.decode(API.Me.self).user == "alice")
            let events = try await harness.auditEvents()
            let last = try #require(events.last)
            #expect(last.type == "login.success")
            #expect(last.actor == "alice")
            #expect(last.detail["token_id"] == body.id)
            // A login token is not a database password.
            await #expect(throws: TokenError.self) { try await harness.tokens.verify(body.token, kind: .access) }
        }
    }

    @Test func loginFailureIsTheSameForUnknownUsersAndWrongPasswords() async throws {
        let harness = try await Harness.make()
        try await harness.test { client in
            let wrong = try await client.send(.post, "/api/v1/login", json: #"{"user":"alice","password":"not-her-password"}"#)
            let unknown = try await client.send(.post, "/api/v1/login", json: #"{"user":"mallory","password":"whatever-pass"}"#)
            expectAPIError(wrong, .unauthorized, code: "login_failed", message: LoginError.refused)
            expectAPIError(unknown, .unauthorized, code: "login_failed", message: LoginError.refused)
            let wrongBody = try wrong.decode(APIErrorBody.self)
            let unknownBody = try unknown.decode(APIErrorBody.self)
            #expect(wrongBody.error.code == unknownBody.error.code)
            #expect(wrongBody.error.message == unknownBody.error.message)
            #expect(wrong.headers == unknown.headers)
            let failures = try await harness.auditEvents().filter { $0.type == AuditEventType.loginFailure.rawValue }
            #expect(failures.count == 2)
            #expect(failures.first?.actor == "alice")
            #expect(failures.first?.detail["reason"] == "wrong password")
            #expect(failures.last?.actor == "mallory")
            #expect(failures.last?.detail["reason"] == "unknown user")
            #expect(try await harness.auditEvents().allSatisfy { $0.type != AuditEventType.loginSuccess.rawValue })
        }
    }

    @Test func loginOfADisabledUserIsRefused() async throws {
        let harness = try await Harness.make()
        var alice = try #require(try await harness.store.user(named: "alice"))
        alice.user.disabled = true
        try await harness.store.saveUser(alice)
        try await harness.test { client in
            let response = try await client.send(
                .post, "/api/v1/login", json: #"{"user":"alice","password":"\#(Seed.alicePassword)"}"#)
            expectAPIError(response, .unauthorized, code: "login_failed", message: "user alice is disabled")
            #expect(try await harness.auditEvents().last?.type == "login.failure")
        }
    }

    @Test(arguments: ["", "not json", #"{"user":"alice"}"#, #"{"password":"x"}"#, #"["alice","pw"]"#])
    func loginWithAMalformedBodyIsABadRequest(body: String) async throws {
        let harness = try await Harness.make()
        try await harness.test { client in
            let response = try await client.send(.post, "/api/v1/login", json: body)
            expectAPIError(
                response, .badRequest, code: "bad_request", message: "the request body is not the JSON this route expects")
        }
    }

    // MARK: Bearer tokens

    static let protectedRoutes: [(HTTPRequest.Method, String, String?)] = [
        (.post, "/api/v1/logout", nil),
        (.get, "/api/v1/me", nil),
        (.post, "/api/v1/tokens", #"{"ttl":"5m"}"#),
        (.post, "/api/v1/tokens/revoke", #"{"user":"alice"}"#),
        (.get, "/api/v1/sessions", nil),
        (.delete, "/api/v1/sessions/abc", nil),
        (.get, "/api/v1/audit", nil),
        (.get, "/api/v1/audit/verify", nil),
        (.put, "/api/v1/users/alice/password", #"{"password":"a-long-new-password"}"#),
    ]

    @Test func everyProtectedRouteRefusesAMissingOrBadToken() async throws {
        let harness = try await Harness.make()
        let access = try await harness.accessToken("alice")
        let expired = try await harness.loginToken("alice", ttl: 60)
        let forged = try await TokenService(
            signingKey: Array(repeating: 9, count: 32), store: harness.store, now: { Harness.start }
        ).issue(for: try await harness.user("admin"), kind: .login, ttl: 3600).token
        let ghost = try await harness.tokens.issue(for: User(name: "ghost", groups: [Group.admins]), kind: .login, ttl: 3600)
            .token
        harness.clock.advance(61)
        let eventsBefore = try await harness.auditEvents().count
        try await harness.test { client in
            for (method, uri, body) in Self.protectedRoutes {
                let missing = try await client.send(method, uri, json: body)
                expectAPIError(
                    missing, .unauthorized, code: "unauthenticated", message: "missing bearer token: run `gatehouse login`")
                #expect(missing.headers[.wwwAuthenticate] == #"Bearer realm="gatehouse""#, "\(uri)")

                let basic = try await client.send(method, uri, json: body, authorization: "Basic YWxpY2U6cHc=")
                expectAPIError(basic, .unauthorized, code: "unauthenticated", messageContains: "missing bearer token")

                let garbage = try await client.send(method, uri, token: "not-a-token", json: body)
                expectAPIError(garbage, .unauthorized, code: "unauthenticated", messageContains: "not a valid Gatehouse token")

                let wrongKey = try await client.send(method, uri, token: forged, json: body)
                expectAPIError(wrongKey, .unauthorized, code: "unauthenticated", messageContains: "not a valid Gatehouse token")

                let old = try await client.send(method, uri, token: expired, json: body)
                expectAPIError(old, .unauthorized, code: "unauthenticated", messageContains: "expired")

                let wrongKind = try await client.send(method, uri, token: access, json: body)
                expectAPIError(
                    wrongKind, .unauthorized, code: "unauthenticated",
                    message: "an access token cannot be used here: run `gatehouse login`")

                let unknownUser = try await client.send(method, uri, token: ghost, json: body)
                expectAPIError(unknownUser, .unauthorized, code: "unauthenticated", message: "user ghost does not exist")
            }
            // Refused requests change nothing.
            #expect(try await harness.auditEvents().count == eventsBefore)
            #expect(try await harness.tokens.verify(access, kind: .access).sub == "alice")
        }
    }

    @Test func bearerSchemeIsCaseInsensitive() async throws {
        let harness = try await Harness.make()
        let token = try await harness.loginToken("alice")
        try await harness.test { client async throws in
            #expect(try await client.send(.get, "/api/v1/me", authorization: "bearer \(token)").status == .ok)
            #expect(try await client.send(.get, "/api/v1/me", authorization: "BEARER \(token)").status == .ok)
        }
    }

    @Test func tokenOfADisabledOrExpiredUserIsRefused() async throws {
        let harness = try await Harness.make()
        let aliceToken = try await harness.loginToken("alice")
        let bobToken = try await harness.loginToken("bob")
        var alice = try #require(try await harness.store.user(named: "alice"))
        alice.user.disabled = true
        try await harness.store.saveUser(alice)
        var bob = try #require(try await harness.store.user(named: "bob"))
        bob.user.expiresAt = Harness.start.addingTimeInterval(10)
        try await harness.store.saveUser(bob)
        harness.clock.advance(10)
        try await harness.test { client in
            expectAPIError(
                try await client.send(.get, "/api/v1/me", token: aliceToken), .unauthorized, code: "unauthenticated",
                message: "user alice is disabled")
            expectAPIError(
                try await client.send(.get, "/api/v1/me", token: bobToken), .unauthorized, code: "unauthenticated",
                messageContains: "user bob expired at")
        }
    }

    @Test func meDescribesTheCaller() async throws {
        let harness = try await Harness.make()
        let token = try await harness.loginToken("admin", ttl: 3600)
        try await harness.test { client in
            let me = try await client.send(.get, "/api/v1/me", token: token).decode(API.Me.self)
            #expect(me.user == "admin")
            #expect(me.groups == [Group.admins])
            #expect(me.login_expires_at == Timestamp.format(Harness.start.addingTimeInterval(3600)))
        }
    }

    // MARK: Access tokens

    @Test func accessTokenHasTheConfiguredDefaultLifetime() async throws {
        let harness = try await Harness.make()
        let login = try await harness.loginToken("alice")
        try await harness.test { client in
            let response = try await client.send(.post, "/api/v1/tokens", token: login)
            #expect(response.status == .ok)
            let body = try response.decode(API.TokenResponse.self)
            #expect(body.expires_at == Timestamp.format(Harness.start.addingTimeInterval(15 * 60)))
            let claims = try await harness.tokens.verify(body.token, kind: .access)
            #expect(claims.sub == "alice")
            #expect(claims.kind == .access)
            #expect(claims.expiresAt == Harness.start.addingTimeInterval(15 * 60))
            let issued = try #require(try await harness.auditEvents().last)
            #expect(issued.type == "token.issued")
            #expect(issued.actor == "alice")
            #expect(issued.detail["kind"] == "access")
            #expect(issued.detail["token_id"] == body.id)
            // An access token is not a login: it cannot mint more tokens.
            expectAPIError(
                try await client.send(.post, "/api/v1/tokens", token: body.token), .unauthorized, code: "unauthenticated")
        }
    }

    @Test func accessTokenLifetimeCanBeChosenUpToTheMaximum() async throws {
        let harness = try await Harness.make { $0.tokens.maxAccessTokenTTL = 2 * 3600 }
        let login = try await harness.loginToken("alice")
        try await harness.test { client in
            let hour = try await client.send(.post, "/api/v1/tokens", token: login, json: #"{"ttl":"1h"}"#)
            #expect(
                try hour.decode(API.TokenResponse.self).expires_at == Timestamp.format(Harness.start.addingTimeInterval(3600)))
            let max = try await client.send(.post, "/api/v1/tokens", token: login, json: #"{"ttl":"2h"}"#)
            #expect(try max.decode(API.TokenResponse.self).expires_at == Timestamp.format(Harness.start.addingTimeInterval(7200)))
            expectAPIError(
                try await client.send(.post, "/api/v1/tokens", token: login, json: #"{"ttl":"2h1s"}"#), .badRequest,
                code: "bad_request",
                message: "ttl may be at most 2h")
            expectAPIError(
                try await client.send(.post, "/api/v1/tokens", token: login, json: #"{"ttl":"soon"}"#), .badRequest,
                code: "bad_request",
                message: "ttl must be a duration such as 15m or 1h, not 'soon'")
            let defaulted = try await client.send(.post, "/api/v1/tokens", token: login, json: "{}")
            #expect(
                try defaulted.decode(API.TokenResponse.self).expires_at == Timestamp.format(Harness.start.addingTimeInterval(900))
            )
        }
    }

    @Test func accessTokenNeverOutlivesTheLogin() async throws {
        let harness = try await Harness.make()
        let login = try await harness.loginToken("alice", ttl: 3600)
        harness.clock.advance(3000)
        try await harness.test { client in
            let response = try await client.send(.post, "/api/v1/tokens", token: login, json: #"{"ttl":"1h"}"#)
            let body = try response.decode(API.TokenResponse.self)
            // 600 seconds of the login are left.
            #expect(body.expires_at == Timestamp.format(Harness.start.addingTimeInterval(3600)))
            let claims = try await harness.tokens.verify(body.token, kind: .access)
            #expect(claims.expiresAt.timeIntervalSince(harness.clock.now) == 600)
        }
    }

    // MARK: Revocation

    @Test func revokedAccessTokenStopsWorking() async throws {
        let harness = try await Harness.make()
        let login = try await harness.loginToken("alice")
        try await harness.test { client in
            let access = try await client.send(.post, "/api/v1/tokens", token: login).decode(API.TokenResponse.self)
            let response = try await client.send(
                .post, "/api/v1/tokens/revoke", token: login, json: #"{"token":"\#(access.token)"}"#)
            #expect(response.status == .ok)
            #expect(try response.decode(API.RevokeResponse.self).revoked == "token \(access.id) of alice")
            do {
                _ = try await harness.tokens.verify(access.token, kind: .access)
                Issue.record("a revoked token still verifies")
            } catch let error as TokenError {
                #expect(error.code == .revoked)
            }
            let event = try #require(try await harness.auditEvents().last)
            #expect(event.type == "token.revoked")
            #expect(event.detail["token_id"] == access.id)
            #expect(event.detail["owner"] == "alice")
            // The login itself still works.
            #expect(try await client.send(.get, "/api/v1/me", token: login).status == .ok)
            // Revocation survives a restart: a new service reads it from the store.
            let restarted = try await TokenService(
                signingKey: Array(repeating: 7, count: 32), store: harness.store, now: { harness.clock.now })
            await #expect(throws: TokenError(.revoked, "the token was revoked")) {
                try await restarted.verify(access.token, kind: .access)
            }
        }
    }

    @Test func revokedLoginTokenStopsWorking() async throws {
        let harness = try await Harness.make()
        let login = try await harness.loginToken("alice")
        let other = try await harness.loginToken("alice")
        try await harness.test { client in
            let response = try await client.send(.post, "/api/v1/tokens/revoke", token: other, json: #"{"token":"\#(login)"}"#)
            #expect(response.status == .ok)
            expectAPIError(
                try await client.send(.get, "/api/v1/me", token: login), .unauthorized, code: "unauthenticated",
                message: "the token was revoked")
            #expect(try await client.send(.get, "/api/v1/me", token: other).status == .ok)
        }
    }

    @Test func logoutRevokesTheCallersLogin() async throws {
        let harness = try await Harness.make()
        let login = try await harness.loginToken("alice")
        try await harness.test { client in
            let response = try await client.send(.post, "/api/v1/logout", token: login)
            #expect(response.status == .ok)
            #expect(try response.decode(API.Done.self).ok)
            expectAPIError(
                try await client.send(.get, "/api/v1/me", token: login), .unauthorized, code: "unauthenticated",
                message: "the token was revoked")
            #expect(try await harness.auditEvents().last?.type == "token.revoked")
        }
    }

    @Test func nonAdminCannotRevokeAnotherUsersTokens() async throws {
        let harness = try await Harness.make()
        let alice = try await harness.loginToken("alice")
        let bob = try await harness.loginToken("bob")
        let bobAccess = try await harness.accessToken("bob")
        let eventsBefore = try await harness.auditEvents().count
        try await harness.test { client in
            expectAPIError(
                try await client.send(.post, "/api/v1/tokens/revoke", token: alice, json: #"{"user":"bob"}"#), .forbidden,
                code: "forbidden", message: "only admins may revoke another user's tokens")
            expectAPIError(
                try await client.send(.post, "/api/v1/tokens/revoke", token: alice, json: #"{"token":"\#(bobAccess)"}"#),
                .forbidden,
                code: "forbidden", message: "only admins may revoke another user's token")
            // Not even the existence of a user leaks: a missing user is refused the same way.
            expectAPIError(
                try await client.send(.post, "/api/v1/tokens/revoke", token: alice, json: #"{"user":"nobody"}"#), .forbidden,
                code: "forbidden")
            #expect(try await client.send(.get, "/api/v1/me", token: bob).status == .ok)
            #expect(try await harness.tokens.verify(bobAccess, kind: .access).sub == "bob")
            #expect(try await harness.auditEvents().count == eventsBefore)
        }
    }

    @Test func adminRevokesEveryTokenOfAUser() async throws {
        let harness = try await Harness.make()
        let admin = try await harness.loginToken("admin")
        let bob = try await harness.loginToken("bob")
        let bobAccess = try await harness.accessToken("bob")
        let alice = try await harness.loginToken("alice")
        try await harness.test { client in
            let response = try await client.send(.post, "/api/v1/tokens/revoke", token: admin, json: #"{"user":"bob"}"#)
            #expect(response.status == .ok)
            #expect(try response.decode(API.RevokeResponse.self).revoked == "every token of bob issued until now")
            expectAPIError(
                try await client.send(.get, "/api/v1/me", token: bob), .unauthorized, code: "unauthenticated",
                message: "the token was revoked")
            await #expect(throws: TokenError.self) { try await harness.tokens.verify(bobAccess, kind: .access) }
            // Other users are untouched, and bob can sign in again later.
            #expect(try await client.send(.get, "/api/v1/me", token: alice).status == .ok)
            harness.clock.advance(2)
            let fresh = try await harness.loginToken("bob")
            #expect(try await client.send(.get, "/api/v1/me", token: fresh).status == .ok)
            let event = try #require(try await harness.auditEvents().first { $0.type == "token.revoked" })
            #expect(event.actor == "admin")
            #expect(event.detail == ["owner": "bob", "scope": "all"])
        }
    }

    @Test func adminRevokesASingleTokenOfAnotherUser() async throws {
        let harness = try await Harness.make()
        let admin = try await harness.loginToken("admin")
        let bobAccess = try await harness.accessToken("bob")
        try await harness.test { client in
            let response = try await client.send(
                .post, "/api/v1/tokens/revoke", token: admin, json: #"{"token":"\#(bobAccess)"}"#)
            #expect(response.status == .ok)
            await #expect(throws: TokenError.self) { try await harness.tokens.verify(bobAccess, kind: .access) }
        }
    }

    @Test func userMayRevokeAllOfTheirOwnTokens() async throws {
        let harness = try await Harness.make()
        let alice = try await harness.loginToken("alice")
        try await harness.test { client in
            #expect(try await client.send(.post, "/api/v1/tokens/revoke", token: alice, json: #"{"user":"alice"}"#).status == .ok)
            expectAPIError(try await client.send(.get, "/api/v1/me", token: alice), .unauthorized, code: "unauthenticated")
        }
    }

    @Test func revokeRequestsMustNameExactlyOneThing() async throws {
        let harness = try await Harness.make()
        let admin = try await harness.loginToken("admin")
        let access = try await harness.accessToken("bob")
        try await harness.test { client in
            expectAPIError(
                try await client.send(.post, "/api/v1/tokens/revoke", token: admin, json: "{}"), .badRequest, code: "bad_request",
                message: "give either token or user")
            expectAPIError(
                try await client.send(
                    .post, "/api/v1/tokens/revoke", token: admin, json: #"{"token":"\#(access)","user":"bob"}"#),
                .badRequest, code: "bad_request", message: "give either token or user")
            expectAPIError(
                try await client.send(.post, "/api/v1/tokens/revoke", token: admin, json: #"{"user":"nobody"}"#), .notFound,
                code: "not_found", message: "user nobody does not exist")
            expectAPIError(
                try await client.send(.post, "/api/v1/tokens/revoke", token: admin, json: #"{"token":"garbage"}"#), .badRequest,
                code: "bad_request", messageContains: "cannot revoke")
            expectAPIError(
                try await client.send(.post, "/api/v1/tokens/revoke", token: admin), .badRequest, code: "bad_request")
            // Nothing was revoked along the way.
            #expect(try await harness.tokens.verify(access, kind: .access).sub == "bob")
        }
    }

    // MARK: Sessions

    @Test func sessionsAreListedForTheirOwnerAndForAdmins() async throws {
        let harness = try await Harness.make()
        let target = UpstreamCancelTarget(host: "db", port: 5432, processID: 1, secretKey: 2)
        _ = harness.registry.register(harness.session("a1", user: "alice", startedAt: 1), cancelTarget: target) { _ in }
        _ = harness.registry.register(harness.session("b1", user: "bob", startedAt: 2), cancelTarget: target) { _ in }
        _ = harness.registry.register(harness.session("a2", user: "alice", startedAt: 3), cancelTarget: target) { _ in }
        let alice = try await harness.loginToken("alice")
        let admin = try await harness.loginToken("admin")
        try await harness.test { client in
            let mine = try await client.send(.get, "/api/v1/sessions", token: alice)
            #expect(mine.status == .ok)
            #expect(try mine.decode(API.Sessions.self).sessions.map(\.id) == ["a1", "a2"])
            let all = try await client.send(.get, "/api/v1/sessions", token: admin).decode(API.Sessions.self).sessions
            #expect(all.map(\.id) == ["a1", "b1", "a2"])
            let first = try #require(mine.json?["sessions"] as? [[String: Any]]).first
            #expect(first?["application_name"] as? String == "psql")
            #expect(first?["started_at"] as? String == Timestamp.format(Harness.start.addingTimeInterval(1)))
            #expect(first?["source"] as? String == "10.0.0.9:50000")
            #expect(first?["connection"] as? String == "app")
            #expect(first?["tls"] as? Bool == true)
        }
    }

    @Test func terminatingAnUnknownSessionIsNotFound() async throws {
        let harness = try await Harness.make()
        let admin = try await harness.loginToken("admin")
        try await harness.test { client in
            expectAPIError(
                try await client.send(.delete, "/api/v1/sessions/no-such-session", token: admin), .notFound, code: "not_found",
                message: "no live session no-such-session")
        }
    }

    @Test func sessionsAreTerminatedByTheirOwnerOrAnAdmin() async throws {
        let harness = try await Harness.make()
        let target = UpstreamCancelTarget(host: "db", port: 5432, processID: 1, secretKey: 2)
        let reasons = NIOLockedValueBox<[String: [String]]>([:])
        for (id, user) in [("a1", "alice"), ("b1", "bob"), ("b2", "bob")] {
            _ = harness.registry.register(harness.session(id, user: user), cancelTarget: target) { reason in
                reasons.withLockedValue { $0[id, default: []].append(reason) }
            }
        }
        let alice = try await harness.loginToken("alice")
        let admin = try await harness.loginToken("admin")
        try await harness.test { client in
            expectAPIError(
                try await client.send(.delete, "/api/v1/sessions/b1", token: alice), .forbidden, code: "forbidden",
                message: "only admins may terminate another user's session")
            #expect(reasons.withLockedValue { $0["b1"] } == nil)

            let own = try await client.send(.delete, "/api/v1/sessions/a1", token: alice)
            #expect(own.status == .ok)
            #expect(try own.decode(API.TerminateResponse.self).terminated == "a1")
            #expect(reasons.withLockedValue { $0["a1"] } == ["terminated by alice; you may reconnect"])

            let byAdmin = try await client.send(.delete, "/api/v1/sessions/b1?reason=maintenance%20window", token: admin)
            #expect(byAdmin.status == .ok)
            #expect(reasons.withLockedValue { $0["b1"] } == ["maintenance window; you may reconnect"])
            #expect(reasons.withLockedValue { $0["b2"] } == nil)

            let event = try #require(try await harness.auditEvents().last)
            #expect(event.type == "session.terminated")
            #expect(event.actor == "admin")
            #expect(event.session == "b1")
            #expect(event.connection == "app")
            #expect(event.detail == ["reason": "maintenance window", "owner": "bob", "tokens_revoked": "false"])

            expectAPIError(
                try await client.send(.delete, "/api/v1/sessions/a1?revoke_tokens=true", token: alice), .forbidden,
                code: "forbidden", message: "only admins may revoke another user's tokens with a termination")
            expectAPIError(
                try await client.send(.delete, "/api/v1/sessions/b2?revoke_tokens=yes", token: admin), .badRequest,
                code: "bad_request", message: "revoke_tokens must be true or false, not 'yes'")
        }
    }

    // MARK: Audit

    @Test func usersReadOnlyTheirOwnEventsAndNeverTheChainReport() async throws {
        let harness = try await Harness.make()
        _ = try await harness.store.appendAudit(AuditRecord(.sessionStart, actor: "bob", session: "b1"))
        _ = try await harness.store.appendAudit(AuditRecord(.sessionStart, actor: "alice", session: "a1"))
        let alice = try await harness.loginToken("alice")
        try await harness.test { client in
            let own = try await client.send(.get, "/api/v1/audit", token: alice).decode(API.AuditPage.self)
            #expect(own.events.map(\.session) == ["a1"])
            expectAPIError(
                try await client.send(.get, "/api/v1/audit?actor=bob", token: alice), .forbidden, code: "forbidden",
                message: "only admins and auditors read other users' events")
            expectAPIError(
                try await client.send(.get, "/api/v1/audit/verify", token: alice), .forbidden, code: "forbidden",
                message: "this needs membership of the admins or auditors group")
        }
    }

    @Test func adminReadsTheAuditLogInPages() async throws {
        let harness = try await Harness.make()
        for n in 1...5 {
            _ = try await harness.store.appendAudit(AuditRecord(.sessionStart, actor: "alice", session: "s\(n)"))
        }
        let admin = try await harness.loginToken("admin")
        try await harness.test { client in
            let latest = try await client.send(.get, "/api/v1/audit?limit=2", token: admin)
            #expect(latest.status == .ok)
            let page = try latest.decode(API.AuditPage.self)
            #expect(page.events.map(\.seq) == [4, 5])
            #expect(page.next_after == 5)
            let after = try await client.send(.get, "/api/v1/audit?after=1&limit=2", token: admin).decode(API.AuditPage.self)
            #expect(after.events.map(\.seq) == [2, 3])
            #expect(after.next_after == 3)
            let end = try await client.send(.get, "/api/v1/audit?after=5", token: admin).decode(API.AuditPage.self)
            #expect(end.events.isEmpty)
            #expect(end.next_after == 5)
            let all = try await client.send(.get, "/api/v1/audit", token: admin)
            #expect(all.text.contains("\"prev_hash\""))
            #expect(try all.decode(API.AuditPage.self).events.count == 5)
        }
    }

    @Test func adminVerifiesTheAuditChain() async throws {
        let harness = try await Harness.make()
        for n in 1...7 {
            _ = try await harness.store.appendAudit(AuditRecord(.tokenIssued, actor: "bob", detail: ["n": "\(n)"]))
        }
        let admin = try await harness.loginToken("admin")
        try await harness.test { client in
            let response = try await client.send(.get, "/api/v1/audit/verify", token: admin)
            #expect(response.status == .ok)
            let verification = try response.decode(API.AuditVerification.self)
            #expect(verification.intact)
            #expect(verification.events_checked == 7)
            #expect(verification.last_seq == 7)
            #expect(verification.problems.isEmpty)
            #expect(verification.last_hash == (try await harness.auditEvents().last?.hash))
        }
    }

    // MARK: Passwords

    @Test func userSetsTheirOwnPassword() async throws {
        let harness = try await Harness.make()
        let alice = try await harness.loginToken("alice")
        try await harness.test { client in
            expectAPIError(
                try await client.send(
                    .put, "/api/v1/users/alice/password", token: alice, json: #"{"password":"a-brand-new-password"}"#),
                .badRequest, code: "bad_request", message: "give your current password (current_password) to change it")
            expectAPIError(
                try await client.send(
                    .put, "/api/v1/users/alice/password", token: alice,
                    json: #"{"password":"a-brand-new-password","current_password":"not-my-password"}"#),
                .unauthorized, code: "login_failed", message: "the current password is wrong")
            let response = try await client.send(
                .put, "/api/v1/users/alice/password", token: alice,
                json: #"{"password":"a-brand-new-password","current_password":"\#(Seed.alicePassword)"}"#)
            #expect(response.status == .ok)
            #expect(try response.decode(API.Done.self).ok)
            let event = try #require(try await harness.auditEvents().last)
            #expect(event.type == "admin.password_set")
            #expect(event.actor == "alice")
            #expect(event.detail == ["user": "alice", "tokens_revoked": "all"])
            // The token used for the change is revoked with every other one.
            expectAPIError(try await client.send(.get, "/api/v1/me", token: alice), .unauthorized, code: "unauthenticated")
            #expect(
                try await client.send(.post, "/api/v1/login", json: #"{"user":"alice","password":"a-brand-new-password"}"#).status
                    == .ok)
            expectAPIError(
                try await client.send(.post, "/api/v1/login", json: #"{"user":"alice","password":"\#(Seed.alicePassword)"}"#),
                .unauthorized, code: "login_failed")
        }
    }

    @Test func userCannotSetAnotherUsersPassword() async throws {
        let harness = try await Harness.make()
        let alice = try await harness.loginToken("alice")
        let bobHash = try await harness.store.user(named: "bob")?.passwordHash
        try await harness.test { client in
            expectAPIError(
                try await client.send(
                    .put, "/api/v1/users/bob/password", token: alice, json: #"{"password":"taken-over-password"}"#),
                .forbidden, code: "forbidden", message: "only admins may set another user's password")
            // An unknown name is refused the same way, so names cannot be probed.
            expectAPIError(
                try await client.send(
                    .put, "/api/v1/users/nobody/password", token: alice, json: #"{"password":"taken-over-password"}"#),
                .forbidden, code: "forbidden")
            #expect(try await harness.store.user(named: "bob")?.passwordHash == bobHash)
        }
    }

    @Test func adminSetsAnotherUsersPassword() async throws {
        let harness = try await Harness.make()
        let admin = try await harness.loginToken("admin")
        try await harness.test { client in
            let response = try await client.send(
                .put, "/api/v1/users/bob/password", token: admin, json: #"{"password":"bobs-new-password"}"#)
            #expect(response.status == .ok)
            #expect(
                try await client.send(.post, "/api/v1/login", json: #"{"user":"bob","password":"bobs-new-password"}"#).status
                    == .ok)
            expectAPIError(
                try await client.send(
                    .put, "/api/v1/users/nobody/password", token: admin, json: #"{"password":"long-enough-password"}"#),
                .notFound, code: "not_found", message: "user nobody does not exist")
            let event = try #require(try await harness.auditEvents().first { $0.type == "admin.password_set" })
            #expect(event.actor == "admin")
            #expect(event.detail == ["user": "bob", "tokens_revoked": "all"])
        }
    }

    @Test func passwordsNeedTwelveCharacters() async throws {
        let harness = try await Harness.make()
        let alice = try await harness.loginToken("alice")
        let before = try await harness.store.user(named: "alice")?.passwordHash
        try await harness.test { client in
            expectAPIError(
                try await client.send(
                    .put, "/api/v1/users/alice/password", token: alice,
                    json: #"{"password":"elevenchars","current_password":"\#(Seed.alicePassword)"}"#),
                .badRequest, code: "bad_request", message: "a password needs at least 12 characters")
            expectAPIError(
                try await client.send(.put, "/api/v1/users/alice/password", token: alice, json: #"{"pass":"x"}"#), .badRequest,
                code: "bad_request")
            #expect(try await harness.store.user(named: "alice")?.passwordHash == before)
            #expect(
                try await client.send(
                    .put, "/api/v1/users/alice/password", token: alice,
                    json: #"{"password":"twelve-chars","current_password":"\#(Seed.alicePassword)"}"#
                ).status == .ok)
        }
    }
}
