import Crypto
import Foundation
import GatehouseAuth
import GatehouseCore
import GatehouseSessions
import HTTPTypes
import Hummingbird
import NIOCore

/// The web console under `/console`: server-rendered pages over the same operations as the API.
///
/// The login token lives in an HttpOnly, Secure, SameSite=Strict cookie scoped to `/console`; the API
/// never reads it, so a forged cross-site request cannot reach the API with it. Every form that
/// changes something carries a token derived from the login's id (HMAC with a per-process key), and
/// a request whose Origin is another site is refused.
struct ConsoleRoutes: Sendable {
    let api: APIRoutes
    let csrfKey = SymmetricKey(size: .bits256)

    static let sessionCookie = "gatehouse_console"
    static let loginCookie = "gatehouse_login"
    static let flashCookie = "gatehouse_flash"

    func add(to router: Router<GatehouseRequestContext>) {
        router.get("console") { _, _ in Self.redirect("/console/inbox") }
        let console = router.group("console")
        console.get("static/app.js") { _, _ in Self.asset(ConsoleAssets.script, type: "text/javascript; charset=utf-8") }
        console.get("static/app.css") { _, _ in Self.asset(ConsoleAssets.stylesheet, type: "text/css; charset=utf-8") }
        console.get("login", use: loginPage)
        console.post("login", use: login)
        console.post("logout") { request, context in
            try await self.action(request, context) { caller, _ in
                try await self.api.environment.tokens.revoke(tokenID: caller.claims.jti, expiresAt: caller.claims.expiresAt)
                try await self.api.audit(
                    AuditRecord(
                        .tokenRevoked, actor: caller.user.name, source: APIRoutes.source(context),
                        detail: ["token_id": caller.claims.jti, "kind": "login", "via": "console"]))
                var response = Self.redirect("/console/login")
                response.setCookie(Self.cookie(Self.sessionCookie, "", maxAge: 0))
                return response
            }
        }
        page(console, "inbox", title: "Inbox", render: inbox)
        page(console, "grants", title: "Grants", render: grants)
        page(console, "sessions", title: "Sessions", render: sessions)
        page(console, "audit", title: "Audit", render: audit)
        console.get("policy") { request, context in try await self.policyPage(request, context, result: nil) }
        console.post("policy") { request, context in
            try await self.action(request, context) { caller, form in
                let body = API.PolicyTestRequest(
                    sql: form["sql"] ?? "", connection: form["connection"] ?? "", user: form["user"],
                    source: form["source"].flatMap { $0.isEmpty ? nil : $0 },
                    application: form["application"].flatMap { $0.isEmpty ? nil : $0 })
                let result: Result<API.PolicyTestResult, APIError>
                do { result = .success(try await self.api.testPolicy(body, by: caller)) } catch let failure
                    as any APIErrorConvertible
                {
                    let error = failure.apiError
                    result = .failure(error)
                }
                return try await self.policyPage(request, context, result: (body, result))
            }
        }

        console.post("challenges/:id/verify") { request, context in
            try await self.action(request, context) { caller, form in
                let id = try context.parameters.require("id")
                _ = try await self.api.verifyChallenge(
                    id, by: caller, code: form["code"] ?? "", source: APIRoutes.source(context))
                return Self.redirect("/console/inbox", flash: "Verified: the held statement runs now.")
            }
        }
        for (verb, approve) in [("approve", true), ("deny", false)] {
            console.post("challenges/:id/\(verb)") { request, context in
                try await self.action(request, context) { caller, form in
                    let id = try context.parameters.require("id")
                    _ = try await self.api.decideChallenge(
                        id, approve: approve, by: caller, code: approve ? form["code"].flatMap { $0.isEmpty ? nil : $0 } : nil,
                        reason: approve ? nil : form["reason"], source: APIRoutes.source(context))
                    return Self.redirect("/console/inbox", flash: approve ? "Approved: the statement runs." : "Denied.")
                }
            }
        }
        console.post("requests") { request, context in
            try await self.action(request, context) { caller, form in
                let body = API.AccessRequestBody(
                    role: form["role"] ?? "", connection: form["connection"], duration: form["duration"] ?? "",
                    reason: form["reason"])
                let created = try await self.api.submitAccessRequest(body, by: caller)
                let state = created.state == .approved ? "approved at once" : "waiting for approval"
                return Self.redirect("/console/grants", flash: "Request \(created.id) for \(created.role): \(state).")
            }
        }
        for verb in ["approve", "deny", "revoke"] {
            console.post("requests/:id/\(verb)") { request, context in
                try await self.action(request, context) { caller, form in
                    let id = try context.parameters.require("id")
                    let result = try await self.api.decideAccessRequest(
                        id, action: verb, by: caller, code: form["code"].flatMap { $0.isEmpty ? nil : $0 },
                        reason: form["reason"])
                    let back = verb == "revoke" ? "/console/grants" : "/console/inbox"
                    return Self.redirect(back, flash: "Request \(result.id) is now \(result.state.rawValue).")
                }
            }
        }
        console.post("sessions/:id/terminate") { request, context in
            try await self.action(request, context) { caller, form in
                let id = try context.parameters.require("id")
                let revokeTokens = form["revoke_tokens"] == "true"
                try await self.api.terminate(
                    id, by: caller, reason: form["reason"], revokeTokens: revokeTokens, source: APIRoutes.source(context))
                return Self.redirect(
                    "/console/sessions",
                    flash: revokeTokens
                        ? "Session \(id) was terminated and every token of its user revoked." : "Session \(id) was terminated.")
            }
        }
    }

