import Foundation
import Testing

@Suite("Statements nested past every stack", .timeLimit(.minutes(5)))
struct DeepStatementTests {
    @Test("deep statements through psql and the policy test API are refused; the gateway and another session go on")
    func deepStatements() async throws {
        let gateway = try await Gateway.start(extraConfig: try starterPolicy())
        let pid = try #require(gateway.process?.pid)
        let token = try await gateway.aliceToken()
        let bystander = try RawClient(
            port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "main")], password: token)
        #expect(try bystander.query("SELECT 'before'").rows == [["before"]])

        let texts = [
            "SELECT " + String(repeating: "1+", count: 100_000) + "1",
            "SELECT " + String(repeating: "abs(", count: 20_000) + "1" + String(repeating: ")", count: 20_000),
            "SELECT " + String(repeating: "1::int::", count: 60_000) + "1",
        ]
        for text in texts {
            let result = try await gateway.psql(password: token, [], stdin: text + ";\n")
            #expect(result.status != 0)
            #expect(result.stderr.contains("ERROR:"), "\(result.stderr.prefix(300))")
            #expect(!result.stderr.contains("server closed the connection"), "\(result.stderr.prefix(300))")
        }
        // PostgreSQL's own SQLSTATE for nesting past its stack, and the session goes on.
        let deep = try RawClient(
            port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "main")], password: token)
        let refused = try deep.query(texts[0])
        #expect(refused.error?["C"] == "54001", "\(String(describing: refused.error))")
        #expect(try deep.query("SELECT 'next'").rows == [["next"]])

        let policyText = "SELECT " + String(repeating: "1+", count: 40_000) + "1"
        let dryRun = try await gateway.cli("alice", ["policy", "test", "--connection", "main", "--sql", policyText])
        #expect(dryRun.stdout.contains("deeply") || dryRun.stdout.contains("cannot be parsed"), "\(dryRun.stdout.prefix(400))")

        #expect(try bystander.query("SELECT 'after'").rows == [["after"]])
        #expect(gateway.process?.isRunning == true)
        #expect(gateway.process?.pid == pid)
    }
}
