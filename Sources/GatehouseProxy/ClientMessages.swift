import Foundation
import GatehouseAuth
import GatehouseCore
import GatehousePolicy
import GatehouseSessions
import PostgresWire
import SQLInspection

/// Everything the gateway itself tells a PostgreSQL client: each FATAL, ERROR and NOTICE it sends, with
/// its SQLSTATE, text and hint, in this one file. The session machine and the judge say which; `fields`
/// says how it reads.
public enum ClientMessage: Error, Sendable, Equatable {
    // MARK: Before the session (FATAL)

    case noUserName
    case controlCharactersInUserName
    case replicationNotSupported
    case tokensOnlyOverTLS
    case protocolViolation(String)
    case malformedPassword
    case authenticationTimedOut
    case tooManyAuthenticating(SessionRegistry.AuthenticationLimit)
    case tokenOfAnotherUser(requested: String, owner: String)
    case tokenRefused(user: String, TokenError)
    case accountRefused(String)
    case unknownConnection(String, configured: [String])
    case tooManySessions(String)
    case startupSetting(StartupSettings.Refusal)
    case startupSettingRefused(written: String, reason: String, hint: String?)
    case auditCannotRecordStartupSettings
    case auditUnavailable
    case upstreamPinViolation(String)
    /// The connection's database could not be reached (`reason`: `UpstreamFailure`'s words).
    case connectionUnavailable(String, reason: String)

    // MARK: Ending a live session (FATAL)

    case terminated(String)
    case pinnedSettingChanged(String)

    // MARK: A statement that does not run (ERROR)

    case refused(Decision)
    /// The text does not parse (or cannot be checked): refused with PostgreSQL's own SQLSTATE and position.
    case unparsable(Decision, ParseError)
    case holdEnded(Challenge)
    case unrecorded
    case unreadableText(String)
    case functionCallRefused
    /// An Execute of a portal the gateway cannot tie to a statement it judged.
    case refusedExecution(String)
    /// What the server answers no longer fits what the gateway sent: it cannot say what a name runs.
    case namespaceLost(String)

    // MARK: A statement held (NOTICE)

    case holding(Challenge)

    /// SQLSTATEs the gateway uses.
    public enum Code {
        public static let invalidAuthorization = "28000"
        public static let invalidPassword = "28P01"
        public static let unknownDatabase = "3D000"
        public static let cannotConnect = "08001"
        public static let connectionFailure = "08006"
        public static let protocolViolation = "08P01"
        public static let adminShutdown = "57P01"
        public static let queryCanceled = "57014"
        public static let insufficientPrivilege = "42501"
        public static let tooManyConnections = "53300"
        public static let characterNotInRepertoire = "22021"
        public static let internalError = "XX000"
    }

    public var severity: String {
        switch self {
        case .refused, .unparsable, .holdEnded, .unrecorded, .unreadableText, .functionCallRefused, .refusedExecution: "ERROR"
        case .holding: "NOTICE"
        default: "FATAL"
        }
    }

    public var fields: ErrorNoticeFields {
        let (sqlState, message, detail, hint) = parts
        var position: Int?
        if case .unparsable(_, let error) = self { position = error.position }
        return ErrorNoticeFields(
            severity: severity, sqlState: sqlState, message: message, detail: detail, hint: hint, position: position)
    }

    /// The ErrorResponse (or, for `holding`, the NoticeResponse) frame.
    public var frame: PostgresFrame { severity == "NOTICE" ? fields.noticeFrame : fields.errorFrame }

