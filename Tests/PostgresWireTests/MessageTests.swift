import NIOCore
import PostgresWire
import Testing

@Suite("Frames")
struct FrameTests {
    @Test func frameFromBodyCarriesHeaderAndBody() {
        let frame = PostgresFrame(type: UInt8(ascii: "Q"), body: ByteBuffer(bytes: cString("select 1")))
        #expect(frame.bytes.bytes == [UInt8(ascii: "Q"), 0, 0, 0, 13] + cString("select 1"))
        #expect(frame.body.bytes == cString("select 1"))
        #expect(frame.type == UInt8(ascii: "Q"))
    }

    @Test func bodyIsAViewOfTheReadableBytes() {
        var buffer = ByteBuffer(bytes: [9, 9] + frameBytes("Z", [UInt8(ascii: "T")]))
        buffer.moveReaderIndex(forwardBy: 2)
        let frame = PostgresFrame(type: UInt8(ascii: "Z"), bytes: buffer)
        #expect(frame.body.bytes == [UInt8(ascii: "T")])
        #expect(PostgresFrame(type: 1, bytes: ByteBuffer(bytes: [1, 0, 0])).body.readableBytes == 0)
    }

    @Test func typeNameIsPrintableOrHex() {
        #expect(frame("Q", []).typeName == "Q")
        #expect(PostgresFrame(type: 0, body: ByteBuffer()).typeName == "0x0")
        #expect(PostgresFrame(type: 0xFF, body: ByteBuffer()).typeName == "0xff")
        #expect(PostgresFrame(type: 0x7F, body: ByteBuffer()).typeName == "0x7f")
    }
}

@Suite("Authentication messages")
struct AuthenticationMessageTests {
    func decode(_ body: [UInt8]) throws -> AuthenticationMessage {
        try AuthenticationMessage.decode(ByteBuffer(bytes: body))
    }

    @Test func decodesOk() throws {
        #expect(try decode(be32(0)) == .ok)
    }

    @Test func decodesCleartext() throws {
        #expect(try decode(be32(3)) == .cleartextPassword)
    }

    @Test func decodesMD5WithItsSalt() throws {
        #expect(try decode(be32(5) + [0xDE, 0xAD, 0xBE, 0xEF]) == .md5Password(salt: [0xDE, 0xAD, 0xBE, 0xEF]))
    }

    @Test func md5WithoutSaltIsMalformed() {
        #expect(wireErrorCode { _ = try decode(be32(5) + [1, 2, 3]) } == .malformedMessage)
    }

    @Test func decodesSASLMechanismList() throws {
        let body = be32(10) + cString("SCRAM-SHA-256-PLUS") + cString("SCRAM-SHA-256") + [0]
        #expect(try decode(body) == .sasl(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]))
        #expect(try decode(be32(10) + [0]) == .sasl(mechanisms: []))
    }

    @Test func decodesSASLContinueAndFinal() throws {
        let serverFirst = Array("r=abc,s=c2FsdA==,i=4096".utf8)
        #expect(try decode(be32(11) + serverFirst) == .saslContinue(data: serverFirst))
        let serverFinal = Array("v=c2lnbmF0dXJl".utf8)
        #expect(try decode(be32(12) + serverFinal) == .saslFinal(data: serverFinal))
        #expect(try decode(be32(11)) == .saslContinue(data: []))
    }

    @Test(arguments: [Int32(2), 6, 7, 8, 9, 13, -1])
    func otherCodesAreUnsupported(code: Int32) throws {
        #expect(try decode(be32(code)) == .unsupported(code: code))
    }

    @Test func shortBodyIsMalformed() {
        #expect(wireErrorCode { _ = try decode([]) } == .malformedMessage)
        #expect(wireErrorCode { _ = try decode([0, 0, 0]) } == .malformedMessage)
    }

    @Test func framesHaveTheProtocolBytes() {
        #expect(AuthenticationMessage.ok.frame.bytes.bytes == [UInt8(ascii: "R"), 0, 0, 0, 8, 0, 0, 0, 0])
        #expect(AuthenticationMessage.cleartextPassword.frame.bytes.bytes == [UInt8(ascii: "R"), 0, 0, 0, 8, 0, 0, 0, 3])
        #expect(
            AuthenticationMessage.md5Password(salt: [1, 2, 3, 4]).frame.bytes.bytes
                == [UInt8(ascii: "R"), 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4])
        #expect(
            AuthenticationMessage.sasl(mechanisms: ["SCRAM-SHA-256"]).frame.bytes.bytes
                == [UInt8(ascii: "R")] + be32(4 + 4 + 14 + 1) + be32(10) + cString("SCRAM-SHA-256") + [0])
    }

    @Test(arguments: [
        AuthenticationMessage.ok, .cleartextPassword, .md5Password(salt: [9, 8, 7, 6]),
        .sasl(mechanisms: ["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"]), .saslContinue(data: Array("r=x,s=y,i=1".utf8)),
        .saslFinal(data: Array("v=zz".utf8)), .unsupported(code: 7),
    ])
    func roundTrips(message: AuthenticationMessage) throws {
        let frame = message.frame
        #expect(frame.type == MessageType.authentication)
        #expect(try AuthenticationMessage.decode(frame.body) == message)
    }
}

