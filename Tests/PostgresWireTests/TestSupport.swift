import NIOCore
import PostgresWire

/// SplitMix64: a small seeded generator, so a failing fuzz case reproduces from its seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension ByteBuffer {
    init(bytes: [UInt8]) {
        self.init()
        writeBytes(bytes)
    }

    var bytes: [UInt8] { Array(readableBytesView) }
}

/// Bytes of an untyped startup packet as a client would send it.
func startupBytes(_ packet: StartupPacket) -> [UInt8] {
    var buffer = ByteBuffer()
    packet.encode(into: &buffer)
    return buffer.bytes
}

/// Bytes of a typed frame with the given type and body.
func frameBytes(_ type: Character, _ body: [UInt8]) -> [UInt8] {
    [type.asciiValue!] + be32(Int32(4 + body.count)) + body
}

func be32(_ value: Int32) -> [UInt8] {
    withUnsafeBytes(of: value.bigEndian) { Array($0) }
}

func cString(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }

func frame(_ type: Character, _ body: [UInt8]) -> PostgresFrame {
    PostgresFrame(type: type.asciiValue!, bytes: ByteBuffer(bytes: frameBytes(type, body)))
}

/// The code of the `PostgresWireError` a closure throws, or nil when it throws nothing or something else.
func wireErrorCode(_ body: () throws -> Void) -> PostgresWireError.Code? {
    do {
        try body()
        return nil
    } catch let error as PostgresWireError {
        return error.code
    } catch {
        return nil
    }
}