    private var parts: (sqlState: String, message: String, detail: String?, hint: String?) {
        switch self {
        case .noUserName:
            return (Code.invalidAuthorization, "no user name in the startup packet", nil, "connect with user=YOUR_GATEHOUSE_USER")
        case .controlCharactersInUserName:
            return (Code.invalidAuthorization, "user names cannot contain control characters", nil, nil)
        case .replicationNotSupported:
            return (Code.invalidAuthorization, "replication connections are not supported through Gatehouse", nil, nil)
        case .tokensOnlyOverTLS:
            return (
                Code.invalidAuthorization, "Gatehouse accepts tokens only over TLS from this address", nil,
                "connect with sslmode=require (or verify-full with the gateway's certificate)"
            )
        case .protocolViolation(let what):
            return (Code.protocolViolation, "protocol violation: \(what)", nil, nil)
        case .malformedPassword:
            return (
                Code.invalidPassword, "empty or malformed password: the password must be a Gatehouse access token", nil,
                "password=$(gatehouse token)"
            )
        case .authenticationTimedOut:
            return (Code.connectionFailure, "authentication timed out", nil, nil)
        case .tooManyAuthenticating(.total(let limit)):
            return (
                Code.tooManyConnections,
                "too many connections are waiting to authenticate (limits.max_unauthenticated_connections: \(limit))", nil,
                "try again in a moment"
            )
        case .tooManyAuthenticating(.perSource(let limit)):
            return (
                Code.tooManyConnections,
                "too many connections from this address are waiting to authenticate (limits.max_unauthenticated_per_source: \(limit))",
                nil, "finish or close the connections already open, then try again"
            )
        case .tokenOfAnotherUser(let requested, let owner):
            return (
                Code.invalidPassword,
                "password authentication failed for user \"\(requested)\": the token belongs to another user", nil,
                "use user=\(owner), or a token of \(requested)"
            )
        case .tokenRefused(let user, let error):
            return (
                Code.invalidPassword, "password authentication failed for user \"\(user)\": \(error.description)", nil,
                Self.tokenHint(error.code)
            )
        case .accountRefused(let why):
            return (Code.invalidAuthorization, "access refused: \(why)", nil, nil)
        case .unknownConnection(let name, let configured):
            return (
                Code.unknownDatabase, "connection \"\(name)\" is not configured in Gatehouse", nil,
                configured.isEmpty ? "no connections are configured" : "use dbname= one of: \(configured.joined(separator: ", "))"
            )
        case .tooManySessions(let limit):
            return (
                Code.tooManyConnections, "too many sessions: \(limit)", nil,
                "close a session you no longer use, or ask an administrator to raise the limit"
            )
        case .startupSetting(let refusal):
            return (refusal.sqlState, refusal.message, nil, refusal.hint)
        case .startupSettingRefused(let written, let reason, let hint):
            return (
                Code.insufficientPrivilege, "startup setting \(written) is refused: \(reason)", nil,
                hint ?? "connect without it, or ask for a grant that allows it"
            )
        case .auditCannotRecordStartupSettings:
            return (
                Code.internalError, "Gatehouse refused the session: its audit log cannot record the startup's settings", nil, nil
            )
        case .auditUnavailable:
            return (Code.internalError, "the gateway cannot write its audit log; refusing the session", nil, nil)
        case .upstreamPinViolation(let violation):
            return (Code.cannotConnect, "refusing the session: \(violation)", nil, nil)
        case .connectionUnavailable(let name, let reason):
            return (
                Code.cannotConnect, "connection \"\(name)\" is unavailable: \(reason)", nil,
                "the gateway could not open a session to the database; try again or tell its administrators"
            )
        case .terminated(let reason):
            return (Code.adminShutdown, "terminating connection: \(reason)", nil, nil)
        case .pinnedSettingChanged(let violation):
            return (
                Code.adminShutdown, "terminating connection: \(violation)", nil,
                "Gatehouse sessions stay in UTF8 with standard_conforming_strings on"
            )
        case .refused(let decision):
            return Self.refusal(decision)
        case .unparsable(let decision, let error):
            return Self.unparsable(decision, error)
        case .holdEnded(let challenge):
            return Self.holdRefusal(challenge)
        case .unrecorded:
            return (
                Code.internalError, "Gatehouse did not run this statement: its audit log cannot record it", nil,
                "the gateway's operator must free or repair the gateway's data directory"
            )
        case .unreadableText(let description):
            return (
                Code.characterNotInRepertoire, description, nil, "Gatehouse sessions use client_encoding UTF8: send UTF-8 text"
            )
        case .functionCallRefused:
            return (
                Code.insufficientPrivilege,
                "Gatehouse does not pass the FunctionCall protocol message: call the function with SQL",
                nil, "use SELECT function_name(...) so the statement can be checked"
            )
        case .refusedExecution(let reason):
            return (
                Code.insufficientPrivilege, "Gatehouse refused this Execute: \(reason)", nil,
                "Parse and Bind the statement in this session through the gateway, then Execute it"
            )
        case .namespaceLost(let what):
            return (
                Code.protocolViolation,
                "Gatehouse ended the session: it lost track of the session's prepared statements (\(what))", nil,
                "reconnect; if this repeats, report the client and the statements it sent"
            )
        case .holding(let challenge):
            return Self.holdNotice(challenge)
        }
    }

