import GatehouseTestSupport
import NIOCore
import NIOEmbedded
import NIOTestUtils
import PostgresWire
import Testing

/// A decoder already past the startup packet, as it is once a session has started.
func frontendDecoderInFramePhase(maxMessageLength: Int = 1 << 20) -> FrontendDecoder {
    var decoder = FrontendDecoder(maxMessageLength: maxMessageLength)
    var startup = ByteBuffer(
        bytes: startupBytes(.startup(protocolVersion: StartupPacket.protocolVersion3, parameters: ["user": "u"])))
    _ = try! decoder.decode(buffer: &startup)
    precondition(startup.readableBytes == 0)
    return decoder
}

/// Feeds `chunks` through a `ByteToMessageHandler` in an embedded channel and returns what it produced.
func decodeThroughChannel<Decoder: ByteToMessageDecoder>(
    _ decoder: Decoder, chunks: [[UInt8]]
) throws -> [Decoder.InboundOut] {
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(decoder))
    defer { _ = try? channel.finish() }
    var outputs: [Decoder.InboundOut] = []
    for chunk in chunks {
        try channel.writeInbound(ByteBuffer(bytes: chunk))
        while let output = try channel.readInbound(as: Decoder.InboundOut.self) { outputs.append(output) }
    }
    return outputs
}

/// Splits `bytes` into chunks: whole, byte by byte, and a few seeded random splits.
func chunkings(_ bytes: [UInt8], seed: UInt64 = 1) -> [[[UInt8]]] {
    var result: [[[UInt8]]] = [[bytes], bytes.map { [$0] }]
    var random = SplitMix64(seed: seed)
    for _ in 0..<8 {
        var chunks: [[UInt8]] = []
        var index = 0
        while index < bytes.count {
            let size = Int.random(in: 1...max(1, min(13, bytes.count - index)), using: &random)
            chunks.append(Array(bytes[index..<index + size]))
            index += size
        }
        result.append(chunks)
    }
    return result
}

@Suite("Frontend decoder")
struct FrontendDecoderTests {
    static let startup = StartupPacket.startup(
        protocolVersion: StartupPacket.protocolVersion3,
        parameters: ["user": "alice", "database": "app", "application_name": "psql", "client_encoding": "UTF8"])

