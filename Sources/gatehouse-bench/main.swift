// Micro-benchmarks of the gateway's hot paths. Prints figures; asserts nothing.
//
//   gatehouse-bench inspect [--rules N] [--iterations N]   inspection + decision per statement
//   gatehouse-bench audit [--events N] [--dir DIR]          audit appends per second, hash-chained, durable
import Foundation
import GatehouseCore
import GatehousePolicy
import GatehouseStore
import SQLInspection

@main
struct Bench {
    static func main() async throws {
        var arguments = Array(CommandLine.arguments.dropFirst())
        guard let command = arguments.first else { return usage() }
        arguments.removeFirst()
        func option(_ name: String, _ fallback: Int) -> Int {
            guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let value = Int(arguments[index + 1])
            else { return fallback }
            return value
        }
        func stringOption(_ name: String) -> String? {
            guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
            return arguments[index + 1]
        }
        switch command {
        case "inspect":
            inspect(rules: option("--rules", 50), iterations: option("--iterations", 20000))
        case "audit":
            try await audit(events: option("--events", 100_000), directory: stringOption("--dir"))
        default:
            usage()
        }
    }

    static func usage() {
        print("usage: gatehouse-bench inspect [--rules N] [--iterations N] | audit [--events N] [--dir DIR]")
    }

    /// A policy of `count` rules shaped like real ones: the starter pack's conditions, then
    /// table, group and function rules that do not match the benchmark's statements.
    static func policy(rules count: Int) -> Policy {
        var rules: [Rule] = []
        var match = RuleMatch()
        match.kinds = [.drop, .truncate]
        match.elevated = false
        rules.append(Rule(name: "no-drop", action: .deny, match: match))
        match = RuleMatch()
        match.wherelessWrite = true
        rules.append(Rule(name: "no-where", action: .deny, match: match))
        match = RuleMatch()
        match.functions = ["pg_terminate_backend", "pg_read_file", "lo_unlink", "dblink*"].map(Glob.init)
        rules.append(Rule(name: "functions", action: .deny, match: match))
        match = RuleMatch()
        match.groups = ["developer"]
        match.writes = true
        rules.append(Rule(name: "developers-read-only", action: .deny, match: match))
        var index = 0
        while rules.count < count {
            var match = RuleMatch()
            switch index % 4 {
            case 0: match.tablesWritten = [TablePattern("audit_\(index).*")]
            case 1: match.groups = ["team-\(index)"]
            case 2: match.functions = [Glob("fn_\(index)_*")]
            default:
                match.sourceCIDRs = [CIDR("10.\(index % 250).0.0/16")!]
                match.kinds = [.delete]
            }
            rules.append(Rule(name: "rule-\(index)", action: index % 3 == 0 ? .alert : .deny, match: match))
            index += 1
        }
        return Policy(rules: Array(rules.prefix(count)))
    }

