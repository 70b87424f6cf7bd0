import Foundation
import GatehouseConfig
import GatehouseConfigYAML
import GatehouseCore
import GatehousePolicy
import GatehouseSessions
import GatehouseStore
import Logging
import ServiceLifecycle

/// Reloads the policy when the configuration file changes. A file that does not validate is refused
/// with a clear log line and audit event, and the policy in force stays.
public struct PolicyWatcher: Service {
    let path: String
    let initial: GatehouseConfig
    let guardrails: Guardrails
    let store: any GatehouseStore
    let logger: Logger
    var interval: Duration = .seconds(1)

    public init(
        path: String, initial: GatehouseConfig, guardrails: Guardrails, store: any GatehouseStore, logger: Logger,
        interval: Duration = .seconds(1)
    ) {
        self.path = path
        self.initial = initial
        self.guardrails = guardrails
        self.store = store
        self.logger = logger
        self.interval = interval
    }

    public func run() async throws {
        var current = initial
        var stamp = Self.stamp(path)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            let now = Self.stamp(path)
            guard now != stamp else { continue }
            stamp = now
            do {
                let loaded = try ConfigLoader.load(path: path)
                var others = loaded
                others.policy = current.policy
                if others != current {
                    logger.notice(
                        "configuration changes other than the policy take effect at the next start", metadata: ["file": "\(path)"]
                    )
                }
                guardrails.replace(loaded.policy)
                current.policy = loaded.policy
                logger.notice(
                    "policy reloaded", metadata: ["file": "\(path)", "rules": "\(loaded.policy.rules.count)"])
                _ = try? await store.appendAudit(
                    AuditRecord(
                        .policyLoaded, actor: "gatehouse", detail: ["file": path, "rules": "\(loaded.policy.rules.count)"]))
            } catch {
                logger.error(
                    "policy reload refused; the previous policy stays in force",
                    metadata: ["file": "\(path)", "error": "\(error)"])
                _ = try? await store.appendAudit(
                    AuditRecord(.policyRejected, actor: "gatehouse", detail: ["file": path, "reason": "\(error)"]))
            }
        }
    }

    /// Modification time and size: enough to notice an edit or an atomic replace.
    static func stamp(_ path: String) -> String {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return "missing" }
        let date = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let size = (attributes[.size] as? NSNumber)?.intValue ?? -1
        return "\(date)/\(size)"
    }
}
