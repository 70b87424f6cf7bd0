import Foundation
import Testing

@Suite("Limits before trust and per person", .timeLimit(.minutes(3)))
struct LimitTests {
    @Test("the session over a user's limit is refused with a clear FATAL, and a place frees when a session ends")
    func sessionsPerUser() async throws {
        let gateway = try await Gateway.start(extraConfig: "limits: {max_sessions_per_user: 2}\n")
        let token = try await gateway.aliceToken()
        let first = try RawClient(
            port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "main")], password: token)
        var second: RawClient? = try RawClient(
            port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "trusted")], password: token)
        let third = try await gateway.psql(password: token, ["-c", "select 1"])
        #expect(third.status != 0)
        #expect(third.stderr.contains("FATAL:  too many sessions: alice already has 2 sessions open"), "\(third)")
        #expect(third.stderr.contains("limits.max_sessions_per_user"), "\(third)")
        let bob = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        #expect(
            try await gateway.psql(user: "bob", password: bob, ["-c", "select 1"]).status == 0, "other users are not held back")
        _ = try second?.query("SELECT 1")
        second = nil
        var again = try await gateway.psql(password: token, ["-c", "select 'again'"])
        for _ in 0..<50 where again.status != 0 {
            try await Task.sleep(for: .milliseconds(100))
            again = try await gateway.psql(password: token, ["-c", "select 'again'"])
        }
        #expect(again.stdout == "again\n", "\(again)")
        #expect(try first.query("SELECT 'first'").rows == [["first"]])
    }

    @Test("connections waiting to authenticate are bounded; the next one is refused at once")
    func unauthenticated() async throws {
        let gateway = try await Gateway.start(extraConfig: "limits: {max_unauthenticated_connections: 3}\n")
        var idle: [Int32] = []
        defer { idle.forEach { close($0) } }
        for _ in 0..<3 { idle.append(try connectLoopback(port: gateway.postgresPort, receiveTimeout: 10)) }
        try await Task.sleep(for: .milliseconds(300))
        let refused = try await gateway.psql(password: "x", sslmode: "disable", ["-c", "select 1"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("too many connections are waiting to authenticate"), "\(refused)")
        close(idle.removeLast())
        let token = try await gateway.aliceToken()
        var result = try await gateway.psql(password: token, ["-c", "select 'in'"])
        for _ in 0..<50 where result.status != 0 {
            try await Task.sleep(for: .milliseconds(100))
            result = try await gateway.psql(password: token, ["-c", "select 'in'"])
        }
        #expect(result.stdout == "in\n", "\(result)")
    }

    @Test("one address cannot hold every place: the next from it is refused, another address still signs in")
    func unauthenticatedPerSource() async throws {
        let gateway = try await Gateway.start(
            extraConfig: "limits: {max_unauthenticated_connections: 10, max_unauthenticated_per_source: 2}\n")
        var idle: [Int32] = []
        defer { idle.forEach { close($0) } }
        for _ in 0..<2 { idle.append(try connectLoopback(port: gateway.postgresPort, receiveTimeout: 10)) }
        try await Task.sleep(for: .milliseconds(300))
        let refused = try await gateway.psql(password: "x", sslmode: "disable", ["-c", "select 1"])
        #expect(refused.status != 0)
        #expect(
            refused.stderr.contains("too many connections from this address are waiting to authenticate"), "\(refused)")
        #expect(refused.stderr.contains("limits.max_unauthenticated_per_source: 2"), "\(refused)")
        // From another address the same person signs in and works while those two still wait.
        let token = try await gateway.aliceToken()
        let other = try RawClient(
            port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "main")], password: token,
            from: "127.0.0.2")
        #expect(try other.query("SELECT 'from elsewhere'").rows == [["from elsewhere"]])
        // The database saw the statement: it ran, through the gateway, for alice.
        let audit = try await Command.run(
            "/usr/bin/sqlite3",
            [gateway.storePath, "select source from audit_events where type = 'session.start' and actor = 'alice'"])
        #expect(audit.stdout == "127.0.0.2\n", "\(audit)")
    }

    @Test("a password message over 16 KiB is refused before any token is read")
    func largePassword() async throws {
        let gateway = try await Gateway.start()
        do {
            _ = try RawClient(
                port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "main")],
                password: String(repeating: "x", count: 20_000))
            Issue.record("a 20 kB password was read")
        } catch let refused as RawClient.StartupRefused {
            #expect(refused.fields["C"] == "08P01", "\(refused)")
            #expect(refused.fields["M"]?.contains("exceeds the limit of 16384 bytes") == true, "\(refused)")
        }
    }
}
