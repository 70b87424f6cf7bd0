/// Inspections remembered by exact text, and by *shape*: the text with its plain integer and plain
/// string constants masked, so that `... WHERE id = 7` and `... WHERE id = 8` are parsed once.
///
/// The facts an inspection holds (kinds, tables, functions, flags, fingerprint) never depend on the value
/// of a constant, only on where constants stand; the statement's own text does, and a hit by shape gets
/// the new text. A shape is only taken from text that a deliberately small scanner reads exactly as
/// PostgreSQL's lexer does: ASCII, no comments, no quoted identifiers, no dollar quotes, no escapes or
/// prefixed strings. Anything else is only remembered by its exact text. Pure: no I/O, no locks.
public struct InspectionCache: Sendable {
    /// How a text is looked up: itself, and its shape when it has one.
    public struct Key: Sendable {
        /// The text, compared by its bytes: Swift's `String ==` holds canonically equivalent texts equal
        /// (U+037E GREEK QUESTION MARK equals `;`), and PostgreSQL reads bytes.
        let bytes: UTF8Bytes
        /// The text with its constants masked, when the scanner could read it.
        let shapeBytes: UTF8Bytes?
        /// Where each masked constant starts (byte offsets): the parser must place an `A_Const` at each.
        let constants: [Int]

        public init(_ sql: String) {
            bytes = UTF8Bytes(sql)
            let masked = sql.utf8.count <= InspectionCache.longestText ? ConstantMask.shape(of: sql) : nil
            shapeBytes = masked.map { UTF8Bytes($0.text) }
            constants = masked?.constants ?? []
        }

        public var text: String { bytes.text }
        public var shape: String? { shapeBytes?.text }
    }

    /// Long texts (bulk inserts with literals) are rarely repeated; they are parsed each time.
    static let longestText = 4096
    private var byText: [UTF8Bytes: Inspection] = [:]
    private var byShape: [UTF8Bytes: Inspection] = [:]
    private let limit: Int

    /// `limit` entries in each map; a full map is emptied and refilled.
    public init(limit: Int = 8192) {
        self.limit = limit
    }

    public func inspection(for key: Key) -> Inspection? {
        if let hit = byText[key.bytes] { return hit }
        guard let shape = key.shapeBytes, var hit = byShape[shape] else { return nil }
        hit.statements[0].text = ConstantMask.statementText(of: key.text)
        return hit
    }

    /// Remembers the inspection of `key`'s text, and by shape when nothing in it can depend on the
    /// masked constants:
    /// - the parser made each masked constant an `A_Const` (`constants`: where it put them), whose value
    ///   no fact and no fingerprint reads. A string that is a file name, a password or a payload is a
    ///   plain value in the tree instead, and keeps the text out of the shape map;
    /// - it is one parsed statement whose text is the whole input (trimmed), so a hit's text is known.
    public mutating func remember(_ inspection: Inspection, for key: Key, constants: Set<Int>?) {
        guard key.text.utf8.count <= Self.longestText else { return }
        if byText.count >= limit { byText.removeAll(keepingCapacity: true) }
        byText[key.bytes] = inspection
        guard let shape = key.shapeBytes, let constants, inspection.parseError == nil, inspection.statements.count == 1,
            inspection.statements[0].text == ConstantMask.statementText(of: key.text)
        else { return }
        let bytes = Array(key.text.utf8)
        guard key.constants.allSatisfy({ Self.isConstant(at: $0, in: bytes, constants) }) else { return }
        if byShape.count >= limit { byShape.removeAll(keepingCapacity: true) }
        byShape[shape] = inspection
    }

    /// Whether the parser put a constant at `offset`, or at the minus sign before it (a negative number
    /// is one constant located at its sign).
    static func isConstant(at offset: Int, in bytes: [UInt8], _ constants: Set<Int>) -> Bool {
        if constants.contains(offset) { return true }
        var position = min(offset, bytes.count) - 1
        while position >= 0, bytes[position] == 0x20 || (0x09...0x0D).contains(bytes[position]) { position -= 1 }
        return position >= 0 && bytes[position] == UInt8(ascii: "-") && constants.contains(position)
    }
}

/// Text compared and hashed by its UTF-8 bytes, not by Unicode canonical equivalence.
public struct UTF8Bytes: Hashable, Sendable {
    public let text: String

    public init(_ text: String) {
        self.text = text
    }

    public static func == (a: UTF8Bytes, b: UTF8Bytes) -> Bool {
        var (left, right) = (a.text, b.text)
        return left.withUTF8 { x in right.withUTF8 { y in x.elementsEqual(y) } }
    }

