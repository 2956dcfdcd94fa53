// swift-tools-version:6.0
// A small service that embeds the ledger: the README's example is
// Sources/PermissionService/main.swift, built and run by .ci/run (Examples/run).
import Foundation
import PackageDescription

// A path dependency is identified by its folder's name, which depends on where the
// repository was cloned.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "ledger-examples",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: "..")],
    targets: [
        .executableTarget(
            name: "PermissionService",
            dependencies: [.product(name: "Ledger", package: root), .product(name: "Projections", package: root)]
        ),
    ],
    swiftLanguageModes: [.v6]
)
