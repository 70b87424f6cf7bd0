import Foundation

extension TimeWindow: CustomStringConvertible {
    /// `mon-fri 09:00-18:00 Europe/Paris` style, days in week order.
    public var description: String {
        let names = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        let days = weekdays.sorted().map { names[$0 - 1] }.joined(separator: ",")
        func clock(_ minutes: Int) -> String { String(format: "%02d:%02d", minutes / 60, minutes % 60) }
        return "\(days) \(clock(start))-\(clock(end)) \(zoneName)"
    }
}

extension RuleMatch {
    /// The rule's conditions as short readable lines (`kinds: update, delete`), in a fixed order,
    /// for the console and the API. An empty list means the rule matches every statement.
    public var conditions: [String] {
        var lines: [String] = []
        func add(_ label: String, _ values: [String]?) {
            guard let values else { return }
            lines.append("\(label): \(values.joined(separator: ", "))")
        }
        func flag(_ label: String, _ value: Bool?) {
            guard let value else { return }
            lines.append(value ? label : "not \(label)")
        }
        add("connections", connections?.map(\.pattern))
        add("users", users?.map(\.pattern))
        add("groups", groups)
        add("roles", roles)
        flag("elevated", elevated)
        add("source", sourceCIDRs?.map(\.text))
        add("not source", notSourceCIDRs?.map(\.text))
        add("countries", countries)
        add("not countries", notCountries)
        add("applications", applications?.map(\.pattern))
        flag("AI agent", agent)
        add("agents", agents?.map(\.pattern))
        if let during { lines.append("during: \(during)") }
        if let outside { lines.append("outside: \(outside)") }
        if let sessionAgeAtLeast { lines.append("session older than \(Int(sessionAgeAtLeast))s") }
        if let idleAtLeast { lines.append("idle for \(Int(idleAtLeast))s") }
        flag("new device", newDevice)
        add("kinds", kinds.map { $0.map(\.rawValue).sorted() })
        add("object types", objectTypes.map { $0.sorted() })
        add("tables", tables?.map(\.description))
        add("tables read", tablesRead?.map(\.description))
        add("tables written", tablesWritten?.map(\.description))
        add("writes outside", notTablesWritten?.map(\.description))
        flag("writes", writes)
        flag("where-less write", wherelessWrite)
        add("functions", functions?.map(\.pattern))
        flag("several statements", multiStatement)
        flag("unparsable", unparsable)
        flag("dynamic SQL", dynamic)
        flag("COPY to or from a program", copyProgram)
        flag("administers the server", adminFunctions)
        flag("server files", fileAccess)
        flag("user functions", userFunctions)
        add("settings", settings?.map(\.pattern))
        return lines
    }
}
