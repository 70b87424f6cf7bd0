import ArgumentParser
import AsyncHTTPClient
import Foundation
import GatehouseHTTP
import GatehouseMCP
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// `gatehouse mcp`: the gateway's MCP server for clients that start a command and speak MCP on its
/// standard input and output (desktop and IDE agents). Each JSON-RPC message read from stdin is sent to
/// the gateway's `/mcp`; what the gateway answers, and what it sends on its own (progress while a
/// statement is held), is written to stdout, one message per line.
struct MCPBridge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Speak MCP on stdin and stdout, relayed to the gateway's /mcp (for agents that start a command).",
        discussion: """
            Authenticates as GATEHOUSE_TOKEN (a service account's API token, or a token from `gatehouse token`) or, \
            without it, as the stored login, whose short-lived access tokens it renews as they run out. Logs go to \
            standard error; standard output carries only MCP messages.
            """)

    @Option(help: "The gateway's HTTP address (default: the stored login's, or GATEHOUSE_SERVER).")
    var server: String?

    func run() async throws {
        let api = try APIClient.loggedIn(server: server)
        let base = api.server.hasSuffix("/") ? String(api.server.dropLast()) : api.server
        let bridge = Bridge(url: base + MCPGateway.endpoint, api: api)
        try await bridge.run()
    }
}

/// The relay: one POST per message read (side by side, so a held call does not hold the others up),
/// a standing GET for what the server sends on its own, a DELETE at the end.
private actor Bridge {
    let url: String
    let api: APIClient
    private var token: String?
    private var sessionID: String?
    private var protocolVersion: String?
    private var listening = false
    private let output = FileHandle.standardOutput

    init(url: String, api: APIClient) {
        self.url = url
        self.api = api
    }

    func run() async throws {
        // Standard input is read on a thread of its own (a blocking read), a line per message.
        let (lines, input) = AsyncStream<String>.makeStream()
        Thread.detachNewThread {
            while let line = readLine(strippingNewline: true) { input.yield(line) }
            input.finish()
        }
        await withTaskGroup(of: Void.self) { group in
            for await line in lines {
                let message = line.trimmingCharacters(in: .whitespaces)
                guard !message.isEmpty else { continue }
                // Until the session exists (initialize), messages go one by one; then side by side.
                if sessionID == nil { await post(message) } else { group.addTask { await self.post(message) } }
            }
            await group.waitForAll()
        }
        await end()
    }

    /// An access token: GATEHOUSE_TOKEN as it is, or a fresh one from the stored login.
    private func accessToken(renew: Bool = false) async throws -> String {
        if let token, !renew { return token }
        if let given = ProcessInfo.processInfo.environment["GATEHOUSE_TOKEN"], !given.isEmpty {
            token = given
            return given
        }
        let issued = try await api.send("POST", "tokens", body: API.TokenRequest(ttl: nil), as: API.TokenResponse.self)
        token = issued.token
        return issued.token
    }

    private func request(_ method: HTTPMethod, body: String? = nil) async throws -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(try await accessToken())")
        request.headers.add(name: "Accept", value: "application/json, text/event-stream")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        if let sessionID { request.headers.add(name: "Mcp-Session-Id", value: sessionID) }
        if let protocolVersion { request.headers.add(name: "MCP-Protocol-Version", value: protocolVersion) }
        return request
    }

    private func post(_ message: String) async {
        do {
            var response = try await HTTPClient.shared.execute(try await request(.POST, body: message), timeout: .hours(24))
            if response.status == .unauthorized, ProcessInfo.processInfo.environment["GATEHOUSE_TOKEN"] == nil {
                _ = try await accessToken(renew: true)
                response = try await HTTPClient.shared.execute(try await request(.POST, body: message), timeout: .hours(24))
            }
            if let id = response.headers.first(name: "Mcp-Session-Id"), sessionID == nil {
                sessionID = id
            }
            try await relay(response)
            if message.contains("\"notifications/initialized\"") { startListening() }
        } catch {
            reply(toFailed: message, because: "\(error)")
        }
    }

    /// Writes what a response carries: one JSON message, an event stream of them, or nothing (202).
    private func relay(_ response: HTTPClientResponse) async throws {
        let type = response.headers.first(name: "Content-Type") ?? ""
        if type.hasPrefix("text/event-stream") {
            var events = ServerSentEvents()
            for try await chunk in response.body {
                for event in events.feed(chunk.readableBytesView) { write(event) }
            }
            return
        }
        let body = try await response.body.collect(upTo: 64 << 20)
        let text = String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines)
        if !text.isEmpty {
            noteVersion(text)
            write(text)
        }
    }

    private func noteVersion(_ text: String) {
        guard protocolVersion == nil,
            let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let result = object["result"] as? [String: Any], let version = result["protocolVersion"] as? String
        else { return }
        protocolVersion = version
    }

    private func write(_ message: String) {
        noteVersion(message)
        let line = message.replacingOccurrences(of: "\n", with: " ") + "\n"
        output.write(Data(line.utf8))
    }

    /// The server's own messages (progress of a held call) come on a standing GET.
    private func startListening() {
        guard !listening, sessionID != nil else { return }
        listening = true
        Task {
            while !Task.isCancelled {
                do {
                    let response = try await HTTPClient.shared.execute(try await request(.GET), timeout: .hours(24))
                    guard response.status == .ok else { return }
                    try await relay(response)
                } catch {
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// A request the gateway could not be asked: the client hears why, as a JSON-RPC error.
    private func reply(toFailed message: String, because reason: String) {
        FileHandle.standardError.write(Data("gatehouse mcp: \(reason)\n".utf8))
        guard let object = try? JSONSerialization.jsonObject(with: Data(message.utf8)) as? [String: Any],
            let id = object["id"]
        else { return }
        let answer: [String: Any] = [
            "jsonrpc": "2.0", "id": id,
            "error": ["code": -32603, "message": "cannot reach the Gatehouse MCP endpoint at \(url): \(reason)"],
        ]
        if let data = try? JSONSerialization.data(withJSONObject: answer) { write(String(decoding: data, as: UTF8.self)) }
    }

    private func end() async {
        guard sessionID != nil, let request = try? await request(.DELETE) else { return }
        _ = try? await HTTPClient.shared.execute(request, timeout: .seconds(5))
    }
}
