import Foundation
import GatehouseAuth
import GatehouseCore
import GatehouseSessions
import Hummingbird

/// The console's pages. Each renders the part that changes (the live fragment); `page` wraps it.
extension ConsoleRoutes {
    /// "sent by an AI agent": a person deciding on a held statement knows a program wrote it.
    static func agentBadge(_ challenge: Challenge) -> HTML {
        guard let agent = challenge.agent else { return .empty }
        return " <span class=\"badge agent\">AI agent \(agent)</span>"
    }

    func hidden(_ caller: APIRoutes.Caller) -> HTML {
        "<input type=\"hidden\" name=\"csrf\" value=\"\(csrfToken(for: caller))\">"
    }

    /// The reader's clock: their zone, and now.
    func clock(_ request: Request) -> ConsoleClock {
        ConsoleClock(request: request, now: api.environment.identities.now())
    }

    // MARK: Inbox

    /// What waits for me: my held statements (give a code), statements and requests I may approve,
    /// and my own requests still pending.
    @Sendable func inbox(_ caller: APIRoutes.Caller, _ request: Request) async throws -> HTML {
        let clock = self.clock(request)
        let me = caller.user.name
        let challenges = await api.environment.stepUp?.challenges(for: me, groups: caller.user.groups) ?? []
        let mine = challenges.filter { $0.user == me && $0.kind == .stepUp }
        let toApprove = challenges.filter { $0.user != me && $0.kind == .approve }
        let grants = api.environment.grants
        let requestsToApprove = await grants?.awaitingDecision(by: me, groups: caller.user.groups) ?? []
        let myRequests =
            await grants?.requests(for: me, groups: caller.user.groups, isAdmin: false)
            .filter { $0.state == .pending && $0.requester == me } ?? []
        let roles = await grants?.roles ?? []

        var sections: [HTML] = []
        if !mine.isEmpty {
            sections.append("<h2>Statements waiting for your code</h2>")
            for challenge in mine {
                sections.append(
                    """
                    <div class="card challenge" id="challenge-\(challenge.id)">
                      <div><span class="badge step_up">step-up</span>\(html: Self.agentBadge(challenge)) on <b>\(challenge.connection)</b>, session \(challenge.session)</div>
                      <pre>\(challenge.statement)</pre>
                      <div class="meta">\(challenge.reason) · expires in \(html: clock.countdown(challenge.expiresAt))</div>
                      <form class="inline" method="post" action="/console/challenges/\(challenge.id)/verify">\(html: hidden(caller))
                        <input name="code" id="code-\(challenge.id)" inputmode="numeric" autocomplete="one-time-code" placeholder="code from your authenticator" required>
                        <button type="submit" id="verify-\(challenge.id)">Verify and run</button></form>
                    </div>
                    """)
            }
        }
        if !toApprove.isEmpty {
            sections.append("<h2>Statements waiting for your approval</h2>")
            for challenge in toApprove {
                let code: HTML =
                    challenge.approverStepUp
                    ? "<input name=\"code\" inputmode=\"numeric\" placeholder=\"your code\" required>" : .empty
                sections.append(
                    """
                    <div class="card challenge" id="challenge-\(challenge.id)">
                      <div><span class="badge approve">approval</span>\(html: Self.agentBadge(challenge)) <b>\(challenge.user)</b> on <b>\(challenge.connection)</b></div>
                      <pre>\(challenge.statement)</pre>
                      <div class="meta">\(challenge.reason) · expires in \(html: clock.countdown(challenge.expiresAt))</div>
                      <form class="inline" method="post" action="/console/challenges/\(challenge.id)/approve">\(html: hidden(caller))\(html: code)
                        <button type="submit" id="approve-\(challenge.id)">Approve</button></form>
                      <form class="inline" method="post" action="/console/challenges/\(challenge.id)/deny">\(html: hidden(caller))
                        <input name="reason" placeholder="reason (optional)"><button type="submit" class="danger" id="deny-\(challenge.id)">Deny</button></form>
                    </div>
                    """)
            }
        }
        if !requestsToApprove.isEmpty {
            sections.append("<h2>Access requests waiting for your approval</h2>")
            for request in requestsToApprove {
                let role = roles.first { $0.name == request.role }
                let code: HTML =
                    role?.approverStepUp == true
                    ? "<input name=\"code\" id=\"code-\(request.id)\" inputmode=\"numeric\" placeholder=\"your code\" required>"
                    : .empty
                let needed = role?.approvalsNeeded ?? 1
                sections.append(
                    """
                    <div class="card request" id="request-\(request.id)">
                      <div><b>\(request.requester)</b> asks for role <b>\(request.role)</b>\(request.connection.map { " on \($0)" } ?? "") for \(DurationText.format(request.duration))</div>
                      <div class="meta">Reason: \(request.reason.isEmpty ? "none given" : request.reason) · approvals \(request.approvals.count) of \(needed) · asked \(html: clock.time(request.requestedAt)) (\(clock.label))</div>
                      <form class="inline" method="post" action="/console/requests/\(request.id)/approve">\(html: hidden(caller))\(html: code)
                        <button type="submit" id="approve-\(request.id)">Approve</button></form>
                      <form class="inline" method="post" action="/console/requests/\(request.id)/deny">\(html: hidden(caller))
                        <input name="reason" placeholder="reason (optional)"><button type="submit" class="danger" id="deny-\(request.id)">Deny</button></form>
                    </div>
                    """)
            }
        }
        if !myRequests.isEmpty {
            sections.append("<h2>Your requests</h2>")
            for request in myRequests {
                sections.append(
                    """
                    <div class="card request" id="request-\(request.id)"><span class="badge pending">pending</span>
                      role <b>\(request.role)</b>\(request.connection.map { " on \($0)" } ?? "") for \(DurationText.format(request.duration)) · approvals so far: \(request.approvals.isEmpty ? "none" : request.approvals.joined(separator: ", "))</div>
                    """)
            }
        }
        if sections.isEmpty { return "<p class=\"empty\" id=\"inbox-empty\">Nothing waits for you.</p>" }
        return HTML.join(sections)
    }

