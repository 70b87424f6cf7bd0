import ArgumentParser
import Foundation

/// "Did you mean": a mistyped command or option is answered with the nearest one that exists.
enum Suggestions {
    /// The command `arguments` name, the first word that names none of its subcommands, and those.
    static func unknownCommand(in arguments: [String], root: any ParsableCommand.Type) -> (word: String, choices: [String])? {
        var command = root
        for word in arguments {
            // Options are the parser's; `help` is its own subcommand at every level.
            if word.hasPrefix("-") || word == "help" { return nil }
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty else { return nil }
            if let next = subcommands.first(where: { name(of: $0) == word || $0.configuration.aliases.contains(word) }) {
                command = next
                continue
            }
            let names = subcommands.map(name(of:))
            // A command with a default subcommand takes other words as that one's arguments, unless the
            // word is a near miss of a subcommand (`sessions kil`).
            if command.configuration.defaultSubcommand != nil, nearest(word, among: names).isEmpty { return nil }
            return (word, names)
        }
        return nil
    }

    /// The deepest command the leading words name.
    static func command(at words: [String], root: any ParsableCommand.Type) -> any ParsableCommand.Type {
        var command = root
        for word in words {
            guard let next = command.configuration.subcommands.first(where: { name(of: $0) == word }) else { break }
            command = next
        }
        return command
    }

    static func name(of command: any ParsableCommand.Type) -> String {
        command.configuration.commandName ?? command._commandName
    }

    /// The choices nearest to `word` (at most a third of its letters off), nearest first.
    static func nearest(_ word: String, among choices: [String]) -> [String] {
        let limit = max(2, word.count / 3)
        let scored = choices.map { ($0, distance(word.lowercased(), $0.lowercased())) }.filter { $0.1 <= limit }
        guard let best = scored.map(\.1).min() else { return [] }
        return scored.filter { $0.1 == best }.map(\.0).sorted()
    }

    /// "Did you mean 'x'?" for the choices nearest to `word`, if any is near.
    static func didYouMean(_ word: String, among choices: [String]) -> String? {
        let near = nearest(word, among: choices)
        return near.isEmpty ? nil : "Did you mean \(near.map { "'\($0)'" }.joined(separator: " or "))?"
    }

    /// The long options (`--name`) a command's help text lists.
    static func longOptions(in help: String) -> [String] {
        var names = Set<String>()
        for token in help.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\n" || $0 == "/" }) {
            guard token.hasPrefix("--"), token.count > 2 else { continue }
            let name = token.prefix { $0 != "=" && $0 != "<" && $0 != ")" && $0 != "]" }
            if name.dropFirst(2).allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) { names.insert(String(name)) }
        }
        return names.sorted()
    }

    /// Edit distance (insertions, deletions, substitutions, and swaps of neighbours).
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }
}
