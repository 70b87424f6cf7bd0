import Foundation
import GatehouseCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The web console in a real browser: headless Chromium signs in, approves a JIT request, verifies a
/// step-up challenge while psql waits, terminates a session, and screenshots the pages it used.
@Suite("Web console in headless Chromium", .timeLimit(.minutes(5)))
struct ConsoleBrowserTests {
    static let config = """
        roles:
          - name: dba
            requesters: [developer]
            max_duration: 1h
            reason: {required: true}
            approvers: {groups: [dba]}
        policy:
          rules:
            - name: writes-need-step-up
              match: {writes: true}
              action: step_up
              message: writes need a fresh second factor
        """

    /// Where a screenshot goes (`testArtifact`).
    static func artifact(_ name: String) throws -> String {
        try testArtifact("console/\(name)")
    }

    static func signIn(
        _ browser: Browser, _ gateway: Gateway, user: String, password: String, code: String? = nil
    )
        async throws
    {
        try await browser.open("\(gateway.server)/console/login")
        try await browser.type("#user", user)
        try await browser.type("#password", password)
        if let code { try await browser.type("#code", code) }
        try await browser.click("#sign-in")
        try await browser.waitForText("id=\"whoami\">\(user)")
        #expect(try await browser.url.hasSuffix("/console/inbox"))
    }

    static func signOut(_ browser: Browser) async throws {
        try await browser.click("#sign-out")
        _ = try await browser.element("#login-form")
    }

