import Foundation

/// A person or machine that authenticates to Gatehouse.
public struct User: Sendable, Equatable, Codable {
    public var name: String
    public var groups: [String]
    /// When a time-limited identity (a vendor, a contractor) stops being valid.
    public var expiresAt: Date?
    public var disabled: Bool

    public init(name: String, groups: [String], expiresAt: Date? = nil, disabled: Bool = false) {
        self.name = name
        self.groups = groups
        self.expiresAt = expiresAt
        self.disabled = disabled
    }

    /// Whether this identity may authenticate at `now`; the reason when it may not.
    public func refusal(at now: Date) -> String? {
        if disabled { return "user \(name) is disabled" }
        if let expiresAt, expiresAt <= now { return "user \(name) expired at \(Timestamp.format(expiresAt))" }
        return nil
    }

    public var isAdmin: Bool { groups.contains(Group.admins) }
}

public enum Group {
    /// Members administer Gatehouse: users, sessions, tokens, audit.
    public static let admins = "admins"
}

/// User names, connection names and group names share one rule: a letter first, then letters,
/// digits, `_`, `-` or `.`, at most 63 characters (PostgreSQL's identifier limit).
public enum Name {
    public static func isValid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 63 else { return false }
        let letters = CharacterSet.letters
        guard letters.contains(first) else { return false }
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_-."))
        return name.unicodeScalars.allSatisfy { allowed.contains($0) && $0.isASCII }
    }
}

/// RFC 3339 timestamps with milliseconds, UTC: one format everywhere a time is written down.
public enum Timestamp {
    public static func format(_ date: Date) -> String {
        date.formatted(
            .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true)
                .timeSeparator(.colon).timeZone(separator: .omitted))
    }

    public static func parse(_ string: String) -> Date? {
        if let date = try? Date(string, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true)) {
            return date
        }
        if let date = try? Date(string, strategy: .iso8601) { return date }
        return try? Date(string, strategy: .iso8601.year().month().day())
    }
}

/// Durations as people write them in config and on the command line: `90s`, `15m`, `12h`, `7d`, `1h30m`.
public enum DurationText {
    public static func parse(_ text: String) -> TimeInterval? {
        var total: TimeInterval = 0
        var number = ""
        var sawUnit = false
        for character in text.trimmingCharacters(in: .whitespaces) {
            if character.isNumber {
                number.append(character)
                continue
            }
            guard let value = Double(number) else { return nil }
            switch character {
            case "s": total += value
            case "m": total += value * 60
            case "h": total += value * 3600
            case "d": total += value * 86400
            default: return nil
            }
            number = ""
            sawUnit = true
        }
        guard number.isEmpty, sawUnit, total > 0 else { return nil }
        return total
    }

    public static func format(_ interval: TimeInterval) -> String {
        var seconds = Int(interval.rounded())
        var parts: [String] = []
        for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60)] where seconds >= size {
            parts.append("\(seconds / size)\(unit)")
            seconds %= size
        }
        if seconds > 0 || parts.isEmpty { parts.append("\(seconds)s") }
        return parts.joined()
    }
}
