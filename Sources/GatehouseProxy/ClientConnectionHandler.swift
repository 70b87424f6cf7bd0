import Foundation
import GatehouseAuth
import GatehouseCore
import GatehouseSessions
import GatehouseTelemetry
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresWire
import SQLInspection

/// The client end of a proxied session: feeds `SessionStateMachine` the channel's events and performs
/// the actions it returns (I/O, backpressure, writes); `SessionLifecycle` runs the asynchronous steps
/// around the session. It decides nothing itself.
///
/// Its startup steps are in ClientConnectionHandler+Startup.swift. It splits the client's bytes into frames itself (`FrontendDecoder` through NIO's single-step
/// processor, as postgres-nio's channel handler does): no decoder handler in front of it, no boxing of
/// every frame on its way down the pipeline.
///
/// Never throws past its boundary: every failure ends this connection with a FATAL ErrorResponse.
final class ClientConnectionHandler: ChannelDuplexHandler, SessionEvents {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let session: SessionLifecycle
    private let worldSource: WorldSource
    var machine: SessionStateMachine
    private let decoder: NIOSingleStepByteToMessageProcessor<FrontendDecoder>
    /// Set once the client's input could not be decoded: nothing after it is read.
    private var inputRefused = false
    private var context: ChannelHandlerContext?
    var upstream: UpstreamHandler?
    private var pendingRead = false
    /// Inside a read: its end flushes the upstream writes once, for every frame the read brought.
    private var reading = false
    var timeout: Scheduled<Void>?
    /// Whether this loop has acted on a termination requested from another thread.
    private var terminationSeen = false
    /// Server frames of the current read, gathered into one write (one pass through the pipeline).
    private var toClient: ByteBuffer?

    init(environment: ProxyEnvironment, remoteAddress: SocketAddress?, eventLoop: any EventLoop) {
        session = SessionLifecycle(environment: environment, remoteAddress: remoteAddress, eventLoop: eventLoop)
        worldSource = environment.worldSource
        machine = SessionStateMachine(
            allowPlaintextPasswords: session.allowsPlaintextPasswords, tlsAvailable: environment.clientTLS != nil)
        decoder = NIOSingleStepByteToMessageProcessor(
            FrontendDecoder(maxMessageLength: environment.config.limits.maxMessageBytes))
    }

