import Foundation

/// A PostgreSQL protocol client that sends exactly the bytes it is given: startup keys in any spelling
/// and order, query texts that are not UTF-8. For the attacks psql and drivers cannot spell.
final class RawClient {
    struct Message {
        var type: UInt8
        var body: [UInt8]

        /// The fields of an ErrorResponse or NoticeResponse, by code.
        var fields: [Character: String] {
            var result: [Character: String] = [:]
            var index = 0
            while index < body.count, body[index] != 0 {
                let code = Character(UnicodeScalar(body[index]))
                index += 1
                let end = body[index...].firstIndex(of: 0) ?? body.count
                result[code] = String(decoding: body[index..<end], as: UTF8.self)
                index = end + 1
            }
            return result
        }

        var text: String { String(decoding: body.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// What the server answered to one query: the command tags, in order, and the first error.
    struct Reply {
        var tags: [String] = []
        var rows: [[String?]] = []
        var error: [Character: String]?
        var messages: [Message] = []
    }

    private let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to 127.0.0.1:`port` (plaintext) and completes the startup, answering a cleartext password
    /// request with `password`. Throws with the server's FATAL fields when the startup is refused.
    init(port: Int, parameters: [(String, String)], password: String? = nil, from source: String = "127.0.0.1") throws {
        fd = try connectLoopback(port: port, receiveTimeout: 30, from: source)
        // Every stored property is set, so a throw from here on runs `deinit`, which closes the socket.
        var body: [UInt8] = [0, 3, 0, 0]
        for (name, value) in parameters { body += Array(name.utf8) + [0] + Array(value.utf8) + [0] }
        body.append(0)
        try send(Self.be32(4 + body.count) + body)
        while true {
            let message = try read()
            switch message.type {
            case UInt8(ascii: "R"):
                let code = message.body.prefix(4).reduce(0) { $0 << 8 | Int($1) }
                if code == 3 {
                    guard let password else { throw HarnessError("the server asked for a password") }
                    try send(Self.frame("p", Array(password.utf8) + [0]))
                } else if code != 0 {
                    throw HarnessError("unsupported authentication request \(code)")
                }
            case UInt8(ascii: "E"):
                throw StartupRefused(fields: message.fields)
            case UInt8(ascii: "Z"):
                return
            default:
                continue
            }
        }
    }

    struct StartupRefused: Error, CustomStringConvertible {
        var fields: [Character: String]
        var description: String { "startup refused: \(fields["C"] ?? "") \(fields["M"] ?? "")" }
    }

    deinit {
        _ = try? send(Self.frame("X", []))
        close(fd)
    }

    /// Sends one simple Query whose text is exactly `bytes`, and reads until ReadyForQuery.
    func query(bytes: [UInt8]) throws -> Reply {
        try send(Self.frame("Q", bytes + [0]))
        return try readUntilReady()
    }

    func query(_ sql: String) throws -> Reply { try query(bytes: Array(sql.utf8)) }

    /// Sends a FunctionCall of function `oid` without arguments and reads until ReadyForQuery.
    func functionCall(oid: UInt32) throws -> Reply {
        let body = Self.be32(Int(oid)) + [0, 0, 0, 0, 0, 0]
        try send(Self.frame("F", body))
        var reply = Reply()
        while true {
            let message = try read()
            if message.type == UInt8(ascii: "E"), reply.error == nil { reply.error = message.fields }
            if message.type == UInt8(ascii: "Z") { return reply }
        }
    }

    // MARK: The extended protocol, a message at a time (nothing is read until `readUntilReady`)

    func parse(_ name: String, _ sql: String) throws {
        try send(Self.frame("P", Array(name.utf8) + [0] + Array(sql.utf8) + [0, 0, 0]))
    }

    /// Binds `statement` to `portal` with text parameters (nil: NULL), results in text.
    func bind(_ portal: String = "", _ statement: String = "", _ parameters: [String?] = []) throws {
        var body = Array(portal.utf8) + [0] + Array(statement.utf8) + [0, 0, 0]
        body += [UInt8(parameters.count >> 8), UInt8(parameters.count & 0xFF)]
        for parameter in parameters {
            if let parameter {
                body += Self.be32(parameter.utf8.count) + Array(parameter.utf8)
            } else {
                body += Self.be32(-1)
            }
        }
        body += [0, 0]
        try send(Self.frame("B", body))
    }

    func execute(_ portal: String = "", maxRows: Int = 0) throws {
        try send(Self.frame("E", Array(portal.utf8) + [0] + Self.be32(maxRows)))
    }

    func describe(portal: String) throws { try send(Self.frame("D", [UInt8(ascii: "P")] + Array(portal.utf8) + [0])) }

    func describe(statement: String) throws { try send(Self.frame("D", [UInt8(ascii: "S")] + Array(statement.utf8) + [0])) }

    func closeStatement(_ statement: String) throws {
        try send(Self.frame("C", [UInt8(ascii: "S")] + Array(statement.utf8) + [0]))
    }

    func closePortal(_ portal: String) throws { try send(Self.frame("C", [UInt8(ascii: "P")] + Array(portal.utf8) + [0])) }

    func sync() throws { try send(Self.frame("S", [])) }

    func flush() throws { try send(Self.frame("H", [])) }

    /// Reads every message up to and including the next ReadyForQuery (or a FATAL error).
    func readUntilReady() throws -> Reply {
        var reply = Reply()
        while true {
            let message = try read()
            reply.messages.append(message)
            switch message.type {
            case UInt8(ascii: "C"): reply.tags.append(message.text)
            case UInt8(ascii: "D"): reply.rows.append(Self.dataRow(message.body))
            case UInt8(ascii: "E"):
                if reply.error == nil { reply.error = message.fields }
                if message.fields["S"] == "FATAL" { return reply }
            case UInt8(ascii: "Z"): return reply
            default: break
            }
        }
    }

    /// Sends one simple Query without waiting for its answer (a pipeline); `readMessage` reads answers.
    func send(query sql: String) throws { try send(Self.frame("Q", Array(sql.utf8) + [0])) }

    /// Reads what the server sends next without sending anything (after a FATAL, the connection's end).
    func readMessage() throws -> Message { try read() }

    private static func dataRow(_ body: [UInt8]) -> [String?] {
        var values: [String?] = []
        let count = Int(body[0]) << 8 | Int(body[1])
        var index = 2
        for _ in 0..<count {
            let length = Int(
                Int32(
                    bitPattern: UInt32(body[index]) << 24 | UInt32(body[index + 1]) << 16 | UInt32(body[index + 2]) << 8
                        | UInt32(body[index + 3])))
            index += 4
            if length < 0 {
                values.append(nil)
            } else {
                values.append(String(decoding: body[index..<index + length], as: UTF8.self))
                index += length
            }
        }
        return values
    }

    private func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw HarnessError("send() failed") }
            offset += sent
        }
    }

