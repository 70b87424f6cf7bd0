import Foundation
import SQLInspection

/// An elevated role the session's user holds through a just-in-time grant.
public struct ActiveGrant: Sendable, Hashable, Codable {
    public var id: String
    public var role: String
    public var expiresAt: Date

    public init(id: String, role: String, expiresAt: Date) {
        self.id = id
        self.role = role
        self.expiresAt = expiresAt
    }
}

/// Everything about the session a rule can ask about; the clock is part of it.
public struct SessionContext: Sendable {
    public var user: String
    public var groups: [String]
    public var connection: String
    public var sourceAddress: String
    public var country: String?
    public var applicationName: String
    /// The MCP client's name when the session is an AI agent's; nil for every other client.
    public var agent: String?
    public var sessionStartedAt: Date
    public var lastActivityAt: Date
    /// Grants active now; the evaluator ignores any that have expired at `now`.
    public var grants: [ActiveGrant]
    /// Where the session's unqualified table names may resolve (widened by each statement judged).
    public var searchPath = SearchPath()
    public var now: Date
    /// The user has not yet proven a second factor from this source address with this client.
    public var newDevice: Bool

    public init(
        user: String, groups: [String], connection: String, sourceAddress: String, country: String? = nil,
        applicationName: String = "", sessionStartedAt: Date, lastActivityAt: Date, grants: [ActiveGrant] = [], now: Date,
        newDevice: Bool = false
    ) {
        self.newDevice = newDevice
        self.user = user
        self.groups = groups
        self.connection = connection
        self.sourceAddress = sourceAddress
        self.country = country
        self.applicationName = applicationName
        self.sessionStartedAt = sessionStartedAt
        self.lastActivityAt = lastActivityAt
        self.grants = grants
        self.now = now
    }

    public var activeGrants: [ActiveGrant] { grants.filter { $0.expiresAt > now } }

    /// The context of a dry run (`policy test`): a session opening at `now`, holding `roles` as if granted
    /// for the next hour.
    public static func dryRun(
        user: String, groups: [String], connection: String, sourceAddress: String, country: String?,
        applicationName: String, roles: [String], newDevice: Bool, at now: Date
    ) -> SessionContext {
        let grants = roles.enumerated().map {
            ActiveGrant(id: "simulated-\($0.offset + 1)", role: $0.element, expiresAt: now.addingTimeInterval(3600))
        }
        return SessionContext(
            user: user, groups: groups, connection: connection, sourceAddress: sourceAddress, country: country,
            applicationName: applicationName, sessionStartedAt: now, lastActivityAt: now, grants: grants, now: now,
            newDevice: newDevice)
    }
}

/// A rule that matched, and what it would do.
public struct MatchedRule: Sendable, Hashable, Codable {
    public var name: String
    public var action: PolicyAction
    public var shadow: Bool
    public var message: String?
    public var hint: String?
    /// The statement (0-based) of a multi-statement string the rule matched on.
    public var statement: Int

    public init(name: String, action: PolicyAction, shadow: Bool, message: String?, hint: String?, statement: Int) {
        self.name = name
        self.action = action
        self.shadow = shadow
        self.message = message
        self.hint = hint
        self.statement = statement
    }

    // In JSON the statement is numbered from 1, as every text the gateway prints numbers it.
    enum CodingKeys: String, CodingKey { case name, action, shadow, message, hint, statement }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        action = try container.decode(PolicyAction.self, forKey: .action)
        shadow = try container.decode(Bool.self, forKey: .shadow)
        message = try container.decodeIfPresent(String.self, forKey: .message)
        hint = try container.decodeIfPresent(String.self, forKey: .hint)
        statement = try container.decode(Int.self, forKey: .statement) - 1
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(action, forKey: .action)
        try container.encode(shadow, forKey: .shadow)
        try container.encodeIfPresent(message, forKey: .message)
        try container.encodeIfPresent(hint, forKey: .hint)
        try container.encode(statement + 1, forKey: .statement)
    }
}

