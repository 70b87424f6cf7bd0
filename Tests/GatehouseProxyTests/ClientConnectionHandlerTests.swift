import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseCore
import GatehouseSessions
import GatehouseStore
import Logging
import NIOCore
import NIOEmbedded
import PostgresWire
import Testing

@testable import GatehouseProxy

/// The client handler on a testing channel, with a real store and token service: what it writes for
/// each kind of startup, and what the audit log holds afterwards. (Whole sessions through a real
/// PostgreSQL are the integration tests'.)
@Suite("Client connection handler on a testing channel")
struct ClientConnectionHandlerTests {
    /// One gateway's environment on a temporary store.
    struct Fixture {
        let directory: String
        let environment: ProxyEnvironment
        var store: any GatehouseStore { environment.store }

        static func make(configure: (inout GatehouseConfig) -> Void = { _ in }) async throws -> Fixture {
            let directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("gatehouse-proxy-\(UUID().uuidString)")
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let store = try await SQLiteStore.open(path: (directory as NSString).appendingPathComponent("gatehouse.db"))
            try await store.saveUser(
                StoredUser(user: User(name: "alice", groups: ["developer"]), source: .config, passwordHash: nil))
            var config = GatehouseConfig()
            configure(&config)
            let environment = ProxyEnvironment(
                config: config, tokens: try await TokenService(signingKey: Array(repeating: 7, count: 32), store: store),
                identities: IdentityService(store: store), store: store, registry: SessionRegistry(),
                guardrails: Guardrails(policy: config.policy), clientTLS: nil, upstreamTLS: [:],
                logger: Logger(label: "gatehouse.test"))
            return Fixture(directory: directory, environment: environment)
        }

        /// A channel with the listener's pipeline, connected from `source`.
        func channel(from source: String) async throws -> NIOAsyncTestingChannel {
            let channel = NIOAsyncTestingChannel()
            let (environment, address) = (environment, try SocketAddress(ipAddress: source, port: 50_000))
            try await channel.testingEventLoop.executeInContext {
                try channel.pipeline.syncOperations.addHandler(
                    ClientConnectionHandler(environment: environment, remoteAddress: address, eventLoop: channel.eventLoop))
            }
            try await channel.connect(to: address)
            return channel
        }

        func close() async throws {
            try await store.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    static func startup(user: String, database: String = "main") -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(Int32(196_608))
        for (name, value) in [("user", user), ("database", database)] {
            body.writeNullTerminatedString(name)
            body.writeNullTerminatedString(value)
        }
        body.writeInteger(UInt8(0))
        var packet = ByteBuffer()
        packet.writeInteger(Int32(body.readableBytes + 4))
        packet.writeImmutableBuffer(body)
        return packet
    }

    static func password(_ text: String) -> ByteBuffer {
        var packet = ByteBuffer()
        packet.writeInteger(UInt8(ascii: "p"))
        packet.writeInteger(Int32(text.utf8.count + 5))
        packet.writeNullTerminatedString(text)
        return packet
    }

    /// The next frame the handler writes: its type and body.
    static func nextFrame(_ channel: NIOAsyncTestingChannel) async throws -> (type: UInt8, body: ByteBuffer) {
        var buffer = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
        let type = buffer.readInteger(as: UInt8.self)!
        let length = Int(buffer.readInteger(as: Int32.self)!)
        return (type, buffer.readSlice(length: length - 4)!)
    }

    @Test("a token without TLS from another host is refused before the password is asked for, and the channel closes")
    func plaintextFromAnotherHost() async throws {
        let fixture = try await Fixture.make()
        let channel = try await fixture.channel(from: "10.1.2.3")
        try await channel.writeInbound(Self.startup(user: "alice"))
        let frame = try await Self.nextFrame(channel)
        #expect(frame.type == UInt8(ascii: "E"))
        #expect(ErrorNoticeFields.decode(frame.body) == ClientMessage.tokensOnlyOverTLS.fields)
        try await channel.closeFuture.get()
        try await fixture.close()
    }

