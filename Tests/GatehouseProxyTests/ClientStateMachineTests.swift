import GatehouseAuth
import NIOCore
import PostgresWire
import Testing

@testable import GatehouseProxy
@testable import GatehouseSessions

@Suite("Client state machine")
struct ClientStateMachineTests {
    typealias Action = ClientStateMachine.Action

    static func startup(_ parameters: StartupParameters, minor: Int32 = 0) -> StartupPacket {
        .startup(protocolVersion: StartupPacket.protocolVersion3 | minor, parameters: parameters)
    }

    static let aliceStartup = startup([
        "user": "alice", "database": "app", "application_name": "psql", "client_encoding": "UTF8",
    ])

    static let aliceRequest = StartupRequest(
        user: "alice", connection: "app", applicationName: "psql",
        passthrough: ["application_name": "psql", "client_encoding": "UTF8"])

    static func passwordFrame(_ token: String) -> PostgresFrame { WireMessages.password(token) }

    /// A machine over TLS that has received alice's startup packet.
    static func awaitingPassword() -> ClientStateMachine {
        var machine = ClientStateMachine(allowPlaintextPasswords: false)
        _ = machine.startupPacket(.sslRequest)
        _ = machine.startupPacket(aliceStartup)
        return machine
    }

    static func authenticating() -> ClientStateMachine {
        var machine = awaitingPassword()
        _ = machine.frame(passwordFrame("token"))
        return machine
    }

    static func connecting() -> ClientStateMachine {
        var machine = authenticating()
        _ = machine.tokenVerified()
        return machine
    }

    static func relaying() -> ClientStateMachine {
        var machine = connecting()
        _ = machine.upstreamReady()
        return machine
    }

    static func closed() -> ClientStateMachine {
        var machine = ClientStateMachine(allowPlaintextPasswords: true)
        machine.peerClosed()
        return machine
    }

    func sqlState(_ action: Action) -> String? {
        if case .fatal(let message) = action { return message.fields.sqlState }
        return nil
    }

    func message(_ action: Action) -> String? {
        if case .fatal(let message) = action { return message.fields.message }
        return nil
    }

    // MARK: Encryption requests

    @Test func sslRequestStartsTLS() {
        var machine = ClientStateMachine(allowPlaintextPasswords: false)
        #expect(machine.state == .awaitingStartup)
        #expect(machine.startupPacket(.sslRequest) == .startTLS)
        #expect(machine.state == .awaitingStartup)
    }

    @Test func secondSSLRequestAfterTLSIsRefused() {
        var machine = ClientStateMachine(allowPlaintextPasswords: true)
        _ = machine.startupPacket(.sslRequest)
        let action = machine.startupPacket(.sslRequest)
        #expect(sqlState(action) == "08P01")
        #expect(message(action) == "protocol violation: SSLRequest on an encrypted connection")
        #expect(machine.state == .closed)
    }

    @Test func gssEncryptionIsRefusedAndTheClientMayGoOn() {
        var machine = ClientStateMachine(allowPlaintextPasswords: false)
        #expect(machine.startupPacket(.gssEncryptionRequest) == .refuseEncryption)
        #expect(machine.state == .awaitingStartup)
        // libpq then falls back to SSLRequest.
        #expect(machine.startupPacket(.sslRequest) == .startTLS)
        #expect(machine.startupPacket(Self.aliceStartup) == .requestPassword)
    }

    // MARK: Startup

    @Test func startupOverTLSAsksForThePassword() {
        let machine = Self.awaitingPassword()
        #expect(machine.state == .awaitingPassword(Self.aliceRequest))
    }

