import Foundation
import GatehousePolicy
import SQLInspection
import Synchronization

/// The policy in force (replaced whole on reload) and a cache of inspections, shared by all sessions.
public final class Guardrails: Sendable {
    private let current: Mutex<CompiledPolicy>
    private let cache: Mutex<InspectionCache>

    /// `cacheLimit`: distinct statement texts (and shapes) remembered; a full cache is emptied.
    public init(policy: Policy, cacheLimit: Int = 8192) {
        self.current = Mutex(CompiledPolicy(policy))
        self.cache = Mutex(InspectionCache(limit: cacheLimit))
    }

    public var policy: Policy { current.withLock { $0.policy } }

    /// The policy in force, ready to evaluate.
    public var compiled: CompiledPolicy { current.withLock { $0 } }

    /// Puts a new policy in force for every later statement of every session.
    public func replace(_ policy: Policy) {
        let compiled = CompiledPolicy(policy)
        current.withLock { $0 = compiled }
    }

    /// The inspection of `sql`, from the cache when this text, or one of the same shape (the same
    /// statement with other constants), was seen before.
    public func inspect(_ sql: String) -> Inspection {
        let key = InspectionCache.Key(sql)
        if let cached = cache.withLock({ $0.inspection(for: key) }) { return cached }
        // Where the constants stand matters only to a text with a shape.
        let (inspection, constants): (Inspection, Set<Int>?) =
            key.shape == nil ? (Inspector.inspect(sql), nil) : Inspector.inspectNotingConstants(sql)
        cache.withLock { $0.remember(inspection, for: key, constants: constants) }
        return inspection
    }
}
