import Foundation
import GatehouseCore
import NIOConcurrencyHelpers
import Subprocess
import SystemPackage
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
///
/// Children are spawned with swift-subprocess, which closes the parent's descriptors in the child with
/// `posix_spawn_file_actions_addclosefrom_np`; Foundation's `Process.run` walks `/proc/self/fd` with a
/// 256-byte copy of each entry that reads past glibc's buffer now and then, and crashed the test
/// process when it held many sockets.
enum Command {
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil,
        timeout: Double = 120
    ) async throws -> CommandResult {
        let process = try await start(executable, arguments, environment: environment, stdin: stdin)
        return try await process.wait(timeout: timeout)
    }

    static let unblockAndExec = """
        import os, signal, sys
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.execv(sys.argv[1], sys.argv[1:])
        """

    static func start(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil
    ) async throws -> RunningCommand {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gh-cmd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let out = directory.appendingPathComponent("stdout")
        let err = directory.appendingPathComponent("stderr")
        var inputPath = "/dev/null"
        if let stdin {
            inputPath = directory.appendingPathComponent("stdin").path
            try Data(stdin.utf8).write(to: URL(fileURLWithPath: inputPath))
        }
        let create: FileDescriptor.OpenOptions = [.create, .truncate]
        let output = try FileDescriptor.open(out.path, .writeOnly, options: create, permissions: [.ownerReadWrite])
        let error = try FileDescriptor.open(err.path, .writeOnly, options: create, permissions: [.ownerReadWrite])
        let input = try FileDescriptor.open(inputPath, .readOnly)
        var overrides: [Environment.Key: String?] = [:]
        for (key, value) in environment { overrides[Environment.Key(stringLiteral: key)] = value }
        let running = RunningCommand(
            name: (executable as NSString).lastPathComponent, directory: directory, stdoutFile: out, stderrFile: err)
        // The test runner's threads block most signals and a spawned child inherits that mask, so psql
        // would never see the SIGINT a test sends. Children start through a shim that clears the mask.
        let started = AsyncThrowingStream<pid_t, any Error>.makeStream()
        Task {
            do {
                let result = try await Subprocess.run(
                    .path("/usr/bin/python3"), arguments: Arguments(["-c", Self.unblockAndExec, executable] + arguments),
                    environment: .inherit.updating(overrides),
                    input: .fileDescriptor(input, closeAfterSpawningProcess: true),
                    output: .fileDescriptor(output, closeAfterSpawningProcess: true),
                    error: .fileDescriptor(error, closeAfterSpawningProcess: true)
                ) { execution in
                    started.continuation.yield(execution.processIdentifier.value)
                    started.continuation.finish()
                }
                running.finished(result.terminationStatus)
            } catch {
                started.continuation.finish(throwing: error)
                running.finished(.exited(127))
            }
        }
        guard let pid = try await started.stream.first(where: { _ in true }) else {
            throw HarnessError("\(executable) did not start")
        }
        running.pid = pid
        return running
    }
}

/// A child process, running or finished.
final class RunningCommand: @unchecked Sendable {
    // Safe: `pid` is set once before the value is handed out; the status is behind a lock; the file
    // paths are immutable.
    let name: String
    let directory: URL
    let stdoutFile: URL
    let stderrFile: URL
    fileprivate(set) var pid: pid_t = 0
    private let status = NIOLockedValueBox<TerminationStatus?>(nil)

    fileprivate init(name: String, directory: URL, stdoutFile: URL, stderrFile: URL) {
        self.name = name
        self.directory = directory
        self.stdoutFile = stdoutFile
        self.stderrFile = stderrFile
    }

    fileprivate func finished(_ status: TerminationStatus) {
        self.status.withLockedValue { $0 = status }
    }

    var isRunning: Bool { status.withLockedValue { $0 == nil } }

    /// The exit status, or the signal that ended the process.
    private var terminationStatus: Int32 {
        switch status.withLockedValue({ $0 }) {
        case .exited(let code)?: code
        case .signaled(let signal)?: signal
        case nil: -1
        }
    }

    var stdout: String { (try? String(contentsOf: stdoutFile, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) {
        if isRunning { kill(pid, number) }
    }

    /// Waits for the process to exit; kills it and fails after `timeout` seconds.
    func wait(timeout: Double = 120) async throws -> CommandResult {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning {
            if Date() > deadline {
                signal(SIGKILL)
                throw HarnessError(
                    "\(name) did not finish in \(Int(timeout))s\nstdout: \(stdout)\nstderr: \(stderr)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        defer { try? FileManager.default.removeItem(at: directory) }
        return CommandResult(status: terminationStatus, stdout: stdout, stderr: stderr)
    }

    /// Waits until standard output or error contains `text`.
    func waitForOutput(_ text: String, timeout: Double = 60) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !(stdout.contains(text) || stderr.contains(text)) {
            guard isRunning else {
                let how =
                    if case .signaled? = status.withLockedValue({ $0 }) { "was killed by signal" } else { "exited with status" }
                throw HarnessError(
                    "\(name) \(how) \(terminationStatus) before printing '\(text)'\nstdout: \(stdout)\nstderr: \(stderr)")
            }
            guard Date() < deadline else {
                throw HarnessError("no '\(text)' after \(Int(timeout))s\nstdout: \(stdout)\nstderr: \(stderr)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// A loopback port that refuses connections for the whole test run: bound, so nothing else can take it
/// (a port found free and released could be another gateway's by the time it is dialled), and never
/// listening, so a connection to it is refused.
let refusingPort: Int = {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}()

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
            } catch let error as HarnessError
                where attempt < 3
                && (error.description.contains("no 'Gatehouse is running.'")
                    || error.description.contains("did not start within"))
            {
                // Under the suite's load a gateway now and then never finishes starting: its HTTP listener
                // is never bound, and a thread dump shows no libdispatch worker thread left to run the
                // tasks waiting (a known defect of the gateway's start, not what these tests are about); its
                // start watchdog ends it. The start is tried again, loudly.
                print("harness: gateway start hung, retrying (attempt \(attempt)): \(error.description.prefix(300))")
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
        let downPort = refusingPort
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
        let process = try await Command.start(
            cluster.gatehouse, ["serve", "--config", configFile, "--start-timeout", "45"],
            environment: ["TEST_SCRAM_PASSWORD": cluster.scramPassword, "TEST_TLS_PASSWORD": cluster.tlsPassword])
        self.process = process
        // A hang guard, generous: the whole suite (browsers, pgbench, 40 gateways) shares two cores.
        try await process.waitForOutput("Gatehouse is running.", timeout: 60)
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
        if let process, process.isRunning { process.signal(SIGKILL) }
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
    ) async throws -> RunningCommand {
        try await Command.start(
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

/// Where a test artefact goes: scripts/test keeps them in test-artifacts/, a bare run in scratch. The
/// directory is made.
func testArtifact(_ name: String) throws -> String {
    var directory = ProcessInfo.processInfo.environment["GATEHOUSE_TEST_ARTIFACTS"] ?? ""
    if directory.isEmpty { directory = "\(try TestCluster.fromEnvironment().scratch)/artifacts" }
    let path = "\(directory)/\(name)"
    try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    return path
}

/// A table name no other test uses.
func uniqueTable(_ prefix: String) -> String {
    "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
}
