import Foundation
import GatehouseConfig
import GatehouseCore
import GatehousePolicy
import SQLInspection
import Yams

extension Reader {
    /// Reads the `policy:` section.
    func readPolicy(_ node: Node) throws -> Policy {
        var policy = Policy()
        for (key, _, value) in try mapping(node, "policy", allowed: ["default", "unclassified", "connections", "rules"]) {
            switch key {
            case "default": policy.defaultAction = try action(value, "policy.default")
            case "unclassified": policy.unclassifiedAction = try action(value, "policy.unclassified")
            case "connections":
                guard let pairs = value.mapping else {
                    throw fail(value, "policy.connections must map connection names to a default action")
                }
                for (name, defaultAction) in pairs {
                    let connection = try self.name(name, "connection")
                    policy.connectionDefaults[connection] = try action(defaultAction, "policy.connections.\(connection)")
                }
            default:
                for item in try sequence(value, "policy.rules") {
                    let rule = try readRule(item)
                    guard !policy.rules.contains(where: { $0.name == rule.name }) else {
                        throw fail(item, "rule '\(rule.name)' is declared twice")
                    }
                    policy.rules.append(rule)
                }
            }
        }
        return policy
    }

    func action(_ node: Node, _ what: String) throws -> PolicyAction {
        let text = try string(node, what)
        guard let action = PolicyAction(rawValue: text) else {
            throw fail(
                node,
                "\(what) must be one of \(PolicyAction.allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
        }
        return action
    }

    func readRule(_ node: Node) throws -> Rule {
        var name: String?
        var action: PolicyAction?
        var mode = RuleMode.enforce
        var match: RuleMatch?
        var message: String?
        var hint: String?
        var stepUp: StepUpRequirement?
        var approvers: [String] = []
        var stepUpNode: Node?
        var approversNode: Node?
        var approverStepUp = false
        for (key, _, value) in try mapping(
            node, "a rule",
            allowed: [
                "name", "action", "mode", "match", "message", "hint", "step_up", "approvers", "approver_step_up", "description",
            ])
        {
            switch key {
            case "name": name = try self.name(value, "rule name")
            case "action": action = try self.action(value, "rule action")
            case "mode":
                let text = try string(value, "rule mode")
                guard let parsed = RuleMode(rawValue: text) else {
                    throw fail(value, "rule mode must be enforce or shadow, not '\(text)'")
                }
                mode = parsed
            case "match": match = try readMatch(value)
            case "message": message = try string(value, "rule message")
            case "hint": hint = try string(value, "rule hint")
            case "description": _ = try string(value, "rule description")
            case "approver_step_up": approverStepUp = try bool(value, "approver_step_up")
            case "step_up":
                stepUpNode = value
                var requirement = StepUpRequirement()
                for (key, _, value) in try mapping(value, "step_up", allowed: ["method", "max_age"]) {
                    if key == "method" {
                        let method = try string(value, "step_up.method")
                        guard method == "totp" else {
                            throw fail(value, "step_up.method '\(method)' is not available (available: totp)")
                        }
                        requirement.method = method
                    } else {
                        requirement.maxAge = try duration(value, "step_up.max_age")
                    }
                }
                stepUp = requirement
            default:
                approversNode = value
                for item in try sequence(value, "approvers") {
                    let text = try string(item, "approver")
                    let bare = text.hasPrefix("group:") ? String(text.dropFirst("group:".count)) : text
                    guard Name.isValid(bare) else { throw fail(item, "approver '\(text)' is not a user or group:NAME") }
                    approvers.append(text)
                }
            }
        }
        guard let name else { throw fail(node, "a rule needs a name") }
        guard let action else { throw fail(node, "rule '\(name)' needs an action (allow, alert, step_up, approve, deny)") }
        guard let match else { throw fail(node, "rule '\(name)' needs a match (use match: {} to match everything)") }
        if stepUpNode != nil && action != .stepUp {
            throw fail(stepUpNode, "rule '\(name)': step_up settings need action: step_up")
        }
        if action == .approve && approvers.isEmpty {
            throw fail(node, "rule '\(name)' has action approve and needs approvers (users or group:NAME)")
        }
        if approversNode != nil && action != .approve {
            throw fail(approversNode, "rule '\(name)': approvers need action: approve")
        }
        var rule = Rule(name: name, action: action, match: match, mode: mode)
        rule.message = message
        rule.hint = hint
        rule.stepUp = action == .stepUp ? (stepUp ?? StepUpRequirement()) : nil
        rule.approvers = approvers
        rule.approverStepUp = approverStepUp
        return rule
    }

    func readMatch(_ node: Node) throws -> RuleMatch {
        var match = RuleMatch()
        if node.scalar != nil, node.tag.description == "tag:yaml.org,2002:null" { return match }
        for (key, _, value) in try mapping(
            node, "a rule's match",
            allowed: [
                "connections", "users", "groups", "roles", "elevated", "source", "not_source", "countries",
                "not_countries", "applications", "agent", "agents", "during", "outside", "session_age", "idle", "new_device",
                "kinds", "objects",
                "tables", "tables_read", "tables_written", "not_tables_written", "writes", "no_where", "functions",
                "multi_statement",
                "unparsable", "dynamic", "copy_program", "admin_functions", "file_access", "user_functions", "settings",
            ])
        {
            switch key {
            case "connections": match.connections = try strings(value, "match.connections").map(Glob.init)
            case "users": match.users = try strings(value, "match.users").map(Glob.init)
            case "groups": match.groups = try strings(value, "match.groups")
            case "roles": match.roles = try strings(value, "match.roles")
            case "elevated": match.elevated = try bool(value, "match.elevated")
            case "source", "not_source":
                var networks: [CIDR] = []
                for item in try sequence(value, "match.\(key)") {
                    let text = try string(item, "match.\(key)")
                    guard let network = CIDR(text) else {
                        throw fail(item, "match.\(key): '\(text)' is not an address or network such as 10.0.0.0/8 or ::1")
                    }
                    networks.append(network)
                }
                if key == "source" { match.sourceCIDRs = networks } else { match.notSourceCIDRs = networks }
            case "countries", "not_countries":
                var codes: [String] = []
                for item in try sequence(value, "match.\(key)") {
                    let code = try string(item, "match.\(key)").uppercased()
                    guard code.count == 2, code.allSatisfy({ $0.isASCII && $0.isLetter }) else {
                        throw fail(item, "match.\(key): '\(code)' is not a two-letter country code such as FR")
                    }
                    codes.append(code)
                }
                if key == "countries" { match.countries = codes } else { match.notCountries = codes }
            case "applications": match.applications = try strings(value, "match.applications").map(Glob.init)
            case "agent": match.agent = try bool(value, "match.agent")
            case "agents": match.agents = try strings(value, "match.agents").map(Glob.init)
            case "during": match.during = try timeWindow(value, "match.during")
            case "outside": match.outside = try timeWindow(value, "match.outside")
            case "session_age": match.sessionAgeAtLeast = try duration(value, "match.session_age")
            case "idle": match.idleAtLeast = try duration(value, "match.idle")
            case "new_device": match.newDevice = try bool(value, "match.new_device")
            case "kinds":
                var kinds: Set<StatementKind> = []
                for item in try sequence(value, "match.kinds") {
                    let text = try string(item, "match.kinds")
                    guard let kind = StatementKind(rawValue: text) else {
                        throw fail(
                            item,
                            "match.kinds: unknown kind '\(text)' (known: \(StatementKind.allCases.map(\.rawValue).joined(separator: ", ")))"
                        )
                    }
                    kinds.insert(kind)
                }
                match.kinds = kinds
            case "objects": match.objectTypes = Set(try strings(value, "match.objects").map { $0.lowercased() })
            case "tables": match.tables = try strings(value, "match.tables").map(TablePattern.init)
            case "tables_read": match.tablesRead = try strings(value, "match.tables_read").map(TablePattern.init)
            case "tables_written": match.tablesWritten = try strings(value, "match.tables_written").map(TablePattern.init)
            case "not_tables_written":
                match.notTablesWritten = try strings(value, "match.not_tables_written").map(TablePattern.init)
            case "writes": match.writes = try bool(value, "match.writes")
            case "no_where": match.wherelessWrite = try bool(value, "match.no_where")
            case "functions": match.functions = try strings(value, "match.functions").map { Glob($0.lowercased()) }
            case "multi_statement": match.multiStatement = try bool(value, "match.multi_statement")
            case "unparsable": match.unparsable = try bool(value, "match.unparsable")
            case "dynamic": match.dynamic = try bool(value, "match.dynamic")
            case "admin_functions": match.adminFunctions = try bool(value, "match.admin_functions")
            case "file_access": match.fileAccess = try bool(value, "match.file_access")
            case "user_functions": match.userFunctions = try bool(value, "match.user_functions")
            case "settings": match.settings = try strings(value, "match.settings").map { Glob($0.lowercased()) }
            default: match.copyProgram = try bool(value, "match.copy_program")
            }
        }
        return match
    }

    func strings(_ node: Node, _ what: String) throws -> [String] {
        if node.scalar != nil { return [try string(node, what)] }
        let items = try sequence(node, what)
        guard !items.isEmpty else { throw fail(node, "\(what) must not be an empty list") }
        return try items.map { try string($0, what) }
    }

    /// `{days: [mon-fri], hours: "09:00-18:00", timezone: Europe/Paris}`.
    func timeWindow(_ node: Node, _ what: String) throws -> TimeWindow {
        var weekdays: Set<Int> = Set(1...7)
        var start = 0
        var end = 24 * 60
        var timeZone = TimeZone(identifier: "UTC")!
        var zoneName = "UTC"
        for (key, _, value) in try mapping(node, what, allowed: ["days", "hours", "timezone"]) {
            switch key {
            case "days":
                weekdays = []
                for item in try strings(value, "\(what).days") {
                    let parts = item.lowercased().split(separator: "-").map(String.init)
                    let names = TimeWindow.weekdayNames
                    guard (1...2).contains(parts.count), let first = names[parts[0]], let last = names[parts.last!] else {
                        throw fail(value, "\(what).days: '\(item)' is not a day (mon, tue, ...) or a range such as mon-fri")
                    }
                    var day = first
                    while true {
                        weekdays.insert(day)
                        if day == last { break }
                        day = day == 7 ? 1 : day + 1
                    }
                }
            case "hours":
                let text = try string(value, "\(what).hours")
                let parts = text.split(separator: "-")
                guard parts.count == 2, let from = Self.minutes(parts[0]), let to = Self.minutes(parts[1]), from != to else {
                    throw fail(value, "\(what).hours must be HH:MM-HH:MM such as 09:00-18:00, not '\(text)'")
                }
                start = from
                end = to
            default:
                let identifier = try string(value, "\(what).timezone")
                guard let zone = TimeZone(identifier: identifier) else {
                    throw fail(value, "\(what).timezone: unknown time zone '\(identifier)' (e.g. Europe/Paris, UTC)")
                }
                timeZone = zone
                zoneName = identifier
            }
        }
        return TimeWindow(weekdays: weekdays, start: start, end: end, timeZone: timeZone, zoneName: zoneName)
    }

    static func minutes(_ text: Substring) -> Int? {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: ":")
        guard parts.count == 2, let hour = Int(parts[0]), let minute = Int(parts[1]), (0...24).contains(hour),
            (0...59).contains(minute), hour * 60 + minute <= 24 * 60
        else { return nil }
        return hour * 60 + minute
    }

    /// Rules may only name groups and connections the configuration declares.
    func checkReferences(_ policy: Policy, config: GatehouseConfig, node: Node) throws {
        for rule in policy.rules {
            for group in rule.match.groups ?? [] where !config.groups.contains(group) {
                throw fail(node, "rule '\(rule.name)': group '\(group)' is not declared under groups")
            }
            for pattern in rule.match.connections ?? [] where !pattern.pattern.contains("*") {
                if !config.connections.isEmpty, config.connection(named: pattern.pattern) == nil {
                    throw fail(node, "rule '\(rule.name)': connection '\(pattern.pattern)' is not declared under connections")
                }
            }
            for approver in rule.approvers where approver.hasPrefix("group:") {
                let group = String(approver.dropFirst("group:".count))
                if !config.groups.contains(group) {
                    throw fail(node, "rule '\(rule.name)': approver group '\(group)' is not declared under groups")
                }
            }
        }
        for connection in policy.connectionDefaults.keys where config.connection(named: connection) == nil {
            throw fail(node, "policy.connections: connection '\(connection)' is not declared under connections")
        }
    }
}
