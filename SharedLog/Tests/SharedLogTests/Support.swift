import Foundation
import Ledger
import Projections
import SharedLog
import Testing

/// What the shared-log tests need: a real PostgreSQL server (SharedLog/run starts one on
/// loopback and sets LEDGER_POSTGRES_URL and LEDGER_PG_DIR), temporary ledgers, and the
/// built `ledger-replica`.
enum Env {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let replica: String = ProcessInfo.processInfo.environment["LEDGER_REPLICA"] ?? packageRoot + "/.build/debug/ledger-replica"
    static let fixtures = packageRoot + "/../Fixtures/contoso.jsonl"

    /// The server's URL; the tests fail (not skip) without one.
    static func url() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["LEDGER_POSTGRES_URL"], !url.isEmpty else {
            Issue.record("LEDGER_POSTGRES_URL is not set: run the shared-log tests with SharedLog/run, which starts PostgreSQL")
            throw CancellationError()
        }
        return url
    }

    static func location() throws -> PostgresLocation { try PostgresLocation(url: try url()) }

    /// A fresh shared-log name, so tests never see each other's tables.
    static func freshName(_ prefix: String) -> String {
        prefix + "_" + String(UUID().uuidString.prefix(8)).lowercased()
    }

    static let keyBytes: [UInt8] = (0..<32).map { UInt8(($0 * 37 + 11) & 0xFF) }

    static let clusterKeyBytes: [UInt8] = (0..<32).map { UInt8(($0 * 53 + 5) & 0xFF) }

    /// Writes the shared cluster key file once and returns its path.
    static let clusterKeyFile: String = {
        let path = NSTemporaryDirectory() + "shared-log-test-" + UUID().uuidString + ".cluster"
        _ = FileManager.default.createFile(atPath: path, contents: Data(clusterKeyBytes))
        return path
    }()

    /// Writes the shared authorization key file once and returns its path.
    static let keyFile: String = {
        let path = NSTemporaryDirectory() + "shared-log-test-" + UUID().uuidString + ".key"
        _ = FileManager.default.createFile(atPath: path, contents: Data(keyBytes))
        return path
    }()
}

final class TempDir: @unchecked Sendable {
    let path = NSTemporaryDirectory() + "shared-log-" + UUID().uuidString
    init() { try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    func sub(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Opens a host: a local LMDB replica in `dir` on shared log `name`.
/// `clusterKey` seals, `retired` keys only open (a rotation).
func host(_ dir: String, name: String, clamp: Bool = false, clusterKey: [UInt8] = Env.clusterKeyBytes,
          retired: [[UInt8]] = []) throws -> SharedLedger {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var options = PermissionLedger.Options()
    options.authorizationKey = try AuthorizationKey(bytes: Env.keyBytes)
    let local = try PermissionLedger(directory: dir, options: options)
    return try SharedLedger(local: local, location: try Env.location(),
                            options: .init(name: name, pollInterval: .milliseconds(200), clampTimeToHead: clamp,
                                           clusterKey: try ClusterKey(bytes: clusterKey),
                                           retiredClusterKeys: try retired.map { try ClusterKey(bytes: $0) }))
}

/// (seq, id, hash) of every event of a local ledger.
func chain(_ ledger: PermissionLedger) throws -> [String] {
    try ledger.inspector.events().map { "\($0.seq) \($0.id) \($0.hash.map { String(format: "%02x", $0) }.joined())" }
}

/// A child process whose stdout goes to a file (read while it runs).
final class Child: @unchecked Sendable {
    let process = Process()
    let outPath: String
    let errPath: String

    init(_ args: [String], dir: TempDir, label: String, executable: String = Env.replica) throws {
        outPath = dir.sub(label + ".out")
        errPath = dir.sub(label + ".err")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        var environment = ProcessInfo.processInfo.environment
        environment["LEDGER_REPLICA"] = Env.replica
        process.environment = environment
        process.arguments = args
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle(forWritingAtPath: errPath)
        try process.run()
    }

    var lines: [String] {
        (try? String(contentsOfFile: outPath, encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
    }
    var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

    /// Waits for the child to exit; one still running after `timeout` seconds is killed
    /// (a hang fails the test instead of stalling the run).
    func wait(timeout: Double = 300) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning {
            Issue.record("\(process.arguments?.first ?? "child") still running after \(Int(timeout)) s: killed")
            kill()
            return -1
        }
        return process.terminationStatus
    }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// The acknowledged commands in a stress host's output: index → seqs.
func acknowledged(_ lines: [String]) throws -> [Int: [UInt64]] {
    var out: [Int: [UInt64]] = [:]
    for line in lines {
        let json = try JSONParser.parse(line)
        guard case let .number(_, i?)? = json["i"] else { continue }
        guard case let .array(seqs)? = json["seq"] else { continue }
        out[Int(i)] = seqs.compactMap { if case let .number(_, n?) = $0 { return UInt64(n) } else { return nil } }
    }
    return out
}

func stressArgs(_ db: String, name: String, host: Int, hosts: Int, commands: Int, seed: UInt64 = 11, batch: Int = 1) throws -> [String] {
    ["stress", db, "--postgres", try Env.url(), "--name", name, "--key-file", Env.keyFile,
     "--cluster-key-file", Env.clusterKeyFile, "--host", String(host), "--hosts", String(hosts), "--commands", String(commands), "--seed", String(seed),
     "--batch", String(batch)]
}

/// Catches `db` up with the shared log through the CLI, as an operator would.
func followOnce(_ db: String, name: String, dir: TempDir) throws {
    let c = try Child(["follow", db, "--postgres", try Env.url(), "--name", name, "--once", "--cluster-key-file", Env.clusterKeyFile], dir: dir, label: "follow-" + UUID().uuidString)
    #expect(c.wait() == 0, "follow --once failed: \(c.stderr)")
}

/// The last head a follower reported.
final class HeadBox: @unchecked Sendable {
    private let lock = NSLock()
    private var seq: UInt64?
    func set(_ s: UInt64) { lock.lock(); seq = s; lock.unlock() }
    func get() -> UInt64? { lock.lock(); defer { lock.unlock() }; return seq }
}
