import Foundation
import SQLInspection

/// What the gateway does with a statement. Ordered from least to most restrictive: when several rules
/// match, the most restrictive action wins.
public enum PolicyAction: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    /// Let it through.
    case allow
    /// Let it through and record a notification.
    case alert
    /// Hold it until the user proves who they are again (e.g. a TOTP code).
    case stepUp = "step_up"
    /// Hold it until another person approves it.
    case approve
    /// Refuse it.
    case deny

    private var rank: Int {
        switch self {
        case .allow: 0
        case .alert: 1
        case .stepUp: 2
        case .approve: 3
        case .deny: 4
        }
    }

    public static func < (a: PolicyAction, b: PolicyAction) -> Bool { a.rank < b.rank }

    /// Whether the statement may run without anything more from anyone.
    public var proceeds: Bool { self == .allow || self == .alert }
}

/// `enforce` rules decide; `shadow` rules are evaluated and audited as "would have", never enforced.
public enum RuleMode: String, Sendable, Hashable, Codable {
    case enforce, shadow
}

/// A validated policy: rules plus the defaults that apply when none matches.
public struct Policy: Sendable, Equatable {
    public var rules: [Rule]
    /// When no rule matches a classified statement.
    public var defaultAction: PolicyAction
    /// Per-connection overrides of `defaultAction`.
    public var connectionDefaults: [String: PolicyAction]
    /// For statements that cannot be classified (unparsable, unknown kind, dynamic SQL) unless a rule
    /// names that fact explicitly. Deny unless configured otherwise.
    public var unclassifiedAction: PolicyAction

    public init(
        rules: [Rule] = [], defaultAction: PolicyAction = .allow, connectionDefaults: [String: PolicyAction] = [:],
        unclassifiedAction: PolicyAction = .deny
    ) {
        self.rules = rules
        self.defaultAction = defaultAction
        self.connectionDefaults = connectionDefaults
        self.unclassifiedAction = unclassifiedAction
    }

    /// The policy when none is configured: statements that can be classified pass, others are refused.
    public static let permissive = Policy()
}

/// One rule: a name, what it matches and what it does.
public struct Rule: Sendable, Equatable {
    public var name: String
    public var action: PolicyAction
    public var mode: RuleMode = .enforce
    public var match: RuleMatch
    /// Shown to the user on denial or hold; the rule's name is always shown too.
    public var message: String?
    /// What would allow the statement, shown as the error's hint.
    public var hint: String?
    /// For `step_up`: the method, and how long a proof counts for further statements of the session.
    public var stepUp: StepUpRequirement?
    /// For `approve`: users or groups (`group:NAME`) who may approve.
    public var approvers: [String] = []
    /// For `approve`: the approver must give their own second factor.
    public var approverStepUp = false

    public init(name: String, action: PolicyAction, match: RuleMatch, mode: RuleMode = .enforce) {
        self.name = name
        self.action = action
        self.match = match
        self.mode = mode
    }
}

public struct StepUpRequirement: Sendable, Equatable {
    public var method: String = "totp"
    public var maxAge: TimeInterval?

    public init(method: String = "totp", maxAge: TimeInterval? = nil) {
        self.method = method
        self.maxAge = maxAge
    }
}

/// Conditions of a rule; every condition given must hold (nil means "any").
public struct RuleMatch: Sendable, Equatable {
    // Who, where, how
    public var connections: [Glob]?
    public var users: [Glob]?
    public var groups: [String]?
    /// Elevated roles held through an active grant (e.g. `dba`).
    public var roles: [String]?
    /// true: only under an elevated grant; false: only without one.
    public var elevated: Bool?
    public var sourceCIDRs: [CIDR]?
    public var notSourceCIDRs: [CIDR]?
    /// ISO country codes of the source address, from the GeoIP database.
    public var countries: [String]?
    public var notCountries: [String]?
    public var applications: [Glob]?
    /// true: the session is an AI agent's, come in over MCP; false: it is not.
    public var agent: Bool?
    /// The agent's client name (what its MCP client says it is) matches one of these.
    public var agents: [Glob]?
    /// Matches inside (`during`) or outside (`outside`) these windows.
    public var during: TimeWindow?
    public var outside: TimeWindow?
    /// The session is at least this old / has been idle at least this long.
    public var sessionAgeAtLeast: TimeInterval?
    public var idleAtLeast: TimeInterval?
    /// true: the user has never proven a second factor from this source address with this client.
    public var newDevice: Bool?