    // MARK: Grants

    @Sendable func grants(_ caller: APIRoutes.Caller, _ request: Request) async throws -> HTML {
        let clock = self.clock(request)
        let live = try await api.activeGrants(for: caller)
        var rows: [HTML] = []
        for grant in live {
            let mayRevoke = caller.user.isAdmin || grant.requester == caller.user.name
            let revoke: HTML =
                mayRevoke
                ? """
                <form class="inline" method="post" action="/console/requests/\(grant.id)/revoke">\(html: hidden(caller))<button class="danger" type="submit" id="revoke-\(grant.id)">Revoke</button></form>
                """ : .empty
            rows.append(
                """
                <tr id="grant-\(grant.id)"><td>\(grant.id)</td><td>\(grant.requester)</td><td>\(grant.role)</td>
                <td>\(grant.connection ?? "any")</td><td>\(grant.reason)</td><td>\(grant.breakGlass ? "break-glass" : grant.approvals.joined(separator: ", "))</td>
                <td>\(html: grant.expiresAt.map(clock.countdown) ?? "")</td><td>\(html: revoke)</td></tr>
                """)
        }
        let table: HTML =
            rows.isEmpty
            ? "<p class=\"empty\">No grant is live\(caller.user.seesAll ? "" : " for you").</p>"
            : """
            <table><thead><tr><th>Grant</th><th>User</th><th>Role</th><th>Connection</th><th>Reason</th><th>Approved by</th><th>Time left</th><th></th></tr></thead>
            <tbody>\(rows)</tbody></table>
            """
        let roles = await api.requestableRoles(for: caller).filter { role in
            role.requesters.contains(where: caller.user.groups.contains)
        }
        guard !roles.isEmpty else { return table }
        let options = HTML.join(
            roles.map { role in
                "<option value=\"\(role.name)\">\(role.name) (up to \(DurationText.format(role.maxDuration)))</option>"
            })
        let form: HTML = """
            <h2>Request a role</h2>
            <form class="filters" method="post" action="/console/requests" id="request-form">\(html: hidden(caller))
              <label>Role <select name="role" id="request-role">\(html: options)</select></label>
              <label>Connection <input name="connection" placeholder="any allowed"></label>
              <label>Duration <input name="duration" value="30m" size="6" required></label>
              <label>Reason <input name="reason" size="40" placeholder="ticket and purpose"></label>
              <button type="submit" id="request-submit">Request</button>
            </form>
            """
        return table + form
    }

    // MARK: Sessions

