import Foundation
import GatehouseCore
import GatehousePolicy
import GatehouseSessions
import Hummingbird
import SQLInspection

/// Request and response bodies of the HTTP API (`/api/v1`). Field names are snake_case on the wire.
public enum API {
    public struct LoginRequest: Codable, Sendable {
        public var user: String
        public var password: String
        /// The TOTP code, for users with a second factor.
        public var code: String?
        public init(user: String, password: String, code: String? = nil) {
            self.user = user
            self.password = password
            self.code = code
        }
    }

    public struct TokenResponse: Codable, Sendable, ResponseEncodable {
        public var token: String
        public var id: String
        public var user: String
        public var groups: [String]
        public var expires_at: String
    }

    public struct TokenRequest: Codable, Sendable {
        /// Lifetime such as `15m`; the configured default when absent.
        public var ttl: String?
        public init(ttl: String?) { self.ttl = ttl }
    }

    public struct RevokeRequest: Codable, Sendable {
        /// A token to revoke (its id and expiry are read from it).
        public var token: String?
        /// Revoke every token of this user issued until now.
        public var user: String?
        public init(token: String?, user: String?) {
            self.token = token
            self.user = user
        }
    }

    public struct RevokeResponse: Codable, Sendable, ResponseEncodable {
        public var revoked: String
    }

    public struct Me: Codable, Sendable, ResponseEncodable {
        public var user: String
        public var groups: [String]
        public var login_expires_at: String
    }

    public struct Session: Codable, Sendable {
        public var id: String
        public var user: String
        public var connection: String
        public var source: String
        public var application_name: String
        public var started_at: String
        public var tls: Bool

        init(_ info: SessionInfo) {
            id = info.id
            user = info.user
            connection = info.connection
            source = info.source
            application_name = info.applicationName
            started_at = Timestamp.format(info.startedAt)
            tls = info.tls
        }
    }

    public struct Sessions: Codable, Sendable, ResponseEncodable {
        public var sessions: [Session]
    }

    public struct TerminateResponse: Codable, Sendable, ResponseEncodable {
        public var terminated: String
    }

    public struct AuditPage: Codable, Sendable, ResponseEncodable {
        public var events: [AuditEvent]
        /// Pass as `after` to read on.
        public var next_after: Int64
    }

    public struct AuditVerification: Codable, Sendable, ResponseEncodable {
        public var intact: Bool
        public var events_checked: Int
        public var last_seq: Int64?
        public var last_hash: String?
        public var problems: [AuditChainReport.Problem]

        public init(_ report: AuditChainReport) {
            intact = report.isIntact
            events_checked = report.eventsChecked
            last_seq = report.lastSeq
            last_hash = report.lastHash
            problems = report.problems
        }
    }

    public struct PasswordRequest: Codable, Sendable {
        public var password: String
        /// Your present password, when you change your own (a stolen token alone cannot take the account).
        public var current_password: String?
        public init(password: String, current_password: String? = nil) {
            self.password = password
            self.current_password = current_password
        }
    }

    public struct Done: Codable, Sendable, ResponseEncodable {
        public var ok: Bool
    }

    public struct Health: Codable, Sendable, ResponseEncodable {
        public var status: String
        public var sessions: Int
    }

    public struct EnrolRequest: Codable, Sendable {
        /// Your password, to enrol a first second factor (a stolen token alone cannot add one).
        public var password: String?
        /// A code from your confirmed second factor, to replace it.
        public var code: String?
        /// Admins only: enrol for this user instead of yourself (a lost authenticator, an account
        /// without a password); the secret comes back to the admin, to hand over.
        public var user: String?
        public init(password: String? = nil, code: String? = nil, user: String? = nil) {
            self.password = password
            self.code = code
            self.user = user
        }
    }

    public struct Enrolment: Codable, Sendable, ResponseEncodable {
        public var uri: String
        public var secret: String
        public init(uri: String, secret: String) {
            self.uri = uri
            self.secret = secret
        }
    }

    public struct CodeRequest: Codable, Sendable {
        public var code: String?
        public init(code: String?) { self.code = code }
    }

    public struct DenyRequest: Codable, Sendable {
        public var reason: String?
        public init(reason: String?) { self.reason = reason }
    }

    public struct ChallengeView: Codable, Sendable, ResponseEncodable {
        public var id: String
        public var kind: String
        public var state: String
        public var user: String
        public var session: String
        public var connection: String
        public var statement: String
        public var fingerprint: String
        public var rules: [String]
        public var reason: String
        public var approvers: [String]
        public var created_at: String
        public var expires_at: String
        public var decided_by: String?
        /// The MCP client's name when an AI agent sent the statement.
        public var agent: String?

        public init(_ challenge: Challenge) {
            agent = challenge.agent
            id = challenge.id
            kind = challenge.kind.rawValue
            state = challenge.state.rawValue
            user = challenge.user
            session = challenge.session
            connection = challenge.connection
            statement = challenge.statement
            fingerprint = challenge.fingerprint
            rules = challenge.rules
            reason = challenge.reason
            approvers = challenge.approvers
            created_at = Timestamp.format(challenge.createdAt)
            expires_at = Timestamp.format(challenge.expiresAt)
            decided_by = challenge.decidedBy
        }
    }

