import Foundation
import Testing

/// What the `gatehouse` command answers a person who mistypes, run as the binary.
@Suite("Command line: did you mean", .timeLimit(.minutes(2)))
struct CommandLineTests {
    func gatehouse(_ arguments: [String]) async throws -> CommandResult {
        try await Command.run(try TestCluster.fromEnvironment().gatehouse, arguments)
    }

    @Test("a mistyped command is answered with the nearest one, at any depth, and exit status 64")
    func mistypedCommand() async throws {
        let sessions = try await gatehouse(["sesions"])
        #expect(sessions.status == 64, "\(sessions)")
        #expect(sessions.stderr.contains("Error: unknown command 'sesions'. Did you mean 'sessions'?"), "\(sessions)")
        #expect(sessions.stderr.contains("The commands: serve, login"), "\(sessions)")

        let tail = try await gatehouse(["audit", "tial"])
        #expect(tail.status == 64, "\(tail)")
        #expect(tail.stderr.contains("Did you mean 'tail'?"), "\(tail)")

        // Under a command with a default subcommand, a near miss is still caught.
        let kill = try await gatehouse(["sessions", "kil", "abc"])
        #expect(kill.stderr.contains("Did you mean 'kill'?"), "\(kill)")
        // `help` is the parser's own, at any level.
        let help = try await gatehouse(["help", "sessions"])
        #expect(help.status == 0, "\(help)")
        #expect(help.stdout.contains("OVERVIEW:"), "\(help)")

        let nothingNear = try await gatehouse(["xyzzy"])
        #expect(nothingNear.status == 64, "\(nothingNear)")
        #expect(!nothingNear.stderr.contains("Did you mean"), "\(nothingNear)")
        #expect(nothingNear.stderr.contains("unknown command 'xyzzy'"), "\(nothingNear)")
    }

    @Test("a mistyped option is answered with the nearest option of that command")
    func mistypedOption() async throws {
        let grants = try await gatehouse(["grants", "--jsn"])
        #expect(grants.status == 64, "\(grants)")
        #expect(grants.stderr.contains("Unknown option '--jsn'"), "\(grants)")
        #expect(grants.stderr.contains("Did you mean '--json'?"), "\(grants)")

        let test = try await gatehouse(["policy", "test", "--connection", "demo", "--sql", "select 1", "--jsno"])
        #expect(test.status == 64, "\(test)")
        #expect(test.stderr.contains("Did you mean '--json'?"), "\(test)")
    }

    @Test("arguments that are no command are left to the command that takes them")
    func argumentsAreNotCommands() async throws {
        // `verify` takes a challenge id: a word there is no mistyped command.
        let verify = try await gatehouse(["verify", "sesions", "--code", "123456", "--server", "http://127.0.0.1:1"])
        #expect(!verify.stderr.contains("unknown command"), "\(verify)")
        #expect(verify.stderr.contains("cannot reach the gateway") || verify.stderr.contains("not logged in"), "\(verify)")
    }
}

/// The commands the files in examples/ print in their headers, run as printed (through bash, with the
/// `gatehouse` binary on PATH, from the repository's root).
@Suite("Examples: the commands in their headers work as printed", .timeLimit(.minutes(2)))
struct ExampleCommandsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The header's commands: `# Check it with: CMD` / `# Try it with: CMD` lines, and indented blocks
    /// (`#   CMD \` continued), each a shell command line.
    static func commands(in file: String) throws -> [String] {
        let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
        var commands: [String] = []
        var pending = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.hasPrefix("#") else { break }
            let body = line.dropFirst().drop { $0 == " " }
            if let range = body.range(of: " with:"), body.hasPrefix("Check it") || body.hasPrefix("Try it") {
                var command = String(body[range.upperBound...]).trimmingCharacters(in: .whitespaces)
                if let note = command.range(of: " (") { command = String(command[..<note.lowerBound]) }
                commands.append(command)
            } else if line.hasPrefix("#   ") || !pending.isEmpty {
                let part = body.trimmingCharacters(in: .whitespaces)
                if part.hasSuffix("\\") {
                    pending += part.dropLast() + " "
                } else {
                    commands.append(pending + part)
                    pending = ""
                }
            }
        }
        return commands.filter { !$0.isEmpty }
    }

    static func run(_ command: String) async throws -> CommandResult {
        let binary = try TestCluster.fromEnvironment().gatehouse
        let directory = (binary as NSString).deletingLastPathComponent
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return try await Command.run(
            "/bin/bash", ["-c", "cd '\(root.path)' && \(command)"], environment: ["PATH": "\(directory):\(path)"])
    }

    @Test("examples/gatehouse.yaml passes config check with the variables its header names")
    func fullConfiguration() async throws {
        let commands = try Self.commands(in: "examples/gatehouse.yaml")
        #expect(commands.count == 1, "\(commands)")
        for command in commands {
            #expect(command.contains("gatehouse config check examples/gatehouse.yaml"), "\(command)")
            let result = try await Self.run(command)
            #expect(result.status == 0, "\(command)\n\(result)")
        }
    }

    @Test("examples/starter-policy.yaml: policy check passes and policy test judges as printed")
    func starterPolicy() async throws {
        let commands = try Self.commands(in: "examples/starter-policy.yaml")
        #expect(commands.count == 2, "\(commands)")
        for command in commands {
            let result = try await Self.run(command)
            if command.contains("policy test") {
                // A denial exits 3 (scripts tell allow, deny and hold apart by the status).
                #expect(result.status == 3, "\(command)\n\(result)")
                #expect(result.stdout.contains("Decision: deny"), "\(result)")
                #expect(result.stdout.contains("no-whereless-writes → deny"), "\(result)")
            } else {
                #expect(result.status == 0, "\(command)\n\(result)")
            }
        }
    }

    @Test("every key the configuration reader takes at the top level appears in examples/gatehouse.yaml")
    func everyKeyShown() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("examples/gatehouse.yaml"), encoding: .utf8)
        let keys = [
            "listen", "data_dir", "store", "tls", "tokens", "limits", "connections", "users", "groups", "policy", "geoip",
            "step_up", "roles", "webhooks", "service_accounts", "audit",
        ]
        for key in keys {
            #expect(text.contains("\n\(key):") || text.contains("\n# \(key):"), "\(key) is not shown")
        }
    }
}

