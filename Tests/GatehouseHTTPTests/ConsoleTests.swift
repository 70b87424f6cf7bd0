import Foundation
import GatehouseAuth
import GatehouseCore
import GatehouseStore
import Hummingbird
import HummingbirdTesting
import NIOConcurrencyHelpers
import Testing

@testable import GatehouseHTTP
@testable import GatehouseProxy
@testable import GatehouseSessions

/// The web console over the router: sign-in, cookies, form tokens, origins, escaping, pages.
@Suite("Web console")
struct ConsoleTests {
    /// What a browser keeps between requests: cookies by name.
    final class Browser: @unchecked Sendable {
        var cookies: [String: String] = [:]
        let lock = NSLock()

        func remember(_ response: TestResponse) {
            lock.lock()
            defer { lock.unlock() }
            for header in response.headers[values: .setCookie] {
                let pair = header.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(pair[0])
                let value = pair.count > 1 ? String(pair[1]) : ""
                if value.isEmpty || header.contains("Max-Age=0") { cookies[name] = nil } else { cookies[name] = value }
            }
        }

        var header: String {
            lock.lock()
            defer { lock.unlock() }
            return cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
        }
    }

    static func request(
        _ client: any TestClientProtocol, _ browser: Browser, _ method: HTTPRequest.Method, _ uri: String,
        form: [String: String]? = nil, origin: String? = "http://localhost"
    ) async throws -> TestResponse {
        var headers = HTTPFields()
        if !browser.cookies.isEmpty { headers[.cookie] = browser.header }
        var body: ByteBuffer?
        if let form {
            headers[.contentType] = "application/x-www-form-urlencoded"
            if let origin { headers[.origin] = origin }
            var components = URLComponents()
            components.queryItems = form.map { URLQueryItem(name: $0.key, value: $0.value) }
            body = ByteBuffer(string: components.percentEncodedQuery!.replacingOccurrences(of: "+", with: "%2B"))
        }
        let response = try await client.execute(uri: uri, method: method, headers: headers, body: body)
        browser.remember(response)
        return response
    }

    static func hiddenValue(_ html: String, _ name: String = "csrf") -> String? {
        guard let range = html.range(of: "name=\"\(name)\" value=\"") else { return nil }
        return String(html[range.upperBound...].prefix { $0 != "\"" })
    }

    /// Signs in through the form; returns the page's form token.
    static func signIn(
        _ client: any TestClientProtocol, _ browser: Browser, user: String, password: String
    ) async throws -> String {
        let page = try await request(client, browser, .get, "/console/login")
        let nonce = try #require(hiddenValue(page.text))
        let response = try await request(
            client, browser, .post, "/console/login", form: ["csrf": nonce, "user": user, "password": password])
        #expect(response.status == .seeOther, "\(response.text)")
        #expect(response.headers[.location] == "/console/inbox")
        let inbox = try await request(client, browser, .get, "/console/inbox")
        #expect(inbox.status == .ok)
        return try #require(hiddenValue(inbox.text))
    }

