import Foundation

/// What `gatehouse login` keeps: the server and the login token (file mode 0600).
struct Credentials: Codable {
    var server: String
    var user: String
    var token: String
    var expires_at: String

    static var directory: String {
        if let home = ProcessInfo.processInfo.environment["GATEHOUSE_HOME"], !home.isEmpty { return home }
        let base =
            ProcessInfo.processInfo.environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".config")
        return (base as NSString).appendingPathComponent("gatehouse")
    }

    static var path: String { (directory as NSString).appendingPathComponent("credentials.json") }

    static func load() -> Credentials? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(Credentials.self, from: data)
    }

    func save() throws {
        try FileManager.default.createDirectory(
            atPath: Self.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let data = try JSONEncoder().encode(self)
        guard FileManager.default.createFile(atPath: Self.path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw CLIError("cannot write \(Self.path)")
        }
    }

    static func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    static let defaultServer = "http://127.0.0.1:7070"

    /// The server to talk to: the flag, then $GATEHOUSE_SERVER, then the stored login, then the default.
    static func server(_ flag: String?) -> String {
        if let flag { return flag }
        if let env = ProcessInfo.processInfo.environment["GATEHOUSE_SERVER"], !env.isEmpty { return env }
        return load()?.server ?? defaultServer
    }
}
