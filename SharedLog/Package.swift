// swift-tools-version:6.0
// The optional scale-out part: a PostgreSQL-backed shared log that several hosts append to,
// each keeping its LMDB ledger as a local replica. A separate package so the core build
// (and services that run on one host) never build postgres-nio.
// Build: swift build --package-path SharedLog. Tests need a PostgreSQL server: SharedLog/run.
import Foundation
import PackageDescription

// A path dependency is identified by its folder's name, which depends on where the
// repository was cloned.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "ledger-shared-log",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SharedLog", targets: ["SharedLog"]),
        .executable(name: "ledger-replica", targets: ["ledger-replica"]),
    ],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .target(
            name: "SharedLog",
            dependencies: [
                .product(name: "Ledger", package: root),
                .product(name: "Projections", package: root),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "ledger-replica",
            dependencies: [
                "SharedLog",
                .product(name: "Ledger", package: root),
                .product(name: "Projections", package: root),
                .product(name: "_LedgerTestSupport", package: root),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "SharedLogTests",
            dependencies: [
                "SharedLog",
                .product(name: "Ledger", package: root),
                .product(name: "Projections", package: root),
                .product(name: "_LedgerTestSupport", package: root),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
