import Foundation
import GatehouseCore
import GatehouseTelemetry
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SQLiteNIO

/// The embedded default store: one SQLite file in WAL mode with full synchronous commits.
public actor SQLiteStore: GatehouseStore {
    private let connection: SQLiteConnection
    private var lastSeq: Int64 = 0
    private var lastHash = AuditEvent.genesisHash
    private let now: @Sendable () -> Date
    /// Events the journal held that the log lacked when the store opened: what a gateway that stopped
    /// uncleanly had accepted and not yet committed, now in the log.
    public private(set) var recoveredFromJournal = 0
    /// Journal lines that could not be read when the store opened (cut short by a machine stop).
    public private(set) var unreadableJournalLines = 0

    /// Opens (creating when needed) the database at `path`.
    public static func open(path: String, now: @escaping @Sendable () -> Date = Date.init) async throws -> SQLiteStore {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(
                storage: .file(path: path), logger: Logger(label: "gatehouse.store"))
        } catch {
            throw StoreError("cannot open the state store at \(path): \(error)")
        }
        let journal: AuditJournal
        do {
            journal = try AuditJournal(beside: path)
        } catch {
            try? await connection.close()
            throw StoreError("\(error)")
        }
        let store = SQLiteStore(connection: connection, journal: journal, now: now)
        do {
            try await store.migrate()
            try await store.recover()
        } catch {
            try? await connection.close()
            throw error
        }
        return store
    }

    private init(connection: SQLiteConnection, journal: AuditJournal, now: @escaping @Sendable () -> Date) {
        self.connection = connection
        self.now = now
        self.handedOver = NIOLockedValueBox(HandOver(journal: journal))
    }

    private func migrate() async throws {
        for statement in [
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA busy_timeout=5000",
            """
            CREATE TABLE IF NOT EXISTS audit_events (
                seq INTEGER PRIMARY KEY, time TEXT NOT NULL, type TEXT NOT NULL, actor TEXT, session TEXT,
                connection TEXT, source TEXT, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)
            """,
            """
            CREATE TABLE IF NOT EXISTS users (
                name TEXT PRIMARY KEY, groups TEXT NOT NULL, password_hash TEXT, expires_at TEXT,
                disabled INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL)
            """,
            // People read their own events (a filter by actor): indexed. Other filters walk back from the
            // newest event, which is quick for recent sessions; each index costs every append (~1.5 µs).
            "CREATE INDEX IF NOT EXISTS audit_events_actor ON audit_events (actor, seq)",
            "CREATE TABLE IF NOT EXISTS revoked_tokens (id TEXT PRIMARY KEY, expires_at TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS user_token_cutoffs (user TEXT PRIMARY KEY, cutoff TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS access_requests (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
            """
            CREATE TABLE IF NOT EXISTS known_devices (
                user TEXT NOT NULL, source TEXT NOT NULL, application TEXT NOT NULL, first_seen TEXT NOT NULL,
                PRIMARY KEY (user, source, application))
            """,
            """
            CREATE TABLE IF NOT EXISTS mfa (
                user TEXT PRIMARY KEY, sealed_secret BLOB NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0,
                last_used_step INTEGER)
            """,
        ] {
            _ = try await connection.query(statement, [])
        }
        // The journal line each event came from (bookkeeping for recovery; not part of the chain).
        let columns = try await connection.query("PRAGMA table_info(audit_events)", []).compactMap { $0.column("name")?.string }
        if !columns.contains("journal") {
            _ = try await connection.query("ALTER TABLE audit_events ADD COLUMN journal INTEGER", [])
        }
        if let row = try await connection.query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1", []).first {
            lastSeq = Int64(row.column("seq")?.integer ?? 0)
            lastHash = row.column("hash")?.string ?? AuditEvent.genesisHash
        }
    }

    /// Puts into the log what the journal holds and the log lacks, then empties the journal.
    private func recover() async throws {
        let committed = Int64(
            try await connection.query(
                "SELECT journal FROM audit_events WHERE journal IS NOT NULL ORDER BY seq DESC LIMIT 1", []
            ).first?.column("journal")?.integer ?? 0)
        let journal = handedOver.withLockedValue { $0.journal }
        let (entries, unreadable) = try journal.contents()
        unreadableJournalLines = unreadable
        let missing = entries.filter { $0.number > committed }
        var start = missing.startIndex
        while start < missing.endIndex {
            let end = min(start + Self.maximumBatch, missing.endIndex)
            let batch = missing[start..<end].map {
                Pending(record: $0.record, waiter: nil, time: $0.time, journal: $0.number)
            }
            try await insert(batch)
            start = end
        }
        recoveredFromJournal = missing.count
        try journal.reset(after: max(committed, entries.last?.number ?? 0))
    }

    /// Appends one event to the chain, and returns once it is committed.
    ///
    /// Appends are group-committed: records handed over while a write is in flight are sealed together, in
    /// arrival order, and inserted by one statement (atomic in SQLite), so the chain has no gaps and a
    /// failed write changes nothing. The actor's state only moves once the rows are durable.
    public func appendAudit(_ record: AuditRecord) async throws -> AuditEvent {
        try await withCheckedThrowingContinuation { continuation in
            // Not journaled, so the hand-over itself cannot fail.
            do { try hand(record, .caller(continuation), journaled: false) } catch { continuation.resume(throwing: error) }
        }
    }

    /// Hears every batch of events once it is committed (e.g. webhooks); called off the writer's path.
    private nonisolated let observers = NIOLockedValueBox<[@Sendable ([AuditEvent]) -> Void]>([])

    public nonisolated func observeCommits(_ observer: @escaping @Sendable ([AuditEvent]) -> Void) {
        observers.withLockedValue { $0.append(observer) }
    }

    /// Who hears how an append went.
    private enum Waiter: Sendable {
        case caller(CheckedContinuation<AuditEvent, Error>)
        case detached(@Sendable (Error) -> Void)
    }

    /// A record accepted and not yet committed.
    private struct Pending: Sendable {
        var record: AuditRecord
        /// Nil for a record replayed from the journal when the store opened.
        var waiter: Waiter?
        /// When the record was accepted (`Timestamp.format`).
        var time: String
        /// Its journal line, when it was handed over without waiting.
        var journal: Int64?
        /// The detail's canonical JSON, when the journal line already made it.
        var detailJSON: [UInt8]? = nil
    }

    /// Records handed over from any thread, in arrival order, whether a writer is awake to take them, and
    /// the journal. One writer runs at a time; it takes everything handed over before each batch and goes
    /// to sleep only when nothing is left, so a busy log costs no task per append.
    private struct HandOver: @unchecked Sendable {
        var records: [Pending] = []
        var writerAwake = false
        /// Whether the writer is waiting out a commit window (and no one has asked it to stop yet).
        var windowOpen = false
        let journal: AuditJournal
    }
    private nonisolated let handedOver: NIOLockedValueBox<HandOver>
    /// Records the writer has taken and not yet written, in arrival order.
    private var pendingAppends: [Pending] = []
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    /// Rows per INSERT, well under SQLite's limit of bound parameters.
    private static let maximumBatch = 500

    /// Hands a record to the writer, journaled first when no one waits for its commit.
    private nonisolated func hand(_ record: AuditRecord, _ waiter: Waiter, journaled: Bool) throws {
        let (wake, endWindow) = try handedOver.withLockedValue { state -> (Bool, Bool) in
            let time = Timestamp.format(now())
            var pending = Pending(record: record, waiter: waiter, time: time, journal: nil)
            if journaled {
                let (number, detailJSON) = try state.journal.append(record, time: time)
                pending.journal = number
                pending.detailJSON = detailJSON
            }
            state.records.append(pending)
            // Someone waits for this one, or a full batch waits: a writer pacing its commits stops waiting
            // (and the journal stays small).
            let endWindow = state.windowOpen && (!journaled || state.records.count >= Self.maximumBatch)
            if endWindow { state.windowOpen = false }
            if state.writerAwake { return (false, endWindow) }
            state.writerAwake = true
            return (true, false)
        }
        if wake {
            Task { await self.writePendingAppends() }
        } else if endWindow {
            Task { await self.endCommitWindow() }
        }
    }

    /// The writer's wait for the end of the commit window, when it is waiting.
    private var windowWait: Task<Void, Never>?

    private func endCommitWindow() {
        windowWait?.cancel()
    }

    /// Appends without waiting for the commit: for the hot path (a decision per statement). The record is
    /// journaled before this returns, so a crash of the gateway cannot lose it, and committed, in order,
    /// by the next group commit. Throws, keeping nothing, when the journal cannot take it: the caller
    /// must then not go on with what it records. `onFailure` hears about a commit that failed (it is
    /// retried).
    public nonisolated func enqueueAudit(_ record: AuditRecord, onFailure: @escaping @Sendable (Error) -> Void) throws {
        try hand(record, .detached(onFailure), journaled: true)
    }

    /// Moves what was handed over into `pendingAppends`; reports false, marking the writer asleep, when
    /// nothing is left to write.
    private func takeHandedOver() -> Bool {
        let nothingPending = pendingAppends.isEmpty
        let taken = handedOver.withLockedValue { state -> [Pending]? in
            if state.records.isEmpty {
                if nothingPending { state.writerAwake = false }
                return nil
            }
            defer { state.records.removeAll(keepingCapacity: true) }
            return state.records
        }
        if let taken { pendingAppends += taken }
        return !pendingAppends.isEmpty
    }

    /// The shortest time between two commits of journaled events only (statement decisions). A commit
    /// (a WAL write and an fsync) costs far more than an event, so under load the writer gathers what
    /// arrives in this window into one; an idle log commits the first event at once, and an append
    /// someone waits for (a session start, an approval) never waits for the window. The journal keeps
    /// what waits safe from a crash of the gateway; a power loss may lose up to this window.
    public var commitInterval: Duration = .milliseconds(10)
    private var lastCommit: ContinuousClock.Instant?

    public func setCommitInterval(_ interval: Duration) { commitInterval = interval }

    private func writePendingAppends() async {
        while takeHandedOver() {
            if let lastCommit, pendingAppends.count < Self.maximumBatch,
                !pendingAppends.contains(where: { if case .caller = $0.waiter { return true } else { return false } })
            {
                let due = lastCommit.advanced(by: commitInterval)
                if due > ContinuousClock.now, !closing {
                    let wait = Task { _ = try? await Task.sleep(until: due, clock: .continuous) }
                    windowWait = wait
                    handedOver.withLockedValue { $0.windowOpen = true }
                    await wait.value
                    handedOver.withLockedValue { $0.windowOpen = false }
                    windowWait = nil
                    _ = takeHandedOver()
                }
            }
            let batch = Array(pendingAppends.prefix(Self.maximumBatch))
            pendingAppends.removeFirst(batch.count)
            do {
                let events = try await insert(batch)
                lastCommit = ContinuousClock.now
                for observer in observers.withLockedValue({ $0 }) { observer(events) }
                for (index, pending) in batch.enumerated() {
                    if case .caller(let continuation) = pending.waiter { continuation.resume(returning: events[index]) }
                }
                if let last = batch.last(where: { $0.journal != nil })?.journal,
                    let cleaning = handedOver.withLockedValue({ $0.journal.committed(through: last) })
                {
                    // The other file's lines are all in the log: empty it for its next turn, outside the lock.
                    var succeeded = true
                    do { try cleaning.run() } catch {
                        succeeded = false
                        Self.reportOnce(error, to: batch)
                    }
                    handedOver.withLockedValue { $0.journal.cleaned(cleaning.index, succeeded: succeeded) }
                }
            } catch {
                let failure = StoreError("cannot append to the audit log: \(error)")
                // Whoever waits hears of it and goes no further. Journaled records were already accepted
                // (their statements ran): they go back to the head of the queue and are tried again.
                var retry: [Pending] = []
                for pending in batch {
                    if case .caller(let continuation) = pending.waiter {
                        continuation.resume(throwing: failure)
                    } else {
                        retry.append(pending)
                    }
                }
                Self.reportOnce(failure, to: retry)
                // When closing, they stay in the journal, and the next start puts them in the log.
                if closing {
                    if !retry.isEmpty { keepJournal = true }
                } else {
                    pendingAppends.insert(contentsOf: retry, at: 0)
                    if !retry.isEmpty { try? await Task.sleep(for: .milliseconds(100)) }
                }
            }
        }
        for waiter in drainWaiters { waiter.resume() }
        drainWaiters = []
    }

    /// Tells one of the records handed over without waiting (its session logs it): one line per failed
    /// commit, not one per record, however often it is retried.
    private static func reportOnce(_ error: Error, to batch: [Pending]) {
        for pending in batch {
            if case .detached(let onFailure) = pending.waiter {
                onFailure(error)
                return
            }
        }
    }

    /// Seals `batch` after the chain's head and inserts it in one statement; moves the head once it is
    /// committed.
    @discardableResult
    private func insert(_ batch: [Pending]) async throws -> [AuditEvent] {
        var seq = lastSeq
        var hash = lastHash
        var events: [AuditEvent] = []
        events.reserveCapacity(batch.count)
        var bindings: [SQLiteData] = []
        bindings.reserveCapacity(batch.count * 11)
        for pending in batch {
            let detailJSON = pending.detailJSON ?? Array(AuditEvent.canonicalDetailJSON(pending.record.detail).utf8)
            let event = AuditEvent.seal(
                pending.record, seq: seq + 1, time: pending.time, prevHash: hash, detailJSON: detailJSON)
            seq = event.seq
            hash = event.hash
            events.append(event)
            bindings += [
                .integer(Int(event.seq)), .text(event.time), .text(event.type), Self.text(event.actor),
                Self.text(event.session), Self.text(event.connection), Self.text(event.source),
                .text(String(decoding: detailJSON, as: UTF8.self)), .text(event.prevHash), .text(event.hash),
                pending.journal.map { .integer(Int($0)) } ?? .null,
            ]
        }
        let rows = Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", count: events.count).joined(separator: ", ")
        let began = DispatchTime.now().uptimeNanoseconds
        do {
            _ = try await connection.query(
                "INSERT INTO audit_events (seq, time, type, actor, session, connection, source, detail, prev_hash, hash, journal) VALUES \(rows)",
                bindings)
        } catch {
            Telemetry.auditFailures.increment()
            throw error
        }
        lastSeq = seq
        lastHash = hash
        Telemetry.auditWriteLatency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds &- began))
        Telemetry.auditEvents.increment(by: Int64(events.count))
        return events
    }

    /// Returns once every append accepted so far is written (or has failed).
    public func flushAudit() async {
        guard handedOver.withLockedValue({ $0.writerAwake }) else { return }
        await withCheckedContinuation { drainWaiters.append($0) }
    }

    public func auditEvents(afterSeq: Int64, limit: Int) async throws -> [AuditEvent] {
        try await connection.query(
            "SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?", [.integer(Int(afterSeq)), .integer(limit)]
        ).map(Self.event)
    }

    public func latestAuditEvents(count: Int) async throws -> [AuditEvent] {
        try await connection.query(
            "SELECT * FROM (SELECT * FROM audit_events ORDER BY seq DESC LIMIT ?) ORDER BY seq", [.integer(count)]
        ).map(Self.event)
    }

    public func queryAudit(_ query: AuditQuery) async throws -> [AuditEvent] {
        var clauses: [String] = []
        var binds: [SQLiteData] = []
        if let match = query.typeMatch {
            if match.isPrefix {
                // substr avoids LIKE's wildcards in the value.
                clauses.append("substr(type, 1, ?) = ?")
                binds += [.integer(match.value.count), .text(match.value)]
            } else {
                clauses.append("type = ?")
                binds.append(.text(match.value))
            }
        }
        for (column, value) in [("actor", query.actor), ("session", query.session), ("connection", query.connection)] {
            if let value, !value.isEmpty {
                clauses.append("\(column) = ?")
                binds.append(.text(value))
            }
        }
        if let since = query.since {
            clauses.append("time >= ?")
            binds.append(.text(Timestamp.format(since)))
        }
        if let until = query.until {
            clauses.append("time < ?")
            binds.append(.text(Timestamp.format(until)))
        }
        if let after = query.afterSeq {
            clauses.append("seq > ?")
            binds.append(.integer(Int(after)))
        }
        if let before = query.beforeSeq {
            clauses.append("seq < ?")
            binds.append(.integer(Int(before)))
        }
        let filter = clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
        binds.append(.integer(max(0, query.limit)))
        let order = query.newestFirst ? "DESC" : "ASC"
        return try await connection.query(
            "SELECT * FROM audit_events\(filter) ORDER BY seq \(order) LIMIT ?", binds
        ).map(Self.event)
    }

    public func user(named name: String) async throws -> StoredUser? {
        try await connection.query("SELECT * FROM users WHERE name = ?", [.text(name)]).first.map(Self.user)
    }

    public func users() async throws -> [StoredUser] {
        try await connection.query("SELECT * FROM users ORDER BY name", []).map(Self.user)
    }

    public func saveUser(_ stored: StoredUser) async throws {
        _ = try await connection.query(
            """
            INSERT INTO users (name, groups, password_hash, expires_at, disabled, source) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT(name) DO UPDATE SET groups = excluded.groups, password_hash = excluded.password_hash,
                expires_at = excluded.expires_at, disabled = excluded.disabled, source = excluded.source
            """,
            [
                .text(stored.user.name), .text(stored.user.groups.joined(separator: ",")), Self.text(stored.passwordHash),
                Self.text(stored.user.expiresAt.map(Timestamp.format)), .integer(stored.user.disabled ? 1 : 0),
                .text(stored.source.rawValue),
            ])
    }

    public func setPasswordHash(_ hash: String, forUser name: String) async throws {
        _ = try await connection.query("UPDATE users SET password_hash = ? WHERE name = ?", [.text(hash), .text(name)])
    }

    public func revocations() async throws -> Revocations {
        var revocations = Revocations()
        let nowText = Timestamp.format(now())
        for row in try await connection.query("SELECT id FROM revoked_tokens WHERE expires_at > ?", [.text(nowText)]) {
            if let id = row.column("id")?.string { revocations.tokenIDs.insert(id) }
        }
        for row in try await connection.query("SELECT user, cutoff FROM user_token_cutoffs", []) {
            if let user = row.column("user")?.string, let cutoff = row.column("cutoff")?.string.flatMap(Timestamp.parse) {
                revocations.userCutoffs[user] = cutoff
            }
        }
        return revocations
    }

    public func revokeToken(id: String, expiresAt: Date) async throws {
        _ = try await connection.query(
            "INSERT OR IGNORE INTO revoked_tokens (id, expires_at) VALUES (?, ?)",
            [.text(id), .text(Timestamp.format(expiresAt))])
    }

    public func revokeTokens(ofUser name: String, issuedBefore cutoff: Date) async throws {
        _ = try await connection.query(
            "INSERT INTO user_token_cutoffs (user, cutoff) VALUES (?, ?) ON CONFLICT(user) DO UPDATE SET cutoff = excluded.cutoff",
            [.text(name), .text(Timestamp.format(cutoff))])
    }

    public func mfa(ofUser name: String) async throws -> StoredMFA? {
        guard let row = try await connection.query("SELECT * FROM mfa WHERE user = ?", [.text(name)]).first,
            let blob = row.column("sealed_secret")?.blob
        else { return nil }
        return StoredMFA(
            sealedSecret: Data(buffer: blob), confirmed: (row.column("confirmed")?.integer ?? 0) != 0,
            lastUsedStep: row.column("last_used_step")?.integer.map(Int64.init))
    }

    public func saveMFA(_ mfa: StoredMFA, forUser name: String) async throws {
        _ = try await connection.query(
            """
            INSERT INTO mfa (user, sealed_secret, confirmed, last_used_step) VALUES (?, ?, ?, ?)
            ON CONFLICT(user) DO UPDATE SET sealed_secret = excluded.sealed_secret, confirmed = excluded.confirmed,
                last_used_step = excluded.last_used_step
            """,
            [
                .text(name), .blob(ByteBuffer(bytes: mfa.sealedSecret)), .integer(mfa.confirmed ? 1 : 0),
                mfa.lastUsedStep.map { .integer(Int($0)) } ?? .null,
            ])
    }

    public func confirmMFA(forUser name: String, step: Int64) async throws {
        _ = try await connection.query(
            "UPDATE mfa SET confirmed = 1, last_used_step = ? WHERE user = ?", [.integer(Int(step)), .text(name)])
    }

    public func useMFAStep(_ step: Int64, forUser name: String) async throws -> Bool {
        // One statement, so two racing uses of the same code cannot both succeed.
        let rows = try await connection.query(
            "UPDATE mfa SET last_used_step = ? WHERE user = ? AND (last_used_step IS NULL OR last_used_step < ?) RETURNING user",
            [.integer(Int(step)), .text(name), .integer(Int(step))])
        return !rows.isEmpty
    }

    public func accessRequests() async throws -> [AccessRequest] {
        let decoder = JSONDecoder()
        return try await connection.query("SELECT body FROM access_requests", []).compactMap { row in
            guard let body = row.column("body")?.string else { return nil }
            return try decoder.decode(AccessRequest.self, from: Data(body.utf8))
        }
    }

    public func saveAccessRequest(_ request: AccessRequest) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = String(decoding: try encoder.encode(request), as: UTF8.self)
        _ = try await connection.query(
            "INSERT INTO access_requests (id, body) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body",
            [.text(request.id), .text(body)])
    }

    public func isKnownDevice(user: String, source: String, application: String) async throws -> Bool {
        try await !connection.query(
            "SELECT 1 FROM known_devices WHERE user = ? AND source = ? AND application = ?",
            [.text(user), .text(source), .text(application)]
        ).isEmpty
    }

    public func rememberDevice(user: String, source: String, application: String, at time: Date) async throws {
        _ = try await connection.query(
            "INSERT OR IGNORE INTO known_devices (user, source, application, first_seen) VALUES (?, ?, ?, ?)",
            [.text(user), .text(source), .text(application), .text(Timestamp.format(time))])
    }

    private var closing = false
    /// Whether journaled records could not be committed while closing: the next start replays them.
    private var keepJournal = false

    public func close() async throws {
        closing = true
        endCommitWindow()
        await flushAudit()
        // Everything accepted is in the log: the journal starts empty next time.
        let keep = keepJournal || !pendingAppends.isEmpty
        handedOver.withLockedValue { state in
            state.journal.close(empty: !keep && state.records.isEmpty)
        }
        try await connection.close()
    }

    private static func text(_ value: String?) -> SQLiteData {
        value.map { .text($0) } ?? .null
    }

    private static func event(_ row: SQLiteRow) -> AuditEvent {
        let detail = (row.column("detail")?.string).flatMap {
            try? JSONDecoder().decode([String: String].self, from: Data($0.utf8))
        }
        return AuditEvent(
            seq: Int64(row.column("seq")?.integer ?? 0), time: row.column("time")?.string ?? "",
            type: row.column("type")?.string ?? "", actor: row.column("actor")?.string,
            session: row.column("session")?.string, connection: row.column("connection")?.string,
            source: row.column("source")?.string, detail: detail ?? [:],
            prevHash: row.column("prev_hash")?.string ?? "", hash: row.column("hash")?.string ?? "")
    }

    private static func user(_ row: SQLiteRow) -> StoredUser {
        let groups = (row.column("groups")?.string ?? "").split(separator: ",").map(String.init)
        let user = User(
            name: row.column("name")?.string ?? "", groups: groups,
            expiresAt: row.column("expires_at")?.string.flatMap(Timestamp.parse),
            disabled: (row.column("disabled")?.integer ?? 0) != 0)
        return StoredUser(
            user: user, source: StoredUser.Source(rawValue: row.column("source")?.string ?? "") ?? .config,
            passwordHash: row.column("password_hash")?.string)
    }
}