    @Test func verifierAcceptsTypedFrames() throws {
        let large = [UInt8](repeating: 0x61, count: 1000) + [0]
        let pairs: [(ByteBuffer, [FrontendInput])] = [
            (ByteBuffer(bytes: frameBytes("p", cString("token"))), [.frame(frame("p", cString("token")))]),
            (ByteBuffer(bytes: frameBytes("Q", cString("select 1"))), [.frame(frame("Q", cString("select 1")))]),
            (ByteBuffer(bytes: frameBytes("S", [])), [.frame(frame("S", []))]),
            (ByteBuffer(bytes: frameBytes("X", [])), [.frame(frame("X", []))]),
            (ByteBuffer(bytes: frameBytes("Q", large)), [.frame(frame("Q", large))]),
            (
                ByteBuffer(bytes: frameBytes("P", cString("") + cString("select $1") + [0, 0]) + frameBytes("S", [])),
                [.frame(frame("P", cString("") + cString("select $1") + [0, 0])), .frame(frame("S", []))]
            ),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { frontendDecoderInFramePhase() }
    }

    @Test func verifierAcceptsCancelRequests() throws {
        // Cancel requests leave the decoder expecting another startup packet, so they repeat cleanly.
        let pairs: [(ByteBuffer, [FrontendInput])] = [
            (
                ByteBuffer(bytes: startupBytes(.cancel(processID: 1, secretKey: 2))),
                [.startup(.cancel(processID: 1, secretKey: 2))]
            ),
            (
                ByteBuffer(bytes: startupBytes(.cancel(processID: Int32.max, secretKey: -7))),
                [.startup(.cancel(processID: Int32.max, secretKey: -7))]
            ),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrontendDecoder(maxMessageLength: 1 << 20) }
    }

    @Test func startupThenFramesInEveryChunking() throws {
        let bytes =
            startupBytes(Self.startup) + frameBytes("p", cString("token")) + frameBytes("Q", cString("select 1"))
            + frameBytes("X", [])
        let expected: [FrontendInput] = [
            .startup(Self.startup), .frame(frame("p", cString("token"))), .frame(frame("Q", cString("select 1"))),
            .frame(frame("X", [])),
        ]
        for chunks in chunkings(bytes) {
            let outputs = try decodeThroughChannel(FrontendDecoder(maxMessageLength: 1 << 20), chunks: chunks)
            #expect(outputs == expected)
        }
    }

    @Test func sslRequestThenStartupAfterTheHandshake() throws {
        // After 'S' the next bytes arrive through TLS, so they come in a later read than the request.
        let afterTLS = startupBytes(Self.startup) + frameBytes("p", cString("token"))
        let expected: [FrontendInput] = [
            .startup(.sslRequest), .startup(Self.startup), .frame(frame("p", cString("token"))),
        ]
        for sslChunks in chunkings(startupBytes(.sslRequest)) {
            for laterChunks in chunkings(afterTLS, seed: 9) {
                let outputs = try decodeThroughChannel(
                    FrontendDecoder(maxMessageLength: 1 << 20), chunks: sslChunks + laterChunks)
                #expect(outputs == expected)
            }
        }
    }

    @Test func gssRequestThenStartup() throws {
        let outputs = try decodeThroughChannel(
            FrontendDecoder(maxMessageLength: 1 << 20),
            chunks: [startupBytes(.gssEncryptionRequest), startupBytes(Self.startup)])
        #expect(outputs == [.startup(.gssEncryptionRequest), .startup(Self.startup)])
    }

    @Test func startupPacketEncodingIsExact() {
        #expect(startupBytes(.sslRequest) == [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F])
        #expect(startupBytes(.gssEncryptionRequest) == [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x30])
        #expect(
            startupBytes(.cancel(processID: 258, secretKey: -1)) == [
                0, 0, 0, 16, 0x04, 0xD2, 0x16, 0x2E, 0, 0, 1, 2, 255, 255, 255, 255,
            ])
        let startup = StartupPacket.startup(
            protocolVersion: StartupPacket.protocolVersion3, parameters: ["database": "d", "user": "u", "user": "v"])
        // In the order given, duplicates kept: the server applies them in order.
        let body: [UInt8] =
            [0, 3, 0, 0] + cString("database") + cString("d") + cString("user") + cString("u") + cString("user") + cString("v")
            + [0]
        #expect(startupBytes(startup) == be32(Int32(4 + body.count)) + body)
    }

    @Test(arguments: [
        StartupPacket.sslRequest, .gssEncryptionRequest, .cancel(processID: 42, secretKey: 99),
        .startup(protocolVersion: StartupPacket.protocolVersion3, parameters: [:]),
        .startup(
            protocolVersion: StartupPacket.protocolVersion3 + 2, parameters: ["user": "ü", "options": "-c x=1", "_pq_.x": ""]),
    ])
    func startupPacketRoundTrips(packet: StartupPacket) throws {
        var decoder = FrontendDecoder(maxMessageLength: 1024)
        var buffer = ByteBuffer(bytes: startupBytes(packet))
        #expect(try decoder.decode(buffer: &buffer) == .startup(packet))
        #expect(buffer.readableBytes == 0)
    }

    // MARK: Rejections

    @Test(arguments: [Int32(0), 4, 7, -1, Int32.min, 10_001, 1_000_000, Int32.max])
    func startupLengthOutOfBoundsIsRefused(length: Int32) {
        var decoder = FrontendDecoder(maxMessageLength: 1 << 30)
        // Only the length is sent: the decoder must refuse it before waiting for the rest.
        var buffer = ByteBuffer(bytes: be32(length))
        #expect(wireErrorCode { _ = try decoder.decode(buffer: &buffer) } == .startupPacketInvalid)
    }

