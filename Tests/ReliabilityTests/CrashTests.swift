import Foundation
import Ledger
@_spi(LedgerInternals) import Projections
import _LedgerTestSupport
import Testing

/// Real processes, real LMDB, SIGKILL at random moments.
@Suite("Crash safety", .serialized)
struct CrashTests {
    /// Reopens the ledger and checks every acknowledged event, the chain and the projections.
    func check(_ path: String, acked: [UInt64: String], seed: UInt64, cycle: Int) throws {
        let start = Date()
        let ledger = try PermissionLedger(directory: path, options: .init(durability: .noSync))
        let opened = Date().timeIntervalSince(start)
        #expect(opened < 1, "reopen took \(opened) s (seed \(seed), cycle \(cycle))")
        let head = try ledger.log.head()
        for (seq, hash) in acked {
            let stored = try ledger.log.event(seq)
            #expect(stored.map { Hex.encode($0.hash) } == hash, "acknowledged seq \(seq) lost or changed (seed \(seed), cycle \(cycle))")
            #expect(seq <= head.seq)
        }
        let report = try ledger.verify()
        #expect(report.ok, "\(report.log.problem ?? report.projectionProblem ?? "") (seed \(seed), cycle \(cycle))")
    }

    /// A ledger of 6,000 generated commands (for the rebuild and upgrade cycles).
    func ledgerOf6000Commands(seed: UInt64) throws -> TempDir {
        let dir = TempDir()
        let ledger = try PermissionLedger(directory: dir.path, options: .init(durability: .noSync))
        var generator = HistoryGenerator(seed: seed, organisations: 100)
        for c in generator.commands(6_000) { _ = try ledger.execute(c) }
        try ledger.environment.sync()
        return dir
    }

