import Foundation
import GatehouseConfig
import GatehouseCore
import GatehousePolicy
import SQLInspection

/// Judges the statements of one live session: inspection, the session's context, the policy in force,
/// the user's grants and step-up freshness make a decision, the audit record that says so, and a
/// verdict (run it, refuse it, or hold it behind a challenge).
///
/// Pure: the session's memory (its prepared statements, search path, last step-up, device) is this
/// value; the world at the moment of judging (policy, grants, clock) comes with each call.
struct StatementJudge: Sendable {
    /// Who the session is, fixed at its start.
    struct Session: Sendable, Equatable {
        var id: String
        var user: String
        var groups: [String]
        var connection: String
        var source: String
        var country: String?
        var applicationName: String
        /// The MCP client's name when an AI agent's tool call opened the session.
        var agent: String?
        var startedAt: Date
        /// Whether decisions record statements in full or with their constants masked.
        var statementText: AuditStatementText = .full
        /// The session logs in as its person's own database role: nothing may change who it runs as.
        var pinnedIdentity = false
    }

    /// What the judge reads of the world when it judges: passed in whole, read once per statement.
    struct World {
        var policy: CompiledPolicy
        /// What the parser makes of a statement text (the gateway's shared, cached inspector).
        var inspect: (String) -> Inspection
        /// The user's grants on this connection, active now.
        var grants: [ActiveGrant]
        var now: Date
        /// How long a held statement waits for its challenge; nil when step-up and approval are not
        /// enabled on this gateway (step-up and approve rules then refuse).
        var holdTimeout: TimeInterval?
        /// An id for a challenge this judgement opens.
        var newChallengeID: () -> String
    }

    struct Judgement: Sendable, Equatable {
        enum Verdict: Sendable, Equatable {
            case proceed
            case refuse(ClientMessage)
            case hold(Challenge)
        }

        var verdict: Verdict
        var decision: Decision
        var inspection: Inspection
        /// The record of the decision, to journal before the verdict is carried out.
        var record: AuditRecord
    }

    var session: Session
    /// The number of the last statement text judged in this session: an execution's record names the
    /// number of the text it runs.
    private(set) var lastNumber = 0
    /// Where this session's unqualified table names may resolve.
    private(set) var searchPath = SearchPath()
    private(set) var lastActivity: Date
    /// When this session's user last proved their second factor for a held statement.
    private(set) var lastStepUp: Date?
    /// The user has not yet proven a second factor from this source address with this client.
    var newDevice: Bool
    /// The rules that apply to this session's user, connection and source, for one policy version.
    private var sessionRules: CompiledPolicy.SessionRules?
    /// Decisions on texts this session runs again and again (executions of prepared statements), by the
    /// text's entry number, each with what it was decided under; reused only while all of that holds.
    private var reusable: [Int: Reusable] = [:]

    private struct Reusable: Sendable {
        var sql: String
        var policy: CompiledPolicy
        var grants: [ActiveGrant]
        var searchPath: SearchPath
        var newDevice: Bool
        /// The first expiry among its grants (the active grants change then).
        var until: Date?
        var decision: Decision

        func holds(for sql: String, in world: World, searchPath: SearchPath, newDevice: Bool) -> Bool {
            policy === world.policy && self.searchPath == searchPath && self.newDevice == newDevice
                && grants == world.grants && until.map { world.now < $0 } ?? true && self.sql == sql
        }
    }

    /// How many decisions a session keeps for reuse; past it, they are forgotten and made anew.
    static let reusableLimit = 128

    init(session: Session, newDevice: Bool = false, searchPath: SearchPath = SearchPath()) {
        self.session = session
        self.lastActivity = session.startedAt
        self.newDevice = newDevice
        self.searchPath = searchPath
    }

    /// The session starts now (its startup settings were judged as of its authentication).
    mutating func begin(at now: Date) {
        session.startedAt = now
        lastActivity = now
    }

    func context(in world: World) -> SessionContext {
        var context = SessionContext(
            user: session.user, groups: session.groups, connection: session.connection, sourceAddress: session.source,
            country: session.country, applicationName: session.applicationName, sessionStartedAt: session.startedAt,
            lastActivityAt: lastActivity, grants: world.grants, now: world.now, newDevice: newDevice)
        context.agent = session.agent
        context.searchPath = searchPath
        return context
    }

    /// Judges one statement text (inspected by the caller: `inspection` is what the parser made of `sql`).
    /// `prepared` says what the session's prepared statements and cursors are, for EXECUTE and FETCH.
    mutating func judge(
        _ sql: String, inspection parsed: Inspection, in world: World, prepared: PreparedStatements.Lookup = .none
    ) -> Judgement {
        let inspection = PreparedStatements.resolve(parsed, lookup: prepared)
        // Widened before the decision: a refused SET never ran, but counting it costs nothing.
        searchPath.widen(by: inspection)
        lastNumber += 1
        var judgement = decide(inspection, sql: sql, in: world)
        judgement.record.detail["statement_number"] = String(lastNumber)
        return judgement
    }

