import ArgumentParser
import Foundation
import GatehouseConfig
import GatehouseConfigYAML
import GatehouseCore
import GatehouseHTTP

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign in to a gateway and keep the login for `gatehouse token`.",
        discussion: "The login is stored in $GATEHOUSE_HOME (default ~/.config/gatehouse), readable by you only.")

    @Option(help: "The gateway's HTTP API (default: $GATEHOUSE_SERVER, the last one used, or http://127.0.0.1:7070).")
    var server: String?

    @Option(help: "Your Gatehouse user name (default: $USER).")
    var user: String?

    @Flag(help: "Read the password from standard input instead of asking.")
    var passwordStdin = false

    @Option(help: "The code from your authenticator, when you have a second factor (asked for at a terminal otherwise).")
    var code: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let server = Credentials.server(self.server)
        guard let name = user ?? ProcessInfo.processInfo.environment["USER"] else {
            throw CLIError("give --user NAME")
        }
        let password = try readSecret(prompt: "Password for \(name) at \(server): ", fromStandardInput: passwordStdin)
        let client = APIClient(server: server, token: nil)
        // The gateway does not say whether the password was right before the code is checked, so the
        // code is asked for with the password (at a terminal; otherwise it comes with --code).
        var code = self.code
        if code == nil, !passwordStdin, isatty(STDIN_FILENO) != 0 {
            FileHandle.standardError.write(Data("Code from your authenticator (Enter if you have none): ".utf8))
            code = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces)
        }
        let response: API.TokenResponse
        do {
            response = try await client.send(
                "POST", "login", body: API.LoginRequest(user: name, password: password, code: code), as: API.TokenResponse.self)
        } catch let error as CLIError where error.code == "login_failed" && (code ?? "").isEmpty && passwordStdin {
            throw CLIError(
                "\(error.description); with --password-stdin, a second factor's code comes with --code", code: error.code)
        }
        try Credentials(server: server, user: response.user, token: response.token, expires_at: response.expires_at).save()
        if json {
            struct Output: Encodable { var user: String; var groups: [String]; var expires_at: String; var server: String }
            try printJSON(Output(user: response.user, groups: response.groups, expires_at: response.expires_at, server: server))
        } else {
            print("Logged in to \(server) as \(response.user) until \(response.expires_at).")
        }
    }
}

struct Logout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke your stored login and forget it.")

    func run() async throws {
        guard let credentials = Credentials.load() else {
            print("Not logged in.")
            return
        }
        defer { Credentials.remove() }
        do {
            _ = try await APIClient(server: credentials.server, token: credentials.token)
                .send("POST", "logout", as: API.Done.self)
            print("Logged out of \(credentials.server).")
        } catch {
            print("Forgot the local login; the gateway did not confirm revocation: \(error)")
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a short-lived access token to use as the database password.",
        discussion: """
            psql "host=GATEWAY port=6432 dbname=CONNECTION user=ME password=$(gatehouse token)"
            """)

    @OptionGroup var options: ClientOptions

    @Option(help: "Lifetime, e.g. 15m or 1h (default: the gateway's setting).")
    var ttl: String?

    func validate() throws {
        if let ttl, DurationText.parse(ttl) == nil { throw ValidationError("--ttl must be a duration such as 15m or 1h") }
    }

    func run() async throws {
        let response = try await APIClient.loggedIn(server: options.server)
            .send("POST", "tokens", body: API.TokenRequest(ttl: ttl), as: API.TokenResponse.self)
        if options.json { try printJSON(response) } else { print(response.token) }
    }
}

struct Tokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage tokens.", subcommands: [Revoke.self, IssueService.self])

    struct IssueService: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue-service",
            abstract: "Issue a service account's API token (admins); the job sets it as GATEHOUSE_TOKEN.",
            discussion: "The token is printed once. Revoke it with `gatehouse tokens revoke --user NAME`.")
        @OptionGroup var options: ClientOptions

        @Argument(help: "The service account.")
        var name: String

        @Option(help: "Lifetime, e.g. 30d (at most the gateway's tokens.max_service_ttl).")
        var ttl = "30d"

        func run() async throws {
            let response = try await APIClient.loggedIn(server: options.server).send(
                "POST", "tokens/service", body: API.ServiceTokenRequest(user: name, ttl: ttl), as: API.TokenResponse.self)
            if options.json { return try printJSON(response) }
            print(response.token)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke one token, or every token of a user.",
            discussion:
                "A revoked token is refused at once, for new sessions and at the API, and every live session it signed in ends.")

        @OptionGroup var options: ClientOptions

        @Option(help: "The token to revoke.")
        var token: String?

        @Option(help: "Revoke every token of this user issued until now (your own, or anyone's as an admin).")
        var user: String?

        func validate() throws {
            guard (token == nil) != (user == nil) else { throw ValidationError("give exactly one of --token and --user") }
        }

        func run() async throws {
            let response = try await APIClient.loggedIn(server: options.server)
                .send("POST", "tokens/revoke", body: API.RevokeRequest(token: token, user: user), as: API.RevokeResponse.self)
            if options.json { try printJSON(response) } else { print("Revoked \(response.revoked).") }
        }
    }
}