    @Sendable func sessions(_ caller: APIRoutes.Caller, _ request: Request) async throws -> HTML {
        let clock = self.clock(request)
        let list = api.visibleSessions(caller).sorted { $0.startedAt < $1.startedAt }
        guard !list.isEmpty else { return "<p class=\"empty\">No live session\(caller.user.seesAll ? "" : " of yours").</p>" }
        let rows = list.map { session -> HTML in
            // Only an admin may keep the person out as well: their tokens are revoked with the session.
            let revoke: HTML =
                caller.user.isAdmin
                ? """
                <label class="check"><input type="checkbox" name="revoke_tokens" value="true" id="revoke-tokens-\(session.id)"> and revoke \(session.user)'s tokens</label>
                """ : .empty
            let terminate: HTML =
                caller.user.isAdmin || session.user == caller.user.name
                ? """
                <form class="inline" method="post" action="/console/sessions/\(session.id)/terminate">\(html: hidden(caller))
                <input name="reason" placeholder="reason">\(html: revoke)<button class="danger" type="submit" id="terminate-\(session.id)">Terminate</button></form>
                """ : .empty
            return """
                <tr id="session-\(session.id)" class="session"><td>\(session.id)</td><td>\(session.user)</td><td>\(session.connection)</td>
                <td>\(session.source)</td><td>\(session.applicationName)</td><td class="time">\(html: clock.time(session.startedAt))</td><td>\(session.tls ? "yes" : "no")</td>
                <td>\(html: terminate)</td></tr>
                """
        }
        return """
            <table><thead><tr><th>Session</th><th>User</th><th>Connection</th><th>Source</th><th>Application</th><th>Started (\(clock.label))</th><th>TLS</th><th></th></tr></thead>
            <tbody>\(rows)</tbody></table>
            """
    }

    // MARK: Audit

    @Sendable func audit(_ caller: APIRoutes.Caller, _ request: Request) async throws -> HTML {
        let clock = self.clock(request)
        let parameters = request.uri.queryParameters
        var query: AuditQuery
        var problem: HTML = .empty
        do {
            query = try APIRoutes.auditQuery(parameters, defaultLimit: 50)
        } catch let failure as any APIErrorConvertible {
            let error = failure.apiError
            query = AuditQuery(limit: 50, newestFirst: true)
            problem = "<div class=\"flash error\">\(error.message)</div>"
        }
        query.newestFirst = true
        query.afterSeq = nil
        var events: [AuditEvent] = []
        do {
            events = try await api.auditEvents(query, for: caller)
        } catch let failure as any APIErrorConvertible {
            let error = failure.apiError
            problem = "<div class=\"flash error\">\(error.message)</div>"
        }
        var chain: HTML = .empty
        if caller.user.seesAll {
            let report = try await api.verifyChain(resume: request.uri.path.hasSuffix("/live"))
            chain =
                report.isIntact
                ? "<div class=\"chain\" id=\"chain-status\"><span class=\"badge ok\">chain intact</span> \(report.eventsChecked) events verified, last hash <code>\((report.lastHash ?? "").truncated(to: 16))</code></div>"
                : "<div class=\"chain\" id=\"chain-status\"><span class=\"badge broken\">chain broken</span> \(report.problems.map { "seq \($0.seq): \($0.reason)" }.joined(separator: "; "))</div>"
        }
        func value(_ name: String) -> String { parameters.get(name) ?? "" }
        let filters: HTML = """
            <form class="filters" method="get" action="/console/audit" id="audit-filters">
              <label>Type <input name="type" value="\(value("type"))" placeholder="statement. or grant.*"></label>
              <label>Actor <input name="actor" value="\(value("actor"))"></label>
              <label>Session <input name="session" value="\(value("session"))"></label>
              <label>Connection <input name="connection" value="\(value("connection"))"></label>
              <label>Since <input name="since" value="\(value("since"))" placeholder="2026-11-27T09:00:00Z"></label>
              <label>Until <input name="until" value="\(value("until"))"></label>
              <button type="submit" class="secondary" id="audit-apply">Filter</button>
            </form>
            """
        let rows = events.map { event -> HTML in
            let outcome = Self.outcome(of: event.type)
            // The statement or reason in one line; every detail in a list behind it.
            let headline = event.detail["statement"] ?? event.detail["reason"] ?? event.detail["role"] ?? ""
            let items = HTML.join(
                event.detail.keys.sorted().map { key in "<dt>\(key)</dt><dd>\(event.detail[key]!)</dd>" as HTML })
            let detail: HTML =
                event.detail.isEmpty
                ? .empty
                : "<details><summary>\(headline.isEmpty ? "\(event.detail.count) details" : headline.truncated(to: 90))</summary><dl>\(html: items)</dl></details>"
            return """
                <tr class="event \(outcome)" data-seq="\(event.seq)"><td>\(event.seq)</td><td class="time">\(html: clock.time(event.time))</td>
                <td><span class="badge \(outcome)">\(event.type)</span></td><td>\(event.actor ?? "")</td><td>\(event.connection ?? "")</td>
                <td class="detail">\(html: detail)<div class="meta">\([event.session.map { "session \($0)" }, event.source.map { "from \($0)" }].compactMap { $0 }.joined(separator: " · "))</div></td></tr>
                """
        }
        var pager: HTML = .empty
        if let oldest = events.last, events.count == query.limit {
            var items = URLComponents()
            items.queryItems =
                ["type", "actor", "session", "connection", "since", "until"].compactMap { name in
                    parameters.get(name).flatMap { $0.isEmpty ? nil : URLQueryItem(name: name, value: $0) }
                } + [URLQueryItem(name: "before", value: String(oldest.seq))]
            pager = "<div class=\"pager\"><a href=\"/console/audit?\(items.percentEncodedQuery ?? "")\">Older events</a></div>"
        }
        let table: HTML =
            events.isEmpty
            ? "<p class=\"empty\">No event matches.</p>"
            : """
            <table id="audit-table"><thead><tr><th>Seq</th><th>Time (\(clock.label))</th><th>Event</th><th>Actor</th><th>Connection</th><th>What</th></tr></thead>
            <tbody>\(rows)</tbody></table>
            """
        return chain + problem + filters + table + pager
    }