    @Test func startupRequestSplitsUserConnectionAndPassthrough() {
        var machine = ClientStateMachine(allowPlaintextPasswords: true)
        let action = machine.startupPacket(
            Self.startup(["user": "bob", "database": "reports", "options": "-c search_path=x", "DateStyle": "ISO"]))
        #expect(action == .requestPassword)
        #expect(
            machine.state
                == .awaitingPassword(
                    StartupRequest(
                        user: "bob", connection: "reports", applicationName: "",
                        passthrough: ["options": "-c search_path=x", "DateStyle": "ISO"])))
    }

    @Test func connectionDefaultsToTheUserName() {
        var machine = ClientStateMachine(allowPlaintextPasswords: true)
        #expect(machine.startupPacket(Self.startup(["user": "bob"])) == .requestPassword)
        #expect(
            machine.state
                == .awaitingPassword(StartupRequest(user: "bob", connection: "bob", applicationName: "", passthrough: [:])))
    }

    @Test(arguments: [["database": "app"], ["user": "", "database": "app"]])
    func missingUserIsRefused(parameters: [String: String]) {
        var machine = ClientStateMachine(allowPlaintextPasswords: true)
        let action = machine.startupPacket(
            Self.startup(StartupParameters(parameters.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) })))
        #expect(
            action
                == .fatal(
                    sqlState: "28000", message: "no user name in the startup packet",
                    hint: "connect with user=YOUR_GATEHOUSE_USER"))
        #expect(machine.state == .closed)
    }

    @Test(arguments: ["true", "database", "on", "1", "yes"])
    func replicationIsRefused(value: String) {
        var machine = ClientStateMachine(allowPlaintextPasswords: true)
        let action = machine.startupPacket(Self.startup(["user": "alice", "replication": value]))
        #expect(
            action == .fatal(sqlState: "28000", message: "replication connections are not supported through Gatehouse", hint: nil)
        )
        #expect(machine.state == .closed)
    }

    @Test(arguments: ["false", "0", "off", "no", "OFF"])
    func replicationOffIsAllowed(value: String) {
        var machine = ClientStateMachine(allowPlaintextPasswords: true)
        #expect(machine.startupPacket(Self.startup(["user": "alice", "replication": value])) == .requestPassword)
    }

    @Test func newerProtocolMinorIsNegotiated() {
        var machine = ClientStateMachine(allowPlaintextPasswords: true)
        let action = machine.startupPacket(Self.startup(["user": "alice", "database": "app"], minor: 2))
        #expect(action == .negotiateProtocol(newestMinor: 0, unsupportedOptions: []))
        #expect(
            machine.state
                == .awaitingPassword(StartupRequest(user: "alice", connection: "app", applicationName: "", passthrough: [:])))
        #expect(machine.afterNegotiation() == .requestPassword)
    }

    @Test func protocolOptionsAreNegotiatedAndNotPassedOn() {
        var machine = ClientStateMachine(allowPlaintextPasswords: true)
        let action = machine.startupPacket(
            Self.startup(["user": "alice", "_pq_.b": "1", "_pq_.a": "x", "application_name": "app1", "TimeZone": "UTC"]))
        #expect(action == .negotiateProtocol(newestMinor: 0, unsupportedOptions: ["_pq_.a", "_pq_.b"]))
        #expect(
            machine.state
                == .awaitingPassword(
                    StartupRequest(
                        user: "alice", connection: "alice", applicationName: "app1",
                        passthrough: ["application_name": "app1", "TimeZone": "UTC"])))
    }

    @Test func plaintextTokenFromAnUntrustedAddressIsRefused() {
        var machine = ClientStateMachine(allowPlaintextPasswords: false)
        let action = machine.startupPacket(Self.aliceStartup)
        #expect(
            action
                == .fatal(
                    sqlState: "28000", message: "Gatehouse accepts tokens only over TLS from this address",
                    hint: "connect with sslmode=require (or verify-full with the gateway's certificate)"))
        #expect(machine.state == .closed)
        // The password is never asked for, so a token is never sent in the clear.
        #expect(machine.frame(Self.passwordFrame("token")) == .none)
    }

    @Test func plaintextTokenIsAcceptedWhenAllowed() {
        var machine = ClientStateMachine(allowPlaintextPasswords: true)
        #expect(machine.startupPacket(Self.aliceStartup) == .requestPassword)
        #expect(machine.state == .awaitingPassword(Self.aliceRequest))
    }

    @Test func startupAfterStartupIsAViolation() {
        var machine = Self.awaitingPassword()
        let action = machine.startupPacket(Self.aliceStartup)
        #expect(sqlState(action) == "08P01")
        #expect(message(action)?.contains("after startup") == true)
        #expect(machine.state == .closed)
        var relaying = Self.relaying()
        #expect(sqlState(relaying.startupPacket(.sslRequest)) == "08P01")
    }

    // MARK: Cancel

    @Test func cancelRequestIsForwarded() {
        var machine = ClientStateMachine(allowPlaintextPasswords: false)
        #expect(
            machine.startupPacket(.cancel(processID: 77, secretKey: -3))
                == .forwardCancel(GatewayCancelKey(processID: 77, secretKey: -3)))
        #expect(machine.state == .closed)
    }

    @Test func cancelRequestOverTLSIsForwarded() {
        var machine = ClientStateMachine(allowPlaintextPasswords: false)
        _ = machine.startupPacket(.sslRequest)
        #expect(
            machine.startupPacket(.cancel(processID: 1, secretKey: 2))
                == .forwardCancel(GatewayCancelKey(processID: 1, secretKey: 2)))
    }

    // MARK: Password

    @Test func passwordFrameIsVerifiedAsAToken() {
        var machine = Self.awaitingPassword()
        #expect(machine.frame(Self.passwordFrame("eyJ.token.sig")) == .verifyToken(Self.aliceRequest, token: "eyJ.token.sig"))
        #expect(machine.state == .authenticating(Self.aliceRequest))
    }

    @Test func emptyTokenIsRefused() {
        var machine = Self.awaitingPassword()
        let action = machine.frame(Self.passwordFrame(""))
        #expect(sqlState(action) == "28P01")
        #expect(message(action)?.contains("empty or malformed password") == true)
        #expect(machine.state == .closed)
    }

    @Test func malformedPasswordFrameIsRefused() {
        var machine = Self.awaitingPassword()
        let frame = PostgresFrame(type: MessageType.password, body: ByteBuffer(bytes: Array("unterminated".utf8)))
        #expect(sqlState(machine.frame(frame)) == "28P01")
        #expect(machine.state == .closed)
    }

    @Test func otherMessageInsteadOfThePasswordIsAViolation() {
        var machine = Self.awaitingPassword()
        let action = machine.frame(WireMessages.query("select 1"))
        #expect(
            action
                == .fatal(
                    sqlState: "08P01", message: "protocol violation: expected a password message, got message type 'Q'", hint: nil
                ))
        #expect(machine.state == .closed)
    }

    @Test func terminateInsteadOfThePasswordCloses() {
        var machine = Self.awaitingPassword()
        #expect(machine.frame(WireMessages.terminate) == .close)
        #expect(machine.state == .closed)
    }

    // MARK: After the token

    @Test func eachRefusedTokenSaysWhatToDo() {
        let hint = { (code: TokenError.Code) in
            ClientMessage.tokenRefused(user: "alice", TokenError(code, "refused")).fields["H"]
        }
        #expect(hint(.malformed)?.contains("not your Gatehouse or database password") == true)
        #expect(hint(.malformed)?.contains("password=$(gatehouse token)") == true)
        #expect(hint(.expired) == "run `gatehouse token` for a new token")
        #expect(hint(.revoked)?.contains("gatehouse login") == true)
        #expect(hint(.wrongKind)?.contains("that is a login token") == true)
    }

    @Test func verifiedTokenConnectsUpstream() {
        var machine = Self.authenticating()
        #expect(machine.tokenVerified() == .connectUpstream(Self.aliceRequest))
        #expect(machine.state == .connectingUpstream(Self.aliceRequest))
    }

    @Test func authenticationFailureIsFatal() {
        var machine = Self.authenticating()
        let action = machine.authenticationFailed(.tokenRefused(user: "alice", TokenError(.revoked, "the token was revoked")))
        #expect(
            action
                == .fatal(
                    sqlState: "28P01", message: "password authentication failed for user \"alice\": the token was revoked",
                    hint: "sign in again with `gatehouse login`, then run `gatehouse token` for a new token"))
        #expect(machine.state == .closed)
        // Nothing more happens on a closed connection.
        #expect(machine.tokenVerified() == .none)
    }

    @Test func upstreamReadyCompletesStartup() {
        var machine = Self.connecting()
        #expect(machine.upstreamReady() == .completeStartup)
        #expect(machine.state == .relaying)
    }

    @Test func upstreamFailureIsFatal() {
        var machine = Self.connecting()
        #expect(
            machine.upstreamFailed(.connectionUnavailable("main", reason: "cannot reach db"))
                == .fatal(
                    sqlState: "08001", message: "connection \"main\" is unavailable: cannot reach db",
                    hint: "the gateway could not open a session to the database; try again or tell its administrators"))
        #expect(machine.state == .closed)
    }

    @Test func eventsInTheWrongStateDoNothing() {
        var waiting = Self.awaitingPassword()
        #expect(waiting.tokenVerified() == .none)
        #expect(waiting.authenticationFailed(.malformedPassword) == .none)
        #expect(waiting.upstreamFailed(.auditUnavailable) == .none)
        #expect(waiting.upstreamReady() == .close)
        var authenticating = Self.authenticating()
        #expect(authenticating.upstreamFailed(.auditUnavailable) == .none)
        #expect(authenticating.state == .authenticating(Self.aliceRequest))
        var connecting = Self.connecting()
        #expect(connecting.authenticationFailed(.malformedPassword) == .none)
        #expect(connecting.tokenVerified() == .none)
        #expect(connecting.state == .connectingUpstream(Self.aliceRequest))
    }

    // MARK: Timeout

    @Test func timeoutBeforeTheSessionIsLiveIsFatal() {
        for var machine in [
            ClientStateMachine(allowPlaintextPasswords: true), Self.awaitingPassword(), Self.authenticating(), Self.connecting(),
        ] {
            #expect(machine.authenticationTimedOut() == .fatal(sqlState: "08006", message: "authentication timed out", hint: nil))
            #expect(machine.state == .closed)
        }
    }

    @Test func timeoutAfterTheSessionIsLiveDoesNothing() {
        var relaying = Self.relaying()
        #expect(relaying.authenticationTimedOut() == .none)
        #expect(relaying.state == .relaying)
        var closed = Self.closed()
        #expect(closed.authenticationTimedOut() == .none)
    }

    // MARK: Frames in the wrong state

    @Test func frameBeforeStartupIsAViolation() {
        var machine = ClientStateMachine(allowPlaintextPasswords: true)
        let action = machine.frame(WireMessages.query("select 1"))
        #expect(
            action
                == .fatal(
                    sqlState: "08P01", message: "protocol violation: a typed message arrived before the startup packet", hint: nil
                ))
        #expect(machine.state == .closed)
    }

    @Test func frameWhileAuthenticatingIsAViolation() {
        for var machine in [Self.authenticating(), Self.connecting()] {
            let action = machine.frame(Self.passwordFrame("again"))
            #expect(
                action
                    == .fatal(
                        sqlState: "08P01", message: "protocol violation: message type 'p' arrived while authenticating", hint: nil
                    ))
            #expect(machine.state == .closed)
        }
    }

    @Test func terminateWhileAuthenticatingCloses() {
        for var machine in [Self.authenticating(), Self.connecting()] {
            #expect(machine.frame(WireMessages.terminate) == .close)
            #expect(machine.state == .closed)
        }
    }

    @Test func framesWhileRelayingOrClosedAreLeftToTheRelay() {
        var relaying = Self.relaying()
        #expect(relaying.frame(WireMessages.query("select 1")) == .none)
        #expect(relaying.state == .relaying)
        var closed = Self.closed()
        #expect(closed.frame(WireMessages.query("select 1")) == .none)
        #expect(closed.state == .closed)
    }

    @Test func peerClosingEndsEveryState() {
        for var machine in [Self.awaitingPassword(), Self.authenticating(), Self.connecting(), Self.relaying()] {
            machine.peerClosed()
            #expect(machine.state == .closed)
            #expect(machine.upstreamReady() == .close)
        }
    }

    @Test func protocolViolationCodeMatchesTheClientMessageTable() {
        #expect(ClientMessage.Code.protocolViolation == "08P01")
        #expect(ClientMessage.Code.invalidPassword == "28P01")
        #expect(ClientMessage.Code.invalidAuthorization == "28000")
        #expect(ClientMessage.Code.connectionFailure == "08006")
    }
}

