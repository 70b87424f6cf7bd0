import Foundation
import GatehouseGeo
import GatehouseTestSupport
import Testing

@Suite("GeoIP country lookups")
struct GeoIPTests {
    @Test("addresses in the database's networks give their country; others give none")
    func lookups() throws {
        var writer = MMDBWriter()
        writer.add("10.0.0.0/8", country: "FR")
        writer.add("192.0.2.0/24", country: "de")
        writer.add("192.0.2.128/25", country: "NL")
        writer.add("203.0.113.7/32", country: "JP")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("geo-\(UUID().uuidString).mmdb").path
        try writer.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }

        let database = try GeoIPDatabase(path: path)
        #expect(database.country(for: "10.20.30.40") == "FR")
        #expect(database.country(for: "192.0.2.1") == "DE")
        #expect(database.country(for: "::ffff:10.1.1.1") == "FR")
        #expect(database.country(for: "203.0.113.7") == "JP")
        #expect(database.country(for: "203.0.113.8") == nil)
        #expect(database.country(for: "8.8.8.8") == nil)
        #expect(database.country(for: "not an address") == nil)
        // The more specific network written later takes its half of the /24.
        #expect(database.country(for: "192.0.2.200") == "NL")
    }

    @Test("a file that is not a MaxMind database is refused with a clear error")
    func badFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("geo-\(UUID().uuidString).mmdb").path
        try Data("not a database".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: GeoIPDatabase.OpenError.self) { try GeoIPDatabase(path: path) }
        #expect(throws: GeoIPDatabase.OpenError.self) { try GeoIPDatabase(path: path + ".missing") }
    }
}
