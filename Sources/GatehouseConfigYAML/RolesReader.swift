import Foundation
import GatehouseConfig
import GatehouseCore
import GatehousePolicy
import Yams

extension Reader {
    /// Reads the `roles:` section: roles people may request just in time.
    func readRoles(_ node: Node, config: GatehouseConfig) throws -> [RequestableRole] {
        var roles: [RequestableRole] = []
        for item in try sequence(node, "roles") {
            let role = try readRole(item, config: config)
            guard !roles.contains(where: { $0.name == role.name }) else {
                throw fail(item, "role '\(role.name)' is declared twice")
            }
            roles.append(role)
        }
        return roles
    }

    private func declaredGroups(_ node: Node, _ what: String, config: GatehouseConfig) throws -> [String] {
        let groups = try strings(node, what)
        for group in groups where !config.groups.contains(group) {
            throw fail(node, "\(what): group '\(group)' is not declared under groups")
        }
        return groups
    }

    private func pattern(_ node: Node, _ what: String) throws -> String {
        let text = try string(node, what)
        guard (try? Regex(text)) != nil else { throw fail(node, "\(what) '\(text)' is not a valid regular expression") }
        return text
    }

    func readRole(_ node: Node, config: GatehouseConfig) throws -> RequestableRole {
        var role = RequestableRole(name: "", requesters: [])
        var named = false
        for (key, _, value) in try mapping(
            node, "a role",
            allowed: [
                "name", "requesters", "connections", "max_duration", "reason", "approvers", "auto_approve", "break_glass",
                "pending_timeout",
            ])
        {
            switch key {
            case "name":
                role.name = try name(value, "role name")
                named = true
            case "requesters": role.requesters = try declaredGroups(value, "role requesters", config: config)
            case "connections":
                role.connections = try strings(value, "role connections")
                for connection in role.connections where config.connection(named: connection) == nil {
                    throw fail(value, "role connections: '\(connection)' is not declared under connections")
                }
            case "max_duration": role.maxDuration = try duration(value, "role max_duration")
            case "pending_timeout": role.pendingTimeout = try duration(value, "role pending_timeout")
            case "reason":
                for (key, _, value) in try mapping(value, "role reason", allowed: ["required", "pattern"]) {
                    if key == "required" { role.reasonRequired = try bool(value, "reason.required") }
                    if key == "pattern" { role.reasonPattern = try pattern(value, "reason.pattern") }
                }
            case "approvers":
                for (key, _, value) in try mapping(value, "role approvers", allowed: ["groups", "count", "step_up"]) {
                    switch key {
                    case "groups": role.approverGroups = try declaredGroups(value, "approvers.groups", config: config)
                    case "count": role.approvalsNeeded = try int(value, "approvers.count", range: 1...10)
                    default: role.approverStepUp = try bool(value, "approvers.step_up")
                    }
                }
            case "auto_approve":
                var auto = RequestableRole.AutoApproval()
                for (key, _, value) in try mapping(
                    value, "role auto_approve", allowed: ["groups", "max_duration", "reason_pattern", "during"])
                {
                    switch key {
                    case "groups": auto.groups = try declaredGroups(value, "auto_approve.groups", config: config)
                    case "max_duration": auto.maxDuration = try duration(value, "auto_approve.max_duration")
                    case "reason_pattern": auto.reasonPattern = try pattern(value, "auto_approve.reason_pattern")
                    default:
                        let window = try timeWindow(value, "auto_approve.during")
                        auto.weekdays = window.weekdays
                        auto.startMinute = window.start
                        auto.endMinute = window.end
                        auto.timeZone = window.timeZone
                    }
                }
                role.autoApprove = auto
            default:
                for (_, _, value) in try mapping(value, "role break_glass", allowed: ["max_duration"]) {
                    role.breakGlass = .init(maxDuration: try duration(value, "break_glass.max_duration"))
                }
                if role.breakGlass == nil { role.breakGlass = .init(maxDuration: 1800) }
            }
        }
        guard named else { throw fail(node, "a role needs a name") }
        guard !role.requesters.isEmpty else { throw fail(node, "role '\(role.name)' needs requesters (groups)") }
        guard !role.approverGroups.isEmpty || role.autoApprove != nil || role.breakGlass != nil else {
            throw fail(node, "role '\(role.name)' can never be granted: give approvers, auto_approve or break_glass")
        }
        return role
    }
}
