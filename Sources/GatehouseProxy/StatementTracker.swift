import NIOCore
import PostgresWire
import SQLInspection

/// The server's namespace of one session, as the gateway follows it: which statement text each
/// prepared statement and portal name stands for, so that every Execute (and every SQL `EXECUTE`,
/// `FETCH`) is judged by what it runs.
///
/// The server changes its namespace in the order it reads the client's messages, and says how each
/// ended: ParseComplete, BindComplete and CloseComplete, an ErrorResponse after which it skips to the
/// next Sync, the status in ReadyForQuery (no open transaction: no portal left), a command tag per
/// statement of a simple Query. The tracker keeps the messages sent and not yet answered, and changes
/// its *confirmed* namespace only on the server's word, so a statement that the server refused (a
/// second Parse under a name in use, a Close skipped after an error) never replaces the one that
/// stays.
///
/// Until the server answers, a name may stand for more than one statement: then every one of them is
/// a candidate, and the caller judges them all. Within the current cycle (since the last Sync) the
/// server either takes every message or skips the rest after an error, so a Parse or Bind of this
/// cycle is the only candidate for messages after it.
///
/// When the server's answers do not fit the messages sent, the tracker can no longer say what a name
/// stands for: `received` says so, and the session ends.
///
/// Pure: frames in, answers out.
struct StatementTracker: Sendable {
    typealias Name = [UInt8]

    /// A statement text the gateway judged, as it may run later.
    struct Entry: Sendable, Equatable {
        /// The number of the decision that judged its text, in this session.
        var id: Int
        var sql: String
        /// What the parser made of the text (an EXECUTE in it is resolved anew at each run).
        var inspection: Inspection
        /// The cycle its text was sent in.
        var cycle: Int
        /// Whether it is what a SQL `PREPARE` or `DECLARE` named: a run of it runs the query (which
        /// changes no namespace), not the PREPARE or DECLARE around it.
        var named = false

        /// What `facts`, a PREPARE or DECLARE statement of this entry's text, names.
        func naming(_ facts: StatementFacts) -> Entry {
            Entry(id: id, sql: facts.text, inspection: Inspection(statements: [facts]), cycle: cycle, named: true)
        }
    }

    /// A message sent to the server and not yet answered.
    enum Sent: Sendable, Equatable {
        /// nil: a text the server will reject (a refusal marker).
        case parse(Name, Entry?)
        case bind(portal: Name, statement: Name, candidates: [Entry])
        case describe
        case execute(portal: Name, candidates: [Entry])
        case close(statement: Bool, Name)
        case sync
        /// A simple Query (nil: the refusal marker), and how many of its statements have completed.
        case query(Entry?, completed: Int)
        /// Flush and COPY data, which the server answers with nothing.
        case silent(UInt8)
    }

    struct Outstanding: Sendable, Equatable {
        var message: Sent
        /// The cycle it was sent in.
        var cycle: Int
        /// For a refusal marker: what the client reads in place of the server's error.
        var refusal: ErrorNoticeFields?
    }

    /// What to do with a frame of the server.
    enum Answer: Sendable, Equatable {
        case pass
        /// The server rejected a refusal marker: the client reads the refusal instead.
        case replace(ErrorNoticeFields)
        /// The server's answers no longer fit what was sent: the namespace is unknown from here on.
        case lost(String)
    }

    /// The refusal marker's text: a syntax error in the server's eyes, unguessable.
    let marker: String
    private(set) var statements: [Name: Entry] = [:]
    private(set) var portals: [Name: [Entry]] = [:]
    private(set) var pending: [Outstanding] = []
    /// The cycle being sent: a Sync or a simple Query ends one.
    private(set) var cycle = 0
    /// The server failed a message of the cycle being sent and skips the rest of it up to its Sync.
    private(set) var skipping = false
    /// The server is reading COPY data for the message at the head of `pending`.
    private(set) var copyIn = false
    /// A refusal marker is in the current cycle: the server will skip what follows it up to the Sync.
    private var cycleRefused = false
    /// The server is in a failed transaction block (its last ReadyForQuery said so, and no statement
    /// has ended the block since): an error there aborts nothing more, so the portals stay.
    private var failedBlock = false

    init(marker: String) {
        self.marker = marker
    }

    /// Whether what is sent now will be skipped by the server: an earlier message of this cycle fails.
    var cycleDoomed: Bool { cycleRefused || skipping }

