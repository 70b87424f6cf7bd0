import Foundation

/// A token bucket per key (a source address, a user name): `burst` attempts at once, refilled at
/// `perMinute` a minute. A pure value; the caller supplies the clock.
public struct RateLimiter: Sendable {
    public var burst: Double
    public var perMinute: Double
    private var buckets: [String: (tokens: Double, at: Date)] = [:]

    public init(burst: Int, perMinute: Int) {
        self.burst = Double(burst)
        self.perMinute = Double(perMinute)
    }

    /// Takes one attempt for `key` at `now`. Returns nil when allowed, or how long to wait when not.
    public mutating func take(_ key: String, at now: Date) -> TimeInterval? {
        let rate = perMinute / 60
        var bucket = buckets[key] ?? (burst, now)
        bucket.tokens = min(burst, bucket.tokens + max(0, now.timeIntervalSince(bucket.at)) * rate)
        bucket.at = now
        defer {
            buckets[key] = bucket
            if buckets.count > 10_000 { forgetFull(at: now) }
        }
        guard bucket.tokens >= 1 else { return (1 - bucket.tokens) / rate }
        bucket.tokens -= 1
        return nil
    }

    /// Drops buckets that have refilled completely: they carry no information.
    private mutating func forgetFull(at now: Date) {
        let rate = perMinute / 60
        buckets = buckets.filter { $0.value.tokens + now.timeIntervalSince($0.value.at) * rate < burst }
    }
}
