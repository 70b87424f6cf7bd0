import SQLInspection
import Testing

/// Texts a client controls the depth of: none may exhaust a stack, each gets an answer.
@Suite("Deeply nested texts")
struct DeepTextTests {
    static func repeated(_ prefix: String, _ middle: String, _ suffix: String, _ count: Int) -> String {
        "SELECT " + String(repeating: prefix, count: count) + middle + String(repeating: suffix, count: count)
    }

    @Test(
        "are refused as PostgreSQL refuses them, without crashing",
        arguments: [
            ("1+", 100_000), ("1+", 500_000), ("abs(", 5_000), ("abs(", 20_000), ("(", 200_000), ("- ", 200_000),
            ("NOT ", 100_000), ("ARRAY[", 50_000), ("1::int::", 300_000), ("1||", 500_000), ("coalesce(1,", 30_000),
        ])
    func refused(prefix: String, count: Int) {
        let text: String
        switch prefix {
        case "1+", "1||", "1::int::": text = "SELECT " + String(repeating: prefix, count: count) + "1"
        case "abs(", "coalesce(1,": text = Self.repeated(prefix, "1", ")", count)
        case "(": text = Self.repeated("(", "1", ")", count)
        case "ARRAY[": text = Self.repeated("ARRAY[", "1", "]", count)
        default: text = "SELECT " + String(repeating: prefix, count: count) + "1"
        }
        let inspection = Inspector.inspect(text)
        #expect(inspection.unparsable, "\(prefix) × \(count) was read as \(inspection.statements.first?.summary ?? "")")
    }

    @Test("nesting PostgreSQL accepts is read", arguments: [("1+", 3_000), ("abs(", 1_000), ("(", 1_000)])
    func accepted(prefix: String, count: Int) throws {
        let text =
            prefix == "1+"
            ? "SELECT " + String(repeating: "1+", count: count) + "1"
            : Self.repeated(prefix, "1", ")", count)
        let inspection = Inspector.inspect(text)
        #expect(inspection.parseError == nil, "\(String(describing: inspection.parseError))")
        #expect(inspection.statements.first?.primary == .select)
    }

    @Test("a text longer than the gateway checks is refused unread")
    func tooLong() {
        let text = "SELECT '" + String(repeating: "x", count: Inspector.longestText) + "'"
        #expect(Inspector.inspect(text).parseError?.message.contains("MiB") == true)
    }
}
