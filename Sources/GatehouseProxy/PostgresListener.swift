import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresWire
import ServiceLifecycle

/// The PostgreSQL listener: accepts client connections and gives each its own handler pair.
public final class PostgresListener: Service, Sendable {
    private let environment: ProxyEnvironment
    private let group: any EventLoopGroup
    private let onBound: @Sendable (SocketAddress) -> Void

    public init(
        environment: ProxyEnvironment, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in }
    ) {
        self.environment = environment
        self.group = group
        self.onBound = onBound
    }

    /// Client connections open now (authenticating or live).
    private let open = NIOLockedValueBox(0)

    public func run() async throws {
        let environment = self.environment
        let open = self.open
        let listen = environment.config.postgresListen
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                open.withLockedValue { $0 += 1 }
                // Completed once the handler has seen the connection end (and journaled the session's end).
                channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ClientConnectionHandler(
                            environment: environment, remoteAddress: channel.remoteAddress, eventLoop: channel.eventLoop))
                }
            }
            .bind(host: listen.host, port: listen.port)
            .get()
        if let address = channel.localAddress { onBound(address) }
        environment.logger.info("PostgreSQL listener ready", metadata: ["address": "\(listen)"])
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
            for session in environment.registry.list() {
                environment.registry.terminate(id: session.id, reason: "the gateway is shutting down")
            }
        }
        // The store closes after this returns: every connection's end (and its session.ended event) first.
        let deadline = ContinuousClock.now + Self.drainTimeout
        while open.withLockedValue({ $0 }) > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let left = open.withLockedValue { $0 }
        if left > 0 {
            environment.logger.warning(
                "stopping with client connections still closing", metadata: ["connections": "\(left)"])
        }
    }

    /// How long a stopping gateway waits for its client connections to close.
    static let drainTimeout: Duration = .seconds(10)
}