    /// Whether refusals are waiting for the server's answer.
    var hasPendingRefusals: Bool { pending.contains { $0.refusal != nil } }

    // MARK: What the client's side sends

    /// A frame goes to the server, in order. `entry` is the judged text of a Parse or Query; a frame
    /// with a `refusal` is a marker the server rejects.
    mutating func sent(_ frame: PostgresFrame, entry: Entry? = nil, refusal: ErrorNoticeFields? = nil) {
        let message: Sent
        switch frame.type {
        case FrontendMessageType.parse:
            message = .parse(Self.firstName(frame.body), refusal == nil ? entry : nil)
        case FrontendMessageType.bind:
            var body = frame.body
            let portal = Self.readName(&body)
            let statement = Self.readName(&body)
            message = .bind(portal: portal, statement: statement, candidates: statementCandidates(statement) ?? [])
        case FrontendMessageType.describe:
            message = .describe
        case FrontendMessageType.execute:
            let portal = Self.firstName(frame.body)
            message = .execute(portal: portal, candidates: portalCandidates(portal) ?? [])
        case FrontendMessageType.close:
            var body = frame.body
            let kind = body.readInteger(as: UInt8.self)
            message = .close(statement: kind == UInt8(ascii: "S"), Self.readName(&body))
        case FrontendMessageType.sync:
            message = .sync
        case FrontendMessageType.query:
            message = .query(refusal == nil ? entry : nil, completed: 0)
        default:
            message = .silent(frame.type)
        }
        let endsCycle = message == .sync || frame.type == FrontendMessageType.query
        if !skipping || message == .sync {
            // While skipping, the server answers nothing until the Sync.
            skipping = false
            pending.append(Outstanding(message: message, cycle: cycle, refusal: refusal))
            if refusal != nil, frame.type != FrontendMessageType.query { cycleRefused = true }
        }
        if endsCycle {
            cycle += 1
            cycleRefused = false
        }
        if copyIn { consumeCopy() }
    }

    /// The messages of the cycle being sent, last first.
    private var currentCycle: some Sequence<Sent> {
        pending.reversed().lazy.prefix { $0.cycle == cycle }.map(\.message)
    }

    private var earlierCycles: some Sequence<Sent> {
        pending.lazy.prefix { $0.cycle != cycle }.map(\.message)
    }

    /// What an Execute of `portal` sent now may run: nil when no statement the gateway judged can be
    /// bound to that name.
    func portalCandidates(_ portal: Name) -> [Entry]? {
        for message in currentCycle {
            switch message {
            case .bind(portal, _, let candidates): return candidates.isEmpty ? nil : candidates
            case .close(false, portal): return nil
            default: continue
            }
        }
        var result = portals[portal] ?? []
        for message in earlierCycles {
            switch message {
            case .bind(portal, _, let candidates): result += candidates
            case .query(let entry?, _): result += Self.cursorsDeclared(portal, by: entry)
            default: continue
            }
        }
        return result.isEmpty ? nil : Self.unique(result)
    }

    /// What a statement name stands for, for a message sent now (Bind, or an EXECUTE in SQL).
    func statementCandidates(_ name: Name) -> [Entry]? {
        for message in currentCycle {
            switch message {
            case .parse(name, let entry): return entry.map { [$0] }
            case .close(true, name): return nil
            default: continue
            }
        }
        var result = statements[name].map { [$0] } ?? []
        for message in earlierCycles {
            switch message {
            case .parse(name, let entry?): result.append(entry)
            case .query(let entry?, _) where !name.isEmpty: result += Self.statementsPrepared(name, by: entry)
            default: continue
            }
        }
        return result.isEmpty ? nil : Self.unique(result)
    }

    /// Whether an Execute of `portal` sent now is the first run of a statement parsed and bound in this
    /// same cycle: its Parse's decision, moments ago, is its decision.
    func isFirstRunOfThisCycle(_ portal: Name) -> Bool {
        for message in currentCycle {
            switch message {
            case .execute(portal, _), .close(false, portal): return false
            case .bind(portal, _, let candidates): return candidates.count == 1 && candidates[0].cycle == cycle
            default: continue
            }
        }
        return false
    }

    // MARK: What the server answers