struct Sessions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List live sessions (yours; all as an admin).", subcommands: [List.self, Kill.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List live sessions.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let response = try await APIClient.loggedIn(server: options.server).send("GET", "sessions", as: API.Sessions.self)
            if options.json { return try printJSON(response) }
            if response.sessions.isEmpty { return print("No live sessions.") }
            var table = TextTable("ID", "USER", "CONNECTION", "SOURCE", "APPLICATION", "STARTED")
            for s in response.sessions { table.add(s.id, s.user, s.connection, s.source, s.application_name, s.started_at) }
            print(table.rendered)
        }
    }

    struct Kill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Terminate a live session; its client gets a FATAL error with the reason.")
        @OptionGroup var options: ClientOptions

        @Argument(help: "The session id, from `gatehouse sessions`.")
        var id: String

        @Option(help: "Why; shown to the session's user and recorded.")
        var reason: String?

        @Flag(help: "Also revoke every token of the session's user, so they must sign in again (admins only).")
        var revokeTokens = false

        func run() async throws {
            var query: [String] = []
            if let reason, let encoded = reason.addingPercentEncoding(withAllowedCharacters: .alphanumerics) {
                query.append("reason=\(encoded)")
            }
            if revokeTokens { query.append("revoke_tokens=true") }
            let path = "sessions/\(id)" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
            let response = try await APIClient.loggedIn(server: options.server).send(
                "DELETE", path, as: API.TerminateResponse.self)
            if options.json { try printJSON(response) } else { print("Terminated session \(response.terminated).") }
        }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read and verify the tamper-evident audit log (everything for admins and auditors; your own events otherwise).",
        subcommands: [Tail.self, Export.self, Verify.self])

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the newest audit events.")
        @OptionGroup var options: ClientOptions

        @Option(name: [.customShort("n"), .customLong("lines")], help: "How many of the newest events.")
        var count: Int = 20

        @Flag(name: .shortAndLong, help: "Keep printing new events as they are written.")
        var follow = false

        @Option(help: "Only this event type, or a family such as statement. or grant.*")
        var type: String?

        @Option(help: "Only events caused by this user.")
        var actor: String?

        @Option(help: "Only events of this session.")
        var session: String?

        @Option(help: "Only events on this connection.")
        var connection: String?

        @Option(help: "Only events at or after this time (RFC 3339 or a date).")
        var since: String?

        func run() async throws {
            let client = try APIClient.loggedIn(server: options.server)
            var filter = URLComponents()
            filter.queryItems = [
                ("type", type), ("actor", actor), ("session", session), ("connection", connection), ("since", since),
            ]
            .compactMap { name, value in value.map { URLQueryItem(name: name, value: $0) } }
            let filters = filter.percentEncodedQuery.map { "&" + $0 } ?? ""
            var page = try await client.send("GET", "audit?limit=\(max(1, count))\(filters)", as: API.AuditPage.self)
            while true {
                for event in page.events {
                    if options.json { print(event.jsonLine()) } else { print(Self.line(event)) }
                }
                fflush(nil)
                guard follow else { return }
                try await Task.sleep(for: .seconds(1))
                page = try await client.send(
                    "GET", "audit?after=\(page.next_after)&limit=1000\(filters)", as: API.AuditPage.self)
            }
        }

        static func line(_ event: AuditEvent) -> String {
            var parts = ["#\(event.seq)", event.time, event.type]
            if let actor = event.actor { parts.append("actor=\(actor)") }
            if let connection = event.connection { parts.append("connection=\(connection)") }
            if let session = event.session { parts.append("session=\(session)") }
            if let source = event.source { parts.append("source=\(source)") }
            for key in event.detail.keys.sorted() { parts.append("\(key)=\(event.detail[key]!)") }
            return parts.joined(separator: " ")
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the audit log as JSON lines (to verify offline with `audit verify --file`).")
        @OptionGroup var options: ClientOptions

        @Option(help: "Export events after this sequence number.")
        var after: Int64 = 0

        func run() async throws {
            let client = try APIClient.loggedIn(server: options.server)
            var after = self.after
            while true {
                let page = try await client.send("GET", "audit?after=\(after)&limit=5000", as: API.AuditPage.self)
                if page.events.isEmpty { return }
                for event in page.events { print(event.jsonLine()) }
                after = page.next_after
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the hash chain: at the gateway, or offline in an export file.",
            discussion: "Exits 1 when an event was edited, inserted or deleted, naming each break.")
        @OptionGroup var options: ClientOptions

        @Option(help: "A JSON-lines export to verify offline instead of asking the gateway.")
        var file: String?

        func run() async throws {
            let result: API.AuditVerification
            if let file {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw CLIError("cannot read \(file)") }
                var verifier: AuditChain.Verifier?
                for (index, line) in text.split(separator: "\n").enumerated() {
                    guard let event = try? JSONDecoder().decode(AuditEvent.self, from: Data(line.utf8)) else {
                        throw CLIError("\(file):\(index + 1): not an audit event")
                    }
                    if verifier == nil { verifier = AuditChain.Verifier(fromGenesis: event.seq == 1) }
                    verifier!.add(event)
                }
                result = API.AuditVerification((verifier ?? AuditChain.Verifier()).report)
            } else {
                result = try await APIClient.loggedIn(server: options.server).send(
                    "GET", "audit/verify", as: API.AuditVerification.self)
            }
            if options.json {
                try printJSON(result)
            } else if result.intact {
                print(
                    "Audit chain intact: \(result.events_checked) events, last #\(result.last_seq.map(String.init) ?? "-") \(result.last_hash ?? "")"
                )
            } else {
                print("Audit chain BROKEN (\(result.problems.count) problems in \(result.events_checked) events):")
                for problem in result.problems { print("  event #\(problem.seq): \(problem.reason)") }
            }
            if !result.intact { throw ExitCode(1) }
        }
    }
}

