import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseConfigYAML
import GatehouseCore
import GatehouseHTTP
import GatehouseProxy
import GatehouseSessions
import GatehouseStore
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Testing

/// A clock the tests move by hand.
///
/// `@unchecked Sendable`: the one mutable value is only read and written under `lock`.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    init(_ start: Date) { current = start }

    var now: Date {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    func advance(_ seconds: TimeInterval) {
        lock.lock()
        defer { lock.unlock() }
        current += seconds
    }
}

/// Passwords of the seeded users, and their hashes made once for all tests (hashing is slow on purpose).
enum Seed {
    static let adminPassword = "admin-password-1"
    static let alicePassword = "alice-password-1"
    static let bobPassword = "bob-password-123"

    static let hashes: [String: String] = {
        var result: [String: String] = [:]
        for (name, password) in [("admin", adminPassword), ("alice", alicePassword), ("bob", bobPassword)] {
            result[name] = try! PasswordHash.make(password: password, rounds: PasswordHash.minimumRounds).description
        }
        return result
    }()
}

/// The API wired as `gatehouse serve` wires it, over a SQLite store in a temporary directory.
struct Harness {
    let directory: String
    let clock: TestClock
    let store: SQLiteStore
    let tokens: TokenService
    let identities: IdentityService
    let registry: SessionRegistry
    let config: GatehouseConfig
    let stepUp: StepUpService
    let grants: GrantService
    let guardrails: Guardrails
    let metrics: PrometheusCollectorRegistry

    static let start = Date(timeIntervalSince1970: 1_750_000_000)

    /// Users beyond the three with passwords: carol audits, dave approves `dba` requests.
    static let extraUsers: [(String, [String])] = [("carol", [Group.auditors]), ("dave", ["dba"])]

    /// A configuration read from YAML (connections, policy, roles), as `gatehouse serve` would read it.
    static func make(yaml: String) async throws -> Harness {
        let parsed = try ConfigLoader(baseDirectory: NSTemporaryDirectory()).parse(yaml, file: "test.yaml")
        return try await make { $0 = parsed }
    }

    static func make(configure: (inout GatehouseConfig) -> Void = { _ in }) async throws -> Harness {
        let directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("gatehouse-http-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let clock = TestClock(start)
        let now: @Sendable () -> Date = { clock.now }
        let store = try await SQLiteStore.open(path: (directory as NSString).appendingPathComponent("gatehouse.db"), now: now)
        let identities = IdentityService(store: store, hashRounds: PasswordHash.minimumRounds, now: now)
        for (name, groups) in [("admin", [Group.admins]), ("alice", ["developer"]), ("bob", ["developer"])] {
            try await store.saveUser(
                StoredUser(user: User(name: name, groups: groups), source: .config, passwordHash: Seed.hashes[name]))
        }
        for (name, groups) in extraUsers {
            try await store.saveUser(StoredUser(user: User(name: name, groups: groups), source: .config, passwordHash: nil))
        }
        let tokens = try await TokenService(signingKey: Array(repeating: 7, count: 32), store: store, now: now)
        var config = GatehouseConfig()
        configure(&config)
        let logger = Logger(label: "gatehouse.test")
        let stepUp = StepUpService(
            store: store, sealingKey: Array(repeating: 9, count: 32), holdTimeout: 120, logger: logger, now: now)
        let grants = GrantService(roles: config.roles, store: store, stepUp: stepUp, logger: logger, now: now)
        try await grants.start { _, _ in }
        return Harness(
            directory: directory, clock: clock, store: store, tokens: tokens, identities: identities,
            registry: SessionRegistry(), config: config, stepUp: stepUp, grants: grants,
            guardrails: Guardrails(policy: config.policy), metrics: PrometheusCollectorRegistry())
    }

    var environment: APIEnvironment {
        APIEnvironment(
            config: config, tokens: tokens, identities: identities, store: store, registry: registry, stepUp: stepUp,
            grants: grants, guardrails: guardrails, metrics: metrics, logger: Logger(label: "gatehouse.test"))
    }

    func router() -> Router<GatehouseRequestContext> { APIRoutes(environment: environment).buildRouter() }

    func application() -> some ApplicationProtocol {
        Application(router: router())
    }

    /// Runs `body` against the router, then closes the store and removes the directory.
    func test(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        do {
            try await application().test(.router) { client in try await body(client) }
        } catch {
            try? await store.close()
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        try await store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func user(_ name: String) async throws -> User {
        try #require(try await store.user(named: name)).user
    }

    /// A login token as `gatehouse login` would hold, issued directly (no password hashing).
    func loginToken(_ name: String, ttl: TimeInterval? = nil) async throws -> String {
        try await tokens.issue(for: try await user(name), kind: .login, ttl: ttl ?? config.tokens.loginTTL).token
    }

    func accessToken(_ name: String) async throws -> String {
        try await tokens.issue(for: try await user(name), kind: .access, ttl: config.tokens.accessTokenTTL).token
    }

    func auditEvents() async throws -> [AuditEvent] {
        try await store.auditEvents(afterSeq: 0, limit: 10_000)
    }

    func session(_ id: String, user: String, startedAt: TimeInterval = 0) -> SessionInfo {
        SessionInfo(
            id: id, user: user, connection: "app", source: "10.0.0.9:50000", applicationName: "psql",
            startedAt: Self.start.addingTimeInterval(startedAt), tls: true)
    }
}

extension TestClientProtocol {
    /// Sends a request with an optional bearer token and JSON body.
    func send(
        _ method: HTTPRequest.Method, _ uri: String, token: String? = nil, json: String? = nil,
        authorization: String? = nil
    ) async throws -> TestResponse {
        var headers = HTTPFields()
        if let token { headers[.authorization] = "Bearer \(token)" }
        if let authorization { headers[.authorization] = authorization }
        var body: ByteBuffer?
        if let json {
            headers[.contentType] = "application/json"
            body = ByteBuffer(string: json)
        }
        return try await execute(uri: uri, method: method, headers: headers, body: body)
    }
}

extension TestResponse {
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
    }

    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
    }

    var text: String { String(decoding: body.readableBytesView, as: UTF8.self) }
}

/// Checks that `response` is the documented error: the status, and exactly `{"error": {"code", "message"}}`.
func expectAPIError(
    _ response: TestResponse, _ status: HTTPResponse.Status, code: String, message: String? = nil,
    messageContains: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(response.status == status, "body: \(response.text)", sourceLocation: sourceLocation)
    #expect(response.headers[.contentType]?.hasPrefix("application/json") == true, sourceLocation: sourceLocation)
    guard let object = response.json, let error = object["error"] as? [String: Any] else {
        Issue.record("not an API error body: \(response.text)", sourceLocation: sourceLocation)
        return
    }
    #expect(Set(object.keys) == ["error"], sourceLocation: sourceLocation)
    #expect(Set(error.keys) == ["code", "message"], sourceLocation: sourceLocation)
    #expect(error["code"] as? String == code, "body: \(response.text)", sourceLocation: sourceLocation)
    if let message {
        #expect(error["message"] as? String == message, sourceLocation: sourceLocation)
    }
    if let messageContains {
        #expect(
            (error["message"] as? String)?.contains(messageContains) == true, "body: \(response.text)",
            sourceLocation: sourceLocation)
    }
}