    @Test func signInSetsAHardenedCookieAndPagesNeedIt() async throws {
        let harness = try await Harness.make()
        try await harness.test { client in
            let browser = Browser()
            let anonymous = try await Self.request(client, browser, .get, "/console/inbox")
            #expect(anonymous.status == .seeOther)
            #expect(anonymous.headers[.location] == "/console/login")
            let fragment = try await Self.request(client, browser, .get, "/console/inbox/live")
            #expect(fragment.status == .unauthorized)

            let page = try await Self.request(client, browser, .get, "/console/login")
            let nonce = try #require(Self.hiddenValue(page.text))
            let signIn = try await Self.request(
                client, browser, .post, "/console/login", form: ["csrf": nonce, "user": "alice", "password": Seed.alicePassword])
            let cookie = try #require(signIn.headers[values: .setCookie].first { $0.hasPrefix("gatehouse_console=") })
            for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
                #expect(cookie.contains(attribute), "\(cookie)")
            }
            let inbox = try await Self.request(client, browser, .get, "/console/inbox")
            #expect(inbox.status == .ok)
            #expect(inbox.text.contains("Nothing waits for you."))
            // The live fragment's ETag is the page's data-etag while nothing changed: the script leaves it be.
            let live = try await Self.request(client, browser, .get, "/console/inbox/live")
            let etag = try #require(live.headers[.eTag]).replacingOccurrences(of: "\"", with: "")
            #expect(inbox.text.contains("data-etag=\"\(etag)\""))
            #expect(inbox.text.contains("alice (developer)"))
            let event = try #require(try await harness.auditEvents().last { $0.type == "login.success" })
            #expect(event.detail["via"] == "console")
        }
    }

    @Test func aWrongPasswordShowsTheReasonAndIsAudited() async throws {
        let harness = try await Harness.make()
        try await harness.test { client in
            let browser = Browser()
            let page = try await Self.request(client, browser, .get, "/console/login")
            let nonce = try #require(Self.hiddenValue(page.text))
            let response = try await Self.request(
                client, browser, .post, "/console/login", form: ["csrf": nonce, "user": "alice", "password": "wrong-password"])
            #expect(response.status == .unauthorized)
            #expect(response.text.contains("role=\"alert\""))
            #expect(browser.cookies["gatehouse_console"] == nil)
            #expect(try await harness.auditEvents().last?.type == "login.failure")
        }
    }

    @Test func theSignInFormRefusesAMissingNonceAndAnotherOrigin() async throws {
        let harness = try await Harness.make()
        try await harness.test { client in
            let browser = Browser()
            let page = try await Self.request(client, browser, .get, "/console/login")
            let nonce = try #require(Self.hiddenValue(page.text))
            let forged = try await Self.request(
                client, browser, .post, "/console/login",
                form: ["csrf": "forged", "user": "alice", "password": Seed.alicePassword])
            #expect(forged.status == .forbidden)
            let crossSite = try await Self.request(
                client, browser, .post, "/console/login", form: ["csrf": nonce, "user": "alice", "password": Seed.alicePassword],
                origin: "https://evil.example")
            #expect(crossSite.status == .forbidden)
            #expect(browser.cookies["gatehouse_console"] == nil)
            #expect(try await harness.auditEvents().allSatisfy { $0.type != "login.success" })
        }
    }

    @Test func formsWithoutTheRightTokenChangeNothing() async throws {
        let harness = try await Harness.make()
        let target = UpstreamCancelTarget(host: "db", port: 5432, processID: 1, secretKey: 2)
        let reasons = NIOLockedValueBox<[String]>([])
        _ = harness.registry.register(harness.session("s1", user: "alice"), cancelTarget: target) { reason in
            reasons.withLockedValue { $0.append(reason) }
        }
        try await harness.test { client in
            let browser = Browser()
            let csrf = try await Self.signIn(client, browser, user: "admin", password: Seed.adminPassword)
            let stale = try await Self.request(
                client, browser, .post, "/console/sessions/s1/terminate", form: ["csrf": "not-the-token"])
            #expect(stale.status == .forbidden)
            let crossSite = try await Self.request(
                client, browser, .post, "/console/sessions/s1/terminate", form: ["csrf": csrf], origin: "https://evil.example")
            #expect(crossSite.status == .forbidden)
            #expect(reasons.withLockedValue { $0 }.isEmpty)

            let done = try await Self.request(
                client, browser, .post, "/console/sessions/s1/terminate", form: ["csrf": csrf, "reason": "incident 42"])
            #expect(done.status == .seeOther)
            #expect(done.headers[.location] == "/console/sessions")
            #expect(reasons.withLockedValue { $0 } == ["incident 42; you may reconnect"])
            let page = try await Self.request(client, browser, .get, "/console/sessions")
            #expect(page.text.contains("Session s1 was terminated."))
            // The message is shown once.
            let again = try await Self.request(client, browser, .get, "/console/sessions")
            #expect(!again.text.contains("was terminated"))
        }
    }

    @Test func aRefusedActionComesBackAsAMessage() async throws {
        let harness = try await Harness.make()
        let target = UpstreamCancelTarget(host: "db", port: 5432, processID: 1, secretKey: 2)
        let cut = NIOLockedValueBox(false)
        _ = harness.registry.register(harness.session("s-bob", user: "bob"), cancelTarget: target) { _ in
            cut.withLockedValue { $0 = true }
        }
        try await harness.test { client in
            let browser = Browser()
            let csrf = try await Self.signIn(client, browser, user: "alice", password: Seed.alicePassword)
            let response = try await Self.request(
                client, browser, .post, "/console/sessions/s-bob/terminate", form: ["csrf": csrf])
            #expect(response.status == .seeOther)
            let page = try await Self.request(client, browser, .get, "/console/sessions")
            #expect(page.text.contains("flash error"))
            #expect(page.text.contains("only admins may terminate another user&#39;s session"))
            #expect(cut.withLockedValue { $0 } == false)
        }
    }

    @Test func statementTextIsEscapedWherePeopleReadIt() async throws {
        let harness = try await Harness.make()
        let now = harness.clock.now
        await harness.stepUp.open(
            Challenge(
                id: "c1", kind: .stepUp, user: "alice", session: "s1", connection: "app",
                statement: "SELECT '<script>alert(1)</script>' -- \" onmouseover=", fingerprint: "f", rules: ["r"],
                reason: "writes need step-up", createdAt: now, expiresAt: now.addingTimeInterval(120))
        ) { _ in }
        try await harness.test { client in
            let browser = Browser()
            _ = try await Self.signIn(client, browser, user: "alice", password: Seed.alicePassword)
            let inbox = try await Self.request(client, browser, .get, "/console/inbox/live")
            #expect(inbox.text.contains("Statements waiting for your code"))
            #expect(!inbox.text.contains("<script>alert"))
            #expect(inbox.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(inbox.text.contains("&quot; onmouseover="))
        }
    }

    @Test func everyAnswerCarriesTheSecurityHeaders() async throws {
        let harness = try await Harness.make()
        try await harness.test { client in
            for uri in ["/console/login", "/api/v1/health", "/api/v1/me", "/console/static/app.js", "/nowhere"] {
                let response = try await client.execute(uri: uri, method: .get)
                let csp = response.headers[.contentSecurityPolicy] ?? ""
                #expect(csp.contains("default-src 'none'"), "\(uri)")
                #expect(csp.contains("script-src 'self'"), "\(uri)")
                #expect(csp.contains("frame-ancestors 'none'"), "\(uri)")
                #expect(!csp.contains("unsafe-inline"), "\(uri)")
                #expect(response.headers[.xContentTypeOptions] == "nosniff", "\(uri)")
                #expect(response.headers[.init("X-Frame-Options")!] == "DENY", "\(uri)")
                #expect(response.headers[.init("Referrer-Policy")!] == "same-origin", "\(uri)")
            }
        }
    }

    @Test("audit rows read at a glance: refusals red, successes green, what waits amber")
    func auditOutcomes() {
        #expect(ConsoleRoutes.outcome(of: "statement.denied") == "deny")
        #expect(ConsoleRoutes.outcome(of: "session.refused") == "deny")
        #expect(ConsoleRoutes.outcome(of: "login.failure") == "deny")
        #expect(ConsoleRoutes.outcome(of: "statement.allowed") == "ok")
        #expect(ConsoleRoutes.outcome(of: "request.approved") == "ok")
        #expect(ConsoleRoutes.outcome(of: "challenge.created") == "pending")
        #expect(ConsoleRoutes.outcome(of: "session.start") == "plain")
    }

    @Test("times in the reader's zone, on one line; a zone name that is not one is UTC")
    func readersZone() throws {
        let instant = try Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse("2026-12-06T21:00:34.891Z")
        let utc = ConsoleClock(zone: ConsoleClock.utc, now: instant)
        #expect(utc.shown(instant) == "2026-12-06 21:00:34")
        #expect(utc.label == "UTC")
        let paris = ConsoleClock(zone: try #require(ConsoleClock.zone(named: "Europe%2FParis")), now: instant)
        #expect(paris.shown(instant) == "2026-12-06 22:00:34")
        #expect(paris.label == "Europe/Paris")
        #expect(paris.time("2026-12-06T21:00:34.891Z").description.contains(">2026-12-06 22:00:34</time>"))
        #expect(paris.time("not a time").description == "<time>not a time</time>")
        // Summer time is the zone's business, not ours.
        let july = try Date.ISO8601FormatStyle().parse("2026-07-01T12:00:00Z")
        #expect(paris.shown(july) == "2026-07-01 14:00:00")
        for junk in ["", "Mars/Olympus_Mons", "../../etc/passwd", "Europe/Paris\"<script>", String(repeating: "A", count: 80)] {
            #expect(ConsoleClock.zone(named: junk) == nil, "\(junk)")
        }
    }

    @Test("a countdown is counted on the server (no raw timestamp before the script runs) and does not change the region's tag")
    func countdownsAreCountedAlready() throws {
        let now = try Date.ISO8601FormatStyle().parse("2026-12-06T21:00:00Z")
        let clock = ConsoleClock(zone: ConsoleClock.utc, now: now)
        #expect(clock.countdown(now.addingTimeInterval(125)).description.hasSuffix(">2m 05s</span>"))
        #expect(clock.countdown(now.addingTimeInterval(7800)).description.hasSuffix(">2h 10m</span>"))
        #expect(clock.countdown(now.addingTimeInterval(-5)).description.hasSuffix(">ended</span>"))
        #expect(!clock.countdown(now.addingTimeInterval(60)).description.contains(">2026-"))
        let later = ConsoleClock(zone: ConsoleClock.utc, now: now.addingTimeInterval(3))
        let end = now.addingTimeInterval(600)
        let a: HTML = "<p>grant</p>\(html: clock.countdown(end))<p>x</p>"
        let b: HTML = "<p>grant</p>\(html: later.countdown(end))<p>x</p>"
        #expect(a.description != b.description)
        #expect(ConsoleRoutes.tag(a) == ConsoleRoutes.tag(b))
        let other: HTML = "<p>grant</p>\(html: clock.countdown(end.addingTimeInterval(60)))<p>x</p>"
        #expect(ConsoleRoutes.tag(a) != ConsoleRoutes.tag(other), "another end is another state")
    }

    @Test func pagesShowGrantsSessionsAuditAndThePolicyTester() async throws {
        let harness = try await Harness.make(yaml: AuthorizationMatrixTests.yaml)
        let alice = try await harness.user("alice")
        let request = try await harness.grants.submit(
            requester: alice, role: "dba", connection: "app", duration: 1800, reason: "OPS-7", startAt: nil)
        try await harness.test { client in
            // dave approves alice's request from his inbox.
            let dave = Browser()
            let daveToken = try await harness.loginToken("dave")
            dave.cookies["gatehouse_console"] = daveToken
            let inbox = try await Self.request(client, dave, .get, "/console/inbox")
            #expect(inbox.text.contains("id=\"request-\(request.id)\""))
            let csrf = try #require(Self.hiddenValue(inbox.text))
            let approved = try await Self.request(
                client, dave, .post, "/console/requests/\(request.id)/approve", form: ["csrf": csrf])
            #expect(approved.status == .seeOther)
            #expect(harness.grants.activeGrants(for: "alice", on: "app", at: harness.clock.now).map(\.id) == [request.id])

            // alice sees her grant with its expiry, and can test a write as herself.
            let browser = Browser()
            let aliceCSRF = try await Self.signIn(client, browser, user: "alice", password: Seed.alicePassword)
            let grants = try await Self.request(client, browser, .get, "/console/grants/live")
            #expect(grants.text.contains("id=\"grant-\(request.id)\""))
            #expect(grants.text.contains("data-expires="))
            let tested = try await Self.request(
                client, browser, .post, "/console/policy",
                form: ["csrf": aliceCSRF, "connection": "app", "sql": "UPDATE t SET a = 1 WHERE id = 2"])
            #expect(tested.status == .ok)
            // The dry run judges alice as a developer without simulated roles: the write is refused.
            #expect(tested.text.contains("id=\"test-action\">deny<"))
            #expect(tested.text.contains("developers-read-only"))
            let audit = try await Self.request(client, browser, .get, "/console/audit?type=request.")
            #expect(audit.text.contains("request.created"))
            #expect(!audit.text.contains("chain intact"), "people who do not see all do not get the chain report")
            // Readable rows: the outcome at a glance, the time on one line, the details as a list behind
            // the reason.
            #expect(audit.text.contains("<tr class=\"event pending\""), "a created request waits")
            #expect(audit.text.contains("<th>Time (UTC)</th>"))
            let times = audit.text.components(separatedBy: "<time datetime=\"").dropFirst()
            #expect(!times.isEmpty)
            for time in times {
                let shown = time.components(separatedBy: "\">")[1].components(separatedBy: "</time>")[0]
                #expect(shown.count == 19 && !shown.contains("T"), "\(shown)")
            }
            #expect(audit.text.contains("<details><summary>"))
            #expect(audit.text.contains("<dt>role</dt><dd>dba</dd>"))
            #expect(!grants.text.contains("\">20"), "the countdown is counted, not a raw timestamp: \(grants.text)")

            // Once the browser has named its zone (the page's script sets the cookie), times are in it.
            browser.cookies[ConsoleClock.cookie] = "Asia%2FTokyo"
            let local = try await Self.request(client, browser, .get, "/console/audit?type=request.")
            #expect(local.text.contains("<th>Time (Asia/Tokyo)</th>"), "\(local.text.prefix(300))")
            let shown = try #require(local.text.components(separatedBy: "<time datetime=\"").dropFirst().first)
            let exact = try Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(
                String(shown.prefix { $0 != "\"" }))
            let tokyo = ConsoleClock(zone: TimeZone(identifier: "Asia/Tokyo")!, now: exact)
            #expect(shown.contains(">\(tokyo.shown(exact))</time>"), "\(shown.prefix(160))")
            let sessions = try await Self.request(client, browser, .get, "/console/sessions")
            #expect(sessions.status == .ok)
        }
    }
}
