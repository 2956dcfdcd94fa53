import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import _LedgerTestSupport
import Testing

/// `prepare` and `applyReplicated`, the two halves a shared-log host is built from, on real
/// LMDB ledgers (no PostgreSQL: the SharedLog package tests that part against a server).
@Suite("replication primitives")
struct ReplicationTests {
    func open(_ dir: TempDir) throws -> PermissionLedger {
        var options = PermissionLedger.Options()
        options.authorizationKey = testKey
        options.eventFormat = 1  // the shared log carries format 1
        return try PermissionLedger(directory: dir.path, options: options)
    }

    @Test("a format-1 ledger is refused with the default options, naming `ledger-tool upgrade`, unless it is a replica of the shared log")
    func legacyFormatRefusedUnlessReplica() throws {
        let a = TempDir(), b = TempDir()
        do {
            let origin = try open(a), replica = try open(b)
            _ = try origin.executeBatch(history(200))
            try replica.applyReplicated(try origin.log.events())
        }
        let defaults = PermissionLedger.Options(authorizationKey: testKey)
        #expect {
            _ = try PermissionLedger(directory: a.path, options: defaults)
        } throws: { error in
            guard let error = error as? EventFormatError else { return false }
            return error.errorCode == .upgradeRequired && error.message.contains("ledger-tool upgrade \(a.path) NEW")
        }
        let replica = try PermissionLedger(directory: b.path, options: defaults)
        #expect(replica.eventFormat == 1)
        #expect(try replica.verify().ok)
        // a format-2 ledger opens whatever the options say
        let c = TempDir()
        _ = try PermissionLedger(directory: c.path, options: defaults)
        #expect(try PermissionLedger(directory: c.path, options: PermissionLedger.Options.init(authorizationKey: testKey).legacy).eventFormat == 2)
    }

    func history(_ n: Int, seed: UInt64 = 5) -> [TimedCommand] {
        var g = HistoryGenerator(seed: seed, organisations: 15)
        return g.commands(n).enumerated().map { i, c in
            var t = c; t.id = UUID(); return t
        }
    }

    @Test("prepare + applyReplicated on a replica gives the same log and projections as execute on the origin")
    func prepareThenApply() throws {
        let a = TempDir(), b = TempDir()
        let origin = try open(a), replica = try open(b)
        for c in history(1_500) {
            let prepared = try replica.prepare(c)
            #expect(prepared.base == (try replica.log.head()))
            try replica.applyReplicated(prepared.events)
            let executed = try origin.execute(c)
            #expect(executed.seqs == prepared.result.seqs)
            #expect(executed.refusal?.code == prepared.result.refusal?.code)
        }
        let originEvents = try origin.log.events(), replicaEvents = try replica.log.events()
        #expect(originEvents.count > 500)
        let same = originEvents == replicaEvents
        #expect(same, "the replica's log differs from the origin's")
        #expect(try replica.verify().ok)
    }

    @Test("a follower applying pages of another ledger's log ends identical; re-applying what it has is a no-op")
    func follower() throws {
        let a = TempDir(), b = TempDir()
        let origin = try open(a), replica = try open(b)
        _ = try origin.executeBatch(history(2_000))
        let all = try origin.log.events()
        var i = 0
        while i < all.count {
            let page = Array(all[i ..< min(i + 97, all.count)])
            try replica.applyReplicated(page)
            // the page again, and a page straddling the head, change nothing
            try replica.applyReplicated(page)
            i += 97
        }
        let same = try replica.log.events() == all
        #expect(same, "the follower's log differs from the origin's")
        #expect(try replica.verify().ok)
        #expect(try replica.stats().byType == origin.stats().byType)
        #expect(try replica.prepare(history(1, seed: 9)[0]).base == origin.log.head())
    }

    @Test("tampered, out-of-order and divergent events are refused, all or nothing")
    func refusals() throws {
        let a = TempDir(), b = TempDir(), c = TempDir()
        let origin = try open(a), replica = try open(b), other = try open(c)
        _ = try origin.executeBatch(history(300))
        let all = try origin.log.events()
        try replica.applyReplicated(Array(all.prefix(10)))

        var tampered = all[10]
        tampered.payload[tampered.payload.count - 1] ^= 1
        #expect(throws: ReplicationError.badHash(seq: 11)) { try replica.applyReplicated([tampered]) }

        #expect(throws: ReplicationError.gap(expected: 11, got: 12)) { try replica.applyReplicated([all[11]]) }

        var forged = all[9]
        forged.hash[0] ^= 0xFF
        #expect(throws: ReplicationError.diverged(seq: 10, local: all[9].hash, shared: forged.hash)) { try replica.applyReplicated([forged]) }

        // a good event then a bad one: neither lands
        #expect(throws: ReplicationError.self) { try replica.applyReplicated([all[10], tampered]) }
        #expect(try replica.log.head().seq == 10)

        // a ledger with its own history can't take another's events
        _ = try other.executeBatch(history(50, seed: 77))
        #expect(throws: ReplicationError.self) { try other.applyReplicated(Array(all.prefix(3))) }
        #expect(try replica.verify().ok)
    }

    @Test("prepare reports a known command id as a duplicate with its seqs, and appends nothing")
    func duplicate() throws {
        let a = TempDir()
        let ledger = try open(a)
        let register = try TimedCommand(json: JSONParser.parse(#"{"command":"registerUser","at":"2026-03-01T10:00:00Z","account":"ada-msa","businessEmail":"ada@contoso.com","id":"6F1B2C3D-0000-4000-8000-000000000001"}"#))
        let first = try ledger.execute(register)
        let prepared = try ledger.prepare(register)
        #expect(prepared.result.wasDuplicate)
        #expect(prepared.result.seqs == first.seqs)
        #expect(prepared.events.isEmpty)
    }

    @Test("prepareBatch decides each command on the state the ones before leave, writes nothing, and matches executeBatch")
    func prepareBatch() throws {
        let a = TempDir(), b = TempDir()
        let origin = try open(a), replica = try open(b)
        var commands = history(600)
        commands.append(commands[5])  // a repeated id in the same batch: a duplicate
        for start in stride(from: 0, to: commands.count, by: 50) {
            let chunk = Array(commands[start ..< min(start + 50, commands.count)])
            let before = try replica.log.head()
            let prepared = try replica.prepareBatch(chunk)
            #expect(try replica.log.head() == before)  // nothing written
            #expect(prepared.base == before)
            try replica.applyReplicated(prepared.events)
            let executed = try origin.executeBatch(chunk)
            #expect(executed.map(\.seqs) == prepared.results.map(\.seqs))
            #expect(executed.map(\.wasDuplicate) == prepared.results.map(\.wasDuplicate))
            #expect(executed.map { $0.refusal?.code } == prepared.results.map { $0.refusal?.code })
        }
        let same = try origin.log.events() == replica.log.events()
        #expect(same, "the replica's log differs from the origin's")
        #expect(try replica.verify().ok)
        let inBatch = try replica.prepareBatch([commands[7], commands[7]])
        #expect(inBatch.results[0].wasDuplicate && inBatch.results[1].wasDuplicate)
    }
}