    /// What to do about a refused token. A password that is not a token at all is most often the
    /// person's own password (or the database's): say what goes there instead.
    private static func tokenHint(_ code: TokenError.Code) -> String? {
        switch code {
        case .malformed:
            "the password is a Gatehouse access token, not your Gatehouse or database password: "
                + "run `gatehouse login`, then connect with password=$(gatehouse token)"
        case .expired: "run `gatehouse token` for a new token"
        case .revoked: "sign in again with `gatehouse login`, then run `gatehouse token` for a new token"
        case .wrongKind: "that is a login token: run `gatehouse token` for an access token and connect with it"
        case .notYetValid: "check this machine's clock, then run `gatehouse token` for a new token"
        case .wrongUser, .unknownUser, .userRefused: nil
        }
    }

    private static func refusal(_ decision: Decision) -> (String, String, String?, String?) {
        let rules = decision.decidingRules.map(\.name)
        let message =
            switch decision.action {
            case .stepUp:
                "Gatehouse held this statement: \(decision.reason); step-up verification is not enabled on this gateway, so it was not run"
            case .approve:
                "Gatehouse held this statement: \(decision.reason); approval is not enabled on this gateway, so it was not run"
            default:
                "Gatehouse denied this statement: \(decision.reason)"
            }
        let hint =
            decision.hint
            ?? (rules.isEmpty
                ? "ask an administrator to allow it in the gateway's policy"
                : "ask for elevated access or an exception to rule \(rules.joined(separator: ", "))")
        return (Code.insufficientPrivilege, message, nil, hint)
    }

    /// A syntax error reads as PostgreSQL's own (its SQLSTATE, message and position, so psql points at
    /// it), saying that the gateway is the one that could not parse it and did not run it.
    private static func unparsable(_ decision: Decision, _ error: ParseError) -> (String, String, String?, String?) {
        let rules = decision.decidingRules.map(\.name)
        let detail = rules.isEmpty ? nil : "Gatehouse denied it by rule \(rules.joined(separator: ", ")): \(decision.reason)"
        switch error.sqlState {
        case ParseError.syntaxError:
            return (
                error.sqlState, "\(error.message) (the gateway could not parse this statement, so it did not run it)", detail,
                decision.hint ?? "correct the statement and send it again"
            )
        case ParseError.internalError:
            return (
                error.sqlState, "Gatehouse could not check this statement (\(error.message)), so it did not run it", detail,
                decision.hint ?? "send it again; if it keeps failing, tell the gateway's administrators"
            )
        default:
            return (
                error.sqlState, "Gatehouse did not run this statement: \(error.message)", detail,
                decision.hint ?? "split it into smaller statements"
            )
        }
    }

    private static func holdRefusal(_ challenge: Challenge) -> (String, String, String?, String?) {
        let what = challenge.kind == .stepUp ? "step-up verification" : "approval"
        let because = challenge.decisionReason.map { ": \($0)" } ?? ""
        switch challenge.state {
        case .expired:
            return (
                Code.insufficientPrivilege,
                "Gatehouse did not run this statement: \(what) did not arrive in time (challenge \(challenge.id) expired)", nil,
                "run the statement again and answer the challenge sooner"
            )
        case .denied:
            return (
                Code.insufficientPrivilege,
                "Gatehouse did not run this statement: \(challenge.decidedBy ?? "an approver") denied it\(because)", nil, nil
            )
        case .cancelled:
            return (
                Code.queryCanceled, "canceling statement due to user request (it was held by Gatehouse for \(what))", nil, nil
            )
        case .pending, .verified, .approved, .failed:
            return (Code.insufficientPrivilege, "Gatehouse did not run this statement: \(what) failed\(because)", nil, nil)
        }
    }

    private static func holdNotice(_ challenge: Challenge) -> (String, String, String?, String?) {
        let rules = challenge.rules.map { "\"\($0)\"" }.joined(separator: ", ")
        let timeout = DurationText.format(challenge.expiresAt.timeIntervalSince(challenge.createdAt))
        switch challenge.kind {
        case .stepUp:
            return (
                "00000", "Gatehouse is holding this statement: rule \(rules) needs step-up verification",
                "Run in another terminal: gatehouse verify \(challenge.id)    (within \(timeout); it covers this statement only)",
                "the statement runs as soon as the code is accepted; cancel with Ctrl-C"
            )
        case .approve:
            return (
                "00000", "Gatehouse is holding this statement until another person approves it: rule \(rules)",
                "Approvers (\(challenge.approvers.joined(separator: ", "))) run: gatehouse approve \(challenge.id)    (within \(timeout))",
                "the statement runs as soon as it is approved; cancel with Ctrl-C"
            )
        }
    }
}