    @Test func startupPacketAtTheLimitIsAccepted() throws {
        let filler = String(
            repeating: "x", count: 10_000 - 4 - 4 - cString("user").count - 1 - cString("options").count - 1 - 1 - 1)
        let packet = StartupPacket.startup(
            protocolVersion: StartupPacket.protocolVersion3, parameters: ["user": "u", "options": filler])
        let bytes = startupBytes(packet)
        #expect(bytes.count == 10_000)
        var decoder = FrontendDecoder(maxMessageLength: 1024)
        var buffer = ByteBuffer(bytes: bytes)
        #expect(try decoder.decode(buffer: &buffer) == .startup(packet))
    }

    @Test(arguments: [
        Int32(0x0002_0000),  // protocol 2.0
        Int32(0x0004_0000),  // protocol 4.0
        Int32(0),
        Int32(1234 << 16 | 5677),
    ])
    func unsupportedProtocolIsRefused(code: Int32) {
        var decoder = FrontendDecoder(maxMessageLength: 1024)
        var buffer = ByteBuffer(bytes: be32(9) + be32(code) + [0])
        #expect(wireErrorCode { _ = try decoder.decode(buffer: &buffer) } == .unsupportedProtocolVersion)
    }

    @Test func requestCodesWithTheWrongLengthAreRefused() {
        for bytes in [
            be32(12) + be32(StartupPacket.sslRequestCode) + [0, 0, 0, 0],
            be32(12) + be32(StartupPacket.gssEncryptionRequestCode) + [0, 0, 0, 0],
            be32(12) + be32(StartupPacket.cancelRequestCode) + [0, 0, 0, 1],
            be32(20) + be32(StartupPacket.cancelRequestCode) + [UInt8](repeating: 1, count: 12),
        ] {
            var decoder = FrontendDecoder(maxMessageLength: 1024)
            var buffer = ByteBuffer(bytes: bytes)
            #expect(wireErrorCode { _ = try decoder.decode(buffer: &buffer) } == .unsupportedProtocolVersion)
        }
    }

    @Test func unterminatedStartupParametersAreRefused() {
        let missingTerminator: [UInt8] = [0, 3, 0, 0] + cString("user") + cString("u")
        let missingValue: [UInt8] = [0, 3, 0, 0] + cString("user") + Array("u".utf8)
        let keyWithoutValue: [UInt8] = [0, 3, 0, 0] + cString("user")
        for body in [missingTerminator, missingValue, keyWithoutValue] {
            var decoder = FrontendDecoder(maxMessageLength: 1024)
            var buffer = ByteBuffer(bytes: be32(Int32(4 + body.count)) + body)
            #expect(wireErrorCode { _ = try decoder.decode(buffer: &buffer) } == .startupPacketInvalid)
        }
    }

    @Test func dataAfterTheParameterListIsRefused() {
        // PostgreSQL: "invalid startup packet layout: expected terminator as last byte".
        for body in [
            [0, 3, 0, 0] + cString("user") + cString("u") + [0] + Array("extra".utf8),
            [0, 3, 0, 0] + [0, 0],
            [0, 3, 0, 0] + [0] + frameBytes("Q", cString("select 1")),
        ] {
            var decoder = FrontendDecoder(maxMessageLength: 1024)
            var buffer = ByteBuffer(bytes: be32(Int32(4 + body.count)) + body)
            #expect(wireErrorCode { _ = try decoder.decode(buffer: &buffer) } == .startupPacketInvalid)
        }
    }

    @Test func bytesAfterSSLRequestAreRefused() {
        for trailing in [[0], startupBytes(Self.startup), frameBytes("Q", cString("select 1"))] {
            var decoder = FrontendDecoder(maxMessageLength: 1024)
            var buffer = ByteBuffer(bytes: startupBytes(.sslRequest) + trailing)
            #expect(wireErrorCode { _ = try decoder.decode(buffer: &buffer) } == .unexpectedDataAfterSSLRequest)
        }
    }

    @Test func bytesAfterGSSRequestAreRefused() {
        var decoder = FrontendDecoder(maxMessageLength: 1024)
        var buffer = ByteBuffer(bytes: startupBytes(.gssEncryptionRequest) + [1, 2, 3])
        #expect(wireErrorCode { _ = try decoder.decode(buffer: &buffer) } == .unexpectedDataAfterSSLRequest)
    }

