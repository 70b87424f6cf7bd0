import GatehouseConfig
import GatehouseCore
import GatehouseSessions
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PostgresWire

/// Why the upstream session could not be opened, in words for the client.
struct UpstreamFailure: Error, Sendable, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

/// Opens sessions to one connection's upstream server with the brokered credentials, and ends them
/// from outside: a CancelRequest for the running statement, `pg_terminate_backend` for the backend.
struct UpstreamConnector: Sendable {
    let connection: Connection
    let tlsContext: NIOSSLContext?
    let limits: Limits
    let logger: Logger
    /// Who ends a backend with `pg_terminate_backend`: the session's own login, or, when sessions log in
    /// as their person's role (which cannot log in outside the gateway's own logins), the gateway's
    /// login, which holds pg_signal_backend.
    var terminator: Connection?

    /// Connects and logs in on `eventLoop`. `opened` gets the upstream handler as soon as the channel
    /// exists, so the session can close it if its client leaves first. Fails with `UpstreamFailure`,
    /// also when the server has not finished its startup within the connect timeout.
    func open(
        _ parameters: StartupParameters, on eventLoop: EventLoop, opened: @escaping (UpstreamHandler) -> Void
    ) -> EventLoopFuture<UpstreamStartup> {
        let ready = eventLoop.makePromise(of: UpstreamStartup.self)
        let (connection, tlsContext, limits) = (connection, tlsContext, limits)
        let timeout = DurationText.format(limits.upstreamConnectTimeout)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.milliseconds(Int64(limits.upstreamConnectTimeout * 1000)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        UpstreamHandler(
                            connection: connection, startupParameters: parameters, tlsContext: tlsContext,
                            maxMessageLength: limits.maxMessageBytes, ready: ready))
                }
            }
        let handler = NIOLoopBoundBox<UpstreamHandler?>(nil, eventLoop: eventLoop)
        let deadline = eventLoop.scheduleTask(in: .milliseconds(Int64(limits.upstreamConnectTimeout * 1000))) {
            let reason = "timed out after \(timeout) waiting for the upstream server"
            handler.value?.abandon(reason)
            ready.fail(UpstreamFailure(reason: reason))
        }
        bootstrap.connect(host: connection.host, port: connection.port).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                if let upstream = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) {
                    handler.value = upstream
                    opened(upstream)
                }
            case .failure(let error):
                ready.fail(
                    UpstreamFailure(
                        reason: "cannot reach the upstream server \(connection.host):\(connection.port): \(Self.describe(error))")
                )
            }
        }
        ready.futureResult.whenComplete { _ in deadline.cancel() }
        return ready.futureResult
    }

    /// Ends a session's backend at once, from wherever the request comes (an HTTP thread, another
    /// session's loop): a CancelRequest stops the running statement, and `pg_terminate_backend`, from a
    /// session of the same upstream role, ends the backend, so that statements already in its receive
    /// buffer never run. Runs on an event loop of its own, not the session's, which may be busy.
    func end(_ target: UpstreamCancelTarget) {
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        cancel(target, on: eventLoop)
        let ready = eventLoop.makePromise(of: UpstreamStartup.self)
        let (connection, tlsContext, logger) = (terminator ?? connection, tlsContext, logger)
        let parameters = StartupSettings().upstream(defaultApplicationName: "gatehouse-terminator")
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.milliseconds(Int64(limits.upstreamConnectTimeout * 1000)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        UpstreamHandler(
                            connection: connection, startupParameters: parameters, tlsContext: tlsContext,
                            maxMessageLength: 1 << 20, ready: ready))
                }
            }
        bootstrap.connect(host: connection.host, port: connection.port).whenComplete { result in
            switch result {
            case .success(let channel):
                ready.futureResult.whenComplete { outcome in
                    switch outcome {
                    case .success:
                        var buffer = channel.allocator.buffer(capacity: 64)
                        buffer.writeImmutableBuffer(
                            QueryMessage(sql: "SELECT pg_terminate_backend(\(target.processID))").frame.bytes)
                        buffer.writeImmutableBuffer(PostgresFrame(type: MessageType.terminate, body: ByteBuffer()).bytes)
                        channel.writeAndFlush(buffer, promise: nil)
                    case .failure(let error):
                        logger.warning("cannot end a terminated session's backend", metadata: ["error": "\(error)"])
                        channel.close(promise: nil)
                    }
                }
            case .failure(let error):
                ready.fail(error)
                logger.warning("cannot end a terminated session's backend", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Sends a CancelRequest for `target`'s running statement on a connection of its own.
    func cancel(_ target: UpstreamCancelTarget, on eventLoop: EventLoop = MultiThreadedEventLoopGroup.singleton.next()) {
        Self.sendCancel(to: target, on: eventLoop, logger: logger)
    }

    static func sendCancel(to target: UpstreamCancelTarget, on eventLoop: EventLoop, logger: Logger) {
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(5))
            .connect(host: target.host, port: target.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    var buffer = channel.allocator.buffer(capacity: 16)
                    StartupPacket.cancel(processID: target.processID, secretKey: target.secretKey).encode(into: &buffer)
                    channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
                case .failure(let error):
                    logger.warning("cannot forward a cancel request", metadata: ["error": "\(error)"])
                }
            }
    }

    static func describe(_ error: Error) -> String {
        if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
            return describe(first.error)
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ETIMEDOUT: return "timed out"
            case EHOSTUNREACH: return "host unreachable"
            default: return error.description
            }
        }
        return "\(error)"
    }
}

/// How a live session is ended from outside, shared by the terminating caller (any thread) and the
/// session's event loop: the first request ends the backend at once, and records why, so the loop
/// passes no frame either way from then on, even before it runs the termination itself.
final class SessionEnding: Sendable {
    private let connector: UpstreamConnector
    private let target: UpstreamCancelTarget
    private let state = NIOLockedValueBox<(reason: String?, backendEnded: Bool)>((nil, false))

    init(connector: UpstreamConnector, target: UpstreamCancelTarget) {
        self.connector = connector
        self.target = target
    }

    /// Asks for the session's end: the backend is ended now (once), from an event loop of its own.
    func request(_ reason: String) {
        state.withLockedValue { $0.reason = $0.reason ?? reason }
        endBackend()
    }

    /// Ends the backend, unless that was done already.
    func endBackend() {
        let first = state.withLockedValue { state in
            defer { state.backendEnded = true }
            return !state.backendEnded
        }
        if first { connector.end(target) }
    }

    /// Why an end was requested, if it was.
    var requested: String? { state.withLockedValue { $0.reason } }
}
