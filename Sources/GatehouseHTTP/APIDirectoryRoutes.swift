import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehousePolicy
import GatehouseStore
import Hummingbird
import NIOCore
import Prometheus
import Yams

/// Read routes over the configuration and state (users, groups, connections, policy, roles, grants),
/// the policy dry run, the audit export, `/metrics` and the OpenAPI document.
extension APIRoutes {
    @Sendable func users(_ request: Request, context: GatehouseRequestContext) async throws -> API.Users {
        let caller = try await authenticate(request)
        try requireSeesAll(caller)
        var views: [API.UserView] = []
        for stored in try await environment.store.users() {
            let enrolled = try await environment.stepUp?.isEnrolled(user: stored.user.name) ?? false
            views.append(
                API.UserView(
                    name: stored.user.name, groups: stored.user.groups, kind: stored.source == .service ? "service" : "user",
                    disabled: stored.user.disabled, expires_at: stored.user.expiresAt.map(Timestamp.format),
                    has_password: stored.passwordHash != nil, second_factor: enrolled))
        }
        return API.Users(users: views)
    }

    @Sendable func serviceAccounts(_ request: Request, context: GatehouseRequestContext) async throws -> API.Users {
        var all = try await users(request, context: context)
        all.users = all.users.filter { $0.kind == "service" }
        return all
    }

    @Sendable func groups(_ request: Request, context: GatehouseRequestContext) async throws -> API.Groups {
        let caller = try await authenticate(request)
        try requireSeesAll(caller)
        var members: [String: [String]] = [:]
        for name in environment.config.groups + [Group.admins, Group.auditors] { members[name] = [] }
        for stored in try await environment.store.users() where !stored.user.disabled {
            for group in stored.user.groups { members[group, default: []].append(stored.user.name) }
        }
        return API.Groups(groups: members.keys.sorted().map { API.GroupView(name: $0, members: members[$0]!.sorted()) })
    }

    /// Every signed-in user may read where they can connect (never the upstream credentials).
    @Sendable func connections(_ request: Request, context: GatehouseRequestContext) async throws -> API.Connections {
        _ = try await authenticate(request)
        return API.Connections(
            connections: environment.config.connections.map {
                API.ConnectionView(name: $0.name, host: $0.host, port: $0.port, database: $0.database, tls: $0.tls.rawValue)
            })
    }

    /// Every signed-in user may read the rules: a refusal names its rule, and people should be able
    /// to find out what it asks for.
    @Sendable func policy(_ request: Request, context: GatehouseRequestContext) async throws -> API.PolicyView {
        _ = try await authenticate(request)
        return Self.view(of: currentPolicy)
    }

    static func view(of policy: Policy) -> API.PolicyView {
        API.PolicyView(
            default_action: policy.defaultAction.rawValue, unclassified_action: policy.unclassifiedAction.rawValue,
            connection_defaults: policy.connectionDefaults.mapValues(\.rawValue),
            rules: policy.rules.map { rule in
                API.RuleView(
                    name: rule.name, action: rule.action.rawValue, mode: rule.mode.rawValue, conditions: rule.match.conditions,
                    message: rule.message, hint: rule.hint, step_up_max_age: rule.stepUp?.maxAge.map(DurationText.format),
                    approvers: rule.approvers)
            })
    }

    @Sendable func testPolicy(_ request: Request, context: GatehouseRequestContext) async throws -> API.PolicyTestResult {
        let caller = try await authenticate(request)
        let body = try await decode(API.PolicyTestRequest.self, request, context)
        return try await testPolicy(body, by: caller)
    }

    @Sendable func roles(_ request: Request, context: GatehouseRequestContext) async throws -> API.Roles {
        let caller = try await authenticate(request)
        return API.Roles(roles: await requestableRoles(for: caller).map(Self.view(of:)))
    }

    static func view(of role: RequestableRole) -> API.RoleView {
        API.RoleView(
            name: role.name, connections: role.connections, max_duration: DurationText.format(role.maxDuration),
            reason_required: role.reasonRequired, approver_groups: role.approverGroups, approvals_needed: role.approvalsNeeded,
            break_glass: role.breakGlass != nil)
    }

    @Sendable func listGrants(_ request: Request, context: GatehouseRequestContext) async throws -> API.Grants {
        let caller = try await authenticate(request)
        let now = environment.identities.now()
        return API.Grants(
            grants: try await activeGrants(for: caller).map {
                API.GrantView(
                    request: API.AccessRequestView($0, now: now),
                    seconds_left: max(0, Int(($0.expiresAt ?? now).timeIntervalSince(now))))
            })
    }

    /// The filtered trail as JSON lines, oldest first, read from the store a page at a time.
    @Sendable func exportAudit(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        let caller = try await authenticate(request)
        var filter = try Self.auditQuery(request.uri.queryParameters, defaultLimit: Int.max)
        filter.newestFirst = false
        let start = filter
        let limit = filter.limit
        // Authorization happens once, before the first byte; the stream then pages through the store.
        var probe = start
        probe.limit = 0
        _ = try await auditEvents(probe, for: caller)
        // Reading the trail out is itself on the trail.
        var filters: [String: String] = [:]
        for (name, value) in [
            ("type", start.type), ("actor", start.actor), ("session", start.session), ("connection", start.connection),
            ("since", start.since.map(Timestamp.format)), ("until", start.until.map(Timestamp.format)),
        ] {
            if let value, !value.isEmpty { filters[name] = value }
        }
        try await audit(AuditRecord(.auditExported, actor: caller.user.name, source: Self.source(context), detail: filters))
        let routes = self
        let body = ResponseBody { writer in
            var query = start
            var left = limit
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            while left > 0 {
                query.limit = min(1000, left)
                let page = try await routes.auditEvents(query, for: caller)
                guard let last = page.last else { break }
                var buffer = ByteBuffer()
                for event in page {
                    buffer.writeBytes(try encoder.encode(event))
                    buffer.writeInteger(UInt8(ascii: "\n"))
                }
                try await writer.write(buffer)
                left -= page.count
                query.afterSeq = last.seq
            }
            try await writer.finish(nil)
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/x-ndjson"
        headers[.contentDisposition] = "attachment; filename=\"gatehouse-audit.jsonl\""
        return Response(status: .ok, headers: headers, body: body)
    }

    /// Prometheus text format; admins and auditors only (a scraper uses a service account's token).
    @Sendable func metrics(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        let caller = try await authenticate(request)
        try requireSeesAll(caller)
        guard let registry = environment.metrics else { throw APIError(.notFound, "metrics are not collected here") }
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    @Sendable func openAPIYAML(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/yaml; charset=utf-8"
        headers[.cacheControl] = "public, max-age=300"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
    }

    @Sendable func openAPIJSON(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "public, max-age=300"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(data: try OpenAPIDocument.json())))
    }
}

/// The API's OpenAPI 3.1 description: `yaml` is `Resources/openapi.yaml`, compiled in (`Plugins/EmbedText`).
public enum OpenAPIDocument {
    /// The document as JSON, converted once from the YAML text.
    public static func json() throws -> Data {
        try cachedJSON.get()
    }

    private static let cachedJSON: Result<Data, Error> = Result {
        guard let tree = try Yams.load(yaml: yaml) else { throw APIError(.internalError, "the OpenAPI document is empty") }
        return try JSONSerialization.data(withJSONObject: tree, options: [.sortedKeys])
    }
}