    @Test func bytesAfterSSLRequestAreRefusedThroughTheHandler() {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrontendDecoder(maxMessageLength: 1024)))
        defer { _ = try? channel.finish() }
        var code: PostgresWireError.Code?
        do {
            try channel.writeInbound(ByteBuffer(bytes: startupBytes(.sslRequest) + startupBytes(Self.startup)))
        } catch let error as PostgresWireError {
            code = error.code
        } catch {}
        #expect(code == .unexpectedDataAfterSSLRequest)
    }

    @Test(arguments: [Int32(0), 1, 3, -1, Int32.min])
    func typedFrameShorterThanItsLengthFieldIsRefused(length: Int32) {
        var decoder = frontendDecoderInFramePhase()
        var buffer = ByteBuffer(bytes: [UInt8(ascii: "Q")] + be32(length))
        #expect(wireErrorCode { _ = try decoder.decode(buffer: &buffer) } == .messageTooShort)
    }

    @Test func typedFrameAboveTheLimitIsRefusedBeforeItsBody() {
        var decoder = frontendDecoderInFramePhase(maxMessageLength: 100)
        // Only the header: the decoder must not wait for 101 bytes of body.
        var buffer = ByteBuffer(bytes: [UInt8(ascii: "Q")] + be32(101))
        #expect(wireErrorCode { _ = try decoder.decode(buffer: &buffer) } == .messageTooLarge)
        var huge = ByteBuffer(bytes: [UInt8(ascii: "Q")] + be32(Int32.max))
        #expect(wireErrorCode { _ = try decoder.decode(buffer: &huge) } == .messageTooLarge)
    }

    @Test func typedFrameAtTheLimitIsAccepted() throws {
        var decoder = frontendDecoderInFramePhase(maxMessageLength: 100)
        let body = [UInt8](repeating: 7, count: 96)
        var buffer = ByteBuffer(bytes: frameBytes("d", body))
        #expect(try decoder.decode(buffer: &buffer) == .frame(frame("d", body)))
        var empty = ByteBuffer(bytes: frameBytes("S", []))
        #expect(try decoder.decode(buffer: &empty) == .frame(frame("S", [])))
    }

    @Test func decodeFrameRefusesThroughTheStaticEntryPointToo() {
        var buffer = ByteBuffer(bytes: [UInt8(ascii: "Q")] + be32(2))
        #expect(wireErrorCode { _ = try FrontendDecoder.decodeFrame(&buffer, maxMessageLength: 10) } == .messageTooShort)
    }

    // MARK: Truncation

    @Test func everyPrefixOfAStreamYieldsOnlyCompleteInputs() throws {
        let pieces: [([UInt8], FrontendInput)] = [
            (startupBytes(Self.startup), .startup(Self.startup)),
            (frameBytes("p", cString("token")), .frame(frame("p", cString("token")))),
            (frameBytes("S", []), .frame(frame("S", []))),
            (frameBytes("Q", cString("select now()")), .frame(frame("Q", cString("select now()")))),
        ]
        try checkPrefixes(pieces) {
            FrontendDecoder(maxMessageLength: 1024)
        } decode: { decoder, buffer in
            try decoder.decode(buffer: &buffer)
        }
    }

    @Test func everyPrefixOfACancelOrSSLRequestWaits() throws {
        for packet in [StartupPacket.cancel(processID: 5, secretKey: 6), .sslRequest, .gssEncryptionRequest] {
            try checkPrefixes([(startupBytes(packet), .startup(packet))]) {
                FrontendDecoder(maxMessageLength: 1024)
            } decode: {
                decoder, buffer in
                try decoder.decode(buffer: &buffer)
            }
        }
    }
}

