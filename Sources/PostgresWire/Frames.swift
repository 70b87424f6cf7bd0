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
    /// Protocol 3.x StartupMessage with its parameters (`user`, `database`, `application_name`, ...), in
    /// the order the client sent them.
    case startup(protocolVersion: Int32, parameters: StartupParameters)
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
            for (key, value) in parameters.entries {
                buffer.writeNullTerminatedString(key)
                buffer.writeNullTerminatedString(value)
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
        /// Text that is not valid UTF-8 (SQLSTATE 22021 in PostgreSQL's terms).
        case invalidTextEncoding
    }

    public var code: Code
    public var description: String

    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

/// A StartupMessage's parameters: every pair in the order sent, duplicates included, because the server
/// applies them in that order and the last of a name wins.
public struct StartupParameters: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public var entries: [(name: String, value: String)]

    public init(_ entries: [(name: String, value: String)] = []) {
        self.entries = entries
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.entries = elements.map { (name: $0.0, value: $0.1) }
    }

    /// The value the server uses for `name` (compared exactly, as it compares `user` and `database`):
    /// the last one sent.
    public subscript(name: String) -> String? {
        entries.last(where: { $0.name == name })?.value
    }

    /// Removes every pair named exactly `name` and returns the value that would have applied.
    @discardableResult
    public mutating func removeAll(named name: String) -> String? {
        let value = self[name]
        entries.removeAll { $0.name == name }
        return value
    }

    public var names: [String] { entries.map(\.name) }

    public static func == (a: StartupParameters, b: StartupParameters) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}
