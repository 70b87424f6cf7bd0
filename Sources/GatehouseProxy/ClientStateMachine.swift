import GatehouseSessions
import PostgresWire

/// What a client asked for at startup.
public struct StartupRequest: Sendable, Equatable {
    public var user: String
    /// The Gatehouse connection name (the client's `dbname`).
    public var connection: String
    public var applicationName: String
    /// The other parameters (client_encoding, options, DateStyle, ...) in the order sent: settings the
    /// gateway checks (`StartupSettings`) before any of them reaches the upstream server.
    public var passthrough: StartupParameters
}

/// The startup and authentication phase of one client connection, as a pure state machine.
///
/// Events go in, one action comes out; the channel handler performs it. After `.relay` the handler
/// relays frames and this machine only tracks that the session is live.
public struct ClientStateMachine: Sendable {
    public enum State: Sendable, Equatable {
        case awaitingStartup
        case awaitingPassword(StartupRequest)
        case authenticating(StartupRequest)
        case connectingUpstream(StartupRequest)
        case relaying
        case closed
    }

    public enum Action: Sendable, Equatable {
        /// Answer 'S' and start the TLS handshake.
        case startTLS
        /// Answer 'N': the request is refused, the client may go on in plaintext.
        case refuseEncryption
        /// Tell the client which protocol features we speak, then ask for the password.
        case negotiateProtocol(newestMinor: Int32, unsupportedOptions: [String])
        case requestPassword
        case verifyToken(StartupRequest, token: String)
        case connectUpstream(StartupRequest)
        case forwardCancel(GatewayCancelKey)
        /// Send AuthenticationOk, the upstream's parameters, our cancel key and ReadyForQuery.
        case completeStartup
        case fatal(ClientMessage)
        /// Close without a message (after a cancel request, or when the peer is gone).
        case close
        case none
    }

    public private(set) var state = State.awaitingStartup
    private var tlsActive = false
    private var sentNegotiation = false
    let allowPlaintextPasswords: Bool
    let tlsAvailable: Bool

    /// - Parameters:
    ///   - allowPlaintextPasswords: whether a token may arrive without TLS (loopback clients, or when
    ///     the configuration allows it).
    ///   - tlsAvailable: whether the gateway can answer SSLRequest with TLS; when not, the request is
    ///     refused and the connection counts as plaintext.
    public init(allowPlaintextPasswords: Bool, tlsAvailable: Bool = true) {
        self.allowPlaintextPasswords = allowPlaintextPasswords
        self.tlsAvailable = tlsAvailable
    }

    public mutating func startupPacket(_ packet: StartupPacket) -> Action {
        guard case .awaitingStartup = state else {
            return fatal(.protocolViolation("a startup packet arrived after startup"))
        }
        switch packet {
        case .sslRequest:
            if tlsActive { return fatal(.protocolViolation("SSLRequest on an encrypted connection")) }
            guard tlsAvailable else { return .refuseEncryption }
            tlsActive = true
            return .startTLS
        case .gssEncryptionRequest:
            return .refuseEncryption
        case .cancel(let processID, let secretKey):
            state = .closed
            return .forwardCancel(GatewayCancelKey(processID: processID, secretKey: secretKey))
        case .startup(let version, var parameters):
            guard let user = parameters.removeAll(named: "user"), !user.isEmpty else {
                return fatal(.noUserName)
            }
            if user.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                return fatal(.controlCharactersInUserName)
            }
            if let replication = parameters["replication"], !["false", "0", "off", "no"].contains(replication.lowercased()) {
                return fatal(.replicationNotSupported)
            }
            parameters.removeAll(named: "replication")
            let database = parameters.removeAll(named: "database")
            let connection = database.flatMap { $0.isEmpty ? nil : $0 } ?? user
            // The server compares setting names without regard to case; the last one sent applies.
            let applicationName = parameters.entries.last(where: { $0.name.lowercased() == "application_name" })?.value ?? ""
            let unsupported = Array(Set(parameters.names.filter { $0.hasPrefix("_pq_.") })).sorted()
            parameters.entries.removeAll { $0.name.hasPrefix("_pq_.") }
            let request = StartupRequest(
                user: user, connection: connection, applicationName: applicationName, passthrough: parameters)
            guard tlsActive || allowPlaintextPasswords else {
                return fatal(.tokensOnlyOverTLS)
            }
            state = .awaitingPassword(request)
            if (version & 0xffff) != 0 || !unsupported.isEmpty {
                sentNegotiation = true
                return .negotiateProtocol(newestMinor: 0, unsupportedOptions: unsupported)
            }
            return .requestPassword
        }
    }

    /// After a negotiation message the handler asks for the password as the next step.
    public func afterNegotiation() -> Action { .requestPassword }

    public mutating func frame(_ frame: PostgresFrame) -> Action {
        switch state {
        case .awaitingPassword(let request):
            guard frame.type == MessageType.password else {
                if frame.type == MessageType.terminate { state = .closed; return .close }
                return fatal(.protocolViolation("expected a password message, got message type '\(frame.typeName)'"))
            }
            guard let token = try? WireMessages.decodePassword(frame.body), !token.isEmpty else {
                return fatal(.malformedPassword)
            }
            state = .authenticating(request)
            return .verifyToken(request, token: token)
        case .awaitingStartup:
            return fatal(.protocolViolation("a typed message arrived before the startup packet"))
        case .authenticating, .connectingUpstream:
            if frame.type == MessageType.terminate { state = .closed; return .close }
            return fatal(.protocolViolation("message type '\(frame.typeName)' arrived while authenticating"))
        case .relaying, .closed:
            return .none
        }
    }

    public mutating func tokenVerified() -> Action {
        guard case .authenticating(let request) = state else { return .none }
        state = .connectingUpstream(request)
        return .connectUpstream(request)
    }

    public mutating func authenticationFailed(_ message: ClientMessage) -> Action {
        guard case .authenticating = state else { return .none }
        return fatal(message)
    }

    public mutating func upstreamReady() -> Action {
        guard case .connectingUpstream = state else { return .close }
        state = .relaying
        return .completeStartup
    }

    public mutating func upstreamFailed(_ message: ClientMessage) -> Action {
        guard case .connectingUpstream = state else { return .none }
        return fatal(message)
    }

    public mutating func authenticationTimedOut() -> Action {
        switch state {
        case .relaying, .closed: return .none
        default: return fatal(.authenticationTimedOut)
        }
    }

    public mutating func peerClosed() {
        state = .closed
    }

    private mutating func fatal(_ message: ClientMessage) -> Action {
        state = .closed
        return .fatal(message)
    }
}
