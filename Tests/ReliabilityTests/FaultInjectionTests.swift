import Foundation
import Ledger
@_spi(LedgerInternals) import Projections
import Testing

/// I/O errors injected into a real process writing a real LMDB ledger (issue 16): the
/// `LD_PRELOAD` interposer `Tests/Faults/interpose.c`, built here with the machine's C
/// compiler, fails the Nth write, flush or truncate of the data file, for every N of a short
/// workload (SQLite's "ioerr" loop), with EIO and with ENOSPC.
@Suite("Injected I/O errors", .serialized)
struct FaultInjectionTests {
    /// Builds the interposer once per run; nil (recorded) when the compiler is missing.
    static let library: String? = {
        let out = NSTemporaryDirectory() + "pl-libfault-\(ProcessInfo.processInfo.processIdentifier).so"
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror", packageRoot + "/Tests/Faults/interpose.c", "-o", out, "-ldl", "-lpthread"]
        guard (try? cc.run()) != nil else { return nil }
        cc.waitUntilExit()
        return cc.terminationStatus == 0 ? out : nil
    }()

    struct Outcome {
        var status: Int32
        var signalled: Bool
        var acks: [(seq: UInt64, hash: String)] = []
        var failures: [String] = []
        /// Whether an acknowledgement came after a failure (writes must be refused by then).
        var ackAfterFailure = false
        var err = ""
    }

    /// Runs `ledger-harness` with the interposer loaded and `environment` added to the
    /// process's; returns how it ended, its stdout lines and its stderr.
    static func harness(_ arguments: [String], environment: [String: String]) throws -> (status: Int32, signalled: Bool, lines: [String], err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: harnessPath)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["LD_PRELOAD"] = library
        env.merge(environment) { $1 }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, p.terminationReason == .uncaughtSignal,
                String(decoding: o, as: UTF8.self).split(separator: "\n").map(String.init), String(decoding: e, as: UTF8.self))
    }

    /// Runs the workload (generated commands, durable commits) with the Nth watched call failing.
    func workload(_ db: String, failAt: Int, errno code: Int32, commands: Int, countFile: String? = nil,
                  extraEnvironment: [String: String] = [:], extraArguments: [String] = []) throws -> Outcome {
        var env = ["FAULT_AT": String(failAt), "FAULT_ERRNO": String(code)]
        if let countFile { env["FAULT_COUNT"] = countFile }
        env.merge(extraEnvironment) { $1 }
        let run = try Self.harness(["crash-child", db, "--seed", "3", "--commands", String(commands), "--initial-map-size", "1048576", "--keep-going"] + extraArguments,
                                   environment: env)
        var outcome = Outcome(status: run.status, signalled: run.signalled, err: run.err)
        for line in run.lines {
            let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
            if parts.first == "ack", parts.count == 3, let seq = UInt64(parts[1]) {
                outcome.acks.append((seq, parts[2]))
                if !outcome.failures.isEmpty { outcome.ackAfterFailure = true }
            }
            if parts.first == "fail" { outcome.failures.append(String(line.dropFirst(5))) }
        }
        return outcome
    }

    @Test("every write, flush and truncate of a short workload failed in turn (EIO, then ENOSPC): never acknowledged, later writes refused, nothing acknowledged lost, chain and projections sound")
    func ioErrorLoop() throws {
        #expect(binariesBuilt(), "build first: swift build")
        guard Self.library != nil else {
            Issue.record("could not build Tests/Faults/interpose.c with cc")
            return
        }
        let commands = knob("FAULT_COMMANDS", 12)
        // how many watched calls the workload makes without a fault
        let probe = TempDir()
        let countFile = probe.path + "/count"
        let clean = try workload(probe.path, failAt: 0, errno: EIO, commands: commands, countFile: countFile)
        #expect(clean.status == 0 && clean.failures.isEmpty, "\(clean.err)")
        let calls = Int((try String(contentsOfFile: countFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(calls > 20, "the interposer saw \(calls) calls: is it loaded?")
        var tried = 0, failedAtOpen = 0, failedCommands = 0
        for code in [EIO, ENOSPC] {
            for n in 1 ... max(calls, 1) {
                let dir = TempDir()
                let r = try workload(dir.path, failAt: n, errno: code, commands: commands)
                tried += 1
                #expect(!r.signalled, "N=\(n) errno=\(code): the process crashed: \(r.err)")
                if r.status != 0 {
                    // the failure came while opening: a clear error, nothing written after it
                    failedAtOpen += 1
                    #expect(r.err.contains("rror"), "N=\(n): exit \(r.status) without an error message")
                }
                if let first = r.failures.first {
                    failedCommands += 1
                    #expect(first.contains(code == EIO ? "Input/output error" : "No space left"), "N=\(n): \(first)")
                    // after the failure every later write is refused, and says why
                    for later in r.failures.dropFirst() { #expect(later.contains("write refused"), "N=\(n): \(later)") }
                    #expect(!r.ackAfterFailure, "N=\(n): a command after the failure was acknowledged")
                }
                // reopened without faults: every acknowledged event is there with its hash, chain and projections sound
                guard FileManager.default.fileExists(atPath: dir.path + "/data.mdb") else { continue }
                let ledger: PermissionLedger
                do { ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: nil, durability: .noSync)) } catch {
                    Issue.record("N=\(n) errno=\(code): reopening failed: \(error)")
                    continue
                }
                for ack in r.acks {
                    let stored = try ledger.log.event(ack.seq).map { Hex.encode($0.hash) }
                    #expect(stored == ack.hash, "N=\(n) errno=\(code): acknowledged seq \(ack.seq) lost or changed")
                }
                let report = try ledger.verify()
                #expect(report.ok, "N=\(n) errno=\(code): \(report.log.problem ?? report.projectionProblem ?? "")")
            }
        }
        #expect(failedCommands > 0, "no injected fault hit a command")
        FaultFigures.record("I/O errors: \(tried) runs (\(calls) watched calls × EIO, ENOSPC), \(failedCommands) failed a command, \(failedAtOpen) failed the open")
    }
}

/// Figures printed for RELIABILITY.md.
enum FaultFigures {
    static func record(_ line: String) {
        FileHandle.standardError.write(Data("faults: \(line)\n".utf8))
    }
}
