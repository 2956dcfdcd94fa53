// swift-tools-version:6.0
// The side-by-side benchmark: this ledger, raw LMDB and SQLite through GRDB, in one process.
// A separate package so the main build and CI stay lean. Run: Benchmarks/run [--events N] [--json]
import Foundation
import PackageDescription

// A path dependency is identified by its folder's name, which depends on where the
// repository was cloned.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "ledger-bench",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
    ],
    targets: [
        .executableTarget(
            name: "ledger-bench",
            dependencies: [
                .product(name: "Projections", package: root), .product(name: "_LedgerTestSupport", package: root),
                .product(name: "Ledger", package: root),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