    public struct Challenges: Codable, Sendable, ResponseEncodable {
        public var challenges: [ChallengeView]
        public init(challenges: [ChallengeView]) { self.challenges = challenges }
    }

    public struct AccessRequestBody: Codable, Sendable {
        public var role: String
        public var connection: String?
        public var duration: String
        public var reason: String?
        public var start_at: String?
        public var break_glass: Bool?
        public var code: String?
        public init(
            role: String, connection: String?, duration: String, reason: String?, start_at: String? = nil,
            break_glass: Bool? = nil, code: String? = nil
        ) {
            self.role = role
            self.connection = connection
            self.duration = duration
            self.reason = reason
            self.start_at = start_at
            self.break_glass = break_glass
            self.code = code
        }
    }

    public struct AccessRequestView: Codable, Sendable, ResponseEncodable {
        public var id: String
        public var requester: String
        public var role: String
        public var connection: String?
        public var state: String
        public var active: Bool
        public var reason: String
        public var duration: String
        public var requested_at: String
        public var active_from: String?
        public var expires_at: String?
        public var approvals: [String]
        public var denied_by: String?
        public var denial_reason: String?
        public var revoked_by: String?
        public var break_glass: Bool
        public var auto_approved: Bool

        public init(_ request: AccessRequest, now: Date) {
            id = request.id
            requester = request.requester
            role = request.role
            connection = request.connection
            state = request.state.rawValue
            active = request.isActive(at: now)
            reason = request.reason
            duration = DurationText.format(request.duration)
            requested_at = Timestamp.format(request.requestedAt)
            active_from = request.activeFrom.map(Timestamp.format)
            expires_at = request.expiresAt.map(Timestamp.format)
            approvals = request.approvals
            denied_by = request.deniedBy
            denial_reason = request.denialReason
            revoked_by = request.revokedBy
            break_glass = request.breakGlass
            auto_approved = request.autoApproved
        }
    }

    public struct AccessRequests: Codable, Sendable, ResponseEncodable {
        public var requests: [AccessRequestView]
        public init(requests: [AccessRequestView]) { self.requests = requests }
    }

    public struct ServiceTokenRequest: Codable, Sendable {
        public var user: String
        public var ttl: String
        public init(user: String, ttl: String) {
            self.user = user
            self.ttl = ttl
        }
    }
}

// MARK: Directory, policy, grants

extension API {
    public struct UserView: Codable, Sendable {
        public var name: String
        public var groups: [String]
        /// `user` (people, from the configuration or the first start) or `service` (API tokens only).
        public var kind: String
        public var disabled: Bool
        public var expires_at: String?
        public var has_password: Bool
        public var second_factor: Bool
    }

    public struct Users: Codable, Sendable, ResponseEncodable {
        public var users: [UserView]
    }

    public struct GroupView: Codable, Sendable {
        public var name: String
        public var members: [String]
    }

    public struct Groups: Codable, Sendable, ResponseEncodable {
        public var groups: [GroupView]
    }

    public struct ConnectionView: Codable, Sendable {
        public var name: String
        public var host: String
        public var port: Int
        public var database: String
        public var tls: String
    }

    public struct Connections: Codable, Sendable, ResponseEncodable {
        public var connections: [ConnectionView]
    }

    public struct RuleView: Codable, Sendable {
        public var name: String
        public var action: String
        public var mode: String
        public var conditions: [String]
        public var message: String?
        public var hint: String?
        public var step_up_max_age: String?
        public var approvers: [String]
    }

    public struct PolicyView: Codable, Sendable, ResponseEncodable {
        public var default_action: String
        public var unclassified_action: String
        public var connection_defaults: [String: String]
        public var rules: [RuleView]
    }

    public struct PolicyTestRequest: Codable, Sendable {
        public var sql: String
        public var connection: String
        /// Test as this user (admins and auditors only); the caller when absent.
        public var user: String?
        public var source: String?
        public var application: String?
        public var country: String?
        /// Elevated roles to simulate, as if granted.
        public var roles: [String]?
        public var new_device: Bool?
        /// When, as RFC 3339; now when absent.
        public var at: String?
        public init(
            sql: String, connection: String, user: String? = nil, source: String? = nil, application: String? = nil,
            country: String? = nil, roles: [String]? = nil, new_device: Bool? = nil, at: String? = nil
        ) {
            self.sql = sql
            self.connection = connection
            self.user = user
            self.source = source
            self.application = application
            self.country = country
            self.roles = roles
            self.new_device = new_device
            self.at = at
        }
    }

    public struct PolicyTestResult: Codable, Sendable, ResponseEncodable {
        public var user: String
        public var connection: String
        public var decision: Decision
        public var inspection: Inspection
        /// One line per statement, as the audit log and `gatehouse policy test` show it.
        public var summaries: [String]
    }

    public struct RoleView: Codable, Sendable {
        public var name: String
        public var connections: [String]
        public var max_duration: String
        public var reason_required: Bool
        public var approver_groups: [String]
        public var approvals_needed: Int
        public var break_glass: Bool
    }

    public struct Roles: Codable, Sendable, ResponseEncodable {
        public var roles: [RoleView]
    }

    public struct GrantView: Codable, Sendable {
        public var request: AccessRequestView
        public var seconds_left: Int
    }

    public struct Grants: Codable, Sendable, ResponseEncodable {
        public var grants: [GrantView]
    }
}
