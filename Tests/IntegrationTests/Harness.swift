import Foundation
import GatehouseCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A failure of the test set-up itself, reported as a test failure (never a skip).
struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The PostgreSQL cluster and binaries that `scripts/test` provides through the environment.
struct TestCluster: Sendable {
    let port: Int
    let binDirectory: String
    let caFile: String
    let scramPassword: String
    let md5Password: String
    let tlsPassword: String
    let gatehouse: String
    let scratch: String
    /// Where the server's Unix socket is: the superuser `postgres` connects there without a password.
    let socketDirectory: String

    static func fromEnvironment() throws -> TestCluster {
        let environment = ProcessInfo.processInfo.environment
        func value(_ name: String) throws -> String {
            guard let value = environment[name], !value.isEmpty else {
                throw HarnessError(
                    "\(name) is not set: the integration tests need the PostgreSQL cluster that `scripts/test` starts; run them with scripts/test"
                )
            }
            return value
        }
        guard let port = Int(try value("PGCLUSTER_PORT")) else { throw HarnessError("PGCLUSTER_PORT is not a number") }
        return TestCluster(
            port: port, binDirectory: try value("PGCLUSTER_BINDIR"), caFile: try value("PGCLUSTER_CA_FILE"),
            scramPassword: try value("PGCLUSTER_SCRAM_PASSWORD"), md5Password: try value("PGCLUSTER_MD5_PASSWORD"),
            tlsPassword: try value("PGCLUSTER_TLS_PASSWORD"), gatehouse: try value("GATEHOUSE_BINARY"),
            scratch: try value("GATEHOUSE_TEST_SCRATCH"), socketDirectory: try value("PGCLUSTER_SOCKET_DIR"))
    }
}

/// What a finished command printed and returned.
struct CommandResult: Sendable, CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
}

/// Runs commands with their output captured in files (no pipe can fill up and block the child).
enum Command {
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil,
        timeout: Double = 120
    ) async throws -> CommandResult {
        let process = try start(executable, arguments, environment: environment, stdin: stdin)
        return try await process.wait(timeout: timeout)
    }

    static let unblockAndExec = """
        import os, signal, sys
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.execv(sys.argv[1], sys.argv[1:])
        """

    static func start(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil
    ) throws -> RunningCommand {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gh-cmd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let out = directory.appendingPathComponent("stdout")
        let err = directory.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        // The test runner's threads block most signals and a spawned child inherits that mask, so psql
        // would never see the SIGINT a test sends. Children start through a shim that clears the mask.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", Self.unblockAndExec, executable] + arguments
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        if let stdin {
            let input = directory.appendingPathComponent("stdin")
            try Data(stdin.utf8).write(to: input)
            process.standardInput = try FileHandle(forReadingFrom: input)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.run()
        return RunningCommand(
            name: (executable as NSString).lastPathComponent, process: process, directory: directory, stdoutFile: out,
            stderrFile: err)
    }
}

/// A child process that is still running.
final class RunningCommand: @unchecked Sendable {
    // Safe: `Process` is only read after start (isRunning, terminationStatus, signals), which Foundation allows
    // from any thread; the file paths are immutable.
    let name: String
    let process: Process
    let directory: URL
    let stdoutFile: URL
    let stderrFile: URL

    init(name: String, process: Process, directory: URL, stdoutFile: URL, stderrFile: URL) {
        self.name = name
        self.process = process
        self.directory = directory
        self.stdoutFile = stdoutFile
        self.stderrFile = stderrFile
    }

