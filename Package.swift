// swift-tools-version: 6.1
import PackageDescription

/// Every target compiles in Swift 6 language mode (complete strict concurrency); a clean build
/// has no warnings.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "cancel-worker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cancel-worker", targets: ["cancel-worker"]),
        .library(name: "Kafka", targets: ["Kafka"]),
        .library(name: "CancelCore", targets: ["CancelCore"]),
        .library(name: "CancelClient", targets: ["CancelClient"]),
        .library(name: "Worker", targets: ["Worker"]),
        .library(name: "Ledger", targets: ["Ledger"]),
        .library(name: "Providers", targets: ["Providers"]),
        .library(name: "Sandbox", targets: ["Sandbox"]),
    ],
    // `DevTools` compiles the dev subcommands (demo, bench, chaos, sandbox, dev-cluster) into the
    // CLI and links the DevTools and Sandbox modules. On by default; the production image builds
    // with `--disable-default-traits` (scripts/check-production-build.sh checks the binary).
    traits: [.trait(name: "DevTools"), .default(enabledTraits: ["DevTools"])],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.10.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.25.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.25.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.27.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        // Micro-benchmarks only (Benchmarks/); the trait list keeps its optional runtime
        // interposer, which the local package set does not carry, out of the graph.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        // C stays in one room: only `Kafka` imports this module.
        .systemLibrary(
            name: "Crdkafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .target(
            name: "Kafka",
            dependencies: [
                "Crdkafka",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "CancelCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strictSettings
        ),
        // For upstream services: validated enqueue and awaiting outcomes. Kafka and CancelCore
        // only, never the worker, the ledgers, the providers or the sandbox.
        .target(
            name: "CancelClient",
            dependencies: [
                "CancelCore", "Kafka",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Ledger",
            dependencies: [
                "CancelCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Providers",
            dependencies: [
                "CancelCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Sandbox",
            dependencies: [
                "CancelCore",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Worker",
            dependencies: [
                "CancelCore", "Kafka",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WorkerApp",
            dependencies: [
                "CancelCore", "Kafka", "Worker", "Ledger", "Providers",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),
        // Operator tools: replaying dead letters, inspecting the dead-letter topic, reading outcomes,
        // enqueueing commands. The CLI, the console and the dev tools use them; the worker does not.
        .target(
            name: "OperatorTools",
            dependencies: [
                "CancelCore", "CancelClient", "Kafka", "Worker",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Development tools: the demo, benchmarks and the chaos run, with the provider sandbox and
        // HdrHistogram. Nothing but the CLI depends on it, and the CLI only with the `DevTools` trait.
        .target(
            name: "DevTools",
            dependencies: [
                "CancelCore", "CancelClient", "Kafka", "Worker", "Ledger", "Providers", "Sandbox", "OperatorTools",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strictSettings
        ),
        // The operator console (`cancel-worker console`): a web application over the operator tools.
        // Only the CLI links it; the worker's own modules do not depend on it.
        .target(
            name: "Console",
            dependencies: [
                "CancelCore", "Kafka", "WorkerApp", "OperatorTools",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "cancel-worker",
            dependencies: [
                "Kafka", "CancelCore", "CancelClient", "WorkerApp", "OperatorTools", "Ledger", "Console",
                .target(name: "DevTools", condition: .when(traits: ["DevTools"])),
                .target(name: "Sandbox", condition: .when(traits: ["DevTools"])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                "CJemalloc",
            ],
            swiftSettings: strictSettings
        ),
        // jemalloc (Debian's libjemalloc-dev), linked into the cancel-worker binary only: its malloc
        // serves the whole process (`Allocator`).
        .systemLibrary(name: "CJemalloc", path: "Sources/CJemalloc", providers: [.apt(["libjemalloc-dev"])]),
        // What tests share (like HummingbirdTesting): never linked into the cancel-worker binary.
        .target(
            name: "CancelWorkerTesting",
            dependencies: [
                "CancelCore", "Kafka", "Providers", "Sandbox",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        // `swift package benchmark` (make microbench): the limiter, the decoder, the ledgers, the metrics.
        .executableTarget(
            name: "CancelBenchmarks",
            dependencies: [
                "CancelCore", "DevTools", "Kafka", "Ledger", "Providers", "Worker", "WorkerApp",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/CancelBenchmarks",
            swiftSettings: strictSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // `swift package benchmark --target CancelClientBenchmarks` (make microbench): enqueue
        // throughput and the cost of awaiting an outcome.
        .executableTarget(
            name: "CancelClientBenchmarks",
            dependencies: [
                "CancelClient", "CancelCore", "Kafka",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/CancelClientBenchmarks",
            swiftSettings: strictSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .testTarget(
            name: "KafkaTests",
            dependencies: [
                "Kafka", "Crdkafka", "CancelWorkerTesting", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WorkerTests",
            dependencies: [
                "Worker", "OperatorTools", "CancelCore", "Kafka", "Crdkafka", "Providers", "Sandbox",
                "CancelWorkerTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LedgerTests",
            dependencies: [
                "Ledger", "CancelCore", "CancelWorkerTesting", "Sandbox",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "ProvidersTests",
            dependencies: [
                "Providers", "Sandbox", "CancelCore", "CancelWorkerTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SandboxTests",
            dependencies: [
                "Sandbox", "CancelCore", "CancelWorkerTesting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WorkerAppTests",
            dependencies: [
                "WorkerApp", "CancelCore", "Ledger", "Providers", "Worker", "CancelWorkerTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CancelClientTests",
            dependencies: [
                "CancelClient", "CancelCore", "Crdkafka", "Kafka", "Worker", "Providers", "Sandbox",
                "CancelWorkerTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CancelCoreTests", dependencies: ["CancelCore", "CancelWorkerTesting"], swiftSettings: strictSettings),
        .testTarget(
            name: "ConsoleTests",
            dependencies: [
                "Console", "WorkerApp", "OperatorTools", "CancelCore", "Kafka",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CLITests",
            dependencies: [
                "cancel-worker", "Kafka", "Ledger", "Sandbox", "WorkerApp", "OperatorTools", "CancelCore",
                "CancelWorkerTesting",
                "DevTools", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