/// The outcome for one query string.
public struct Decision: Sendable, Hashable, Codable {
    public var action: PolicyAction
    /// Every enforced rule that matched, in policy order; the deciding ones first.
    public var matched: [MatchedRule]
    /// Shadow rules that matched: what they would have done.
    public var shadowed: [MatchedRule]
    /// A sentence for the user: which rule and why.
    public var reason: String
    /// What would allow the statement.
    public var hint: String?
    /// The grants the decision relied on (a session that used a grant ends when it does).
    public var usedGrants: [String]
    /// For step-up: the strictest freshness any deciding rule asked for.
    public var stepUpMaxAge: TimeInterval?
    /// For approve: everyone named by the deciding rules.
    public var approvers: [String]
    /// For approve: whether approvers must give their own second factor.
    public var approverStepUp: Bool

    /// JSON keys in snake_case, as every JSON the gateway writes (the API's and the CLI's).
    enum CodingKeys: String, CodingKey {
        case action, matched, shadowed, reason, hint, approvers
        case usedGrants = "used_grants"
        case stepUpMaxAge = "step_up_max_age"
        case approverStepUp = "approver_step_up"
    }

    /// A refusal that no rule made (a pinned setting, unreadable text): `reason` says why.
    public static func refusal(_ reason: String, hint: String? = nil) -> Decision {
        Decision(
            action: .deny, matched: [], shadowed: [], reason: reason, hint: hint, usedGrants: [], stepUpMaxAge: nil,
            approvers: [], approverStepUp: false)
    }

    /// The rules that decided the action (those with the winning action).
    public var decidingRules: [MatchedRule] { matched.filter { $0.action == action } }
}

extension Policy {
    /// Judges every statement of `inspection` and returns the most restrictive outcome.
    public func evaluate(_ inspection: Inspection, in context: SessionContext) -> Decision {
        CompiledPolicy(self).evaluate(inspection, in: context)
    }
}

/// A policy prepared for evaluating many statements: each rule is held by reference, so the hot loop
/// copies nothing. Build one per policy version and share it.
public final class CompiledPolicy: Sendable {
    public let policy: Policy
    private let rules: [CompiledRule]

    final class CompiledRule: Sendable {
        let rule: Rule
        let namesUnclassified: Bool
        let usesGrants: Bool

        init(_ rule: Rule) {
            self.rule = rule
            self.namesUnclassified = rule.match.namesUnclassified
            self.usesGrants = rule.match.roles != nil || rule.match.elevated == true
        }
    }

    public init(_ policy: Policy) {
        self.policy = policy
        self.rules = policy.rules.map(CompiledRule.init)
    }

    /// The rules whose conditions on who and where (connection, user, groups, source address and
    /// country, application) hold for a session; those do not change while it lasts, so a session
    /// computes this once per policy version and passes it to `evaluate`.
    public struct SessionRules: Sendable {
        public let policy: ObjectIdentifier
        let rules: [CompiledRule]
    }

    public func sessionRules(for context: SessionContext) -> SessionRules {
        let source = CIDR.parseAddress(context.sourceAddress)
        return SessionRules(
            policy: ObjectIdentifier(self),
            rules: rules.filter { $0.rule.match.matchesSession(context: context, source: source) })
    }

    /// Whether every statement of a session in `context` is denied whatever it is (a deny rule that asks
    /// only who and where the session is matches): such a connection is of no use to it.
    public func refusesEverything(_ context: SessionContext) -> Bool {
        sessionRules(for: context).rules.contains {
            $0.rule.mode != .shadow && $0.rule.action == .deny && $0.rule.match.asksOnlyOfTheSession
        }
    }

    /// Judges every statement of `inspection` and returns the most restrictive outcome.
    ///
    /// - Parameter session: this policy's `sessionRules(for:)` for the same session; computed here when nil.
    public func evaluate(_ inspection: Inspection, in context: SessionContext, session: SessionRules? = nil) -> Decision {
        var readsClock = false
        return evaluate(inspection, in: context, session: session, readsClock: &readsClock)
    }

