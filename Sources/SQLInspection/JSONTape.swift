/// A read-only, allocation-light view of libpg_query's JSON parse tree.
///
/// The text is tokenised once into a flat tape (one entry per value or key, each knowing where its
/// subtree ends), so walking the tree creates no dictionaries and no strings except the identifiers
/// a caller asks for. Only well-formed JSON as libpg_query writes it is expected; anything else
/// makes `init` return nil (the caller then fails closed).
struct JSONTape {
    enum Kind: UInt8 {
        case object, array, string, number, literal
    }

    struct Entry {
        var kind: Kind
        /// Byte range of the token (for strings: inside the quotes; `escaped` says whether to unescape).
        var start: Int32
        var length: Int32
        /// Index of the first entry after this value's subtree.
        var end: Int32
        var escaped: Bool
    }

    let bytes: UnsafeBufferPointer<UInt8>
    private(set) var entries: [Entry] = []
    /// Nesting deeper than this is refused: it stands for an expression nested far more deeply than
    /// PostgreSQL itself accepts (its 2 MB `max_stack_depth` stops `1+1+…` near 5,000 terms, which is
    /// about 10,000 levels here), and it bounds every recursive walk of the tape.
    static let maximumDepth = 24_000

    /// Tokenises `bytes`, which must stay valid while the tape is used.
    init?(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        entries.reserveCapacity(bytes.count / 6)
        var position = 0
        guard parseValue(&position), skipSpace(position) == bytes.count else { return nil }
    }

