import Foundation
import GatehouseConfig
import GatehouseCore
import GatehouseServices
import GatehouseStore
import Logging
import Testing

@Suite("Webhook delivery")
struct WebhookNotifierTests {
    static func event(_ seq: Int64, _ type: String, actor: String = "ada", detail: [String: String] = [:]) -> AuditEvent {
        AuditEvent(
            seq: seq, time: "2026-12-06T00:00:00Z", type: type, actor: actor, session: nil, connection: "main", source: nil,
            detail: detail, prevHash: "", hash: "h\(seq)")
    }

    @Test func theTextSaysWhoDidWhatAndHowToAnswer() {
        let request = Self.event(
            1, "request.created", detail: ["requester": "ada", "role": "dba", "reason": "incident 7", "request": "r1"])
        #expect(WebhookNotifier.text(request) == ":key: ada requests *dba* — incident 7 (`gatehouse approve r1`)")
        let alert = Self.event(2, "statement.alert", detail: ["reason": "bulk export", "statement": "copy t to stdout"])
        #expect(WebhookNotifier.text(alert) == ":warning: ada on main: bulk export — `copy t to stdout`")
    }

    @Test func aFullQueueDropsNothingSilently() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("webhooks-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteStore.open(path: "\(directory)/gatehouse.db")
        // Not running: nothing is delivered, so the queue of one fills with the first event.
        let notifier = WebhookNotifier(
            hooks: [Webhook(name: "ops", url: "http://127.0.0.1:9/hook", secret: "s", events: ["grant."])], store: store,
            logger: Logger(label: "test"), queueLimit: 1)
        notifier.notify([Self.event(1, "grant.expired"), Self.event(2, "grant.revoked"), Self.event(3, "session.start")])
        var failed: [AuditEvent] = []
        for _ in 0..<100 where failed.isEmpty {
            try await Task.sleep(for: .milliseconds(20))
            failed = try await store.latestAuditEvents(count: 10).filter { $0.type == "webhook.failed" }
        }
        // The second grant event found the queue full; the session event was never subscribed to.
        #expect(failed.count == 1)
        #expect(failed.first?.detail["event_seq"] == "2")
        #expect(failed.first?.detail["problem"] == "the delivery queue was full")
        try await store.close()
    }
}