    /// `evaluate`, saying whether the outcome depended on the moment: `readsClock` is set when a rule's
    /// time condition (a window, the session's age, idleness) was consulted.
    public func evaluate(
        _ inspection: Inspection, in context: SessionContext, session: SessionRules? = nil, readsClock: inout Bool
    ) -> Decision {
        // Pinned settings hold whatever the rules say: the checks below rely on them.
        if let pinned = PinnedSettings.violation(in: inspection) {
            return Decision.refusal(pinned, hint: PinnedSettings.hint)
        }
        // A path the statement itself sets counts for its own later statements.
        var context = context
        context.searchPath.widen(by: inspection)
        let candidates =
            session.flatMap { $0.policy == ObjectIdentifier(self) ? $0.rules : nil }
            ?? sessionRules(for: context).rules
        let unclassifiedAction = policy.unclassifiedAction
        var matched: [MatchedRule] = []
        var shadowed: [MatchedRule] = []
        var action = PolicyAction.allow
        var defaultReasons: [String] = []
        var usedGrants: Set<String> = []
        var stepUpMaxAge: TimeInterval?
        var approvers: [String] = []
        var approverStepUp = false

        let subjects: [(index: Int, facts: StatementFacts?)] =
            inspection.unparsable ? [(0, nil)] : inspection.statements.enumerated().map { ($0.offset, $0.element) }
        let grants = context.activeGrants

        for subject in subjects {
            let unclassified = subject.facts.map { $0.kinds.contains(.unknown) || $0.dynamic } ?? true
            var statementAction: PolicyAction?
            // Rules that do not speak of unclassifiable statements may make them stricter, never looser.
            var decidedExplicitly = false
            for compiled in candidates {
                guard
                    compiled.rule.match.matchesStatement(
                        facts: subject.facts, inspection: inspection, context: context, grants: grants,
                        readsClock: &readsClock)
                else { continue }
                let rule = compiled.rule
                let hit = MatchedRule(
                    name: rule.name, action: rule.action, shadow: rule.mode == .shadow, message: rule.message,
                    hint: rule.hint, statement: subject.index)
                if rule.mode == .shadow {
                    shadowed.append(hit)
                    continue
                }
                matched.append(hit)
                statementAction = max(statementAction ?? .allow, rule.action)
                if compiled.namesUnclassified { decidedExplicitly = true }
                if compiled.usesGrants {
                    for grant in grants where rule.match.roles?.contains(grant.role) ?? true { usedGrants.insert(grant.id) }
                }
                if rule.action == .stepUp, let age = rule.stepUp?.maxAge {
                    stepUpMaxAge = min(stepUpMaxAge ?? age, age)
                }
                if rule.action == .approve {
                    approvers += rule.approvers.filter { !approvers.contains($0) }
                    approverStepUp = approverStepUp || rule.approverStepUp
                }
            }
            if unclassified && !decidedExplicitly {
                let combined = max(statementAction ?? .allow, unclassifiedAction)
                if combined > (statementAction ?? .allow) {
                    defaultReasons.append(Policy.unclassifiedReason(subject.facts, inspection))
                }
                action = max(action, combined)
            } else if let statementAction {
                action = max(action, statementAction)
            } else {
                let fallback = policy.connectionDefaults[context.connection] ?? policy.defaultAction
                if fallback != .allow {
                    defaultReasons.append(
                        "no rule allows it on connection \"\(context.connection)\" (default: \(fallback.rawValue))")
                }
                action = max(action, fallback)
            }
        }

        let deciding = matched.filter { $0.action == action }
        let reason: String
        let hint: String?
        if let first = deciding.first {
            let names = deciding.map { "\"\($0.name)\"" }.joined(separator: ", ")
            reason = "rule \(names): \(first.message ?? Policy.defaultMessage(action))"
            hint = deciding.compactMap(\.hint).first
        } else if let first = defaultReasons.first {
            reason = first
            hint = nil
        } else {
            reason = "allowed"
            hint = nil
        }
        return Decision(
            action: action,
            matched: matched.count < 2
                ? matched : matched.filter { $0.action == action } + matched.filter { $0.action != action },
            shadowed: shadowed, reason: reason, hint: hint, usedGrants: usedGrants.sorted(),
            stepUpMaxAge: action == .stepUp ? stepUpMaxAge : nil, approvers: action == .approve ? approvers : [],
            approverStepUp: action == .approve && approverStepUp)
    }

}