@Suite("Command line: policy inspect", .timeLimit(.minutes(2)))
struct PolicyInspectTests {
    @Test("policy inspect prints one line per statement, numbered from 1; --json prints the facts; a typo exits 3")
    func inspect() async throws {
        let gatehouse = try TestCluster.fromEnvironment().gatehouse
        let text = try await Command.run(gatehouse, ["policy", "inspect", "select 1; delete from t where id = 2"])
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.contains("Statement 1: select"), "\(text)")
        #expect(text.stdout.contains("Statement 2: delete writes=t"), "\(text)")
        let json = try await Command.run(gatehouse, ["policy", "inspect", "--json", "delete from t"])
        #expect(json.status == 0, "\(json)")
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((object?["statements"] as? [Any])?.count == 1, "\(json)")
        let typo = try await Command.run(gatehouse, ["policy", "inspect", "selct 1"])
        #expect(typo.status == 3, "\(typo)")
        #expect(typo.stdout.contains("Unparsable (SQLSTATE 42601): syntax error at or near \"selct\""), "\(typo)")
    }
}

@Suite("Command line: one JSON style", .timeLimit(.minutes(2)))
struct JSONStyleTests {
    /// Every key of a JSON value, at any depth.
    static func keys(_ value: Any) -> [String] {
        if let object = value as? [String: Any] { return object.keys + object.values.flatMap(keys) }
        if let array = value as? [Any] { return array.flatMap(keys) }
        return []
    }

    @Test("policy test and policy inspect print snake_case keys, as the API does, and number statements from 1")
    func snakeCase() async throws {
        let gatehouse = try TestCluster.fromEnvironment().gatehouse
        let root = ExampleCommandsTests.root.path
        let test = try await Command.run(
            gatehouse,
            [
                "policy", "test", "--config", "\(root)/examples/starter-policy.yaml", "--user", "demo", "--connection", "demo",
                "--sql", "select 1; delete from customers", "--json",
            ])
        #expect(test.status == 3, "\(test)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(test.stdout.utf8)) as? [String: Any])
        let keys = Self.keys(object)
        #expect(keys.contains("used_grants") && keys.contains("tables_written"), "\(keys)")
        #expect(keys.allSatisfy { !$0.contains(where: \.isUppercase) }, "\(keys)")
        let matched = try #require((object["decision"] as? [String: Any])?["matched"] as? [[String: Any]])
        #expect(matched.allSatisfy { $0["statement"] as? Int == 2 }, "the DELETE is statement 2: \(matched)")
        #expect(test.stderr.isEmpty, "\(test)")

        let inspect = try await Command.run(gatehouse, ["policy", "inspect", "--json", "selct 1"])
        let inspected = try #require(try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any])
        #expect((inspected["parse_error"] as? [String: Any])?["sql_state"] as? String == "42601", "\(inspect)")
    }
}

