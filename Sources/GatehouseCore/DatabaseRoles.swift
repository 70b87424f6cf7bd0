import Crypto
import CryptoExtras
import Foundation

/// The password a person's database role logs in with: derived from the gateway's key, the connection
/// and the role, so it is never stored, is the same for every gateway that shares the key, and differs
/// from one connection to the next.
public enum DatabaseRolePassword {
    public static func derive(key: SymmetricKey, connection: String, role: String) -> String {
        let message = Array("gatehouse database role\u{0}\(connection)\u{0}\(role)".utf8)
        let code = HMAC<SHA256>.authenticationCode(for: message, using: key)
        return Data(code).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (what `ALTER ROLE … PASSWORD` is
    /// given, so the password itself never reaches the server): `SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`.
    public static func scramVerifier(password: String, salt: [UInt8], iterations: Int = 4096) -> String {
        let salted =
            (try? KDF.Insecure.PBKDF2.deriveKey(
                from: Array(password.utf8), salt: salt, using: .sha256, outputByteCount: 32,
                unsafeUncheckedRounds: iterations)) ?? SymmetricKey(data: [UInt8](repeating: 0, count: 32))
        let clientKey = Array(HMAC<SHA256>.authenticationCode(for: Array("Client Key".utf8), using: salted))
        let storedKey = Array(SHA256.hash(data: clientKey))
        let serverKey = Array(HMAC<SHA256>.authenticationCode(for: Array("Server Key".utf8), using: salted))
        return
            "SCRAM-SHA-256$\(iterations):\(Data(salt).base64EncodedString())$\(Data(storedKey).base64EncodedString()):\(Data(serverKey).base64EncodedString())"
    }
}

/// SQL text for role management: identifiers and literals quoted as PostgreSQL reads them.
public enum RoleSQL {
    /// `"name"`, with `"` doubled: any role name, spelled exactly.
    public static func identifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// `'text'`, with `'` doubled (standard-conforming strings).
    public static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// The comment that marks a role as one the gateway made for `connection`: it changes only roles
    /// that carry it.
    public static func marker(connection: String) -> String { "managed by Gatehouse for connection \(connection)" }

    /// `validUntil`: until when the password works (the gateway's login is about to use it), as
    /// PostgreSQL reads a timestamptz. Outside the gateway's own logins the role's password has expired,
    /// so a password the person set themselves (a role may change its own) opens nothing.
    public static func create(_ role: String, verifier: String, connection: String, validUntil: String) -> [String] {
        [
            "CREATE ROLE \(identifier(role)) LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD \(literal(verifier)) VALID UNTIL \(literal(validUntil))",
            "COMMENT ON ROLE \(identifier(role)) IS \(literal(marker(connection: connection)))",
        ]
    }

    /// Puts a role the gateway made back as it makes it: its password, no attributes beyond LOGIN,
    /// no settings of its own (a `role` default would change who its sessions are). REPLICATION and
    /// BYPASSRLS only a superuser may even name in ALTER ROLE: the service refuses a role that has them.
    public static func restore(_ role: String, verifier: String, validUntil: String) -> [String] {
        [
            "ALTER ROLE \(identifier(role)) LOGIN NOCREATEDB NOCREATEROLE INHERIT PASSWORD \(literal(verifier)) VALID UNTIL \(literal(validUntil))",
            "ALTER ROLE \(identifier(role)) RESET ALL",
        ]
    }

    /// The role's password stops working (its logins through the gateway are done).
    public static func expire(_ role: String) -> String {
        "ALTER ROLE \(identifier(role)) VALID UNTIL '1970-01-01 00:00:00+00'"
    }

    public static func grant(_ role: String, to member: String) -> String {
        "GRANT \(identifier(role)) TO \(identifier(member))"
    }

    public static func revoke(_ role: String, from member: String) -> String {
        "REVOKE \(identifier(role)) FROM \(identifier(member))"
    }
}

/// What one person's role must change to hold exactly what it should: pure, from what it holds and
/// what it should hold.
public struct MembershipChange: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable { case grant, revoke }
    public var kind: Kind
    /// The person's role.
    public var member: String
    /// The database role it gains or loses.
    public var role: String

    public init(_ kind: Kind, member: String, role: String) {
        self.kind = kind
        self.member = member
        self.role = role
    }

    public var sql: String {
        kind == .grant ? RoleSQL.grant(role, to: member) : RoleSQL.revoke(role, from: member)
    }

    public var description: String { kind == .grant ? "\(member) gains \(role)" : "\(member) loses \(role)" }

    /// Revocations first (a privilege never outlives its grant longer than needed), then grants, each
    /// in name order.
    public static func plan(member: String, holds: Set<String>, should: Set<String>) -> [MembershipChange] {
        holds.subtracting(should).sorted().map { MembershipChange(.revoke, member: member, role: $0) }
            + should.subtracting(holds).sorted().map { MembershipChange(.grant, member: member, role: $0) }
    }
}
