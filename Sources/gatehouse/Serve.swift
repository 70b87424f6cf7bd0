import ArgumentParser
import Crypto
import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseConfigYAML
import GatehouseCore
import GatehouseDatabaseRoles
import GatehouseGeo
import GatehouseHTTP
import GatehouseMCP
import GatehouseProxy
import GatehouseServices
import GatehouseSessions
import GatehouseStore
import GatehouseTelemetry
import Hummingbird
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import ServiceLifecycle

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway: PostgreSQL listener, HTTP API and state store.",
        discussion: """
            Without --config, runs the embedded defaults: a demo that guards the local PostgreSQL named by \
            GATEHOUSE_DEMO_PG_PORT and GATEHOUSE_DEMO_PG_PASSWORD (scripts/run starts one and sets them).

            Stops gracefully on SIGINT or SIGTERM, ending live sessions with a clear message.
            """)

    @Option(name: .shortAndLong, help: "The configuration file (YAML).")
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Seconds the gateway may take to bind its listeners before it gives up and exits (status 70).")
    var startTimeout: Double = 60

    func validate() throws {
        guard startTimeout > 0 else { throw ValidationError("--start-timeout must be more than 0 seconds") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "gatehouse")
        let watchdog = StartWatchdog(seconds: startTimeout)
        // Metrics go to a Prometheus registry that `/metrics` reads; bootstrapped before any instrument is made.
        let metrics = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: metrics)
        factory.durationHistogramBuckets = [
            "gatehouse_decision_duration_seconds": Telemetry.decisionBuckets.map { .nanoseconds(Int64($0 * 1e9)) },
            "gatehouse_audit_write_duration_seconds": Telemetry.auditBuckets.map { .nanoseconds(Int64($0 * 1e9)) },
        ]
        MetricsSystem.bootstrap(factory)
        // Event-loop threads (default: one per core). Must be set before the first use of NIO's singletons.
        if let text = ProcessInfo.processInfo.environment["GATEHOUSE_EVENT_LOOPS"], let count = Int(text), count > 0 {
            NIOSingletons.groupLoopCountSuggestion = count
        }

        let gatewayConfig: GatehouseConfig
        do {
            if let path = config {
                gatewayConfig = try ConfigLoader.load(path: path)
            } else {
                gatewayConfig = try ConfigLoader(baseDirectory: FileManager.default.currentDirectoryPath)
                    .parse(DefaultConfig.yaml, file: DefaultConfig.name)
            }
        } catch let error as ConfigError {
            var message = "configuration refused: \(error)"
            if config == nil {
                message += "\n(the embedded defaults expect the demo PostgreSQL that scripts/run starts; or pass --config FILE)"
            }
            throw CLIError(message)
        }

        // The state store holds password hashes and the audit log: files the gateway creates are private.
        umask(0o077)
        try FileManager.default.createDirectory(
            atPath: gatewayConfig.dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let store: SQLiteStore
        do {
            store = try await SQLiteStore.open(path: gatewayConfig.sqlitePath)
        } catch {
            throw CLIError("\(error)")
        }
        await store.setCommitInterval(.milliseconds(Int64((gatewayConfig.auditCommitInterval * 1000).rounded())))
        // The store must be closed on every way out, or SQLite's connection traps at deinit.
        do {
            try await serve(config: gatewayConfig, store: store, metrics: metrics, logger: logger, watchdog: watchdog)
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }

    private func serve(
        config gatewayConfig: GatehouseConfig, store: SQLiteStore, metrics: PrometheusCollectorRegistry, logger: Logger,
        watchdog: StartWatchdog
    ) async throws {
        let identities = IdentityService(store: store)
        let disabled = try await identities.synchronise(
            with: gatewayConfig.users.map { ($0.name, $0.groups, $0.passwordHash, $0.expiresAt) },
            services: gatewayConfig.serviceAccounts.map { ($0.name, $0.groups, $0.expiresAt) })
        for name in disabled {
            logger.notice("user removed from the configuration is now disabled", metadata: ["user": "\(name)"])
        }
        let bootstrap = try await identities.bootstrapAdminIfNeeded()
        if let bootstrap {
            _ = try await store.appendAudit(AuditRecord(.userBootstrap, actor: bootstrap.user, detail: ["reason": "first start"]))
        }
        var demoPassword: String?
        if config == nil, let demo = try await store.user(named: "demo"), demo.passwordHash == nil {
            let password = RandomSecret.password()
            _ = try await identities.setPassword(password, forUser: "demo")
            _ = try await store.appendAudit(AuditRecord(.passwordSet, actor: "gatehouse", detail: ["user": "demo"]))
            demoPassword = password
        }

        let signingKey = try TokenService.loadOrCreateSigningKey(
            at: (gatewayConfig.dataDirectory as NSString).appendingPathComponent("signing.key"))
        let tokens = try await TokenService(signingKey: signingKey, store: store)
        let tls = try ProxyEnvironment.tlsContexts(for: gatewayConfig)
        let registry = SessionRegistry()
        let guardrails = Guardrails(policy: gatewayConfig.policy)
        let stepUp = StepUpService(
            store: store,
            sealingKey: try TokenService.loadOrCreateSigningKey(
                at: (gatewayConfig.dataDirectory as NSString).appendingPathComponent("mfa.key")),
            holdTimeout: gatewayConfig.stepUpTimeout, logger: logger)
        var geoIP: GeoIPDatabase?
        if let path = gatewayConfig.geoipDatabase {
            do { geoIP = try GeoIPDatabase(path: path) } catch { throw CLIError("configuration refused: \(error)") }
        }
        var notifier: WebhookNotifier?
        if !gatewayConfig.webhooks.isEmpty {
            let webhooks = WebhookNotifier(hooks: gatewayConfig.webhooks, store: store, logger: logger)
            store.observeCommits { events in webhooks.notify(events) }
            notifier = webhooks
        }
        let grants = GrantService(roles: gatewayConfig.roles, store: store, stepUp: stepUp, logger: logger)
        // Connections whose people log in as their own database role: what a grant gave there is a
        // privilege of the database, whichever statement used it, so all the person's sessions end with it.
        let roleConnections = Set(gatewayConfig.connections.filter { $0.databaseRoles != nil }.map(\.name))
        // The role services are made below, once the grants are loaded; the hooks find them here.
        let roleServicesBox = NIOLockedValueBox<[DatabaseRoleService]>([])
        @Sendable func reconcile(_ grant: AccessRequest) async {
            for service in roleServicesBox.withLockedValue({ $0 })
            where grant.connection == nil || grant.connection == service.connection.name {
                do { try await service.reconcile() } catch {
                    // The service's own tick tries again several times a second.
                    logger.warning(
                        "cannot change the database roles for a grant yet",
                        metadata: ["grant": "\(grant.id)", "connection": "\(service.connection.name)", "error": "\(error)"])
                }
            }
        }
        try await grants.start(
            onGrantEnded: { grant, reason in
                Task { await reconcile(grant) }
                var ended = Set(registry.terminateSessions(usingGrant: grant.id, reason: reason))
                let scope = grant.connection.map { roleConnections.intersection([$0]) } ?? roleConnections
                if !scope.isEmpty {
                    // A session may be both: it is counted once.
                    ended.formUnion(registry.terminateSessions(of: grant.requester, on: scope, reason: reason))
                }
                if !ended.isEmpty {
                    logger.notice(
                        "sessions ended with their grant", metadata: ["grant": "\(grant.id)", "sessions": "\(ended.count)"])
                }
            }, onGrantStarted: { grant in await reconcile(grant) })
        var proxyEnvironment = ProxyEnvironment(
            config: gatewayConfig, tokens: tokens, identities: identities, store: store, registry: registry,
            guardrails: guardrails, geoIP: geoIP, stepUp: stepUp, grants: grants, clientTLS: tls.client,
            upstreamTLS: tls.upstream, logger: logger)
        var roleServices: [DatabaseRoleService] = []
        if !roleConnections.isEmpty {
            let key = SymmetricKey(
                data: try TokenService.loadOrCreateSigningKey(
                    at: (gatewayConfig.dataDirectory as NSString).appendingPathComponent("database-roles.key")))
            for connection in gatewayConfig.connections where connection.databaseRoles != nil {
                let service = DatabaseRoleService(
                    connection: connection, key: key, grants: grants, store: store,
                    tlsContext: tls.upstream[connection.name], logger: logger)
                // Before any session: the database keeps no privilege the store says has ended.
                do { try await service.reconcile() } catch {
                    logger.error(
                        "cannot reconcile the database roles at start; retrying in the background",
                        metadata: ["connection": "\(connection.name)", "error": "\(error)"])
                }
                proxyEnvironment.databaseRoles[connection.name] = service
                roleServices.append(service)
            }
            roleServicesBox.withLockedValue { $0 = roleServices }
        }
        var apiEnvironment = APIEnvironment(
            config: gatewayConfig, tokens: tokens, identities: identities, store: store, registry: registry, stepUp: stepUp,
            grants: grants, guardrails: guardrails, metrics: metrics, logger: logger)
        // AI agents over MCP: their tools' SQL comes back in through the PostgreSQL listener.
        var upstreams: MCPUpstreams?
        if !gatewayConfig.mcp.upstreams.isEmpty {
            let auditStore = store
            let auditLogger = logger
            upstreams = MCPUpstreams(
                upstreams: gatewayConfig.mcp.upstreams, rules: gatewayConfig.mcp.toolRules, stepUp: stepUp,
                approvedFile: (gatewayConfig.dataDirectory as NSString).appendingPathComponent("mcp-tools.json"), logger: logger
            ) { type, detail in
                var detail = detail
                let actor = detail.removeValue(forKey: "principal")
                do {
                    try auditStore.enqueueAudit(AuditRecord(type, actor: actor, source: "mcp", detail: detail)) { error in
                        auditLogger.error("cannot commit an MCP event to the audit log", metadata: ["error": "\(error)"])
                    }
                } catch {
                    auditLogger.error("cannot record an MCP event in the audit log", metadata: ["error": "\(error)"])
                }
            }
        }
        let mcp = MCPGateway(
            connections: gatewayConfig.connections, tokens: tokens, tickets: proxyEnvironment.agentTickets, stepUp: stepUp,
            guardrails: guardrails,
            store: store, proxyHost: gatewayConfig.postgresListen.host, proxyPort: gatewayConfig.postgresListen.port,
            upstreams: upstreams, logger: logger)
        apiEnvironment.mcp = mcp

        var demoToken: String?
        if config == nil, let demo = try await store.user(named: "demo") {
            let (token, claims) = try await tokens.issue(for: demo.user, kind: .access, ttl: 3600)
            _ = try await store.appendAudit(
                AuditRecord(
                    .tokenIssued, actor: "demo", detail: ["token_id": claims.jti, "kind": "access", "reason": "demo start"]))
            demoToken = token
        }

        let banner = Banner(
            config: gatewayConfig, bootstrap: bootstrap, demoPassword: demoPassword, demoToken: demoToken, isDemo: config == nil)
        let bound = NIOLockedValueBox(0)
        let announce: @Sendable () -> Void = {
            if bound.withLockedValue({
                $0 += 1; return $0
            }) == 2 {
                watchdog.started()
                banner.print()
            }
        }
        let listener = PostgresListener(environment: proxyEnvironment) { _ in announce() }
        let app = Application(
            router: APIRoutes(environment: apiEnvironment).buildRouter(),
            configuration: .init(
                address: .hostname(gatewayConfig.httpListen.host, port: gatewayConfig.httpListen.port),
                serverName: "gatehouse"),
            onServerRunning: { _ in announce() },
            logger: logger)

        var startDetail = ["postgres": "\(gatewayConfig.postgresListen)", "http": "\(gatewayConfig.httpListen)"]
        let (recovered, unreadable) = (await store.recoveredFromJournal, await store.unreadableJournalLines)
        if recovered > 0 || unreadable > 0 {
            // The last run stopped without committing everything it had accepted: the journal held it.
            startDetail["recovered_audit_events"] = "\(recovered)"
            if unreadable > 0 { startDetail["unreadable_journal_lines"] = "\(unreadable)" }
            logger.warning(
                "the previous run stopped uncleanly: audit events recovered from the journal",
                metadata: ["recovered": "\(recovered)", "unreadable_lines": "\(unreadable)"])
        }
        _ = try await store.appendAudit(AuditRecord(.gatewayStart, actor: "gatehouse", detail: startDetail))
        var services: [any Service] = [listener, app, ChallengeExpiry(stepUp), GrantExpiry(grants)] + roleServices
        if let notifier { services.append(notifier) }
        services.append(MCPShutdown(mcp))
        if let path = config {
            services.append(
                PolicyWatcher(path: path, initial: gatewayConfig, guardrails: guardrails, store: store, logger: logger))
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            _ = try? await store.appendAudit(AuditRecord(.gatewayStop, actor: "gatehouse", detail: ["reason": "\(error)"]))
            throw CLIError("the gateway stopped: \(Self.describe(error))")
        }
        _ = try await store.appendAudit(AuditRecord(.gatewayStop, actor: "gatehouse", detail: ["reason": "shutdown signal"]))
    }

    static func describe(_ error: Error) -> String {
        if let error = error as? IOError, error.errnoCode == EADDRINUSE { return "address already in use" }
        return "\(error)"
    }
}

