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

    /// Admins and auditors see everything: every session, request, challenge and the whole audit trail.
    public var seesAll: Bool { isAdmin || groups.contains(Group.auditors) }
}

public enum Group {
    /// Members administer Gatehouse: users, sessions, tokens, audit.
    public static let admins = "admins"
    /// Members read everything (audit trail, sessions, requests, users) and change nothing.
    public static let auditors = "auditors"
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