/// For every prefix of the concatenated pieces: a fresh decoder yields exactly the pieces that are
/// complete, leaves the reader index at the end of the last one, and throws nothing.
func checkPrefixes<Decoder, Output: Equatable>(
    _ pieces: [([UInt8], Output)], sourceLocation: SourceLocation = #_sourceLocation, make: () -> Decoder,
    decode: (inout Decoder, inout ByteBuffer) throws -> Output?
) throws {
    let all = pieces.flatMap(\.0)
    var ends: [Int] = []
    var offset = 0
    for piece in pieces {
        offset += piece.0.count
        ends.append(offset)
    }
    for length in 0...all.count {
        var decoder = make()
        var buffer = ByteBuffer(bytes: Array(all[..<length]))
        let start = buffer.readerIndex
        var outputs: [Output] = []
        var iterations = 0
        while let output = try decode(&decoder, &buffer) {
            outputs.append(output)
            iterations += 1
            if iterations > pieces.count { break }
        }
        let complete = ends.filter { $0 <= length }.count
        #expect(outputs == pieces.prefix(complete).map(\.1), "prefix of \(length) bytes", sourceLocation: sourceLocation)
        #expect(
            buffer.readerIndex - start == (complete == 0 ? 0 : ends[complete - 1]), "consumed bytes for prefix \(length)",
            sourceLocation: sourceLocation)
    }
}

@Suite("Backend decoder")
struct BackendDecoderTests {
    static let frames: [(Character, [UInt8])] = [
        ("R", be32(0)),
        ("S", cString("server_version") + cString("16.2")),
        ("K", be32(1234) + be32(-5678)),
        ("Z", [UInt8(ascii: "I")]),
        ("E", [UInt8(ascii: "S")] + cString("FATAL") + [0]),
        ("n", []),
    ]

    @Test func verifierAcceptsFrames() throws {
        let pairs: [(ByteBuffer, [BackendInput])] = Self.frames.map { type, body in
            (ByteBuffer(bytes: frameBytes(type, body)), [.frame(frame(type, body))])
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            BackendDecoder(maxMessageLength: 1 << 20, expectingSSLResponse: false)
        }
    }

    @Test func sslAcceptedThenFramesAfterTheHandshake() throws {
        let later = Self.frames.flatMap { frameBytes($0.0, $0.1) }
        let expected: [BackendInput] = [.sslResponse(accepted: true)] + Self.frames.map { .frame(frame($0.0, $0.1)) }
        for chunks in chunkings(later) {
            let outputs = try decodeThroughChannel(
                BackendDecoder(maxMessageLength: 1024, expectingSSLResponse: true), chunks: [[UInt8(ascii: "S")]] + chunks)
            #expect(outputs == expected)
        }
    }

    @Test func sslRefusedThenPlaintextFramesInEveryChunking() throws {
        let bytes = [UInt8(ascii: "N")] + Self.frames.flatMap { frameBytes($0.0, $0.1) }
        let expected: [BackendInput] = [.sslResponse(accepted: false)] + Self.frames.map { .frame(frame($0.0, $0.1)) }
        for chunks in chunkings(bytes) {
            let outputs = try decodeThroughChannel(
                BackendDecoder(maxMessageLength: 1024, expectingSSLResponse: true), chunks: chunks)
            #expect(outputs == expected)
        }
    }

    @Test func dataAfterTheSSLAcceptanceIsRefused() {
        var decoder = BackendDecoder(maxMessageLength: 1024, expectingSSLResponse: true)
        var buffer = ByteBuffer(bytes: [UInt8(ascii: "S")] + frameBytes("R", be32(0)))
        #expect(wireErrorCode { _ = try decoder.decode(buffer: &buffer) } == .unexpectedDataAfterSSLRequest)
        var oneByte = BackendDecoder(maxMessageLength: 1024, expectingSSLResponse: true)
        var short = ByteBuffer(bytes: [UInt8(ascii: "S"), 0])
        #expect(wireErrorCode { _ = try oneByte.decode(buffer: &short) } == .unexpectedDataAfterSSLRequest)
    }

