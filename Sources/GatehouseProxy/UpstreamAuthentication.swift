import Crypto
import CryptoExtras
import Foundation
import GatehouseCore
import PostgresWire

/// Answers an upstream server's authentication requests with the brokered credentials.
///
/// A pure state machine: each `AuthenticationMessage` in, the frame to send (or completion) out.
/// Supports trust, cleartext, MD5 and SCRAM-SHA-256 (without channel binding).
public struct UpstreamAuthenticator: Sendable {
    public enum Action: Sendable, Equatable {
        case send(PostgresFrame)
        /// Nothing to send; the server's next message follows.
        case wait
        /// AuthenticationOk arrived: parameter status and key data follow.
        case authenticated
        case fail(String)
    }

    private enum State: Sendable {
        case initial
        case scramSentFirst(clientNonce: String, clientFirstBare: String)
        case scramSentFinal(expectedServerSignature: [UInt8])
        case done
    }

    let user: String
    let password: String?
    private var state = State.initial
    private let makeNonce: @Sendable () -> String

    /// The most PBKDF2 iterations an upstream may ask for; more would let a hostile server stall us.
    static let maxIterations = 10_000_000

    public init(
        user: String, password: String?,
        makeNonce: @escaping @Sendable () -> String = { Data(RandomSecret.bytes(18)).base64EncodedString() }
    ) {
        self.user = user
        self.password = password
        self.makeNonce = makeNonce
    }

    public mutating func receive(_ message: AuthenticationMessage) -> Action {
        switch (state, message) {
        case (.initial, .ok), (.done, .ok):
            state = .done
            return .authenticated
        case (.scramSentFirst, .ok), (.scramSentFinal, .ok):
            return .fail("upstream ended SCRAM authentication early: it did not prove it knows the password")
        case (.initial, .cleartextPassword):
            guard let password else { return .fail("upstream asks for a password and the connection has none") }
            return .send(WireMessages.password(password))
        case (.initial, .md5Password(let salt)):
            guard let password else { return .fail("upstream asks for a password and the connection has none") }
            let inner = Self.md5Hex(Array((password + user).utf8))
            return .send(WireMessages.password("md5" + Self.md5Hex(Array(inner.utf8) + salt)))
        case (.initial, .sasl(let mechanisms)):
            guard mechanisms.contains("SCRAM-SHA-256") else {
                return .fail(
                    "upstream offers only SASL mechanisms \(mechanisms.joined(separator: ", ")); Gatehouse supports SCRAM-SHA-256"
                )
            }
            guard password != nil else { return .fail("upstream asks for a password and the connection has none") }
            let nonce = makeNonce()
            let bare = "n=,r=\(nonce)"
            state = .scramSentFirst(clientNonce: nonce, clientFirstBare: bare)
            return .send(WireMessages.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: Array("n,,\(bare)".utf8)))
        case (.scramSentFirst(let clientNonce, let clientFirstBare), .saslContinue(let data)):
            return scramFinal(
                serverFirst: String(decoding: data, as: UTF8.self), clientNonce: clientNonce, clientFirstBare: clientFirstBare)
        case (.scramSentFinal(let expected), .saslFinal(let data)):
            let text = String(decoding: data, as: UTF8.self)
            let attributes = Self.attributes(text)
            if let error = attributes["e"] { return .fail("upstream rejected SCRAM authentication: \(error)") }
            guard let signature = attributes["v"].flatMap({ Data(base64Encoded: $0) }), Array(signature) == expected else {
                return .fail("upstream's SCRAM server signature is wrong: it may not be the server configured")
            }
            state = .done
            return .wait
        case (_, .unsupported(let code)):
            return .fail("upstream asks for an authentication method Gatehouse does not support (code \(code))")
        default:
            return .fail("upstream sent an unexpected authentication message")
        }
    }

    private mutating func scramFinal(serverFirst: String, clientNonce: String, clientFirstBare: String) -> Action {
        let attributes = Self.attributes(serverFirst)
        guard let nonce = attributes["r"], nonce.hasPrefix(clientNonce), nonce.count > clientNonce.count,
            let saltText = attributes["s"], let salt = Data(base64Encoded: saltText),
            let iterations = attributes["i"].flatMap(Int.init), (1...Self.maxIterations).contains(iterations),
            let password
        else { return .fail("upstream sent an invalid SCRAM challenge") }
        guard
            let saltedKey = try? KDF.Insecure.PBKDF2.deriveKey(
                from: Array(password.utf8), salt: Array(salt), using: .sha256, outputByteCount: 32,
                unsafeUncheckedRounds: iterations)
        else { return .fail("cannot compute the SCRAM proof") }
        let clientKey = Array(HMAC<SHA256>.authenticationCode(for: Array("Client Key".utf8), using: saltedKey))
        let storedKey = SymmetricKey(data: SHA256.hash(data: clientKey))
        let finalWithoutProof = "c=biws,r=\(nonce)"
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(finalWithoutProof)".utf8)
        let clientSignature = Array(HMAC<SHA256>.authenticationCode(for: authMessage, using: storedKey))
        let proof = zip(clientKey, clientSignature).map { $0 ^ $1 }
        let serverKey = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array("Server Key".utf8), using: saltedKey))
        let serverSignature = Array(HMAC<SHA256>.authenticationCode(for: authMessage, using: serverKey))
        state = .scramSentFinal(expectedServerSignature: serverSignature)
        let final = "\(finalWithoutProof),p=\(Data(proof).base64EncodedString())"
        return .send(WireMessages.saslResponse(data: Array(final.utf8)))
    }

    static func attributes(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for part in text.split(separator: ",") {
            guard let equals = part.firstIndex(of: "="), part.distance(from: part.startIndex, to: equals) == 1 else { continue }
            result[String(part[..<equals])] = String(part[part.index(after: equals)...])
        }
        return result
    }

    static func md5Hex(_ bytes: [UInt8]) -> String {
        Hex.encode(Insecure.MD5.hash(data: bytes))
    }
}
