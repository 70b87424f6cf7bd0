import NIOCore

/// What a client sends: first an untyped startup packet (possibly several, around TLS or GSS
/// negotiation), then typed frames.
public enum FrontendInput: Sendable, Equatable {
    case startup(StartupPacket)
    case frame(PostgresFrame)
}

/// Splits a client's byte stream into startup packets and typed frames.
///
/// Single-step (`NIOSingleStepByteToMessageDecoder`): a frame is emitted only once it is complete; every length is bounded before any
/// buffer is reserved for it.
public struct FrontendDecoder: NIOSingleStepByteToMessageDecoder, Sendable {
    public typealias InboundOut = FrontendInput

    /// PostgreSQL's own limit for a startup packet.
    public static let maxStartupPacketLength = 10_000

    /// The limit for the first typed message, which comes before authentication: the password (a
    /// Gatehouse token is well under it). Nothing larger is buffered for a client no one knows yet.
    public static let maxAuthenticationMessageLength = 16_384

    public let maxMessageLength: Int
    private var expectingStartup = true
    private var framesDecoded = 0

    public init(maxMessageLength: Int) {
        self.maxMessageLength = maxMessageLength
    }

    /// Decodes one input from the buffer, consuming nothing when the input is incomplete.
    /// At the end of the stream: what is complete is still delivered; a partial input is dropped with the
    /// connection.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> FrontendInput? {
        try decode(buffer: &buffer)
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> FrontendInput? {
        if expectingStartup {
            guard let packet = try Self.decodeStartupPacket(&buffer) else { return nil }
            switch packet {
            case .startup:
                expectingStartup = false
            case .sslRequest, .gssEncryptionRequest:
                // Anything sent after the request and before the answer would be read as if it had
                // come over the encrypted channel (CVE-2021-23214): refuse it.
                if buffer.readableBytes > 0 {
                    throw PostgresWireError(
                        .unexpectedDataAfterSSLRequest, "unexpected data after an encryption request")
                }
            case .cancel:
                break
            }
            return .startup(packet)
        }
        let limit = framesDecoded == 0 ? min(maxMessageLength, Self.maxAuthenticationMessageLength) : maxMessageLength
        guard let frame = try Self.decodeFrame(&buffer, maxMessageLength: limit) else { return nil }
        framesDecoded += 1
        return .frame(frame)
    }

    static func decodeStartupPacket(_ buffer: inout ByteBuffer) throws -> StartupPacket? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return nil }
        guard length >= 8, length <= maxStartupPacketLength else {
            throw PostgresWireError(.startupPacketInvalid, "invalid startup packet length \(length)")
        }
        guard var packet = buffer.readSlice(length: Int(length)) else { return nil }
        packet.moveReaderIndex(forwardBy: 4)
        let code = packet.readInteger(as: Int32.self)!
        switch code {
        case StartupPacket.sslRequestCode where length == 8:
            return .sslRequest
        case StartupPacket.gssEncryptionRequestCode where length == 8:
            return .gssEncryptionRequest
        case StartupPacket.cancelRequestCode where length == 16:
            return .cancel(processID: packet.readInteger()!, secretKey: packet.readInteger()!)
        case let version where version >> 16 == 3:
            var parameters = StartupParameters()
            while true {
                guard let key = try packet.readValidatedString() else {
                    throw PostgresWireError(.startupPacketInvalid, "startup packet is not terminated")
                }
                if key.isEmpty { break }
                guard let value = try packet.readValidatedString() else {
                    throw PostgresWireError(.startupPacketInvalid, "startup parameter \(key) has no value")
                }
                parameters.entries.append((key, value))
            }
            // As PostgreSQL does: the list's terminator must be the packet's last byte.
            guard packet.readableBytes == 0 else {
                throw PostgresWireError(.startupPacketInvalid, "startup packet has data after its parameters")
            }
            return .startup(protocolVersion: version, parameters: parameters)
        default:
            throw PostgresWireError(
                .unsupportedProtocolVersion,
                "unsupported frontend protocol \(code >> 16).\(code & 0xffff): server supports 3.0")
        }
    }

    /// Decodes one typed frame, or returns nil when it is not complete yet.
    public static func decodeFrame(_ buffer: inout ByteBuffer, maxMessageLength: Int) throws -> PostgresFrame? {
        guard let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let length = buffer.getInteger(at: buffer.readerIndex + 1, as: Int32.self)
        else { return nil }
        guard length >= 4 else {
            throw PostgresWireError(.messageTooShort, "invalid message length \(length)")
        }
        guard Int(length) <= maxMessageLength else {
            throw PostgresWireError(
                .messageTooLarge, "message of \(length) bytes exceeds the limit of \(maxMessageLength) bytes")
        }
        guard let bytes = buffer.readSlice(length: Int(length) + 1) else { return nil }
        return PostgresFrame(type: type, bytes: bytes)
    }
}

/// What a server sends: an optional one-byte answer to SSLRequest, then typed frames.
public enum BackendInput: Sendable, Equatable {
    case sslResponse(accepted: Bool)
    case frame(PostgresFrame)
}

/// Splits a server's byte stream into frames.
public struct BackendDecoder: NIOSingleStepByteToMessageDecoder, Sendable {
    public typealias InboundOut = BackendInput

    public let maxMessageLength: Int
    private var expectingSSLResponse: Bool

    public init(maxMessageLength: Int, expectingSSLResponse: Bool) {
        self.maxMessageLength = maxMessageLength
        self.expectingSSLResponse = expectingSSLResponse
    }

    /// At the end of the stream: what is complete is still delivered; a partial input is dropped with the
    /// connection.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> BackendInput? {
        try decode(buffer: &buffer)
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> BackendInput? {
        if expectingSSLResponse {
            guard let byte = buffer.readInteger(as: UInt8.self) else { return nil }
            expectingSSLResponse = false
            switch byte {
            case UInt8(ascii: "S"):
                // A server must not send anything before the TLS handshake (CVE-2021-23222).
                if buffer.readableBytes > 0 {
                    throw PostgresWireError(
                        .unexpectedDataAfterSSLRequest, "server sent unexpected data after accepting TLS")
                }
                return .sslResponse(accepted: true)
            case UInt8(ascii: "N"):
                return .sslResponse(accepted: false)
            default:
                throw PostgresWireError(.malformedMessage, "invalid answer to SSLRequest from server")
            }
        }
        guard let frame = try FrontendDecoder.decodeFrame(&buffer, maxMessageLength: maxMessageLength) else {
            return nil
        }
        return .frame(frame)
    }
}
