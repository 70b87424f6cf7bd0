import Foundation
import Testing

/// AI agents over MCP, driven by the official Python SDK's client against `/mcp`.
@Suite("MCP: agents' tool calls judged, held and audited", .timeLimit(.minutes(5)))
struct MCPTests {
    static func policy(timeout: String = "60s") -> String {
        """
        step_up: {timeout: \(timeout)}
        policy:
          rules:
            - name: agents-one-statement
              match: {agent: true, multi_statement: true}
              action: deny
              hint: send one statement per call
            - name: agents-never-drop
              match: {agent: true, kinds: [drop, truncate]}
              action: deny
              message: agents may not drop or truncate tables
              hint: ask a person to do it, with a reason
            - name: agents-writes-four-eyes
              match: {agent: true, writes: true}
              action: approve
              approvers: [bob]
        """
    }

    /// The MCP client's Python: scripts/test sets it (a virtual environment with the `mcp` package).
    static func python() throws -> String {
        guard let python = ProcessInfo.processInfo.environment["GATEHOUSE_TEST_PYTHON"], !python.isEmpty else {
            throw HarnessError("GATEHOUSE_TEST_PYTHON is not set: run the tests with scripts/test, which makes it")
        }
        return python
    }

    static let client = ExampleCommandsTests.root.appendingPathComponent("Tests/Fixtures/mcp_client.py").path

