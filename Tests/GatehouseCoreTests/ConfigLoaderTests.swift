import Foundation
import GatehouseConfig
import GatehouseConfigYAML
import GatehouseCore
import Testing

/// A fresh directory under the system temporary directory, removed when the test's value goes away.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("gatehouse-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    @discardableResult
    func write(_ name: String, _ contents: String) throws -> String {
        let file = (path as NSString).appendingPathComponent(name)
        try contents.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}

/// Parses `yaml` and returns the error it must produce.
func configError(
    _ yaml: String, environment: [String: String] = [:], baseDirectory: String = "/nonexistent-base",
    file: String = "gatehouse.yaml"
) -> ConfigError? {
    do {
        _ = try ConfigLoader(environment: environment, baseDirectory: baseDirectory).parse(yaml, file: file)
        return nil
    } catch let error as ConfigError {
        return error
    } catch {
        Issue.record("unexpected error type \(type(of: error)): \(error)")
        return nil
    }
}

@Suite("Configuration loader")
struct ConfigLoaderTests {
    static let minimalConnection = """
        connections:
          - name: app
            host: db
            database: app
            user: app
            trust: true
        """

    // MARK: Defaults

    @Test func embeddedDefaultsLoadWithTheDemoPassword() throws {
        let config = try ConfigLoader(environment: ["GATEHOUSE_DEMO_PG_PASSWORD": "demo-secret"], baseDirectory: "/srv/gh")
            .parse(DefaultConfig.yaml, file: DefaultConfig.name)
        #expect(config.postgresListen == HostPort(host: "127.0.0.1", port: 6432))
        #expect(config.httpListen == HostPort(host: "127.0.0.1", port: 7070))
        #expect(config.dataDirectory == "/srv/gh/.gatehouse")
        #expect(config.sqlitePath == "/srv/gh/.gatehouse/gatehouse.db")
        #expect(config.groups == ["developer", "dba", "admins", "auditors"])
        #expect(config.users == [UserEntry(name: "demo", groups: ["developer"])])
        let demo = try #require(config.connection(named: "demo"))
        #expect(demo.host == "127.0.0.1")
        #expect(demo.port == 5432)
        #expect(demo.database == "app")
        #expect(demo.user == "gh_scram")
        #expect(demo.password == "demo-secret")
        #expect(demo.tls == .disable)
        #expect(config.connections.count == 1)
        #expect(config.tokens == TokenSettings())
        #expect(config.limits == Limits())
        #expect(config.clientTLS == ClientTLS())
    }

    @Test func embeddedDefaultsFollowTheEnvironment() throws {
        let config = try ConfigLoader(
            environment: [
                "GATEHOUSE_DEMO_PG_PASSWORD": "pw", "GATEHOUSE_DEMO_PG_PORT": "55432", "GATEHOUSE_PG_LISTEN": "0.0.0.0:16432",
                "GATEHOUSE_DATA_DIR": "/var/lib/gatehouse", "GATEHOUSE_DEMO_PG_USER": "other",
            ], baseDirectory: "/srv"
        ).parse(DefaultConfig.yaml, file: DefaultConfig.name)
        #expect(config.connections.first?.port == 55432)
        #expect(config.connections.first?.user == "other")
        #expect(config.postgresListen == HostPort(host: "0.0.0.0", port: 16432))
        #expect(config.dataDirectory == "/var/lib/gatehouse")
    }

    @Test func embeddedDefaultsNeedTheDemoPassword() throws {
        let error = try #require(configError(DefaultConfig.yaml, file: DefaultConfig.name))
        #expect(error.file == DefaultConfig.name)
        #expect(error.line == 16)
        #expect(error.reason.contains("GATEHOUSE_DEMO_PG_PASSWORD"))
        #expect(error.description.hasPrefix("<embedded defaults>:16: "))
    }

