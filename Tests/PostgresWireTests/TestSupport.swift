@_exported import GatehouseTestSupport
import NIOCore
import PostgresWire

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
