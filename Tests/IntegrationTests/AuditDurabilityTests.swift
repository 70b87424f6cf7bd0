import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real `gatehouse` binary killed outright, then started again on the same data directory.
@Suite("Audit: a gateway that dies loses no statement decision", .timeLimit(.minutes(5)))
struct AuditDurabilityTests {
    @Test("killed with SIGKILL before its next commit, the gateway puts every decision it journaled in the log at its next start")
    func killedGatewayLosesNoDecision() async throws {
        // A commit window far longer than the test: without the journal, every decision below would die
        // with the process.
        let gateway = try await Gateway.start(extraConfig: "audit:\n  commit_interval: 60s\n")
        let alice = try await gateway.aliceToken()
        let marker = uniqueTable("done")

        // One open session, fed through a FIFO.
        let fifo = "\(gateway.directory)/alice.sql"
        #expect(mkfifo(fifo, 0o600) == 0)
        let session = try await gateway.startPsql(password: alice, ["-f", fifo])
        let descriptor = open(fifo, O_RDWR)
        #expect(descriptor >= 0)
        let input = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        let statements = (1...24).map { "select \($0) as n;\n" }.joined() + "select 'x' as y;\nselect '\(marker)';\n"
        input.write(Data(statements.utf8))
        try await session.waitForOutput(marker, timeout: 60)

        // The statements ran, and the log has none of their decisions yet.
        let before = try await Command.run(
            "/usr/bin/sqlite3", [gateway.storePath, "select count(*) from audit_events where type like 'statement.%'"])
        #expect(before.stdout == "0\n", "\(before)")

        let process = try #require(gateway.process)
        process.signal(SIGKILL)
        _ = try await process.wait(timeout: 30)
        try? input.close()
        _ = try await session.wait(timeout: 30)

        try await gateway.launch()
        #expect(gateway.process?.stderr.contains("audit events recovered from the journal") == true)
        let after = try await Command.run(
            "/usr/bin/sqlite3",
            [
                gateway.storePath,
                "select count(*) from audit_events where type = 'statement.allowed' and actor = 'alice'",
            ])
        #expect(after.stdout == "26\n", "\(after)")
        try await gateway.loginAdmin()
        let verify = try await gateway.cli("admin", ["audit", "verify"])
        #expect(verify.status == 0, "\(verify)")
        let starts = try await gateway.cli("admin", ["audit", "tail", "--type", "gateway.start", "--json"])
        #expect(starts.stdout.contains(#""recovered_audit_events":"26""#), "\(starts)")
    }
}