    private func read() throws -> Message {
        while true {
            if buffer.count >= 5 {
                let length = Int(buffer[1]) << 24 | Int(buffer[2]) << 16 | Int(buffer[3]) << 8 | Int(buffer[4])
                if buffer.count >= 1 + length {
                    let message = Message(type: buffer[0], body: Array(buffer[5..<1 + length]))
                    buffer.removeFirst(1 + length)
                    return message
                }
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw HarnessError("the connection closed") }
            buffer += chunk[0..<n]
        }
    }

    static func be32(_ value: Int) -> [UInt8] {
        [
            UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8),
            UInt8(truncatingIfNeeded: value),
        ]
    }

    static func frame(_ type: Character, _ body: [UInt8]) -> [UInt8] {
        [type.asciiValue!] + be32(4 + body.count) + body
    }
}

/// A TCP connection to 127.0.0.1:`port` whose reads give up after `receiveTimeout` seconds. The caller
/// owns the descriptor; nothing is left open when this throws.
func connectLoopback(port: Int, receiveTimeout: Int, from source: String = "127.0.0.1") throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket() failed") }
    var timeout = timeval(tv_sec: receiveTimeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    if source != "127.0.0.1" {
        // Another loopback address (all of 127/8 is this machine): the gateway sees another source.
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(fd)
            throw HarnessError("bind() to \(source) failed")
        }
    }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw HarnessError("connect() to port \(port) failed")
    }
    return fd
}
