import Foundation
import Testing

@Suite("Terminated means nothing more runs", .timeLimit(.minutes(5)))
struct TerminationTests {
    @Test("a pipelined INSERT stream killed mid-way commits no row after the kill")
    func pipelinedKill() async throws {
        let gateway = try await Gateway.start()
        let table = uniqueTable("stream")
        try await gateway.cluster.must(
            "CREATE TABLE \(table) (n int, at timestamptz DEFAULT clock_timestamp()); GRANT ALL ON \(table) TO gh_scram;")
        let token = try await gateway.aliceToken()
        let application = "stream-\(table)"
        let raw = try RawClient(
            port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "main"), ("application_name", application)],
            password: token)
        let box = SendableBox(raw)
        // One thread writes INSERTs as fast as the socket takes them, another drains the answers.
        let writer = Thread {
            for n in 0..<1_000_000 {
                guard (try? box.value.send(query: "INSERT INTO \(table) (n) VALUES (\(n))")) != nil else { return }
            }
        }
        let reader = Thread {
            while (try? box.value.readMessage()) != nil {}
        }
        writer.start()
        reader.start()
        var rows = "0\n"
        for _ in 0..<100 where rows == "0\n" {
            try await Task.sleep(for: .milliseconds(100))
            rows = try await gateway.cluster.must("SELECT count(*) FROM \(table)")
        }
        #expect(rows != "0\n", "the stream never reached the server")

        try await waitForSession(gateway, count: 1)
        let list = try await gateway.cli("admin", ["sessions", "--json"])
        let session = try #require(try JSONDecoder().decode(SessionList.self, from: Data(list.stdout.utf8)).sessions.first)
        let kill = try await gateway.cli("admin", ["sessions", "kill", session.id, "--reason", "stream test"])
        #expect(kill.status == 0, "\(kill)")
        let killed = Date()
        let listed = try await gateway.cli("admin", ["sessions"])
        #expect(listed.stdout.contains("No live sessions."), "the session leaves the registry at once: \(listed)")

        try await Task.sleep(for: .seconds(2))
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let late = try await gateway.cluster.must(
            "SELECT count(*) FROM \(table) WHERE at > '\(formatter.string(from: killed))'::timestamptz")
        #expect(late == "0\n", "rows committed after the kill")
        let settled = try await gateway.cluster.must("SELECT count(*) FROM \(table)")
        try await Task.sleep(for: .seconds(1))
        #expect(try await gateway.cluster.must("SELECT count(*) FROM \(table)") == settled)
        #expect(
            try await gateway.cluster.must(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = '\(application)'")
                == "0\n", "the backend is gone")
    }
}

extension TerminationTests {
    @Test("kill --revoke-tokens keeps the person out; a plain kill says they may come back")
    func revokeTokens() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken()
        for revoke in [false, true] {
            let sleeper = try gateway.startPsql(password: token, ["-c", "select pg_sleep(60)"])
            try await waitForSession(gateway, count: 1)
            let list = try await gateway.cli("admin", ["sessions", "--json"])
            let session = try #require(try JSONDecoder().decode(SessionList.self, from: Data(list.stdout.utf8)).sessions.first)
            let kill = try await gateway.cli(
                "admin", ["sessions", "kill", session.id, "--reason", "incident 42"] + (revoke ? ["--revoke-tokens"] : []))
            #expect(kill.status == 0, "\(kill)")
            let ended = try await sleeper.wait(timeout: 30)
            #expect(ended.stderr.contains("incident 42"), "\(ended)")
            #expect(
                ended.stderr.contains(revoke ? "your tokens were revoked" : "you may reconnect"), "\(ended)")
            let back = try await gateway.psql(password: token, ["-c", "select 'back'"])
            if revoke {
                #expect(back.status != 0)
                #expect(back.stderr.contains("the token was revoked"), "\(back)")
            } else {
                #expect(back.stdout == "back\n", "\(back)")
            }
        }
        // Tokens carry their issue time in whole seconds: one signed in within the second of the
        // revocation is revoked with it.
        try await Task.sleep(for: .milliseconds(1200))
        let fresh = try await gateway.aliceToken()
        #expect(try await gateway.psql(password: fresh, ["-c", "select 'signed in again'"]).stdout == "signed in again\n")
    }
}

/// Shares a value between the test's threads, which use it one way each.
final class SendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
