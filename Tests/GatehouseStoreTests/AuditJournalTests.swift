import Foundation
import GatehouseCore
import NIOConcurrencyHelpers
import Testing

@testable import GatehouseStore

/// A fresh directory for one test, and the path of a store in it.
private func scratchDirectory() throws -> (directory: String, store: String) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-store-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return (directory, (directory as NSString).appendingPathComponent("gatehouse.db"))
}

private func statement(_ number: Int, session: String = "s1") -> AuditRecord {
    AuditRecord(
        .statementAllowed, actor: "alice", session: session, connection: "main", source: "127.0.0.1",
        detail: ["action": "allow", "fingerprint": "f\(number)", "facts": "select on t\(number)"])
}

/// Runs SQL on the store's file through another connection (the `sqlite3` command).
private func sqlite(_ path: String, _ sql: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
    process.arguments = [path, sql]
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "sqlite3 failed on: \(sql)")
}

/// Copies the store's files as they are on disk now: what a gateway that died at this moment leaves.
private func crashCopy(of path: String, to directory: String) throws -> String {
    let copy = (directory as NSString).appendingPathComponent("crashed.db")
    for suffix in ["", "-wal", "-shm", ".journal-0", ".journal-1"] where FileManager.default.fileExists(atPath: path + suffix) {
        try FileManager.default.copyItem(atPath: path + suffix, toPath: copy + suffix)
    }
    return copy
}

@Suite("Audit journal: what the proxy hands over survives a crash of the gateway", .timeLimit(.minutes(2)))
struct AuditJournalTests {
    @Test("records journaled but not committed when the gateway died are in the log after the next open: once, in order, chained")
    func recoversUncommittedRecords() async throws {
        let (directory, path) = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteStore.open(path: path)
        // A window far longer than the test: nothing handed over below is committed before the copy.
        await store.setCommitInterval(.seconds(60))
        _ = try await store.appendAudit(AuditRecord(.sessionStart, actor: "alice", session: "s1"))
        for number in 1...5 { try store.enqueueAudit(statement(number)) { _ in } }

        let crashed = try crashCopy(of: path, to: directory)
        #expect(try await store.auditEvents(afterSeq: 0, limit: 100).count == 1, "the statements must still be waiting")
        try await store.close()

        let reopened = try await SQLiteStore.open(path: crashed)
        #expect(await reopened.recoveredFromJournal == 5)
        #expect(await reopened.unreadableJournalLines == 0)
        let events = try await reopened.auditEvents(afterSeq: 0, limit: 100)
        #expect(events.map(\.type) == ["session.start"] + Array(repeating: "statement.allowed", count: 5))
        #expect(events.dropFirst().map { $0.detail["fingerprint"] } == (1...5).map { "f\($0)" })
        #expect(AuditChain.verify(events).isIntact)
        #expect(events.allSatisfy { $0.time >= events[0].time })
        // Numbering goes on after the recovered lines; a new record and a clean close leave an empty journal.
        try reopened.enqueueAudit(statement(6)) { _ in }
        try await reopened.close()
        for suffix in [".journal-0", ".journal-1"] {
            let contents = try #require(FileManager.default.contents(atPath: crashed + suffix))
            #expect(contents.allSatisfy { $0 == 0 }, "a clean close leaves no line behind")
        }

        let again = try await SQLiteStore.open(path: crashed)
        #expect(await again.recoveredFromJournal == 0, "recovered records must not be replayed twice")
        let all = try await again.auditEvents(afterSeq: 0, limit: 100)
        #expect(all.count == 7)
        #expect(AuditChain.verify(all).isIntact)
        try await again.close()
    }

