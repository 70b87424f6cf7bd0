import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real `gatehouse` binary, real `psql`/`pgbench`, a real PostgreSQL.
@Suite("Proxy: psql through the gateway", .timeLimit(.minutes(5)))
struct ProxyTests {
    @Test("a token from `gatehouse token` opens a TLS session; queries and COPY in and out work")
    func queriesAndCopy() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken()
        let table = uniqueTable("copy")

        let info = try await gateway.psql(password: token, ["-c", "\\conninfo", "-c", "select current_user"])
        #expect(info.status == 0, "\(info)")
        #expect(info.stdout.contains("SSL connection"), "the client side must be TLS with sslmode=require: \(info)")
        // The session runs as the brokered database role; alice never saw its password.
        #expect(info.stdout.contains("\ngh_scram\n"), "\(info)")

        let rows = (1...500).map { "\($0)\trow \($0)" }.joined(separator: "\n") + "\n\\.\n"
        let copyIn = try await gateway.psql(
            password: token,
            [
                "-c", "create table \(table) (id int primary key, label text)",
                "-c", "\\copy \(table) from stdin",
            ], stdin: rows)
        #expect(copyIn.status == 0, "\(copyIn)")
        #expect(copyIn.stdout.contains("COPY 500"), "\(copyIn)")

        let query = try await gateway.psql(
            password: token, ["-c", "select count(*), sum(id), max(label) from \(table) where label like 'row %'"])
        #expect(query.stdout == "500|125250|row 99\n", "\(query)")

        let copyOut = try await gateway.psql(password: token, ["-c", "\\copy (select * from \(table) order by id) to stdout"])
        #expect(copyOut.status == 0, "\(copyOut)")
        let lines = copyOut.stdout.split(separator: "\n")
        #expect(lines.count == 500)
        #expect(lines.first == "1\trow 1")
        #expect(lines.last == "500\trow 500")

        // A statement error leaves the session usable: both results come back in one session.
        let errorThenQuery = try await Command.run(
            "\(gateway.cluster.binDirectory)/psql",
            [gateway.conninfo(connection: "main", user: "alice"), "-X", "-At", "-c", "select 1/0", "-c", "select 'still here'"],
            environment: ["PGPASSWORD": token])
        #expect(errorThenQuery.stderr.contains("division by zero"), "\(errorThenQuery)")
        #expect(errorThenQuery.stdout.contains("still here"), "\(errorThenQuery)")