    /// What to do with the server's frame.
    mutating func received(_ type: UInt8, _ body: ByteBuffer) -> Answer {
        switch type {
        case MessageType.noticeResponse, MessageType.parameterStatus, UInt8(ascii: "A"), UInt8(ascii: "D"),
            UInt8(ascii: "d"), UInt8(ascii: "c"), UInt8(ascii: "H"), UInt8(ascii: "W"), UInt8(ascii: "t"):
            return .pass
        default:
            break
        }
        dropSilent()
        guard let head = pending.first else {
            // An error the server sends of its own accord (a FATAL as it shuts down) answers nothing.
            if type == MessageType.errorResponse { return .pass }
            return .lost("the server sent '\(Character(UnicodeScalar(type)))' with nothing to answer")
        }
        switch (type, head.message) {
        case (UInt8(ascii: "1"), .parse(let name, let entry)):
            statements[name] = entry
            pending.removeFirst()
        case (UInt8(ascii: "2"), .bind(let portal, let statement, _)):
            portals[portal] = statements[statement].map { [$0] }
            pending.removeFirst()
        case (UInt8(ascii: "3"), .close(let isStatement, let name)):
            if isStatement { statements[name] = nil } else { portals[name] = nil }
            pending.removeFirst()
        case (UInt8(ascii: "T"), .describe), (UInt8(ascii: "n"), .describe):
            pending.removeFirst()
        case (UInt8(ascii: "T"), .query), (UInt8(ascii: "I"), .query):
            beginQuery()
        case (UInt8(ascii: "G"), .execute), (UInt8(ascii: "G"), .query):
            beginQuery()
            copyIn = true
            consumeCopy()
        case (UInt8(ascii: "C"), .execute(_, let candidates)):
            copyIn = false
            ended(tag: Self.tag(body))
            // A statement SQL prepared or a cursor declared runs its query, not the PREPARE or DECLARE.
            if candidates.count == 1, !candidates[0].named, let facts = candidates[0].inspection.statements.first,
                let lost = completed(facts, tag: Self.tag(body), entry: candidates[0])
            {
                return .lost(lost)
            }
            pending.removeFirst()
        case (UInt8(ascii: "I"), .execute), (UInt8(ascii: "s"), .execute):
            pending.removeFirst()
        case (UInt8(ascii: "C"), .query(let entry, let done)):
            // After an error a simple Query runs nothing more.
            if done == Int.max { return .lost("the server completed '\(Self.tag(body))' after the query failed") }
            copyIn = false
            beginQuery()
            ended(tag: Self.tag(body))
            if let entry, done < entry.inspection.statements.count,
                let lost = completed(entry.inspection.statements[done], tag: Self.tag(body), entry: entry)
            {
                return .lost(lost)
            }
            pending[0].message = .query(entry, completed: done + 1)
        case (MessageType.errorResponse, _):
            let refusal = head.refusal
            failed(head.message)
            if let refusal, let message = ErrorNoticeFields.decode(body).message, message.contains(marker) {
                return .replace(refusal)
            }
        case (MessageType.readyForQuery, .sync), (MessageType.readyForQuery, .query):
            copyIn = false
            beginQuery()
            pending.removeFirst()
            var body = body
            let status = body.readInteger(as: UInt8.self)
            if status == UInt8(ascii: "I") { portals.removeAll() }
            failedBlock = status == UInt8(ascii: "E")
        default:
            return .lost("the server sent '\(Character(UnicodeScalar(type)))' in answer to \(head.message)")
        }
        return .pass
    }

    /// The server failed `head`: it skips the rest of an extended-protocol cycle, and the failed
    /// transaction's portals cannot run again.
    private mutating func failed(_ head: Sent) {
        if !failedBlock { portals.removeAll() }
        copyIn = false
        switch head {
        case .query(let entry, _):
            // Only a Query's own statements are skipped; it still ends with ReadyForQuery.
            beginQuery()
            pending[0].message = .query(entry, completed: Int.max)
            pending[0].refusal = nil
        case .sync:
            // A commit that failed at Sync: ReadyForQuery follows.
            break
        case .parse(let name, _):
            // A Parse of the unnamed statement drops the old one before it parses the new text.
            if name.isEmpty { statements[name] = nil }
            skipToSync()
        case .bind, .describe, .execute, .close, .silent:
            skipToSync()
        }
    }

    /// After an error in an extended-protocol message the server reads up to the next Sync, answering
    /// nothing.
    private mutating func skipToSync() {
        pending.removeFirst()
        if let sync = pending.firstIndex(where: { $0.message == .sync }) {
            pending.removeFirst(sync)
        } else {
            // The Sync is not sent yet: what is sent until it is skipped.
            skipping = true
            pending.removeAll()
        }
    }