    var environment: ProxyEnvironment { session.environment }
    var logger: Logger { session.logger }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        if let full = session.beginAuthentication() {
            perform(machine.failed(.tooManyAuthenticating(full)))
        } else {
            let seconds = environment.config.limits.authenticationTimeout
            timeout = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(seconds * 1000))) {
                self.perform(self.machine.authenticationTimedOut())
            }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !inputRefused else { return }
        reading = true
        do {
            try decoder.process(buffer: unwrapInboundIn(data)) { input in receive(input) }
        } catch {
            inputRefused = true
            logger.info("closing connection after malformed client input", metadata: ["error": "\(error)"])
            perform(machine.failed(.protocolViolation("\(error)")))
        }
    }

    private func receive(_ input: FrontendInput) {
        switch input {
        case .frame(let frame):
            if !terminationSeen, let reason = session.ending?.requested { terminate(reason: reason) }
            // Only a statement text is judged: the clock is read for those alone.
            let judged =
                frame.type == FrontendMessageType.query || frame.type == FrontendMessageType.parse
                || frame.type == FrontendMessageType.execute
            let began = judged ? DispatchTime.now().uptimeNanoseconds : 0
            let action = machine.clientFrame(frame, world: world)
            if judged, case .journal = action {
                Telemetry.decisionLatency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds &- began))
            }
            perform(action)
        case .startup(let packet):
            perform(machine.startupPacket(packet))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        upstream?.flush()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        run(machine.clientClosed())
        upstream?.close()
        session.ended(reason: machine.endReason)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        logger.info("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // Backpressure: read from the client only while the session may and the upstream can take it.
    func read(context: ChannelHandlerContext) {
        if !machine.readsClient || !(upstream?.isWritable ?? true) {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { upstream?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: The upstream handler's calls (on this event loop)

    func forwardFromUpstream(_ frame: PostgresFrame) {
        if !terminationSeen, let reason = session.ending?.requested { terminate(reason: reason) }
        switch machine.upstreamFrame(frame) {
        case .toClient(let frame):
            if toClient == nil { toClient = frame.bytes } else { toClient!.writeImmutableBuffer(frame.bytes) }
        case .end(let message):
            logger.warning("ending session", metadata: ["reason": "\(message.fields.message ?? "")"])
            sendFatal(message)
            upstream?.close()
        case .drop:
            break
        }
    }

    func flushToClient() {
        writeGathered()
        context?.flush()
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func upstreamClosed() {
        perform(machine.upstreamClosed())
    }

    // MARK: Outside events (SessionEvents, on this event loop)

    func terminate(reason: String) {
        terminationSeen = true
        run(machine.terminated(reason: reason))
    }

    func clientCancelled() { run(machine.cancelled(world: world)) }

    func holdEnded(_ challenge: Challenge) { run(machine.holdEnded(challenge, world: world)) }

    func holdOpened(_ challenge: Challenge) {
        // A notice only for a statement still held: a Ctrl-C or a kill may have ended it meanwhile.
        guard machine.isHolding(challenge.id), let context else { return }
        writeGathered()
        context.writeAndFlush(wrapOutboundOut(ClientMessage.holding(challenge).frame.bytes), promise: nil)
    }

    // MARK: Actions

    private func run(_ actions: [SessionStateMachine.Action]) {
        var queue = actions[...]
        while let action = queue.popFirst() {
            if case .journal(let record, let decided, let grants) = action {
                queue.append(contentsOf: machine.recorded(session.journal(record, decided, grants), world: world))
            } else {
                perform(action)
            }
        }
    }

    func perform(_ action: SessionStateMachine.Action) {
        guard let context else { return }
        switch action {
        case .none:
            break
        case .forward(let frame):
            upstream?.write(frame.bytes)
        case .journal:
            run([action])
        case .startup(let step):
            performStartup(step, context: context)
        case .completeStartup(let startup):
            completeStartup(startup, context: context)
        case .refuseStart(let message):
            session.abandonStart()
            upstream?.close()
            sendFatal(message)
        case .hold(let challenge):
            writeGathered()
            context.flush()
            session.hold(challenge, events: self)
        case .inspect(let sql):
            session.inspect(sql, with: worldSource.guardrails) { self.run(self.machine.inspected($0, world: self.world)) }
        case .cancelChallenge(let id, let reason):
            session.cancelChallenge(id: id, reason: reason)
        case .rememberDevice:
            if let judge = machine.judge { session.rememberDevice(judge.session) }
        case .resume:
            // A statement recorded at once within a read goes out with the rest of the read, in one write.
            if !reading { upstream?.flush() }
            resumeReading()
        case .terminate(let message):
            session.ending?.endBackend()
            upstream?.close()
            environment.registry.remove(id: session.id)
            sendFatal(message)
        case .fatal(let message):
            sendFatal(message)
        case .close:
            writeGathered()
            context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: nil)
            context.close(promise: nil)
        }
    }

    /// What the judge reads of the world now.
    private func world() -> StatementJudge.World {
        worldSource.world(user: session.client?.user.name, connection: session.client?.connection.name)
    }

    /// Writes what was gathered from the server, keeping order with the gateway's own messages.
    private func writeGathered() {
        guard let context, let bytes = toClient else { return }
        toClient = nil
        context.write(wrapOutboundOut(bytes), promise: nil)
    }

    private func sendFatal(_ message: ClientMessage) {
        guard let context else { return }
        writeGathered()
        context.writeAndFlush(wrapOutboundOut(message.frame.bytes)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
