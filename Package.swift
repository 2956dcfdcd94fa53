// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "permission-ledger",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Ledger", targets: ["Ledger"]),
        .library(name: "Projections", targets: ["Projections"]),
        .executable(name: "ledger-tool", targets: ["ledger-tool"]),
        // Test and benchmark tooling (generated histories, fuzz entry points): not part of the
        // library a service embeds, and nothing in Ledger or Projections depends on it.
        .library(name: "_LedgerTestSupport", targets: ["_LedgerTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        // `swift package generate-documentation` (the DocC catalogs; .ci/run builds them)
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .target(
            name: "Ledger",
            dependencies: [
                "CLMDB",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Projections",
            dependencies: [
                "Ledger",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(name: "_LedgerTestSupport", dependencies: ["Ledger", "Projections"]),
        .executableTarget(
            name: "ledger-tool",
            dependencies: [
                "Ledger", "Projections", "_LedgerTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "ledger-harness",
            dependencies: [
                "Ledger", "Projections", "_LedgerTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "LedgerTests", dependencies: ["Ledger", "CLMDB", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "ProjectionsTests", dependencies: [
            "Projections", "Ledger", "_LedgerTestSupport",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "MetricsTestKit", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .testTarget(name: "CLITests", dependencies: ["Projections", "Ledger", "_LedgerTestSupport"]),
        .testTarget(name: "ReliabilityTests", dependencies: ["Projections", "Ledger", "_LedgerTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