    @Test("sign in, approve a request, verify a held statement, terminate a session, read the audit trail")
    func consoleFlow() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.config)
        // A browser in Tokyo: the console writes times in the browser's zone.
        let browser = try await Browser.start(timeZone: "Asia/Tokyo")
        do {
            try await flow(gateway, browser)
        } catch {
            try? await browser.screenshot(to: try Self.artifact("failure.png"))
            await browser.quit()
            throw error
        }
        await browser.quit()
    }

    private func flow(_ gateway: Gateway, _ browser: Browser) async throws {
        // alice enrols a second factor; confirming, signing in and verifying each take a code of a later
        // step than the one before (a code is good once), one the gateway will still take when it gets it.
        let token = try await gateway.aliceToken()
        let enrol = try await gateway.cli(
            "alice", ["mfa", "enroll", "--json", "--password-stdin"], stdin: Gateway.alicePassword + "\n")
        #expect(enrol.status == 0, "\(enrol)")
        let secret = try #require(
            (try JSONSerialization.jsonObject(with: Data(enrol.stdout.utf8)) as? [String: Any])?["secret"] as? String)
        var codes = RisingCodes(TOTP(secret: try #require(Base32.decode(secret))))
        let confirm = try await gateway.cli("alice", ["mfa", "confirm", try await codes.next()])
        #expect(confirm.status == 0, "\(confirm)")

        // 1. alice asks for the dba role; bob (an approver) approves it in the console.
        let request = try await gateway.cli(
            "alice", ["request", "dba", "--duration", "30m", "--reason", "OPS-12 fix the import", "--no-wait"])
        #expect(request.status == 0, "\(request)")
        let requestID = try GrantTests.requestID(request.stdout + request.stderr)
        try await Self.signIn(browser, gateway, user: "bob", password: Gateway.bobPassword)
        try await browser.waitForText("id=\"request-\(requestID)\"")
        #expect(try await browser.text("#request-\(requestID)").contains("OPS-12 fix the import"))
        try await browser.screenshot(to: try Self.artifact("inbox-approver.png"))
        try await browser.click("#approve-\(requestID)")
        try await browser.waitForText("is now approved")
        let grants = try await gateway.cli("alice", ["requests"])
        #expect(grants.stdout.contains(requestID) && grants.stdout.contains("approved"), "\(grants)")
        try await Self.signOut(browser)

        // 2. alice signs in with password and code, and sees her grant with the time left.
        try await Self.signIn(
            browser, gateway, user: "alice", password: Gateway.alicePassword, code: try await codes.next())
        try await browser.click("#nav-grants")
        try await browser.waitForText("id=\"grant-\(requestID)\"")

        // 3. A write waits in psql for step-up; the inbox shows it without a reload; alice verifies it.
        try await browser.click("#nav-inbox")
        _ = try await browser.element("#inbox-empty")
        let table = uniqueTable("console")
        let psql = try await gateway.startPsql(
            password: token, ["-c", "create table \(table) (id int)", "-c", "select 'released'"])
        let challenge = try await StepUpTests.challengeID(of: psql)
        // The page polls every two seconds; on a loaded machine a poll may wait long for its answer.
        try await browser.waitForText("id=\"challenge-\(challenge)\"", timeout: 45)
        #expect(try await browser.text("#challenge-\(challenge)").contains("create table \(table)"))
        try await browser.screenshot(to: try Self.artifact("inbox.png"))
        try await browser.type("#code-\(challenge)", try await codes.next())
        try await browser.click("#verify-\(challenge)")
        try await browser.waitForText("Verified: the held statement runs now.")
        let released = try await psql.wait(timeout: 30)
        #expect(released.status == 0, "\(released)")
        #expect(released.stdout.contains("released"), "\(released)")
        try await Self.signOut(browser)

        // 4. The administrator terminates a live session from the sessions page, and revokes alice's
        // tokens with it: the same token no longer opens a session.
        let sleeper = try await gateway.startPsql(password: token, ["-c", "select pg_sleep(60)"])
        guard let adminPassword = gateway.adminPassword else { throw HarnessError("no admin password was printed") }
        try await Self.signIn(browser, gateway, user: "admin", password: adminPassword)
        try await browser.click("#nav-sessions")
        try await browser.waitForText("<td>alice</td>")
        try await browser.type("tr.session input[name=reason]", "console test")
        try await browser.click("tr.session input[name=revoke_tokens]")
        try await browser.click("tr.session button.danger")
        try await browser.waitForText("was terminated and every token of its user revoked")
        let ended = try await sleeper.wait(timeout: 30)
        #expect(ended.status != 0)
        #expect(ended.stderr.contains("terminating connection: console test; your tokens were revoked"), "\(ended)")
        let again = try await gateway.psql(password: token, ["-c", "select 1"])
        #expect(again.status != 0)
        #expect(again.stderr.contains("the token was revoked"), "\(again)")

        // 4b. A narrow screen (390 px, a phone): the navigation and the sign-out button stay on screen,
        // the page does not scroll sideways; screenshots of each page at that width.
        try await browser.resize(width: 390, height: 844)
        for page in ["inbox", "grants", "sessions", "audit", "policy"] {
            try await browser.open("\(gateway.server)/console/\(page)")
            _ = try await browser.element("#nav-\(page)")
            let fits = try await browser.evaluate(
                """
                const width = document.documentElement.clientWidth;
                const parts = Array.from(document.querySelectorAll('header nav a, #sign-out'));
                return parts.length === 6 && parts.every(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.left >= 0 && r.right <= width; })
                  && document.documentElement.scrollWidth <= width;
                """)
            #expect(fits as? Bool == true, "\(page) at 390 px: \(String(describing: fits))")
            try await browser.screenshot(to: try Self.artifact("\(page)-390.png"))
        }
        try await browser.resize(width: 1280, height: 1000)

        // 5. The audit trail shows what happened, with the chain verified.
        try await browser.click("#nav-audit")
        try await browser.waitForText("chain intact")
        try await browser.waitForText("Time (Asia/Tokyo)")
        for type in ["request.approved", "challenge.verified", "session.terminated", "login.success"] {
            try await browser.waitForText(type)
        }
        try await browser.screenshot(to: try Self.artifact("audit.png"))
        try await browser.type("#audit-filters input[name=type]", "challenge.")
        try await browser.click("#audit-apply")
        try await browser.waitForURL(containing: "type=challenge.")
        try await browser.waitForText("challenge.verified")
        #expect(try await !browser.source.contains("session.terminated"))
        try await Self.signOut(browser)
        for name in ["inbox-approver.png", "inbox.png", "audit.png"] {
            let size = (try FileManager.default.attributesOfItem(atPath: try Self.artifact(name))[.size] as? Int) ?? 0
            #expect(size > 10_000, "\(name) is \(size) bytes")
        }
    }
}

/// One-time codes for a test that needs several: each of a later step than the last (the gateway takes a
/// step once), and the earliest such step the gateway will still accept for at least `margin` seconds
/// (it accepts one step either side of its own). Waits when that step is not yet accepted.
struct RisingCodes {
    let totp: TOTP
    var margin: TimeInterval = 10
    private var last: Int64?

    /// `after`: a step already used (the one that confirmed the enrolment).
    init(_ totp: TOTP, after step: Int64? = nil) {
        self.totp = totp
        last = step
    }

    mutating func next() async throws -> String {
        let period = Double(totp.period)
        let now = Date().timeIntervalSince1970
        var step = Int64(((now + margin) / period).rounded(.down)) - 1
        if let last { step = max(step, last + 1) }
        let acceptedFrom = Double(step - 1) * period
        if acceptedFrom > now { try await Task.sleep(for: .seconds(acceptedFrom - now + 0.5)) }
        last = step
        return totp.code(step: step)
    }
}
