// swift-tools-version:6.0
// The fuzz harness: a separate package so the main build stays lean. Build and run with
// ./run (libFuzzer + AddressSanitizer).
import Foundation
import PackageDescription

// A path dependency is identified by its folder's name, which depends on where the
// repository was cloned.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "ledger-fuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .executableTarget(
            name: "ledger-fuzz",
            dependencies: [.product(name: "Projections", package: root), .product(name: "_LedgerTestSupport", package: root), .product(name: "Ledger", package: root)]
        ),
    ],
    swiftLanguageModes: [.v6]
)
