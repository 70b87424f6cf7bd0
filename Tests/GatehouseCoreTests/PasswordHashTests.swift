import Foundation
import GatehouseCore
import Testing

@Suite("PasswordHash")
struct PasswordHashTests {
    /// The cheapest cost the parser accepts, so the tests stay fast.
    static let rounds = PasswordHash.minimumRounds

    /// PBKDF2-HMAC-SHA-256("correct horse battery staple", salt 00 01 .. 0f, 210000 rounds), computed
    /// independently with Python's hashlib.
    static let knownHash =
        "pbkdf2-sha256$210000$AAECAwQFBgcICQoLDA0ODw$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6w"

    @Test func madeHashRoundTripsThroughItsText() throws {
        let made = try PasswordHash.make(password: "s3cret-enough", rounds: Self.rounds)
        let text = made.description
        let parsed = try #require(PasswordHash(text))
        #expect(parsed == made)
        #expect(parsed.rounds == Self.rounds)
        #expect(parsed.salt.count == 16)
        #expect(parsed.hash.count == 32)
        #expect(parsed.matches("s3cret-enough"))
        #expect(parsed.description == text)
    }

    @Test func textHasTheDocumentedShape() throws {
        let text = try PasswordHash.make(password: "x", rounds: Self.rounds).description
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        #expect(parts.count == 4)
        #expect(parts[0] == "pbkdf2-sha256")
        #expect(parts[1] == "\(Self.rounds)")
        #expect(!text.contains("="), "salt and hash are unpadded base64")
    }

    @Test func wrongPasswordDoesNotMatch() throws {
        let made = try PasswordHash.make(password: "right password", rounds: Self.rounds)
        #expect(!made.matches("wrong password"))
        #expect(!made.matches(""))
        #expect(!made.matches("right password "))
        #expect(!made.matches("Right password"))
    }

    @Test func saltIsFreshForEveryHash() throws {
        let first = try PasswordHash.make(password: "same", rounds: Self.rounds)
        let second = try PasswordHash.make(password: "same", rounds: Self.rounds)
        #expect(first.salt != second.salt)
        #expect(first.hash != second.hash)
        #expect(first.matches("same") && second.matches("same"))
    }

    @Test func independentlyComputedHashVerifies() throws {
        let parsed = try #require(PasswordHash(Self.knownHash))
        #expect(parsed.rounds == 210_000)
        #expect(parsed.salt == Array(0..<16))
        #expect(parsed.matches("correct horse battery staple"))
        #expect(!parsed.matches("correct horse battery stapler"))
        #expect(parsed.description == Self.knownHash)
    }

    @Test(arguments: [
        "",
        "pbkdf2-sha256",
        "pbkdf2-sha256$210000$AAECAwQFBgcICQoLDA0ODw",
        "pbkdf2-sha256$210000$AAECAwQFBgcICQoLDA0ODw$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6w$extra",
        "pbkdf2-sha512$210000$AAECAwQFBgcICQoLDA0ODw$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6w",
        "bcrypt$210000$AAECAwQFBgcICQoLDA0ODw$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6w",
        "pbkdf2-sha256$many$AAECAwQFBgcICQoLDA0ODw$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6w",
        "pbkdf2-sha256$$AAECAwQFBgcICQoLDA0ODw$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6w",
        // salt is not base64
        "pbkdf2-sha256$210000$!!!notbase64!!!$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6w",
        // salt shorter than 8 bytes (7 bytes)
        "pbkdf2-sha256$210000$AAECAwQFBg$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6w",
        // hash of 31 bytes
        "pbkdf2-sha256$210000$AAECAwQFBgcICQoLDA0ODw$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXUw",
        // hash of 33 bytes
        "pbkdf2-sha256$210000$AAECAwQFBgcICQoLDA0ODw$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6wA",
        // empty hash
        "pbkdf2-sha256$210000$AAECAwQFBgcICQoLDA0ODw$",
    ])
    func malformedTextIsRejected(text: String) {
        #expect(PasswordHash(text) == nil)
    }

    @Test func eightByteSaltIsTheShortestAccepted() {
        let text = "pbkdf2-sha256$210000$AAECAwQFBgc$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6w"
        #expect(PasswordHash(text)?.salt == Array(0..<8))
    }

    @Test func roundsBelowTheMinimumAreRejected() throws {
        // The same salt and hash as the known vector, with a lowered round count: a weakened hash
        // planted in the configuration or store must not be accepted.
        for rounds in [PasswordHash.minimumRounds - 1, 1000, 1, 0, -210_000] {
            let text = "pbkdf2-sha256$\(rounds)$AAECAwQFBgcICQoLDA0ODw$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6w"
            #expect(PasswordHash(text) == nil, "rounds \(rounds)")
        }
        #expect(PasswordHash(Self.knownHash) != nil)
        #expect(PasswordHash.minimumRounds <= PasswordHash.defaultRounds)
    }

    @Test func hashWithFewerRoundsIsNotReadBack() throws {
        // make() itself does not refuse low costs, but what it writes cannot be read back.
        let weak = try PasswordHash.make(password: "pw", rounds: 1000)
        #expect(weak.matches("pw"))
        #expect(PasswordHash(weak.description) == nil)
    }
}

@Suite("RandomSecret")
struct RandomSecretTests {
    @Test func passwordsUseTheUnambiguousAlphabet() {
        let alphabet = Set("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        let password = RandomSecret.password(length: 200)
        #expect(password.count == 200)
        #expect(password.allSatisfy { alphabet.contains($0) })
        #expect(RandomSecret.password() != RandomSecret.password())
        #expect(RandomSecret.password().count == 20)
    }

    @Test func hexHasTwoDigitsPerByte() {
        let hex = RandomSecret.hex(16)
        #expect(hex.count == 32)
        #expect(hex.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(RandomSecret.bytes(7).count == 7)
    }
}
