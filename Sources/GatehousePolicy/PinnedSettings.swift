import SQLInspection

/// Settings that decide how the server reads SQL text, pinned for every session: the gateway's parser
/// reads UTF-8 with standard-conforming strings, so the server must too. A statement that would change
/// them is refused whatever the policy says; going back to the session's start value (RESET, DEFAULT)
/// is allowed, since sessions start pinned.
public enum PinnedSettings {
    /// Why `inspection` may not run, or nil.
    public static func violation(in inspection: Inspection) -> String? {
        for facts in inspection.statements {
            for change in facts.settings {
                if let reason = violation(change) { return reason }
            }
        }
        return nil
    }

    public static func violation(_ change: SettingChange) -> String? {
        guard let name = change.name else {
            return
                "the statement changes a setting it names only when it runs, which could change how the server reads SQL text (client_encoding, standard_conforming_strings)"
        }
        switch (name, change.kind) {
        case (_, .reset):
            return nil
        case ("client_encoding", .value):
            let value = change.values.first ?? ""
            if change.values.count == 1, ["utf8", "unicode"].contains(normalizedEncoding(value)) { return nil }
            return
                "client_encoding \(change.values.joined(separator: ",")) is not supported: Gatehouse sessions use UTF8, the encoding its statement checks read"
        case ("standard_conforming_strings", .value):
            if change.values.count == 1, PostgresBool.parse(change.values[0]) == true { return nil }
            return
                "standard_conforming_strings \(change.values.joined(separator: ",")) is not supported: Gatehouse sessions use standard-conforming strings, as its statement checks read them"
        case ("client_encoding", .computed), ("standard_conforming_strings", .computed):
            return "\(name) is pinned for Gatehouse sessions and cannot be set to a computed value"
        default:
            return nil
        }
    }

    public static let hint =
        "Gatehouse sessions stay in UTF8 with standard_conforming_strings on; write backslash escapes as E'...'"

    /// An encoding name as the server compares it (`clean_encoding_name`): letters and digits only, lower case.
    public static func normalizedEncoding(_ name: String) -> String {
        String(
            String.UnicodeScalarView(
                name.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)) })
        )
        .lowercased()
    }
}

/// PostgreSQL's `parse_bool`: any prefix of true/false/yes/no, on/off (at least `on`/`of`), 1/0, any case.
public enum PostgresBool {
    public static func parse(_ text: String) -> Bool? {
        let value = text.lowercased()
        guard !value.isEmpty else { return nil }
        if "true".hasPrefix(value) || "yes".hasPrefix(value) { return true }
        if "false".hasPrefix(value) || "no".hasPrefix(value) { return false }
        if value == "on" || value == "1" { return true }
        if value == "off" || value == "of" || value == "0" { return false }
        return nil
    }
}

/// On a connection whose people have database roles of their own, a session is its person: it logs in
/// as their role, and nothing it sends may change who it runs as. Refused whatever the policy says.
/// Going back to the login role (RESET ALL, DISCARD ALL) needs no refusal: it is the person's own.
public enum PinnedIdentity {
    static let names: Set<String> = ["role", "session_authorization"]

    public static func violation(in inspection: Inspection) -> String? {
        for facts in inspection.statements {
            for change in facts.settings {
                guard let name = change.name, names.contains(name) else { continue }
                let spelled = name == "role" ? "the role" : "the session authorization"
                return
                    "this connection gives each person a database role of their own: a session cannot change \(spelled) it runs as"
            }
            if facts.kinds.contains(.setRole) {
                return
                    "this connection gives each person a database role of their own: a session cannot change the role it runs as"
            }
            // A role may change its own password and session defaults: a password of the person's own
            // would let them log in around the gateway, a default `role` would change who they run as.
            if facts.kinds.contains(.alter), facts.objectTypes.contains("role") {
                return
                    "this connection gives each person a database role of their own: a session cannot alter roles (the gateway sets your role's password and settings)"
            }
        }
        return nil
    }

    public static let hint =
        "what your database role may do follows your grants: ask for more with `gatehouse request ROLE --reason \"why\"`"
}