extension ByteBuffer {
    init(bytes: [UInt8]) {
        self.init()
        writeBytes(bytes)
    }
}

@Suite("Client state machine without TLS")
struct ClientStateMachineWithoutTLSTests {
    @Test("SSLRequest is refused when the gateway has no TLS, and a remote token is then refused as plaintext")
    func noTLS() {
        var machine = ClientStateMachine(allowPlaintextPasswords: false, tlsAvailable: false)
        #expect(machine.startupPacket(.sslRequest) == .refuseEncryption)
        // Refused before the client can send its token in the clear.
        let action = machine.startupPacket(
            .startup(protocolVersion: StartupPacket.protocolVersion3, parameters: ["user": "ada", "database": "main"]))
        guard case .fatal(let message) = action, let state = message.fields.sqlState else {
            Issue.record("expected a refusal, got \(action)")
            return
        }
        #expect(state == "28000")
    }
}

/// A FATAL as the client reads it: an action equals one when it sends exactly these fields.
struct Fatal: Equatable {
    var sqlState: String
    var message: String
    var hint: String?

    static func fatal(sqlState: String, message: String, hint: String?) -> Fatal {
        Fatal(sqlState: sqlState, message: message, hint: hint)
    }
}

func == (action: ClientStateMachine.Action, expected: Fatal) -> Bool {
    guard case .fatal(let message) = action else { return false }
    let fields = message.fields
    return fields.severity == "FATAL" && fields.sqlState == expected.sqlState && fields.message == expected.message
        && fields["H"] == expected.hint
}
