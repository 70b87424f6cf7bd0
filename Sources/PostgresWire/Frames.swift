import NIOCore

/// One typed PostgreSQL protocol v3 message: a type byte, then a length that counts itself.
///
/// `bytes` holds the whole frame (type, length and body) so that relaying it is a zero-copy write;
/// `body` is a view of the payload.
public struct PostgresFrame: Sendable, Equatable {
    public var type: UInt8
    public var bytes: ByteBuffer

    public init(type: UInt8, bytes: ByteBuffer) {
        self.type = type
        self.bytes = bytes
    }

    /// Builds a frame from a type byte and a body.
    public init(type: UInt8, body: ByteBuffer) {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(5 + body.readableBytes)
        buffer.writeInteger(type)
        buffer.writeInteger(Int32(4 + body.readableBytes))
        var body = body
        buffer.writeBuffer(&body)
        self.init(type: type, bytes: buffer)
    }

    /// The payload, without the type byte and length.
    public var body: ByteBuffer {
        bytes.getSlice(at: bytes.readerIndex + 5, length: bytes.readableBytes - 5) ?? ByteBuffer()
    }

    /// The type byte as a character, for messages and logs.
    public var typeName: String {
        (0x20...0x7e).contains(type) ? String(UnicodeScalar(type)) : "0x" + String(type, radix: 16)
    }
}

/// The first packet of a connection, which carries no type byte.
public enum StartupPacket: Sendable, Equatable {
    /// Protocol 3.x StartupMessage with its parameters (`user`, `database`, `application_name`, ...).
    case startup(protocolVersion: Int32, parameters: [String: String])
    /// The client asks for TLS.
    case sslRequest
    /// The client asks for GSSAPI encryption, which Gatehouse does not offer.
    case gssEncryptionRequest
    /// A request to cancel the query running on the connection with this key.
    case cancel(processID: Int32, secretKey: Int32)

    public static let protocolVersion3: Int32 = 196_608
    public static let sslRequestCode: Int32 = 80_877_103
    public static let gssEncryptionRequestCode: Int32 = 80_877_104
    public static let cancelRequestCode: Int32 = 80_877_102

    /// Encodes the packet as a client would send it.
    public func encode(into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        buffer.writeInteger(Int32(0))
        switch self {
        case .startup(let version, let parameters):
            buffer.writeInteger(version)
            // Stable order keeps encodings reproducible; `user` first as clients do.
            for key in parameters.keys.sorted(by: { ($0 == "user" ? "" : $0) < ($1 == "user" ? "" : $1) }) {
                buffer.writeNullTerminatedString(key)
                buffer.writeNullTerminatedString(parameters[key]!)
            }
            buffer.writeInteger(UInt8(0))
        case .sslRequest:
            buffer.writeInteger(Self.sslRequestCode)
        case .gssEncryptionRequest:
            buffer.writeInteger(Self.gssEncryptionRequestCode)
        case .cancel(let processID, let secretKey):
            buffer.writeInteger(Self.cancelRequestCode)
            buffer.writeInteger(processID)
            buffer.writeInteger(secretKey)
        }
        buffer.setInteger(Int32(buffer.writerIndex - start), at: start)
    }
}

/// Why a byte stream is not valid PostgreSQL protocol. The description is safe to show to a client.
public struct PostgresWireError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case messageTooLarge
        case messageTooShort
        case startupPacketInvalid
        case unsupportedProtocolVersion
        case unexpectedDataAfterSSLRequest
        case malformedMessage
    }

    public var code: Code
    public var description: String

    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}
