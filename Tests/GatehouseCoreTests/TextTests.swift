import Testing

@testable import GatehouseCore

@Suite("Hex and truncation")
struct TextTests {
    @Test func hexIsLowerCaseTwoDigitsPerByte() {
        #expect(Hex.encode([0x00, 0x0f, 0xab, 0xff]) == "000fabff")
        #expect(Hex.encode([UInt8]()) == "")
        #expect(Hex.encode((0...255).map { UInt8($0) }).count == 512)
    }

    @Test func truncationCutsCharactersNotBytes() {
        #expect("select 1".truncated(to: 8) == "select 1")
        #expect("select 1".truncated(to: 6) == "select…")
        // More bytes than the limit, not more characters: unchanged.
        #expect("ééé".truncated(to: 3) == "ééé")
        #expect("éééé".truncated(to: 3) == "ééé…")
        // A character of several scalars is never split.
        #expect("👩‍👩‍👧ab".truncated(to: 1) == "👩‍👩‍👧…")
        #expect("".truncated(to: 0) == "")
    }
}