    static func inspect(rules: Int, iterations: Int) {
        let policy = CompiledPolicy(policy(rules: rules))
        let now = Date()
        let context = SessionContext(
            user: "ada", groups: ["dba"], connection: "prod", sourceAddress: "192.168.1.20", applicationName: "pgbench",
            sessionStartedAt: now, lastActivityAt: now, now: now)
        // Computed once per session in the gateway.
        let session = policy.sessionRules(for: context)
        let statements: [(String, (Int) -> String)] = [
            ("pgbench select-only", { "SELECT abalance FROM pgbench_accounts WHERE aid = \($0 % 100000 + 1);" }),
            (
                "pgbench update",
                { "UPDATE pgbench_accounts SET abalance = abalance + \($0 % 5000) WHERE aid = \($0 % 100000 + 1);" }
            ),
            (
                "join + CTE",
                {
                    "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '\($0 % 30) days') SELECT c.name, count(*) FROM customers c JOIN recent r ON r.customer_id = c.id GROUP BY c.name ORDER BY 2 DESC LIMIT 10"
                }
            ),
        ]
        print(
            "Inspection + decision per statement, \(rules)-rule policy, \(iterations) distinct texts each; inspect parses each"
                + " (no cache), shape hit is the gateway's cache for a text of a shape seen before")
        print(
            "statement".padding(toLength: 22, withPad: " ", startingAt: 0)
                + "  parse-only   inspect   decide   total (median µs)   p99 total   shape hit   total with hit")
        for (name, make) in statements {
            let texts = (0..<iterations).map(make)
            var parse: [Double] = []
            var inspect: [Double] = []
            var decide: [Double] = []
            var total: [Double] = []
            parse.reserveCapacity(iterations)
            inspect.reserveCapacity(iterations)
            decide.reserveCapacity(iterations)
            total.reserveCapacity(iterations)
            var sink = 0
            for text in texts.prefix(200) { sink &+= Inspector.inspect(text).statements.count }  // warm up
            var cache = InspectionCache()
            let (first, constants) = Inspector.inspectNotingConstants(texts[0])
            cache.remember(first, for: InspectionCache.Key(texts[0]), constants: constants)
            var hit: [Double] = []
            hit.reserveCapacity(iterations)
            for text in texts {
                let t0 = DispatchTime.now().uptimeNanoseconds
                if case .success(let data) = PostgresParser.parseJSON(text) { sink &+= data.count }
                let t1 = DispatchTime.now().uptimeNanoseconds
                let inspection = Inspector.inspect(text)
                let t2 = DispatchTime.now().uptimeNanoseconds
                let decision = policy.evaluate(inspection, in: context, session: session)
                let t3 = DispatchTime.now().uptimeNanoseconds
                sink &+= decision.matched.count
                parse.append(Double(t1 - t0) / 1000)
                inspect.append(Double(t2 - t1) / 1000)
                decide.append(Double(t3 - t2) / 1000)
                total.append(Double(t3 - t1) / 1000)
                let t4 = DispatchTime.now().uptimeNanoseconds
                sink &+= cache.inspection(for: InspectionCache.Key(text))?.statements.count ?? 1000
                hit.append(Double(DispatchTime.now().uptimeNanoseconds - t4) / 1000)
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            func p99(_ values: [Double]) -> Double { values.sorted()[values.count * 99 / 100] }
            print(
                name.padding(toLength: 22, withPad: " ", startingAt: 0)
                    + String(
                        format: "  %9.2f  %8.2f  %7.2f  %8.2f            %8.2f  %10.2f  %15.2f", median(parse), median(inspect),
                        median(decide), median(total), p99(total), median(hit), median(hit) + median(decide)))
            if sink == 42 { print("") }
        }
    }

    static func audit(events: Int, directory: String?) async throws {
        let directory =
            directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-bench-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteStore.open(path: directory + "/audit.db")
        let record = AuditRecord(
            .statementAllowed, actor: "ada", session: "0123456789abcdef", connection: "prod", source: "10.1.2.3",
            detail: ["action": "allow", "facts": "select reads=pgbench_accounts", "fingerprint": "f0ded064d521a037"])
        for concurrency in [1, 64] {
            let start = DispatchTime.now().uptimeNanoseconds
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<concurrency {
                    group.addTask {
                        for _ in stride(from: worker, to: events, by: concurrency) { _ = try await store.appendAudit(record) }
                    }
                }
                try await group.waitForAll()
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            print(
                String(
                    format: "audit appends, %3d concurrent writers: %8.0f events/s (%d events in %.2f s, synchronous=FULL)",
                    concurrency, Double(events) / seconds, events, seconds))
        }
        // As the proxy appends statement decisions: journaled, handed over without waiting for the
        // commit, paced group commits.
        // What the proxy's thread pays per statement is the hand-over alone (journal line included),
        // timed one at a time and reported at the median.
        var handOvers: [UInt64] = []
        handOvers.reserveCapacity(events)
        let start = DispatchTime.now().uptimeNanoseconds
        // A loop hands over far faster than any proxy: when the journal is full (the writer is behind),
        // it waits for the writer, as statements would wait for their turn.
        var waits = 0
        for _ in 0..<events {
            let began = DispatchTime.now().uptimeNanoseconds
            do {
                try store.enqueueAudit(record) { error in print("audit append failed: \(error)") }
                handOvers.append(DispatchTime.now().uptimeNanoseconds - began)
            } catch {
                waits += 1
                await store.flushAudit()
                try store.enqueueAudit(record) { error in print("audit append failed: \(error)") }
            }
        }
        await store.flushAudit()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        handOvers.sort()
        print(
            String(
                format:
                    "audit appends, journaled and handed over (the proxy's way): %8.0f events/s (%d events in %.2f s, synchronous=FULL); hand-over on the caller's thread: median %.2f µs, p99 %.2f µs",
                Double(events) / seconds, events, seconds, Double(handOvers[handOvers.count / 2]) / 1000,
                Double(handOvers[handOvers.count * 99 / 100]) / 1000))
        if waits > 0 { print("  (the journal was full \(waits) times; the loop then waited for the writer)") }
        let all = try await store.auditEvents(afterSeq: 0, limit: Int.max)
        let report = AuditChain.verify(all)
        print("chain verified: \(report.isIntact ? "intact" : "BROKEN"), \(all.count) events")
        try await store.close()
    }
}
