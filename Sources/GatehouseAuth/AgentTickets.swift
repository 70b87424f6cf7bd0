import Foundation
import GatehouseCore
import NIOConcurrencyHelpers

/// One-time tickets with which the gateway's MCP tools open sessions on its own PostgreSQL listener:
/// the agent's token was checked when its HTTP request came in, and the ticket, sent as the password,
/// says so and carries what only the gateway may say (that the session is an agent's, and its client's
/// name). A PostgreSQL client cannot make one: tickets exist only in this process's memory, each is
/// used once and lives seconds.
public final class AgentTickets: Sendable {
    /// What a ticket stands for.
    public struct Ticket: Sendable {
        public var claims: TokenClaims
        /// The MCP client's name, as it gave it in `initialize`.
        public var client: String
        /// The address the agent's HTTP request came from.
        public var source: String?
        /// Called with the proxy's session id once the session is admitted.
        public var onSession: @Sendable (String) -> Void
    }

    public static let prefix = "gh-agent-ticket-"
    private let tickets = NIOLockedValueBox<[String: (ticket: Ticket, expires: Date)]>([:])
    private let lifetime: TimeInterval

    public init(lifetime: TimeInterval = 30) {
        self.lifetime = lifetime
    }

    public func issue(
        for claims: TokenClaims, client: String, source: String? = nil,
        onSession: @escaping @Sendable (String) -> Void = { _ in }
    ) -> String {
        let secret = Self.prefix + RandomSecret.hex(24)
        let now = Date()
        tickets.withLockedValue { tickets in
            tickets = tickets.filter { $0.value.expires > now }
            tickets[secret] = (
                Ticket(claims: claims, client: client, source: source, onSession: onSession), now.addingTimeInterval(lifetime)
            )
        }
        return secret
    }

    /// The ticket's content, once: a second use, or one after its lifetime, finds nothing.
    public func redeem(_ secret: String) -> Ticket? {
        guard secret.hasPrefix(Self.prefix) else { return nil }
        let now = Date()
        return tickets.withLockedValue { tickets in
            guard let entry = tickets.removeValue(forKey: secret), entry.expires > now else { return nil }
            return entry.ticket
        }
    }
}