    @Test("a journal line the log already holds is not replayed; a line cut short is counted, not read")
    func replaysOnlyWhatTheLogLacks() async throws {
        let (directory, path) = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteStore.open(path: path)
        try store.enqueueAudit(statement(1)) { _ in }
        await store.flushAudit()
        await store.setCommitInterval(.seconds(60))
        try store.enqueueAudit(statement(2)) { _ in }
        let crashed = try crashCopy(of: path, to: directory)
        try await store.close()
        // The machine stopped in the middle of a line, right after the last whole one.
        let lines = try #require(FileManager.default.contents(atPath: crashed + ".journal-0"))
        let end = try #require(lines.firstIndex(of: 0))
        let torn = try FileHandle(forWritingTo: URL(fileURLWithPath: crashed + ".journal-0"))
        try torn.seek(toOffset: UInt64(end))
        try torn.write(contentsOf: Data(#"{"n":3,"time":"2026-11-27T05:00:00.000Z","ty"#.utf8))
        try torn.close()

        let reopened = try await SQLiteStore.open(path: crashed)
        #expect(await reopened.recoveredFromJournal == 1)
        #expect(await reopened.unreadableJournalLines == 1)
        let events = try await reopened.auditEvents(afterSeq: 0, limit: 100)
        #expect(events.compactMap { $0.detail["fingerprint"] } == ["f1", "f2"])
        #expect(AuditChain.verify(events).isIntact)
        try await reopened.close()
    }

    @Test("a commit that fails is retried: records already handed over land in order once the log takes writes again")
    func failedCommitsAreRetried() async throws {
        let (directory, path) = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteStore.open(path: path)
        _ = try await store.appendAudit(AuditRecord(.gatewayStart, actor: "gatehouse"))
        // Another connection makes every insert fail while a flag row exists.
        try sqlite(
            path,
            """
            CREATE TABLE fail_flag (x INTEGER);
            INSERT INTO fail_flag VALUES (1);
            CREATE TRIGGER fail_inserts BEFORE INSERT ON audit_events WHEN EXISTS (SELECT 1 FROM fail_flag)
            BEGIN SELECT RAISE(ABORT, 'injected failure'); END;
            """)
        let failures = NIOLockedValueBox(0)
        for number in 1...3 { try store.enqueueAudit(statement(number)) { _ in failures.withLockedValue { $0 += 1 } } }
        await #expect(throws: (any Error).self) { _ = try await store.appendAudit(AuditRecord(.loginSuccess, actor: "a")) }
        #expect(failures.withLockedValue { $0 } >= 1)
        try sqlite(path, "DELETE FROM fail_flag;")
        await store.flushAudit()
        let events = try await store.auditEvents(afterSeq: 0, limit: 100)
        #expect(events.map(\.type) == ["gateway.start"] + Array(repeating: "statement.allowed", count: 3))
        #expect(events.compactMap { $0.detail["fingerprint"] } == ["f1", "f2", "f3"])
        #expect(AuditChain.verify(events).isIntact)
        try await store.close()
    }

    @Test("a second gateway cannot open a store in use")
    func oneGatewayPerStore() async throws {
        let (directory, path) = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteStore.open(path: path)
        await #expect {
            _ = try await SQLiteStore.open(path: path)
        } throws: { error in
            "\(error)".contains("another gateway process is using the state store")
        }
        try await store.close()
        let reopened = try await SQLiteStore.open(path: path)
        try await reopened.close()
    }

    @Test("an append someone waits for is not held back by the commit window")
    func waitedAppendsSkipTheWindow() async throws {
        let (directory, path) = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteStore.open(path: path)
        await store.setCommitInterval(.seconds(60))
        _ = try await store.appendAudit(AuditRecord(.gatewayStart, actor: "gatehouse"))
        try store.enqueueAudit(statement(1)) { _ in }
        // The writer now waits out the window for the statement; a waited-for append ends the wait.
        try await Task.sleep(for: .milliseconds(50))
        let event = try await store.appendAudit(AuditRecord(.loginSuccess, actor: "alice"))
        #expect(event.seq == 3, "the statement is committed first, in order")
        try await store.close()
    }

    @Test(
        "a file is emptied only once the log holds every line in it; a log that stops committing fills the journal, which then refuses"
    )
    func rotationKeepsUncommittedLines() throws {
        let (directory, path) = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = try AuditJournal(beside: path, capacity: 4096)
        try journal.reset(after: 100)
        var numbers: [Int64] = []
        var cleaned = 0
        for number in 1...60 {
            numbers.append(try journal.append(statement(number), time: "2026-11-27T05:00:00.000Z").number)
            // The log lags ten lines behind; the writer cleans what it is offered.
            if numbers.count > 10, let cleaning = journal.committed(through: numbers[numbers.count - 11]) {
                try cleaning.run()
                journal.cleaned(cleaning.index, succeeded: true)
                cleaned += 1
            }
        }
        #expect(numbers == Array(101...160), "numbering goes on after the reset")
        let kept = try journal.contents().entries.map(\.number)
        // Everything not yet committed (151...160) is still there, whatever was cleaned.
        #expect(Set(151...160).isSubset(of: Set(kept)))
        #expect(cleaned > 0 && kept.count < 60, "committed lines must have been dropped")
        #expect(kept == kept.sorted())

        // The log stops committing: the journal fills, then refuses, and keeps every line it took.
        var refused: Error?
        for number in 61...200 {
            do { numbers.append(try journal.append(statement(number), time: "2026-11-27T05:00:00.000Z").number) } catch {
                refused = error
                break
            }
        }
        #expect("\(refused.map { "\($0)" } ?? "none")".contains("the audit journal is full"))
        let all = try journal.contents().entries.map(\.number)
        #expect(Set(numbers.filter { $0 > 150 }).isSubset(of: Set(all)))
    }
}