@Suite("ErrorResponse and NoticeResponse")
struct ErrorNoticeFieldsTests {
    @Test func usualFieldsInProtocolOrder() {
        let fields = ErrorNoticeFields(severity: "FATAL", sqlState: "28P01", message: "bad token", detail: "d", hint: "h")
        #expect(fields.fields.map(\.0) == Array("SVCMDH".utf8))
        #expect(fields.fields.map(\.1) == ["FATAL", "FATAL", "28P01", "bad token", "d", "h"])
        #expect(fields.severity == "FATAL")
        #expect(fields.sqlState == "28P01")
        #expect(fields.message == "bad token")
        #expect(fields["D"] == "d")
        #expect(fields["H"] == "h")
        #expect(fields["P"] == nil)
        let short = ErrorNoticeFields(severity: "ERROR", sqlState: "42501", message: "no")
        #expect(short.fields.count == 4)
    }

    @Test func severityPrefersTheUnlocalisedField() {
        let fields = ErrorNoticeFields(fields: [(UInt8(ascii: "S"), "FEHLER"), (UInt8(ascii: "V"), "ERROR")])
        #expect(fields.severity == "ERROR")
        #expect(ErrorNoticeFields(fields: [(UInt8(ascii: "S"), "FEHLER")]).severity == "FEHLER")
    }

    @Test func errorFrameBytesAreExact() {
        let frame = ErrorNoticeFields(fields: [(UInt8(ascii: "S"), "FATAL"), (UInt8(ascii: "C"), "08P01")]).errorFrame
        let body = [UInt8(ascii: "S")] + cString("FATAL") + [UInt8(ascii: "C")] + cString("08P01") + [0]
        #expect(frame.bytes.bytes == [UInt8(ascii: "E")] + be32(Int32(4 + body.count)) + body)
        #expect(ErrorNoticeFields(fields: []).noticeFrame.bytes.bytes == [UInt8(ascii: "N"), 0, 0, 0, 5, 0])
    }

    @Test func roundTripsThroughAFrame() {
        let fields = ErrorNoticeFields(
            severity: "ERROR", sqlState: "42501", message: "permission denied: ünïcode", detail: nil, hint: "ask a dba")
        #expect(ErrorNoticeFields.decode(fields.errorFrame.body) == fields)
        #expect(ErrorNoticeFields.decode(fields.noticeFrame.body) == fields)
        #expect(fields.noticeFrame.type == MessageType.noticeResponse)
    }

    @Test func decodeStopsAtTheTerminatorOrATruncatedField() {
        let body = [UInt8(ascii: "M")] + cString("one") + [0] + [UInt8(ascii: "D")] + cString("ignored")
        #expect(ErrorNoticeFields.decode(ByteBuffer(bytes: body)) == ErrorNoticeFields(fields: [(UInt8(ascii: "M"), "one")]))
        let truncated = [UInt8(ascii: "M")] + cString("one") + [UInt8(ascii: "D")] + Array("no terminator".utf8)
        #expect(ErrorNoticeFields.decode(ByteBuffer(bytes: truncated)) == ErrorNoticeFields(fields: [(UInt8(ascii: "M"), "one")]))
        #expect(ErrorNoticeFields.decode(ByteBuffer()).fields.isEmpty)
    }

    @Test func equalityComparesCodesAndValuesInOrder() {
        let a = ErrorNoticeFields(fields: [(1, "x"), (2, "y")])
        #expect(a == ErrorNoticeFields(fields: [(1, "x"), (2, "y")]))
        #expect(a != ErrorNoticeFields(fields: [(2, "y"), (1, "x")]))
        #expect(a != ErrorNoticeFields(fields: [(1, "x"), (2, "z")]))
        #expect(a != ErrorNoticeFields(fields: [(1, "x")]))
    }
}

@Suite("Wire message builders")
struct WireMessagesTests {
    @Test func readyForQueryIdle() {
        #expect(WireMessages.readyForQuery(status: UInt8(ascii: "I")).bytes.bytes == [0x5A, 0, 0, 0, 5, 0x49])
        #expect(WireMessages.readyForQuery(status: UInt8(ascii: "E")).bytes.bytes == [0x5A, 0, 0, 0, 5, 0x45])
    }

