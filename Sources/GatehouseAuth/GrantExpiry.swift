import ServiceLifecycle

/// Ends grants and lapses requests when their time comes: one loop, a service of the gateway's
/// `ServiceGroup`. A grant that ends terminates the sessions that used it (`GrantService`'s
/// `onGrantEnded`).
public struct GrantExpiry: Service {
    private let grants: GrantService
    private let interval: Duration

    /// `interval`: how late past its deadline a grant may end at most.
    public init(_ grants: GrantService, every interval: Duration = .milliseconds(100)) {
        self.grants = grants
        self.interval = interval
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await grants.expireDue()
            try? await Task.sleep(for: interval)
        }
    }
}
