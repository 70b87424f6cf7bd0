import CMaxMindDB
import Foundation

/// Country lookups in a MaxMind-format database (GeoLite2-Country, GeoIP2-Country, or any .mmdb whose
/// records carry `country.iso_code`).
///
/// Safe to share: libmaxminddb's lookups only read the database it mapped at open.
public final class GeoIPDatabase: @unchecked Sendable {
    /// On the heap, at one address for the object's life: a lookup's result points back at it, and
    /// `&storedProperty` may hand C a temporary copy instead (a crash seen once in a test run).
    private let database: UnsafeMutablePointer<MMDB_s>
    public let path: String

    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(path: String) throws {
        let opened = UnsafeMutablePointer<MMDB_s>.allocate(capacity: 1)
        opened.initialize(to: MMDB_s())
        let status = MMDB_open(path, UInt32(MMDB_MODE_MMAP), opened)
        guard status == MMDB_SUCCESS else {
            opened.deinitialize(count: 1)
            opened.deallocate()
            throw OpenError(description: "cannot open the GeoIP database \(path): \(String(cString: MMDB_strerror(status)))")
        }
        self.path = path
        self.database = opened
    }

    deinit {
        MMDB_close(database)
        database.deinitialize(count: 1)
        database.deallocate()
    }

    /// The ISO 3166 country code for an address, or nil when the database does not know it.
    public func country(for address: String) -> String? {
        var address = address
        if address.hasPrefix("::ffff:"), address.contains(".") { address = String(address.dropFirst("::ffff:".count)) }
        var gaiError: Int32 = 0
        var mmdbError: Int32 = 0
        var result = MMDB_lookup_string(database, address, &gaiError, &mmdbError)
        guard gaiError == 0, mmdbError == MMDB_SUCCESS, result.found_entry else { return nil }
        var data = MMDB_entry_data_s()
        let status = withPathPointers(["country", "iso_code"]) { path in
            MMDB_aget_value(&result.entry, &data, path)
        }
        guard status == MMDB_SUCCESS, data.has_data, data.type == UInt32(MMDB_DATA_TYPE_UTF8_STRING),
            let bytes = data.utf8_string
        else { return nil }
        let buffer = UnsafeRawBufferPointer(start: bytes, count: Int(data.data_size))
        return String(decoding: buffer, as: UTF8.self).uppercased()
    }

    private func withPathPointers<T>(_ path: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> T) -> T {
        let strings = path.map { strdup($0) }
        defer { strings.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = strings.map { UnsafePointer($0) }
        pointers.append(nil)
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
