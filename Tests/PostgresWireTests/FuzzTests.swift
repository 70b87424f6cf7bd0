import GatehouseTestSupport
import NIOCore
import PostgresWire
import Testing

/// What feeding one input produced.
struct FuzzOutcome<Output: Equatable>: Equatable {
    var outputs: [Output] = []
    var error: PostgresWireError.Code?
}

/// Feeds `bytes` to `decode` in random chunks, as a channel would, checking after every step that the
/// decoder consumed exactly one whole input (as `consumed` judges it) or nothing at all.
///
/// Stops at the first error, as the connection would. The loop is bounded: a decoder that produced
/// more inputs than there are bytes, or returned an input without consuming, is reported.
func feed<Decoder, Output: Equatable>(
    _ bytes: [UInt8], decoder: inout Decoder, random: inout SplitMix64, maxChunk: Int,
    decode: (inout Decoder, inout ByteBuffer) throws -> Output?,
    check: (Output, _ consumed: ByteBuffer) -> Bool
) -> FuzzOutcome<Output> {
    var outcome = FuzzOutcome<Output>()
    var buffer = ByteBuffer()
    var offset = 0
    while offset < bytes.count {
        let size = Int.random(in: 1...maxChunk, using: &random)
        let end = min(bytes.count, offset + size)
        buffer.writeBytes(bytes[offset..<end])
        offset = end
        // Every productive step consumes at least one byte, so this many steps always suffice.
        let bound = buffer.readableBytes + 1
        var steps = 0
        while true {
            steps += 1
            guard steps <= bound else {
                Issue.record("decoder did not settle: more decode steps than buffered bytes")
                return outcome
            }
            let before = buffer
            do {
                guard let output = try decode(&decoder, &buffer) else {
                    if buffer.readerIndex != before.readerIndex {
                        Issue.record("decoder consumed \(buffer.readerIndex - before.readerIndex) bytes without producing")
                    }
                    break
                }
                let consumedCount = buffer.readerIndex - before.readerIndex
                guard consumedCount > 0 else {
                    Issue.record("decoder produced \(output) without consuming any bytes")
                    return outcome
                }
                let consumed = before.getSlice(at: before.readerIndex, length: consumedCount)!
                if !check(output, consumed) {
                    Issue.record("output \(output) is inconsistent with the \(consumedCount) bytes consumed: \(consumed.bytes)")
                }
                outcome.outputs.append(output)
            } catch let error as PostgresWireError {
                outcome.error = error.code
                return outcome
            } catch {
                Issue.record("decoder threw a foreign error: \(error)")
                return outcome
            }
        }
    }
    return outcome
}

/// A frame is consistent when it is the bytes consumed, its type is the first byte and its length
/// field counts the rest.
func frameIsConsistent(_ frame: PostgresFrame, _ consumed: ByteBuffer, maxMessageLength: Int) -> Bool {
    guard frame.bytes == consumed, consumed.readableBytes >= 5,
        let type = consumed.getInteger(at: consumed.readerIndex, as: UInt8.self),
        let length = consumed.getInteger(at: consumed.readerIndex + 1, as: Int32.self)
    else { return false }
    return type == frame.type && Int(length) == consumed.readableBytes - 1 && length >= 4 && Int(length) <= maxMessageLength
        && frame.body.readableBytes == Int(length) - 4
}

func startupIsConsistent(_ packet: StartupPacket, _ consumed: ByteBuffer) -> Bool {
    guard let length = consumed.getInteger(at: consumed.readerIndex, as: Int32.self),
        let code = consumed.getInteger(at: consumed.readerIndex + 4, as: Int32.self),
        Int(length) == consumed.readableBytes, (8...FrontendDecoder.maxStartupPacketLength).contains(Int(length))
    else { return false }
    switch packet {
    case .sslRequest: return length == 8 && code == StartupPacket.sslRequestCode
    case .gssEncryptionRequest: return length == 8 && code == StartupPacket.gssEncryptionRequestCode
    case .cancel(let processID, let secretKey):
        return length == 16 && code == StartupPacket.cancelRequestCode
            && consumed.getInteger(at: consumed.readerIndex + 8, as: Int32.self) == processID
            && consumed.getInteger(at: consumed.readerIndex + 12, as: Int32.self) == secretKey
    case .startup(let version, let parameters):
        // Each parameter is a key and a value, each ended by a zero byte, then one more zero ends the list.
        let zeros = consumed.readableBytesView.dropFirst(8).filter { $0 == 0 }.count
        return version == code && version >> 16 == 3 && consumed.readableBytesView.last == 0
            && zeros >= 2 * parameters.entries.count + 1
    }
}

