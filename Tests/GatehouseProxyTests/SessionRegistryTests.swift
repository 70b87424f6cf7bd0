import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import GatehouseProxy
@testable import GatehouseSessions

/// Records the reasons a terminate closure was called with.
final class TerminationLog: Sendable {
    private let reasons = NIOLockedValueBox<[String]>([])

    var all: [String] { reasons.withLockedValue { $0 } }

    func closure() -> @Sendable (String) -> Void {
        { reason in self.reasons.withLockedValue { $0.append(reason) } }
    }
}

@Suite("Session registry")
struct SessionRegistryTests {
    static func info(_ id: String, user: String = "alice", startedAt: Double = 0) -> SessionInfo {
        SessionInfo(
            id: id, user: user, connection: "app", source: "10.0.0.1:5000", applicationName: "psql",
            startedAt: Date(timeIntervalSince1970: 1_700_000_000 + startedAt), tls: true)
    }

    static func target(_ n: Int32) -> UpstreamCancelTarget {
        UpstreamCancelTarget(host: "db\(n)", port: 5432 + Int(n), processID: 1000 + n, secretKey: -n)
    }

    @Test func registeredSessionsAreListedOldestFirst() {
        let registry = SessionRegistry()
        #expect(registry.list().isEmpty)
        #expect(registry.count == 0)
        _ = registry.register(Self.info("b", startedAt: 20), cancelTarget: Self.target(2)) { _ in }
        _ = registry.register(Self.info("a", startedAt: 10), cancelTarget: Self.target(1)) { _ in }
        _ = registry.register(Self.info("c", startedAt: 30), cancelTarget: Self.target(3)) { _ in }
        #expect(registry.list().map(\.id) == ["a", "b", "c"])
        #expect(registry.count == 3)
        #expect(registry.session(id: "b") == Self.info("b", startedAt: 20))
        #expect(registry.session(id: "zzz") == nil)
    }

    @Test func cancelKeyLeadsToTheSessionsUpstreamTarget() throws {
        let registry = SessionRegistry()
        let keyA = registry.register(Self.info("a"), cancelTarget: Self.target(1)) { _ in }
        let keyB = registry.register(Self.info("b"), cancelTarget: Self.target(2)) { _ in }
        #expect(keyA != keyB)
        let a = try #require(registry.cancelTarget(for: keyA))
        #expect(a.sessionID == "a")
        #expect(a.target == Self.target(1))
        let b = try #require(registry.cancelTarget(for: keyB))
        #expect(b.sessionID == "b")
        #expect(b.target == Self.target(2))
    }

    @Test func gatewayKeyIsNotTheUpstreamKey() {
        let registry = SessionRegistry()
        let target = Self.target(5)
        let key = registry.register(Self.info("a"), cancelTarget: target) { _ in }
        #expect(!(key.processID == target.processID && key.secretKey == target.secretKey))
        #expect(key.processID > 0, "PostgreSQL clients expect a positive process id")
        #expect(registry.cancelTarget(for: GatewayCancelKey(processID: target.processID, secretKey: target.secretKey)) == nil)
    }

    @Test func cancelKeysAreUniqueAndEachMapsToItsSession() throws {
        let registry = SessionRegistry()
        var keys: [GatewayCancelKey: String] = [:]
        for n in 0..<2000 {
            let id = "s\(n)"
            let key = registry.register(Self.info(id, startedAt: Double(n)), cancelTarget: Self.target(Int32(n))) { _ in }
            #expect(keys[key] == nil, "duplicate cancel key")
            keys[key] = id
        }
        #expect(keys.count == 2000)
        for (key, id) in keys {
            let found = try #require(registry.cancelTarget(for: key))
            #expect(found.sessionID == id)
            #expect(found.target == Self.target(Int32(id.dropFirst())!))
        }
    }

    @Test func unknownCancelKeyFindsNothing() {
        let registry = SessionRegistry()
        let key = registry.register(Self.info("a"), cancelTarget: Self.target(1)) { _ in }
        #expect(registry.cancelTarget(for: GatewayCancelKey(processID: key.processID, secretKey: key.secretKey &+ 1)) == nil)
        #expect(registry.cancelTarget(for: GatewayCancelKey(processID: key.processID &+ 1, secretKey: key.secretKey)) == nil)
    }

    @Test func terminateCallsTheSessionsClosureWithTheReason() {
        let registry = SessionRegistry()
        let logA = TerminationLog()
        let logB = TerminationLog()
        _ = registry.register(Self.info("a"), cancelTarget: Self.target(1), terminate: logA.closure())
        _ = registry.register(Self.info("b"), cancelTarget: Self.target(2), terminate: logB.closure())
        #expect(registry.terminate(id: "a", reason: "terminated by admin"))
        #expect(logA.all == ["terminated by admin"])
        #expect(logB.all.isEmpty)
    }

    @Test func terminateOfAnUnknownSessionIsFalse() {
        let registry = SessionRegistry()
        let log = TerminationLog()
        _ = registry.register(Self.info("a"), cancelTarget: Self.target(1), terminate: log.closure())
        #expect(!registry.terminate(id: "nope", reason: "x"))
        #expect(log.all.isEmpty)
    }

    @Test func removeForgetsTheSessionAndItsCancelKey() {
        let registry = SessionRegistry()
        let log = TerminationLog()
        let keyA = registry.register(Self.info("a"), cancelTarget: Self.target(1), terminate: log.closure())
        let keyB = registry.register(Self.info("b"), cancelTarget: Self.target(2)) { _ in }
        registry.remove(id: "a")
        #expect(registry.list().map(\.id) == ["b"])
        #expect(registry.count == 1)
        #expect(registry.session(id: "a") == nil)
        #expect(registry.cancelTarget(for: keyA) == nil)
        #expect(registry.cancelTarget(for: keyB)?.sessionID == "b")
        #expect(!registry.terminate(id: "a", reason: "late"))
        #expect(log.all.isEmpty)
        // Removing twice, or an unknown id, changes nothing.
        registry.remove(id: "a")
        registry.remove(id: "unknown")
        #expect(registry.count == 1)
    }

    @Test func reRegisteringAnIDRetiresItsOldCancelKey() {
        let registry = SessionRegistry()
        let old = registry.register(Self.info("a"), cancelTarget: Self.target(1)) { _ in }
        let new = registry.register(Self.info("a"), cancelTarget: Self.target(2)) { _ in }
        #expect(registry.count == 1)
        #expect(registry.cancelTarget(for: old) == nil)
        #expect(registry.cancelTarget(for: new)?.target == Self.target(2))
    }

    @Test func concurrentRegistrationsAreAllKept() async {
        let registry = SessionRegistry()
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<200 {
                group.addTask {
                    _ = registry.register(Self.info("s\(n)", startedAt: Double(n)), cancelTarget: Self.target(Int32(n))) { _ in }
                }
            }
        }
        #expect(registry.count == 200)
        #expect(Set(registry.list().map(\.id)).count == 200)
    }
}