    // What the statement does
    public var kinds: Set<StatementKind>?
    public var objectTypes: Set<String>?
    /// Tables read or written.
    public var tables: [TablePattern]?
    public var tablesRead: [TablePattern]?
    public var tablesWritten: [TablePattern]?
    /// A write to any table none of these surely match, or a write whose tables the parser cannot name
    /// (the exception a rule carves out: `writes outside the safe table`). Without a schema a pattern
    /// means `public` (see `TablePattern.surelyMatches`).
    public var notTablesWritten: [TablePattern]?
    public var writes: Bool?
    public var wherelessWrite: Bool?
    public var functions: [Glob]?
    public var multiStatement: Bool?
    public var unparsable: Bool?
    public var dynamic: Bool?
    public var copyProgram: Bool?
    /// Calls a built-in function that signals or administers the server, or that only superusers and
    /// predefined roles may run.
    public var adminFunctions: Bool?
    /// Reads or writes files on the database server (COPY to or from a file, file functions).
    public var fileAccess: Bool?
    /// Calls a function that is not built in: its effect cannot be known from the text.
    public var userFunctions: Bool?
    /// Changes a setting whose name matches (SET, RESET, set_config); a setting computed when the
    /// statement runs matches every pattern.
    public var settings: [Glob]?

    public init() {}

    /// Whether the rule speaks about unclassifiable statements, so it may decide them.
    var namesUnclassified: Bool {
        unparsable == true || dynamic == true || kinds?.contains(.unknown) == true
    }
}

/// A `*` wildcard pattern over names (`*` matches any run of characters).
public struct Glob: Sendable, Equatable, CustomStringConvertible {
    public let pattern: String
    private let bytes: [UInt8]
    private let hasWildcard: Bool

    public init(_ pattern: String) {
        self.pattern = pattern
        self.bytes = Array(pattern.utf8)
        self.hasWildcard = pattern.contains("*")
    }

    public static func == (a: Glob, b: Glob) -> Bool { a.pattern == b.pattern }

    public var description: String { pattern }

    public func matches(_ text: String) -> Bool {
        guard hasWildcard else { return text == pattern }
        var text = text
        return text.withUTF8 { Self.match(bytes, $0) }
    }

    private static func match(_ p: [UInt8], _ t: UnsafeBufferPointer<UInt8>) -> Bool {
        var pi = 0
        var ti = 0
        var star = -1
        var mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] != UInt8(ascii: "*"), p[pi] == t[ti] {
                pi += 1
                ti += 1
            } else if pi < p.count, p[pi] == UInt8(ascii: "*") {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}

/// `schema.table` patterns with `*`; a pattern without a schema matches the table in any schema.
public struct TablePattern: Sendable, Equatable, CustomStringConvertible {
    public var schema: Glob?
    public var table: Glob

    public init(_ text: String) {
        if let dot = text.lastIndex(of: ".") {
            schema = Glob(String(text[..<dot]))
            table = Glob(String(text[text.index(after: dot)...]))
        } else {
            schema = nil
            table = Glob(text)
        }
    }

    public var description: String { schema.map { "\($0).\(table)" } ?? table.description }

    /// For exceptions (`not_tables_written`), where a loose match would let a write through: the table
    /// is surely this one. A pattern without a schema means `public`; a table named without a schema
    /// is this one only if every schema the session's search path may resolve it to matches.
    public func surelyMatches(_ name: TableName, _ searchPath: SearchPath) -> Bool {
        guard table.matches(name.name) else { return false }
        let schema = self.schema ?? Glob("public")
        if let named = name.schema { return schema.matches(named) }
        return !searchPath.anySchema && searchPath.schemas.allSatisfy { schema.matches($0) }
    }

