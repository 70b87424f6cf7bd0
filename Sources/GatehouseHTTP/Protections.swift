import Foundation
import GatehouseCore
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers

/// Rate limits on the routes that check secrets (passwords, second-factor codes), in three buckets:
/// per source address, per account from one source (tight), and per account from everywhere (looser).
/// One client cannot try many guesses, a spread of clients cannot hammer one account, and a stranger
/// guessing from elsewhere slows the account's owner only once the looser bucket is empty.
public final class Throttle: Sendable {
    private let bySource: NIOLockedValueBox<RateLimiter>
    private let byAccountAndSource: NIOLockedValueBox<RateLimiter>
    private let byAccount: NIOLockedValueBox<RateLimiter>
    private let what: String

    public init(
        what: String, perSource: (burst: Int, perMinute: Int), perUser: (burst: Int, perMinute: Int),
        perAccount: (burst: Int, perMinute: Int)
    ) {
        self.what = what
        bySource = NIOLockedValueBox(RateLimiter(burst: perSource.burst, perMinute: perSource.perMinute))
        byAccountAndSource = NIOLockedValueBox(RateLimiter(burst: perUser.burst, perMinute: perUser.perMinute))
        byAccount = NIOLockedValueBox(RateLimiter(burst: perAccount.burst, perMinute: perAccount.perMinute))
    }

    /// Takes one attempt; throws `rate_limited` with a Retry-After when a bucket is empty.
    public func check(source: String?, user: String?, at now: Date) throws {
        if let source, let wait = bySource.withLockedValue({ $0.take(source, at: now) }) {
            throw Self.limited(what, wait)
        }
        guard let user else { return }
        let account = user.lowercased()
        if let wait = byAccountAndSource.withLockedValue({ $0.take(account + "\u{0}" + (source ?? ""), at: now) }) {
            throw Self.limited(what, wait)
        }
        if let wait = byAccount.withLockedValue({ $0.take(account, at: now) }) {
            throw Self.limited(what, wait)
        }
    }

    static func limited(_ what: String, _ wait: TimeInterval) -> APIError {
        let seconds = max(1, Int(wait.rounded(.up)))
        return APIError(.rateLimited, "too many \(what) attempts: try again in \(seconds)s", retryAfter: seconds)
    }
}

/// Security headers on every response, errors included: no framing, no sniffing, no referrer to other sites, no
/// caching of API answers or console pages, and a content policy that allows only the gateway's own
/// scripts and styles.
public struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        Self.apply(to: &response.headers)
        return response
    }

    static func apply(to headers: inout HTTPFields) {
        headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        headers[.xContentTypeOptions] = "nosniff"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        headers[HTTPField.Name("Cross-Origin-Opener-Policy")!] = "same-origin"
        headers[HTTPField.Name("Permissions-Policy")!] = "camera=(), microphone=(), geolocation=()"
        if headers[.cacheControl] == nil { headers[.cacheControl] = "no-store" }
    }
}
