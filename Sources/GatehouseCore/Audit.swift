import Crypto
import Foundation

/// Stable names of audit event types. Never rename one: exports and alerting rules depend on them.
public enum AuditEventType: String, Sendable, Codable, CaseIterable {
    case gatewayStart = "gateway.start"
    case gatewayStop = "gateway.stop"
    case authSuccess = "auth.success"
    case authFailure = "auth.failure"
    case loginSuccess = "login.success"
    case loginFailure = "login.failure"
    case tokenIssued = "token.issued"
    case tokenRevoked = "token.revoked"
    case sessionStart = "session.start"
    case sessionEnd = "session.end"
    case sessionTerminated = "session.terminated"
    case sessionRefused = "session.refused"
    case cancelRequest = "session.cancel"
    case userBootstrap = "admin.bootstrap"
    case passwordSet = "admin.password_set"
    case auditExported = "audit.exported"
    case statementAllowed = "statement.allowed"
    case statementAlert = "statement.alert"
    case statementDenied = "statement.denied"
    case statementHeld = "statement.held"
    case policyLoaded = "policy.loaded"
    case policyRejected = "policy.rejected"
    case mfaEnrolled = "mfa.enrolled"
    case mfaConfirmed = "mfa.confirmed"
    case mfaFailure = "mfa.failure"
    case mfaLockedOut = "mfa.locked_out"
    case challengeCreated = "challenge.created"
    case challengeVerified = "challenge.verified"
    case challengeFailed = "challenge.failed"
    case challengeExpired = "challenge.expired"
    case challengeApproved = "challenge.approved"
    case challengeDenied = "challenge.denied"
    case challengeCancelled = "challenge.cancelled"
    case requestCreated = "request.created"
    case requestApproved = "request.approved"
    case requestDenied = "request.denied"
    case requestLapsed = "request.lapsed"
    case grantActivated = "grant.activated"
    case grantExpired = "grant.expired"
    case grantRevoked = "grant.revoked"
    case grantBreakGlass = "grant.break_glass"
    case webhookFailed = "webhook.failed"
    case databaseRoleCreated = "database_role.created"
    case databaseRoleGranted = "database_role.granted"
    case databaseRoleRevoked = "database_role.revoked"
    case mcpSessionStart = "mcp.session_start"
    case mcpSessionEnd = "mcp.session_end"
    case mcpToolCall = "mcp.tool_call"
    case mcpToolChanged = "mcp.tool_changed"
}

/// What a caller records; the log adds the sequence number, time and chain.
public struct AuditRecord: Sendable, Equatable {
    public var type: AuditEventType
    public var actor: String?
    public var session: String?
    public var connection: String?
    public var source: String?
    public var detail: [String: String]

    public init(
        _ type: AuditEventType, actor: String? = nil, session: String? = nil, connection: String? = nil,
        source: String? = nil, detail: [String: String] = [:]
    ) {
        self.type = type
        self.actor = actor.map(Self.storable)
        self.session = session.map(Self.storable)
        self.connection = connection.map(Self.storable)
        self.source = source.map(Self.storable)
        self.detail = Dictionary(detail.map { (Self.storable($0.key), Self.storable($0.value)) }) { $1 }
    }

    /// Text as the store keeps it byte for byte: U+0000, which a C string would end at (so the event
    /// would read back as something else and fail `audit verify`), is written as U+2400 SYMBOL FOR NULL.
    public static func storable(_ text: String) -> String {
        guard text.utf8.contains(0) else { return text }
        return text.replacingOccurrences(of: "\u{0}", with: "\u{2400}")
    }
}

/// One event of the tamper-evident audit chain.
///
/// `hash` is SHA-256 over `prev_hash` and the canonical JSON of every other field, so editing,
/// inserting or deleting an event breaks every later link.
public struct AuditEvent: Sendable, Equatable, Codable {
    public var seq: Int64
    public var time: String
    public var type: String
    public var actor: String?
    public var session: String?
    public var connection: String?
    public var source: String?
    public var detail: [String: String]
    public var prevHash: String
    public var hash: String

    enum CodingKeys: String, CodingKey {
        case seq, time, type, actor, session, connection, source, detail
        case prevHash = "prev_hash"
        case hash
    }

