import Foundation
import Ledger
@_spi(LedgerInternals) import Projections
import _LedgerTestSupport
import Testing

/// Power loss simulated on a real process writing a real LMDB ledger (issue 16): the
/// interposer `Tests/Faults/interpose.c` in its power mode journals every write of the data
/// file since its last successful flush and, at a chosen watched call, undoes all of it (or
/// keeps a random subset, sector by sector: writes reach a disk out of order and can tear)
/// and ends the process. This tests the `MDB_NOMETASYNC` + flush-before-acknowledge protocol
/// of RELIABILITY.md instead of assuming it.
@Suite("Simulated power loss", .serialized)
struct PowerLossTests {
    static let key = (try? AuthorizationKey(bytes: Array("reliability-suite-fixed-key-32by".utf8))) ?? AuthorizationKey.generate().key

    struct Cut {
        var outcome: FaultInjectionTests.Outcome
        /// The interposer's report: unflushed writes undone, sectors kept and lost.
        var unflushed = 0, kept = 0, lost = 0
        var reported = false
    }

    /// Runs the workload with the power cut before watched call `at` (after the last one
    /// when `at` exceeds them), keeping none or some of the unflushed writes.
    func cut(_ db: String, at: Int, keepSome: Bool, seed: UInt64, commands: Int, noSync: Bool = false) throws -> Cut {
        let extra = ["FAULT_MODE": "power", "FAULT_KEEP": keepSome ? "some" : "none", "FAULT_SEED": String(seed)]
        let outcome = try FaultInjectionTests().workload(db, failAt: at, errno: 0, commands: commands, extraEnvironment: extra,
                                                         extraArguments: noSync ? ["--no-sync"] : [])
        var result = Cut(outcome: outcome)
        // "power cut before a call (watched call 17): 9 unflushed writes, 12 sectors kept, 30 lost"
        if let line = outcome.err.split(separator: "\n").first(where: { $0.hasPrefix("power cut") }) {
            let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            if numbers.count >= 4 {
                result.reported = true
                (result.unflushed, result.kept, result.lost) = (numbers[numbers.count - 3], numbers[numbers.count - 2], numbers[numbers.count - 1])
            }
        }
        return result
    }

    /// What reopening after the cut finds: acknowledged events missing or changed, and
    /// whether the ledger is sound and accepts more commands.
    func recover(_ db: String, _ cut: Cut, label: String, control: Bool = false) throws -> (lost: Int, ok: Bool) {
        guard FileManager.default.fileExists(atPath: db + "/data.mdb") else { return (cut.outcome.acks.count, true) }
        let ledger: PermissionLedger
        do {
            ledger = try PermissionLedger(directory: db, options: .init(authorizationKey: Self.key, durability: .noSync))
        } catch {
            // without flushes LMDB may be left corrupt (its documentation says so of MDB_NOSYNC)
            if !control { Issue.record("\(label): reopening failed: \(error)") }
            return (cut.outcome.acks.count, false)
        }
        var lost = 0
        for ack in cut.outcome.acks where try ledger.log.event(ack.seq).map({ Hex.encode($0.hash) }) != ack.hash { lost += 1 }
        let report = try ledger.verify()
        var ok = report.ok
        if !report.ok && !control { Issue.record("\(label): after the cut: \(report.log.problem ?? report.projectionProblem ?? "")") }
        // the recovered ledger takes new commands and stays sound
        let head = try ledger.log.head()
        var generator = HistoryGenerator(seed: 99, organisations: 5, start: head.at ?? Timestamp(seconds: 1_767_225_600), namespace: "after")
        if control { return (lost, ok) }
        for _ in 0 ..< 3 { _ = try ledger.execute(generator.next()) }
        let after = try ledger.verify()
        if !after.ok {
            ok = false
            Issue.record("\(label): after new commands: \(after.log.problem ?? after.projectionProblem ?? "")")
        }
        return (lost, ok)
    }

