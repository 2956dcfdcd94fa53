import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import _LedgerTestSupport
import Synchronization
import Testing

/// The hot cache (decoded records kept between transactions) must never answer from a
/// commit the asking transaction does not see.
@Suite("Hot projection cache")
struct HotCacheTests {
    func open(_ dir: TempDir, hotEntries: Int, wholeLoadEvery: UInt64 = 1_000_000_000) throws -> PermissionLedger {
        var options = PermissionLedger.Options(authorizationKey: testKey, durability: .noSync, initialMapSize: 1 << 20,
                                               hotCacheEntries: hotEntries)
        options.hotWholeLoadInterval = wholeLoadEvery
        options.hotWholeLoadAfterMisses = wholeLoadEvery == 0 ? 1 : 16
        // two ledgers' projections are compared byte for byte: format 1 (format 2's tokens are random)
        return try PermissionLedger(directory: dir.path, options: options.legacy)
    }

    @Test("two ledger objects with their own caches writing one directory in random turns answer as a ledger without a cache",
          arguments: [(5, 1_000_000_000), (6, 1_000_000_000), (7, 0), (8, 0)] as [(UInt64, UInt64)])
    func neverStale(seed: UInt64, wholeLoadEvery: UInt64) throws {
        let shared = TempDir(), plain = TempDir()
        // each object sees the other's commits only through LMDB (like another process);
        // with 0, whole tables are loaded at every chance
        let a = try open(shared, hotEntries: 1_000_000, wholeLoadEvery: wholeLoadEvery)
        let b = try open(shared, hotEntries: 40, wholeLoadEvery: wholeLoadEvery)  // a tiny cache: tables are trimmed often
        let reference = try open(plain, hotEntries: 0)
        #expect(a.hot != nil && b.hot != nil && reference.hot == nil)
        var generator = HistoryGenerator(seed: seed, organisations: 12)
        var rng = SeededRandom(seed: seed)
        var emails: [String] = [], accounts: [String] = [], lids: [String] = []
        var compared = 0, mismatches = 0, refusedOnly = 0, wholeSeen = 0
        for _ in 0 ..< 400 {
            // batches of 1 are common: a refused command alone commits nothing
            let size = rng.chance(0.5) ? 1 : 1 + rng.below(12)
            let batch = generator.commands(size)
            let writer = rng.chance(0.5) ? a : b
            let got = try writer.executeBatch(batch)
            let expected = try reference.executeBatch(batch)
            if got != expected { mismatches += 1 }
            if got.allSatisfy({ $0.seqs.isEmpty }) { refusedOnly += 1 }
            for c in batch {
                if case let .registerUser(account, email) = c.command {
                    accounts.append(account); emails.append(email.lowercased())
                }
                if case let .recordAgreement(r) = c.command { lids.append(r.licensingId) }
            }
            // questions through both objects, before and after the other one wrote
            for reader in [a, b] where !emails.isEmpty && !lids.isEmpty {
                for _ in 0 ..< 3 {
                    let email = emails[rng.below(emails.count)], account = accounts[rng.below(accounts.count)]
                    let lid = lids[rng.below(lids.count)]
                    let action = Action.allCases[rng.below(Action.allCases.count)]
                    if try reader.permissions(email: email) != reference.permissions(email: email) { mismatches += 1 }
                    if try reader.check(account: account, action: action, licensingId: lid)
                        != reference.check(account: account, action: action, licensingId: lid) { mismatches += 1 }
                    if try reader.explain(email: email, licensingId: lid) != reference.explain(email: email, licensingId: lid) { mismatches += 1 }
                    compared += 3
                }
            }
            if let hot = a.hot, hot.isWhole(hot.agreements) { wholeSeen += 1 }
        }
        #expect(mismatches == 0, "\(mismatches) answers differ from the uncached ledger's")
        #expect(wholeSeen > 0, "no table was ever held whole")
        if wholeLoadEvery == 0 {
            #expect((a.hot?.answeredWithoutTransaction ?? 0) > 0, "no check was answered from the cache alone")
        }
        #expect(compared > 1_000)
        #expect(refusedOnly > 0, "no batch committed nothing")
        #expect(try a.verify().ok)
        #expect(try projectionDump(a) == projectionDump(reference), "the cached ledgers stored other projections")
    }

    @Test("a cache published at one commit is not used by a transaction that sees another")
    func versionGuard() throws {
        let dir = TempDir()
        let ledger = try open(dir, hotEntries: 1_000_000)
        var generator = HistoryGenerator(seed: 3, organisations: 4)
        _ = try ledger.executeBatch(generator.commands(200))
        _ = try ledger.permissions(email: "admin-org0@org0.example")
        let hot = try #require(ledger.hot)
        let head = try ledger.environment.read { txn in txn.id }
        #expect(hot.version == head)
        // a commit made outside this object's cache (another object, as another process would)
        let other = try open(dir, hotEntries: 0)
        _ = try other.executeBatch(generator.commands(50))
        let after = try ledger.environment.read { txn in txn.id }
        #expect(after > head)
        #expect(hot.version == head, "the cache moved without a publish")
        // the next read does not use it, then publishes at the new commit (clearing the old)
        let view = try ledger.permissions(email: "admin-org0@org0.example")
        #expect(view == (try other.permissions(email: "admin-org0@org0.example")))
        #expect(hot.version == after)
        // an older commit can't overwrite a newer cache
        hot.publish(base: head, new: head) { Issue.record("published from an older commit") }
        #expect(hot.version == after)
    }
}

