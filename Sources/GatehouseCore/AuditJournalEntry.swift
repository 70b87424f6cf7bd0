import Foundation

/// One line of the audit journal: a record the gateway has accepted but the audit log may not have
/// committed yet, written before the statement it describes goes on.
///
/// The journal is what makes a hand-over crash-safe. The proxy does not wait for the log's commit, but
/// the line is already in the kernel's hands when the statement is forwarded, so a gateway that dies
/// before its next commit loses nothing: the store replays the lines the log lacks when it opens.
public struct AuditJournalEntry: Sendable, Equatable, Decodable {
    /// Increases by one per line, across restarts; the log keeps the number of each journaled event.
    public var number: Int64
    /// When the gateway accepted the record: the event's time in the chain.
    public var time: String
    public var record: AuditRecord

    public init(number: Int64, time: String, record: AuditRecord) {
        self.number = number
        self.time = time
        self.record = record
    }

    enum CodingKeys: String, CodingKey {
        case number = "n"
        case time, type, actor, session, connection, source, detail
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        number = try container.decode(Int64.self, forKey: .number)
        time = try container.decode(String.self, forKey: .time)
        let typeName = try container.decode(String.self, forKey: .type)
        guard let type = AuditEventType(rawValue: typeName) else {
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container, debugDescription: "unknown audit event type '\(typeName)'")
        }
        record = AuditRecord(
            type, actor: try container.decodeIfPresent(String.self, forKey: .actor),
            session: try container.decodeIfPresent(String.self, forKey: .session),
            connection: try container.decodeIfPresent(String.self, forKey: .connection),
            source: try container.decodeIfPresent(String.self, forKey: .source),
            detail: try container.decode([String: String].self, forKey: .detail))
    }

    /// The line as written: compact JSON and a newline, built by hand because it is written per
    /// statement (the same escapes as the chain's canonical JSON; `JSONDecoder` reads it back).
    public func line() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(320)
        write(to: &out)
        return out
    }

    /// Appends the line to `out` (a buffer kept between lines saves an allocation per statement), and
    /// returns where in `out` the detail's JSON is: the canonical form the chain hashes, made once.
    @discardableResult
    public func write(to out: inout [UInt8]) -> Range<Int> {
        out.append(contentsOf: #"{"n":"#.utf8)
        out.append(contentsOf: String(number).utf8)
        out.append(contentsOf: #","time":"#.utf8)
        AuditEvent.appendString(time, to: &out)
        out.append(contentsOf: #","type":"#.utf8)
        AuditEvent.appendString(record.type.rawValue, to: &out)
        func field(_ name: StaticString, _ value: String?) {
            guard let value else { return }
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            AuditEvent.appendString(value, to: &out)
        }
        field(#","actor":"#, record.actor)
        field(#","session":"#, record.session)
        field(#","connection":"#, record.connection)
        field(#","source":"#, record.source)
        out.append(contentsOf: #","detail":"#.utf8)
        let detailStart = out.count
        AuditEvent.appendDetail(record.detail, to: &out)
        let detail = detailStart..<out.count
        out.append(contentsOf: "}\n".utf8)
        return detail
    }

    /// What a journal file holds, in order: the entries it could read, and how many lines it could not
    /// (a line cut short when the machine itself stopped mid-write).
    public static func read(_ contents: [UInt8]) -> (entries: [AuditJournalEntry], unreadable: Int) {
        var entries: [AuditJournalEntry] = []
        var unreadable = 0
        let decoder = JSONDecoder()
        for line in contents.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            if let entry = try? decoder.decode(AuditJournalEntry.self, from: Data(line)) {
                entries.append(entry)
            } else {
                unreadable += 1
            }
        }
        return (entries, unreadable)
    }
}
