import Crypto
import Foundation
import NIOCore
import PostgresWire
import Testing

@testable import GatehouseProxy

/// SCRAM-SHA-256 computed from RFC 5802's definitions, independently of `UpstreamAuthenticator`.
enum ReferenceSCRAM {
    static func clientFinalAndServerSignature(
        user: String, password: String, clientNonce: String, serverFirst: String
    ) throws -> (clientFinal: String, serverFinal: String) {
        var attributes: [Character: String] = [:]
        for part in serverFirst.split(separator: ",") { attributes[part.first!] = String(part.dropFirst(2)) }
        let salt = try #require(Data(base64Encoded: attributes["s"]!))
        let iterations = try #require(Int(attributes["i"]!))
        // Hi(password, salt, i) = PBKDF2-HMAC-SHA-256 written out, to stay independent of KDF helpers.
        let key = SymmetricKey(data: Data(password.utf8))
        var u = Data(HMAC<SHA256>.authenticationCode(for: salt + Data([0, 0, 0, 1]), using: key))
        var salted = u
        for _ in 1..<iterations {
            u = Data(HMAC<SHA256>.authenticationCode(for: u, using: key))
            salted = Data(zip(salted, u).map { $0 ^ $1 })
        }
        let saltedKey = SymmetricKey(data: salted)
        let clientKey = Data(HMAC<SHA256>.authenticationCode(for: Data("Client Key".utf8), using: saltedKey))
        let storedKey = SymmetricKey(data: Data(SHA256.hash(data: clientKey)))
        let clientFinalWithoutProof = "c=biws,r=\(attributes["r"]!)"
        let authMessage = Data("n=\(user),r=\(clientNonce),\(serverFirst),\(clientFinalWithoutProof)".utf8)
        let clientSignature = Data(HMAC<SHA256>.authenticationCode(for: authMessage, using: storedKey))
        let proof = Data(zip(clientKey, clientSignature).map { $0 ^ $1 })
        let serverKey = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data("Server Key".utf8), using: saltedKey)))
        let serverSignature = Data(HMAC<SHA256>.authenticationCode(for: authMessage, using: serverKey))
        return ("\(clientFinalWithoutProof),p=\(proof.base64EncodedString())", "v=\(serverSignature.base64EncodedString())")
    }
}

@Suite("Upstream authentication")
struct UpstreamAuthenticationTests {
    // RFC 7677, section 3.
    static let clientNonce = "rOprNGfwEbeRWgbNEkqO"
    static let serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    static let rfcClientFinal =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    static let rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    // The same exchange with the empty user name PostgreSQL clients send (the server uses the startup
    // packet's user), computed independently with Python's hashlib and hmac.
    static let emptyUserClientFinal =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=qvT2SWdEH5Q06albL+hjSYuUhCG7VndFyzIb7CK4n9k="
    static let emptyUserServerFinal = "v=3HO6Qt1M4MKJrmlKaoOqLAI0/0TV0HZe7J9H3MBtSOg="

    func authenticator(password: String? = "pencil") -> UpstreamAuthenticator {
        UpstreamAuthenticator(user: "user", password: password, makeNonce: { Self.clientNonce })
    }

    func sent(_ action: UpstreamAuthenticator.Action) -> PostgresFrame? {
        if case .send(let frame) = action { return frame }
        return nil
    }

    func failure(_ action: UpstreamAuthenticator.Action) -> String? {
        if case .fail(let message) = action { return message }
        return nil
    }

    /// Runs the authenticator up to the client-final message.
    func afterServerFirst(
        _ serverFirst: String, password: String? = "pencil"
    ) -> (UpstreamAuthenticator, UpstreamAuthenticator.Action) {
        var auth = authenticator(password: password)
        _ = auth.receive(.sasl(mechanisms: ["SCRAM-SHA-256"]))
        let action = auth.receive(.saslContinue(data: Array(serverFirst.utf8)))
        return (auth, action)
    }

    @Test func referenceImplementationReproducesRFC7677() throws {
        let result = try ReferenceSCRAM.clientFinalAndServerSignature(
            user: "user", password: "pencil", clientNonce: Self.clientNonce, serverFirst: Self.serverFirst)
        #expect(result.clientFinal == Self.rfcClientFinal)
        #expect(result.serverFinal == Self.rfcServerFinal)
        let empty = try ReferenceSCRAM.clientFinalAndServerSignature(
            user: "", password: "pencil", clientNonce: Self.clientNonce, serverFirst: Self.serverFirst)
        #expect(empty.clientFinal == Self.emptyUserClientFinal)
        #expect(empty.serverFinal == Self.emptyUserServerFinal)
    }