        _ = try await gateway.psql(password: token, ["-c", "drop table \(table)"])
    }

    @Test("pgbench with the extended protocol (-M prepared) runs through the gateway without a failed transaction")
    func preparedStatements() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken()
        let pgbench = "\(gateway.cluster.binDirectory)/pgbench"
        let environment = ["PGPASSWORD": token, "PGSSLMODE": "require"]
        let common = ["-h", "127.0.0.1", "-p", "\(gateway.postgresPort)", "-U", "alice"]

        let initialise = try await Command.run(pgbench, ["-i", "-s", "1", "-q"] + common + ["main"], environment: environment)
        #expect(initialise.status == 0, "\(initialise)")

        let run = try await Command.run(
            pgbench, ["-M", "prepared", "-c", "4", "-t", "250"] + common + ["main"], environment: environment, timeout: 240)
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.contains("number of transactions actually processed: 1000/1000"), "\(run)")
        #expect(run.stdout.contains("number of failed transactions: 0"), "\(run)")
    }

    @Test("Ctrl-C semantics: a CancelRequest through the gateway stops a long pg_sleep")
    func cancelRequest() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken()
        let sleeper = try await gateway.startPsql(password: token, ["-c", "select pg_sleep(60)"])
        try await waitForSession(gateway, count: 1)
        // Give the statement time to reach the server before cancelling it.
        try await Task.sleep(for: .milliseconds(300))
        sleeper.signal(SIGINT)
        let result = try await sleeper.wait(timeout: 30)
        #expect(result.status != 0)
        #expect(result.stderr.contains("canceling statement due to user request"), "\(result)")

        try await gateway.loginAdmin()
        let audit = try await gateway.cli("admin", ["audit", "tail", "-n", "50"])
        #expect(audit.stdout.contains("session.cancel"), "\(audit)")
    }

    @Test("an administrator terminates a live session; its client gets FATAL with the reason")
    func terminateSession() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken()
        let sleeper = try await gateway.startPsql(password: token, ["-c", "select pg_sleep(60)"])
        try await waitForSession(gateway, count: 1)
        try await gateway.loginAdmin()
        let list = try await gateway.cli("admin", ["sessions", "--json"])
        let sessions = try JSONDecoder().decode(SessionList.self, from: Data(list.stdout.utf8)).sessions
        #expect(sessions.count == 1)
        let session = try #require(sessions.first)
        #expect(session.user == "alice")
        #expect(session.connection == "main")
        #expect(session.application_name == "integration-test")

        let kill = try await gateway.cli("admin", ["sessions", "kill", session.id, "--reason", "maintenance window"])
        #expect(kill.status == 0, "\(kill)")
        let result = try await sleeper.wait(timeout: 30)
        #expect(result.status != 0)
        #expect(result.stderr.contains("terminating connection: maintenance window"), "\(result)")

        let after = try await gateway.cli("admin", ["sessions"])
        #expect(after.stdout.contains("No live sessions."), "\(after)")
        let unknown = try await gateway.cli("admin", ["sessions", "kill", "0000000000000000"])
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("no live session"), "\(unknown)")
    }

    @Test("MD5, trust and verify-full TLS upstreams each authenticate with brokered credentials")
    func upstreamAuthenticationMethods() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken()
        let md5 = try await gateway.psql(connection: "md5", password: token, ["-c", "select current_user"])
        #expect(md5.stdout == "gh_md5\n", "\(md5)")
        let trusted = try await gateway.psql(connection: "trusted", password: token, ["-c", "select current_user"])
        #expect(trusted.stdout == "gh_trust\n", "\(trusted)")
        // gh_tls is refused by the server without TLS (hostssl only): this proves the upstream leg is encrypted.
        let tls = try await gateway.psql(
            connection: "tls", password: token, ["-c", "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()"])
        #expect(tls.stdout == "gh_tls|t\n", "\(tls)")
    }

    @Test("a malformed frame closes only that connection with a protocol error; the gateway keeps serving")
    func malformedFrames() async throws {
        let gateway = try await Gateway.start()
        // A startup packet whose length is 3 (below the minimum of 8), then garbage.
        let reply = try rawExchange(port: gateway.postgresPort, bytes: [0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef])
        #expect(reply.first == UInt8(ascii: "E"), "expected an ErrorResponse, got \(reply)")
        #expect(String(decoding: reply, as: UTF8.self).contains("protocol violation"))

        // A typed frame with a length far above the limit after a valid startup.
        var startup: [UInt8] = []
        let parameters = Array("user\0alice\0database\0main\0\0".utf8)
        let length = UInt32(8 + parameters.count)
        startup += withUnsafeBytes(of: length.bigEndian, Array.init)
        startup += [0, 3, 0, 0] + parameters
        startup += [UInt8(ascii: "p"), 0x7f, 0xff, 0xff, 0xff]
        let second = try rawExchange(port: gateway.postgresPort, bytes: startup)
        #expect(String(decoding: second, as: UTF8.self).contains("protocol violation"), "\(second)")

        let token = try await gateway.aliceToken()
        let still = try await gateway.psql(password: token, ["-c", "select 'alive'"])
        #expect(still.stdout == "alive\n", "\(still)")
    }
}

@Suite("Proxy: refusals with clear messages", .timeLimit(.minutes(5)))
struct RefusalTests {
    @Test("a wrong token is refused with 28P01 and says why")
    func wrongToken() async throws {
        let gateway = try await Gateway.start()
        let result = try await gateway.psql(password: "not-a-token", ["-c", "select 1"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("password authentication failed for user \"alice\""), "\(result)")
        #expect(result.stderr.contains("not a valid Gatehouse token"), "\(result)")
        #expect(
            result.stderr.contains("HINT:  the password is a Gatehouse access token, not your Gatehouse or database password"),
            "\(result)")
    }

    @Test("another user's token is refused")
    func tokenOfAnotherUser() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        let result = try await gateway.psql(user: "alice", password: token, ["-c", "select 1"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("the token belongs to another user"), "\(result)")
    }

    @Test("an expired token is refused and the hint says how to get a new one")
    func expiredToken() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken(ttl: "1s")
        try await Task.sleep(for: .milliseconds(2200))
        let result = try await gateway.psql(password: token, ["-c", "select 1"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("expired"), "\(result)")
        #expect(result.stderr.contains("gatehouse token"), "\(result)")
    }

    @Test("a revoked token is refused at once")
    func revokedToken() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken()
        let before = try await gateway.psql(password: token, ["-c", "select 1"])
        #expect(before.stdout == "1\n", "\(before)")
        let revoke = try await gateway.cli("alice", ["tokens", "revoke", "--token", token])
        #expect(revoke.status == 0, "\(revoke)")
        let after = try await gateway.psql(password: token, ["-c", "select 1"])
        #expect(after.status == 2)
        #expect(after.stderr.contains("revoked"), "\(after)")
        #expect(after.stderr.contains("sign in again with `gatehouse login`"), "\(after)")