extension Policy {
    static func defaultMessage(_ action: PolicyAction) -> String {
        switch action {
        case .allow: "allowed"
        case .alert: "allowed and reported"
        case .stepUp: "needs step-up verification"
        case .approve: "needs approval by another person"
        case .deny: "not allowed"
        }
    }

    static func unclassifiedReason(_ facts: StatementFacts?, _ inspection: Inspection) -> String {
        guard let facts else {
            return
                "the statement cannot be parsed, so its effect cannot be checked (\(inspection.parseError?.description ?? "syntax error"))"
        }
        if facts.dynamic {
            return "the statement runs SQL whose effect cannot be known in advance (\(facts.primary.rawValue))"
        }
        return "the statement type is not recognised, so its effect cannot be checked"
    }
}

extension RuleMatch {
    /// Conditions that hold for the whole session.
    func matchesSession(context: SessionContext, source: [UInt8]?) -> Bool {
        if let connections, !connections.contains(where: { $0.matches(context.connection) }) { return false }
        if let users, !users.contains(where: { $0.matches(context.user) }) { return false }
        if let groups, !groups.contains(where: { context.groups.contains($0) }) { return false }
        if let sourceCIDRs {
            guard let source, sourceCIDRs.contains(where: { $0.contains(address: source) }) else { return false }
        }
        if let notSourceCIDRs, let source, notSourceCIDRs.contains(where: { $0.contains(address: source) }) { return false }
        if let countries {
            guard let country = context.country, countries.contains(country) else { return false }
        }
        if let notCountries {
            // An unknown country is not proof of being elsewhere: the rule matches.
            if let country = context.country, notCountries.contains(country) { return false }
        }
        if let applications, !applications.contains(where: { $0.matches(context.applicationName) }) { return false }
        if let agent, agent != (context.agent != nil) { return false }
        if let agents {
            guard let name = context.agent, agents.contains(where: { $0.matches(name) }) else { return false }
        }
        return true
    }

    /// Whether the rule asks only who and where the session is: nothing of its statements, its grants,
    /// its device or the clock.
    var asksOnlyOfTheSession: Bool {
        roles == nil && elevated == nil && newDevice == nil && !speaksOfTime && unparsable == nil && multiStatement == nil
            && kinds == nil && objectTypes == nil && tables == nil && tablesRead == nil && tablesWritten == nil
            && notTablesWritten == nil && writes == nil && wherelessWrite == nil && functions == nil && dynamic == nil
            && copyProgram == nil && adminFunctions == nil && fileAccess == nil && userFunctions == nil && settings == nil
    }

    /// Whether the rule's statement conditions read the clock.
    var speaksOfTime: Bool { during != nil || outside != nil || sessionAgeAtLeast != nil || idleAtLeast != nil }

    /// Conditions that can change from one statement to the next: time, grants, the statement itself.
    ///
    /// The clock is read last, and `readsClock` set when it is: a statement no time condition was
    /// reached for is decided the same at any moment (for the same grants, device and search path).
    func matchesStatement(
        facts: StatementFacts?, inspection: Inspection, context: SessionContext, grants: [ActiveGrant],
        readsClock: inout Bool
    )
        -> Bool
    {
        if let roles, !grants.contains(where: { roles.contains($0.role) }) { return false }
        if let elevated, elevated != !grants.isEmpty { return false }
        if let newDevice, newDevice != context.newDevice { return false }
        guard matchesStatementConditions(facts: facts, inspection: inspection, context: context) else { return false }
        guard speaksOfTime else { return true }
        readsClock = true
        if let during, !during.contains(context.now) { return false }
        if let outside, outside.contains(context.now) { return false }
        if let sessionAgeAtLeast, context.now.timeIntervalSince(context.sessionStartedAt) < sessionAgeAtLeast {
            return false
        }
        if let idleAtLeast, context.now.timeIntervalSince(context.lastActivityAt) < idleAtLeast { return false }
        return true
    }

