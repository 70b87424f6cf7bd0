import Foundation
import Testing

/// The README's tour, run as printed: a gateway on its embedded demo defaults (what `scripts/run`
/// starts) in front of a database seeded with `scripts/demo-data.sql`, and `Tests/Tour/readme_tour.py`
/// typing the tour's commands and statements into real terminals (bash, psql, the `gatehouse` CLI at
/// its prompts) and holding what they print to what the README shows. Afterwards the database and the
/// audit trail are checked here.
@Suite("README: the tour runs as printed", .timeLimit(.minutes(6)))
struct ReadmeTourTests {
    @Test("denial, syntax error, step-up, JIT request and approval, kill, audit: each prints what the README shows")
    func tour() async throws {
        let cluster = try TestCluster.fromEnvironment()
        let root = ExampleCommandsTests.root.path
        let database = "tour_\(UUID().uuidString.prefix(8).lowercased())"
        try await cluster.must("CREATE DATABASE \(database) OWNER gh_scram")
        let demoData = try String(contentsOfFile: "\(root)/scripts/demo-data.sql", encoding: .utf8)
        try await cluster.must(in: database, "SET ROLE gh_scram;\n\(demoData)")

        let directory = "\(cluster.scratch)/tour-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: "\(directory)/home", withIntermediateDirectories: true)
        let (pgPort, httpPort) = (try freePort(), try freePort())
        // No --config: the embedded defaults, with this test's ports and database.
        let gateway = try await Command.start(
            cluster.gatehouse, ["serve", "--start-timeout", "45"],
            environment: [
                "GATEHOUSE_PG_LISTEN": "127.0.0.1:\(pgPort)", "GATEHOUSE_HTTP_LISTEN": "127.0.0.1:\(httpPort)",
                "GATEHOUSE_DATA_DIR": "\(directory)/data", "GATEHOUSE_DEMO_PG_HOST": "127.0.0.1",
                "GATEHOUSE_DEMO_PG_PORT": String(cluster.port), "GATEHOUSE_DEMO_PG_PASSWORD": cluster.scramPassword,
                "GATEHOUSE_DEMO_PG_DATABASE": database,
            ])
        defer { gateway.signal(SIGKILL) }
        try await gateway.waitForOutput("What the demo's guardrails do", timeout: 60)
        let banner = gateway.stdout
        let admin = try #require(Self.word(after: "created administrator 'admin' with password: ", in: banner))
        let demo = try #require(Self.word(after: "Demo user 'demo' has password: ", in: banner))

        let run = try await Command.run(
            "/usr/bin/python3", ["\(root)/Tests/Tour/readme_tour.py"],
            environment: [
                "TOUR_README": "\(root)/README.md", "TOUR_BANNER": banner, "TOUR_DEMO_PASSWORD": demo,
                "TOUR_ADMIN_PASSWORD": admin, "TOUR_PG_PORT": String(pgPort), "TOUR_HTTP_PORT": String(httpPort),
                "TOUR_HOME": "\(directory)/home",
            ], timeout: 300)
        let transcript = try testArtifact("readme-tour.txt")
        try (run.stdout + run.stderr).write(toFile: transcript, atomically: true, encoding: .utf8)
        #expect(run.status == 0, "the tour (transcript in \(transcript)):\n\(run.stdout.suffix(3000))\n\(run.stderr)")
        #expect(run.stdout.contains("tour done: "), "\(run.stdout.suffix(500))")

        // What the database holds now: the held UPDATE ran once verified, the TRUNCATE ran with the
        // grant, the denied DROP did not (the table is there).
        let state = try await cluster.must(
            in: database, "SELECT country FROM customers WHERE id = 1; SELECT count(*) FROM safe;")
        #expect(state.split(separator: "\n") == ["FR", "0"], "\(state)")

        // The trail, read straight from the store: each step of the tour, in order.
        let types = try await Command.run(
            "/usr/bin/sqlite3", ["\(directory)/data/gatehouse.db", "SELECT type FROM audit_events ORDER BY seq"])
        let trail = types.stdout.split(separator: "\n").map(String.init)
        let steps = [
            "session.start", "statement.allowed", "statement.denied", "statement.denied", "mfa.confirmed",
            "challenge.verified", "request.approved", "grant.activated", "statement.allowed", "session.terminated",
            "session.end", "session.start",
        ]
        var rest = trail[...]
        for step in steps {
            guard let index = rest.firstIndex(of: step) else {
                Issue.record("no \(step) after the steps before it: \(trail)")
                break
            }
            rest = rest[(index + 1)...]
        }

        // The README's block of everyday API commands, run as the tour's administrator (its login is
        // still there): each works against the live gateway; `policy test` answers a denial with status 3.
        let block = try Self.shellBlock(containing: "gatehouse grants", in: "\(root)/README.md")
        #expect(block.count >= 5, "\(block)")
        for words in block {
            let result = try await Command.run(
                cluster.gatehouse, words,
                environment: [
                    "GATEHOUSE_HOME": "\(directory)/home/.config/gatehouse-admin",
                    "GATEHOUSE_SERVER": "http://127.0.0.1:\(httpPort)",
                ])
            let expected: Int32 = words.starts(with: ["policy", "test"]) ? 3 : 0
            #expect(result.status == expected, "gatehouse \(words.joined(separator: " ")): \(result)")
            #expect(!result.stdout.isEmpty, "gatehouse \(words.joined(separator: " ")) printed nothing")
        }
        gateway.signal(SIGTERM)
        _ = try await gateway.wait(timeout: 30)
    }

    /// The `gatehouse …` lines (without the word `gatehouse`) of the README's `sh` block holding `marker`.
    static func shellBlock(containing marker: String, in readme: String) throws -> [[String]] {
        let text = try String(contentsOfFile: readme, encoding: .utf8)
        let blocks = text.components(separatedBy: "```sh\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        guard let block = blocks.first(where: { $0.contains(marker) }) else { return [] }
        return block.split(separator: "\n").map { ReadmeCommandsTests.words(of: String($0)) }
            .filter { $0.first == "gatehouse" }.map { Array($0.dropFirst()) }
    }

    static func word(after marker: String, in text: String) -> String? {
        guard let range = text.range(of: marker) else { return nil }
        return String(text[range.upperBound...].prefix { !$0.isWhitespace })
    }
}

extension TestCluster {
    /// Runs SQL as the superuser on `database`, failing when it fails; returns its output.
    @discardableResult
    func must(in database: String, _ sql: String) async throws -> String {
        let result = try await Command.run(
            "\(binDirectory)/psql",
            ["-h", socketDirectory, "-p", String(port), "-U", "postgres", "-d", database, "-X", "-At", "-v", "ON_ERROR_STOP=1"],
            environment: [:], stdin: sql)
        guard result.status == 0 else { throw HarnessError("superuser SQL on \(database) failed: \(sql)\n\(result)") }
        return result.stdout
    }
}