    @Test(arguments: [UInt8(ascii: "E"), UInt8(ascii: "s"), 0, 0xFF])
    func invalidSSLAnswerIsRefused(byte: UInt8) {
        var decoder = BackendDecoder(maxMessageLength: 1024, expectingSSLResponse: true)
        var buffer = ByteBuffer(bytes: [byte])
        #expect(wireErrorCode { _ = try decoder.decode(buffer: &buffer) } == .malformedMessage)
    }

    @Test func emptyInputWaitsForTheSSLAnswer() throws {
        var decoder = BackendDecoder(maxMessageLength: 1024, expectingSSLResponse: true)
        var buffer = ByteBuffer()
        #expect(try decoder.decode(buffer: &buffer) == nil)
        buffer.writeInteger(UInt8(ascii: "N"))
        #expect(try decoder.decode(buffer: &buffer) == .sslResponse(accepted: false))
    }

    @Test func frameLimitsApply() {
        var short = BackendDecoder(maxMessageLength: 64, expectingSSLResponse: false)
        var shortBuffer = ByteBuffer(bytes: [UInt8(ascii: "R")] + be32(3))
        #expect(wireErrorCode { _ = try short.decode(buffer: &shortBuffer) } == .messageTooShort)
        var large = BackendDecoder(maxMessageLength: 64, expectingSSLResponse: false)
        var largeBuffer = ByteBuffer(bytes: [UInt8(ascii: "D")] + be32(65))
        #expect(wireErrorCode { _ = try large.decode(buffer: &largeBuffer) } == .messageTooLarge)
    }

    @Test func everyPrefixOfAStreamYieldsOnlyCompleteInputs() throws {
        let pieces: [([UInt8], BackendInput)] =
            [([UInt8(ascii: "N")], .sslResponse(accepted: false))]
            + Self.frames.map { (frameBytes($0.0, $0.1), .frame(frame($0.0, $0.1))) }
        try checkPrefixes(pieces) {
            BackendDecoder(maxMessageLength: 1024, expectingSSLResponse: true)
        } decode: {
            decoder, buffer in
            try decoder.decode(buffer: &buffer)
        }
        let plain = Array(pieces.dropFirst())
        try checkPrefixes(plain) {
            BackendDecoder(maxMessageLength: 1024, expectingSSLResponse: false)
        } decode: {
            decoder, buffer in
            try decoder.decode(buffer: &buffer)
        }
    }
}

@Suite("Text that is not UTF-8")
struct StrictTextTests {
    @Test(
        "is refused in queries, parse messages and startup packets, never decoded into something else",
        arguments: [[0x81, 0x5C], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xE3, 0x81]] as [[UInt8]])
    func refused(bytes: [UInt8]) throws {
        let sql = Array("SELECT E'".utf8) + bytes + Array("'; DELETE FROM t".utf8)
        #expect(throws: PostgresWireError.self) { try QueryMessage.decode(ByteBuffer(bytes: sql + [0])) }
        do {
            _ = try QueryMessage.decode(ByteBuffer(bytes: sql + [0]))
        } catch let error as PostgresWireError {
            #expect(error.code == .invalidTextEncoding)
            #expect(error.description.contains("at byte 10"))
        }
        #expect(throws: PostgresWireError.self) { try ParseMessage.decode(ByteBuffer(bytes: [0] + sql + [0, 0, 0])) }
        var startup = ByteBuffer()
        let body = [0, 3, 0, 0] + Array("user\0u\0application_name\0".utf8) + bytes + [0, 0]
        startup.writeInteger(Int32(4 + body.count))
        startup.writeBytes(body)
        var decoder = FrontendDecoder(maxMessageLength: 1 << 20)
        #expect(throws: PostgresWireError.self) { _ = try decoder.decode(buffer: &startup) }
    }

    @Test("valid multibyte text is read exactly, and nothing may follow a query's string")
    func validText() throws {
        let sql = "SELECT 'Á€𝄞'"
        #expect(try QueryMessage.decode(ByteBuffer(bytes: Array(sql.utf8) + [0])).sql == sql)
        #expect(throws: PostgresWireError.self) { try QueryMessage.decode(ByteBuffer(bytes: Array(sql.utf8) + [0, 0x41, 0])) }
    }
}
