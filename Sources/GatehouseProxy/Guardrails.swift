import Foundation
import GatehousePolicy
import NIOConcurrencyHelpers
import SQLInspection

/// The policy in force (replaced whole on reload) and a cache of inspections, shared by all sessions.
public final class Guardrails: Sendable {
    private let current: NIOLockedValueBox<CompiledPolicy>
    private let cache = NIOLockedValueBox<[String: Inspection]>([:])
    /// Distinct statement texts remembered; the cache is emptied when it fills.
    private let cacheLimit: Int

    public init(policy: Policy, cacheLimit: Int = 8192) {
        self.current = NIOLockedValueBox(CompiledPolicy(policy))
        self.cacheLimit = cacheLimit
    }

    public var policy: Policy { current.withLockedValue { $0.policy } }

    /// The policy in force, ready to evaluate.
    public var compiled: CompiledPolicy { current.withLockedValue { $0 } }

    /// Puts a new policy in force for every later statement of every session.
    public func replace(_ policy: Policy) {
        let compiled = CompiledPolicy(policy)
        current.withLockedValue { $0 = compiled }
    }

    /// The inspection of `sql`, from the cache when this exact text was seen before.
    public func inspect(_ sql: String) -> Inspection {
        if let cached = cache.withLockedValue({ $0[sql] }) { return cached }
        let inspection = Inspector.inspect(sql)
        // Long texts (bulk inserts with literals) are rarely repeated; keep the cache for the rest.
        if sql.utf8.count <= 4096 {
            cache.withLockedValue { cache in
                if cache.count >= cacheLimit { cache.removeAll(keepingCapacity: true) }
                cache[sql] = inspection
            }
        }
        return inspection
    }
}
