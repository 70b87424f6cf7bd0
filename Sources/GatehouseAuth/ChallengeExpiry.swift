import ServiceLifecycle

/// Ends held statements' challenges when their time runs out: one loop for all of them, a service of
/// the gateway's `ServiceGroup` (not a sleeping task per challenge).
public struct ChallengeExpiry: Service {
    private let stepUp: StepUpService
    private let interval: Duration

    /// `interval`: how late past its deadline a challenge may end at most.
    public init(_ stepUp: StepUpService, every interval: Duration = .milliseconds(100)) {
        self.stepUp = stepUp
        self.interval = interval
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await stepUp.expireDue()
            try? await Task.sleep(for: interval)
        }
    }
}