    @Test func terminate() {
        #expect(WireMessages.terminate.bytes.bytes == [0x58, 0, 0, 0, 4])
        #expect(WireMessages.terminate.type == MessageType.terminate)
    }

    @Test func query() {
        #expect(WireMessages.query("select 1").bytes.bytes == [0x51, 0, 0, 0, 13] + Array("select 1".utf8) + [0])
    }

    @Test func passwordMessage() throws {
        let frame = WireMessages.password("md5abc")
        #expect(frame.bytes.bytes == [0x70, 0, 0, 0, 11] + Array("md5abc".utf8) + [0])
        #expect(try WireMessages.decodePassword(frame.body) == "md5abc")
        #expect(try WireMessages.decodePassword(WireMessages.password("").body) == "")
    }

    @Test func malformedPasswordMessagesAreRefused() {
        #expect(
            wireErrorCode { _ = try WireMessages.decodePassword(ByteBuffer(bytes: Array("no-nul".utf8))) } == .malformedMessage)
        #expect(wireErrorCode { _ = try WireMessages.decodePassword(ByteBuffer(bytes: cString("a") + [1])) } == .malformedMessage)
        #expect(wireErrorCode { _ = try WireMessages.decodePassword(ByteBuffer()) } == .malformedMessage)
    }

    @Test func parameterStatus() throws {
        let frame = ParameterStatus(name: "server_version", value: "16.2").frame
        let body = cString("server_version") + cString("16.2")
        #expect(frame.bytes.bytes == [0x53] + be32(Int32(4 + body.count)) + body)
        let decoded = try ParameterStatus.decode(frame.body)
        #expect(decoded.name == "server_version" && decoded.value == "16.2")
        #expect(
            wireErrorCode { _ = try ParameterStatus.decode(ByteBuffer(bytes: cString("name"))) } == .malformedMessage)
    }

    @Test func backendKeyData() throws {
        let frame = BackendKeyData(processID: 0x0102_0304, secretKey: -2).frame
        #expect(frame.bytes.bytes == [0x4B, 0, 0, 0, 12, 1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFE])
        let decoded = try BackendKeyData.decode(frame.body)
        #expect(decoded.processID == 0x0102_0304 && decoded.secretKey == -2)
        #expect(
            wireErrorCode { _ = try BackendKeyData.decode(ByteBuffer(bytes: [0, 0, 0, 1, 0])) } == .malformedMessage)
    }

    @Test func negotiateProtocolVersion() throws {
        let message = NegotiateProtocolVersion(newestMinor: 0, unsupportedOptions: ["_pq_.a", "_pq_.b"])
        let body = be32(196_608) + be32(2) + cString("_pq_.a") + cString("_pq_.b")
        #expect(message.frame.bytes.bytes == [0x76] + be32(Int32(4 + body.count)) + body)
        #expect(try NegotiateProtocolVersion.decode(message.frame.body) == message)
        // A count beyond what the body holds, or an option without its terminator, is refused.
        #expect(
            wireErrorCode { _ = try NegotiateProtocolVersion.decode(ByteBuffer(bytes: be32(196_608) + be32(99))) }
                == .malformedMessage)
        #expect(
            wireErrorCode {
                _ = try NegotiateProtocolVersion.decode(ByteBuffer(bytes: be32(196_608) + be32(1) + Array("_pq_".utf8)))
            } == .malformedMessage)
    }

    @Test func saslMessages() {
        let data = Array("n,,n=,r=abc".utf8)
        let initial = WireMessages.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: data)
        let body = cString("SCRAM-SHA-256") + be32(Int32(data.count)) + data
        #expect(initial.bytes.bytes == [0x70] + be32(Int32(4 + body.count)) + body)
        let response = WireMessages.saslResponse(data: Array("c=biws".utf8))
        #expect(response.bytes.bytes == [0x70, 0, 0, 0, 10] + Array("c=biws".utf8))
    }

    @Test func messageTypeBytes() {
        #expect(MessageType.password == 0x70)
        #expect(MessageType.query == 0x51)
        #expect(MessageType.authentication == 0x52)
        #expect(MessageType.parameterStatus == 0x53)
        #expect(MessageType.backendKeyData == 0x4B)
        #expect(MessageType.readyForQuery == 0x5A)
        #expect(MessageType.errorResponse == 0x45)
        #expect(MessageType.noticeResponse == 0x4E)
        #expect(MessageType.negotiateProtocolVersion == 0x76)
    }
}