    /// A table named without a schema is matched where the session's search path may find it
    /// (`public` unless the session set another path), and by schema-less patterns.
    public func matches(_ name: TableName, _ searchPath: SearchPath = SearchPath()) -> Bool {
        guard table.matches(name.name) else { return false }
        guard let schema else { return true }
        guard let named = name.schema else { return searchPath.mayResolve(to: schema) }
        return schema.matches(named)
    }
}

/// An IPv4 or IPv6 network in CIDR notation.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    public let address: [UInt8]
    public let prefixLength: Int
    public let text: String

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let address = Self.parseAddress(String(parts[0])) else { return nil }
        let maximum = address.count * 8
        let length = parts.count == 2 ? Int(parts[1]) : maximum
        guard let length, (0...maximum).contains(length) else { return nil }
        self.address = address
        self.prefixLength = length
        self.text = text
    }

    public var description: String { text }

    public func contains(_ addressText: String) -> Bool {
        guard let candidate = Self.parseAddress(addressText) else { return false }
        return contains(address: candidate)
    }

    /// `candidate` as `parseAddress` returns it.
    public func contains(address candidate: [UInt8]) -> Bool {
        var candidate = candidate
        // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address.
        if address.count == 4, candidate.count == 16, candidate[0..<10].allSatisfy({ $0 == 0 }),
            candidate[10] == 0xff, candidate[11] == 0xff
        {
            candidate = Array(candidate[12...])
        }
        guard candidate.count == address.count else { return false }
        var remaining = prefixLength
        for index in 0..<address.count where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            if address[index] & mask != candidate[index] & mask { return false }
            remaining -= bits
        }
        return true
    }

    public static func parseAddress(_ text: String) -> [UInt8]? {
        if !text.contains(":") {
            let octets = text.split(separator: ".", omittingEmptySubsequences: false)
            guard octets.count == 4 else { return nil }
            var bytes: [UInt8] = []
            for octet in octets {
                guard let value = UInt8(octet), octet.count <= 3 else { return nil }
                bytes.append(value)
            }
            return bytes
        }
        var text = Substring(text)
        if let percent = text.firstIndex(of: "%") { text = text[..<percent] }
        var tail: [UInt8] = []
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard let v4 = parseAddress(String(text[text.index(after: lastColon)...])) else { return nil }
            tail = v4
            text = text[...lastColon]
            if text.hasSuffix("::") == false { text = text.dropLast() }
        }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var values: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard group.count <= 4, let value = UInt16(group, radix: 16) else { return nil }
                values.append(value)
            }
            return values
        }
        guard let head = groups(halves[0]) else { return nil }
        let rest = halves.count == 2 ? groups(halves[1]) : []
        guard let rest else { return nil }
        let tailGroups = tail.count / 2
        let missing = 8 - head.count - rest.count - tailGroups
        if halves.count == 1 && missing != 0 { return nil }
        if halves.count == 2 && missing < 1 { return nil }
        var bytes: [UInt8] = []
        for value in head + Array(repeating: 0, count: halves.count == 2 ? missing : 0) + rest {
            bytes.append(UInt8(value >> 8))
            bytes.append(UInt8(value & 0xff))
        }
        return bytes + tail
    }
}

/// Weekdays and a daily time range in a time zone, e.g. Monday to Friday 09:00–18:00 Europe/Paris.
public struct TimeWindow: Sendable, Equatable {
    /// 1 = Sunday ... 7 = Saturday (Foundation's numbering).
    public var weekdays: Set<Int>
    /// Minutes after midnight; `end` may be less than `start` for a window that spans midnight.
    public var start: Int
    public var end: Int
    public var timeZone: TimeZone
    /// The zone as the configuration names it: Foundation may call `UTC` `GMT`, and people should read
    /// back what they wrote.
    public var zoneName: String

    public init(weekdays: Set<Int>, start: Int, end: Int, timeZone: TimeZone, zoneName: String? = nil) {
        self.weekdays = weekdays
        self.start = start
        self.end = end
        self.timeZone = timeZone
        self.zoneName = zoneName ?? timeZone.identifier
    }

    public static func == (a: TimeWindow, b: TimeWindow) -> Bool {
        a.weekdays == b.weekdays && a.start == b.start && a.end == b.end && a.timeZone == b.timeZone
    }

    public func contains(_ date: Date) -> Bool {
        // Arithmetic on the zone's offset at that instant: the same answer as a Calendar, without one
        // (a Calendar lookup per statement showed in profiles).
        let local = date.timeIntervalSince1970 + Double(timeZone.secondsFromGMT(for: date))
        let days = Int((local / 86_400).rounded(.down))
        // 1970-01-01 was a Thursday (5 in Foundation's numbering, Sunday = 1).
        let weekday = ((days + 4) % 7 + 7) % 7 + 1
        let minutes = Int(((local - Double(days) * 86_400) / 60).rounded(.down))
        if start <= end {
            return weekdays.contains(weekday) && minutes >= start && minutes < end
        }
        // Spans midnight: the part after midnight belongs to the previous day's window.
        if minutes >= start { return weekdays.contains(weekday) }
        if minutes < end { return weekdays.contains(weekday == 1 ? 7 : weekday - 1) }
        return false
    }

    public static let weekdayNames = ["sun": 1, "mon": 2, "tue": 3, "wed": 4, "thu": 5, "fri": 6, "sat": 7]
}
