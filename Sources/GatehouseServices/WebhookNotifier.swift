import Crypto
import Foundation
import GatehouseConfig
import GatehouseCore
import GatehouseStore
import Logging
import ServiceLifecycle

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Sends committed audit events that webhooks subscribe to: JSON with a Slack-compatible `text`,
/// signed with HMAC-SHA256, retried with backoff. A Service of the gateway's `ServiceGroup`: deliveries
/// queue (bounded) and at most `concurrency` run at once, so a slow or failing receiver never blocks the
/// gateway nor piles up tasks; a delivery that finally fails, and an event the full queue had to drop,
/// are audited.
public final class WebhookNotifier: Service, Sendable {
    let hooks: [Webhook]
    let store: any GatehouseStore
    let logger: Logger
    let attempts: Int
    let firstDelay: Double
    let concurrency: Int
    private let queue: AsyncStream<(AuditEvent, Webhook)>
    private let enqueue: AsyncStream<(AuditEvent, Webhook)>.Continuation

    public init(
        hooks: [Webhook], store: any GatehouseStore, logger: Logger, attempts: Int = 5, firstDelay: Double = 1,
        concurrency: Int = 8, queueLimit: Int = 10_000
    ) {
        self.hooks = hooks
        self.store = store
        self.logger = logger
        self.attempts = attempts
        self.firstDelay = firstDelay
        self.concurrency = concurrency
        (queue, enqueue) = AsyncStream.makeStream(of: (AuditEvent, Webhook).self, bufferingPolicy: .bufferingOldest(queueLimit))
    }

    /// Called with every committed batch: queues a delivery per subscribed hook.
    public func notify(_ events: [AuditEvent]) {
        for event in events where event.type != AuditEventType.webhookFailed.rawValue {
            for hook in hooks where hook.wants(event.type) {
                if case .dropped = enqueue.yield((event, hook)) {
                    logger.error(
                        "webhook queue full: event not delivered", metadata: ["webhook": "\(hook.name)", "event": "\(event.seq)"])
                    let store = store
                    Task {
                        _ = try? await store.appendAudit(
                            AuditRecord(
                                .webhookFailed, actor: "gatehouse",
                                detail: [
                                    "webhook": hook.name, "event_seq": String(event.seq), "event": event.type, "attempts": "0",
                                    "problem": "the delivery queue was full",
                                ]))
                    }
                }
            }
        }
    }

    /// Delivers what is queued, at most `concurrency` at once, until the gateway stops.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for await (event, hook) in queue.cancelOnGracefulShutdown() {
                if running >= concurrency {
                    await group.next()
                    running -= 1
                }
                group.addTask { await self.deliver(event, to: hook) }
                running += 1
            }
        }
    }

    public static func text(_ event: AuditEvent) -> String {
        let detail = event.detail
        let who = event.actor ?? "gatehouse"
        switch event.type {
        case "request.created":
            return
                ":key: \(detail["requester"] ?? who) requests *\(detail["role"] ?? "?")* — \(detail["reason"] ?? "") (`gatehouse approve \(detail["request"] ?? "")`)"
        case "request.approved":
            return
                ":white_check_mark: \(who) approved \(detail["request"] ?? "") (\(detail["role"] ?? "?") for \(detail["requester"] ?? "?"))"
        case "request.denied": return ":no_entry: \(who) denied \(detail["request"] ?? ""): \(detail["denial_reason"] ?? "")"
        case "grant.break_glass":
            return
                ":rotating_light: BREAK-GLASS: \(who) took *\(detail["role"] ?? "?")* until \(detail["expires_at"] ?? "?") — \(detail["reason"] ?? "")"
        case "grant.revoked":
            return
                ":scissors: \(who) revoked \(detail["request"] ?? "") (\(detail["role"] ?? "?") of \(detail["requester"] ?? "?"))"
        case "grant.expired":
            return
                ":hourglass: grant \(detail["request"] ?? "") (\(detail["role"] ?? "?") of \(detail["requester"] ?? "?")) expired"
        case "statement.alert":
            return ":warning: \(who) on \(event.connection ?? "?"): \(detail["reason"] ?? "") — `\(detail["statement"] ?? "")`"
        default: return "\(event.type) by \(who)" + (detail["reason"].map { ": \($0)" } ?? "")
        }
    }

    private func deliver(_ event: AuditEvent, to hook: Webhook) async {
        struct Payload: Encodable {
            var event: String
            var seq: Int64
            var time: String
            var actor: String?
            var connection: String?
            var session: String?
            var detail: [String: String]
            var hash: String
            var text: String
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let url = URL(string: hook.url),
            let body = try? encoder.encode(
                Payload(
                    event: event.type, seq: event.seq, time: event.time, actor: event.actor, connection: event.connection,
                    session: event.session, detail: event.detail, hash: event.hash, text: Self.text(event)))
        else { return }
        let signature = Hex.encode(
            HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(hook.secret.utf8))))
        let delivery = UUID().uuidString.lowercased()
        var lastProblem = ""
        for attempt in 1...attempts {
            var request = URLRequest(url: url)
            request.httpMethod = "POST"
            request.timeoutInterval = 10
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.setValue("sha256=\(signature)", forHTTPHeaderField: "X-Gatehouse-Signature")
            request.setValue(event.type, forHTTPHeaderField: "X-Gatehouse-Event")
            request.setValue(delivery, forHTTPHeaderField: "X-Gatehouse-Delivery")
            request.setValue(String(attempt), forHTTPHeaderField: "X-Gatehouse-Attempt")
            do {
                let (_, response) = try await URLSession.shared.data(for: request)
                let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                if (200..<300).contains(status) { return }
                lastProblem = "HTTP \(status)"
            } catch {
                lastProblem = error.localizedDescription
            }
            if attempt < attempts {
                try? await Task.sleep(for: .milliseconds(Int64(firstDelay * 1000 * pow(2, Double(attempt - 1)))))
            }
        }
        logger.warning(
            "webhook delivery failed",
            metadata: ["webhook": "\(hook.name)", "event": "\(event.seq)", "problem": "\(lastProblem)"])
        _ = try? await store.appendAudit(
            AuditRecord(
                .webhookFailed, actor: "gatehouse",
                detail: [
                    "webhook": hook.name, "event_seq": String(event.seq), "event": event.type, "attempts": String(attempts),
                    "problem": lastProblem,
                ]))
    }
}
