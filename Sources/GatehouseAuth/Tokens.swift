import Foundation
import GatehouseCore
import GatehouseStore
import JWTKit

/// The two kinds of token the gateway signs.
public enum TokenKind: String, Codable, Sendable {
    /// Kept by `gatehouse login`; exchanges for access tokens at the HTTP API. Never a database password.
    case login
    /// Short-lived; the password for a PostgreSQL session.
    case access
}

/// Claims of a Gatehouse token: who, their groups, when issued, until when, and an id for revocation.
public struct TokenClaims: JWTPayload, Equatable {
    public var iss: String
    public var sub: String
    public var groups: [String]
    public var kind: TokenKind
    public var iat: Int64
    public var exp: Int64
    public var jti: String
    /// How the user authenticated (RFC 8176 values: `pwd`, `otp`) and when.
    public var amr: [String]?
    public var auth_time: Int64?

    public var issuedAt: Date { Date(timeIntervalSince1970: TimeInterval(iat)) }
    public var expiresAt: Date { Date(timeIntervalSince1970: TimeInterval(exp)) }

    /// Signature and decoding are checked by JWTKit; time and revocation by `TokenService`, with its clock.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Why a token was refused. The description is shown to the client.
public struct TokenError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case malformed, expired, revoked, wrongKind, wrongUser, notYetValid, unknownUser, userRefused
    }

    public var code: Code
    public var description: String

    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

/// Signs and verifies tokens (HS256 with the gateway's own key), and keeps the revocation list.
public actor TokenService {
    public static let issuer = "gatehouse"

    private let keys: JWTKeyCollection
    private let store: any GatehouseStore
    private var revocations: Revocations
    private let now: @Sendable () -> Date

    public init(
        signingKey: [UInt8], store: any GatehouseStore, now: @escaping @Sendable () -> Date = Date.init
    )
        async throws
    {
        self.keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: signingKey), digestAlgorithm: .sha256)
        self.store = store
        self.revocations = try await store.revocations()
        self.now = now
    }

    /// Issues a token for `user`; `ttl` is the lifetime.
    public func issue(
        for user: User, kind: TokenKind, ttl: TimeInterval, methods: [String]? = nil, authenticatedAt: Date? = nil
    ) async throws -> (token: String, claims: TokenClaims) {
        let issued = now()
        let claims = TokenClaims(
            iss: Self.issuer, sub: user.name, groups: user.groups, kind: kind,
            iat: Int64(issued.timeIntervalSince1970.rounded(.down)),
            exp: Int64((issued.timeIntervalSince1970 + ttl).rounded(.down)), jti: RandomSecret.hex(16), amr: methods,
            auth_time: authenticatedAt.map { Int64($0.timeIntervalSince1970.rounded(.down)) })
        return (try await keys.sign(claims), claims)
    }

    /// Verifies signature, kind, time and revocation. The user's current state is checked by the caller.
    public func verify(_ token: String, kind: TokenKind) async throws -> TokenClaims {
        let claims: TokenClaims
        do {
            claims = try await keys.verify(token.trimmingCharacters(in: .whitespacesAndNewlines), as: TokenClaims.self)
        } catch {
            throw TokenError(.malformed, "the token is not a valid Gatehouse token (bad format or signature)")
        }
        guard claims.iss == Self.issuer else { throw TokenError(.malformed, "the token was not issued by Gatehouse") }
        guard claims.kind == kind else {
            throw TokenError(
                .wrongKind,
                kind == .access
                    ? "a login token cannot be used as a database password: run `gatehouse token` for an access token"
                    : "an access token cannot be used here: run `gatehouse login`")
        }
        let current = now()
        guard claims.expiresAt > current else {
            throw TokenError(
                .expired, "the token expired at \(Timestamp.format(claims.expiresAt)): run `gatehouse token` for a new one")
        }
        guard claims.issuedAt <= current.addingTimeInterval(60) else {
            throw TokenError(.notYetValid, "the token is issued in the future; check the gateway's clock")
        }
        guard !revocations.isRevoked(tokenID: claims.jti, user: claims.sub, issuedAt: claims.issuedAt) else {
            throw TokenError(.revoked, "the token was revoked")
        }
        return claims
    }

    /// Whether the token these claims came from has been revoked since it was verified.
    public func isRevoked(_ claims: TokenClaims) -> Bool {
        revocations.isRevoked(tokenID: claims.jti, user: claims.sub, issuedAt: claims.issuedAt)
    }

    /// Revokes one token by id until it would have expired anyway.
    public func revoke(tokenID: String, expiresAt: Date) async throws {
        try await store.revokeToken(id: tokenID, expiresAt: expiresAt)
        revocations.tokenIDs.insert(tokenID)
    }

    /// Revokes every token of `user` issued up to now.
    public func revokeAll(ofUser user: String) async throws {
        let cutoff = now()
        try await store.revokeTokens(ofUser: user, issuedBefore: cutoff)
        revocations.userCutoffs[user] = cutoff
    }

    /// Reads the signing key from `path`, creating a random one (mode 0600) on first use.
    public static func loadOrCreateSigningKey(at path: String) throws -> [UInt8] {
        if let data = FileManager.default.contents(atPath: path) {
            guard
                let key = Data(
                    base64Encoded: String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
                key.count >= 32
            else {
                throw StoreError("the signing key at \(path) is damaged: it must hold at least 32 bytes in base64")
            }
            return Array(key)
        }
        let key = RandomSecret.bytes(32)
        try FileSecrets.write(Data(key).base64EncodedString() + "\n", to: path)
        return key
    }
}

/// Writes secrets with owner-only permissions.
public enum FileSecrets {
    public static func write(_ text: String, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        else { throw StoreError("cannot write \(path)") }
    }
}