struct Users: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List users and set passwords.", subcommands: [List.self, SetPassword.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List users and service accounts, with groups and second factors (admins and auditors).")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let response = try await APIClient.loggedIn(server: options.server).send("GET", "users", as: API.Users.self)
            if options.json { return try printJSON(response) }
            var table = TextTable("NAME", "KIND", "GROUPS", "2FA", "STATE")
            for user in response.users {
                let state = user.disabled ? "disabled" : user.expires_at.map { "expires \($0)" } ?? "active"
                table.add(user.name, user.kind, user.groups.joined(separator: ","), user.second_factor ? "yes" : "no", state)
            }
            print(table.rendered)
        }
    }

    struct SetPassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-password", abstract: "Set a user's password (your own, or anyone's as an admin).")
        @OptionGroup var options: ClientOptions

        @Argument(help: "The user.")
        var name: String

        @Flag(help: "Read the new password from standard input instead of asking.")
        var passwordStdin = false

        @Flag(
            help:
                "When changing your own password: read the current one from standard input too (the first line; the new one second)."
        )
        var currentStdin = false

        func run() async throws {
            let client = try APIClient.loggedIn(server: options.server)
            let me = try await client.send("GET", "me", as: API.Me.self)
            var current: String?
            if me.user == name {
                current = try readSecret(prompt: "Current password: ", fromStandardInput: currentStdin)
            }
            let password = try readSecret(prompt: "New password for \(name): ", fromStandardInput: passwordStdin)
            _ = try await client.send(
                "PUT", "users/\(name)/password", body: API.PasswordRequest(password: password, current_password: current),
                as: API.Done.self)
            print("Password of \(name) set; every token issued to \(name) until now is revoked.")
            if me.user == name { print("Sign in again: gatehouse login --user \(name)") }
        }
    }
}

struct HashPassword: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash-password",
        abstract: "Print a password hash for a user's password_hash in the configuration file.")

    @Flag(help: "Read the password from standard input instead of asking.")
    var passwordStdin = false

    func run() async throws {
        let password = try readSecret(prompt: "Password: ", fromStandardInput: passwordStdin)
        guard password.count >= 12 else { throw CLIError("a password needs at least 12 characters") }
        print(try PasswordHash.make(password: password).description)
    }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Work with configuration files.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration file as `serve` would, without starting anything.")

        @Argument(help: "The configuration file.")
        var file: String

        func run() async throws {
            do {
                let config = try ConfigLoader.load(path: file)
                print(
                    "\(file): OK (\(config.connections.count) connections, \(config.users.count) users, \(config.groups.count) groups)"
                )
            } catch let error as ConfigError {
                throw CLIError("\(error)")
            }
        }
    }
}