/// What `serve` prints once both listeners are up.
struct Banner: Sendable {
    var config: GatehouseConfig
    var bootstrap: (user: String, password: String)?
    var demoPassword: String?
    var demoToken: String?
    var isDemo: Bool

    func print() {
        let pg = config.postgresListen
        let http = "http://\(config.httpListen)"
        var lines = [
            "Gatehouse is running.",
            "  PostgreSQL listener: \(pg)",
            "  HTTP API:            \(http)/api/v1  (OpenAPI: \(http)/api/v1/openapi.yaml)",
            "  Web console:         \(http)/console",
            "  State store:         \(config.sqlitePath)",
            "  Guardrails:          \(config.policy.rules.count) rules (default \(config.policy.defaultAction.rawValue), unclassified statements \(config.policy.unclassifiedAction.rawValue))",
        ]
        if let bootstrap {
            lines += [
                "",
                "First start: created administrator '\(bootstrap.user)' with password: \(bootstrap.password)",
                "  (shown once; change it with `gatehouse users set-password \(bootstrap.user)`)",
            ]
        }
        if isDemo {
            if let demoPassword { lines += ["", "Demo user 'demo' has password: \(demoPassword)  (shown once)"] }
            let directory = ((Bundle.main.executablePath ?? CommandLine.arguments[0]) as NSString).deletingLastPathComponent
            lines += [
                "",
                "The gatehouse command, in another terminal: export PATH=\"\(directory):$PATH\"",
                "",
                "Sign in and connect:",
                "  gatehouse login --server \(http) --user demo",
                "  psql \"host=\(pg.host) port=\(pg.port) dbname=demo user=demo sslmode=require password=$(gatehouse token)\"",
            ]
            if let demoToken {
                lines += [
                    "",
                    "Or connect right now (this token is valid for one hour):",
                    "  psql \"host=\(pg.host) port=\(pg.port) dbname=demo user=demo sslmode=require password=\(demoToken)\"",
                ]
            }
            lines += [
                "",
                "What the demo's guardrails do (the README's tour walks through each):",
                "  select * from customers;                       runs",
                "  insert into safe values (4, 'hello');          runs: writes to safe pass",
                "  update customers set country = 'FR' where id = 1;",
                "                                                 waits for demo's second factor: gatehouse mfa enroll, then gatehouse verify ID",
                "  drop table safe;                               denied: DROP needs the dba role",
                "  gatehouse request dba --reason \"tidy up\"       as demo; then as admin: gatehouse approve REQUEST_ID",
            ]
        } else {
            lines += [
                "",
                "Connect: gatehouse login --server \(http) --user NAME",
                "         psql \"host=\(pg.host) port=\(pg.port) dbname=CONNECTION user=NAME sslmode=require password=$(gatehouse token)\"",
            ]
        }
        Swift.print(lines.joined(separator: "\n"))
        fflush(nil)
    }
}

/// Ends a gateway that has not bound its listeners in time, with a clear message and status 70, rather
/// than leave it running half-started where a supervisor cannot see it. It waits on a thread of its own:
/// it must not depend on the concurrency pool whose stall it guards against.
final class StartWatchdog: Sendable {
    private let bound = DispatchSemaphore(value: 0)

    init(seconds: Double) {
        let bound = self.bound
        Thread.detachNewThread {
            guard bound.wait(timeout: .now() + .milliseconds(Int(seconds * 1000))) == .timedOut else { return }
            FileHandle.standardError.write(
                Data("gatehouse: the gateway did not start within \(seconds) s (its listeners are not bound); exiting\n".utf8))
            exit(70)
        }
    }

    /// Both listeners are bound.
    func started() { bound.signal() }
}