    /// Judges one execution of a statement judged earlier (an Execute of a portal), against the world of
    /// this moment: the time, the session's age and idleness, the grants and step-up freshness now.
    /// `candidates` are what the portal may stand for (nil: nothing the gateway judged); the strictest of
    /// their decisions is the execution's.
    mutating func judgeExecution(
        portal: [UInt8], candidates: [StatementTracker.Entry]?, in world: World,
        prepared: PreparedStatements.Lookup = .none
    ) -> Judgement {
        let name = portal.isEmpty ? "the unnamed portal" : "portal \"\(String(decoding: portal, as: UTF8.self))\""
        guard let candidates, !candidates.isEmpty else {
            let reason =
                "\(name) is not bound to a statement the gateway judged in this session, so what it runs cannot be checked"
            lastActivity = world.now
            var record = unjudgedRecord(reason: reason, what: "(Execute of \(name))")
            record.detail["portal"] = String(decoding: portal, as: UTF8.self)
            return Judgement(
                verdict: .refuse(.refusedExecution(reason)), decision: .refusal(reason),
                inspection: Inspection(statements: []), record: record)
        }
        var strictest: Judgement?
        for entry in candidates {
            let inspection = PreparedStatements.resolve(entry.inspection, lookup: prepared)
            // Its record points at the decision on its text; only a text that runs another (EXECUTE,
            // FETCH), resolved anew here, says what it ran.
            let resolved = entry.inspection.statements.contains { $0.primary == .execute || $0.cursorUse != nil }
            let judgement = decide(
                inspection, sql: entry.sql, in: world, pointing: !resolved, reuse: resolved ? nil : entry.id)
            if strictest.map({ judgement.decision.action > $0.decision.action }) ?? true { strictest = judgement }
        }
        var judgement = strictest!
        judgement.record.detail["execution_of"] = candidates.map { String($0.id) }.joined(separator: ",")
        judgement.record.detail["portal"] = String(decoding: portal, as: UTF8.self)
        return judgement
    }

    /// The decision on a resolved inspection in the world of this moment, its record, and its verdict.
    ///
    /// `reuse`: the number of a text judged before whose decision may be reused, when no rule's time
    /// condition was consulted for it and the policy, grants, search path and device are what they were.
    private mutating func decide(
        _ inspection: Inspection, sql: String, in world: World, pointing: Bool = false, reuse: Int? = nil
    )
        -> Judgement
    {
        var decision: Decision
        if let reuse, let kept = reusable[reuse],
            kept.holds(for: sql, in: world, searchPath: searchPath, newDevice: newDevice)
        {
            lastActivity = world.now
            decision = kept.decision
        } else {
            let context = self.context(in: world)
            lastActivity = world.now
            let policy = world.policy
            if sessionRules?.policy != ObjectIdentifier(policy) { sessionRules = policy.sessionRules(for: context) }
            var readsClock = false
            if session.pinnedIdentity, let reason = PinnedIdentity.violation(in: inspection) {
                decision = Decision.refusal(reason, hint: PinnedIdentity.hint)
            } else {
                decision = policy.evaluate(inspection, in: context, session: sessionRules, readsClock: &readsClock)
            }
            if !world.grants.isEmpty, decision.action.proceeds {
                // A grant is used when the statement would not run without it; the session then ends with it.
                var withoutGrants = context
                withoutGrants.grants = []
                let without = policy.evaluate(
                    inspection, in: withoutGrants, session: sessionRules, readsClock: &readsClock)
                if without.action > decision.action {
                    decision.usedGrants = Array(Set(decision.usedGrants).union(world.grants.map(\.id))).sorted()
                }
            }
            if let reuse, !readsClock {
                if reusable.count >= Self.reusableLimit { reusable.removeAll(keepingCapacity: true) }
                reusable[reuse] = Reusable(
                    sql: sql, policy: policy, grants: world.grants, searchPath: searchPath,
                    newDevice: newDevice, until: world.grants.map(\.expiresAt).min(), decision: decision)
            }
        }
        // A fresh proof in this session covers step-up rules that grant a freshness window.
        if decision.action == .stepUp, let maxAge = decision.stepUpMaxAge, let last = lastStepUp,
            world.now.timeIntervalSince(last) <= maxAge
        {
            decision.action = .allow
            decision.reason =
                "step-up proven \(Int(world.now.timeIntervalSince(last)))s ago, within the rule's \(DurationText.format(maxAge))"
            return Judgement(
                verdict: .proceed, decision: decision, inspection: inspection,
                record: record(decision, inspection: inspection, sql: sql, note: "fresh_step_up", pointing: pointing))
        }
        let record = record(decision, inspection: inspection, sql: sql, pointing: pointing)
        let verdict: Judgement.Verdict
        switch decision.action {
        case .allow, .alert:
            verdict = .proceed
        case .stepUp, .approve:
            if let holdTimeout = world.holdTimeout {
                var challenge = Challenge(
                    id: world.newChallengeID(), kind: decision.action == .stepUp ? .stepUp : .approve, user: session.user,
                    session: session.id, connection: session.connection, statement: sql,
                    fingerprint: inspection.statements.map(\.fingerprint).joined(separator: ","),
                    rules: decision.decidingRules.map(\.name), reason: decision.reason, approvers: decision.approvers,
                    approverStepUp: decision.approverStepUp, createdAt: world.now,
                    expiresAt: world.now.addingTimeInterval(holdTimeout))
                challenge.agent = session.agent
                verdict = .hold(challenge)
            } else {
                verdict = .refuse(.refused(decision))
            }
        case .deny:
            verdict = .refuse(inspection.parseError.map { .unparsable(decision, $0) } ?? .refused(decision))
        }
        return Judgement(verdict: verdict, decision: decision, inspection: inspection, record: record)
    }

