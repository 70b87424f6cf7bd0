import Foundation
@_spi(Fuzzing) import GatehouseProxy
import NIOCore
import PostgresWire
@_spi(Fuzzing) import SQLInspection

/// One input: its first byte picks what reads the rest.
/// - 0: the frontend decoder (startup packet, then frames) as a client's byte stream, in two chunks,
///   then the startup machine and `StartupSettings` on every startup packet it yields;
/// - 1: the parse-tree tape reader on arbitrary bytes;
/// - 2: the inspector (libpg_query, the tape, the walk) on the bytes as text;
/// - 3: the session's statement tracker, the bytes read as messages both ways (`StatementTrackerFuzz`).
enum Fuzz {
    static func run(_ input: UnsafeRawBufferPointer) {
        guard let selector = input.first else { return }
        let rest = UnsafeRawBufferPointer(rebasing: input.dropFirst())
        switch selector % 4 {
        case 0: decode(rest)
        case 1: _ = Inspector.readsAsTape(rest.bindMemory(to: UInt8.self))
        case 3: StatementTrackerFuzz.run(rest)
        default: _ = Inspector.inspect(String(decoding: rest, as: UTF8.self))
        }
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) {
        var decoder = FrontendDecoder(maxMessageLength: 1 << 16)
        var machine = ClientStateMachine(allowPlaintextPasswords: true)
        let split = bytes.isEmpty ? 0 : Int(bytes[0]) % bytes.count
        var buffer = ByteBuffer()
        for chunk in [bytes[..<split], bytes[split...]] {
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: chunk))
            while true {
                guard let input = try? decoder.decode(buffer: &buffer) else { break }
                switch input {
                case .startup(let packet):
                    _ = machine.startupPacket(packet)
                    if case .startup(_, let parameters) = packet { _ = StartupSettings.read(parameters) }
                case .frame(let frame):
                    _ = machine.frame(frame)
                    _ = try? QueryMessage.decode(frame.body)
                    _ = try? ParseMessage.decode(frame.body)
                }
            }
        }
    }
}

#if FUZZING
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// What libFuzzer calls for each input.
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        Fuzz.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }

    /// SwiftPM links an executable's entry point under this name; here it hands over to libFuzzer's driver.
    @_cdecl("gatehouse_fuzz_main")
    public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
        var count = argc
        var arguments = argv
        return runFuzzerDriver(&count, &arguments) { data, size in fuzzOne(data, size) }
    }
#else
    @main
    struct Replay {
        /// Replays the files given (a corpus, or what the fuzzer found): each must run without crashing.
        static func main() throws {
            for path in CommandLine.arguments.dropFirst() {
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                data.withUnsafeBytes { Fuzz.run($0) }
            }
            print("replayed \(CommandLine.arguments.count - 1) inputs")
        }
    }
#endif