    public init(
        seq: Int64, time: String, type: String, actor: String?, session: String?, connection: String?,
        source: String?, detail: [String: String], prevHash: String, hash: String
    ) {
        self.seq = seq
        self.time = time
        self.type = type
        self.actor = actor
        self.session = session
        self.connection = connection
        self.source = source
        self.detail = detail
        self.prevHash = prevHash
        self.hash = hash
    }

    /// The hash of the link before the first event.
    public static let genesisHash = String(repeating: "0", count: 64)

    /// Seals a record as the event after `previous` (or the first one).
    public static func seal(_ record: AuditRecord, seq: Int64, time: Date, prevHash: String) -> AuditEvent {
        seal(record, seq: seq, time: Timestamp.format(time), prevHash: prevHash)
    }

    /// Seals a record with a time already formatted (`Timestamp.format`), as the journal keeps it.
    /// `detailJSON`, when given, is `canonicalDetailJSON(record.detail)` already made (the journal makes
    /// it once per statement).
    public static func seal(
        _ record: AuditRecord, seq: Int64, time: String, prevHash: String, detailJSON: [UInt8]? = nil
    ) -> AuditEvent {
        var event = AuditEvent(
            seq: seq, time: time, type: record.type.rawValue, actor: record.actor,
            session: record.session, connection: record.connection, source: record.source, detail: record.detail,
            prevHash: prevHash, hash: "")
        event.hash = event.computedHash(detailJSON: detailJSON)
        return event
    }

    /// The hash this event's content implies.
    public func computedHash() -> String {
        computedHash(detailJSON: nil)
    }

