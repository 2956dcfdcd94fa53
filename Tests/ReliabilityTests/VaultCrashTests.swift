import Foundation
@testable import Ledger
import Testing
import _LedgerTestSupport

/// What a crash at any step of an erasure may leave: a subject fully erased or untouched,
/// and after the next open no file holding a key the vault erased.
@Suite("Subject vault under SIGKILL (issue 18)")
struct VaultCrashTests {
    @Test("SIGKILL at any step of an erasure leaves each subject erased or untouched; the next open finishes the compaction (VAULT_CYCLES, default 15)")
    func killDuringErasure() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let seed = suiteSeed()
        var rng = SeededRandom(seed: seed ^ 0x5EED)
        let dir = TempDir()
        let root = dir.path + "/vault"
        let count = 400
        let prefix = "crash"
        var keys: [Int: [UInt8]] = [:]
        var subjects: [Int: Pseudonym] = [:]
        do {
            let vault = try SubjectVault(directory: root)
            for i in 0 ..< count {
                let batch = vault.batch()
                let p = try batch.subject(email: "\(prefix)\(i)@contoso.example").subject
                _ = try batch.registerAccount(named: "account \(i)", owner: p)
                try batch.commit()
                subjects[i] = p
                let g = try vault.current()
                let record = try g.environment.read { txn in try txn.get(g.subjects, key: p.bytes) }
                keys[i] = record.map { Array($0[0 ..< 32]) }
            }
        }
        let cycles = knob("VAULT_CYCLES", 15)
        var acked = Set<Int>()
        var killedMidway = 0, inFlight = 0
        for cycle in 0 ..< cycles {
            let child = try Child(harnessPath, ["vault-erase", root, "--count", "\(count)", "--prefix", prefix])
            guard child.line() == "ready" else { Issue.record("the eraser did not start (cycle \(cycle))"); return }
            usleep(UInt32(rng.below(40_000)))
            if child.process.isRunning { killedMidway += 1 }
            child.kill()
            let lines = child.finish()
            for line in lines where line.hasPrefix("erased ") {
                if let i = Int(line.dropFirst(7)) { acked.insert(i) }
            }
            if lines.last?.hasPrefix("erasing ") == true { inFlight += 1 }
            // the next open finishes whatever the kill interrupted
            let vault = try SubjectVault(directory: root)
            let files = try FileManager.default.contentsOfDirectory(atPath: root).sorted()
            #expect(files.count == 3 && files.contains("current") && files.contains("writer.lock"),
                    "cycle \(cycle) (seed \(seed)): leftovers \(files)")
            let data = try FileManager.default.subpathsOfDirectory(atPath: root)
                .filter { $0.hasSuffix(".mdb") }
                .compactMap { FileManager.default.contents(atPath: root + "/" + $0) }
            var erasedNow = 0
            for i in 0 ..< count {
                guard let p = subjects[i], let key = keys[i] else { continue }
                let email = try vault.email(of: p)
                let lookup = try vault.subject(email: "\(prefix)\(i)@contoso.example")
                let account = try vault.account(named: "account \(i)")?.owner
                switch email {
                case .erased:
                    erasedNow += 1
                    #expect(lookup == nil && account == nil, "cycle \(cycle) (seed \(seed)): subject \(i) erased but still looked up")
                    #expect(try vault.wasErased(email: "\(prefix)\(i)@contoso.example"))
                    let held = data.contains { $0.range(of: Data(key)) != nil }
                    #expect(!held, "cycle \(cycle) (seed \(seed)): the key of erased subject \(i) is still in a file")
                case .value(let v):
                    #expect(!acked.contains(i), "cycle \(cycle) (seed \(seed)): subject \(i) was acknowledged erased, yet lives")
                    #expect(v == "\(prefix)\(i)@contoso.example" && lookup == p && account == p,
                            "cycle \(cycle) (seed \(seed)): subject \(i) half erased")
                }
            }
            #expect(erasedNow >= acked.count)
            if erasedNow == count { break }
        }
        #expect(killedMidway > 0 && inFlight > 0, "no kill landed during an erasure (seed \(seed)): \(killedMidway) while running, \(inFlight) between `erasing` and `erased`")
        #expect(!acked.isEmpty, "no erasure finished (seed \(seed))")
    }

    @Test("another process erasing while this one assigns: every acknowledged assignment is in the live generation, every erasure holds")
    func writersFollowTheSwitch() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let dir = TempDir()
        let root = dir.path + "/vault"
        let erasable = 150, assigned = 1_500
        do {
            let vault = try SubjectVault(directory: root)
            let batch = vault.batch()
            for i in 0 ..< erasable { _ = try batch.subject(email: "gone\(i)@contoso.example") }
            try batch.commit()
        }
        let eraser = try Child(harnessPath, ["vault-erase", root, "--count", "\(erasable)", "--prefix", "gone"])
        let assigner = try Child(harnessPath, ["vault-assign", root, "--count", "\(assigned)", "--prefix", "kept"])
        let erasedLines = eraser.finish(), assignedLines = assigner.finish()
        #expect(eraser.process.terminationStatus == 0 && assigner.process.terminationStatus == 0)
        let acked = assignedLines.filter { $0.hasPrefix("ack ") }.compactMap { Int($0.dropFirst(4)) }
        let erased = erasedLines.filter { $0.hasPrefix("erased ") }.count
        #expect(acked.count == assigned && erased == erasable)
        let vault = try SubjectVault(directory: root)
        // the two overlapped: the generation moved once per erasure
        #expect(try vault.generation == UInt64(erasable + 1))
        let lost = try acked.filter { try vault.subject(email: "kept\($0)@contoso.example") == nil }
        #expect(lost.isEmpty, "\(lost.count) acknowledged assignments lost, e.g. \(lost.prefix(5))")
        let left = try (0 ..< erasable).filter { try vault.subject(email: "gone\($0)@contoso.example") != nil }
        #expect(left.isEmpty, "\(left.count) erased subjects still looked up")
    }
}