    /// A page and its live fragment (`/console/NAME/live`), both rendered by `render`.
    private func page(
        _ group: RouterGroup<GatehouseRequestContext>, _ name: String, title: String,
        render: @escaping @Sendable (APIRoutes.Caller, Request) async throws -> HTML
    ) {
        group.get(RouterPath(name)) { request, context in
            guard let caller = try await self.caller(request) else { return Self.redirect("/console/login") }
            let live = "/console/\(name)/live" + (request.uri.query.map { "?" + $0 } ?? "")
            let fragment = try await render(caller, request)
            let body: HTML = """
                <h1>\(title)</h1>
                <section id="\(name)-live" data-live="\(live)" data-etag="\(Self.tag(fragment))">\(html: fragment)</section>
                """
            return self.document(title: title, caller: caller, request: request, here: name, body: body)
        }
        group.get(RouterPath("\(name)/live")) { request, context in
            guard let caller = try await self.caller(request) else {
                throw APIError(.unauthenticated, "the console session ended: sign in again")
            }
            let fragment = try await render(caller, request)
            var response = Self.htmlResponse(fragment)
            response.headers[.eTag] = "\"\(Self.tag(fragment))\""
            return response
        }
    }

    /// A short digest of a fragment: the page's script replaces a region only when it changed, so
    /// what someone is about to click is not swapped under them for an identical copy.
    /// Countdowns tick on the page itself, so their text is left out: a region is not replaced every
    /// two seconds only because a second went by.
    static func tag(_ fragment: HTML) -> String {
        let marker = "<span class=\"countdown\""
        var parts = fragment.description.components(separatedBy: marker)
        for index in parts.indices.dropFirst() {
            let part = parts[index]
            guard let open = part.range(of: "\">"), let close = part.range(of: "</span>", range: open.upperBound..<part.endIndex)
            else { continue }
            parts[index] = String(part[..<open.upperBound]) + String(part[close.lowerBound...])
        }
        return Hex.encode(SHA256.hash(data: Data(parts.joined(separator: marker).utf8)).prefix(8))
    }

    // MARK: Sign-in

    @Sendable func loginPage(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        try await loginPage(request, error: nil)
    }

