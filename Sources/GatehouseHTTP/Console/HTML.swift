import Foundation

/// A fragment of HTML. Text goes in through `HTML.text`, which escapes it; only the page templates
/// build markup from literals.
public struct HTML: Sendable, CustomStringConvertible {
    public var description: String

    public init(raw: String) { description = raw }

    /// Escaped text: safe in element content and in double-quoted attribute values.
    public static func text(_ value: String) -> HTML {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for character in value.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(character)
            }
        }
        return HTML(raw: out)
    }

    public static func + (a: HTML, b: HTML) -> HTML { HTML(raw: a.description + b.description) }

    public static func join(_ parts: [HTML], separator: String = "") -> HTML {
        HTML(raw: parts.map(\.description).joined(separator: separator))
    }

    public static let empty = HTML(raw: "")
}

/// `"…\(value)…"` in an `HTML(…)` literal escapes `value`; `\(html: fragment)` inserts markup as is.
extension HTML: ExpressibleByStringInterpolation {
    public init(stringLiteral value: String) { description = value }

    public init(stringInterpolation: Interpolation) { description = stringInterpolation.output }

    public struct Interpolation: StringInterpolationProtocol {
        var output = ""
        public init(literalCapacity: Int, interpolationCount: Int) { output.reserveCapacity(literalCapacity * 2) }
        public mutating func appendLiteral(_ literal: String) { output += literal }
        public mutating func appendInterpolation(_ value: String) { output += HTML.text(value).description }
        public mutating func appendInterpolation(_ value: Int) { output += String(value) }
        public mutating func appendInterpolation(_ value: Int64) { output += String(value) }
        public mutating func appendInterpolation(html: HTML) { output += html.description }
        public mutating func appendInterpolation(_ values: [HTML]) { output += values.map(\.description).joined() }
    }
}