    @Test("the power cut at random points of a durable workload, every unflushed write undone or a random subset of sectors kept: no acknowledged event lost, chain and projections sound, the ledger writable")
    func powerLoss() throws {
        #expect(binariesBuilt(), "build first: swift build")
        guard FaultInjectionTests.library != nil else {
            Issue.record("could not build Tests/Faults/interpose.c with cc")
            return
        }
        let cycles = knob("POWER_CYCLES", 500)
        let commands = knob("POWER_COMMANDS", 8)
        let seed = suiteSeed()
        var rng = SeededRandom(seed: seed)
        // how many watched calls the workload makes
        let probe = TempDir()
        let countFile = probe.path + "/count"
        let clean = try FaultInjectionTests().workload(probe.path, failAt: 0, errno: 0, commands: commands, countFile: countFile)
        #expect(clean.status == 0 && !clean.acks.isEmpty, "\(clean.err)")
        let calls = Int((try String(contentsOfFile: countFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(calls > 20, "the interposer saw \(calls) calls: is it loaded?")
        var unflushedCuts = 0, tornCuts = 0, lostAcks = 0, unsound = 0, notCut = 0, acked = 0
        for cycle in 0 ..< cycles {
            let at = 1 + Int(rng.next() % UInt64(calls + 1))  // calls + 1: after the workload ended
            let keepSome = cycle % 2 == 1
            let label = "seed \(seed) cycle \(cycle) at \(at) keep \(keepSome ? "some" : "none")"
            let dir = TempDir()
            let result = try cut(dir.path, at: at, keepSome: keepSome, seed: rng.next() % 1_000_000, commands: commands)
            #expect(!result.outcome.signalled, "\(label): the process crashed: \(result.outcome.err)")
            if result.outcome.status != 86 || !result.reported {
                notCut += 1
                Issue.record("\(label): exit \(result.outcome.status), no power cut reported: \(result.outcome.err)")
                continue
            }
            if result.unflushed > 0 { unflushedCuts += 1 }
            if result.kept > 0 && result.lost > 0 { tornCuts += 1 }
            acked += result.outcome.acks.count
            let lost: Int, ok: Bool
            do { (lost, ok) = try recover(dir.path, result, label: label) } catch {
                Issue.record("\(label): \(error)")
                unsound += 1
                continue
            }
            #expect(lost == 0, "\(label): \(lost) acknowledged events lost or changed")
            lostAcks += lost
            if !ok { unsound += 1 }
        }
        // the simulation bites: cuts found unflushed writes to undo, and some were torn
        #expect(unflushedCuts > cycles / 4, "only \(unflushedCuts) of \(cycles) cuts had unflushed writes")
        #expect(cycles < 10 || tornCuts > 0, "no cut kept part of the unflushed writes")
        // control: acknowledging before the flush (noSync) loses acknowledged events under the same cuts
        var controlLost = 0
        for cycle in 0 ..< min(cycles, 10) {
            let dir = TempDir()
            let result = try cut(dir.path, at: calls + 1, keepSome: cycle % 2 == 1, seed: UInt64(cycle), commands: commands, noSync: true)
            // anything may be wrong with such a file, and LMDB may abort a process reading a
            // corrupt one: it is verified by a child first, and a failure counts as everything lost
            let check = Process()
            check.executableURL = URL(fileURLWithPath: toolPath)
            check.arguments = ["verify", dir.path]
            check.standardOutput = FileHandle.nullDevice
            check.standardError = FileHandle.nullDevice
            try check.run()
            check.waitUntilExit()
            if check.terminationReason != .exit || check.terminationStatus != 0 {
                controlLost += result.outcome.acks.count
                continue
            }
            controlLost += (try? recover(dir.path, result, label: "control \(cycle)", control: true).lost) ?? result.outcome.acks.count
        }
        #expect(controlLost > 0, "acknowledging without a flush lost nothing: the simulation undoes nothing")
        FaultFigures.record("power loss: \(cycles) cuts (\(calls) watched calls, \(commands) commands, seed \(seed)), \(unflushedCuts) with unflushed writes, \(tornCuts) torn, \(acked) acknowledgements checked, \(lostAcks) lost, \(unsound) unsound, \(notCut) not cut; control without flush lost \(controlLost)")
    }

    @Test("the power cut while four threads commit at once (one's flush overlapping another's commit): every acknowledged command stored under its seqs, sound, writable")
    func powerLossWithThreads() throws {
        #expect(binariesBuilt(), "build first: swift build")
        guard FaultInjectionTests.library != nil else { return }
        let cycles = knob("POWER_THREAD_CYCLES", 100)
        let seed = suiteSeed()
        var rng = SeededRandom(seed: seed ^ 0x5EED)
        let arguments = { (db: String, s: UInt64) in ["stress", db, "--threads", "4", "--commands", "4", "--seed", String(s), "--at", "2026-06-01T00:00:00Z"] }
        let probe = TempDir()
        let countFile = probe.path + "/count"
        _ = try FaultInjectionTests.harness(arguments(probe.path, 1), environment: ["FAULT_COUNT": countFile])
        let calls = Int((try String(contentsOfFile: countFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(calls > 20, "the interposer saw \(calls) calls: is it loaded?")
        var acked = 0, unflushedCuts = 0
        for cycle in 0 ..< cycles {
            let at = 1 + Int(rng.next() % UInt64(calls + 1))
            let keepSome = cycle % 2 == 1
            let label = "seed \(seed) thread cycle \(cycle) at \(at) keep \(keepSome ? "some" : "none")"
            let dir = TempDir()
            let (status, _, lines, err) = try FaultInjectionTests.harness(arguments(dir.path, rng.next() % 1_000_000),
                                               environment: ["FAULT_MODE": "power", "FAULT_AT": String(at), "FAULT_KEEP": keepSome ? "some" : "none", "FAULT_SEED": String(rng.next() % 1_000_000)])
            guard status == 86, err.contains("power cut") else {
                Issue.record("\(label): exit \(status), no power cut: \(err)")
                continue
            }
            if !err.contains(": 0 unflushed") { unflushedCuts += 1 }
            var acks: [UUID: UInt64] = [:]
            for line in lines {
                let parts = line.split(separator: " ")
                if parts.count == 3, parts[0] == "ack", let id = UUID(uuidString: String(parts[1])), let first = parts[2].split(separator: ",").first.flatMap({ UInt64($0) }) {
                    acks[id] = first
                }
            }
            acked += acks.count
            guard FileManager.default.fileExists(atPath: dir.path + "/data.mdb") else {
                #expect(acks.isEmpty, "\(label): acknowledged commands but no data file")
                continue
            }
            do {
                let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: Self.key, durability: .noSync))
                let stored = Dictionary(try ledger.events().map { ($0.id, $0.seq) }, uniquingKeysWith: { a, _ in a })
                for (id, seq) in acks { #expect(stored[id] == seq, "\(label): acknowledged command \(id) at \(seq) lost") }
                let report = try ledger.verify()
                #expect(report.ok, "\(label): \(report.log.problem ?? report.projectionProblem ?? "")")
                var generator = HistoryGenerator(seed: 7, organisations: 3, start: try ledger.log.head().at ?? Timestamp(seconds: 1_767_225_600), namespace: "after")
                for _ in 0 ..< 3 { _ = try ledger.execute(generator.next()) }
                #expect(try ledger.verify().ok, "\(label): unsound after new commands")
            } catch {
                Issue.record("\(label): \(error)")
            }
        }
        #expect(unflushedCuts > cycles / 4, "only \(unflushedCuts) of \(cycles) cuts had unflushed writes")
        FaultFigures.record("power loss with 4 threads: \(cycles) cuts (about \(calls) watched calls, 16 commands), \(unflushedCuts) with unflushed writes, \(acked) acknowledgements checked")
    }
}
