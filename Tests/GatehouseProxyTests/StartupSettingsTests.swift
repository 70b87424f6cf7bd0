import NIOCore
import PostgresWire
import Testing

@testable import GatehouseProxy

@Suite("Startup settings, read as the server reads them")
struct StartupSettingsTests {
    private func read(_ entries: [(String, String)]) -> Result<StartupSettings, StartupSettings.Refusal> {
        StartupSettings.read(StartupParameters(entries.map { (name: $0.0, value: $0.1) }))
    }

    @Test("options are split as pg_split_opts splits them")
    func splitting() {
        #expect(StartupSettings.splitOptions("  -c a=1\t-cb=2 \n --c-d=3 ") == ["-c", "a=1", "-cb=2", "--c-d=3"])
        #expect(StartupSettings.splitOptions(#"-c search_path=a\ b -c x=\\y\"#) == ["-c", "search_path=a b", "-c", #"x=\y"#])
        #expect(StartupSettings.splitOptions("\u{0B}-c\u{0C}x=1") == ["-c", "x=1"])
        #expect(StartupSettings.splitOptions("") == [])
    }

    @Test(
        "every spelling of a role in options or keys is judged",
        arguments: [
            [("options", "-c role=powerful")], [("options", "-crole=powerful")], [("options", "--role=powerful")],
            [("options", "-c ROLE=powerful")], [("role", "powerful")],
            [("ROLE", "powerful")], [("Role", "x"), ("role", "powerful")], [("options", "-c datestyle=iso -c role=powerful")],
            [("options", "--session-authorization=powerful")],
        ])
    func judged(entries: [(String, String)]) throws {
        let settings = try read(entries).get()
        let last = try #require(settings.judged.last)
        #expect(["role", "session_authorization"].contains(last.name))
        #expect(last.value == "powerful")
        #expect(last.statement.hasPrefix("SET \"\(last.name)\" TO 'powerful'"))
    }

    @Test("the statement judged quotes what the client wrote")
    func quoting() throws {
        let settings = try read([("work\"mem", "1'; DROP TABLE t; --")]).get()
        #expect(settings.judged.first?.statement == #"SET "work""mem" TO '1''; DROP TABLE t; --'"#)
    }

    @Test(
        "switches other than settings, and settings without a value, are refused",
        arguments: ["-e", "-B 100", "-c", "-c role", "--role", "-P", "foo", "-S 1", "-c =x", "-- -c role=x", "-ec role=x"])
    func refusedSwitches(options: String) {
        guard case .failure(let refusal) = read([("options", options)]) else {
            Issue.record("\(options) was accepted")
            return
        }
        #expect(refusal.sqlState == "42501")
    }

    @Test(
        "encodings and string modes other than the pinned ones are refused",
        arguments: [
            ("client_encoding", "SJIS"), ("client_encoding", "GBK"), ("CLIENT_ENCODING", "gb18030"),
            ("client_encoding", "BIG5"), ("options", "-c client_encoding=SJIS"), ("options", "--client-encoding=GBK"),
            ("standard_conforming_strings", "off"), ("options", "-c standard_conforming_strings=0"),
            ("Standard_Conforming_Strings", "of"), ("User", "x"), ("options", "-c options=x"), ("Database", "y"),
        ])
    func refusedSettings(name: String, value: String) {
        guard case .failure(let refusal) = read([(name, value)]) else {
            Issue.record("\(name)=\(value) was accepted")
            return
        }
        #expect(!refusal.message.isEmpty)
    }

    @Test("the upstream startup holds the allowed settings, never options, and the pins last")
    func upstream() throws {
        let settings = try read([
            ("client_encoding", "SQL_ASCII"), ("application_name", "psql"), ("options", "-c datestyle=ISO --search-path=x"),
            ("TimeZone", "UTC"), ("standard_conforming_strings", "on"),
        ]).get()
        #expect(settings.allowed.map(\.name) == ["datestyle", "application_name", "timezone"])
        #expect(settings.judged.map(\.name) == ["search_path"])
        let upstream = settings.upstream(defaultApplicationName: "gatehouse")
        #expect(
            upstream.entries.map { "\($0.name)=\($0.value)" } == [
                "datestyle=ISO", "application_name=psql", "timezone=UTC", "search_path=x", "client_encoding=UTF8",
                "standard_conforming_strings=on",
            ])
        let bare = try read([]).get().upstream(defaultApplicationName: "gatehouse")
        #expect(bare["application_name"] == "gatehouse" && bare["options"] == nil)
    }

    @Test("duplicates keep the server's order: options first, then keys as sent")
    func duplicates() throws {
        let settings = try read([("timezone", "A"), ("options", "-c timezone=B"), ("TimeZone", "C")]).get()
        #expect(settings.allowed.map(\.value) == ["B", "A", "C"])
        // Only the last `options` applies, as in the server.
        let last = try read([("options", "-c role=x"), ("options", "-c datestyle=ISO")]).get()
        #expect(last.judged.isEmpty && last.allowed.map(\.name) == ["datestyle"])
    }
}

@Suite("The server's reports of pinned settings")
struct PinWatchTests {
    @Test("a report of another encoding or string mode breaks the pins; the pinned values and other settings do not")
    func reports() {
        #expect(StatementGuard.pinViolation(ParameterStatus(name: "client_encoding", value: "SJIS").frame) != nil)
        #expect(
            StatementGuard.pinViolation(ParameterStatus(name: "standard_conforming_strings", value: "off").frame) != nil)
        #expect(StatementGuard.pinViolation(ParameterStatus(name: "client_encoding", value: "UTF8").frame) == nil)
        #expect(
            StatementGuard.pinViolation(ParameterStatus(name: "standard_conforming_strings", value: "on").frame) == nil)
        #expect(StatementGuard.pinViolation(ParameterStatus(name: "TimeZone", value: "SJIS").frame) == nil)
        #expect(StatementGuard.pinViolation(PostgresFrame(type: MessageType.parameterStatus, body: ByteBuffer())) != nil)
    }
}
