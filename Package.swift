// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "gatehouse",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "gatehouse", targets: ["gatehouse"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk.git", from: "0.12.1"),
    ],
    targets: [
        // Pure values and rules: identities, tokens, audit chain, configuration model. No I/O.
        .target(
            name: "GatehouseCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ]
        ),
        // The configuration model: what a validated configuration holds. No I/O, no YAML.
        .target(name: "GatehouseConfig", dependencies: ["GatehouseCore", "GatehousePolicy", "SQLInspection"]),
        // YAML configuration → validated `GatehouseConfig`, with file/line errors; the embedded defaults.
        .target(
            name: "GatehouseConfigYAML",
            dependencies: [
                "GatehouseCore", "GatehouseConfig", "GatehousePolicy", "SQLInspection",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // PostgreSQL's own parser (Debian: libpg-query-dev; the package ships no pkg-config file).
        .systemLibrary(
            name: "CPgQuery",
            path: "Sources/CPgQuery",
            providers: [.apt(["libpg-query-dev"])]
        ),
        // SQL text → statement facts, by walking PostgreSQL's parse tree. No I/O.
        .target(name: "SQLInspection", dependencies: ["CPgQuery"]),
        // MaxMind DB reader for source-country rules (Debian: libmaxminddb-dev).
        .systemLibrary(
            name: "CMaxMindDB",
            path: "Sources/CMaxMindDB",
            pkgConfig: "libmaxminddb",
            providers: [.apt(["libmaxminddb-dev"])]
        ),
        .target(name: "GatehouseGeo", dependencies: ["CMaxMindDB"]),
        // QR codes for TOTP enrolment in the terminal (Debian: libqrencode-dev).
        .systemLibrary(
            name: "CQREncode",
            path: "Sources/CQREncode",
            pkgConfig: "libqrencode",
            providers: [.apt(["libqrencode-dev"])]
        ),
        // Rules and decisions over statement facts and session context. No I/O; the clock is an input.
        .target(name: "GatehousePolicy", dependencies: ["SQLInspection"]),
        // PostgreSQL protocol v3 messages and frame decoders.
        .target(
            name: "PostgresWire",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio")
            ]
        ),
        // Metric instruments (swift-metrics); the backend is chosen by `serve`.
        .target(
            name: "GatehouseTelemetry",
            dependencies: [.product(name: "CoreMetrics", package: "swift-metrics")]
        ),
        // State store: audit chain, password hashes, token revocations.
        .target(
            name: "GatehouseStore",
            dependencies: [
                "GatehouseCore", "GatehouseTelemetry",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Token issuing and verification (JWT), password checks, the session registry.
        .target(
            name: "GatehouseAuth",
            dependencies: [
                "GatehouseCore", "GatehouseTelemetry",
                "GatehouseStore",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What the proxy, HTTP and (later) MCP share about live sessions: the registry and the policy in
        // force. No NIO.
        .target(
            name: "GatehouseSessions",
            dependencies: ["GatehouseTelemetry", "GatehousePolicy", "SQLInspection"]
        ),
        // Long-running services of the gateway beside the listeners: webhook delivery, the policy watcher.
        .target(
            name: "GatehouseServices",
            dependencies: [
                "GatehouseCore", "GatehouseConfig", "GatehouseConfigYAML", "GatehouseStore", "GatehousePolicy",
                "GatehouseSessions",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Per-person database roles that follow the grants, managed with the connection's own login.
        .target(
            name: "GatehouseDatabaseRoles",
            dependencies: [
                "GatehouseCore", "GatehouseConfig", "GatehouseAuth", "GatehouseStore", "GatehouseSessions",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // AI agents over the Model Context Protocol: tools whose SQL goes through the gateway's own
        // PostgreSQL listener, so it is judged, held and audited as any session's.
        .target(
            name: "GatehouseMCP",
            dependencies: [
                "GatehouseCore", "GatehouseConfig", "GatehouseAuth", "GatehouseStore", "GatehouseSessions", "GatehousePolicy",
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The PostgreSQL proxy: per-connection state machine, handlers, listener service.
        .target(
            name: "GatehouseProxy",
            dependencies: [
                "GatehouseCore", "GatehouseConfig", "GatehouseAuth", "PostgresWire", "GatehouseStore",
                "GatehousePolicy", "SQLInspection", "GatehouseGeo", "GatehouseTelemetry", "GatehouseSessions",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // HTTP API and web console.
        .target(
            name: "GatehouseHTTP",
            dependencies: [
                "GatehouseCore", "GatehouseAuth", "GatehouseStore", "GatehouseSessions", "GatehousePolicy", "SQLInspection",
                "GatehouseConfig", "GatehouseMCP",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The OpenAPI document, a YAML file compiled in by the EmbedText plugin.
            exclude: ["Resources/openapi.yaml"],
            plugins: ["EmbedText"]
        ),
        .executableTarget(
            name: "gatehouse",
            dependencies: [
                "GatehouseCore", "GatehouseConfig", "GatehouseConfigYAML", "GatehouseStore", "GatehouseAuth", "GatehouseProxy",
                "GatehouseSessions", "GatehouseServices", "GatehouseDatabaseRoles", "GatehouseMCP",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                "GatehouseHTTP", "GatehousePolicy", "SQLInspection", "GatehouseGeo", "CQREncode",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Writes a text file into Swift source as a static string (the EmbedText plugin's tool).
        .executableTarget(name: "embed-text"),
        .plugin(name: "EmbedText", capability: .buildTool(), dependencies: ["embed-text"]),
        // Micro-benchmarks (bench/): inspection + decision, audit appends. Not part of the tests.
        .executableTarget(
            name: "gatehouse-bench",
            dependencies: ["GatehouseCore", "GatehousePolicy", "SQLInspection", "GatehouseStore"]
        ),
        // A libFuzzer target when built by scripts/fuzz (-sanitize=fuzzer -DFUZZING); otherwise it replays
        // the inputs it is given, so the suite's build keeps it compiling.
        .executableTarget(
            name: "gatehouse-fuzz",
            dependencies: ["PostgresWire", "SQLInspection", "GatehouseProxy", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(name: "SQLInspectionTests", dependencies: ["SQLInspection"]),
        // Helpers shared by test targets (e.g. writing a small GeoIP database).
        .target(name: "GatehouseTestSupport", path: "Tests/GatehouseTestSupport"),
        .testTarget(name: "GatehouseGeoTests", dependencies: ["GatehouseGeo", "GatehouseTestSupport"]),
        .testTarget(
            name: "GatehousePolicyTests",
            dependencies: ["GatehousePolicy", "SQLInspection", "GatehouseConfig", "GatehouseConfigYAML", "GatehouseTestSupport"]),
        .testTarget(
            name: "GatehouseMCPTests",
            dependencies: [
                "GatehouseMCP", "GatehouseAuth", "GatehouseConfig", "GatehousePolicy",
                .product(name: "MCP", package: "swift-sdk"),
            ]),
        .testTarget(name: "GatehouseCoreTests", dependencies: ["GatehouseCore", "GatehouseConfig", "GatehouseConfigYAML"]),
        .testTarget(
            name: "GatehouseStoreTests",
            dependencies: [
                "GatehouseStore", "GatehouseCore", .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .testTarget(
            name: "PostgresWireTests",
            dependencies: [
                "PostgresWire", "GatehouseTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "GatehouseProxyTests",
            dependencies: [
                "GatehouseProxy", "GatehouseSessions", "PostgresWire", "GatehouseAuth", "GatehouseCore", "GatehouseConfig",
                "GatehouseConfigYAML", "GatehousePolicy", "GatehouseStore", "GatehouseTestSupport",
                "SQLInspection",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "GatehouseServicesTests",
            dependencies: [
                "GatehouseServices", "GatehouseConfig", "GatehouseConfigYAML", "GatehouseCore", "GatehouseStore",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "GatehouseHTTPTests",
            dependencies: [
                "GatehouseHTTP", "GatehouseStore", "GatehouseAuth", "GatehouseConfig", "GatehouseConfigYAML", "GatehouseCore",
                "GatehouseProxy", "GatehouseSessions",
                "GatehousePolicy",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Drives the real `gatehouse` binary with real `psql` against a real PostgreSQL.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "GatehouseCore", "GatehouseTestSupport", "PostgresWire", "SQLInspection",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
    ]
)
