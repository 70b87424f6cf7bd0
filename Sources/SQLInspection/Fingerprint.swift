/// A fingerprint of one statement's parse tree: equal for statements that differ only in constants,
/// comments, letter case of keywords and layout; different when the structure or a name differs.
///
/// 64-bit FNV-1a over the tree's keys and values, leaving out source locations and the contents of
/// constants (`A_Const`). Stable across runs and machines. It identifies a statement's shape (for
/// audit and for grouping), not a secret: it is not collision-resistant against a deliberate attacker.
enum Fingerprint {
    static func of(_ tape: JSONTape, _ root: Int) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        hashValue(tape, root, &hash)
        return hex(hash)
    }

    private static func hashValue(_ tape: JSONTape, _ index: Int, _ hash: inout UInt64) {
        @inline(__always) func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        switch tape.kind(index) {
        case .object:
            mix(UInt8(ascii: "{"))
            var member = index + 1
            let end = tape.end(index)
            while member < end {
                let value = member + 1
                let next = tape.end(value)
                if tape.equals(member, "location") || tape.equals(member, "stmt_location") || tape.equals(member, "stmt_len") {
                    member = next
                    continue
                }
                for byte in tape.raw(member) { mix(byte) }
                mix(UInt8(ascii: ":"))
                if tape.equals(member, "A_Const") {
                    mix(UInt8(ascii: "?"))
                } else {
                    hashValue(tape, value, &hash)
                }
                member = next
            }
            mix(UInt8(ascii: "}"))
        case .array:
            mix(UInt8(ascii: "["))
            tape.forEachElement(index) { hashValue(tape, $0, &hash) }
            mix(UInt8(ascii: "]"))
        default:
            for byte in tape.raw(index) { mix(byte) }
            mix(0)
        }
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes = [UInt8](repeating: 0, count: 16)
        var rest = value
        for position in stride(from: 15, through: 0, by: -1) {
            bytes[position] = digits[Int(rest & 0xf)]
            rest >>= 4
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
