import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseHTTP

struct RequestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request", abstract: "Ask for an elevated role for a while, with a reason.",
        discussion: """
            Waits until the request is approved, denied or lapses (Ctrl-C stops waiting, not the request). \
            With --break-glass the role is active at once after your second factor, for a short time, and \
            everyone is alerted.
            """)
    @OptionGroup var options: ClientOptions

    @Argument(help: "The role, e.g. dba.")
    var role: String

    @Option(help: "The connection the grant is for (when the role is scoped to connections).")
    var connection: String?

    @Option(help: "How long, e.g. 30m.")
    var duration: String

    @Option(help: "Why (some roles want a ticket id).")
    var reason: String?

    @Option(help: "Start later, at this RFC 3339 time.")
    var start: String?

    @Flag(help: "Return at once instead of waiting for the decision.")
    var noWait = false

    @Flag(help: "Activate now without approval (where the role allows it); needs --code.")
    var breakGlass = false

    @Option(help: "Your second-factor code, for --break-glass.")
    var code: String?

    func validate() throws {
        guard DurationText.parse(duration) != nil else { throw ValidationError("--duration must be such as 30m or 1h") }
    }

    func run() async throws {
        let client = try APIClient.loggedIn(server: options.server)
        var request = try await client.send(
            "POST", "requests",
            body: API.AccessRequestBody(
                role: role, connection: connection, duration: duration, reason: reason, start_at: start,
                break_glass: breakGlass ? true : nil,
                code: breakGlass ? try readCode(code, prompt: "Code from your authenticator: ") : nil),
            as: API.AccessRequestView.self)
        if !options.json {
            FileHandle.standardError.write(Data("Request \(request.id) for \(request.role): \(request.state)\n".utf8))
        }
        let spinner = ["|", "/", "-", "\\"]
        var turn = 0
        while request.state == "pending" && !noWait {
            if isatty(STDERR_FILENO) != 0 {
                FileHandle.standardError.write(Data("\r\(spinner[turn % 4]) waiting for approval of \(request.id) ".utf8))
            }
            turn += 1
            try await Task.sleep(for: .seconds(1))
            let list = try await client.send("GET", "requests", as: API.AccessRequests.self)
            if let current = list.requests.first(where: { $0.id == request.id }) { request = current }
        }
        if isatty(STDERR_FILENO) != 0 && turn > 0 { FileHandle.standardError.write(Data("\r".utf8)) }
        if options.json { return try printJSON(request) }
        switch request.state {
        case "approved":
            print(
                "Granted \(request.role) until \(request.expires_at ?? "?") (\(request.id)). Open sessions gain it on their next statement."
            )
        case "pending":
            print("Request \(request.id) is waiting for approval: `gatehouse requests` shows it.")
        case "denied":
            throw CLIError(
                "request \(request.id) was denied by \(request.denied_by ?? "an approver")\(request.denial_reason.map { ": \($0)" } ?? "")"
            )
        default:
            throw CLIError("request \(request.id) is \(request.state)")
        }
    }
}

struct RequestsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "requests", abstract: "Access requests: yours, and those you may approve.")
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let list = try await APIClient.loggedIn(server: options.server).send("GET", "requests", as: API.AccessRequests.self)
        if options.json { return try printJSON(list) }
        if list.requests.isEmpty { return print("No requests.") }
        for request in list.requests {
            var line =
                "\(request.id)  \(request.state)\(request.active ? " (active)" : "")  \(request.requester) → \(request.role)"
            if let connection = request.connection { line += " on \(connection)" }
            line += " for \(request.duration)"
            if let until = request.expires_at { line += " until \(until)" }
            print(line)
            print("    reason: \(request.reason)")
        }
    }
}

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "End a grant now (sessions that used it are terminated) or withdraw a pending request.")
    @OptionGroup var options: ClientOptions

    @Argument(help: "The request id (req-...).")
    var id: String

    func run() async throws {
        let request = try await APIClient.loggedIn(server: options.server).send(
            "POST", "requests/\(id)/revoke", as: API.AccessRequestView.self)
        if options.json { return try printJSON(request) }
        print("Revoked \(request.id) (\(request.role) of \(request.requester)).")
    }
}

/// `gatehouse approve` and `deny` take challenge ids and request ids (req-...).
enum DecisionRouting {
    static func isRequest(_ id: String) -> Bool { id.hasPrefix("req-") }

    static func approveRequest(_ id: String, code: String?, options: ClientOptions) async throws {
        let request = try await APIClient.loggedIn(server: options.server).send(
            "POST", "requests/\(id)/approve", body: API.CodeRequest(code: code), as: API.AccessRequestView.self)
        if options.json { return try printJSON(request) }
        if request.state == "approved" {
            print("Approved: \(request.requester) holds \(request.role) until \(request.expires_at ?? "?").")
        } else {
            print("Approval recorded for \(request.id); more approvals are needed.")
        }
    }

    static func denyRequest(_ id: String, reason: String?, options: ClientOptions) async throws {
        let request = try await APIClient.loggedIn(server: options.server).send(
            "POST", "requests/\(id)/deny", body: API.DenyRequest(reason: reason), as: API.AccessRequestView.self)
        if options.json { return try printJSON(request) }
        print("Denied \(request.id) (\(request.requester) → \(request.role)).")
    }
}
