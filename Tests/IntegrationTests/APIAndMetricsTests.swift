import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

/// The CLI's read commands through the API, and `/metrics` after real traffic.
@Suite("API commands and metrics against a live gateway", .timeLimit(.minutes(5)))
struct APIAndMetricsTests {
    static let config = """
        policy:
          rules:
            - name: developers-read-only
              match: {groups: [developer], writes: true, elevated: false}
              action: deny
        """

    @Test("policy test asks the gateway; grants, connections, users and filtered audit tail answer; /metrics counts decisions")
    func commandsAndMetrics() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.config)
        let token = try await gateway.aliceToken()
        let read = try await gateway.psql(password: token, ["-c", "select 1"])
        #expect(read.status == 0, "\(read)")
        let write = try await gateway.psql(password: token, ["-c", "create table nope (id int)"])
        #expect(write.status != 0)

        let dryRun = try await gateway.cli(
            "alice", ["policy", "test", "--connection", "main", "--sql", "delete from orders where id = 1"])
        #expect(dryRun.status == 3, "\(dryRun)")
        #expect(dryRun.stdout.contains("developers-read-only"), "\(dryRun)")
        let notYours = try await gateway.cli(
            "alice", ["policy", "test", "--connection", "main", "--user", "bob", "--sql", "select 1"])
        #expect(notYours.status == 1)
        #expect(notYours.stderr.contains("only admins and auditors test statements as another user"), "\(notYours)")

        let connections = try await gateway.cli("alice", ["connections"])
        #expect(connections.stdout.contains("main: database app on 127.0.0.1"), "\(connections)")
        #expect(!connections.stdout.contains("password"))
        let grants = try await gateway.cli("alice", ["grants"])
        #expect(grants.stdout.contains("No live grants."), "\(grants)")
        let users = try await gateway.cli("alice", ["users", "list"])
        #expect(users.status != 0)
        #expect(users.stderr.contains("forbidden"), "\(users)")

        try await gateway.loginAdmin()
        let list = try await gateway.cli("admin", ["users", "list"])
        #expect(list.status == 0, "\(list)")
        #expect(list.stdout.contains("alice") && list.stdout.contains("developer"), "\(list)")
        let denied = try await gateway.cli("admin", ["audit", "tail", "--type", "statement.denied"])
        #expect(denied.stdout.contains("statement.denied"), "\(denied)")
        #expect(!denied.stdout.contains("statement.allowed"), "\(denied)")
        #expect(denied.stdout.contains("create table nope"), "\(denied)")

        // /metrics: the admin's login token is a bearer token a scraper could hold.
        let credentials = try String(contentsOfFile: "\(gateway.directory)/home-admin/credentials.json", encoding: .utf8)
        let object = try JSONSerialization.jsonObject(with: Data(credentials.utf8)) as? [String: Any]
        let adminToken = try #require(object?["token"] as? String)
        var request = HTTPClientRequest(url: "\(gateway.server)/metrics")
        request.headers.add(name: "Authorization", value: "Bearer \(adminToken)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        #expect(response.status.code == 200)
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        func value(_ series: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }
        #expect((value(#"gatehouse_statements_total{decision="allow"}"#) ?? 0) >= 1, "\(text)")
        #expect((value(#"gatehouse_statements_total{decision="deny"}"#) ?? 0) >= 1, "\(text)")
        #expect((value("gatehouse_sessions_opened_total") ?? 0) >= 2, "\(text)")
        #expect(value("gatehouse_sessions") == 0, "\(text)")
        #expect((value("gatehouse_decision_duration_seconds_count") ?? 0) >= 2, "\(text)")
        #expect(text.contains(#"gatehouse_decision_duration_seconds_bucket{le="0.00001"}"#), "\(text)")
        #expect((value("gatehouse_audit_events_total") ?? 0) >= 5, "\(text)")
        #expect((value("gatehouse_audit_write_duration_seconds_count") ?? 0) >= 1, "\(text)")

        let anonymous = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: "\(gateway.server)/metrics"), timeout: .seconds(30))
        #expect(anonymous.status.code == 401)
    }
}