    /// The user proved their second factor for a held statement.
    mutating func steppedUp(at now: Date) {
        lastStepUp = now
    }

    /// Judges one startup setting as the `SET` statement it amounts to. A startup cannot wait for a
    /// second factor or another person: a hold is a refusal.
    mutating func judgeStartupSetting(_ setting: StartupSettings.Setting, inspection: Inspection, in world: World) -> Judgement {
        if setting.name == "search_path" { searchPath.widen(by: [setting.value]) }
        var decision =
            session.pinnedIdentity
            ? PinnedIdentity.violation(in: inspection).map { Decision.refusal($0, hint: PinnedIdentity.hint) }
                ?? world.policy.evaluate(inspection, in: context(in: world))
            : world.policy.evaluate(inspection, in: context(in: world))
        if decision.action == .stepUp || decision.action == .approve {
            decision.reason += "; a startup setting cannot wait for it: SET it in the session instead"
            decision.action = .deny
        }
        let verdict: Judgement.Verdict =
            decision.action.proceeds
            ? .proceed
            : .refuse(.startupSettingRefused(written: setting.written, reason: decision.reason, hint: decision.hint))
        return Judgement(
            verdict: verdict, decision: decision, inspection: inspection,
            record: record(decision, inspection: inspection, sql: setting.statement, note: "startup \(setting.written)"))
    }

    /// The record of a message refused before any judgement (text that is not UTF-8, a FunctionCall).
    func unjudgedRecord(reason: String, what: String) -> AuditRecord {
        record(
            Decision.refusal(reason),
            inspection: Inspection(statements: [], parseError: ParseError(message: reason, position: 0)),
            sql: what, verbatim: true)
    }

    /// The audit record of a decision: what the statement was (in full, or with `$n` for its constants),
    /// what it does, and why it was decided so.
    func record(
        _ decision: Decision, inspection: Inspection, sql: String, note: String? = nil, verbatim: Bool = false,
        pointing: Bool = false
    ) -> AuditRecord {
        let type: AuditEventType =
            switch decision.action {
            case .allow: .statementAllowed
            case .alert: .statementAlert
            case .stepUp, .approve: .statementHeld
            case .deny: .statementDenied
            }
        var detail: [String: String] = ["action": decision.action.rawValue]
        if !pointing {
            // An execution that points at the decision on its text (`execution_of`) does not repeat it.
            detail["facts"] =
                inspection.unparsable ? "unparsable" : inspection.statements.map(\.summary).joined(separator: "; ")
            detail["fingerprint"] = inspection.statements.map(\.fingerprint).joined(separator: ",")
            let text =
                verbatim || session.statementText == .full
                ? sql : (PostgresParser.normalized(sql) ?? "(masked: \(sql.utf8.count) bytes that do not parse)")
            detail["statement"] = text.truncated(to: 2000)
        }
        if !decision.matched.isEmpty { detail["rules"] = decision.matched.map(\.name).joined(separator: ",") }
        if decision.action != .allow { detail["reason"] = decision.reason }
        if !decision.shadowed.isEmpty {
            detail["shadow_rules"] = decision.shadowed.map(\.name).joined(separator: ",")
            detail["would_have"] = (decision.shadowed.map(\.action).max() ?? .allow).rawValue
        }
        if !decision.usedGrants.isEmpty { detail["grants"] = decision.usedGrants.joined(separator: ",") }
        if let note {
            detail["note"] = note
            detail["reason"] = decision.reason
        }
        return AuditRecord(
            type, actor: session.user, session: session.id, connection: session.connection, source: session.source,
            detail: detail)
    }
}