    @Test("SIGKILL during durable appends loses no acknowledged event (CRASH_CYCLES, default 200)")
    func killDuringAppends() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let seed = suiteSeed()
        var rng = SeededRandom(seed: seed)
        let dir = TempDir()
        var acked: [UInt64: String] = [:]
        let cycles = knob("CRASH_CYCLES", 200)
        for cycle in 0 ..< cycles {
            let child = try Child(harnessPath, ["crash-child", dir.path, "--seed", "\(seed &+ UInt64(cycle))"])
            guard let ready = child.line(), ready.hasPrefix("ready") else {
                Issue.record("child did not start (seed \(seed), cycle \(cycle))")
                child.kill()
                return
            }
            let wanted = 1 + rng.below(12)
            var got = 0
            while got < wanted, let line = child.line() {
                let parts = line.split(separator: " ")
                if parts.count == 3, parts[0] == "ack", let seq = UInt64(parts[1]) {
                    acked[seq] = String(parts[2])
                    got += 1
                }
            }
            // kill now, or a moment later, in the middle of the next commit
            if rng.chance(0.5) { usleep(UInt32(rng.below(3_000))) }
            child.kill()
            try check(dir.path, acked: acked, seed: seed, cycle: cycle)
        }
        #expect(acked.count >= cycles)
    }

    @Test("SIGKILL during rebuild keeps the old projections valid (50 cycles)")
    func killDuringRebuild() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let seed = suiteSeed()
        var rng = SeededRandom(seed: seed)
        let dir = try ledgerOf6000Commands(seed: seed)
        let cycles = knob("REBUILD_CYCLES", 50)
        var killedMidway = 0
        for cycle in 0 ..< cycles {
            let child = try Child(toolPath, ["rebuild", dir.path])
            usleep(UInt32(20_000 + rng.below(250_000)))
            if child.process.isRunning { killedMidway += 1 }
            child.kill()
            try check(dir.path, acked: [:], seed: seed, cycle: cycle)
        }
        #expect(killedMidway > 0, "no kill landed during a rebuild (seed \(seed))")
    }

    @Test("SIGKILL during the upgrade from projection format 1: the old projections stay whole until the new ones commit, the next open finishes it (20 cycles)")
    func killDuringUpgrade() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let seed = suiteSeed()
        var rng = SeededRandom(seed: seed ^ 0x0F0F)
        let dir = try ledgerOf6000Commands(seed: seed)
        let legacyKey = Array("legacy@example.com\u{0}EA-1".utf8)
        let cycles = knob("UPGRADE_CYCLES", 20)
        var killedMidway = 0, leftOld = 0, leftNew = 0
        for cycle in 0 ..< cycles {
            // what format 1 left: no format key, a string-keyed entry, a snapshot
            let env = try LMDBEnvironment.open(path: dir.path, options: .init(durability: .noSync))
            let dbs = try env.openDatabases(["p.meta", "p.cells", "p.snapshots"])
            try env.write { txn in
                _ = try txn.delete(dbs[0], key: Array("format".utf8))
                try txn.put(dbs[1], key: legacyKey, value: [1, 0])
                try txn.put(dbs[2], key: BigEndianKey.bytes(50_000), value: [2, 0])
            }
            try env.sync()
            // opening upgrades it (verify opens, then compares)
            let child = try Child(toolPath, ["verify", dir.path])
            usleep(UInt32(20_000 + rng.below(250_000)))
            if child.process.isRunning { killedMidway += 1 }
            child.kill()
            // either untouched (format 1, the legacy entry there) or done (format 2, gone): never between
            let (format, legacy) = try env.read { txn in
                (try txn.get(dbs[0], key: Array("format".utf8)), try txn.get(dbs[1], key: legacyKey))
            }
            if format == nil {
                leftOld += 1
                #expect(legacy != nil, "cycle \(cycle) (seed \(seed)): no format, yet the old entry is gone")
            } else {
                leftNew += 1
                #expect(format == [3] && legacy == nil, "cycle \(cycle) (seed \(seed)): format \(format ?? []) with the old entry \(legacy == nil ? "gone" : "kept")")
            }
            // the next open finishes what was left
            try check(dir.path, acked: [:], seed: seed, cycle: cycle)
        }
        #expect(killedMidway > 0 && leftOld > 0, "no kill landed during an upgrade (seed \(seed)): \(leftOld) left in format 1, \(leftNew) done")
    }

    @Test("SIGKILL during map growth loses nothing (50 cycles from a 64 KiB map)")
    func killDuringGrowth() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let seed = suiteSeed()
        var rng = SeededRandom(seed: seed)
        let cycles = knob("GROWTH_CYCLES", 50)
        for cycle in 0 ..< cycles {
            let dir = TempDir()
            var acked: [UInt64: String] = [:]
            let child = try Child(harnessPath, ["crash-child", dir.path, "--seed", "\(seed &+ UInt64(cycle))", "--initial-map-size", "65536"])
            _ = child.line()
            let wanted = 20 + rng.below(120)
            while acked.count < wanted, let line = child.line() {
                let parts = line.split(separator: " ")
                if parts.count == 3, parts[0] == "ack", let seq = UInt64(parts[1]) { acked[seq] = String(parts[2]) }
            }
            child.kill()
            // the child ran until killed: it acknowledged every command asked of it, growing the
            // 64 KiB map many times (a child that died early would leave nothing to check)
            #expect(acked.count == wanted, "seed \(seed) cycle \(cycle): the child acknowledged \(acked.count) of \(wanted) commands")
            try check(dir.path, acked: acked, seed: seed, cycle: cycle)
        }
    }

    @Test("readers killed while holding a transaction do not exhaust the reader slots")
    func staleReaders() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let dir = TempDir()
        // The first opener sizes the reader table: 8 slots.
        let env = try LMDBEnvironment.open(path: dir.path, options: EnvironmentOptions(maxReaders: 8))
        let log = try EventLog(environment: env)
        try log.append([NewEvent(kind: 1, at: Timestamp(seconds: 0), payload: [1])])
        for round in 0 ..< 3 {
            let holders = try (0 ..< 8).map { _ in try Child(harnessPath, ["hold-read", dir.path]) }
            for h in holders { #expect(h.line()?.hasPrefix("ready") == true, "round \(round)") }
            for h in holders { h.kill() }
            // all 8 slots now belong to dead processes: reads and writes still work
            #expect(try log.head().seq == UInt64(round + 1))
            try log.append([NewEvent(kind: 1, at: Timestamp(seconds: 0), payload: [2])])
        }
        #expect(try log.verify().ok)
    }
}
