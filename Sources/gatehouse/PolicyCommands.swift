import ArgumentParser
import Foundation
import GatehouseConfig
import GatehouseConfigYAML
import GatehouseCore
import GatehouseGeo
import GatehouseHTTP
import GatehousePolicy
import SQLInspection

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Check guardrail policies and try statements against them (offline, or on the gateway).",
        subcommands: [Check.self, Test.self, Inspect.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the policy of a configuration file, with file:line errors.")

        @Argument(help: "A configuration file with a policy section.")
        var file: String

        func run() async throws {
            let config = try loadConfig(file)
            let policy = config.policy
            let shadow = policy.rules.filter { $0.mode == .shadow }.count
            print(
                "\(file): policy OK: \(policy.rules.count) rules (\(shadow) in shadow mode), default \(policy.defaultAction.rawValue), unclassified statements \(policy.unclassifiedAction.rawValue)"
            )
            for rule in policy.rules {
                print("  \(rule.name): \(rule.action.rawValue)\(rule.mode == .shadow ? " (shadow)" : "")")
            }
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Show what the gateway would decide for a statement: the action, the rules that matched and the statement facts.",
            discussion: """
                With --config, judges offline against that file. Without it, asks the running gateway (its policy in \
                force now), as yourself; admins and auditors may give --user.

                Exits 0 when the statement would run (allow, alert), 3 when it would be denied, 4 when it would be held.
                """
        )

        @Option(help: "A configuration file to judge against offline (default: ask the gateway you are logged in to).")
        var config: String?

        @Option(help: "The gateway's HTTP API, when asking it (default: the one you logged in to).")
        var server: String?

        @Option(help: "The Gatehouse user (needed with --config; groups come from the configuration).")
        var user: String?

        @Option(help: "The connection name.")
        var connection: String

        @Option(help: "The client's address.")
        var from = "127.0.0.1"

        @Option(help: "When, as RFC 3339 (e.g. 2026-11-28T22:00:00Z; default now).")
        var at: String?

        @Option(help: "The client's application_name.")
        var application = "psql"

        @Option(help: "An elevated role the user holds through a grant (repeatable).")
        var role: [String] = []

        @Option(help: "The client's country code (default: from the configured GeoIP database).")
        var country: String?

        @Flag(help: "As if the user had never proven a second factor from this address and client.")
        var newDevice = false

        @Option(help: "The SQL text (several statements allowed).")
        var sql: String

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            if config != nil, user == nil { throw ValidationError("--user is needed with --config") }
            if let at, Timestamp.parse(at) == nil, ISO8601DateFormatter().date(from: at) == nil {
                throw ValidationError("--at must be an RFC 3339 time such as 2026-11-28T22:00:00Z")
            }
        }

        func run() async throws {
            guard let file = self.config, let user else {
                let body = API.PolicyTestRequest(
                    sql: sql, connection: connection, user: user, source: from, application: application, country: country,
                    roles: role, new_device: newDevice, at: at)
                let result = try await APIClient.loggedIn(server: server).send(
                    "POST", "policy/test", body: body, as: API.PolicyTestResult.self)
                return try report(result.decision, result.inspection)
            }
            let config = try loadConfig(file)
            guard let entry = config.users.first(where: { $0.name == user }) else {
                throw CLIError(
                    "user '\(user)' is not in \(file) (declared: \(config.users.map(\.name).joined(separator: ", ")))")
            }
            if !config.connections.isEmpty, config.connection(named: connection) == nil {
                throw CLIError("connection '\(connection)' is not in \(file)")
            }
            let now = at.flatMap { Timestamp.parse($0) ?? ISO8601DateFormatter().date(from: $0) } ?? Date()
            var country = self.country?.uppercased()
            if country == nil, let path = config.geoipDatabase {
                country = try GeoIPDatabase(path: path).country(for: from)
            }
            let context = SessionContext.dryRun(
                user: user, groups: entry.groups, connection: connection, sourceAddress: from, country: country,
                applicationName: application, roles: role, newDevice: newDevice, at: now)
            let inspection = Inspector.inspect(sql)
            try report(config.policy.evaluate(inspection, in: context), inspection)
        }

        func report(_ decision: Decision, _ inspection: Inspection) throws {
            if json {
                struct Output: Encodable {
                    var decision: Decision
                    var inspection: Inspection
                }
                try printJSON(Output(decision: decision, inspection: inspection))
            } else {
                printText(decision, inspection)
            }
            // The same exit status with --json or without: scripts read the decision from it.
            if decision.action == .deny { throw ExitCode(3) }
            if !decision.action.proceeds { throw ExitCode(4) }
        }

        func printText(_ decision: Decision, _ inspection: Inspection) {
            print("Decision: \(decision.action.rawValue)")
            print("Reason:   \(decision.reason)")
            if let hint = decision.hint { print("Hint:     \(hint)") }
            if decision.matched.isEmpty {
                print("Rules:    none matched")
            } else {
                print("Rules:")
                for rule in decision.matched {
                    print("  \(rule.name) → \(rule.action.rawValue) (statement \(rule.statement + 1))")
                }
            }
            for rule in decision.shadowed { print("  \(rule.name) → would \(rule.action.rawValue) (shadow)") }
            if let error = inspection.parseError {
                print("Statement: unparsable: \(error)")
            }
            for (index, facts) in inspection.statements.enumerated() {
                print("Statement \(index + 1): \(facts.summary)")
                print("  fingerprint \(facts.fingerprint)")
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the facts PostgreSQL's parser gives for SQL text (kinds, tables, functions, fingerprint).")

        @Argument(help: "The SQL text.")
        var sql: String

        @Flag(help: "Print JSON (every fact) instead of one line per statement.")
        var json = false

        func run() async throws {
            let inspection = Inspector.inspect(sql)
            if json { return try printJSON(inspection) }
            if let error = inspection.parseError {
                print("Unparsable (SQLSTATE \(error.sqlState)): \(error)")
                throw ExitCode(3)
            }
            for (index, facts) in inspection.statements.enumerated() {
                print("Statement \(index + 1): \(facts.summary)")
                print("  fingerprint \(facts.fingerprint)")
            }
        }
    }
}

func loadConfig(_ file: String) throws -> GatehouseConfig {
    do {
        return try ConfigLoader.load(path: file)
    } catch let error as ConfigError {
        throw CLIError("\(error)")
    }
}
