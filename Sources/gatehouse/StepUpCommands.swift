import ArgumentParser
import CQREncode
import Foundation
import GatehouseCore
import GatehouseHTTP

struct MFA: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mfa", abstract: "Manage your second factor (TOTP).", subcommands: [Enroll.self, Confirm.self])

    struct Enroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enrol an authenticator app: shows the otpauth:// URI and a QR code, then asks for the first code.",
            discussion: """
                A first second factor needs your password again (asked for, or --password-stdin): a token alone \
                cannot add one. Enrolling again replaces the previous secret, and needs a code from it (asked \
                for, or --current-code); until the new secret is confirmed, logins ask for no code. \
                An admin can enrol for another user with --user (a lost authenticator, an account without a \
                password): the secret is shown to the admin, to hand over; the user confirms it.
                """)
        @OptionGroup var options: ClientOptions

        @Option(help: "The first code, to confirm without being asked.")
        var code: String?

        @Option(help: "When replacing a second factor: a code from the current one.")
        var currentCode: String?

        @Flag(help: "Read your password from standard input instead of asking.")
        var passwordStdin = false

        @Option(help: "Admins: enrol for this user.")
        var user: String?

        func run() async throws {
            let client = try APIClient.loggedIn(server: options.server)
            var request = API.EnrolRequest(
                password: passwordStdin ? try readSecret(prompt: "", fromStandardInput: true) : nil, code: currentCode,
                user: user)
            let enrolment: API.Enrolment
            while true {
                do {
                    enrolment = try await client.send("POST", "mfa/enroll", body: request, as: API.Enrolment.self)
                    break
                } catch let error as CLIError where error.code == "password_required" && request.password == nil {
                    request.password = try readSecret(prompt: "Your password: ", fromStandardInput: false)
                } catch let error as CLIError where error.code == "second_factor_required" && request.code == nil {
                    request.code = try readCode(nil, prompt: "Code from your current authenticator: ")
                }
            }
            if options.json {
                try printJSON(enrolment)
            } else {
                print(
                    "Add this account to \(user.map { "\($0)'s" } ?? "your") authenticator app (scan, or enter the secret by hand):\n"
                )
                if let qr = QRCode.terminal(enrolment.uri) { print(qr) }
                print("  \(enrolment.uri)\n  secret: \(enrolment.secret)\n")
            }
            fflush(nil)
            if let user, try await client.send("GET", "me", as: API.Me.self).user != user {
                if !options.json { print("\(user) confirms it with the first code: gatehouse mfa confirm CODE") }
                return
            }
            guard code != nil || isatty(STDIN_FILENO) != 0 else {
                if !options.json { print("Confirm with the first code: gatehouse mfa confirm CODE") }
                return
            }
            let first = try readCode(code, prompt: "First code from the app, to confirm: ")
            _ = try await client.send("POST", "mfa/confirm", body: API.CodeRequest(code: first), as: API.Done.self)
            if !options.json { print("Second factor confirmed: logins and step-up now ask for a code.") }
        }
    }

    struct Confirm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Confirm an enrolment with the first code from the app.")
        @OptionGroup var options: ClientOptions

        @Argument(help: "The code.")
        var code: String

        func run() async throws {
            _ = try await APIClient.loggedIn(server: options.server).send(
                "POST", "mfa/confirm", body: API.CodeRequest(code: code), as: API.Done.self)
            print("Second factor confirmed: logins and step-up now ask for a code.")
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prove it is you, so a statement Gatehouse holds in your session runs.",
        discussion: "The challenge id is in the NOTICE your client printed. The proof covers that statement only.")
    @OptionGroup var options: ClientOptions

    @Argument(help: "The challenge id.")
    var id: String

    @Option(help: "The code from your authenticator (asked for otherwise).")
    var code: String?

    func run() async throws {
        let client = try APIClient.loggedIn(server: options.server)
        let code = try readCode(code, prompt: "Code from your authenticator for challenge \(id): ")
        let challenge = try await client.send(
            "POST", "challenges/\(id)/verify", body: API.CodeRequest(code: code), as: API.ChallengeView.self)
        if options.json { return try printJSON(challenge) }
        print("Verified: the held statement runs now (challenge \(challenge.id)).")
    }
}

