import NIOCore

/// Type bytes of the messages a client sends after startup.
public enum FrontendMessageType {
    public static let query: UInt8 = UInt8(ascii: "Q")
    public static let parse: UInt8 = UInt8(ascii: "P")
    public static let bind: UInt8 = UInt8(ascii: "B")
    public static let describe: UInt8 = UInt8(ascii: "D")
    public static let execute: UInt8 = UInt8(ascii: "E")
    public static let close: UInt8 = UInt8(ascii: "C")
    public static let sync: UInt8 = UInt8(ascii: "S")
    public static let flush: UInt8 = UInt8(ascii: "H")
    public static let functionCall: UInt8 = UInt8(ascii: "F")
    public static let copyData: UInt8 = UInt8(ascii: "d")
    public static let copyDone: UInt8 = UInt8(ascii: "c")
    public static let copyFail: UInt8 = UInt8(ascii: "f")
    public static let terminate: UInt8 = UInt8(ascii: "X")

    /// Messages a client may send once the session is established.
    public static let sessionMessages: Set<UInt8> = [
        query, parse, bind, describe, execute, close, sync, flush, functionCall, copyData, copyDone, copyFail, terminate,
    ]
}

/// Query ('Q'): one string that may hold several statements.
public struct QueryMessage: Sendable, Equatable {
    public var sql: String

    public init(sql: String) { self.sql = sql }

    public static func decode(_ body: ByteBuffer) throws -> QueryMessage {
        var body = body
        guard let sql = try body.readValidatedString() else {
            throw PostgresWireError(.malformedMessage, "Query message without a terminated query string")
        }
        // As the server reads it (pq_getmsgend): one string, nothing after it.
        guard body.readableBytes == 0 else {
            throw PostgresWireError(.malformedMessage, "Query message has data after its query string")
        }
        return QueryMessage(sql: sql)
    }

    public var frame: PostgresFrame {
        var body = ByteBuffer()
        body.writeNullTerminatedString(sql)
        return PostgresFrame(type: FrontendMessageType.query, body: body)
    }
}

/// Parse ('P'): a statement name, its text and the parameter types the client fixes.
public struct ParseMessage: Sendable, Equatable {
    public var name: String
    public var sql: String
    public var parameterTypes: [UInt32]

    public init(name: String, sql: String, parameterTypes: [UInt32] = []) {
        self.name = name
        self.sql = sql
        self.parameterTypes = parameterTypes
    }

    public static func decode(_ body: ByteBuffer) throws -> ParseMessage {
        var body = body
        guard let name = try body.readValidatedString(), let sql = try body.readValidatedString(),
            let count = body.readInteger(as: Int16.self), count >= 0, body.readableBytes == Int(count) * 4
        else {
            throw PostgresWireError(.malformedMessage, "Parse message with a bad layout")
        }
        var types: [UInt32] = []
        types.reserveCapacity(Int(count))
        for _ in 0..<count { types.append(body.readInteger(as: UInt32.self)!) }
        return ParseMessage(name: name, sql: sql, parameterTypes: types)
    }

    public var frame: PostgresFrame {
        var body = ByteBuffer()
        body.writeNullTerminatedString(name)
        body.writeNullTerminatedString(sql)
        body.writeInteger(Int16(parameterTypes.count))
        for type in parameterTypes { body.writeInteger(type) }
        return PostgresFrame(type: FrontendMessageType.parse, body: body)
    }
}
