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
        // The table's columns line up with its header: each cell starts where its column's title does.
        let lines = try await gateway.cli("admin", ["sessions"]).stdout.split(separator: "\n").map(String.init)
        let header = try #require(lines.first)
        #expect(lines.count == 2, "\(lines)")
        for title in ["USER", "CONNECTION", "SOURCE", "APPLICATION", "STARTED"] {
            let offset = try #require(header.range(of: title)).lowerBound.utf16Offset(in: header)
            for row in lines.dropFirst().map(Array.init) {
                #expect(
                    row.count > offset && row[offset - 2] == " " && row[offset - 1] == " " && row[offset] != " ",
                    "\(title): \(lines)")
            }
        }
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
            let sleeper = try await gateway.startPsql(password: token, ["-c", "select pg_sleep(60)"])
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

extension TerminationTests {
    @Test("revoking a token ends the sessions it signed in at once, and nothing sent after runs; revoking a user's ends all")
    func revokedTokenEndsItsSessions() async throws {
        let gateway = try await Gateway.start()
        let table = uniqueTable("revoked")
        try await gateway.cluster.must("CREATE TABLE \(table) (n int); GRANT ALL ON \(table) TO gh_scram;")
        let (first, second) = (try await gateway.aliceToken(), try await gateway.aliceToken())
        func session(_ token: String, _ name: String) throws -> RawClient {
            try RawClient(
                port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "main"), ("application_name", name)],
                password: token)
        }
        let one = try session(first, "revoked-one-\(table)")
        let two = try session(second, "revoked-two-\(table)")
        #expect(try one.query("SELECT 1").error == nil)
        #expect(try two.query("SELECT 1").error == nil)

        let revoke = try await gateway.cli("alice", ["tokens", "revoke", "--token", first])
        #expect(revoke.status == 0, "\(revoke)")
        let fatal = try one.readMessage()
        #expect(fatal.fields["S"] == "FATAL", "\(fatal.fields)")
        #expect(fatal.fields["M"]?.contains("was revoked by alice") == true, "\(fatal.fields)")
        _ = try? one.send(query: "INSERT INTO \(table) VALUES (1)")
        #expect(try two.query("INSERT INTO \(table) VALUES (2)").error == nil, "another token's session goes on")

        let all = try await gateway.cli("alice", ["tokens", "revoke", "--user", "alice"])
        #expect(all.status == 0, "\(all)")
        let secondFatal = try two.readMessage()
        #expect(secondFatal.fields["M"]?.contains("the tokens of alice were revoked") == true, "\(secondFatal.fields)")
        _ = try? two.send(query: "INSERT INTO \(table) VALUES (3)")

        try await Task.sleep(for: .seconds(1))
        #expect(try await gateway.cluster.must("SELECT coalesce(string_agg(n::text, ','), '') FROM \(table)") == "2\n")
        #expect(
            try await gateway.cluster.must(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'revoked-%-\(table)'") == "0\n")
        try await gateway.loginAdmin()
        let events = try await gateway.cli("admin", ["audit", "tail", "--type", "session.terminated", "--json"])
        #expect(events.stdout.components(separatedBy: "\"session.terminated\"").count - 1 == 2, "\(events)")
    }
}

/// Shares a value between the test's threads, which use it one way each.
final class SendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

extension TerminationTests {
    @Test("SIGTERM ends every live session with a clear FATAL, and every session's end is in the audit log")
    func shutdownDrainsSessions() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken()
        var sleepers: [RunningCommand] = []
        for _ in 0..<3 { sleepers.append(try await gateway.startPsql(password: token, ["-c", "select pg_sleep(60)"])) }
        try await waitForSession(gateway, count: 3)
        let stopped = try await gateway.stop()
        #expect(stopped.status == 0, "\(stopped)")
        for sleeper in sleepers {
            let ended = try await sleeper.wait(timeout: 30)
            #expect(ended.stderr.contains("terminating connection: the gateway is shutting down"), "\(ended)")
        }
        // Read straight from the store the stopped gateway left: committed, not only journaled.
        let counts = try await Command.run(
            "/usr/bin/sqlite3",
            [
                gateway.storePath,
                "select type, count(*) from audit_events where actor = 'alice' and type in ('session.start', 'session.end', "
                    + "'session.terminated') group by type order by type",
            ])
        #expect(counts.stdout == "session.end|3\nsession.start|3\n", "\(counts)")
        let reasons = try await Command.run(
            "/usr/bin/sqlite3",
            [gateway.storePath, "select count(*) from audit_events where type = 'session.end' and detail like '%shutting down%'"])
        #expect(reasons.stdout == "3\n", "\(reasons)")
        let last = try await Command.run(
            "/usr/bin/sqlite3", [gateway.storePath, "select type from audit_events order by seq desc limit 1"])
        #expect(last.stdout == "gateway.stop\n", "the store closes last: \(last)")
    }
}
