import Crypto
import Foundation
import GatehouseConfig
import GatehousePolicy
import MCP

/// The rules on relayed tools: pure, so each decision is tested as a value.
public struct ToolPolicy: Sendable {
    public struct Decision: Sendable, Equatable {
        public var action: ToolRule.Action
        /// The deciding rule (the most restrictive that matched); nil when none did (allowed).
        public var rule: String?
        public var message: String?
        public var hint: String?
        /// Every rule that matched, for the audit log.
        public var matched: [String]
        /// Who may approve, when the decision is `approve`.
        public var approvers: [String] = []
    }

    public let rules: [ToolRule]

    public init(rules: [ToolRule]) { self.rules = rules }

    /// A relayed tool no agent may call at all (a deny rule on its name alone) is not listed.
    public func lists(_ tool: String) -> Bool {
        !rules.contains { $0.action == .deny && $0.arguments == nil && Self.names(tool, $0) }
    }

    /// deny beats alert beats allow; with no rule matching, the call is allowed.
    public func decide(tool: String, arguments: [String: Value]) -> Decision {
        let matching = rules.filter { Self.names(tool, $0) && Self.fits(arguments, $0) }
        let rank: (ToolRule.Action) -> Int = { [.allow: 0, .alert: 1, .approve: 2, .deny: 3][$0]! }
        guard let deciding = matching.max(by: { rank($0.action) < rank($1.action) }) else {
            return Decision(action: .allow, rule: nil, message: nil, hint: nil, matched: [])
        }
        return Decision(
            action: deciding.action, rule: deciding.name, message: deciding.message, hint: deciding.hint,
            matched: matching.map(\.name),
            approvers: Array(Set(matching.filter { $0.action == .approve }.flatMap(\.approvers))).sorted())
    }

    static func names(_ tool: String, _ rule: ToolRule) -> Bool {
        rule.tools?.contains { $0.matches(tool) } ?? true
    }

    /// Every argument the rule names is present and one of its patterns matches its value as text.
    static func fits(_ arguments: [String: Value], _ rule: ToolRule) -> Bool {
        guard let wanted = rule.arguments else { return true }
        return wanted.allSatisfy { name, patterns in
            guard let value = arguments[name] else { return false }
            let text = Self.text(value)
            return patterns.contains { $0.matches(text) }
        }
    }

    /// A value as the rules read it: a string as itself, anything else as its JSON.
    static func text(_ value: Value) -> String {
        if case .string(let string) = value { return string }
        guard let data = try? JSONEncoder.sorted.encode(value) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    /// What a tool is: its name, description and input schema. A change after it was first seen is a
    /// tool that now does (or says it does) something else.
    public static func fingerprint(_ tool: MCP.Tool) -> String {
        var text = tool.name + "\u{0}" + (tool.description ?? "") + "\u{0}"
        if let schema = try? JSONEncoder.sorted.encode(tool.inputSchema) { text += String(decoding: schema, as: UTF8.self) }
        return SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Argument values with anything that looks like a secret masked, for the audit log.
    public static func masked(_ arguments: [String: Value]) -> String {
        let secretish = ["password", "secret", "token", "key", "credential", "authorization"]
        var shown: [String: String] = [:]
        for (name, value) in arguments {
            let lower = name.lowercased()
            var text = secretish.contains(where: lower.contains) ? "***" : Self.text(value)
            for prefix in ["ghp_", "sk-", "xoxb-", "AKIA", "eyJ"] where text.contains(prefix) { text = "***" }
            shown[name] = String(text.prefix(500))
        }
        guard let data = try? JSONEncoder.sorted.encode(shown) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