    @Test func scramExchangeWithTheRFCVectorAndAnEmptyUserName() throws {
        var auth = authenticator()
        let first = auth.receive(.sasl(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]))
        // PostgreSQL clients send no user name in SCRAM (n=): the server takes it from the startup packet.
        #expect(
            first
                == .send(
                    WireMessages.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: Array("n,,n=,r=\(Self.clientNonce)".utf8)))
        )

        let final = auth.receive(.saslContinue(data: Array(Self.serverFirst.utf8)))
        #expect(final == .send(WireMessages.saslResponse(data: Array(Self.emptyUserClientFinal.utf8))))

        #expect(auth.receive(.saslFinal(data: Array(Self.emptyUserServerFinal.utf8))) == .wait)
        #expect(auth.receive(.ok) == .authenticated)
    }

    @Test func scramProofMatchesTheReferenceForOtherInputs() throws {
        let nonce = "fyko+d2lbbFgONRv9qkxdawL"
        let serverFirst = "r=\(nonce)3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
        var auth = UpstreamAuthenticator(user: "ignored", password: "pencil", makeNonce: { nonce })
        _ = auth.receive(.sasl(mechanisms: ["SCRAM-SHA-256"]))
        let expected = try ReferenceSCRAM.clientFinalAndServerSignature(
            user: "", password: "pencil", clientNonce: nonce, serverFirst: serverFirst)
        #expect(
            auth.receive(.saslContinue(data: Array(serverFirst.utf8)))
                == .send(WireMessages.saslResponse(data: Array(expected.clientFinal.utf8))))
        #expect(auth.receive(.saslFinal(data: Array(expected.serverFinal.utf8))) == .wait)
    }

    @Test func defaultNonceIsFreshBase64() throws {
        var first = UpstreamAuthenticator(user: "u", password: "p")
        var second = UpstreamAuthenticator(user: "u", password: "p")
        let a = try #require(sent(first.receive(.sasl(mechanisms: ["SCRAM-SHA-256"]))))
        let b = try #require(sent(second.receive(.sasl(mechanisms: ["SCRAM-SHA-256"]))))
        #expect(a != b)
        var body = a.body
        _ = body.readNullTerminatedString()
        let lengthField = body.readInteger(as: Int32.self)
        let length = try #require(lengthField)
        let messageField = body.readString(length: Int(length))
        let message = try #require(messageField)
        #expect(message.hasPrefix("n,,n=,r="))
        let nonce = String(message.dropFirst("n,,n=,r=".count))
        #expect(Data(base64Encoded: nonce)?.count == 18)
        #expect(!nonce.contains(","))
    }

    @Test func wrongServerSignatureFails() throws {
        var (auth, _) = afterServerFirst(Self.serverFirst)
        // The RFC's signature is for user "user"; the exchange used the empty name, so it is wrong here.
        let message = try #require(failure(auth.receive(.saslFinal(data: Array(Self.rfcServerFinal.utf8)))))
        #expect(message.contains("server signature is wrong"))
    }

    @Test func missingOrGarbledServerSignatureFails() throws {
        for final in ["", "v=", "v=!!!", "x=abc"] {
            var (auth, _) = afterServerFirst(Self.serverFirst)
            #expect(
                failure(auth.receive(.saslFinal(data: Array(final.utf8))))?.contains("server signature is wrong") == true,
                "\(final)")
        }
    }

    @Test func serverErrorAttributeFails() throws {
        var (auth, _) = afterServerFirst(Self.serverFirst)
        let message = try #require(failure(auth.receive(.saslFinal(data: Array("e=invalid-proof".utf8)))))
        #expect(message == "upstream rejected SCRAM authentication: invalid-proof")
    }

    @Test func okBeforeTheServerProvedItselfFails() throws {
        var (auth, _) = afterServerFirst(Self.serverFirst)
        #expect(failure(auth.receive(.ok))?.contains("did not prove") == true)
        var early = authenticator()
        _ = early.receive(.sasl(mechanisms: ["SCRAM-SHA-256"]))
        #expect(failure(early.receive(.ok))?.contains("did not prove") == true)
    }

    @Test(arguments: [
        // Does not extend the client nonce.
        "r=someoneElsesNonce123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        // Only the client nonce, with nothing added by the server.
        "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        // Client nonce not at the start.
        "r=XrOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        // Iterations above the cap.
        "r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001",
        "r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2147483647",
        // Iterations missing, zero, negative or not a number.
        "r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==",
        "r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
        "r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
        "r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=many",
        // Salt missing or not base64.
        "r=rOprNGfwEbeRWgbNEkqOabc,i=4096",
        "r=rOprNGfwEbeRWgbNEkqOabc,s=***,i=4096",
        // No nonce at all.
        "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        "",
    ])
    func invalidServerFirstFails(serverFirst: String) throws {
        let (_, action) = afterServerFirst(serverFirst)
        #expect(failure(action) == "upstream sent an invalid SCRAM challenge")
    }

    @Test func iterationCapIsTenMillion() {
        #expect(UpstreamAuthenticator.maxIterations == 10_000_000)
    }

    @Test func scramNeedsSCRAMSHA256() throws {
        var auth = authenticator()
        let message = try #require(failure(auth.receive(.sasl(mechanisms: ["SCRAM-SHA-256-PLUS", "OAUTHBEARER"]))))
        #expect(message.contains("SCRAM-SHA-256-PLUS, OAUTHBEARER"))
        #expect(message.contains("supports SCRAM-SHA-256"))
    }

    @Test func md5AnswerIsTheDoubleHash() {
        var auth = authenticator()
        // "md5" + md5(md5("pencil" + "user") + salt), computed independently with Python's hashlib.
        #expect(
            auth.receive(.md5Password(salt: [1, 2, 3, 4])) == .send(WireMessages.password("md54376eb6913b38f9aaff38dc7cf19ca76")))
        #expect(auth.receive(.ok) == .authenticated)
    }

    @Test func md5DependsOnTheSalt() throws {
        var a = authenticator()
        var b = authenticator()
        let first = try #require(sent(a.receive(.md5Password(salt: [1, 2, 3, 4]))))
        let second = try #require(sent(b.receive(.md5Password(salt: [1, 2, 3, 5]))))
        #expect(first != second)
        let text = try WireMessages.decodePassword(second.body)
        #expect(text.hasPrefix("md5") && text.count == 35)
    }

    @Test func cleartextSendsThePassword() {
        var auth = authenticator(password: "pencil")
        #expect(auth.receive(.cleartextPassword) == .send(WireMessages.password("pencil")))
        #expect(auth.receive(.ok) == .authenticated)
    }

    @Test func trustServerAuthenticatesAtOnce() {
        var auth = authenticator(password: nil)
        #expect(auth.receive(.ok) == .authenticated)
        var withPassword = authenticator()
        #expect(withPassword.receive(.ok) == .authenticated)
    }

    @Test(arguments: [Int32(2), 6, 7, 8, 9])
    func unsupportedMethodsFailClearly(code: Int32) throws {
        var auth = authenticator()
        let message = try #require(failure(auth.receive(.unsupported(code: code))))
        #expect(message == "upstream asks for an authentication method Gatehouse does not support (code \(code))")
    }

    @Test func unsupportedMethodFailsInTheMiddleOfSCRAMToo() {
        var (auth, _) = afterServerFirst(Self.serverFirst)
        #expect(failure(auth.receive(.unsupported(code: 7)))?.contains("code 7") == true)
    }

    @Test func passwordMethodsWithoutAPasswordFail() {
        let expected = "upstream asks for a password and the connection has none"
        var cleartext = authenticator(password: nil)
        #expect(failure(cleartext.receive(.cleartextPassword)) == expected)
        var md5 = authenticator(password: nil)
        #expect(failure(md5.receive(.md5Password(salt: [0, 0, 0, 0]))) == expected)
        var scram = authenticator(password: nil)
        #expect(failure(scram.receive(.sasl(mechanisms: ["SCRAM-SHA-256"]))) == expected)
    }

    @Test func outOfOrderMessagesFail() {
        let expected = "upstream sent an unexpected authentication message"
        var continueFirst = authenticator()
        #expect(failure(continueFirst.receive(.saslContinue(data: Array(Self.serverFirst.utf8)))) == expected)
        var finalFirst = authenticator()
        #expect(failure(finalFirst.receive(.saslFinal(data: Array(Self.emptyUserServerFinal.utf8)))) == expected)
        var finalTooEarly = authenticator()
        _ = finalTooEarly.receive(.sasl(mechanisms: ["SCRAM-SHA-256"]))
        #expect(failure(finalTooEarly.receive(.saslFinal(data: Array(Self.emptyUserServerFinal.utf8)))) == expected)
        var (afterFinal, _) = afterServerFirst(Self.serverFirst)
        #expect(failure(afterFinal.receive(.saslContinue(data: Array(Self.serverFirst.utf8)))) == expected)
        var md5AfterSCRAM = authenticator()
        _ = md5AfterSCRAM.receive(.sasl(mechanisms: ["SCRAM-SHA-256"]))
        #expect(failure(md5AfterSCRAM.receive(.md5Password(salt: [1, 2, 3, 4]))) == expected)
    }
}