/// Checks answered from the hot cache while another thread writes must each be the answer at
/// the commit they name: `check(asOf: .seq(r.asOfSeq))` (a replay) gives the same result.
@Suite("Hot cache under concurrent writes")
struct HotCacheConcurrencyTests {
    @Test("checks on three threads during writes on a fourth equal the replayed answer at their seq")
    func answersAreSnapshots() throws {
        let dir = TempDir()
        var options = PermissionLedger.Options(authorizationKey: testKey, durability: .noSync, initialMapSize: 1 << 20)
        options.hotWholeLoadInterval = 0
        options.hotWholeLoadAfterMisses = 1
        let ledger = try PermissionLedger(directory: dir.path, options: options)
        var generator = HistoryGenerator(seed: 21, organisations: 6)
        _ = try ledger.executeBatch(generator.commands(300))
        let later = generator.commands(1_500)
        let accounts = (0 ..< 6).flatMap { o in ["admin-org\(o)", "u0-org\(o)", "u1-org\(o)", "u2-org\(o)"] }
        let lids = (0 ..< 6).flatMap { o in ["EN-\(o)-0", "EN-\(o)-1", "MBSA-\(o)", "OL-\(o)-0", "SEL-\(o)-0"] }
        // real threads (not the cooperative pool, which other suites share): readers keep
        // asking while the writer writes
        let writing = Atomic<Bool>(true)
        let asked = Atomic<Int>(0)
        let collected = Mutex<[(String, String, CheckResult)]>([])
        let failures = Mutex<[String]>([])
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {
            defer { writing.store(false, ordering: .releasing) }
            // start once every reader is asking
            let deadline = Date().addingTimeInterval(10)
            while asked.load(ordering: .acquiring) < 150, Date() < deadline { usleep(200) }
            var i = 0
            do {
                while i < later.count {
                    _ = try ledger.executeBatch(Array(later[i ..< min(later.count, i + 1 + i % 7)]))
                    i += 1 + i % 7
                    // let the readers ask about this commit before the next one (a busy machine
                    // could otherwise run the writer to the end while they wait for a core)
                    let seen = asked.load(ordering: .acquiring)
                    let pause = Date().addingTimeInterval(0.05)
                    while asked.load(ordering: .acquiring) < seen + 6, Date() < pause { usleep(50) }
                }
            } catch { failures.withLock { $0.append("writer: \(error)") } }
        }
        for t in 0 ..< 3 {
            DispatchQueue.global().async(group: group) {
                var rng = SeededRandom(seed: UInt64(t) + 100)
                var seen: [(String, String, CheckResult)] = []
                var answered = 0
                do {
                    // ask for as long as the writer writes (however slow a busy machine makes it),
                    // keeping a uniform sample of 3,000 answers (reservoir sampling)
                    while writing.load(ordering: .acquiring) || seen.count < 300 {
                        let a = accounts[rng.below(accounts.count)], l = lids[rng.below(lids.count)]
                        let answer = (a, l, try ledger.check(account: a, action: .downloadSoftware, licensingId: l))
                        answered += 1
                        if seen.count < 3_000 {
                            seen.append(answer)
                        } else {
                            let slot = rng.below(answered)
                            if slot < seen.count { seen[slot] = answer }
                        }
                        asked.add(1, ordering: .relaxed)
                    }
                } catch { failures.withLock { $0.append("reader \(t): \(error)") } }
                let done = seen
                collected.withLock { $0 += done }
            }
        }
        group.wait()
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        let results = collected.withLock { $0 }
        #expect(results.count >= 900)
        #expect(Set(results.map(\.2.asOfSeq)).count > 20, "the checks did not interleave with the writes")
        #expect(results.contains { $0.2.allowed } && results.contains { $0.2.reason == .noRole }, "the checks asked nothing interesting")
        #expect((ledger.hot?.answeredWithoutTransaction ?? 0) > 0, "no check was answered from the cache alone")
        var wrong = 0
        let replay = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey, durability: .noSync, hotCacheEntries: 0))
        for (a, l, r) in results.shuffled().prefix(1_500)
            where try replay.check(account: a, action: .downloadSoftware, licensingId: l, asOf: .seq(r.asOfSeq)) != r {
            wrong += 1
        }
        #expect(wrong == 0, "\(wrong) checks differ from the replayed answer at their seq")
    }
}
