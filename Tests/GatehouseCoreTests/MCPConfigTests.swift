import GatehouseConfig
import GatehouseConfigYAML
import Testing

@Suite("mcp: relayed MCP servers and the rules on their tools, as configured")
struct MCPConfigTests {
    static func yaml(_ mcp: String) -> String { "groups: [developer]\nmcp:\n\(mcp)\n" }

    @Test func upstreamsAndRulesAreRead() throws {
        let config = try ConfigLoader(environment: [:], baseDirectory: "/").parse(
            Self.yaml(
                """
                  upstreams:
                    - {name: files, command: [python3, server.py]}
                    - {name: tickets, command: [/usr/bin/tickets-mcp], prefix: "jira."}
                  tool_rules:
                    - {name: no-delete, action: deny, tools: ["files_delete*"], hint: ask a person}
                    - {name: watch, action: alert, arguments: {project: OPS, path: ["/etc/*", "*.pem"]}}
                """), file: "g.yaml")
        #expect(config.mcp.upstreams.map(\.prefix) == ["files_", "jira."])
        #expect(config.mcp.upstreams.first?.command == ["python3", "server.py"])
        #expect(config.mcp.toolRules.map(\.action) == [.deny, .alert])
        #expect(config.mcp.toolRules.last?.arguments?["path"]?.map(\.pattern) == ["/etc/*", "*.pem"])
        #expect(config.mcp.toolRules.last?.arguments?["project"]?.map(\.pattern) == ["OPS"])
    }

    @Test func mistakesAreRefusedClearly() {
        #expect(configError(Self.yaml("  upstreams: [{name: files}]"))?.reason.contains("needs a command") == true)
        #expect(
            configError(Self.yaml("  upstreams: [{name: a, command: [x]}, {name: b, command: [y], prefix: a_}]"))?.reason
                .contains("repeats a name or prefix") == true)
        #expect(
            configError(Self.yaml("  tool_rules: [{name: r, action: hold}]"))?.reason.contains("allow, alert, approve or deny")
                == true)
        #expect(configError(Self.yaml("  tool_rules: [{name: r}]"))?.reason.contains("needs an action") == true)
        #expect(
            configError(Self.yaml("  tool_rules: [{name: r, action: approve}]"))?.reason.contains("it needs approvers") == true)
        #expect(
            configError(Self.yaml("  tool_rules: [{name: r, action: approve, approvers: [\"group:\"]}]"))?.reason
                .contains("is not a user or group:NAME") == true)
        #expect(configError(Self.yaml("  servers: []"))?.reason.contains("unknown key 'servers'") == true)
    }
}