    func loginPage(
        _ request: Request, error: String?, user: String = "", status: HTTPResponse.Status = .ok
    ) async throws
        -> Response
    {
        let nonce = RandomSecret.hex(16)
        let message: HTML = error.map { "<div class=\"flash error\" role=\"alert\">\($0)</div>" } ?? .empty
        let body: HTML = """
            <div class="login card">
              <h1>Gatehouse</h1>
              \(html: message)
              <form class="stack" method="post" action="/console/login" id="login-form">
                <input type="hidden" name="csrf" value="\(nonce)">
                <label>User <input name="user" id="user" autocomplete="username" required value="\(user)"></label>
                <label>Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
                <label>Authenticator code (if you have a second factor)
                  <input name="code" id="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6,8}"></label>
                <button type="submit" id="sign-in">Sign in</button>
              </form>
            </div>
            """
        var response = Self.htmlResponse(Self.layout(title: "Sign in", header: .empty, flash: .empty, body: body), status: status)
        response.setCookie(Self.cookie(Self.loginCookie, nonce, maxAge: 600))
        return response
    }

    @Sendable func login(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        let form = try await Self.form(request)
        guard Self.sameOrigin(request), let nonce = request.cookies[Self.loginCookie]?.value, !nonce.isEmpty,
            Self.constantTimeEqual(nonce, form["csrf"] ?? "")
        else {
            return try await loginPage(request, error: "The sign-in form expired: try again.", status: .forbidden)
        }
        let user = form["user"] ?? ""
        do {
            let body = API.LoginRequest(
                user: user, password: form["password"] ?? "", code: form["code"].flatMap { $0.isEmpty ? nil : $0 })
            let (token, claims) = try await api.signIn(body, source: APIRoutes.source(context), via: "console")
            var response = Self.redirect("/console/inbox")
            response.setCookie(
                Self.cookie(Self.sessionCookie, token, maxAge: max(1, Int(claims.expiresAt.timeIntervalSinceNow))))
            response.setCookie(Self.cookie(Self.loginCookie, "", maxAge: 0))
            return response
        } catch let failure as any APIErrorConvertible {
            let error = failure.apiError
            return try await loginPage(request, error: error.message, user: user, status: error.status)
        }
    }

    // MARK: Authentication and forms

    func caller(_ request: Request) async throws -> APIRoutes.Caller? {
        guard let token = request.cookies[Self.sessionCookie]?.value, !token.isEmpty else { return nil }
        do { return try await api.authenticate(token: token) } catch is any APIErrorConvertible { return nil }
    }

