import Foundation
import GatehouseAuth
import GatehouseCore
import Hummingbird

/// An API failure with a stable machine-readable code. All HTTP status mapping happens here.
public struct APIError: HTTPResponseError, Sendable {
    public enum Code: String, Sendable {
        case badRequest = "bad_request"
        case unauthenticated
        case forbidden
        case notFound = "not_found"
        case loginFailed = "login_failed"
        case secondFactorRequired = "second_factor_required"
        /// The action needs the caller's password again (a token alone is not enough).
        case passwordRequired = "password_required"
        case wrongCode = "wrong_code"
        /// A right code that was used before (each is good once): wait for the next.
        case codeAlreadyUsed = "code_already_used"
        case lockedOut = "locked_out"
        case conflict
        case rateLimited = "rate_limited"
        case internalError = "internal_error"

        var status: HTTPResponse.Status {
            switch self {
            case .badRequest: .badRequest
            case .unauthenticated, .loginFailed, .secondFactorRequired, .passwordRequired, .wrongCode, .codeAlreadyUsed:
                .unauthorized
            case .lockedOut, .rateLimited: .tooManyRequests
            case .conflict: .conflict
            case .forbidden: .forbidden
            case .notFound: .notFound
            case .internalError: .internalServerError
            }
        }
    }

    public var code: Code
    public var message: String
    /// For `rate_limited`: seconds until a retry may succeed (the Retry-After header).
    public var retryAfter: Int?

    public init(_ code: Code, _ message: String, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var status: HTTPResponse.Status { code.status }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        // Keys in one order: two refusals that say the same are the same bytes.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = try encoder.encode(APIErrorBody(error: .init(code: code.rawValue, message: message)))
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        if code == .unauthenticated { headers[.wwwAuthenticate] = "Bearer realm=\"gatehouse\"" }
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(data: data)))
    }
}

/// The JSON body of every API error: `{"error": {"code": "...", "message": "..."}}`.
public struct APIErrorBody: Codable, Sendable {
    public struct Detail: Codable, Sendable {
        public var code: String
        public var message: String
    }

    public var error: Detail
}

/// An error the API answers with its own status, code and message (the console shows the message).
public protocol APIErrorConvertible: Error {
    var apiError: APIError { get }
}

extension APIError: APIErrorConvertible {
    public var apiError: APIError { self }
}

/// A domain error answers as the API error it maps to.
extension HTTPResponseError where Self: APIErrorConvertible {
    public var status: HTTPResponse.Status { apiError.status }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        try apiError.response(from: request, context: context)
    }
}

// The domain errors the API passes on as they are, mapped here to their status and code: routes throw
// them without catching and rethrowing.

extension ChallengeError: HTTPResponseError, APIErrorConvertible {
    public var apiError: APIError {
        switch code {
        case .notFound: APIError(.notFound, description)
        case .notYours, .selfApproval, .notAnApprover: APIError(.forbidden, description)
        case .wrongCode, .tooManyAttempts: APIError(.wrongCode, description)
        case .codeAlreadyUsed: APIError(.codeAlreadyUsed, description)
        case .lockedOut: APIError(.lockedOut, description)
        case .passwordRequired: APIError(.passwordRequired, description)
        case .approverStepUpRequired: APIError(.secondFactorRequired, description)
        case .notPending, .expired, .wrongKind, .notEnrolled: APIError(.conflict, description)
        }
    }
}

extension GrantError: HTTPResponseError, APIErrorConvertible {
    public var apiError: APIError {
        switch code {
        case .notFound, .unknownRole: APIError(.notFound, description)
        case .notARequester, .selfApproval, .notAnApprover, .notAllowed: APIError(.forbidden, description)
        case .stepUpRequired: APIError(.secondFactorRequired, description)
        case .notPending, .alreadyApproved: APIError(.conflict, description)
        case .wrongConnection, .tooLong, .reasonRequired, .reasonMismatch, .breakGlassUnavailable:
            APIError(.badRequest, description)
        }
    }
}
