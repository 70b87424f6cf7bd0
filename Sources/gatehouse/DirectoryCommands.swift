import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseHTTP

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

/// `gatehouse connections`: where one can connect through this gateway.
struct ConnectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connections", abstract: "List the connections this gateway guards (never their credentials).")
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
