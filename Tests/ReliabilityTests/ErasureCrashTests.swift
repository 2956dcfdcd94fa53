import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import _LedgerTestSupport
import Testing

private let harnessKey = (try? AuthorizationKey(bytes: Array("reliability-suite-fixed-key-32by".utf8))) ?? AuthorizationKey.generate().key

/// R15 on a ledger under SIGKILL (issue 18): whatever step of an erasure a kill interrupts —
/// the log's commit, the vault's deletion, its compaction, the switch of generation — the
/// subject is afterwards either erased with its event in the log, or untouched without one,
/// once the ledger is opened again.
@Suite("Erasure under SIGKILL (R15, issue 18)")
struct ErasureCrashTests {
    @Test("SIGKILL during erasures: after the next open each subject is erased with its subjectErased event, or live without one (ERASE_CYCLES, default 12)")
    func killDuringErasures() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let seed = suiteSeed()
        var rng = SeededRandom(seed: seed ^ 0xE2A5E)
        let dir = TempDir()
        let count = 60, prefix = "gone"
        do {
            var options = PermissionLedger.Options(authorizationKey: harnessKey, durability: .noSync)
            options.eventFormat = 2
            let ledger = try PermissionLedger(directory: dir.path, options: options)
            var commands: [TimedCommand] = []
            for i in 0 ..< count {
                let t = Timestamp(seconds: 1_767_225_600 + Int64(i))
                commands.append(TimedCommand(at: t, .registerUser(account: "acct\(i)", businessEmail: "\(prefix)\(i)@contoso.example")))
                commands.append(TimedCommand(at: t, .validateEmail(account: "acct\(i)")))
                commands.append(TimedCommand(at: t, .completeProfile(account: "acct\(i)", firstName: "First\(i)", lastName: "Last\(i)")))
            }
            #expect(try ledger.executeBatch(commands).allSatisfy(\.accepted))
            try ledger.environment.sync()
        }
        let cycles = knob("ERASE_CYCLES", 12)
        var killedMidway = 0
        var acknowledged = Set<Int>()
        for cycle in 0 ..< cycles {
            let child = try Child(harnessPath, ["ledger-erase", dir.path, "--count", "\(count)", "--prefix", prefix])
            guard child.line() == "ready" else { Issue.record("the eraser did not start (cycle \(cycle))"); return }
            usleep(UInt32(rng.below(60_000)))
            if child.process.isRunning { killedMidway += 1 }
            child.kill()
            for line in child.finish() where line.hasPrefix("erased ") {
                if let i = Int(line.split(separator: " ")[1]) { acknowledged.insert(i) }
            }
            // the next open finishes what the log records
            var options = PermissionLedger.Options(authorizationKey: harnessKey, durability: .noSync)
            options.eventFormat = 2
            let ledger = try PermissionLedger(directory: dir.path, options: options)
            #expect(try ledger.verify().ok, "cycle \(cycle) (seed \(seed))")
            var recorded = Set<String>()
            for e in try ledger.events() {
                if case let .subjectErased(subject, _) = e.event { recorded.insert(subject) }
            }
            let vault = try #require(ledger.vault)
            for i in 0 ..< count {
                let email = "\(prefix)\(i)@contoso.example"
                if let live = try vault.subject(email: email) {
                    #expect(!recorded.contains(live.description), "cycle \(cycle) (seed \(seed)): subject \(i) live yet its erasure is in the log")
                    #expect(!acknowledged.contains(i), "cycle \(cycle) (seed \(seed)): subject \(i) acknowledged erased, yet live")
                    #expect(try ledger.permissions(account: "acct\(i)").map(\.email) == .success(email))
                } else {
                    #expect(try vault.wasErased(email: email), "cycle \(cycle) (seed \(seed)): subject \(i) neither live nor erased")
                    #expect(try ledger.permissions(account: "acct\(i)").map(\.email) != .success(email))
                }
            }
            let erasedInVault = try (0 ..< count).filter { try vault.subject(email: "\(prefix)\($0)@contoso.example") == nil }.count
            #expect(erasedInVault == recorded.count, "cycle \(cycle) (seed \(seed)): \(erasedInVault) erased in the vault, \(recorded.count) in the log")
            let pending = try ledger.environment.read { txn in try txn.withReader { try ledger.pendingErasures($0) } }
            #expect(pending.isEmpty, "cycle \(cycle): erasures left pending after the open")
        }
        #expect(killedMidway > 0, "no kill landed while erasing")
        #expect(!acknowledged.isEmpty)
    }
}