    @Test func adminsAndAuditorsAreBuiltInGroups() throws {
        let config = try ConfigLoader(baseDirectory: "/srv/gh").parse(
            """
            users:
              - {name: ada, groups: [admins]}
              - {name: carol, groups: [auditors]}
            """, file: "gatehouse.yaml")
        #expect(config.groups.contains("admins") && config.groups.contains("auditors"))
        #expect(config.users.map(\.groups) == [["admins"], ["auditors"]])
        #expect(
            configError("users:\n  - {name: eve, groups: [auditor]}")?.description.contains("group 'auditor' is not declared")
                == true)
    }

    @Test func codeDefaultsAreTheDocumentedOnes() {
        let config = GatehouseConfig()
        #expect(config.postgresListen.description == "127.0.0.1:6432")
        #expect(config.httpListen.description == "127.0.0.1:7070")
        #expect(config.tokens.accessTokenTTL == 900)
        #expect(config.tokens.maxAccessTokenTTL == 43200)
        #expect(config.limits.authenticationTimeout == 30)
        #expect(!config.clientTLS.allowPlaintextPasswords)
        #expect(config.sqlitePath == ".gatehouse/gatehouse.db")
    }

    // MARK: A complete file

    @Test func fullConfigurationLoadsEveryField() throws {
        let directory = try TemporaryDirectory()
        try directory.write("cert.pem", "CERT")
        try directory.write("key.pem", "KEY")
        try directory.write("ca.pem", "CA")
        try directory.write("reports.secret", "file-secret\n")
        let hash = "pbkdf2-sha256$210000$AAECAwQFBgcICQoLDA0ODw$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6w"
        let yaml = """
            # A complete configuration.
            listen:
              postgres: 0.0.0.0:6543
              http: "[::1]:8080"
            data_dir: state
            store: sqlite:/var/lib/gatehouse/state.db
            tls:
              cert_file: cert.pem
              key_file: \(directory.path)/key.pem
              allow_plaintext_passwords: yes
            tokens:
              access_ttl: 10m
              max_access_ttl: 2h
              login_ttl: 1d
            limits:
              max_message_bytes: 1048576
              authentication_timeout: 45s
              upstream_connect_timeout: 1m30s
            groups: [developer, dba]
            users:
              - name: alice
                groups: [developer, admins]
                password_hash: \(hash)
                expires: 2026-12-31T18:00:00Z
              - name: bob
                groups:
                  - dba
                expires: 2027-01-01
              - name: carol
            connections:
              - name: app
                host: db.internal
                port: 5433
                database: appdb
                user: app_rw
                password_env: APP_PG_PASSWORD
                tls: verify-full
                ca_file: ca.pem
              - name: reports
                host: 10.0.0.5
                database: reports
                user: reader
                password_file: reports.secret
                tls: require
              - name: trusted
                host: localhost
                database: t
                user: t
                trust: true
            """
        let config = try ConfigLoader(environment: ["APP_PG_PASSWORD": "env-secret"], baseDirectory: directory.path)
            .parse(yaml, file: "full.yaml")
        let base = directory.path as NSString
        #expect(config.postgresListen == HostPort(host: "0.0.0.0", port: 6543))
        #expect(config.httpListen == HostPort(host: "::1", port: 8080))
        #expect(config.httpListen.description == "[::1]:8080")
        #expect(config.dataDirectory == base.appendingPathComponent("state"))
        #expect(config.storeURL == "sqlite:/var/lib/gatehouse/state.db")
        #expect(config.sqlitePath == "/var/lib/gatehouse/state.db")
        #expect(config.clientTLS.certificateFile == base.appendingPathComponent("cert.pem"))
        #expect(config.clientTLS.keyFile == base.appendingPathComponent("key.pem"))
        #expect(config.clientTLS.allowPlaintextPasswords)
        #expect(config.tokens.accessTokenTTL == 600)
        #expect(config.tokens.maxAccessTokenTTL == 7200)
        #expect(config.tokens.loginTTL == 86400)
        #expect(config.limits.maxMessageBytes == 1_048_576)
        #expect(config.limits.authenticationTimeout == 45)
        #expect(config.limits.upstreamConnectTimeout == 90)
        #expect(config.groups == ["developer", "dba", "admins", "auditors"])
        #expect(
            config.users == [
                UserEntry(
                    name: "alice", groups: ["developer", "admins"], passwordHash: hash,
                    expiresAt: Date(timeIntervalSince1970: 1_798_740_000)),
                UserEntry(name: "bob", groups: ["dba"], expiresAt: Date(timeIntervalSince1970: 1_798_761_600)),
                UserEntry(name: "carol", groups: []),
            ])

        var app = Connection(
            name: "app", host: "db.internal", port: 5433, database: "appdb", user: "app_rw", password: "env-secret")
        app.tls = .verifyFull
        app.caFile = base.appendingPathComponent("ca.pem")
        var reports = Connection(name: "reports", host: "10.0.0.5", database: "reports", user: "reader", password: "file-secret")
        reports.tls = .require
        let trusted = Connection(name: "trusted", host: "localhost", database: "t", user: "t", password: nil)
        #expect(config.connections == [app, reports, trusted])
        #expect(config.connection(named: "reports") == reports)
        #expect(config.connection(named: "missing") == nil)
    }

    @Test func loadReadsAFileAndResolvesPathsBesideIt() throws {
        let directory = try TemporaryDirectory()
        try directory.write("pg.secret", "from-file\n\n")
        let path = try directory.write(
            "gatehouse.yaml",
            """
            data_dir: data
            connections:
              - name: app
                host: db
                database: app
                user: app
                password_file: pg.secret
            """)
        let config = try ConfigLoader.load(path: path, environment: [:])
        #expect(config.dataDirectory == (directory.path as NSString).appendingPathComponent("data"))
        #expect(config.connections.first?.password == "from-file")
    }

    @Test func loadReportsAnUnreadableFile() {
        let path = "/nonexistent-\(UUID().uuidString)/gatehouse.yaml"
        #expect {
            try ConfigLoader.load(path: path, environment: [:])
        } throws: { error in
            guard let error = error as? ConfigError else { return false }
            return error.file == path && error.line == nil && error.description.hasPrefix("\(path): cannot read the file")
        }
    }

    @Test func emptyFileIsRefused() throws {
        let error = try #require(configError(""))
        #expect(error.reason == "the file is empty")
        #expect(error.description == "gatehouse.yaml: the file is empty")
    }

    @Test func invalidYAMLReportsItsLine() throws {
        let error = try #require(configError("listen:\n  postgres: 127.0.0.1:6432\n  http: [unclosed\n"))
        #expect(error.reason.hasPrefix("not valid YAML"))
        #expect(error.line != nil)
    }

    @Test func errorDescriptionIsFileLineReason() throws {
        let error = try #require(configError("data_dir: x\nbogus: 1\n", file: "conf/a.yaml"))
        #expect(error.description == "conf/a.yaml:2: \(error.reason)")
        #expect(error.file == "conf/a.yaml")
    }

    // MARK: Errors with their lines

    @Test func unknownTopLevelKey() throws {
        let error = try #require(configError("data_dir: x\nlisten:\n  postgres: 127.0.0.1:1\nlisen: {}\n"))
        #expect(error.line == 4)
        #expect(error.reason.hasPrefix("unknown key 'lisen' in the configuration"))
        #expect(error.description.hasPrefix("gatehouse.yaml:4: unknown key 'lisen'"))
    }

    @Test func unknownKeyInAConnection() throws {
        let yaml = """
            groups: [dev]
            connections:
              - name: app
                host: db
                database: app
                user: app
                trust: true
                passwrd: oops
            """
        let error = try #require(configError(yaml))
        #expect(error.line == 8)
        #expect(error.reason.hasPrefix("unknown key 'passwrd' in a connection"))
        #expect(error.reason.contains("password_env"), "the message lists the allowed keys")
    }

    @Test func unknownKeyInAUser() throws {
        let error = try #require(configError("users:\n  - name: alice\n    group: [dba]\n"))
        #expect(error.line == 3)
        #expect(error.reason.hasPrefix("unknown key 'group' in a user"))
    }

    @Test func duplicateTopLevelKey() throws {
        let yaml = """
            data_dir: one
            groups: [dev]
            data_dir: two
            """
        let error = try #require(configError(yaml))
        #expect(error.line == 3)
        #expect(error.reason.contains("data_dir"))
        #expect(error.reason.contains("twice"))
        #expect(!error.reason.contains("\n"), "one line, without the file's text")
    }

    @Test func duplicateKeyInAConnection() throws {
        let yaml = """
            connections:
              - name: app
                host: db
                database: app
                user: app
                host: other
                trust: true
            """
        let error = try #require(configError(yaml))
        #expect(error.line == 6)
        #expect(error.reason.contains("'host'"))
        #expect(error.reason.contains("twice"))
    }

    @Test(arguments: [
        ("70000", "between 1 and 65535"), ("0", "between 1 and 65535"), ("abc", "whole number"), ("5432.5", "whole number"),
    ])
    func badConnectionPort(port: String, message: String) throws {
        let yaml = """
            connections:
              - name: app
                host: db
                port: \(port)
                database: app
                user: app
                trust: true
            """
        let error = try #require(configError(yaml))
        #expect(error.line == 4)
        #expect(error.reason.contains("connection port"))
        #expect(error.reason.contains(message))
    }

    @Test(arguments: ["127.0.0.1:99999", "127.0.0.1", "127.0.0.1:", ":6432", "127.0.0.1:http"])
    func badListenAddress(address: String) throws {
        let error = try #require(configError("data_dir: x\nlisten:\n  http: 127.0.0.1:7070\n  postgres: \"\(address)\"\n"))
        #expect(error.line == 4)
        #expect(error.reason.contains("listen.postgres must be HOST:PORT"))
    }

    @Test func badTLSMode() throws {
        let yaml = """
            connections:
              - name: app
                host: db
                database: app
                user: app
                trust: true
                tls: verify-ca
            """
        let error = try #require(configError(yaml))
        #expect(error.line == 7)
        #expect(error.reason == "connection tls must be one of disable, require, verify-full, not 'verify-ca'")
    }

    @Test func verifyFullNeedsACAFile() throws {
        let yaml = """
            groups: [dev]
            connections:
              - name: other
                host: db
                database: app
                user: app
                trust: true
              - name: app
                host: db
                database: app
                user: app
                trust: true
                tls: verify-full
            """
        let error = try #require(configError(yaml))
        #expect(error.line == 8)
        #expect(error.reason == "connection 'app' uses tls: verify-full and needs ca_file")
    }

    @Test func caFileMustExist() throws {
        let yaml = """
            connections:
              - name: app
                host: db
                database: app
                user: app
                trust: true
                tls: verify-full
                ca_file: missing-ca.pem
            """
        let error = try #require(configError(yaml, baseDirectory: "/nonexistent-base"))
        #expect(error.line == 8)
        #expect(error.reason == "ca_file: cannot read /nonexistent-base/missing-ca.pem")
    }

    @Test func missingPasswordEnvironmentVariable() throws {
        let yaml = """
            connections:
              - name: app
                host: db
                database: app
                user: app
                password_env: APP_PG_PASSWORD
            """
        let unset = try #require(configError(yaml, environment: ["OTHER": "x"]))
        #expect(unset.line == 6)
        #expect(unset.reason == "password_env: environment variable APP_PG_PASSWORD is not set or empty")
        let empty = try #require(configError(yaml, environment: ["APP_PG_PASSWORD": ""]))
        #expect(empty.line == 6)
        #expect(empty.reason == unset.reason)
    }

    @Test func missingPasswordFile() throws {
        let directory = try TemporaryDirectory()
        let yaml = """
            connections:
              - name: app
                host: db
                database: app
                user: app
                password_file: nothing-here.secret
            """
        let error = try #require(configError(yaml, baseDirectory: directory.path))
        #expect(error.line == 6)
        let expectedPath = (directory.path as NSString).appendingPathComponent("nothing-here.secret")
        #expect(error.reason == "password_file: cannot read \(expectedPath)")
    }

    @Test func emptyPasswordFile() throws {
        let directory = try TemporaryDirectory()
        try directory.write("empty.secret", "\n")
        let yaml = """
            connections:
              - name: app
                host: db
                database: app
                user: app
                password_file: empty.secret
            """
        let error = try #require(configError(yaml, baseDirectory: directory.path))
        #expect(error.line == 6)
        #expect(error.reason.hasSuffix("is empty"))
    }

    @Test func connectionNeedsACredential() throws {
        let yaml = """
            connections:
              - name: app
                host: db
                database: app
                user: app
            """
        let error = try #require(configError(yaml))
        #expect(error.line == 2)
        #expect(error.reason == "connection 'app' needs password_env or password_file (or trust: true)")
    }

    @Test func onlyOneCredentialPerConnection() throws {
        let yaml = """
            connections:
              - name: app
                host: db
                database: app
                user: app
                password_env: PW
                trust: true
            """
        let error = try #require(configError(yaml, environment: ["PW": "x"]))
        #expect(error.line == 7)
        #expect(error.reason.contains("trust: true excludes"))
        let both = try #require(
            configError(yaml.replacingOccurrences(of: "trust: true", with: "password_file: x"), environment: ["PW": "x"]))
        #expect(both.line == 7)
        #expect(both.reason == "give only one of password_env and password_file")
    }

    @Test(arguments: ["host", "database", "user"])
    func connectionNeedsItsFields(field: String) throws {
        let lines = ["  - name: app", "    host: db", "    database: app", "    user: app", "    trust: true"]
        let yaml = (["groups: [dev]", "connections:"] + lines.filter { !$0.hasPrefix("    \(field):") }).joined(separator: "\n")
        let error = try #require(configError(yaml))
        #expect(error.line == 3)
        #expect(error.reason.hasPrefix("connection 'app' needs a \(field)"))
    }

    @Test func invalidConnectionName() throws {
        let yaml = """
            connections:
              - name: 9lives
                host: db
                database: app
                user: app
                trust: true
            """
        let error = try #require(configError(yaml))
        #expect(error.line == 2)
        #expect(error.reason.contains("'9lives' is not a valid name"))
    }

    @Test func userInAnUndeclaredGroup() throws {
        let yaml = """
            users:
              - name: alice
                groups: [dev, dba]
              - name: bob
                groups:
                  - dev
                  - ops
            groups: [dev, dba]
            """
        let error = try #require(configError(yaml))
        #expect(error.line == 7)
        #expect(error.reason == "group 'ops' is not declared under groups")
    }

    @Test func adminsAndAuditorsGroupsAreAlwaysDeclared() throws {
        let config = try ConfigLoader(environment: [:], baseDirectory: "/")
            .parse("users:\n  - name: root\n    groups: [admins]\n", file: "a.yaml")
        #expect(config.groups == ["admins", "auditors"])
        #expect(config.users.first?.groups == ["admins"])
    }

    @Test func duplicateUserAndGroup() throws {
        let users = try #require(configError("users:\n  - name: alice\n  - name: bob\n  - name: alice\n"))
        #expect(users.line == 4)
        #expect(users.reason == "user 'alice' is declared twice")
        let groups = try #require(configError("groups:\n  - dev\n  - dba\n  - dev\n"))
        #expect(groups.line == 4)
        #expect(groups.reason == "group 'dev' is declared twice")
    }

    @Test func badPasswordHash() throws {
        let weak = "pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw$GEZcreCWwYW19gdliR/KP3RHfiP9m2/Ij694MakXU6w"
        let error = try #require(configError("users:\n  - name: alice\n    password_hash: \(weak)\n"))
        #expect(error.line == 3)
        #expect(error.reason.hasPrefix("password_hash is not a hash"))
    }

    @Test func badExpiry() throws {
        let error = try #require(configError("users:\n  - name: alice\n    expires: next tuesday\n"))
        #expect(error.line == 3)
        #expect(error.reason.hasPrefix("expires must be a date"))
    }

    @Test(arguments: ["15 minutes", "15", "-5m", "1x", "0s"])
    func badDuration(text: String) throws {
        let error = try #require(configError("tokens:\n  login_ttl: 1d\n  access_ttl: \(text)\n"))
        #expect(error.line == 3)
        #expect(error.reason == "tokens.access_ttl must be a duration such as 500ms, 30s, 15m, 12h or 7d, not '\(text)'")
    }

    @Test func badLimitDuration() throws {
        let error = try #require(configError("limits:\n  authentication_timeout: soon\n"))
        #expect(error.line == 2)
        #expect(error.reason.hasPrefix("limits.authentication_timeout must be a duration"))
    }

    @Test func accessTTLMustNotExceedTheMaximum() throws {
        let error = try #require(configError("data_dir: x\ntokens:\n  access_ttl: 3h\n  max_access_ttl: 2h\n"))
        #expect(error.line == 3)
        #expect(error.reason == "tokens.access_ttl must not exceed tokens.max_access_ttl")
    }

    @Test func auditCommitIntervalIsReadAndBounded() throws {
        #expect(GatehouseConfig().auditCommitInterval == 0.01)
        let config = try ConfigLoader(baseDirectory: "/tmp").parse("audit:\n  commit_interval: 25ms\n", file: "test.yaml")
        #expect(config.auditCommitInterval == 0.025)
        let error = try #require(configError("audit:\n  commit_interval: 2m\n"))
        #expect(error.line == 2)
        #expect(error.reason.hasPrefix("audit.commit_interval must be at most 60s"))
        let unknown = try #require(configError("audit:\n  interval: 2s\n"))
        #expect(unknown.reason.contains("interval"))
    }

    @Test func messageLimitIsBounded() throws {
        let error = try #require(configError("limits:\n  max_message_bytes: 10\n"))
        #expect(error.line == 2)
        #expect(error.reason.contains("between 1024 and 1073741824"))
    }

    @Test func duplicateConnectionNames() throws {
        let yaml = """
            connections:
              - name: app
                host: db1
                database: app
                user: app
                trust: true
              - name: app
                host: db2
                database: app
                user: app
                trust: true
            """
        let error = try #require(configError(yaml))
        #expect(error.line == 7)
        #expect(error.reason == "connection 'app' is declared twice")
    }

    @Test func tlsNeedsCertificateAndKeyTogether() throws {
        let directory = try TemporaryDirectory()
        try directory.write("cert.pem", "CERT")
        let error = try #require(configError("data_dir: x\ntls:\n  cert_file: cert.pem\n", baseDirectory: directory.path))
        #expect(error.line == 3)
        #expect(error.reason.hasPrefix("tls needs both cert_file and key_file"))
        let missing = try #require(
            configError("tls:\n  cert_file: cert.pem\n  key_file: key.pem\n", baseDirectory: directory.path))
        #expect(missing.line == 3)
        #expect(missing.reason.hasPrefix("tls.key_file: cannot read"))
    }

    @Test func badBoolean() throws {
        let error = try #require(configError("tls:\n  allow_plaintext_passwords: maybe\n"))
        #expect(error.line == 2)
        #expect(error.reason == "tls.allow_plaintext_passwords must be true or false")
    }

    @Test func unsupportedStore() throws {
        let error = try #require(configError("data_dir: x\nstore: postgres://db/gatehouse\n"))
        #expect(error.line == 2)
        #expect(error.reason.hasPrefix("store 'postgres://db/gatehouse' is not supported"))
    }

    @Test func wrongShapes() throws {
        let notMapping = try #require(configError("listen: 127.0.0.1:6432\n"))
        #expect(notMapping.line == 1)
        #expect(notMapping.reason == "listen must be a mapping of keys to values")
        let notList = try #require(configError("data_dir: x\nconnections: app\n"))
        #expect(notList.line == 2)
        #expect(notList.reason == "connections must be a list")
        let nullString = try #require(configError("data_dir:\n"))
        #expect(nullString.line == 1)
        #expect(nullString.reason == "data_dir must be a string")
        let emptyString = try #require(configError("data_dir: ''\n"))
        #expect(emptyString.reason == "data_dir must not be empty")
    }

    // MARK: Variable expansion

    @Test func variablesExpandFromTheEnvironment() throws {
        let yaml = """
            listen:
              postgres: ${PG_HOST}:${PG_PORT:-6432}
              http: ${HTTP_HOST:-127.0.0.1}:${HTTP_PORT:-7070}
            data_dir: ${DATA:-/default/data}
            """
        let config = try ConfigLoader(
            environment: ["PG_HOST": "10.1.2.3", "HTTP_PORT": "9090", "DATA": ""], baseDirectory: "/"
        ).parse(yaml, file: "vars.yaml")
        #expect(config.postgresListen == HostPort(host: "10.1.2.3", port: 6432))
        #expect(config.httpListen == HostPort(host: "127.0.0.1", port: 9090))
        #expect(config.dataDirectory == "/default/data", "an empty variable takes the default")
    }

    @Test func setVariableWinsOverTheDefault() throws {
        let config = try ConfigLoader(environment: ["DATA": "/from/env"], baseDirectory: "/")
            .parse("data_dir: ${DATA:-/default}\n", file: "vars.yaml")
        #expect(config.dataDirectory == "/from/env")
    }

    @Test func defaultMayBeEmptyAfterTheSeparator() throws {
        // `${X:-}` expands to nothing, which then fails the non-empty check on the right line.
        let error = try #require(configError("groups: [dev]\ndata_dir: \"${X:-}\"\n"))
        #expect(error.line == 2)
        #expect(error.reason == "data_dir must not be empty")
    }

    @Test func unsetVariableWithoutDefaultIsAnError() throws {
        let error = try #require(configError("groups: [dev]\n\ndata_dir: ${STATE_DIR}\n"))
        #expect(error.line == 3)
        #expect(error.reason == "environment variable STATE_DIR is not set")
    }

    @Test func unterminatedVariableIsAnError() throws {
        let error = try #require(configError("groups: [dev]\ndata_dir: ${STATE_DIR\n"))
        #expect(error.line == 2)
        #expect(error.reason == "unterminated ${ in a variable reference")
    }

    @Test func expansionKeepsLineNumbers() throws {
        let error = try #require(
            configError("listen:\n  postgres: ${A:-127.0.0.1}:${B:-1}\n  http: ${C:-x}:${D:-2}\nbogus: 1\n"))
        #expect(error.line == 4)
    }

    @Test func expandedPasswordEnvironmentNames() throws {
        // The variable *name* in password_env may itself come from expansion.
        let yaml = """
            connections:
              - name: app
                host: db
                database: app
                user: app
                password_env: ${SECRET_NAME:-APP_PW}
            """
        let config = try ConfigLoader(environment: ["APP_PW": "p1"], baseDirectory: "/").parse(yaml, file: "a.yaml")
        #expect(config.connections.first?.password == "p1")
    }
}