    /// What the statement itself is (and where its unqualified names may resolve).
    private func matchesStatementConditions(
        facts: StatementFacts?, inspection: Inspection, context: SessionContext
    ) -> Bool {
        if let unparsable, unparsable != inspection.unparsable { return false }
        if let multiStatement, multiStatement != inspection.isMultiStatement { return false }
        guard let facts else {
            // Unparsable text: only rules without statement conditions (besides `unparsable`) apply.
            return kinds == nil && objectTypes == nil && tables == nil && tablesRead == nil && tablesWritten == nil
                && notTablesWritten == nil && writes == nil && wherelessWrite == nil && functions == nil && dynamic == nil
                && copyProgram == nil && adminFunctions == nil && fileAccess == nil && userFunctions == nil && settings == nil
        }
        if let kinds, kinds.isDisjoint(with: facts.kinds) { return false }
        if let objectTypes, objectTypes.isDisjoint(with: facts.objectTypes) { return false }
        if let tables {
            let hit: (TableName) -> Bool = { table in tables.contains { $0.matches(table, context.searchPath) } }
            if !facts.tablesRead.contains(where: hit) && !facts.tablesWritten.contains(where: hit) { return false }
        }
        if let tablesRead,
            !facts.tablesRead.contains(where: { table in tablesRead.contains { $0.matches(table, context.searchPath) } })
        {
            return false
        }
        if let tablesWritten,
            !facts.tablesWritten.contains(where: { table in tablesWritten.contains { $0.matches(table, context.searchPath) } })
        {
            return false
        }
        if let notTablesWritten {
            guard facts.isWrite else { return false }
            // Only a change of rows stays inside the named tables: DDL, grants and the like on them
            // (a rule or trigger on `safe` that writes elsewhere) are outside, whatever table they name.
            let rowsOnly = facts.kinds.allSatisfy(Self.rowChanges.contains)
            let outside = facts.tablesWritten.contains { table in
                !notTablesWritten.contains { $0.surelyMatches(table, context.searchPath) }
            }
            if rowsOnly && !facts.tablesWritten.isEmpty && !outside { return false }
        }
        if let writes, writes != facts.isWrite { return false }
        if let wherelessWrite, wherelessWrite != facts.wherelessWrite { return false }
        if let functions {
            var found = false
            // Attribute notation (`(x).f`) is a call of `f` when x has no field f: matched as one.
            for name in facts.functions.union(facts.attributeCalls) {
                let bare = Self.bare(name)
                if functions.contains(where: { $0.matches(name) || (bare.count != name.count && $0.matches(bare)) }) {
                    found = true
                    break
                }
            }
            if !found { return false }
        }
        if let dynamic, dynamic != facts.dynamic { return false }
        if let copyProgram, copyProgram != facts.copyProgram { return false }
        if let adminFunctions, adminFunctions != !facts.adminFunctions.isEmpty { return false }
        if let fileAccess, fileAccess != facts.fileAccess { return false }
        if let userFunctions, userFunctions != !facts.userFunctions.isEmpty { return false }
        if let settings {
            let hit = facts.settings.contains { change in
                guard let name = change.name else { return true }
                return settings.contains { $0.matches(name) }
            }
            if !hit { return false }
        }
        return true
    }

    /// The kinds a statement may have and still write only rows of the tables it names.
    static let rowChanges: Set<StatementKind> = [.select, .insert, .update, .delete, .merge, .copyFrom]

    /// `pg_catalog.pg_terminate_backend` → `pg_terminate_backend`, so rules need not spell the schema.
    static func bare(_ name: String) -> String {
        name.split(separator: ".").last.map(String.init) ?? name
    }
}
