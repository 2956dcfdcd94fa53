import Foundation
import Ledger
@_spi(LedgerInternals) import Projections
import Testing

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
let binDir = ProcessInfo.processInfo.environment["LEDGER_BIN_DIR"] ?? packageRoot + "/.build/debug"
let harnessPath = binDir + "/ledger-harness"
let toolPath = binDir + "/ledger-tool"

final class TempDir: @unchecked Sendable {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "pl-rel-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A child process whose stdout is read line by line.
final class Child {
    let process = Process()
    private let out = Pipe()
    private var buffer = Data()

    init(_ executable: String, _ args: [String], stderr: Bool = false) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        process.standardOutput = out
        process.standardError = stderr ? FileHandle.standardError : FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// The next line, or nil at end of output.
    func line() -> String? {
        while true {
            if let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[buffer.startIndex ..< nl], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex ... nl)
                return line
            }
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Reads what is left and waits for the exit.
    func finish() -> [String] {
        var lines: [String] = []
        while let l = line() { lines.append(l) }
        process.waitUntilExit()
        return lines
    }
}

func binariesBuilt() -> Bool {
    FileManager.default.isExecutableFile(atPath: harnessPath) && FileManager.default.isExecutableFile(atPath: toolPath)
}

/// The seed of a randomised suite: `RELIABILITY_SEED` when set, else a fresh one (printed in
/// every failure message so a failing run can be replayed).
func suiteSeed() -> UInt64 {
    if let text = ProcessInfo.processInfo.environment["RELIABILITY_SEED"], let s = UInt64(text) { return s }
    return UInt64.random(in: 1 ... 1_000_000)
}

func knob(_ name: String, _ fallback: Int) -> Int {
    ProcessInfo.processInfo.environment[name].flatMap(Int.init) ?? fallback
}
