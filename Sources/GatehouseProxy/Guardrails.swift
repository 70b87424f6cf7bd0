import Foundation
import GatehousePolicy
import NIOConcurrencyHelpers
import SQLInspection

/// The policy in force (replaced whole on reload) and a cache of inspections, shared by all sessions.
public final class Guardrails: Sendable {
    private let current: NIOLockedValueBox<CompiledPolicy>
    private let cache: NIOLockedValueBox<InspectionCache>

    /// `cacheLimit`: distinct statement texts (and shapes) remembered; a full cache is emptied.
    public init(policy: Policy, cacheLimit: Int = 8192) {
        self.current = NIOLockedValueBox(CompiledPolicy(policy))
        self.cache = NIOLockedValueBox(InspectionCache(limit: cacheLimit))
    }

    public var policy: Policy { current.withLockedValue { $0.policy } }

    /// The policy in force, ready to evaluate.
    public var compiled: CompiledPolicy { current.withLockedValue { $0 } }

    /// Puts a new policy in force for every later statement of every session.
    public func replace(_ policy: Policy) {
        let compiled = CompiledPolicy(policy)
        current.withLockedValue { $0 = compiled }
    }

    /// The inspection of `sql`, from the cache when this text, or one of the same shape (the same
    /// statement with other constants), was seen before.
    public func inspect(_ sql: String) -> Inspection {
        let key = InspectionCache.Key(sql)
        if let cached = cache.withLockedValue({ $0.inspection(for: key) }) { return cached }
        // Where the constants stand matters only to a text with a shape.
        let (inspection, constants): (Inspection, Set<Int>?) =
            key.shape == nil ? (Inspector.inspect(sql), nil) : Inspector.inspectNotingConstants(sql)
        cache.withLockedValue { $0.remember(inspection, for: key, constants: constants) }
        return inspection
    }
}