    /// Whether `bytes` nest objects and arrays more deeply than `maximumDepth`: a cheap scan, before any
    /// recursion, that skips string contents.
    static func nestsTooDeeply(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var level = 0
        var index = 0
        let count = bytes.count
        while index < count {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                index += 1
                while index < count, bytes[index] != UInt8(ascii: "\"") {
                    index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
                }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                level += 1
                if level > maximumDepth { return true }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                level -= 1
            default:
                break
            }
            index += 1
        }
        return false
    }

    private func skipSpace(_ position: Int) -> Int {
        var position = position
        while position < bytes.count,
            bytes[position] == 0x20 || bytes[position] == 0x0A || bytes[position] == 0x09
                || bytes[position] == 0x0D
        {
            position += 1
        }
        return position
    }

    private mutating func parseValue(_ position: inout Int) -> Bool {
        position = skipSpace(position)
        guard position < bytes.count else { return false }
        switch bytes[position] {
        case UInt8(ascii: "{"):
            let index = entries.count
            entries.append(Entry(kind: .object, start: Int32(position), length: 0, end: 0, escaped: false))
            position += 1
            position = skipSpace(position)
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                position += 1
            } else {
                while true {
                    position = skipSpace(position)
                    guard position < bytes.count, bytes[position] == UInt8(ascii: "\""), parseString(&position) else {
                        return false
                    }
                    position = skipSpace(position)
                    guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { return false }
                    position += 1
                    guard parseValue(&position) else { return false }
                    position = skipSpace(position)
                    guard position < bytes.count else { return false }
                    if bytes[position] == UInt8(ascii: ",") {
                        position += 1
                        continue
                    }
                    guard bytes[position] == UInt8(ascii: "}") else { return false }
                    position += 1
                    break
                }
            }
            entries[index].end = Int32(entries.count)
            return true
        case UInt8(ascii: "["):
            let index = entries.count
            entries.append(Entry(kind: .array, start: Int32(position), length: 0, end: 0, escaped: false))
            position += 1
            position = skipSpace(position)
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                position += 1
            } else {
                while true {
                    guard parseValue(&position) else { return false }
                    position = skipSpace(position)
                    guard position < bytes.count else { return false }
                    if bytes[position] == UInt8(ascii: ",") {
                        position += 1
                        continue
                    }
                    guard bytes[position] == UInt8(ascii: "]") else { return false }
                    position += 1
                    break
                }
            }
            entries[index].end = Int32(entries.count)
            return true
        case UInt8(ascii: "\""):
            return parseString(&position)
        default:
            let start = position
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") || byte == 0x20
                    || byte == 0x0A
                {
                    break
                }
                position += 1
            }
            guard position > start else { return false }
            let first = bytes[start]
            let kind: Kind = (first == UInt8(ascii: "-") || (first >= 0x30 && first <= 0x39)) ? .number : .literal
            entries.append(
                Entry(
                    kind: kind, start: Int32(start), length: Int32(position - start), end: Int32(entries.count + 1),
                    escaped: false))
            return true
        }
    }

    private mutating func parseString(_ position: inout Int) -> Bool {
        position += 1  // opening quote
        let start = position
        var escaped = false
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\\") {
                escaped = true
                position += 2
                continue
            }
            if byte == UInt8(ascii: "\"") {
                entries.append(
                    Entry(
                        kind: .string, start: Int32(start), length: Int32(position - start), end: Int32(entries.count + 1),
                        escaped: escaped))
                position += 1
                return true
            }
            position += 1
        }
        return false
    }

    // MARK: Reading

    func kind(_ index: Int) -> Kind { entries[index].kind }
    func end(_ index: Int) -> Int { Int(entries[index].end) }

    /// Calls `body` with the key index and value index of each member of the object at `index`.
    @inline(__always)
    func forEachMember(_ index: Int, _ body: (_ key: Int, _ value: Int) -> Void) {
        guard entries[index].kind == .object else { return }
        var member = index + 1
        let stop = Int(entries[index].end)
        while member < stop {
            body(member, member + 1)
            member = Int(entries[member + 1].end)
        }
    }

    /// Calls `body` with the index of each element of the array at `index`.
    @inline(__always)
    func forEachElement(_ index: Int, _ body: (Int) -> Void) {
        guard entries[index].kind == .array else { return }
        var element = index + 1
        let stop = Int(entries[index].end)
        while element < stop {
            body(element)
            element = Int(entries[element].end)
        }
    }

    /// The value of `key` in the object at `index`.
    func member(_ index: Int, _ key: StaticString) -> Int? {
        guard entries[index].kind == .object else { return nil }
        var member = index + 1
        let stop = Int(entries[index].end)
        while member < stop {
            if equals(member, key) { return member + 1 }
            member = Int(entries[member + 1].end)
        }
        return nil
    }

    /// Whether the string token at `index` is exactly `text` (which has no escapes).
    func equals(_ index: Int, _ text: StaticString) -> Bool {
        let entry = entries[index]
        guard entry.kind == .string, !entry.escaped, Int(entry.length) == text.utf8CodeUnitCount else { return false }
        let start = Int(entry.start)
        let pointer = text.utf8Start
        for offset in 0..<Int(entry.length) where bytes[start + offset] != pointer[offset] { return false }
        return true
    }

    /// The raw bytes of a token (strings without quotes, not unescaped).
    func raw(_ index: Int) -> UnsafeBufferPointer<UInt8> {
        let entry = entries[index]
        return UnsafeBufferPointer(rebasing: bytes[Int(entry.start)..<Int(entry.start + entry.length)])
    }

    /// The string at `index`, unescaped; nil when it is not a string.
    func string(_ index: Int?) -> String? {
        guard let index, entries[index].kind == .string else { return nil }
        let raw = raw(index)
        guard entries[index].escaped else { return String(decoding: raw, as: UTF8.self) }
        var output: [UInt8] = []
        output.reserveCapacity(raw.count)
        var position = 0
        while position < raw.count {
            let byte = raw[position]
            guard byte == UInt8(ascii: "\\"), position + 1 < raw.count else {
                output.append(byte)
                position += 1
                continue
            }
            let next = raw[position + 1]
            position += 2
            switch next {
            case UInt8(ascii: "n"): output.append(0x0A)
            case UInt8(ascii: "t"): output.append(0x09)
            case UInt8(ascii: "r"): output.append(0x0D)
            case UInt8(ascii: "b"): output.append(0x08)
            case UInt8(ascii: "f"): output.append(0x0C)
            case UInt8(ascii: "u"):
                guard position + 4 <= raw.count,
                    let code = UInt32(
                        String(decoding: UnsafeBufferPointer(rebasing: raw[position..<position + 4]), as: UTF8.self), radix: 16)
                else { return nil }
                position += 4
                var scalarValue = code
                // A surrogate pair: \uD83D\uDE00.
                if (0xD800...0xDBFF).contains(code), position + 6 <= raw.count, raw[position] == UInt8(ascii: "\\"),
                    raw[position + 1] == UInt8(ascii: "u"),
                    let low = UInt32(
                        String(decoding: UnsafeBufferPointer(rebasing: raw[position + 2..<position + 6]), as: UTF8.self),
                        radix: 16),
                    (0xDC00...0xDFFF).contains(low)
                {
                    scalarValue = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    position += 6
                }
                output.append(contentsOf: Array(String(Character(Unicode.Scalar(scalarValue) ?? "\u{FFFD}")).utf8))
            default: output.append(next)  // \" \\ \/
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    func bool(_ index: Int?) -> Bool? {
        guard let index, entries[index].kind == .literal else { return nil }
        let raw = raw(index)
        if raw.count == 4 && raw[0] == UInt8(ascii: "t") { return true }
        if raw.count == 5 && raw[0] == UInt8(ascii: "f") { return false }
        return nil
    }

    func int(_ index: Int?) -> Int? {
        guard let index, entries[index].kind == .number else { return nil }
        var value = 0
        var negative = false
        for byte in raw(index) {
            if byte == UInt8(ascii: "-") {
                negative = true
                continue
            }
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            value = value &* 10 &+ Int(byte - 0x30)
        }
        return negative ? -value : value
    }
}

extension Inspector {
    /// Whether `bytes` read as a parse-tree tape (for the fuzz target: the reader must never crash,
    /// whatever it is given).
    @_spi(Fuzzing) public static func readsAsTape(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !JSONTape.nestsTooDeeply(bytes) else { return false }
        return JSONTape(bytes) != nil
    }
}
