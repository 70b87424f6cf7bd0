import ArgumentParser
import Foundation
import GatehouseConfig
import GatehouseConfigYAML
import GatehouseCore
import GatehouseDatabaseRoles
import GatehouseHTTP
import GatehouseProxy
import Logging
import NIOSSL

/// `gatehouse grants`: the elevated roles live now.
struct GrantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grants", abstract: "List live grants with the time left (yours; all for admins and auditors).")
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let response = try await APIClient.loggedIn(server: options.server).send("GET", "grants", as: API.Grants.self)
        if options.json { return try printJSON(response) }
        if response.grants.isEmpty { return print("No live grants.") }
        var table = TextTable("GRANT", "USER", "ROLE", "CONNECTION", "LEFT", "REASON")
        for grant in response.grants {
            let request = grant.request
            table.add(
                request.id, request.requester, request.role, request.connection ?? "any",
                DurationText.format(TimeInterval(grant.seconds_left)), request.reason)
        }
        print(table.rendered)
    }
}

/// `gatehouse connections`: where one can connect through this gateway, and whether the gateway's
/// login to each can do what the configuration asks of it.
struct ConnectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connections", abstract: "List the connections this gateway guards, or check one.",
        subcommands: [List.self, Check.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the connections this gateway guards (never their credentials).")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let response = try await APIClient.loggedIn(server: options.server).send(
                "GET", "connections", as: API.Connections.self)
            if options.json { return try printJSON(response) }
            if response.connections.isEmpty { return print("No connections are configured.") }
            for connection in response.connections {
                print(
                    "\(connection.name): database \(connection.database) on \(connection.host):\(connection.port) (upstream TLS \(connection.tls))"
                )
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Log in to a connection's database as the gateway would and say what is missing.",
            discussion: """
                Reads the configuration file (and the credentials it names, so run it where the gateway runs), \
                logs in as the connection's user, and reports the server's version; with database_roles, whether \
                the login may create the people's roles and grant each role handed out, what each of those \
                roles allows, and the people's roles made so far. Only reads: nothing in the database changes.

                Exits 0 when the gateway can do what the configuration asks, 1 with the SQL to run when not.
                """)

        @Argument(help: "The connection's name, as under connections: in the configuration.")
        var name: String

        @Option(name: .shortAndLong, help: "The gateway's configuration file (YAML).")
        var config: String

        func run() async throws {
            let gatewayConfig: GatehouseConfig
            do { gatewayConfig = try ConfigLoader.load(path: config) } catch let error as ConfigError {
                throw CLIError("\(error)")
            }
            guard let connection = gatewayConfig.connections.first(where: { $0.name == name }) else {
                let names = gatewayConfig.connections.map(\.name)
                let advice = Suggestions.didYouMean(name, among: names).map { " \($0)" } ?? ""
                throw CLIError(
                    "no connection named '\(name)' in \(config).\(advice) The connections: \(names.joined(separator: ", "))")
            }
            let tls: NIOSSLContext?
            do { tls = try TLSMaterial.upstreamContext(for: connection) } catch {
                throw CLIError("connection '\(name)': \(error)")
            }
            var logger = Logger(label: "gatehouse.check")
            logger.logLevel = .critical
            let facts: DatabaseRoleFacts
            do {
                facts = try await DatabaseRoleInspection.read(connection, tlsContext: tls, logger: logger)
            } catch {
                throw CLIError("\(error)")
            }
            let findings =
                connection.databaseRoles.map {
                    DatabaseRoleCheck.findings(roles: $0, login: connection.user, facts: facts)
                } ?? []
            print(
                DatabaseRoleCheck.report(
                    connection: connection, roles: connection.databaseRoles, facts: facts, findings: findings),
                terminator: "")
            if findings.contains(where: { $0.severity == .problem }) { throw ExitCode(1) }
        }
    }
}