    func csrfToken(for caller: APIRoutes.Caller) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(caller.claims.jti.utf8), using: csrfKey)
        return Data(mac).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// A form post that changes something: signed in, same origin, the right form token. Failures
    /// come back to the page as a message; nothing is done.
    func action(
        _ request: Request, _ context: GatehouseRequestContext,
        _ body: (APIRoutes.Caller, [String: String]) async throws -> Response
    ) async throws -> Response {
        guard let caller = try await caller(request) else { return Self.redirect("/console/login") }
        let form = try await Self.form(request)
        guard Self.sameOrigin(request), Self.constantTimeEqual(form["csrf"] ?? "", csrfToken(for: caller)) else {
            throw APIError(.forbidden, "the form's security token is missing or stale: reload the page and try again")
        }
        do {
            return try await body(caller, form)
        } catch let failure as any APIErrorConvertible where failure.apiError.code != .internalError {
            let error = failure.apiError
            return Self.redirect(Self.back(request), flash: error.message, isError: true)
        }
    }

    /// Where a form came from (its page), from the path it posted to.
    static func back(_ request: Request) -> String {
        let path = request.uri.path
        for page in ["grants", "sessions", "audit", "policy"] where path.hasPrefix("/console/\(page)") {
            return "/console/\(page)"
        }
        if path.hasPrefix("/console/requests"), path.hasSuffix("/revoke") || path == "/console/requests" {
            return "/console/grants"
        }
        return "/console/inbox"
    }

    /// Refuses requests that a browser marks as coming from another site.
    static func sameOrigin(_ request: Request) -> Bool {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], site != "same-origin", site != "none" {
            return false
        }
        guard let origin = request.headers[.origin] else { return true }
        guard let host = request.head.authority else { return false }
        return origin == "http://\(host)" || origin == "https://\(host)"
    }

    static func form(_ request: Request) async throws -> [String: String] {
        var request = request
        let buffer = try await request.collectBody(upTo: 256 * 1024)
        do {
            return try URLEncodedFormDecoder().decode([String: String].self, from: String(buffer: buffer))
        } catch {
            throw APIError(.badRequest, "the form could not be read")
        }
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count, !x.isEmpty else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    // MARK: Responses

    static func cookie(_ name: String, _ value: String, maxAge: Int) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/console", secure: true, httpOnly: true, sameSite: .strict)
    }

    static func redirect(_ location: String, flash: String? = nil, isError: Bool = false) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        var response = Response(status: .seeOther, headers: headers)
        if let flash {
            let value = (isError ? "e" : "i") + Data(flash.utf8).base64EncodedString()
            response.setCookie(
                Cookie(
                    name: flashCookie, value: value.replacingOccurrences(of: "=", with: "."), maxAge: 30, path: "/console",
                    secure: true, httpOnly: true, sameSite: .strict))
        }
        return response
    }

    static func htmlResponse(_ html: HTML, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html.description)))
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// A whole page for a signed-in caller, with the flash message (if any) shown once.
    func document(title: String, caller: APIRoutes.Caller, request: Request, here: String, body: HTML) -> Response {
        var flash = HTML.empty
        var clearFlash = false
        if let value = request.cookies[Self.flashCookie]?.value, let kind = value.first,
            let data = Data(base64Encoded: String(value.dropFirst()).replacingOccurrences(of: ".", with: "=")),
            let text = String(data: data, encoding: .utf8)
        {
            flash = "<div class=\"flash\(kind == "e" ? " error" : "")\" role=\"status\" id=\"flash\">\(text)</div>"
            clearFlash = true
        }
        let links: [(String, String)] = [
            ("inbox", "Inbox"), ("grants", "Grants"), ("sessions", "Sessions"), ("audit", "Audit"), ("policy", "Policy"),
        ]
        let nav = HTML.join(
            links.map { name, label in
                name == here
                    ? "<a href=\"/console/\(name)\" class=\"here\" id=\"nav-\(name)\">\(label)</a>"
                    : "<a href=\"/console/\(name)\" id=\"nav-\(name)\">\(label)</a>"
            })
        let groups = caller.user.groups.isEmpty ? "" : " (\(caller.user.groups.joined(separator: ", ")))"
        let header: HTML = """
            <header><span class="brand">Gatehouse</span><nav>\(html: nav)</nav>
            <span class="who"><span id="whoami">\(caller.user.name)\(groups)</span>
            <form method="post" action="/console/logout" class="inline"><input type="hidden" name="csrf" value="\(csrfToken(for: caller))">
            <button type="submit" id="sign-out">Sign out</button></form></span></header>
            """
        var response = Self.htmlResponse(Self.layout(title: title, header: header, flash: flash, body: body))
        if clearFlash { response.setCookie(Self.cookie(Self.flashCookie, "", maxAge: 0)) }
        return response
    }

    static func layout(title: String, header: HTML, flash: HTML, body: HTML) -> HTML {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(title) · Gatehouse</title><link rel="stylesheet" href="/console/static/app.css">
        <script src="/console/static/app.js" defer></script></head>
        <body>\(html: header)<main>\(html: flash)\(html: body)</main></body></html>
        """
    }
}
