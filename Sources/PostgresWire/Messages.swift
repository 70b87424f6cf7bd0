import NIOCore

/// Type bytes of the messages the gateway reads or writes itself.
public enum MessageType {
    // Frontend
    public static let password: UInt8 = UInt8(ascii: "p")  // also SASLInitialResponse and SASLResponse
    public static let query: UInt8 = UInt8(ascii: "Q")
    public static let terminate: UInt8 = UInt8(ascii: "X")
    // Backend
    public static let authentication: UInt8 = UInt8(ascii: "R")
    public static let parameterStatus: UInt8 = UInt8(ascii: "S")
    public static let backendKeyData: UInt8 = UInt8(ascii: "K")
    public static let readyForQuery: UInt8 = UInt8(ascii: "Z")
    public static let errorResponse: UInt8 = UInt8(ascii: "E")
    public static let noticeResponse: UInt8 = UInt8(ascii: "N")
    public static let negotiateProtocolVersion: UInt8 = UInt8(ascii: "v")
}

/// The Authentication ('R') family of backend messages.
public enum AuthenticationMessage: Sendable, Equatable {
    case ok
    case cleartextPassword
    case md5Password(salt: [UInt8])
    case sasl(mechanisms: [String])
    case saslContinue(data: [UInt8])
    case saslFinal(data: [UInt8])
    case unsupported(code: Int32)

    public static func decode(_ body: ByteBuffer) throws -> AuthenticationMessage {
        var body = body
        guard let code = body.readInteger(as: Int32.self) else {
            throw PostgresWireError(.malformedMessage, "authentication message is too short")
        }
        switch code {
        case 0: return .ok
        case 3: return .cleartextPassword
        case 5:
            guard let salt = body.readBytes(length: 4) else {
                throw PostgresWireError(.malformedMessage, "MD5 authentication request has no salt")
            }
            return .md5Password(salt: salt)
        case 10:
            var mechanisms: [String] = []
            while let name = body.readNullTerminatedString(), !name.isEmpty { mechanisms.append(name) }
            return .sasl(mechanisms: mechanisms)
        case 11: return .saslContinue(data: body.readBytes(length: body.readableBytes) ?? [])
        case 12: return .saslFinal(data: body.readBytes(length: body.readableBytes) ?? [])
        default: return .unsupported(code: code)
        }
    }

    public var frame: PostgresFrame {
        var body = ByteBuffer()
        switch self {
        case .ok: body.writeInteger(Int32(0))
        case .cleartextPassword: body.writeInteger(Int32(3))
        case .md5Password(let salt):
            body.writeInteger(Int32(5))
            body.writeBytes(salt)
        case .sasl(let mechanisms):
            body.writeInteger(Int32(10))
            for mechanism in mechanisms { body.writeNullTerminatedString(mechanism) }
            body.writeInteger(UInt8(0))
        case .saslContinue(let data):
            body.writeInteger(Int32(11))
            body.writeBytes(data)
        case .saslFinal(let data):
            body.writeInteger(Int32(12))
            body.writeBytes(data)
        case .unsupported(let code): body.writeInteger(code)
        }
        return PostgresFrame(type: MessageType.authentication, body: body)
    }
}

/// ErrorResponse and NoticeResponse: a list of typed fields.
public struct ErrorNoticeFields: Sendable, Equatable {
    public var fields: [(UInt8, String)]

    public init(fields: [(UInt8, String)]) {
        self.fields = fields
    }

    /// Builds the usual fields: severity (localised and not), SQLSTATE, message, and optional detail,
    /// hint and position (1-based, in characters of the statement text: psql draws its caret there).
    public init(
        severity: String, sqlState: String, message: String, detail: String? = nil, hint: String? = nil,
        position: Int? = nil
    ) {
        var fields: [(UInt8, String)] = [
            (UInt8(ascii: "S"), severity), (UInt8(ascii: "V"), severity),
            (UInt8(ascii: "C"), sqlState), (UInt8(ascii: "M"), message),
        ]
        if let detail { fields.append((UInt8(ascii: "D"), detail)) }
        if let hint { fields.append((UInt8(ascii: "H"), hint)) }
        if let position, position > 0 { fields.append((UInt8(ascii: "P"), String(position))) }
        self.fields = fields
    }

    public subscript(field: Character) -> String? {
        let code = field.asciiValue!
        return fields.first(where: { $0.0 == code })?.1
    }

    public var severity: String? { self["V"] ?? self["S"] }
    public var sqlState: String? { self["C"] }
    public var message: String? { self["M"] }

    public static func decode(_ body: ByteBuffer) -> ErrorNoticeFields {
        var body = body
        var fields: [(UInt8, String)] = []
        while let code = body.readInteger(as: UInt8.self), code != 0, let value = body.readNullTerminatedString() {
            fields.append((code, value))
        }
        return ErrorNoticeFields(fields: fields)
    }

    public func frame(type: UInt8) -> PostgresFrame {
        var body = ByteBuffer()
        for (code, value) in fields {
            body.writeInteger(code)
            body.writeNullTerminatedString(value)
        }
        body.writeInteger(UInt8(0))
        return PostgresFrame(type: type, body: body)
    }

    public var errorFrame: PostgresFrame { frame(type: MessageType.errorResponse) }
    public var noticeFrame: PostgresFrame { frame(type: MessageType.noticeResponse) }