/// A hang guard, generous: the walk spawns some 40 commands, which wait their turn when the suite loads both cores.
@Suite("Command line: help", .timeLimit(.minutes(5)))
struct HelpTests {
    /// The subcommands a help text lists.
    static func subcommands(in help: String) -> [String] {
        guard let after = help.components(separatedBy: "SUBCOMMANDS:").dropFirst().first else { return [] }
        let section = after.components(separatedBy: "\n\n")[0]
        return section.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("  "), !line.hasPrefix("   ") else { return nil }
            let name = line.split(separator: " ").first.map(String.init) ?? ""
            return name.isEmpty || name == "help" ? nil : name
        }
    }

    @Test("help is wrapped by the argument parser (no paragraph broken by hand) and says each default once")
    func wrapped() async throws {
        let gatehouse = try TestCluster.fromEnvironment().gatehouse
        // Every command, found through the help texts themselves.
        var queue: [[String]] = [[]]
        var seen = 0
        while !queue.isEmpty {
            let command = queue.removeFirst()
            seen += 1
            let help = try await Command.run(gatehouse, command + ["--help"])
            queue += Self.subcommands(in: help.stdout).map { command + [$0] }
            #expect(help.status == 0, "\(command): \(help)")
            let text = help.stdout
            for line in text.split(separator: "\n") {
                #expect(line.components(separatedBy: "default").count <= 2, "\(command): a default said twice: \(line)")
            }
            // The discussion: between the overview and USAGE, paragraphs are filled up to the width.
            let prose = text.components(separatedBy: "USAGE:")[0].split(separator: "\n", omittingEmptySubsequences: false)
            for (line, next) in zip(prose.dropFirst(), prose.dropFirst(2)) where !line.hasPrefix(" ") {
                if !next.isEmpty, !next.hasPrefix(" "), !line.isEmpty {
                    #expect(line.count >= 50, "\(command): a paragraph broken by hand after '\(line)'")
                }
            }
        }
        #expect(seen > 30, "every command was read: \(seen)")
    }
}

/// The `gatehouse` commands the README prints: each names a command that exists and only options that
/// command takes (checked against its own help), so a renamed or mistyped one in the text fails here.
@Suite("README: the commands it prints exist as printed", .timeLimit(.minutes(3)))
struct ReadmeCommandsTests {
    /// The `gatehouse …` command lines of the README's `sh` blocks, comments and env prefixes removed.
    static func commandLines() throws -> [[String]] {
        let text = try String(contentsOf: ExampleCommandsTests.root.appendingPathComponent("README.md"), encoding: .utf8)
        var lines: [[String]] = []
        var inShell = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") {
                inShell = line == "```sh"
                continue
            }
            guard inShell else { continue }
            var words = words(of: String(line))
            while let first = words.first, first.contains("="), !first.hasPrefix("-") { words.removeFirst() }
            guard words.first == "gatehouse" else { continue }
            // `a | b` alternatives and `[--optional]` spellings: the first alternative, the brackets dropped.
            if let bar = words.firstIndex(of: "|") { words = Array(words[..<bar]) }
            lines.append(words.dropFirst().map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "[]")) })
        }
        return lines
    }

    /// Shell words, quotes honoured, up to a `#` comment.
    static func words(of line: String) -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        var started = false
        for character in line {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "\"" || character == "'" {
                quote = character
                started = true
            } else if character == "#", !started || current.isEmpty {
                break
            } else if character == " " {
                if started { words.append(current) }
                current = ""
                started = false
            } else {
                current.append(character)
                started = true
            }
        }
        if started { words.append(current) }
        return words
    }

    @Test("every command line names a real command and only options of it")
    func commandsExist() async throws {
        let gatehouse = try TestCluster.fromEnvironment().gatehouse
        let lines = try Self.commandLines()
        #expect(lines.count >= 20, "\(lines.count) command lines found")
        for words in lines {
            let path = words.prefix { !$0.hasPrefix("-") && $0.allSatisfy { $0.isLowercase || $0 == "-" } }
            let help = try await Command.run(gatehouse, Array(path) + ["--help"])
            #expect(help.status == 0, "gatehouse \(words.joined(separator: " ")): \(help)")
            #expect(!help.stderr.contains("unknown command"), "gatehouse \(words.joined(separator: " ")): \(help)")
            let known = HelpText.longOptions(in: help.stdout)
            for option in words where option.hasPrefix("--") {
                let name = String(option.prefix { $0 != "=" })
                #expect(known.contains(name), "gatehouse \(words.joined(separator: " ")): \(name) is not an option of it")
            }
        }
    }
}

/// The long options a help text lists (`--name`).
enum HelpText {
    static func longOptions(in help: String) -> [String] {
        var names = Set<String>()
        for token in help.split(whereSeparator: { " ,\n/[]()".contains($0) }) where token.hasPrefix("--") && token.count > 2 {
            let name = token.prefix { $0 != "=" && $0 != "<" }
            if name.dropFirst(2).allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) { names.insert(String(name)) }
        }
        return names.sorted()
    }
}
