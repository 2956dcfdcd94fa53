import Foundation
import Ledger
@_spi(LedgerInternals) import Projections
import _LedgerTestSupport
import Testing

/// When the disk (or the file-size limit) is exhausted, appends fail with a clear error,
/// nothing is half-written, and the ledger works again once there is room.
@Suite("Disk exhaustion", .serialized)
struct DiskFullTests {
    func commands(_ n: Int, seed: UInt64) -> String {
        var g = HistoryGenerator(seed: seed, organisations: 40)
        return g.commands(n).map { $0.json.text }.joined(separator: "\n")
    }

    /// Runs `ledger-tool exec` (optionally under a file-size limit) and returns the acknowledged
    /// seqs, the exit status and stderr.
    func exec(_ db: String, _ input: String, fsizeLimit: Int? = nil) throws -> (seqs: [UInt64], status: Int32, err: String) {
        let file = NSTemporaryDirectory() + "pl-input-" + UUID().uuidString + ".jsonl"
        try input.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let p = Process()
        if let fsizeLimit {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
            p.arguments = ["--fsize=\(fsizeLimit)", toolPath, "exec", db, file]
        } else {
            p.executableURL = URL(fileURLWithPath: toolPath)
            p.arguments = ["exec", db, file]
        }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        var seqs: [UInt64] = []
        for line in o.split(separator: "\n") {
            guard let json = try? JSONParser.parse(String(line)), case let .array(items)? = json["seq"] else { continue }
            for case let .number(_, v?) in items { seqs.append(UInt64(v)) }
        }
        return (seqs, p.terminationStatus, e)
    }

    func checkIntact(_ db: String, lastAcked: UInt64?) throws {
        let ledger = try PermissionLedger(directory: db, options: .init(durability: .noSync))
        let report = try ledger.verify()
        #expect(report.ok, "\(report.log.problem ?? report.projectionProblem ?? "")")
        if let lastAcked { #expect(try ledger.log.head().seq == lastAcked, "an unacknowledged event was kept, or an acknowledged one lost") }
    }

    @Test("a file-size limit (EFBIG): a clear error, nothing half-written, works again without the limit")
    func fileSizeLimit() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let dir = TempDir()
        let db = dir.path + "/ledger"
        #expect(try Process.run(URL(fileURLWithPath: toolPath), arguments: ["init", db]).waitAndStatus() == 0)
        let size = (try FileManager.default.attributesOfItem(atPath: db + "/data.mdb")[.size] as? Int) ?? 0
        let first = try exec(db, commands(6_000, seed: 1), fsizeLimit: size + 300_000)
        #expect(first.status == 1, "the limit was never reached")
        #expect(first.err.contains("the ledger failed"))
        #expect(first.err.contains("could not write the data file"), "\(first.err)")
        #expect(first.seqs.count > 100)
        try checkIntact(db, lastAcked: first.seqs.max())
        let second = try exec(db, commands(500, seed: 2))
        #expect(second.status == 0, "\(second.err)")
        try checkIntact(db, lastAcked: second.seqs.max())
    }

    @Test("a full filesystem (a 4 MiB tmpfs): ENOSPC, nothing half-written, works again after space is freed",
          .enabled(if: getuid() == 0, "mounting a tmpfs needs root (CI runs as root)"))
    func fullTmpfs() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let dir = TempDir()
        let mount = dir.path + "/mnt"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        #expect(try Process.run(URL(fileURLWithPath: "/bin/mount"), arguments: ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mount]).waitAndStatus() == 0)
        defer { _ = try? Process.run(URL(fileURLWithPath: "/bin/umount"), arguments: [mount]).waitAndStatus() }
        let db = mount + "/ledger"
        #expect(try Process.run(URL(fileURLWithPath: toolPath), arguments: ["init", db]).waitAndStatus() == 0)
        // leave about 600 KiB free
        let filler = mount + "/filler"
        _ = FileManager.default.createFile(atPath: filler, contents: Data(count: 3 * 1024 * 1024 + 300 * 1024))
        let first = try exec(db, commands(6_000, seed: 3))
        #expect(first.status == 1, "the filesystem never filled up")
        #expect(first.err.contains("could not write the data file"), "\(first.err)")
        try checkIntact(db, lastAcked: first.seqs.max())
        try FileManager.default.removeItem(atPath: filler)
        let second = try exec(db, commands(300, seed: 4))
        #expect(second.status == 0, "\(second.err)")
        try checkIntact(db, lastAcked: second.seqs.max())
    }
}

extension Process {
    func waitAndStatus() -> Int32 {
        waitUntilExit()
        return terminationStatus
    }
}
