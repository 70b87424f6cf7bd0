import Crypto
import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import Logging
import MCP
import SystemPackage

/// The MCP servers the gateway relays: each started as a command speaking MCP on its stdin and stdout,
/// its tools offered under its prefix, each call judged by the tool rules and audited. Each tool's
/// fingerprint (name, description, input schema) is kept, as first seen, in `approvedFile`; a tool that
/// no longer matches it is reported (audited, logged as an alert), no longer listed and refused: what
/// agents were allowed to use is not what it now says it is. Removing its entry from the file accepts
/// the tool as it now is.
public actor MCPUpstreams {
    private struct Running {
        var client: Client
        var process: Process
        /// Its tools by their name at the gateway (prefixed), with their own name.
        var tools: [String: (own: String, tool: MCP.Tool)]
    }

    private let upstreams: [MCPUpstream]
    private let policy: ToolPolicy
    private let logger: Logger
    private var running: [String: Running] = [:]
    /// Fingerprints of each tool as first seen, by its name at the gateway (kept in `approvedFile`).
    private var firstSeen: [String: String] = [:]
    private let approvedFile: String?
    /// Tools whose fingerprint is not the approved one, with the fingerprint reported.
    private var changed: [String: String] = [:]
    private let audit: @Sendable (AuditEventType, [String: String]) -> Void
    /// Where a call an `approve` rule holds waits for a person; nil: such calls are refused.
    private let stepUp: StepUpService?

    public init(
        upstreams: [MCPUpstream], rules: [ToolRule], stepUp: StepUpService? = nil, approvedFile: String? = nil,
        logger: Logger, audit: @escaping @Sendable (AuditEventType, [String: String]) -> Void
    ) {
        self.approvedFile = approvedFile
        self.stepUp = stepUp
        self.upstreams = upstreams
        self.policy = ToolPolicy(rules: rules)
        self.logger = logger
        self.audit = audit
    }

    public nonisolated var isEmpty: Bool { upstreams.isEmpty }

    /// The relayed tools an agent may see, read afresh from each upstream (so a change is noticed).
    func tools() async -> [MCP.Tool] {
        var listed: [MCP.Tool] = []
        for upstream in upstreams {
            guard let tools = await refresh(upstream) else { continue }
            for (name, entry) in tools.sorted(by: { $0.key < $1.key }) where policy.lists(name) && changed[name] == nil {
                listed.append(
                    MCP.Tool(
                        name: name, title: entry.tool.title,
                        description: "[\(upstream.name), relayed by Gatehouse] " + (entry.tool.description ?? ""),
                        inputSchema: entry.tool.inputSchema, annotations: entry.tool.annotations,
                        outputSchema: entry.tool.outputSchema))
            }
        }
        return listed
    }

    /// Whether `name` is a relayed tool's (by prefix).
    nonisolated func relays(_ name: String) -> Bool { upstreams.contains { name.hasPrefix($0.prefix) } }

    /// Calls a relayed tool, if the rules allow it.
    /// `session`: the MCP session (a held call's challenge names it); `held` is told when a person must decide.
    func call(
        _ name: String, arguments: [String: Value], principal: String, client: String, session: String,
        held: @escaping @Sendable (Challenge) -> Void = { _ in }
    ) async -> CallTool.Result {
        var detail = [
            "tool": name, "principal": principal, "client": client, "arguments": ToolPolicy.masked(arguments),
        ]
        let decision = policy.decide(tool: name, arguments: arguments)
        detail["decision"] = decision.action.rawValue
        if let rule = decision.rule { detail["rule"] = rule }
        guard decision.action != .deny else {
            audit(.mcpToolCall, detail.merging(["outcome": "denied"]) { $1 })
            var text = "Gatehouse denied this tool call: rule \"\(decision.rule ?? "")\""
            if let message = decision.message { text += ": \(message)" }
            if let hint = decision.hint { text += "\nhint: \(hint)" }
            return MCPTools.errorResult(text)
        }
        guard let upstream = upstreams.first(where: { name.hasPrefix($0.prefix) }) else {
            return MCPTools.errorResult("no tool named '\(name)'")
        }
        var tools = running[upstream.name]?.tools ?? [:]
        // A tool not seen yet, or held back (perhaps accepted since), is looked at again.
        if tools[name] == nil || changed[name] != nil, let fresh = await refresh(upstream) { tools = fresh }
        guard let entry = tools[name], running[upstream.name] != nil else {
            audit(.mcpToolCall, detail.merging(["outcome": "invalid"]) { $1 })
            return MCPTools.errorResult("no tool named '\(name)' on \(upstream.name)")
        }
        guard changed[name] == nil else {
            audit(.mcpToolCall, detail.merging(["outcome": "refused", "reason": "tool changed"]) { $1 })
            return MCPTools.errorResult(
                "Gatehouse did not run this tool call: \(name) changed its description or input schema since it was approved, and is held back until an administrator accepts it"
            )
        }
        if decision.action == .approve {
            guard let stepUp else {
                audit(.mcpToolCall, detail.merging(["outcome": "denied"]) { $1 })
                return MCPTools.errorResult(
                    "Gatehouse did not run this tool call: rule \"\(decision.rule ?? "")\" needs a person's approval, which is not enabled on this gateway"
                )
            }
            let text = "MCP tool \(name) \(ToolPolicy.masked(arguments))"
            let now = Date()
            var challenge = Challenge(
                id: RandomSecret.hex(8), kind: .approve, user: principal, session: session, connection: "mcp:\(upstream.name)",
                statement: text,
                fingerprint: SHA256.hash(data: Data(text.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined(),
                rules: [decision.rule ?? ""],
                reason: decision.message ?? "rule \(decision.rule ?? "") holds this tool call for approval",
                approvers: decision.approvers, createdAt: now, expiresAt: now.addingTimeInterval(stepUp.holdTimeout))
            challenge.agent = client
            held(challenge)
            let holding = challenge
            let final = await Self.wait(for: holding, on: stepUp)
            guard final.state.releases else {
                audit(.mcpToolCall, detail.merging(["outcome": "not approved", "challenge": final.id]) { $1 })
                let why = final.decisionReason.map { ": \($0)" } ?? ""
                return MCPTools.errorResult(
                    "Gatehouse did not run this tool call: approval \(final.state.rawValue) (challenge \(final.id))\(why)")
            }
            detail["challenge"] = final.id
            detail["approved_by"] = final.decidedBy ?? ""
        }
        if decision.action == .alert {
            logger.warning(
                "ALERT: a relayed tool call matched an alert rule",
                metadata: ["tool": "\(name)", "rule": "\(decision.rule ?? "")"])
        }
        do {
            // Started again if it stopped while the call was held.
            let client = try await connected(upstream)
            let (content, isError) = try await client.callTool(name: entry.own, arguments: arguments)
            audit(.mcpToolCall, detail.merging(["outcome": isError == true ? "error" : "ok"]) { $1 })
            return CallTool.Result(content: content, structuredContent: nil, isError: isError)
        } catch {
            audit(.mcpToolCall, detail.merging(["outcome": "error", "error": "\(error)"]) { $1 })
            stop(upstream.name)
            return MCPTools.errorResult("the MCP server \(upstream.name) failed: \(error)")
        }
    }

    /// The upstream's tools now, started if need be; a tool changed since first seen is reported.
    private func refresh(_ upstream: MCPUpstream) async -> [String: (own: String, tool: MCP.Tool)]? {
        do {
            let client = try await connected(upstream)
            var all: [MCP.Tool] = []
            var cursor: String?
            repeat {
                let page = try await client.listTools(cursor: cursor)
                all += page.tools
                cursor = page.nextCursor
            } while cursor != nil && all.count < 10_000
            var tools: [String: (own: String, tool: MCP.Tool)] = [:]
            loadApproved()
            var added = false
            for tool in all {
                let name = upstream.prefix + tool.name
                tools[name] = (tool.name, tool)
                let fingerprint = ToolPolicy.fingerprint(tool)
                guard let seen = firstSeen[name] else {
                    firstSeen[name] = fingerprint
                    changed[name] = nil
                    added = true
                    continue
                }
                if seen == fingerprint {
                    changed[name] = nil
                } else if changed[name] != fingerprint {
                    changed[name] = fingerprint
                    logger.warning(
                        "ALERT: a relayed MCP tool changed its description or schema since it was approved; it is held back",
                        metadata: ["tool": "\(name)", "upstream": "\(upstream.name)", "approved": "\(approvedFile ?? "")"])
                    audit(
                        .mcpToolChanged,
                        [
                            "tool": name, "upstream": upstream.name, "was": seen, "now": fingerprint,
                            "description": String((tool.description ?? "").prefix(500)),
                        ])
                }
            }
            if added { saveApproved() }
            running[upstream.name]?.tools = tools
            return tools
        } catch {
            logger.warning(
                "cannot list an MCP upstream's tools", metadata: ["upstream": "\(upstream.name)", "error": "\(error)"])
            stop(upstream.name)
            return nil
        }
    }

    private func connected(_ upstream: MCPUpstream) async throws -> Client {
        if let running = running[upstream.name], running.process.isRunning { return running.client }
        stop(upstream.name)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.resolve(upstream.command[0]))
        process.arguments = Array(upstream.command.dropFirst())
        let toChild = Pipe()
        let fromChild = Pipe()
        process.standardInput = toChild
        process.standardOutput = fromChild
        process.standardError = FileHandle.standardError
        try process.run()
        let transport = StdioTransport(
            input: FileDescriptor(rawValue: fromChild.fileHandleForReading.fileDescriptor),
            output: FileDescriptor(rawValue: toChild.fileHandleForWriting.fileDescriptor), logger: logger)
        let client = Client(name: "gatehouse", version: "0.1.0")
        _ = try await client.connect(transport: transport)
        running[upstream.name] = Running(client: client, process: process, tools: [:])
        logger.info("MCP upstream started", metadata: ["upstream": "\(upstream.name)", "pid": "\(process.processIdentifier)"])
        return client
    }

    private func stop(_ name: String) {
        guard let entry = running.removeValue(forKey: name) else { return }
        Task { await entry.client.disconnect() }
        if entry.process.isRunning { entry.process.terminate() }
    }

    public func shutdown() {
        for name in running.keys { stop(name) }
    }

    /// Holds the call until the challenge is decided, fails or expires.
    private nonisolated static func wait(for challenge: Challenge, on stepUp: StepUpService) async -> Challenge {
        await withCheckedContinuation { (done: CheckedContinuation<Challenge, Never>) in
            Task { await stepUp.hold(challenge) { done.resume(returning: $0) } }
        }
    }

    /// The approved fingerprints, read again each time (an administrator accepts a changed tool by
    /// removing its entry).
    private func loadApproved() {
        guard let approvedFile, let data = FileManager.default.contents(atPath: approvedFile),
            let read = try? JSONDecoder().decode([String: String].self, from: data)
        else { return }
        firstSeen = read
    }

    private func saveApproved() {
        guard let approvedFile, let data = try? JSONEncoder.sorted.encode(firstSeen) else { return }
        do { try data.write(to: URL(fileURLWithPath: approvedFile), options: .atomic) } catch {
            logger.error("cannot keep the approved MCP tools", metadata: ["file": "\(approvedFile)", "error": "\(error)"])
        }
    }

    /// A command name as a shell would find it on PATH.
    static func resolve(_ command: String) throws -> String {
        if command.contains("/") { return command }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(directory)/\(command)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw MCPError.internalError("no program named \(command) on PATH")
    }
}