    func computedHash(detailJSON: [UInt8]?) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(prevHash.utf8))
        hasher.update(data: canonicalJSON(withHash: false, detailJSON: detailJSON))
        return Hex.encode(hasher.finalize())
    }

    /// One JSON line, as exported.
    public func jsonLine() -> String {
        String(decoding: canonicalJSON(withHash: true), as: UTF8.self)
    }

    /// Compact JSON with keys in byte order and absent fields left out: the exact bytes the chain hashes
    /// (the same as `JSONEncoder` with `.sortedKeys` and `.withoutEscapingSlashes` writes, without its cost).
    public func canonicalJSON(withHash: Bool) -> [UInt8] {
        canonicalJSON(withHash: withHash, detailJSON: nil)
    }

    func canonicalJSON(withHash: Bool, detailJSON: [UInt8]?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(UInt8(ascii: "{"))
        var first = true
        func key(_ name: StaticString) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        if let actor { key("actor"); Self.appendString(actor, to: &out) }
        if let connection { key("connection"); Self.appendString(connection, to: &out) }
        key("detail")
        if let detailJSON { out.append(contentsOf: detailJSON) } else { Self.appendDetail(detail, to: &out) }
        key("hash")
        Self.appendString(withHash ? hash : "", to: &out)
        key("prev_hash")
        Self.appendString(prevHash, to: &out)
        key("seq")
        out.append(contentsOf: Array(String(seq).utf8))
        if let session { key("session"); Self.appendString(session, to: &out) }
        if let source { key("source"); Self.appendString(source, to: &out) }
        key("time")
        Self.appendString(time, to: &out)
        key("type")
        Self.appendString(type, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A detail map as compact JSON with sorted keys (how the store keeps it).
    public static func canonicalDetailJSON(_ detail: [String: String]) -> String {
        var out: [UInt8] = []
        appendDetail(detail, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// A detail map as a JSON object with keys in byte order.
    static func appendDetail(_ detail: [String: String], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        for (index, name) in detail.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            appendString(detail[name]!, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// A JSON string with the escapes JSONEncoder uses (slashes left alone).
    static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most values need no escape: copy them whole (this showed at the top of the gateway's profile).
        let plain = text.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            for byte in bytes where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return false }
            out.append(contentsOf: bytes)
            return true
        }
        if plain == true {
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x00..<0x20:
                let digits = Array("0123456789abcdef".utf8)
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0xf)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// The verdict on a run of audit events.
public struct AuditChainReport: Sendable, Equatable, Codable {
    public var eventsChecked: Int
    public var firstSeq: Int64?
    public var lastSeq: Int64?
    public var lastHash: String?
    /// Each break found, in order: sequence number and what is wrong.
    public var problems: [Problem]

    public struct Problem: Sendable, Equatable, Codable {
        public var seq: Int64
        public var reason: String
    }

    public var isIntact: Bool { problems.isEmpty }
}

public enum AuditChain {
    /// Verifies that `events` (in order) form an unbroken chain.
    ///
    /// When `fromGenesis` is true the first event must be number 1 and link to the genesis hash;
    /// otherwise the run may start anywhere (an export of a range) and only its inner links are checked.
    public static func verify(_ events: some Sequence<AuditEvent>, fromGenesis: Bool = true) -> AuditChainReport {
        var verifier = Verifier(fromGenesis: fromGenesis)
        for event in events { verifier.add(event) }
        return verifier.report
    }

    /// Checks a chain one event at a time, so long chains need not be held in memory.
    public struct Verifier: Sendable {
        public private(set) var report = AuditChainReport(
            eventsChecked: 0, firstSeq: nil, lastSeq: nil, lastHash: nil, problems: [])
        private var previous: AuditEvent?
        private let fromGenesis: Bool

        public init(fromGenesis: Bool = true) {
            self.fromGenesis = fromGenesis
        }

        public mutating func add(_ event: AuditEvent) {
            report.eventsChecked += 1
            if report.firstSeq == nil { report.firstSeq = event.seq }
            if let previous {
                if event.seq != previous.seq + 1 {
                    report.problems.append(
                        .init(
                            seq: event.seq, reason: "expected event \(previous.seq + 1) after \(previous.seq): events are missing"
                        ))
                }
                if event.prevHash != previous.hash {
                    report.problems.append(.init(seq: event.seq, reason: "link to the previous event is broken"))
                }
            } else if fromGenesis {
                if event.seq != 1 {
                    report.problems.append(
                        .init(seq: event.seq, reason: "chain starts at \(event.seq), not at 1: events are missing"))
                }
                if event.prevHash != AuditEvent.genesisHash {
                    report.problems.append(.init(seq: event.seq, reason: "first event does not link to the genesis hash"))
                }
            }
            if event.computedHash() != event.hash {
                report.problems.append(.init(seq: event.seq, reason: "content does not match its hash: the event was edited"))
            }
            previous = event
            report.lastSeq = event.seq
            report.lastHash = event.hash
        }
    }
}

/// A filter over the audit trail. Every field narrows; none set means everything.
public struct AuditQuery: Sendable, Equatable {
    /// An event type (`statement.denied`) or a family of types ending in `.` or `*` (`statement.`, `grant.*`).
    public var type: String?
    public var actor: String?
    public var session: String?
    public var connection: String?
    /// Events at or after this time.
    public var since: Date?
    /// Events before this time.
    public var until: Date?
    /// Events with a sequence number above this one.
    public var afterSeq: Int64?
    /// Events with a sequence number below this one.
    public var beforeSeq: Int64?
    public var limit: Int
    /// Newest first (the default for a page on screen); oldest first for reading on with `afterSeq`.
    public var newestFirst: Bool

    public init(
        type: String? = nil, actor: String? = nil, session: String? = nil, connection: String? = nil, since: Date? = nil,
        until: Date? = nil, afterSeq: Int64? = nil, beforeSeq: Int64? = nil, limit: Int = 100, newestFirst: Bool = false
    ) {
        self.type = type
        self.actor = actor
        self.session = session
        self.connection = connection
        self.since = since
        self.until = until
        self.afterSeq = afterSeq
        self.beforeSeq = beforeSeq
        self.limit = limit
        self.newestFirst = newestFirst
    }

    /// The type filter as an exact name or a prefix.
    public var typeMatch: (value: String, isPrefix: Bool)? {
        guard let type, !type.isEmpty else { return nil }
        if type.hasSuffix("*") { return (String(type.dropLast()), true) }
        if type.hasSuffix(".") { return (type, true) }
        return (type, false)
    }

    /// Whether `event` passes the filter (the sequence bounds and the limit aside). The store's query
    /// must agree with this; tests hold the two together.
    public func matches(_ event: AuditEvent) -> Bool {
        if let match = typeMatch {
            if match.isPrefix ? !event.type.hasPrefix(match.value) : event.type != match.value { return false }
        }
        if let actor, !actor.isEmpty, event.actor != actor { return false }
        if let session, !session.isEmpty, event.session != session { return false }
        if let connection, !connection.isEmpty, event.connection != connection { return false }
        if let since, event.time < Timestamp.format(since) { return false }
        if let until, event.time >= Timestamp.format(until) { return false }
        return true
    }
}