    @Test("a bad token is refused with FATAL 28P01, and the refusal is in the audit log")
    func badTokenIsAudited() async throws {
        let fixture = try await Fixture.make()
        let channel = try await fixture.channel(from: "127.0.0.1")
        try await channel.writeInbound(Self.startup(user: "alice"))
        let ask = try await Self.nextFrame(channel)
        #expect(ask.type == UInt8(ascii: "R"))
        #expect(ask.body.getInteger(at: ask.body.readerIndex, as: Int32.self) == 3)  // cleartext password
        try await channel.writeInbound(Self.password("not-a-token"))
        let frame = try await Self.nextFrame(channel)
        let fields = ErrorNoticeFields.decode(frame.body)
        #expect(frame.type == UInt8(ascii: "E"))
        #expect(fields["S"] == "FATAL")
        #expect(fields.sqlState == ClientMessage.Code.invalidPassword, "\(fields)")
        try await channel.closeFuture.get()
        let events = try await fixture.store.latestAuditEvents(count: 10)
        let failure = try #require(events.first { $0.type == AuditEventType.authFailure.rawValue })
        #expect(failure.actor == "alice")
        #expect(failure.detail["source"] == nil || failure.detail["source"] == "127.0.0.1")
        try await fixture.close()
    }

    @Test("no place left for a connection waiting to authenticate: FATAL at once, nothing read")
    func unauthenticatedLimit() async throws {
        let fixture = try await Fixture.make { $0.limits.maxUnauthenticatedConnections = 0 }
        let channel = try await fixture.channel(from: "10.1.2.3")
        let frame = try await Self.nextFrame(channel)
        #expect(ErrorNoticeFields.decode(frame.body) == ClientMessage.tooManyAuthenticating(.total(0)).fields)
        try await channel.closeFuture.get()
        try await fixture.close()
    }

    @Test("a frame the decoder refuses ends the connection with a protocol violation")
    func malformedFrame() async throws {
        let fixture = try await Fixture.make()
        let channel = try await fixture.channel(from: "127.0.0.1")
        try await channel.writeInbound(Self.startup(user: "alice"))
        _ = try await Self.nextFrame(channel)
        var bad = ByteBuffer()
        bad.writeInteger(UInt8(ascii: "p"))
        bad.writeInteger(Int32(2))  // shorter than its own length field
        // The handler decodes its input itself: the error ends the connection, it is not thrown back at the writer.
        try await channel.writeInbound(bad)
        let frame = try await Self.nextFrame(channel)
        let fields = ErrorNoticeFields.decode(frame.body)
        #expect(fields["S"] == "FATAL")
        #expect(fields.sqlState == "08P01", "\(fields)")
        try await channel.closeFuture.get()
        // Nothing was admitted: no session started, no place left taken.
        #expect(fixture.environment.registry.list().isEmpty)
        let events = try await fixture.store.latestAuditEvents(count: 10)
        #expect(!events.contains { $0.type == AuditEventType.sessionStart.rawValue })
        try await fixture.close()
    }

    @Test("input split anywhere is put together: a startup packet and a password arriving a byte at a time")
    func inputSplitAnywhere() async throws {
        let fixture = try await Fixture.make()
        let channel = try await fixture.channel(from: "127.0.0.1")
        for byte in Self.startup(user: "alice").readableBytesView {
            try await channel.writeInbound(ByteBuffer(integer: byte))
        }
        let ask = try await Self.nextFrame(channel)
        #expect(ask.type == UInt8(ascii: "R"))
        for byte in Self.password("not-a-token").readableBytesView {
            try await channel.writeInbound(ByteBuffer(integer: byte))
        }
        let frame = try await Self.nextFrame(channel)
        #expect(ErrorNoticeFields.decode(frame.body).sqlState == ClientMessage.Code.invalidPassword)
        try await channel.closeFuture.get()
        try await fixture.close()
    }
}