    public static func == (lhs: ErrorNoticeFields, rhs: ErrorNoticeFields) -> Bool {
        lhs.fields.elementsEqual(rhs.fields, by: { $0.0 == $1.0 && $0.1 == $1.1 })
    }
}

/// ParameterStatus: a run-time setting the server reports (at startup, and when it changes).
public struct ParameterStatus: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    public static func decode(_ body: ByteBuffer) throws -> ParameterStatus {
        var body = body
        guard let name = body.readNullTerminatedString(), let value = body.readNullTerminatedString() else {
            throw PostgresWireError(.malformedMessage, "malformed ParameterStatus")
        }
        return ParameterStatus(name: name, value: value)
    }

    public var frame: PostgresFrame {
        var body = ByteBuffer()
        body.writeNullTerminatedString(name)
        body.writeNullTerminatedString(value)
        return PostgresFrame(type: MessageType.parameterStatus, body: body)
    }
}

/// BackendKeyData: the key a client cancels its session's statements with.
public struct BackendKeyData: Sendable, Equatable {
    public var processID: Int32
    public var secretKey: Int32

    public init(processID: Int32, secretKey: Int32) {
        self.processID = processID
        self.secretKey = secretKey
    }

    public static func decode(_ body: ByteBuffer) throws -> BackendKeyData {
        var body = body
        guard let processID = body.readInteger(as: Int32.self), let secretKey = body.readInteger(as: Int32.self) else {
            throw PostgresWireError(.malformedMessage, "malformed BackendKeyData")
        }
        return BackendKeyData(processID: processID, secretKey: secretKey)
    }

    public var frame: PostgresFrame {
        var body = ByteBuffer()
        body.writeInteger(processID)
        body.writeInteger(secretKey)
        return PostgresFrame(type: MessageType.backendKeyData, body: body)
    }
}

/// NegotiateProtocolVersion: the newest minor version of protocol 3 spoken, and the protocol options
/// (`_pq_.*`) of the startup packet that are not.
public struct NegotiateProtocolVersion: Sendable, Equatable {
    public var newestMinor: Int32
    public var unsupportedOptions: [String]

    public init(newestMinor: Int32, unsupportedOptions: [String]) {
        self.newestMinor = newestMinor
        self.unsupportedOptions = unsupportedOptions
    }

    public static func decode(_ body: ByteBuffer) throws -> NegotiateProtocolVersion {
        var body = body
        guard let version = body.readInteger(as: Int32.self), let count = body.readInteger(as: Int32.self), count >= 0,
            count <= body.readableBytes
        else {
            throw PostgresWireError(.malformedMessage, "malformed NegotiateProtocolVersion")
        }
        var options: [String] = []
        for _ in 0..<count {
            guard let option = body.readNullTerminatedString() else {
                throw PostgresWireError(.malformedMessage, "malformed NegotiateProtocolVersion")
            }
            options.append(option)
        }
        return NegotiateProtocolVersion(newestMinor: version & 0xffff, unsupportedOptions: options)
    }

    public var frame: PostgresFrame {
        var body = ByteBuffer()
        body.writeInteger(StartupPacket.protocolVersion3 | newestMinor)
        body.writeInteger(Int32(unsupportedOptions.count))
        for option in unsupportedOptions { body.writeNullTerminatedString(option) }
        return PostgresFrame(type: MessageType.negotiateProtocolVersion, body: body)
    }
}

/// Small backend and frontend messages the gateway builds or reads itself.
public enum WireMessages {
    /// ReadyForQuery with a transaction status: `I` idle, `T` in a transaction, `E` in a failed one.
    public static func readyForQuery(status: UInt8) -> PostgresFrame {
        var body = ByteBuffer()
        body.writeInteger(status)
        return PostgresFrame(type: MessageType.readyForQuery, body: body)
    }

    /// A PasswordMessage with a cleartext password or an MD5 digest.
    public static func password(_ password: String) -> PostgresFrame {
        var body = ByteBuffer()
        body.writeNullTerminatedString(password)
        return PostgresFrame(type: MessageType.password, body: body)
    }

    /// Reads the password from a PasswordMessage body.
    public static func decodePassword(_ body: ByteBuffer) throws -> String {
        var body = body
        guard let password = body.readNullTerminatedString(), body.readableBytes == 0 else {
            throw PostgresWireError(.malformedMessage, "malformed password message")
        }
        return password
    }

    public static func saslInitialResponse(mechanism: String, data: [UInt8]) -> PostgresFrame {
        var body = ByteBuffer()
        body.writeNullTerminatedString(mechanism)
        body.writeInteger(Int32(data.count))
        body.writeBytes(data)
        return PostgresFrame(type: MessageType.password, body: body)
    }

    public static func saslResponse(data: [UInt8]) -> PostgresFrame {
        var body = ByteBuffer()
        body.writeBytes(data)
        return PostgresFrame(type: MessageType.password, body: body)
    }

    public static let terminate = PostgresFrame(type: MessageType.terminate, body: ByteBuffer())

    public static func query(_ sql: String) -> PostgresFrame {
        var body = ByteBuffer()
        body.writeNullTerminatedString(sql)
        return PostgresFrame(type: MessageType.query, body: body)
    }
}
