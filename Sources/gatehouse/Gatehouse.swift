import ArgumentParser
import Foundation

@main
struct Gatehouse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "An access gateway for PostgreSQL: people, CI jobs and agents connect through it.",
        discussion: """
            Run the gateway with `gatehouse serve`. People sign in with `gatehouse login`, then connect with any \
            PostgreSQL client using a short-lived token as the password:

              psql "host=GATEWAY port=6432 dbname=DB user=ME password=$(gatehouse token)"
            """,
        version: Gatehouse.version,
        subcommands: [
            Serve.self, Login.self, Logout.self, Token.self, Tokens.self, Sessions.self, Audit.self, Users.self,
            HashPassword.self, ConfigCommand.self, PolicyCommand.self, MFA.self, Verify.self, Approve.self, Deny.self,
            ChallengesCommand.self, RequestCommand.self, RequestsCommand.self, Revoke.self, GrantsCommand.self,
            ConnectionsCommand.self, MCPBridge.self,
        ]
    )

    static let version = "0.1.0"

    /// Parses and runs as the argument parser does, answering a mistyped command or option with the
    /// nearest that exists ("did you mean").
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let (word, choices) = Suggestions.unknownCommand(in: arguments, root: Gatehouse.self) {
            let advice = Suggestions.didYouMean(word, among: choices).map { " \($0)" } ?? ""
            FileHandle.standardError.write(
                Data("Error: unknown command '\(word)'.\(advice)\nThe commands: \(choices.joined(separator: ", ")).\n".utf8))
            Foundation.exit(64)
        }
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            var message = fullMessage(for: error)
            if exitCode(for: error) != .success,
                let range = message.range(of: #"Unknown option '--[^']+'"#, options: .regularExpression)
            {
                let option = String(message[range].dropFirst("Unknown option '".count).dropLast())
                let words = arguments.prefix { !$0.hasPrefix("-") }
                let help = helpMessage(for: Suggestions.command(at: Array(words), root: Gatehouse.self))
                if let advice = Suggestions.didYouMean(option, among: Suggestions.longOptions(in: help)) {
                    message += "\n" + advice
                    FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
                    Foundation.exit(exitCode(for: error).rawValue)
                }
            }
            exit(withError: error)
        }
    }
}

/// Options every command that talks to a running gateway shares.
struct ClientOptions: ParsableArguments {
    @Option(help: "The gateway's HTTP API, e.g. http://127.0.0.1:7070 (default: the one you logged in to, or $GATEHOUSE_SERVER).")
    var server: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false
}

/// A failure to show the user as one clear line, exit code 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    /// The API's error code, when the failure came from the gateway.
    var code: String?
    init(_ description: String, code: String? = nil) {
        self.description = description
        self.code = code
    }
}

/// Reads a one-time code: from the option, else asked on the terminal, else one line of standard input.
func readCode(_ given: String?, prompt: String) throws -> String {
    if let given, !given.isEmpty { return given }
    if isatty(STDIN_FILENO) != 0 {
        FileHandle.standardError.write(Data(prompt.utf8))
    }
    guard let line = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces), !line.isEmpty else {
        throw CLIError("no code given: pass --code or type it when asked")
    }
    return line
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Reads a secret: from standard input when asked, otherwise from the terminal without echo.
func readSecret(prompt: String, fromStandardInput: Bool) throws -> String {
    if fromStandardInput {
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw CLIError("no password on standard input")
        }
        return line
    }
    guard isatty(STDIN_FILENO) != 0, let pointer = getpass(prompt) else {
        throw CLIError("no terminal to ask for the password: use --password-stdin")
    }
    return String(cString: pointer)
}

/// Sends once; when the gateway asks for a second factor and no code was given, asks for one and sends again.
func sendAskingForCode<Response>(
    _ code: String?, prompt: String, _ send: (String?) async throws -> Response
) async throws -> Response {
    do {
        return try await send(code)
    } catch let error as CLIError where error.code == "second_factor_required" && code == nil {
        return try await send(try readCode(nil, prompt: prompt))
    }
}