    static func arguments(_ gateway: Gateway, token: String, _ steps: [[String: Any]]) throws -> [String] {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: steps), as: UTF8.self)
        return [client, "\(gateway.server)/mcp", token, json]
    }

    /// Runs the steps in one MCP session; one JSON object per line of output.
    /// `from`: the loopback address the client connects from.
    static func run(
        _ gateway: Gateway, token: String, from: String? = nil, _ steps: [[String: Any]]
    ) async throws -> (
        lines: [[String: Any]], result: CommandResult
    ) {
        let result = try await Command.run(
            try python(), try arguments(gateway, token: token, steps),
            environment: from.map { ["MCP_LOCAL_ADDRESS": $0] } ?? [:], timeout: 120)
        return (lines(result.stdout), result)
    }

    static func lines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    static func table(_ cluster: TestCluster) async throws -> String {
        let table = uniqueTable("mcp")
        try await cluster.must(
            """
            CREATE TABLE \(table) (id int PRIMARY KEY, note text, price numeric, paid boolean, at timestamptz);
            INSERT INTO \(table) VALUES (1, 'one', 9.50, true, '2026-12-01T10:00:00Z'), (2, NULL, 12, false, NULL);
            GRANT ALL ON \(table) TO gh_scram;
            """)
        return table
    }

    @Test("lists tools, reads with typed columns, refuses a drop with rule and hint, refuses what hides a write")
    func readsAndRefusals() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        let table = try await Self.table(gateway.cluster)
        let alice = try await gateway.aliceToken()
        let (lines, result) = try await Self.run(
            gateway, token: alice,
            [
                ["list": true],
                ["call": "query", "arguments": ["connection": "main", "sql": "select * from \(table) order by id"]],
                ["call": "list_tables", "arguments": ["connection": "main", "schema": "public"]],
                ["call": "describe_table", "arguments": ["connection": "main", "table": table]],
                ["call": "explain", "arguments": ["connection": "main", "sql": "select * from \(table) where id = 1"]],
                ["call": "query", "arguments": ["connection": "main", "sql": "drop table \(table)"]],
                ["call": "query", "arguments": ["connection": "main", "sql": "select 1; delete from \(table)"]],
                [
                    "call": "query",
                    "arguments": ["connection": "main", "sql": "/* read */ select 1 from \(table); commit; truncate \(table)"],
                ],
                ["call": "query", "arguments": ["connection": "nowhere", "sql": "select 1"]],
                ["call": "query", "arguments": ["connection": "main", "sql": "select count(*) from \(table)"]],
            ])
        #expect(result.status == 0, "\(result)")
        #expect(lines.count == 11, "\(result)")
        guard lines.count == 11 else { return }
        #expect(lines[0]["server"] as? String == "gatehouse")
        #expect(lines[1]["tools"] as? [String] == ["describe_table", "explain", "list_tables", "query"])

        let read = try #require(lines[2]["structured"] as? [String: Any], "\(lines[2])")
        #expect(lines[2]["is_error"] as? Bool == false)
        let columns = (read["columns"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        #expect(columns == ["id", "note", "price", "paid", "at"], "\(read)")
        let types = (read["columns"] as? [[String: Any]])?.compactMap { $0["type"] as? String }
        #expect(types?.first == "integer" && types?[3] == "boolean", "\(read)")
        let rows = try #require(read["rows"] as? [[Any]])
        #expect(rows.count == 2)
        #expect(rows.first?.first as? Int == 1)
        #expect(rows.first?[1] as? String == "one")
        #expect(rows.first?[3] as? Bool == true)
        #expect(rows.last?[1] is NSNull)
        #expect(read["row_count"] as? Int == 2)

        #expect((lines[3]["text"] as? String)?.contains(table) == true, "\(lines[3])")
        #expect(
            (lines[4]["text"] as? String)?.contains("\"note\"") == true
                || (lines[4]["text"] as? String)?.contains("note") == true, "\(lines[4])")
        #expect(
            (lines[5]["text"] as? String)?.contains("Index Scan") == true
                || (lines[5]["text"] as? String)?.contains("Scan") == true, "\(lines[5])")

        let drop = lines[6]
        #expect(drop["is_error"] as? Bool == true)
        let dropText = drop["text"] as? String ?? ""
        #expect(dropText.contains("agents-never-drop"), "\(drop)")
        #expect(dropText.contains("hint: ask a person to do it, with a reason"), "\(drop)")
        for refused in [lines[7], lines[8]] {
            #expect(refused["is_error"] as? Bool == true, "\(refused)")
            #expect((refused["text"] as? String)?.contains("agents-one-statement") == true, "\(refused)")
        }
        #expect((lines[9]["text"] as? String)?.contains("no connection named 'nowhere'") == true, "\(lines[9])")
        let count = try #require(lines[10]["structured"] as? [String: Any])
        #expect((count["rows"] as? [[Any]])?.first?.first as? Int == 2, "\(count)")
        // The database says so too.
        #expect(try await gateway.cluster.must("SELECT count(*) FROM \(table)") == "2\n")

        // Each call is an audit event naming the principal and the agent; the gateway session says agent too.
        let audit = try await DatabaseRoleTests.auditRows(
            gateway, "select detail from audit_events where type = 'mcp.tool_call' order by seq", count: 9)
        #expect(audit.stdout.split(separator: "\n").count == 9, "\(audit)")
        #expect(audit.stdout.contains("\"client\":\"mcp\""), "\(audit)")
        let sessions = try await DatabaseRoleTests.auditRows(
            gateway, "select detail from audit_events where type = 'auth.success' and detail like '%agent%'", count: 1)
        #expect(!sessions.stdout.isEmpty, "\(sessions)")
    }

    @Test("without a token, with a bad one, or with another's session the agent is refused")
    func unauthenticated() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        for token in ["-", "not-a-token"] {
            let (lines, result) = try await Self.run(gateway, token: token, [["list": true]])
            #expect(result.status != 0, "\(result)")
            #expect((lines.last?["failed"] as? String)?.contains("401") == true || result.stdout.contains("401"), "\(result)")
        }
    }

    @Test("a DELETE is held until a person approves it; the agent hears why meanwhile and gets the row count")
    func heldUntilApproved() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        let table = try await Self.table(gateway.cluster)
        let alice = try await gateway.aliceToken()
        _ = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        let agent = try await Command.start(
            try Self.python(),
            try Self.arguments(
                gateway, token: alice,
                [
                    [
                        "call": "query", "progress": true,
                        "arguments": ["connection": "main", "sql": "delete from \(table) where id = 2"],
                    ]
                ]))
        let id = try await StepUpTests.challengeID(of: agent, command: "approve", timeout: 60)
        // Nothing ran yet; the approver sees an agent sent it, and what.
        #expect(try await gateway.cluster.must("SELECT count(*) FROM \(table)") == "2\n")
        let waiting = try await gateway.cli("bob", ["challenges"])
        #expect(waiting.stdout.contains("\(id)  approve  alice@main"), "\(waiting)")
        #expect(waiting.stdout.contains("(AI agent mcp)"), "\(waiting)")
        #expect(waiting.stdout.contains("delete from \(table) where id = 2"), "\(waiting)")
        let approve = try await gateway.cli("bob", ["approve", id])
        #expect(approve.status == 0, "\(approve)")
        let done = try await agent.wait(timeout: 60)
        let lines = Self.lines(done.stdout)
        let final = try #require(lines.last)
        #expect(final["is_error"] as? Bool == false, "\(done)")
        let structured = final["structured"] as? [String: Any]
        #expect(structured?["command"] as? String == "DELETE", "\(done)")
        #expect(structured?["row_count"] as? Int == 1, "\(done)")
        #expect((final["progress"] as? [String])?.first?.contains("held for approval by rule agents-writes-four-eyes") == true)
        #expect(try await gateway.cluster.must("SELECT string_agg(id::text, ',') FROM \(table)") == "1\n")
    }

    @Test("a held call nobody answers ends with a clear error when its time runs out, and nothing ran")
    func heldTimesOut() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy(timeout: "3s"))
        let table = try await Self.table(gateway.cluster)
        let alice = try await gateway.aliceToken()
        let (lines, result) = try await Self.run(
            gateway, token: alice,
            [["call": "query", "arguments": ["connection": "main", "sql": "update \(table) set note = 'x'"]]])
        #expect(result.status == 0, "\(result)")
        let final = try #require(lines.last)
        #expect(final["is_error"] as? Bool == true, "\(result)")
        #expect(
            (final["text"] as? String)?.contains("expired") == true || (final["text"] as? String)?.contains("time") == true,
            "\(result)")
        #expect(try await gateway.cluster.must("SELECT count(*) FROM \(table) WHERE note = 'x'") == "0\n")
    }

    @Test("`gatehouse mcp` over stdio: the same tools, a refusal with its rule, and a held call released by a person")
    func stdioBridge() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        let table = try await Self.table(gateway.cluster)
        let alice = try await gateway.aliceToken()
        _ = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        let url = "stdio:\(gateway.cluster.gatehouse):\(gateway.server)"
        let agent = try await Command.start(
            try Self.python(),
            [
                Self.client, url, alice,
                String(
                    decoding: try JSONSerialization.data(withJSONObject: [
                        ["list": true],
                        ["call": "query", "arguments": ["connection": "main", "sql": "select count(*) from \(table)"]],
                        ["call": "query", "arguments": ["connection": "main", "sql": "truncate \(table)"]],
                        [
                            "call": "query", "progress": true,
                            "arguments": ["connection": "main", "sql": "delete from \(table) where id = 1"],
                        ],
                    ]), as: UTF8.self),
            ])
        let id = try await StepUpTests.challengeID(of: agent, command: "approve", timeout: 60)
        let approve = try await gateway.cli("bob", ["approve", id])
        #expect(approve.status == 0, "\(approve)")
        let done = try await agent.wait(timeout: 60)
        #expect(done.status == 0, "\(done)")
        let lines = Self.lines(done.stdout).filter { $0["progress"] == nil || $0["is_error"] != nil }
        #expect(lines.count == 5, "\(done)")
        guard lines.count == 5 else { return }
        #expect(lines[1]["tools"] as? [String] == ["describe_table", "explain", "list_tables", "query"])
        let count = lines[2]["structured"] as? [String: Any]
        #expect((count?["rows"] as? [[Any]])?.first?.first as? Int == 2, "\(done)")
        #expect((lines[3]["text"] as? String)?.contains("agents-never-drop") == true, "\(done)")
        #expect((lines[4]["structured"] as? [String: Any])?["row_count"] as? Int == 1, "\(done)")
        #expect(try await gateway.cluster.must("SELECT string_agg(id::text, ',') FROM \(table)") == "2\n")
    }

    @Test("rules on the source address see the agent's own address, not the gateway's loopback")
    func agentSource() async throws {
        let gateway = try await Gateway.start(
            extraConfig: """
                policy:
                  rules:
                    - name: agents-from-the-jump-host-only
                      match: {agent: true, not_source: ["127.0.0.1/32"], writes: false}
                      action: deny
                      hint: run the agent on the jump host
                """)
        let alice = try await gateway.aliceToken()
        let query: [[String: Any]] = [["call": "query", "arguments": ["connection": "main", "sql": "select 1"]]]
        let near = try await Self.run(gateway, token: alice, from: "127.0.0.1", query)
        #expect(near.lines.last?["is_error"] as? Bool == false, "\(near.result)")
        let far = try await Self.run(gateway, token: alice, from: "127.0.0.2", query)
        #expect(far.lines.last?["is_error"] as? Bool == true, "\(far.result)")
        #expect((far.lines.last?["text"] as? String)?.contains("agents-from-the-jump-host-only") == true, "\(far.result)")
        let starts = try await DatabaseRoleTests.auditRows(
            gateway, "select source from audit_events where type = 'session.start' order by seq", count: 2)
        #expect(starts.stdout.contains("127.0.0.2"), "\(starts)")
    }

    @Test("a connection where every statement of the principal would be denied is not offered")
    func hiddenConnections() async throws {
        let gateway = try await Gateway.start(
            extraConfig: """
                policy:
                  rules:
                    - {name: developers-not-on-md5, action: deny, match: {groups: [developer], connections: [md5]}}
                    - {name: no-writes-on-tls, action: deny, match: {connections: [tls], writes: true}}
                """)
        let alice = try await gateway.aliceToken()
        let (lines, result) = try await Self.run(
            gateway, token: alice,
            [["list": true], ["call": "query", "arguments": ["connection": "md5", "sql": "select 1"]]])
        #expect(result.status == 0, "\(result)")
        #expect(lines.count == 3, "\(result)")
        guard lines.count == 3 else { return }
        #expect(lines[1]["connections"] as? [String] == ["down", "main", "tls", "trusted"], "\(result)")
        #expect((lines[2]["text"] as? String)?.contains("no connection named 'md5'") == true, "\(result)")
    }

    @Test("each table is a resource with its columns; a made-up resource is refused")
    func schemaResources() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        let table = try await Self.table(gateway.cluster)
        let alice = try await gateway.aliceToken()
        let uri = "gatehouse://main/public.\(table)"
        let (lines, result) = try await Self.run(
            gateway, token: alice,
            [
                ["resources": true], ["read": uri], ["read": "gatehouse://main/public.nothing_here"],
                ["read": "file:///etc/passwd"],
            ])
        #expect(result.status == 0, "\(result)")
        #expect(lines.count == 5, "\(result)")
        guard lines.count == 5 else { return }
        #expect((lines[1]["resources"] as? [String])?.contains(uri) == true, "\(result)")
        let contents = (lines[2]["contents"] as? [String])?.first ?? ""
        #expect(contents.contains("\"note\"") && contents.contains("numeric"), "\(result)")
        #expect((lines[3]["read_error"] as? String)?.contains("no table or view named") == true, "\(result)")
        #expect((lines[4]["read_error"] as? String)?.contains("no such resource") == true, "\(result)")
    }

    @Test("results are capped in rows and bytes, a huge value is left out unread, and the agent is told how")
    func caps() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.policy())
        let alice = try await gateway.aliceToken()
        let (lines, result) = try await Self.run(
            gateway, token: alice,
            [
                ["call": "query", "arguments": ["connection": "main", "sql": "select n from generate_series(1, 1000) n"]],
                ["call": "query", "arguments": ["connection": "main", "sql": "select repeat('x', 300000) as big"]],
            ])
        #expect(lines.count == 3, "\(result)")
        guard lines.count == 3 else { return }
        let many = try #require(lines[1]["structured"] as? [String: Any])
        #expect((many["rows"] as? [[Any]])?.count == 200)
        #expect(many["row_count"] as? Int == 1000)
        #expect(many["truncated"] as? String == "only the first 200 rows are shown of 1000", "\(many)")
        let big = try #require(lines[2]["structured"] as? [String: Any])
        #expect((big["rows"] as? [[Any]])?.isEmpty == true)
        #expect((big["truncated"] as? String)?.contains("row 1 holds 300000 bytes, more than the 262144") == true, "\(big)")
    }

    @Test(
        "another MCP server's tools are relayed under a prefix: a denied tool is not listed and refused, a rule on an argument holds, a changed description is reported"
    )
    func relay() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let directory = "\(cluster.scratch)/relay-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let (rug, deleted) = ("\(directory)/rug", "\(directory)/deleted")
        let fixture = ExampleCommandsTests.root.appendingPathComponent("Tests/Fixtures/mcp_upstream.py").path
        let gateway = try await Gateway.start(
            extraConfig: """
                mcp:
                  upstreams:
                    - name: files
                      command: ["\(try Self.python())", "\(fixture)", "\(rug)", "\(deleted)"]
                  tool_rules:
                    - {name: never-delete, action: deny, tools: ["files_delete_*"], hint: ask a person to delete it}
                    - name: no-secrets
                      action: deny
                      tools: [files_read_file]
                      arguments: {path: ["/etc/*", "*.pem"]}
                      message: that file holds secrets
                """)
        let alice = try await gateway.aliceToken()
        let call: (String, [String: Any]) -> [String: Any] = { ["call": $0, "arguments": $1] }
        let (lines, result) = try await Self.run(
            gateway, token: alice,
            [
                ["list": true], call("files_echo", ["text": "hello"]), call("files_read_file", ["path": "/etc/shadow"]),
                call("files_read_file", ["path": "/srv/notes.txt"]), call("files_delete_file", ["path": "/srv/notes.txt"]),
            ])
        #expect(result.status == 0, "\(result)")
        #expect(lines.count == 6, "\(result)")
        guard lines.count == 6 else { return }
        let tools = lines[1]["tools"] as? [String] ?? []
        #expect(tools.contains("files_echo") && tools.contains("files_read_file"), "\(tools)")
        #expect(!tools.contains("files_delete_file"), "\(tools)")
        #expect(lines[2]["text"] as? String == "hello", "\(result)")
        #expect((lines[3]["text"] as? String)?.contains("rule \"no-secrets\": that file holds secrets") == true, "\(result)")
        #expect(lines[4]["text"] as? String == "contents of /srv/notes.txt", "\(result)")
        #expect((lines[5]["text"] as? String)?.contains("never-delete") == true, "\(result)")
        #expect(!FileManager.default.fileExists(atPath: deleted), "the upstream's delete never ran")

        // The tool's description changes after it was first seen: reported, no longer listed, refused.
        try "now".write(toFile: rug, atomically: true, encoding: .utf8)
        let again = try await Self.run(gateway, token: alice, [["list": true], call("files_echo", ["text": "hi"])])
        #expect(again.result.status == 0, "\(again.result)")
        #expect((again.lines.dropFirst().first?["tools"] as? [String])?.contains("files_echo") == false, "\(again.result)")
        #expect(
            (again.lines.last?["text"] as? String)?.contains("changed its description or input schema since it was approved")
                == true, "\(again.result)")
        // An administrator accepts it as it now is by removing its entry from the approved fingerprints.
        let approved = "\(gateway.directory)/data/mcp-tools.json"
        var fingerprints =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: approved))) as? [String: String] ?? [:]
        #expect(fingerprints["files_echo"] != nil, "\(fingerprints)")
        fingerprints["files_echo"] = nil
        try JSONSerialization.data(withJSONObject: fingerprints).write(to: URL(fileURLWithPath: approved))
        let accepted = try await Self.run(gateway, token: alice, [call("files_echo", ["text": "back"])])
        #expect(accepted.lines.last?["text"] as? String == "back", "\(accepted.result)")
        let changed = try await DatabaseRoleTests.auditRows(
            gateway, "select detail from audit_events where type = 'mcp.tool_changed'", count: 1)
        #expect(changed.stdout.contains("files_echo") && changed.stdout.contains("id_rsa"), "\(changed)")
        let calls = try await DatabaseRoleTests.auditRows(
            gateway, "select actor || ' ' || detail from audit_events where type = 'mcp.tool_call' order by seq", count: 4)
        #expect(calls.stdout.contains("alice "), "\(calls)")
        #expect(calls.stdout.contains("\"decision\":\"deny\"") && calls.stdout.contains("\"rule\":\"no-secrets\""), "\(calls)")
    }

    @Test("a relayed tool call an approve rule holds waits for a person, then runs; a denied one never reaches the server")
    func relayHeldForApproval() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let directory = "\(cluster.scratch)/relay-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let fixture = ExampleCommandsTests.root.appendingPathComponent("Tests/Fixtures/mcp_upstream.py").path
        let gateway = try await Gateway.start(
            extraConfig: """
                step_up: {timeout: 60s}
                mcp:
                  upstreams:
                    - name: files
                      command: ["\(try Self.python())", "\(fixture)", "\(directory)/rug", "\(directory)/deleted"]
                  tool_rules:
                    - name: deletes-four-eyes
                      action: approve
                      tools: [files_delete_file]
                      approvers: [bob]
                    - {name: not-etc, action: deny, tools: [files_delete_file], arguments: {path: ["/etc/*"]}}
                """)
        let alice = try await gateway.aliceToken()
        _ = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        let agent = try await Command.start(
            try Self.python(),
            try Self.arguments(
                gateway, token: alice,
                [
                    ["call": "files_delete_file", "arguments": ["path": "/etc/hosts"]],
                    ["call": "files_delete_file", "progress": true, "arguments": ["path": "/srv/old.log"]],
                ]))
        let id = try await StepUpTests.challengeID(of: agent, command: "approve", timeout: 60)
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/deleted"), "nothing ran before the approval")
        let waiting = try await gateway.cli("bob", ["challenges"])
        #expect(waiting.stdout.contains("MCP tool files_delete_file"), "\(waiting)")
        #expect(waiting.stdout.contains("(AI agent mcp)"), "\(waiting)")
        let approve = try await gateway.cli("bob", ["approve", id])
        #expect(approve.status == 0, "\(approve)")
        let done = try await agent.wait(timeout: 60)
        let lines = Self.lines(done.stdout).filter { $0["is_error"] != nil }
        #expect(lines.count == 2, "\(done)")
        guard lines.count == 2 else { return }
        #expect((lines[0]["text"] as? String)?.contains("not-etc") == true, "\(done)")
        #expect(lines[1]["text"] as? String == "deleted", "\(done)")
        let log = try String(contentsOfFile: "\(directory)/deleted", encoding: .utf8)
        #expect(log == "/srv/old.log\n", "only the approved call ran: \(log)")
    }
}
