import Crypto
import CryptoExtras
import Foundation

/// A slow, salted password hash: PBKDF2-HMAC-SHA-256, written as `pbkdf2-sha256$ROUNDS$SALT$HASH`
/// (salt and hash in unpadded base64).
public struct PasswordHash: Sendable, Equatable, CustomStringConvertible {
    /// OWASP's 2023 recommendation for PBKDF2-HMAC-SHA-256.
    public static let defaultRounds = 600_000
    /// Fewer rounds are refused when reading a stored hash, so a weakened hash cannot be planted.
    public static let minimumRounds = 210_000

    public let rounds: Int
    public let salt: [UInt8]
    public let hash: [UInt8]

    /// Hashes a new password with a fresh random salt.
    public static func make(password: String, rounds: Int = defaultRounds) throws -> PasswordHash {
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return PasswordHash(rounds: rounds, salt: salt, hash: try derive(password, salt: salt, rounds: rounds))
    }

    /// Parses the stored form; nil when it is not one this version writes.
    public init?(_ text: String) {
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "pbkdf2-sha256", let rounds = Int(parts[1]),
            rounds >= Self.minimumRounds,
            let salt = Data(base64Encoded: Self.padded(String(parts[2]))),
            let hash = Data(base64Encoded: Self.padded(String(parts[3]))), salt.count >= 8, hash.count == 32
        else { return nil }
        self.init(rounds: rounds, salt: Array(salt), hash: Array(hash))
    }

    init(rounds: Int, salt: [UInt8], hash: [UInt8]) {
        self.rounds = rounds
        self.salt = salt
        self.hash = hash
    }

    /// Checks a password in constant time with respect to the stored hash.
    public func matches(_ password: String) -> Bool {
        guard let candidate = try? Self.derive(password, salt: salt, rounds: rounds) else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(candidate, hash) { difference |= a ^ b }
        return difference == 0 && candidate.count == hash.count
    }

    public var description: String {
        "pbkdf2-sha256$\(rounds)$\(Self.unpadded(salt))$\(Self.unpadded(hash))"
    }

    static func derive(_ password: String, salt: [UInt8], rounds: Int) throws -> [UInt8] {
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(password.utf8), salt: salt, using: .sha256, outputByteCount: 32,
            unsafeUncheckedRounds: rounds)
        return key.withUnsafeBytes { Array($0) }
    }

    static func unpadded(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }

    static func padded(_ text: String) -> String {
        text + String(repeating: "=", count: (4 - text.count % 4) % 4)
    }
}

/// Random secrets for generated passwords, keys and identifiers.
public enum RandomSecret {
    /// A password of `length` characters from an alphabet without look-alike characters.
    public static func password(length: Int = 20) -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
    }

    public static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    public static func hex(_ byteCount: Int) -> String {
        Hex.encode(bytes(byteCount))
    }
}