struct Approve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Approve a statement held for four-eyes approval, or an access request (req-...).")
    @OptionGroup var options: ClientOptions

    @Argument(help: "The challenge id.")
    var id: String

    @Option(help: "Your own code, when the rule asks approvers to step up.")
    var code: String?

    func run() async throws {
        if DecisionRouting.isRequest(id) { return try await DecisionRouting.approveRequest(id, code: code, options: options) }
        let client = try APIClient.loggedIn(server: options.server)
        let challenge = try await sendAskingForCode(code, prompt: "Your code from the authenticator: ") { code in
            try await client.send(
                "POST", "challenges/\(id)/approve", body: API.CodeRequest(code: code), as: API.ChallengeView.self)
        }
        if options.json { return try printJSON(challenge) }
        print("Approved: \(challenge.user)'s statement runs now (challenge \(challenge.id)).")
    }
}

struct Deny: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Refuse a statement held for approval, or an access request (req-...).")
    @OptionGroup var options: ClientOptions

    @Argument(help: "The challenge id.")
    var id: String

    @Option(help: "Why; the requester reads it.")
    var reason: String?

    func run() async throws {
        if DecisionRouting.isRequest(id) { return try await DecisionRouting.denyRequest(id, reason: reason, options: options) }
        let challenge = try await APIClient.loggedIn(server: options.server).send(
            "POST", "challenges/\(id)/deny", body: API.DenyRequest(reason: reason), as: API.ChallengeView.self)
        if options.json { return try printJSON(challenge) }
        print("Denied: \(challenge.user)'s statement will not run (challenge \(challenge.id)).")
    }
}

struct ChallengesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "challenges", abstract: "Statements held for you: your step-ups, and approvals you may give.")
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let response = try await APIClient.loggedIn(server: options.server).send("GET", "challenges", as: API.Challenges.self)
        if options.json { return try printJSON(response) }
        if response.challenges.isEmpty { return print("Nothing is waiting for you.") }
        for challenge in response.challenges {
            let action = challenge.kind == "step_up" ? "gatehouse verify \(challenge.id)" : "gatehouse approve \(challenge.id)"
            let agent = challenge.agent.map { "  (AI agent \($0))" } ?? ""
            print(
                "\(challenge.id)  \(challenge.kind)  \(challenge.user)@\(challenge.connection)  until \(challenge.expires_at)\(agent)"
            )
            print("    rules: \(challenge.rules.joined(separator: ", "))")
            print(
                "    statement: \(challenge.statement.truncated(to: 200))"
            )
            print("    \(action)")
        }
    }
}

/// QR codes drawn with Unicode half blocks, two modules per character row (libqrencode encodes).
enum QRCode {
    static func terminal(_ text: String) -> String? {
        guard let code = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1) else { return nil }
        defer { QRcode_free(code) }
        let width = Int(code.pointee.width)
        let quiet = 2
        let size = width + 2 * quiet
        func dark(_ x: Int, _ y: Int) -> Bool {
            let (mx, my) = (x - quiet, y - quiet)
            guard mx >= 0, my >= 0, mx < width, my < width else { return false }
            return code.pointee.data[my * width + mx] & 1 == 1
        }
        var lines: [String] = []
        // Light modules are drawn as full blocks so the code reads on dark terminals too.
        for y in stride(from: 0, to: size, by: 2) {
            var line = "  "
            for x in 0..<size {
                switch (dark(x, y), dark(x, y + 1)) {
                case (false, false): line += "█"
                case (true, false): line += "▄"
                case (false, true): line += "▀"
                case (true, true): line += " "
                }
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