    /// A simple Query or an Execute under COPY FROM STDIN reads the messages after it: COPY data up to
    /// CopyDone or CopyFail, and Flush and Sync, which it ignores; any other message fails the COPY.
    private mutating func consumeCopy() {
        while copyIn, pending.count > 1 {
            let next = pending.remove(at: 1)
            switch next.message {
            case .silent(FrontendMessageType.copyDone), .silent(FrontendMessageType.copyFail):
                copyIn = false
            case .silent, .sync:
                continue
            default:
                // The server fails the COPY on it (the message is read and gone).
                copyIn = false
            }
        }
    }

    /// A statement completed: one that ends the transaction (or, in a failed block, the only kind that
    /// runs there: COMMIT, ROLLBACK, ROLLBACK TO, PREPARE TRANSACTION) drops its portals. A rollback to
    /// a savepoint drops only those of the savepoint, but the tracker forgets them all: a portal of the
    /// server that the gateway does not know is refused, never misjudged.
    private mutating func ended(tag: String) {
        guard failedBlock || tag == "COMMIT" || tag == "ROLLBACK" || tag == "PREPARE TRANSACTION" else { return }
        portals.removeAll()
        failedBlock = false
    }

    /// A simple Query drops the unnamed statement before it runs.
    private mutating func beginQuery() {
        if case .query? = pending.first?.message { statements[[]] = nil }
    }

    /// A statement completed with `tag`: what it did to the namespace.
    private mutating func completed(_ facts: StatementFacts, tag: String, entry: Entry) -> String? {
        switch facts.primary {
        case .prepare:
            guard tag == "PREPARE" else { return Self.mismatch(facts, tag) }
            if let name = facts.preparedName {
                statements[Array(name.utf8)] = entry.naming(facts)
            }
        case .deallocate:
            guard tag.hasPrefix("DEALLOCATE") else { return Self.mismatch(facts, tag) }
            if let name = facts.preparedName {
                statements[Array(name.utf8)] = nil
            } else {
                statements = statements.filter { $0.key.isEmpty }
            }
        case .discard where tag == "DISCARD ALL":
            statements = statements.filter { $0.key.isEmpty }
            portals.removeAll()
        case .cursor:
            switch facts.cursorUse {
            case .declare?:
                guard tag == "DECLARE CURSOR" else { return Self.mismatch(facts, tag) }
                if let name = facts.cursorName {
                    portals[Array(name.utf8)] = [entry.naming(facts)]
                }
            case .close?:
                if let name = facts.cursorName { portals[Array(name.utf8)] = nil } else { portals.removeAll() }
            default:
                break
            }
        default:
            break
        }
        return nil
    }

    private static func mismatch(_ facts: StatementFacts, _ tag: String) -> String {
        "the server completed '\(tag)' where the gateway expected \(facts.primary.rawValue)"
    }

    /// Messages the server answers with nothing are done once they reach the head.
    private mutating func dropSilent() {
        while !copyIn, case .silent? = pending.first?.message { pending.removeFirst() }
    }

    // MARK: Reading

    private static func firstName(_ body: ByteBuffer) -> Name {
        var body = body
        return readName(&body)
    }

    private static func readName(_ body: inout ByteBuffer) -> Name {
        guard let end = body.readableBytesView.firstIndex(of: 0) else { return [] }
        let name = Array(body.readableBytesView[..<end])
        body.moveReaderIndex(forwardBy: name.count + 1)
        return name
    }

    private static func tag(_ body: ByteBuffer) -> String {
        String(decoding: body.readableBytesView.prefix { $0 != 0 }, as: UTF8.self)
    }

    private static func statementsPrepared(_ name: Name, by entry: Entry) -> [Entry] {
        entry.inspection.statements.filter { $0.primary == .prepare && $0.preparedName.map { Array($0.utf8) } == name }.map {
            entry.naming($0)
        }
    }

    private static func cursorsDeclared(_ name: Name, by entry: Entry) -> [Entry] {
        entry.inspection.statements.filter { $0.cursorUse == .declare && $0.cursorName.map { Array($0.utf8) } == name }.map {
            entry.naming($0)
        }
    }

    private static func unique(_ entries: [Entry]) -> [Entry] {
        var result: [Entry] = []
        for entry in entries where !result.contains(entry) { result.append(entry) }
        return result
    }
}