    /// How an event reads at a glance: refused and failed in red, allowed and succeeded in green,
    /// waiting in amber; the rest plain.
    static func outcome(of type: String) -> String {
        let last = type.split(separator: ".").last.map(String.init) ?? type
        switch last {
        case "denied", "refused", "failure", "failed", "terminated", "expired", "revoked", "broken", "locked_out":
            return "deny"
        case "allowed", "success", "approved", "verified", "activated", "confirmed":
            return "ok"
        case "created", "held", "step_up", "approve", "alert", "break_glass", "cancelled", "lapsed":
            return "pending"
        default:
            return "plain"
        }
    }

    // MARK: Policy

    func policyPage(
        _ request: Request, _ context: GatehouseRequestContext,
        result: (API.PolicyTestRequest, Result<API.PolicyTestResult, APIError>)?
    ) async throws -> Response {
        guard let caller = try await caller(request) else { return Self.redirect("/console/login") }
        let policy = APIRoutes.view(of: api.currentPolicy)
        let rules = policy.rules.map { rule -> HTML in
            """
            <tr id="rule-\(rule.name)"><td><b>\(rule.name)</b></td><td><span class="badge \(rule.action)">\(rule.action)</span>\(rule.mode == "shadow" ? " (shadow)" : "")</td>
            <td>\(html: HTML.join(rule.conditions.map { "<div>\($0)</div>" }))</td><td>\(rule.message ?? "")</td></tr>
            """
        }
        let tried = result?.0
        let connections = api.environment.config.connections.map(\.name)
        let connectionField: HTML =
            connections.isEmpty
            ? "<input name=\"connection\" value=\"\(tried?.connection ?? "")\" required>"
            : "<select name=\"connection\" id=\"test-connection\">\(html: HTML.join(connections.map { name -> HTML in name == tried?.connection ? "<option selected>\(name)</option>" : "<option>\(name)</option>" }))</select>"
        let userField: HTML =
            caller.user.seesAll
            ? "<label>As user <input name=\"user\" value=\"\(tried?.user ?? caller.user.name)\"></label>" : .empty
        var outcome: HTML = .empty
        switch result?.1 {
        case .success(let test)?:
            let matched = test.decision.matched.map { "\($0.name) → \($0.action.rawValue)" }
            outcome = """
                <div class="card" id="test-result"><div><span class="badge \(test.decision.action.rawValue)" id="test-action">\(test.decision.action.rawValue)</span> for \(test.user) on \(test.connection)</div>
                <p>\(test.decision.reason)</p>\(html: test.decision.hint.map { "<p class=\"muted\">Hint: \($0)</p>" } ?? .empty)
                <div class="meta">Rules: \(matched.isEmpty ? "none matched" : matched.joined(separator: ", "))</div>
                \(html: HTML.join(test.summaries.map { "<pre>\($0)</pre>" }))</div>
                """
        case .failure(let error)?:
            outcome = "<div class=\"flash error\" id=\"test-result\">\(error.message)</div>"
        case nil: break
        }
        let body: HTML = """
            <h1>Policy</h1>
            <p class="muted">Default \(policy.default_action); statements that cannot be classified: \(policy.unclassified_action). \(policy.rules.count) rules.</p>
            <h2>What would happen?</h2>
            <form class="stack" method="post" action="/console/policy" id="policy-test">\(html: hidden(caller))
              \(html: userField)<label>Connection \(html: connectionField)</label>
              <label>SQL <textarea name="sql" id="test-sql" required>\(tried?.sql ?? "")</textarea></label>
              <button type="submit" id="test-submit">Test</button>
            </form>
            \(html: outcome)
            <h2>Rules</h2>
            <table><thead><tr><th>Rule</th><th>Action</th><th>When</th><th>Message</th></tr></thead><tbody>\(rules)</tbody></table>
            """
        return document(title: "Policy", caller: caller, request: request, here: "policy", body: body)
    }
}