    public func hash(into hasher: inout Hasher) {
        var text = text
        text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// Masks the constants of SQL text that can be read without PostgreSQL's lexer.
public enum ConstantMask {
    /// Stand-ins for a masked integer and a masked string's content: control characters, which the
    /// scanner refuses in its input, so a shape can only come from text of the same structure.
    static let integerMark: UInt8 = 0x01
    static let stringMark: UInt8 = 0x02
    /// Longer digit runs are kept as they are: every shorter one is an integer token to PostgreSQL's
    /// lexer. A run past 2³¹−1 is a numeric token instead, which rules such as `varchar(n)` refuse.
    static let longestInteger = 9

    /// The text with each plain integer and the content of each plain string replaced by a mark, or nil
    /// when the text holds anything the scanner does not read exactly as PostgreSQL does.
    public static func shape(of sql: String) -> (text: String, constants: [Int])? {
        var out: [UInt8] = []
        var constants: [Int] = []
        var sql = sql
        let ok = sql.withUTF8 { bytes -> Bool in
            out.reserveCapacity(bytes.count)
            return mask(bytes, into: &out, constants: &constants)
        }
        guard ok else { return nil }
        return (String(decoding: out, as: UTF8.self), constants)
    }

    private static func isIdentifier(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    /// Bytes a plain string may follow: where PostgreSQL can only see the start of a standard string
    /// (an identifier or `&` right before a quote would make it a prefixed string: E'', B'', X'', U&'').
    private static func mayPrecedeString(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "("),
            UInt8(ascii: ","), UInt8(ascii: "="), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "["):
            return true
        default:
            return false
        }
    }

    private static func mask(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8], constants: inout [Int]) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "'"):
                if index > 0, !mayPrecedeString(bytes[index - 1]) { return false }
                // A plain string: printable ASCII (and layout) up to the next quote, which must not be doubled.
                var end = index + 1
                while end < count, bytes[end] != UInt8(ascii: "'") {
                    let inner = bytes[end]
                    guard inner < 0x80, inner >= 0x20 || inner == 0x09 || inner == 0x0A || inner == 0x0D,
                        inner != UInt8(ascii: "\\")
                    else { return false }
                    end += 1
                }
                guard end < count else { return false }
                if end + 1 < count, bytes[end + 1] == UInt8(ascii: "'") { return false }
                out.append(UInt8(ascii: "'"))
                out.append(stringMark)
                out.append(UInt8(ascii: "'"))
                constants.append(index)
                index = end + 1
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                var end = index
                while end < count, isDigit(bytes[end]) { end += 1 }
                let before = index > 0 ? bytes[index - 1] : UInt8(ascii: " ")
                let after = end < count ? bytes[end] : UInt8(ascii: " ")
                if isIdentifier(before) || before == UInt8(ascii: ".") || isIdentifier(after) || after == UInt8(ascii: ".")
                    || end - index > longestInteger
                {
                    // Part of a name, a decimal or an exponent, or long: kept as it is.
                    for position in index..<end { out.append(bytes[position]) }
                } else {
                    out.append(integerMark)
                    constants.append(index)
                }
                index = end
            case UInt8(ascii: "-") where index + 1 < count && bytes[index + 1] == UInt8(ascii: "-"):
                return false  // a comment
            case UInt8(ascii: "/") where index + 1 < count && bytes[index + 1] == UInt8(ascii: "*"):
                return false  // a comment
            case UInt8(ascii: "\""), UInt8(ascii: "$"), UInt8(ascii: "\\"):
                return false  // quoted identifiers, dollar quotes and parameters, escapes
            case 0x09, 0x0A, 0x0D, 0x20...0x7E:
                out.append(byte)
                index += 1
            default:
                return false  // other control characters and non-ASCII text
            }
        }
        return true
    }

    /// The text a single statement has in its inspection: the input without surrounding layout and one
    /// final semicolon (as PostgreSQL's statement length leaves it out).
    public static func statementText(of sql: String) -> String {
        var bytes = Substring(sql).utf8[...]
        func trim() {
            while let first = bytes.first, first == 0x20 || (0x09...0x0D).contains(first) { bytes.removeFirst() }
            while let last = bytes.last, last == 0x20 || (0x09...0x0D).contains(last) { bytes.removeLast() }
        }
        trim()
        if bytes.last == UInt8(ascii: ";") {
            bytes.removeLast()
            trim()
        }
        return String(Substring(bytes))
    }
}