    var stdout: String { (try? String(contentsOf: stdoutFile, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for the process to exit; kills it and fails after `timeout` seconds.
    func wait(timeout: Double = 120) async throws -> CommandResult {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                signal(SIGKILL)
                throw HarnessError(
                    "\(name) did not finish in \(Int(timeout))s\nstdout: \(stdout)\nstderr: \(stderr)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        defer { try? FileManager.default.removeItem(at: directory) }
        return CommandResult(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }

    /// Waits until standard output or error contains `text`.
    func waitForOutput(_ text: String, timeout: Double = 60) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !(stdout.contains(text) || stderr.contains(text)) {
            guard process.isRunning else {
                let how = process.terminationReason == .uncaughtSignal ? "was killed by signal" : "exited with status"
                throw HarnessError(
                    "\(name) \(how) \(process.terminationStatus) before printing '\(text)'\nstdout: \(stdout)\nstderr: \(stderr)")
            }
            guard Date() < deadline else {
                throw HarnessError("no '\(text)' after \(Int(timeout))s\nstdout: \(stdout)\nstderr: \(stderr)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// A free TCP port on 127.0.0.1, found by binding port 0.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw HarnessError("bind() failed") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw HarnessError("getsockname() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A `gatehouse serve` process with its own data directory, config and ports.
final class Gateway: @unchecked Sendable {
    // Safe: every stored property is set once in `start` and only read afterwards.
    static let alicePassword = "alice-correct-horse-battery"
    static let bobPassword = "bob-correct-horse-battery-2"

    let cluster: TestCluster
    let directory: String
    let configFile: String
    let postgresPort: Int
    let httpPort: Int
    private(set) var process: RunningCommand?
    private(set) var adminPassword: String?

    var server: String { "http://127.0.0.1:\(httpPort)" }

    /// Writes a configuration with connections to every role of the test cluster and starts the gateway.
    static func start(extraConfig: String = "") async throws -> Gateway {
        let cluster = try TestCluster.fromEnvironment()
        let directory = "\(cluster.scratch)/gateway-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Free ports are found by binding and releasing them, so another test can take one first: retry.
        var attempt = 0
        while true {
            attempt += 1
            let gateway = Gateway(
                cluster: cluster, directory: "\(directory)-\(attempt)", postgresPort: try freePort(), httpPort: try freePort())
            try FileManager.default.createDirectory(atPath: gateway.directory, withIntermediateDirectories: true)
            try gateway.writeConfig(extraConfig: extraConfig)
            do {
                try await gateway.launch()
                return gateway
            } catch let error as HarnessError where attempt < 3 && error.description.contains("address already in use") {
                continue
            }
        }
    }

    private init(cluster: TestCluster, directory: String, postgresPort: Int, httpPort: Int) {
        self.cluster = cluster
        self.directory = directory
        self.configFile = "\(directory)/gatehouse.yaml"
        self.postgresPort = postgresPort
        self.httpPort = httpPort
    }

    private func writeConfig(extraConfig: String) throws {
        let aliceHash = try PasswordHash.make(password: Self.alicePassword, rounds: PasswordHash.minimumRounds)
        let bobHash = try PasswordHash.make(password: Self.bobPassword, rounds: PasswordHash.minimumRounds)
        let downPort = try freePort()
        try cluster.md5Password.write(toFile: "\(directory)/md5.secret", atomically: true, encoding: .utf8)
        let yaml = """
            listen:
              postgres: 127.0.0.1:\(postgresPort)
              http: 127.0.0.1:\(httpPort)
            data_dir: \(directory)/data
            groups: [developer, dba]
            users:
              - name: alice
                groups: [developer]
                password_hash: "\(aliceHash)"
              - name: bob
                groups: [dba]
                password_hash: "\(bobHash)"
            connections:
              - name: main
                host: 127.0.0.1
                port: \(cluster.port)
                database: app
                user: gh_scram
                password_env: TEST_SCRAM_PASSWORD
              - name: md5
                host: 127.0.0.1
                port: \(cluster.port)
                database: app
                user: gh_md5
                password_file: \(directory)/md5.secret
              - name: trusted
                host: 127.0.0.1
                port: \(cluster.port)
                database: app
                user: gh_trust
                trust: true
              - name: tls
                host: 127.0.0.1
                port: \(cluster.port)
                database: app
                user: gh_tls
                password_env: TEST_TLS_PASSWORD
                tls: verify-full
                ca_file: \(cluster.caFile)
              - name: down
                host: 127.0.0.1
                port: \(downPort)
                database: app
                user: gh_scram
                password_env: TEST_SCRAM_PASSWORD
            \(extraConfig)
            """
        try yaml.write(toFile: configFile, atomically: true, encoding: .utf8)
    }

    /// Starts (or restarts) `gatehouse serve` and waits until both listeners are ready.
    func launch() async throws {
        let process = try Command.start(
            cluster.gatehouse, ["serve", "--config", configFile],
            environment: ["TEST_SCRAM_PASSWORD": cluster.scramPassword, "TEST_TLS_PASSWORD": cluster.tlsPassword])
        self.process = process
        // A hang guard, generous: the whole suite (browsers, pgbench, 40 gateways) shares two cores.
        try await process.waitForOutput("Gatehouse is running.", timeout: 120)
        let output = process.stdout
        if let range = output.range(of: "created administrator 'admin' with password: ") {
            adminPassword = String(output[range.upperBound...].prefix { !$0.isWhitespace })
        }
    }

    /// Stops the gateway with SIGTERM and returns what it printed.
    @discardableResult
    func stop() async throws -> CommandResult {
        guard let process else { throw HarnessError("gateway not running") }
        process.signal(SIGTERM)
        let result = try await process.wait(timeout: 30)
        self.process = nil
        return result
    }

    deinit {
        if let process, process.process.isRunning { process.signal(SIGKILL) }
    }

    // MARK: Clients

    /// A CLI user with their own credentials directory.
    func cli(_ home: String, _ arguments: [String], stdin: String? = nil) async throws -> CommandResult {
        try FileManager.default.createDirectory(atPath: "\(directory)/home-\(home)", withIntermediateDirectories: true)
        return try await Command.run(
            cluster.gatehouse, arguments,
            environment: ["GATEHOUSE_HOME": "\(directory)/home-\(home)", "GATEHOUSE_SERVER": server],
            stdin: stdin)
    }

    /// Logs `user` in through the CLI and returns a fresh access token.
    func token(for user: String, password: String, ttl: String? = nil) async throws -> String {
        let login = try await cli(user, ["login", "--user", user, "--password-stdin"], stdin: password + "\n")
        guard login.status == 0 else { throw HarnessError("login of \(user) failed: \(login)") }
        let token = try await cli(user, ["token"] + (ttl.map { ["--ttl", $0] } ?? []))
        guard token.status == 0 else { throw HarnessError("token for \(user) failed: \(token)") }
        return token.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func aliceToken(ttl: String? = nil) async throws -> String {
        try await token(for: "alice", password: Self.alicePassword, ttl: ttl)
    }

    /// Logs in the bootstrapped administrator under the home `admin`.
    func loginAdmin() async throws {
        guard let adminPassword else { throw HarnessError("the gateway did not print an admin password") }
        let login = try await cli("admin", ["login", "--user", "admin", "--password-stdin"], stdin: adminPassword + "\n")
        guard login.status == 0 else { throw HarnessError("admin login failed: \(login)") }
    }

    func conninfo(connection: String, user: String, sslmode: String = "require") -> String {
        "host=127.0.0.1 port=\(postgresPort) dbname=\(connection) user=\(user) sslmode=\(sslmode) connect_timeout=20"
    }

    /// Runs `psql` through the gateway with `password` (a token) and returns its output.
    func psql(
        connection: String = "main", user: String = "alice", password: String, sslmode: String = "require",
        environment: [String: String] = [:], _ arguments: [String], stdin: String? = nil
    ) async throws -> CommandResult {
        try await Command.run(
            "\(cluster.binDirectory)/psql",
            [conninfo(connection: connection, user: user, sslmode: sslmode), "-X", "-v", "ON_ERROR_STOP=1", "-At"] + arguments,
            environment: ["PGPASSWORD": password, "PGAPPNAME": "integration-test"].merging(environment) { $1 }, stdin: stdin)
    }

    func startPsql(
        connection: String = "main", user: String = "alice", password: String, _ arguments: [String]
    ) throws -> RunningCommand {
        try Command.start(
            "\(cluster.binDirectory)/psql",
            [conninfo(connection: connection, user: user), "-X", "-v", "ON_ERROR_STOP=1", "-At"] + arguments,
            environment: ["PGPASSWORD": password, "PGAPPNAME": "integration-test"])
    }

    /// The gateway's SQLite state store.
    var storePath: String { "\(directory)/data/gatehouse.db" }
}

extension TestCluster {
    /// Runs SQL as the superuser on database `app`, straight to the server, to set up and check state.
    func superuser(_ sql: String) async throws -> CommandResult {
        try await Command.run(
            "\(binDirectory)/psql",
            ["-h", socketDirectory, "-p", String(port), "-U", "postgres", "-d", "app", "-X", "-At", "-v", "ON_ERROR_STOP=1"],
            environment: [:], stdin: sql)
    }

    /// `superuser`, failing the test when the SQL fails; returns its output.
    @discardableResult
    func must(_ sql: String) async throws -> String {
        let result = try await superuser(sql)
        guard result.status == 0 else { throw HarnessError("superuser SQL failed: \(sql)\n\(result)") }
        return result.stdout
    }
}

/// A table name no other test uses.
func uniqueTable(_ prefix: String) -> String {
    "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
}
