import CoreMetrics

/// The gateway's metrics, made through whatever backend `MetricsSystem` was bootstrapped with
/// (`gatehouse serve` uses Prometheus). Each instrument is made on first use, so the backend must be
/// bootstrapped before the first session; without one they do nothing.
public enum Telemetry {
    /// Live proxied sessions.
    public static let sessions = Meter(label: "gatehouse_sessions")
    /// Sessions opened since start.
    public static let sessionsOpened = Counter(label: "gatehouse_sessions_opened_total")

    private static let statementCounters: [PolicyOutcome: Counter] = Dictionary(
        uniqueKeysWithValues: PolicyOutcome.allCases.map {
            ($0, Counter(label: "gatehouse_statements_total", dimensions: [("decision", $0.rawValue)]))
        })

    /// One judged statement (a query text; the extended protocol's Parse) with its outcome.
    public static func statement(_ outcome: PolicyOutcome) { statementCounters[outcome]?.increment() }

    /// Time to inspect and decide one statement.
    public static let decisionLatency = Timer(label: "gatehouse_decision_duration_seconds")

    /// Step-up and approval challenges: opened and how they ended.
    public static func stepUp(_ event: String) {
        Counter(label: "gatehouse_step_ups_total", dimensions: [("event", event)]).increment()
    }

    /// Access requests: submitted, approved, denied, revoked, expired.
    public static func accessRequest(_ event: String) {
        Counter(label: "gatehouse_access_requests_total", dimensions: [("event", event)]).increment()
    }

    /// Grants live now.
    public static let activeGrants = Meter(label: "gatehouse_grants_active")

    /// Time to make one batch of audit events durable.
    public static let auditWriteLatency = Timer(label: "gatehouse_audit_write_duration_seconds")
    /// Audit events written.
    public static let auditEvents = Counter(label: "gatehouse_audit_events_total")
    /// Audit writes that failed.
    public static let auditFailures = Counter(label: "gatehouse_audit_write_failures_total")

    /// The histogram buckets for the two latency timers, in seconds.
    public static let decisionBuckets: [Double] = [
        0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005,
    ]
    public static let auditBuckets: [Double] = [0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1]
}

/// The policy outcomes a statement can have, as metric labels.
public enum PolicyOutcome: String, Sendable, CaseIterable {
    case allow, alert, deny, stepUp = "step_up", approve
}
