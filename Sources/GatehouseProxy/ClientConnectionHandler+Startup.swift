import GatehouseSessions
import NIOCore
import NIOSSL
import PostgresWire

// The handler's startup steps: TLS, the password request, the token check, the upstream session, and
// the messages that end startup. The session machine decides each (`ClientStateMachine` nested in it).
extension ClientConnectionHandler {
    func performStartup(_ step: ClientStateMachine.Action, context: ChannelHandlerContext) {
        switch step {
        case .startTLS:
            startTLS(context: context)
        case .refuseEncryption:
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(integer: UInt8(ascii: "N"))), promise: nil)
        case .negotiateProtocol(let newestMinor, let unsupported):
            let frame = NegotiateProtocolVersion(newestMinor: newestMinor, unsupportedOptions: unsupported).frame
            context.write(wrapOutboundOut(frame.bytes), promise: nil)
            performStartup(.requestPassword, context: context)
        case .requestPassword:
            context.writeAndFlush(wrapOutboundOut(AuthenticationMessage.cleartextPassword.frame.bytes), promise: nil)
        case .verifyToken(let request, let token):
            session.verify(request, token: token) { refusal in
                if let refusal {
                    self.perform(self.machine.authenticationFailed(refusal))
                } else {
                    self.perform(self.machine.tokenVerified())
                }
            }
        case .connectUpstream:
            openSession()
        case .forwardCancel(let key):
            session.forwardCancel(key)
            context.close(promise: nil)
        case .completeStartup, .fatal, .close, .none:
            // The session machine answers these itself (`SessionStateMachine.startup`).
            break
        }
    }

    func startTLS(context: ChannelHandlerContext) {
        guard let tls = environment.clientTLS else {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(integer: UInt8(ascii: "N"))), promise: nil)
            return
        }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(integer: UInt8(ascii: "S"))), promise: nil)
        do {
            try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .first)
            session.tls = true
        } catch {
            context.close(promise: nil)
        }
    }

    func openSession() {
        session.open(events: self) { upstream in
            self.upstream = upstream
            if case .closed = self.machine.state { upstream.close() }
        } abandoned: {
            guard case .closed = self.machine.state else { return false }
            self.upstream?.close()
            return true
        } then: { opened in
            switch opened {
            case .ready(let startup, let judge, let marker, let tokenRevoked):
                self.perform(self.machine.upstreamReady(startup, judge: judge, marker: marker, tokenRevoked: tokenRevoked))
            case .notRecorded:
                self.perform(self.machine.startNotRecorded())
            case .unavailable(let message):
                self.perform(self.machine.upstreamFailed(message))
            }
        }
    }

    func completeStartup(_ startup: UpstreamStartup, context: ChannelHandlerContext) {
        guard let key = session.gatewayKey else { return }
        timeout?.cancel()
        context.write(wrapOutboundOut(AuthenticationMessage.ok.frame.bytes), promise: nil)
        for frame in startup.parameterFrames { context.write(wrapOutboundOut(frame.bytes), promise: nil) }
        context.write(
            wrapOutboundOut(BackendKeyData(processID: key.processID, secretKey: key.secretKey).frame.bytes), promise: nil)
        context.writeAndFlush(wrapOutboundOut(startup.readyFrame.bytes), promise: nil)
        let client = session.client
        logger.info(
            "session started", metadata: ["user": "\(client?.user.name ?? "")", "connection": "\(client?.connection.name ?? "")"])
        upstream?.link(self)
        resumeReading()
    }
}
