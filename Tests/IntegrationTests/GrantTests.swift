import Crypto
import Foundation
import GatehouseCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Just-in-time elevation: request, approval, elevation of open sessions, termination at expiry.
@Suite("Just-in-time grants on live sessions", .timeLimit(.minutes(5)))
struct GrantTests {
    static let config = """
        roles:
          - name: dba
            requesters: [developer]
            max_duration: 1h
            reason: {required: true, pattern: "[A-Z]+-[0-9]+"}
            approvers: {groups: [dba]}
        policy:
          rules:
            - name: developers-read-only
              match: {groups: [developer], writes: true, elevated: false}
              action: deny
              hint: request the dba role
        """

    /// A table bob (dba, not a developer) creates for alice to write to.
    static func table(_ gateway: Gateway) async throws -> String {
        let bob = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        let table = uniqueTable("jit")
        let create = try await gateway.psql(user: "bob", password: bob, ["-c", "create table \(table) (id int)"])
        #expect(create.status == 0, "\(create)")
        return table
    }

    static func requestID(_ output: String) throws -> String {
        let range = try #require(output.range(of: "req-"))
        return "req-" + output[range.upperBound...].prefix { $0.isHexDigit }
    }

    @Test(
        "denied, then requested and approved: the same open session writes; at expiry it is terminated and new sessions cannot write"
    )
    func requestApproveExpire() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.config)
        let table = try await Self.table(gateway)
        let alice = try await gateway.aliceToken()

        // One open session, fed statement by statement through a FIFO: no step depends on timing.
        let fifo = "\(gateway.directory)/alice.sql"
        #expect(mkfifo(fifo, 0o600) == 0)
        let session = try await gateway.startPsql(password: alice, ["-v", "ON_ERROR_STOP=0", "-f", fifo])
        // Read-write, so opening never waits for psql and psql sees no end of input until the test is done.
        let descriptor = open(fifo, O_RDWR)
        #expect(descriptor >= 0)
        let input = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        input.write(Data("insert into \(table) values (1);\n".utf8))
        try await session.waitForOutput("rule \"developers-read-only\"", timeout: 30)

        let badReason = try await gateway.cli(
            "alice", ["request", "dba", "--duration", "10s", "--reason", "just because", "--no-wait"])
        #expect(badReason.status != 0)
        #expect(badReason.stderr.contains("must match"), "\(badReason)")
        let request = try await gateway.cli(
            "alice", ["request", "dba", "--duration", "10s", "--reason", "OPS-7 fix data", "--no-wait"])
        #expect(request.status == 0, "\(request)")
        let id = try Self.requestID(request.stdout + request.stderr)
        let own = try await gateway.cli("alice", ["approve", id])
        #expect(own.status != 0)
        #expect(own.stderr.contains("your own request"), "\(own)")
        let approve = try await gateway.cli("bob", ["approve", id])
        #expect(approve.status == 0, "\(approve)")

        // The same session's next insert runs elevated; then the grant ends during a long sleep.
        input.write(Data("insert into \(table) values (2);\nselect pg_sleep(60);\n".utf8))
        let result = try await session.wait(timeout: 60)
        try? input.close()
        #expect(result.stdout.contains("INSERT 0 1"), "\(result)")
        #expect(result.stderr.contains("terminating connection: grant \(id) (dba) expired"), "\(result)")

        let rows = try await gateway.psql(password: alice, ["-c", "select count(*) from \(table)"])
        #expect(rows.stdout == "1\n", "\(rows)")
        let after = try await gateway.psql(password: alice, ["-c", "insert into \(table) values (3)"])
        #expect(after.stderr.contains("developers-read-only"), "\(after)")

        try await gateway.loginAdmin()
        let audit = try await gateway.cli("admin", ["audit", "tail", "-n", "60"])
        for type in ["request.created", "request.approved", "grant.activated", "grant.expired"] {
            #expect(audit.stdout.contains(type), "missing \(type): \(audit)")
        }
    }

    @Test("an early revoke ends the grant and the sessions that used it; sessions that did not use it go on")
    func revoke() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.config)
        let table = try await Self.table(gateway)
        let alice = try await gateway.aliceToken()
        let request = try await gateway.cli("alice", ["request", "dba", "--duration", "30m", "--reason", "OPS-8", "--no-wait"])
        let id = try Self.requestID(request.stdout + request.stderr)
        _ = try await gateway.cli("bob", ["approve", id])

        let user = try await gateway.startPsql(
            password: alice, ["-c", "insert into \(table) values (1)", "-c", "select pg_sleep(60)"])
        try await user.waitForOutput("INSERT 0 1", timeout: 30)
        let bystander = try await gateway.startPsql(password: alice, ["-c", "select pg_sleep(3)", "-c", "select 'still here'"])
        try await Task.sleep(for: .milliseconds(500))

        let revoke = try await gateway.cli("bob", ["revoke", id])
        #expect(revoke.status == 0, "\(revoke)")
        let ended = try await user.wait(timeout: 30)
        #expect(ended.stderr.contains("terminating connection: grant \(id) (dba) was revoked by bob"), "\(ended)")
        let other = try await bystander.wait(timeout: 30)
        #expect(other.stdout.contains("still here"), "\(other)")
        let denied = try await gateway.psql(password: alice, ["-c", "insert into \(table) values (2)"])
        #expect(denied.stderr.contains("developers-read-only"), "\(denied)")
    }

    @Test("a restart keeps pending requests and active grants")
    func restart() async throws {
        let gateway = try await Gateway.start(extraConfig: Self.config)
        let table = try await Self.table(gateway)
        _ = try await gateway.aliceToken()
        let first = try await gateway.cli("alice", ["request", "dba", "--duration", "30m", "--reason", "OPS-9", "--no-wait"])
        let pending = try Self.requestID(first.stdout + first.stderr)
        let second = try await gateway.cli("alice", ["request", "dba", "--duration", "20m", "--reason", "OPS-10", "--no-wait"])
        let active = try Self.requestID(second.stdout + second.stderr)
        _ = try await gateway.cli("bob", ["approve", active])

        try await gateway.stop()
        try await gateway.launch()
        let list = try await gateway.cli("bob", ["requests"])
        #expect(list.stdout.contains("\(pending)  pending"), "\(list)")
        #expect(list.stdout.contains("\(active)  approved (active)"), "\(list)")
        let alice = try await gateway.aliceToken()
        let write = try await gateway.psql(password: alice, ["-c", "insert into \(table) values (1)"])
        #expect(write.status == 0, "\(write)")
    }

    /// A receiver that records every delivery and fails the first one, to see the retry.
    static let receiver = """
        import http.server, json, sys
        log, port = sys.argv[1], int(sys.argv[2])
        seen = {"count": 0}
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                seen["count"] += 1
                status = 500 if seen["count"] == 1 else 200
                with open(log, "a") as f:
                    f.write(json.dumps({"status": status, "signature": self.headers["X-Gatehouse-Signature"],
                                        "event": self.headers["X-Gatehouse-Event"], "attempt": self.headers["X-Gatehouse-Attempt"],
                                        "body": body.decode()}) + "\\n")
                self.send_response(status)
                self.end_headers()
            def log_message(self, *args):
                pass
        http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
        """

    @Test("webhooks: signed JSON for requests, approvals and grants, retried after a failure")
    func webhooks() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let port = try freePort()
        let log = "\(cluster.scratch)/webhook-\(UUID().uuidString.prefix(8)).jsonl"
        let secretFile = "\(cluster.scratch)/webhook-secret-\(UUID().uuidString.prefix(8))"
        try "s3cret-hook-key".write(toFile: secretFile, atomically: true, encoding: .utf8)
        let receiver = try await Command.start("/usr/bin/python3", ["-c", Self.receiver, log, String(port)])
        defer { receiver.signal(SIGTERM) }
        let gateway = try await Gateway.start(
            extraConfig: Self.config + """

                webhooks:
                  - name: chat
                    url: http://127.0.0.1:\(port)/hook
                    secret_file: \(secretFile)
                """)
        _ = try await gateway.aliceToken()
        let request = try await gateway.cli("alice", ["request", "dba", "--duration", "5m", "--reason", "OPS-11", "--no-wait"])
        let id = try Self.requestID(request.stdout + request.stderr)
        _ = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        _ = try await gateway.cli("bob", ["approve", id])

        let lines = try await eventually(timeout: 30) { () -> [[String: Any]]? in
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let parsed = text.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            let events = Set(parsed.filter { $0["status"] as? Int == 200 }.compactMap { $0["event"] as? String })
            return events.isSuperset(of: ["request.created", "request.approved", "grant.activated"]) ? parsed : nil
        }
        // The first delivery failed with 500 and came again.
        #expect(lines.first?["status"] as? Int == 500)
        #expect(lines.contains { $0["attempt"] as? String == "2" })
        for line in lines {
            let body = try #require(line["body"] as? String)
            let signature = HMAC<SHA256>.authenticationCode(
                for: Data(body.utf8), using: SymmetricKey(data: Data("s3cret-hook-key".utf8)))
            let expected = "sha256=" + signature.map { String(format: "%02x", $0) }.joined()
            #expect(line["signature"] as? String == expected)
        }
        let created = try #require(lines.first { $0["event"] as? String == "request.created" }?["body"] as? String)
        let payload = try JSONSerialization.jsonObject(with: Data(created.utf8)) as? [String: Any]
        #expect((payload?["text"] as? String)?.contains("alice requests *dba*") == true, "\(created)")
        #expect((payload?["detail"] as? [String: String])?["request"] == id)
    }

    @Test("a service account with an API token requests a grant, is approved, and writes; it has no password")
    func serviceAccount() async throws {
        let gateway = try await Gateway.start(
            extraConfig: Self.config + "\nservice_accounts:\n  - {name: ci-bot, groups: [developer]}\n")
        let table = try await Self.table(gateway)
        try await gateway.loginAdmin()
        let issued = try await gateway.cli("admin", ["tokens", "issue-service", "ci-bot", "--ttl", "7d"])
        #expect(issued.status == 0, "\(issued)")
        let apiToken = issued.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let tooLong = try await gateway.cli("admin", ["tokens", "issue-service", "ci-bot", "--ttl", "365d"])
        #expect(tooLong.stderr.contains("at most"), "\(tooLong)")
        let notService = try await gateway.cli("admin", ["tokens", "issue-service", "alice"])
        #expect(notService.stderr.contains("not a service account"), "\(notService)")

        func ci(_ arguments: [String]) async throws -> CommandResult {
            try await Command.run(
                gateway.cluster.gatehouse, arguments,
                environment: [
                    "GATEHOUSE_TOKEN": apiToken, "GATEHOUSE_SERVER": gateway.server,
                    "GATEHOUSE_HOME": "\(gateway.directory)/home-ci",
                ])
        }
        let request = try await ci(["request", "dba", "--duration", "10m", "--reason", "DEPLOY-12 migration", "--no-wait"])
        #expect(request.status == 0, "\(request)")
        let id = try Self.requestID(request.stdout + request.stderr)
        _ = try await gateway.token(for: "bob", password: Gateway.bobPassword)
        #expect(try await gateway.cli("bob", ["approve", id]).status == 0)
        let access = try await ci(["token", "--ttl", "10m"])
        #expect(access.status == 0, "\(access)")
        let write = try await gateway.psql(
            user: "ci-bot", password: access.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
            ["-c", "insert into \(table) values (42)"])
        #expect(write.status == 0, "\(write)")

        let password = try await gateway.cli(
            "ci", ["login", "--user", "ci-bot", "--password-stdin"], stdin: "anything-at-all-123\n")
        #expect(password.status != 0)
        let setPassword = try await gateway.cli(
            "admin", ["users", "set-password", "ci-bot", "--password-stdin"], stdin: "a-long-password-1234\n")
        #expect(setPassword.status != 0)
    }

    @Test("break-glass: self-activated with the second factor, short, and loudly audited")
    func breakGlass() async throws {
        let config = Self.config.replacingOccurrences(
            of: "    approvers: {groups: [dba]}", with: "    approvers: {groups: [dba]}\n    break_glass: {max_duration: 15m}")
        let gateway = try await Gateway.start(extraConfig: config)
        let table = try await Self.table(gateway)
        let alice = try await gateway.aliceToken()
        let totp = try await StepUpTests.enrol(gateway, "alice")
        let tooLong = try await gateway.cli(
            "alice", ["request", "dba", "--break-glass", "--code", "123456", "--duration", "1h", "--reason", "INC-1 outage"])
        #expect(tooLong.status != 0)
        let glass = try await gateway.cli(
            "alice",
            [
                "request", "dba", "--break-glass", "--code", totp.code(at: Date().addingTimeInterval(30)), "--duration", "10m",
                "--reason", "INC-1 outage",
            ])
        #expect(glass.status == 0, "\(glass)")
        #expect(glass.stdout.contains("Granted dba"), "\(glass)")
        let write = try await gateway.psql(password: alice, ["-c", "insert into \(table) values (1)"])
        #expect(write.status == 0, "\(write)")
        try await gateway.loginAdmin()
        let audit = try await gateway.cli("admin", ["audit", "tail", "-n", "30"])
        #expect(audit.stdout.contains("grant.break_glass actor=alice"), "\(audit)")
    }
}