/// The frame splitting the protocol specifies, written independently of the decoder.
func referenceFrames(_ bytes: [UInt8], maxMessageLength: Int) -> FuzzOutcome<PostgresFrame> {
    var outcome = FuzzOutcome<PostgresFrame>()
    var index = 0
    while bytes.count - index >= 5 {
        let length = Int32(
            bitPattern: UInt32(bytes[index + 1]) << 24 | UInt32(bytes[index + 2]) << 16 | UInt32(bytes[index + 3]) << 8
                | UInt32(bytes[index + 4]))
        if length < 4 { outcome.error = .messageTooShort; return outcome }
        if Int(length) > maxMessageLength { outcome.error = .messageTooLarge; return outcome }
        guard bytes.count - index >= Int(length) + 1 else { break }
        outcome.outputs.append(
            PostgresFrame(type: bytes[index], bytes: ByteBuffer(bytes: Array(bytes[index..<index + Int(length) + 1]))))
        index += Int(length) + 1
    }
    return outcome
}

/// Random bytes that often look like the start of a frame: plausible lengths, many zeros.
func randomFrameStream(_ random: inout SplitMix64, maxMessageLength: Int) -> [UInt8] {
    var bytes: [UInt8] = []
    let parts = Int.random(in: 0...6, using: &random)
    for _ in 0..<parts {
        switch Int.random(in: 0..<10, using: &random) {
        case 0..<6:
            // A well-formed frame.
            let body = (0..<Int.random(in: 0...40, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            bytes += [UInt8.random(in: 0...255, using: &random)] + be32(Int32(4 + body.count)) + body
        case 6:
            // A length that is too small (often just below the minimum of 4), or negative.
            let length =
                Bool.random(using: &random)
                ? Int32.random(in: -1...3, using: &random) : Int32.random(in: Int32.min...3, using: &random)
            bytes += [UInt8(ascii: "Q")] + be32(length)
        case 7:
            // A length above the limit.
            bytes += [UInt8(ascii: "d")] + be32(Int32.random(in: Int32(maxMessageLength + 1)...Int32.max, using: &random))
        default:
            bytes += (0..<Int.random(in: 0...12, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
        }
    }
    return bytes
}

/// Random bytes shaped like startup packets: plausible lengths and codes, parameters with and
/// without terminators.
func randomStartupStream(_ random: inout SplitMix64) -> [UInt8] {
    var body: [UInt8] = []
    let codes: [Int32] = [
        StartupPacket.protocolVersion3, StartupPacket.protocolVersion3 + 1, StartupPacket.sslRequestCode,
        StartupPacket.gssEncryptionRequestCode, StartupPacket.cancelRequestCode, 0x0002_0000,
        Int32.random(in: Int32.min...Int32.max, using: &random),
    ]
    body += be32(codes[Int.random(in: 0..<codes.count, using: &random)])
    for _ in 0..<Int.random(in: 0...4, using: &random) {
        let word = (0..<Int.random(in: 0...6, using: &random)).map { _ in UInt8.random(in: 97...122, using: &random) }
        body += word
        if Int.random(in: 0..<8, using: &random) != 0 { body.append(0) }
    }
    if Int.random(in: 0..<3, using: &random) != 0 { body.append(0) }
    var length = Int32(4 + body.count)
    switch Int.random(in: 0..<8, using: &random) {
    case 0: length = Int32.random(in: Int32.min...Int32.max, using: &random)
    case 1: length += Int32.random(in: -6...6, using: &random)
    default: break
    }
    var bytes = be32(length) + body
    // Sometimes a frame or garbage follows.
    if Int.random(in: 0..<2, using: &random) == 0 {
        bytes += (0..<Int.random(in: 0...20, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
    }
    return bytes
}

@Suite("Decoder fuzzing")
struct DecoderFuzzTests {
    static let maxMessageLength = 256

    @Test(arguments: [UInt64(1), 2, 3])
    func framePhaseMatchesTheReferenceInAnyChunking(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for _ in 0..<1500 {
            let bytes =
                Int.random(in: 0..<4, using: &random) == 0
                ? (0..<Int.random(in: 0...80, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                : randomFrameStream(&random, maxMessageLength: Self.maxMessageLength)
            let expected = referenceFrames(bytes, maxMessageLength: Self.maxMessageLength)
            var frontend = frontendDecoderInFramePhase(maxMessageLength: Self.maxMessageLength)
            let frontendOutcome = feed(
                bytes, decoder: &frontend, random: &random, maxChunk: Int.random(in: 1...32, using: &random),
                decode: { decoder, buffer -> PostgresFrame? in
                    guard let input = try decoder.decode(buffer: &buffer) else { return nil }
                    guard case .frame(let frame) = input else { Issue.record("startup packet in frame phase"); return nil }
                    return frame
                },
                check: { frameIsConsistent($0, $1, maxMessageLength: Self.maxMessageLength) })
            #expect(frontendOutcome == expected, "seed \(seed), input \(bytes)")

            var backend = BackendDecoder(maxMessageLength: Self.maxMessageLength, expectingSSLResponse: false)
            let backendOutcome = feed(
                bytes, decoder: &backend, random: &random, maxChunk: Int.random(in: 1...32, using: &random),
                decode: { decoder, buffer -> PostgresFrame? in
                    guard let input = try decoder.decode(buffer: &buffer) else { return nil }
                    guard case .frame(let frame) = input else { Issue.record("SSL answer without a request"); return nil }
                    return frame
                },
                check: { frameIsConsistent($0, $1, maxMessageLength: Self.maxMessageLength) })
            #expect(backendOutcome == expected, "seed \(seed), input \(bytes)")
        }
    }

    @Test(arguments: [UInt64(11), 12, 13])
    func startupPhaseNeverMisbehaves(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var produced = 0
        var refused = 0
        for _ in 0..<1500 {
            let bytes =
                Int.random(in: 0..<4, using: &random) == 0
                ? (0..<Int.random(in: 0...60, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                : randomStartupStream(&random) + randomFrameStream(&random, maxMessageLength: Self.maxMessageLength)
            var decoder = FrontendDecoder(maxMessageLength: Self.maxMessageLength)
            let outcome = feed(
                bytes, decoder: &decoder, random: &random, maxChunk: Int.random(in: 1...24, using: &random),
                decode: { decoder, buffer in try decoder.decode(buffer: &buffer) },
                check: { input, consumed in
                    switch input {
                    case .startup(let packet): return startupIsConsistent(packet, consumed)
                    case .frame(let frame): return frameIsConsistent(frame, consumed, maxMessageLength: Self.maxMessageLength)
                    }
                })
            produced += outcome.outputs.count
            if outcome.error != nil { refused += 1 }
            // Typed frames only ever follow a StartupMessage.
            if let firstFrame = outcome.outputs.firstIndex(where: { if case .frame = $0 { true } else { false } }) {
                let startedBefore = outcome.outputs[..<firstFrame].contains {
                    if case .startup(.startup) = $0 { true } else { false }
                }
                #expect(startedBefore, "seed \(seed), input \(bytes)")
            }
        }
        // The generator must reach both the producing and the refusing paths to mean anything.
        #expect(produced > 100)
        #expect(refused > 100)
    }

    @Test(arguments: [UInt64(21), 22])
    func backendWithSSLAnswerNeverMisbehaves(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for _ in 0..<1500 {
            let first: [UInt8] = [[UInt8(ascii: "S")], [UInt8(ascii: "N")], [UInt8.random(in: 0...255, using: &random)]][
                Int.random(in: 0..<3, using: &random)]
            let rest = randomFrameStream(&random, maxMessageLength: Self.maxMessageLength)
            let bytes = first + rest
            var decoder = BackendDecoder(maxMessageLength: Self.maxMessageLength, expectingSSLResponse: true)
            let outcome = feed(
                bytes, decoder: &decoder, random: &random, maxChunk: Int.random(in: 1...24, using: &random),
                decode: { decoder, buffer in try decoder.decode(buffer: &buffer) },
                check: { input, consumed in
                    switch input {
                    case .sslResponse(let accepted):
                        return consumed.bytes == [accepted ? UInt8(ascii: "S") : UInt8(ascii: "N")]
                    case .frame(let frame): return frameIsConsistent(frame, consumed, maxMessageLength: Self.maxMessageLength)
                    }
                })
            switch first[0] {
            case UInt8(ascii: "N"):
                // After a refusal the rest is plain frames, exactly as the reference splits them.
                let reference = referenceFrames(rest, maxMessageLength: Self.maxMessageLength)
                #expect(outcome.outputs == [.sslResponse(accepted: false)] + reference.outputs.map { .frame($0) })
                #expect(outcome.error == reference.error)
            case UInt8(ascii: "S"):
                // Whatever follows 'S' in the same read is refused; in a later read it is framed.
                if outcome.error == .unexpectedDataAfterSSLRequest {
                    #expect(!rest.isEmpty)
                    #expect(outcome.outputs.isEmpty)
                } else {
                    let reference = referenceFrames(rest, maxMessageLength: Self.maxMessageLength)
                    #expect(outcome.outputs == [.sslResponse(accepted: true)] + reference.outputs.map { .frame($0) })
                    #expect(outcome.error == reference.error)
                }
            default:
                #expect(outcome.error == .malformedMessage)
                #expect(outcome.outputs.isEmpty)
            }
        }
    }

    @Test func splitMixIsDeterministic() {
        var a = SplitMix64(seed: 42)
        var b = SplitMix64(seed: 42)
        let first = (0..<5).map { _ in a.next() }
        #expect(first == (0..<5).map { _ in b.next() })
        // The published first output of SplitMix64 seeded with 0.
        var zero = SplitMix64(seed: 0)
        #expect(zero.next() == 0xE220_A839_7B1D_CDAF)
    }
}
