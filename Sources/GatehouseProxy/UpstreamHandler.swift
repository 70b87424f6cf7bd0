import GatehouseConfig
import NIOCore
import NIOSSL
import PostgresWire

/// What the upstream server said once the brokered login succeeded.
public struct UpstreamStartup: Sendable, Equatable {
    /// ParameterStatus frames, relayed to the client as they are.
    public var parameterFrames: [PostgresFrame]
    public var processID: Int32
    public var secretKey: Int32
    /// The ReadyForQuery frame that ended startup.
    public var readyFrame: PostgresFrame
}

/// The upstream end of a proxied session: logs in with the brokered credentials, then relays.
///
/// Lives on the same event loop as its client connection, so the two call each other directly. Splits
/// the server's bytes into frames itself (`BackendDecoder` through NIO's single-step processor).
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        case connecting
        case authenticating
        case startingUp
        case relaying
        case closed
    }

    private let connection: Connection
    /// The settings to start the upstream session with (`StartupSettings.upstream`): never `user`,
    /// `database` or `options`, which come from the connection's configuration or are never sent.
    private let startupParameters: StartupParameters
    private let tlsContext: NIOSSLContext?
    private let ready: EventLoopPromise<UpstreamStartup>
    private let decoder: NIOSingleStepByteToMessageProcessor<BackendDecoder>
    /// Set once the server's input could not be decoded: nothing after it is read.
    private var inputRefused = false
    private var authenticator: UpstreamAuthenticator
    private var phase = Phase.connecting
    private var parameterFrames: [PostgresFrame] = []
    private var backendKey: (Int32, Int32)?
    /// Frames that arrive after startup but before the client side is linked.
    private var pending: [PostgresFrame] = []
    private(set) var context: ChannelHandlerContext?
    weak var client: ClientConnectionHandler?
    private var pendingRead = false
    private var readyCompleted = false

    init(
        connection: Connection, startupParameters: StartupParameters, tlsContext: NIOSSLContext?,
        maxMessageLength: Int, ready: EventLoopPromise<UpstreamStartup>
    ) {
        self.decoder = NIOSingleStepByteToMessageProcessor(
            BackendDecoder(maxMessageLength: maxMessageLength, expectingSSLResponse: tlsContext != nil))
        self.connection = connection
        self.startupParameters = startupParameters
        self.tlsContext = tlsContext
        self.ready = ready
        self.authenticator = UpstreamAuthenticator(user: connection.user, password: connection.password)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        if tlsContext != nil {
            var buffer = context.channel.allocator.buffer(capacity: 8)
            StartupPacket.sslRequest.encode(into: &buffer)
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        } else {
            sendStartup(context: context)
        }
        phase = .authenticating
        context.fireChannelActive()
    }

    private func sendStartup(context: ChannelHandlerContext) {
        var parameters = StartupParameters([("user", connection.user), ("database", connection.database)])
        parameters.entries += startupParameters.entries
        var buffer = context.channel.allocator.buffer(capacity: 128)
        StartupPacket.startup(protocolVersion: StartupPacket.protocolVersion3, parameters: parameters).encode(into: &buffer)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !inputRefused else { return }
        do {
            try decoder.process(buffer: unwrapInboundIn(data)) { input in receive(input, context: context) }
        } catch {
            inputRefused = true
            errorCaught(context: context, error: error)
        }
    }

    private func receive(_ input: BackendInput, context: ChannelHandlerContext) {
        switch input {
        case .sslResponse(let accepted):
            guard accepted, let tlsContext else {
                return fail(context, "the upstream server does not accept TLS, and connection '\(connection.name)' requires it")
            }
            do {
                let hostname = IPv4Address(connection.host) == nil && !connection.host.contains(":") ? connection.host : nil
                let tls = try NIOSSLClientHandler(context: tlsContext, serverHostname: hostname)
                try context.pipeline.syncOperations.addHandler(tls, position: .first)
            } catch {
                return fail(context, "cannot start TLS to the upstream server: \(error)")
            }
            sendStartup(context: context)
        case .frame(let frame):
            if phase == .relaying {
                if let client { client.forwardFromUpstream(frame) } else { pending.append(frame) }
                return
            }
            startupFrame(context: context, frame)
        }
    }

    private func startupFrame(context: ChannelHandlerContext, _ frame: PostgresFrame) {
        switch frame.type {
        case MessageType.authentication:
            guard phase == .authenticating else {
                return fail(context, "the upstream server sent an unexpected authentication request")
            }
            let message: AuthenticationMessage
            do { message = try AuthenticationMessage.decode(frame.body) } catch {
                return fail(context, "the upstream server sent a malformed authentication request")
            }
            switch authenticator.receive(message) {
            case .send(let reply): context.writeAndFlush(wrapOutboundOut(reply.bytes), promise: nil)
            case .wait: break
            case .authenticated: phase = .startingUp
            case .fail(let reason): fail(context, reason)
            }
        case MessageType.errorResponse:
            let fields = ErrorNoticeFields.decode(frame.body)
            fail(
                context,
                "the upstream server refused the session: \(fields.message ?? "no message") (SQLSTATE \(fields.sqlState ?? "?"))")
        case MessageType.parameterStatus:
            parameterFrames.append(frame)
        case MessageType.backendKeyData:
            guard let key = try? BackendKeyData.decode(frame.body) else {
                return fail(context, "the upstream server sent malformed BackendKeyData")
            }
            backendKey = (key.processID, key.secretKey)
        case MessageType.noticeResponse, MessageType.negotiateProtocolVersion:
            break
        case MessageType.readyForQuery:
            guard phase == .startingUp else { return fail(context, "the upstream server became ready before authenticating") }
            phase = .relaying
            readyCompleted = true
            ready.succeed(
                UpstreamStartup(
                    parameterFrames: parameterFrames, processID: backendKey?.0 ?? 0, secretKey: backendKey?.1 ?? 0,
                    readyFrame: frame))
        default:
            fail(context, "the upstream server sent message type '\(frame.typeName)' during startup")
        }
    }

    /// Links the client side and hands it what arrived in between.
    func link(_ client: ClientConnectionHandler) {
        self.client = client
        let frames = pending
        pending = []
        for frame in frames { client.forwardFromUpstream(frame) }
        if !frames.isEmpty { client.flushToClient() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        client?.flushToClient()
        context.fireChannelReadComplete()
    }

    /// Client frames of the current read, gathered into one write (one pass through the pipeline).
    private var outgoing: ByteBuffer?

    /// Queues a client frame for the server; `flush` sends what was queued.
    func write(_ bytes: ByteBuffer) {
        if outgoing == nil {
            outgoing = bytes
        } else {
            outgoing!.writeImmutableBuffer(bytes)
        }
    }

    func flush() {
        guard let context else { return }
        if let bytes = outgoing {
            outgoing = nil
            context.write(wrapOutboundOut(bytes), promise: nil)
        }
        context.flush()
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    // Backpressure: read from the server only while the client can take what we write to it.
    func read(context: ChannelHandlerContext) {
        if phase == .relaying, let client, !client.isWritable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { client?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closed
        failReady("the upstream server closed the connection during startup")
        client?.upstreamClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if phase == .relaying {
            context.close(promise: nil)
        } else {
            fail(context, "upstream connection error: \(error)")
        }
    }

    func close() {
        context?.close(promise: nil)
    }

    private func fail(_ context: ChannelHandlerContext, _ reason: String) {
        phase = .closed
        failReady(reason)
        context.close(promise: nil)
    }

    private func failReady(_ reason: String) {
        guard !readyCompleted else { return }
        readyCompleted = true
        ready.fail(UpstreamFailure(reason: reason))
    }

    /// Gives up on startup (the client left or time ran out).
    func abandon(_ reason: String) {
        failReady(reason)
        close()
    }
}
