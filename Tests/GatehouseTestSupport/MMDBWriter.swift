import Foundation

/// Writes a small IPv4 MaxMind DB (format 2.0) whose records are `{"country": {"iso_code": CODE}}`,
/// so tests can exercise country rules without a commercial database.
public struct MMDBWriter {
    private var networks: [(address: [UInt8], prefix: Int, country: String)] = []

    public init() {}

    /// Maps an IPv4 network such as "127.0.0.0/8" to a country code.
    public mutating func add(_ cidr: String, country: String) {
        let parts = cidr.split(separator: "/")
        let address = parts[0].split(separator: ".").map { UInt8($0)! }
        precondition(address.count == 4, "IPv4 only")
        networks.append((address, parts.count == 2 ? Int(parts[1])! : 32, country))
    }

    private enum Record {
        case empty
        case node(Int)
        case data(Int)
    }

    public func data() -> Data {
        // The search tree: one node per bit of every prefix; a record leads to a node, to data or nowhere.
        var nodes: [[Record]] = [[.empty, .empty]]
        var dataSection: [UInt8] = []
        for network in networks {
            let offset = dataSection.count
            dataSection += Self.map([("country", Self.map([("iso_code", Self.string(network.country))]))])
            var node = 0
            for depth in 0..<network.prefix {
                let bit = Int((network.address[depth / 8] >> (7 - UInt8(depth % 8))) & 1)
                if depth == network.prefix - 1 {
                    nodes[node][bit] = .data(offset)
                } else if case .node(let next) = nodes[node][bit] {
                    node = next
                } else {
                    // A wider network ending here keeps the half this one does not cover.
                    let inherited = nodes[node][bit]
                    nodes.append([inherited, inherited])
                    nodes[node][bit] = .node(nodes.count - 1)
                    node = nodes.count - 1
                }
            }
        }
        let nodeCount = nodes.count
        var output: [UInt8] = []
        for node in nodes {
            for record in node {
                let value: Int
                switch record {
                case .empty: value = nodeCount
                case .node(let index): value = index
                case .data(let offset): value = nodeCount + 16 + offset
                }
                output += [UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
            }
        }
        output += [UInt8](repeating: 0, count: 16)
        output += dataSection
        output += [0xAB, 0xCD, 0xEF] + Array("MaxMind.com".utf8)
        output += Self.map([
            ("binary_format_major_version", Self.unsigned(2, type: 5)),
            ("binary_format_minor_version", Self.unsigned(0, type: 5)),
            ("build_epoch", Self.uint64(UInt64(Date().timeIntervalSince1970))),
            ("database_type", Self.string("Gatehouse-Test-Country")),
            ("description", Self.map([("en", Self.string("Gatehouse test database"))])),
            ("ip_version", Self.unsigned(4, type: 5)),
            ("languages", Self.array([Self.string("en")])),
            ("node_count", Self.unsigned(UInt64(nodeCount), type: 6)),
            ("record_size", Self.unsigned(24, type: 5)),
        ])
        return Data(output)
    }

    public func write(to path: String) throws {
        try data().write(to: URL(fileURLWithPath: path))
    }

    // MARK: Data section encoding

    static func control(type: Int, size: Int) -> [UInt8] {
        precondition(size < 29)
        if type <= 7 { return [UInt8(type << 5 | size)] }
        return [UInt8(size), UInt8(type - 7)]
    }

    static func string(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        return control(type: 2, size: bytes.count) + bytes
    }

    static func bigEndian(_ value: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        var rest = value
        while rest > 0 {
            bytes.insert(UInt8(rest & 0xff), at: 0)
            rest >>= 8
        }
        return bytes
    }

    /// uint16 (type 5) or uint32 (type 6).
    static func unsigned(_ value: UInt64, type: Int) -> [UInt8] {
        let bytes = bigEndian(value)
        return control(type: type, size: bytes.count) + bytes
    }

    static func uint64(_ value: UInt64) -> [UInt8] {
        let bytes = bigEndian(value)
        return control(type: 9, size: bytes.count) + bytes
    }

    static func map(_ pairs: [(String, [UInt8])]) -> [UInt8] {
        control(type: 7, size: pairs.count) + pairs.flatMap { string($0.0) + $0.1 }
    }

    static func array(_ items: [[UInt8]]) -> [UInt8] {
        control(type: 11, size: items.count) + items.flatMap { $0 }
    }
}