        // Every token of alice's, her stored login's too: `gatehouse token` says how to sign in again.
        let all = try await gateway.cli("alice", ["tokens", "revoke", "--user", "alice"])
        #expect(all.status == 0, "\(all)")
        let next = try await gateway.cli("alice", ["token"])
        #expect(next.status != 0)
        #expect(next.stderr.contains("sign in again with `gatehouse login --user alice`"), "\(next)")
    }

    @Test("an unknown connection name is refused with 3D000 and the list of connections")
    func unknownConnection() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken()
        let result = try await gateway.psql(connection: "nosuch", password: token, ["-c", "select 1"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("connection \"nosuch\" is not configured in Gatehouse"), "\(result)")
        #expect(result.stderr.contains("down, main, md5, tls, trusted"), "\(result)")
    }

    @Test("an upstream that is down gives a clear error and the refusal is audited")
    func upstreamDown() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken()
        let result = try await gateway.psql(connection: "down", password: token, ["-c", "select 1"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("connection \"down\" is unavailable"), "\(result)")
        #expect(result.stderr.contains("connection refused"), "\(result)")
        try await gateway.loginAdmin()
        let audit = try await gateway.cli("admin", ["audit", "tail", "-n", "20"])
        #expect(audit.stdout.contains("session.refused actor=alice connection=down"), "\(audit)")
    }

    @Test("a wrong password at login is refused, the same way for an unknown user")
    func wrongLogin() async throws {
        let gateway = try await Gateway.start()
        let wrong = try await gateway.cli("alice", ["login", "--user", "alice", "--password-stdin"], stdin: "nope\n")
        let unknown = try await gateway.cli("mallory", ["login", "--user", "mallory", "--password-stdin"], stdin: "nope\n")
        #expect(wrong.status != 0)
        #expect(unknown.status != 0)
        #expect(wrong.stderr.contains("invalid user name, password or code"), "\(wrong)")
        #expect(wrong.stderr == unknown.stderr.replacingOccurrences(of: "mallory", with: "alice"))
        let token = try await gateway.cli("alice", ["token"])
        #expect(token.status != 0)
        #expect(token.stderr.contains("gatehouse login"), "\(token)")
    }

    @Test("a bad configuration is refused at start with file, line and reason")
    func badConfig() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let file = "\(cluster.scratch)/bad-\(UUID().uuidString.prefix(8)).yaml"
        try """
        listen:
          postgres: 127.0.0.1:6432
        connections:
          - name: main
            host: 127.0.0.1
            database: app
            user: app
            pasword_env: X
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let serve = try await Command.run(cluster.gatehouse, ["serve", "--config", file])
        #expect(serve.status != 0)
        #expect(serve.stderr.contains("\(file):8:"), "\(serve)")
        #expect(serve.stderr.contains("pasword_env"), "\(serve)")
        let check = try await Command.run(cluster.gatehouse, ["config", "check", file])
        #expect(check.status != 0)
        #expect(check.stderr.contains("\(file):8:"), "\(check)")
    }

    @Test("a gateway that has not bound its listeners in time exits with status 70 and says why")
    func startWatchdog() async throws {
        let gateway = try await Gateway.start()
        try await gateway.stop()
        let cluster = try TestCluster.fromEnvironment()
        // A millisecond is less than opening the store takes: the watchdog fires before the listeners bind.
        let serve = try await Command.run(
            cluster.gatehouse, ["serve", "--config", gateway.configFile, "--start-timeout", "0.001"],
            environment: ["TEST_SCRAM_PASSWORD": cluster.scramPassword, "TEST_TLS_PASSWORD": cluster.tlsPassword])
        #expect(serve.status == 70, "\(serve)")
        #expect(serve.stderr.contains("did not start within 0.001 s"), "\(serve)")
        #expect(!serve.stdout.contains("Gatehouse is running."), "\(serve)")
        let refused = try await Command.run(cluster.gatehouse, ["serve", "--config", gateway.configFile, "--start-timeout", "0"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("--start-timeout must be more than 0 seconds"), "\(refused)")
    }
}

@Suite("Audit log through the binary", .timeLimit(.minutes(5)))
struct AuditTests {
    @Test("session and authentication events are chained; verify detects an edited event")
    func editedEventIsDetected() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken()
        _ = try await gateway.psql(password: token, ["-c", "select 1"])
        _ = try await gateway.psql(password: "wrong", sslmode: "disable", ["-c", "select 1"])
        try await gateway.loginAdmin()

        let tail = try await gateway.cli("admin", ["audit", "tail", "-n", "100"])
        for type in [
            "gateway.start", "admin.bootstrap", "login.success", "token.issued", "auth.success", "session.start", "session.end",
            "auth.failure",
        ] {
            #expect(tail.stdout.contains(" \(type) "), "missing \(type) in \(tail)")
        }
        #expect(tail.stdout.contains("session.end actor=alice"), "\(tail)")
        let intact = try await gateway.cli("admin", ["audit", "verify"])
        #expect(intact.status == 0, "\(intact)")
        #expect(intact.stdout.contains("Audit chain intact"), "\(intact)")

        let sqlite = try await Command.run(
            "/usr/bin/sqlite3", [gateway.storePath, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"])
        #expect(sqlite.status == 0, "\(sqlite)")
        let broken = try await gateway.cli("admin", ["audit", "verify"])
        #expect(broken.status == 1, "\(broken)")
        #expect(broken.stdout.contains("Audit chain BROKEN"), "\(broken)")
        #expect(broken.stdout.contains("event #3"), "\(broken)")
    }

    @Test("verify detects a deleted event, online and in an exported file")
    func deletedEventIsDetected() async throws {
        let gateway = try await Gateway.start()
        let token = try await gateway.aliceToken()
        _ = try await gateway.psql(password: token, ["-c", "select 1"])
        try await gateway.loginAdmin()

        let export = try await gateway.cli("admin", ["audit", "export"])
        #expect(export.status == 0, "\(export)")
        let lines = export.stdout.split(separator: "\n")
        #expect(lines.count >= 6)
        let exportFile = "\(gateway.directory)/export.jsonl"
        try export.stdout.write(toFile: exportFile, atomically: true, encoding: .utf8)
        let offline = try await gateway.cli("admin", ["audit", "verify", "--file", exportFile])
        #expect(offline.status == 0, "\(offline)")

        var withoutFourth = lines
        withoutFourth.remove(at: 3)
        try (withoutFourth.joined(separator: "\n") + "\n").write(toFile: exportFile, atomically: true, encoding: .utf8)
        let offlineBroken = try await gateway.cli("admin", ["audit", "verify", "--file", exportFile])
        #expect(offlineBroken.status == 1, "\(offlineBroken)")
        #expect(offlineBroken.stdout.contains("event #5"), "\(offlineBroken)")

        let sqlite = try await Command.run("/usr/bin/sqlite3", [gateway.storePath, "DELETE FROM audit_events WHERE seq = 4"])
        #expect(sqlite.status == 0, "\(sqlite)")
        let online = try await gateway.cli("admin", ["audit", "verify"])
        #expect(online.status == 1, "\(online)")
        #expect(online.stdout.contains("event #5"), "\(online)")
    }

    @Test("the admin bootstrap happens once; a restart keeps the store and the chain")
    func restartKeepsState() async throws {
        let gateway = try await Gateway.start()
        #expect(gateway.adminPassword != nil)
        let first = try await gateway.stop()
        #expect(first.stdout.contains("created administrator 'admin'"))
        try await gateway.launch()
        #expect(!(gateway.process?.stdout.contains("created administrator") ?? true), "the password must be printed only once")
        try await gateway.loginAdmin()
        let verify = try await gateway.cli("admin", ["audit", "verify"])
        #expect(verify.status == 0, "\(verify)")
        let tail = try await gateway.cli("admin", ["audit", "tail", "-n", "100"])
        #expect(tail.stdout.contains("gateway.stop"), "\(tail)")
        #expect(tail.stdout.components(separatedBy: " gateway.start ").count == 3, "two starts expected: \(tail)")
    }
}

// MARK: Helpers

struct SessionList: Decodable {
    struct Session: Decodable {
        var id: String
        var user: String
        var connection: String
        var application_name: String
    }
    var sessions: [Session]
}

/// Waits until the gateway lists `count` live sessions (as seen by the bootstrapped admin).
func waitForSession(_ gateway: Gateway, count: Int) async throws {
    try await gateway.loginAdmin()
    for _ in 0..<200 {
        let list = try await gateway.cli("admin", ["sessions", "--json"])
        if let sessions = try? JSONDecoder().decode(SessionList.self, from: Data(list.stdout.utf8)).sessions,
            sessions.count == count
        {
            return
        }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw HarnessError("the gateway never listed \(count) live sessions")
}

/// Connects, sends `bytes`, and returns everything the gateway sends back until it closes.
func rawExchange(port: Int, bytes: [UInt8]) throws -> [UInt8] {
    let fd = try connectLoopback(port: port, receiveTimeout: 10)
    defer { close(fd) }
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var reply: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        reply += chunk[0..<n]
    }
    return reply
}
