import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import _LedgerTestSupport
import Testing

/// The changelog and the auditor's questions (DOMAIN.md §4.1) against brute force: every
/// pair's effective permissions recomputed from a memory fold before and after each event.
@Suite("Changelog and the auditor's questions")
struct ChangelogTests {
    /// The brute-force reference of a history: each event's effective changes, found by
    /// comparing every (email, Licensing ID) pair seen so far before and after it, and the
    /// effective permissions of every pair at the sampled points.
    struct Reference {
        var changes: [PermissionChange] = []
        var snapshots: [UInt64: [String: EffectivePermissions]] = [:]
        var lids: [String] = []
        var emails: [String] = []

        init(_ events: [LedgerEvent], evolver: Evolver, sampleAt points: Set<UInt64>) throws {
            let state = DomainState()
            var emailSet = Set<String>(), lidSet = Set<String>()
            var current: [String: EffectivePermissions] = [:]  // "email␀lid" → non-empty value
            if points.contains(0) { snapshots[0] = [:] }
            for e in events {
                try evolver.evolve(state, e.event, seq: e.seq, at: e.at)
                for email in e.event.emails { emailSet.insert(email) }
                if case let .agreementRecorded(r) = e.event {
                    lidSet.insert(r.licensingId)
                    for c in r.contacts { emailSet.insert(c.email) }
                }
                var batch: [PermissionChange] = []
                for email in emailSet {
                    for lid in lidSet {
                        let key = DomainState.pairKey(email, lid)
                        let report = try state.roleReport(email, lid)
                        let after = EffectivePermissions(roles: report.roles, saBenefits: report.saBenefits)
                        let before = current[key] ?? .none
                        guard after != before else { continue }
                        current[key] = after.isEmpty ? nil : after
                        batch.append(PermissionChange(seq: e.seq, at: e.at, type: e.type, email: email, licensingId: lid, before: before, after: after))
                    }
                }
                changes += batch.sorted { bytesPrecede([$0.email, $0.licensingId], [$1.email, $1.licensingId]) }
                if points.contains(e.seq) { snapshots[e.seq] = current }
            }
            lids = lidSet.sorted()
            emails = emailSet.sorted()
        }
    }

    /// A random history on disk: `commands` commands in batches, 3-level chains, opt-outs
    /// in the middle, every command kind the generator makes.
    static func history(seed: UInt64, commands: Int, organisations: Int = 4) throws -> (TempDir, PermissionLedger) {
        let dir = TempDir()
        let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey, durability: .noSync))
        var g = HistoryGenerator(seed: seed, organisations: organisations)
        var left = commands
        var rng = SeededRandom(seed: seed &+ 1)
        while left > 0 {
            let n = min(left, 1 + rng.below(60))
            _ = try ledger.executeBatch(g.commands(n))
            left -= n
        }
        return (dir, ledger)
    }

    /// Every stored change after seq 0, read through `changes(after:)` in small pages.
    static func storedChanges(_ ledger: PermissionLedger, email: String? = nil, licensingId: String? = nil) throws -> [PermissionChange] {
        var out: [PermissionChange] = []
        var cursor: UInt64 = 0
        while true {
            let (page, through) = try ledger.changes(after: cursor, email: email, licensingId: licensingId, limit: 37)
            out += page
            if through == cursor { return out }
            cursor = through
        }
    }

    @Test("the stored changelog equals brute force, and history, diff and access are the changelog's answers",
          arguments: [(3, 900), (41, 2_000)] as [(UInt64, Int)])
    func changelogEqualsBruteForce(seed: UInt64, commands: Int) throws {
        let (dir, ledger) = try Self.history(seed: seed, commands: commands)
        _ = dir
        let events = try ledger.events()
        let head = try ledger.log.head().seq
        #expect(head > UInt64(commands * 3 / 4))
        var rng = SeededRandom(seed: seed)
        let points = Set((0 ..< 6).map { _ in UInt64(rng.below(Int(head) + 1)) } + [0, head / 2, head])
        let reference = try Reference(events, evolver: ledger.evolver, sampleAt: points)
        let stored = try Self.storedChanges(ledger)
        #expect(stored.count == reference.changes.count)
        for (s, r) in zip(stored, reference.changes) where s != r {
            Issue.record("first difference: stored \(s), brute force \(r)")
            break
        }
        // the cascades were exercised: changes that name neither the event's email nor its ID
        let byType = Dictionary(grouping: reference.changes, by: \.type).mapValues(\.count)
        #expect((byType["adminInheritanceOptedOut"] ?? 0) > 0 && (byType["agreementRecorded"] ?? 0) > 0, "\(byType)")
        let cascaded = reference.changes.filter { c in
            guard let e = events.first(where: { $0.seq == c.seq }) else { return false }
            return e.event.licensingId != c.licensingId
        }
        #expect(cascaded.count > 10, "few cascaded changes: the history does not test them")

        // history = the changelog filtered
        let ordered = points.sorted()
        for email in reference.emails.prefix(12) {
            let all = try ledger.history(email: email).get()
            #expect(all.changes == reference.changes.filter { $0.email == email }.sorted { ($0.seq, $0.licensingId) < ($1.seq, $1.licensingId) })
            let (p1, p2) = (ordered[1], ordered[ordered.count - 2])
            let window = try ledger.history(email: email, from: .seq(p1), to: .seq(p2)).get()
            #expect(window.changes == all.changes.filter { $0.seq > p1 && $0.seq <= p2 })
            if let lid = all.changes.first?.licensingId {
                let one = try ledger.history(email: email, licensingId: lid).get()
                #expect(one.changes == all.changes.filter { $0.licensingId == lid })
            }
        }
        // diff(P1, P2) = every pair compared at both points
        for (p1, p2) in zip(ordered, ordered.dropFirst()) + [(ordered[0], ordered[ordered.count - 1]), (ordered[ordered.count - 1], ordered[1])] {
            let a = reference.snapshots[p1] ?? [:], b = reference.snapshots[p2] ?? [:]
            var expected: [PermissionDifference] = []
            for key in Set(a.keys).union(b.keys) where a[key] != b[key] {
                let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
                expected.append(PermissionDifference(email: parts[0], licensingId: parts[1], before: a[key] ?? .none, after: b[key] ?? .none))
            }
            expected.sort { bytesPrecede([$0.email, $0.licensingId], [$1.email, $1.licensingId]) }
            let diff = try ledger.diff(from: .seq(p1), to: .seq(p2)).get()
            #expect(diff.changes == expected, "diff \(p1) → \(p2)")
            if let email = expected.first?.email {
                #expect(try ledger.diff(from: .seq(p1), to: .seq(p2), email: email).get().changes == expected.filter { $0.email == email })
            }
        }
        // access at a point = every email whose permissions row for L is not empty there
        for p in ordered {
            let snapshot = reference.snapshots[p] ?? [:]
            for lid in reference.lids.prefix(10) {
                let expected = snapshot.filter { $0.key.hasSuffix("\u{0}" + lid) }
                    .map { (String($0.key.prefix { $0 != "\u{0}" }), $0.value) }
                    .sorted { bytesPrecede([$0.0], [$1.0]) }
                switch try ledger.access(licensingId: lid, asOf: .seq(p)) {
                case let .success(review):
                    #expect(review.principals.map(\.email) == expected.map(\.0), "access \(lid) at \(p)")
                    #expect(review.principals.map(\.permissions) == expected.map(\.1), "access \(lid) at \(p)")
                    for principal in review.principals {
                        let row = try ledger.permissions(email: principal.email, asOf: .seq(p), includeInactive: true).rows.first { $0.licensingId == lid }
                        #expect(row?.roles == principal.permissions.roles)
                    }
                case let .failure(error):
                    #expect(error.code == .unknownLicensingId && expected.isEmpty, "access \(lid) at \(p): \(error)")
                }
            }
        }
        // rebuild reproduces the changelog byte for byte; verify compares it
        let before = try projectionDump(ledger)
        _ = try ledger.rebuild()
        #expect(try projectionDump(ledger) == before)
        #expect(try ledger.verify().ok)
    }

    @Test("an administrator grant on an ancestor reaches exactly the descendants no opt-out cuts off; a revocation of a role held both ways keeps the inherited one")
    func grantCascadesStopAtOptOuts() throws {
        let h = try Harness(.disk)
        guard let ledger = h.ledger else { return }
        // MB-1 → EA-1 → EN-1, EN-2 and MB-1 → EA-2 → EN-3
        try h.agreement("MB-1", .mbsa, contacts: [(.primaryContact, "pc@t.com")])
        try h.agreement("EA-1", .enterpriseAgreement, parent: "MB-1")
        try h.agreement("EN-1", .enterpriseEnrollment, parent: "EA-1")
        try h.agreement("EN-2", .enterpriseEnrollment, parent: "EA-1")
        try h.agreement("EA-2", .enterpriseAgreement, parent: "MB-1")
        try h.agreement("EN-3", .enterpriseEnrollment, parent: "EA-2")
        try h.user("pc", "pc@t.com")
        try h.user("u", "u@t.com")
        try h.ok(.grantRoles(by: "pc", email: "u@t.com", licensingId: "EA-1", roles: [.administrator], saBenefits: []))
        // u keeps EN-1 and EN-2 out of what EA-1's administration reaches
        try h.ok(.optOutAdminInheritance(account: "u", parentId: "EA-1"))
        // administrator on MB-1 reaches EA-2 and EN-3, and EA-1 (held already), but not
        // EN-1 or EN-2: the opt-out on EA-1 stands between
        let grant = try h.ok(.grantRoles(by: "pc", email: "u@t.com", licensingId: "MB-1", roles: [.administrator], saBenefits: []))
        #expect(try h.roles("u@t.com", "EN-1").isEmpty && h.roles("u@t.com", "EN-2").isEmpty)
        #expect(try h.roles("u@t.com", "EN-3") == [.administrator])
        // a role u holds directly and by inheritance on EN-3: revoking the direct one keeps it
        try h.ok(.grantRoles(by: "pc", email: "u@t.com", licensingId: "EN-3", roles: [.administrator, .download], saBenefits: []))
        let revoke = try h.ok(.revokeRoles(by: "pc", email: "u@t.com", licensingId: "EN-3", roles: [.administrator, .download]))
        #expect(try h.roles("u@t.com", "EN-3") == [.administrator])
        // a grant on the ID itself, below the opt-out
        try h.ok(.grantRoles(by: "pc", email: "u@t.com", licensingId: "EN-1", roles: [.administrator], saBenefits: []))

        let reference = try Reference(try ledger.events(), evolver: ledger.evolver, sampleAt: [])
        let stored = try Self.storedChanges(ledger)
        #expect(stored == reference.changes)
        #expect(stored.filter { $0.seq == grant.first }.map(\.licensingId) == ["EA-2", "EN-3", "MB-1"])
        #expect(stored.filter { $0.seq == revoke.first }.map(\.after.roles) == [[.administrator]])
    }

    @Test("a damaged changelog is found by verify and repaired by rebuild")
    func damagedChangelogIsFound() throws {
        let (dir, ledger) = try Self.history(seed: 5, commands: 300)
        _ = dir
        let dump = try projectionDump(ledger)
        for table in [ProjectionTable.effective, .emailChanges, .changes] {
            let db = try #require(try ledger.environment.openDatabases([table.rawValue]).first)
            let victim = try #require(dump[table.rawValue]?.dropFirst(3).first)
            let key = Array(victim.prefix { $0 != 0xFF })
            try ledger.environment.write { txn in _ = try txn.delete(db, key: key) }
            let report = try ledger.verify()
            #expect(!report.ok && (report.projectionProblem ?? "").contains(table.rawValue), "\(table): \(report.projectionProblem ?? "ok")")
            _ = try ledger.rebuild()
            #expect(try projectionDump(ledger) == dump)
        }
    }

    @Test("what-if commits nothing: the data file is byte-identical, also with a refusal and a recorded failed attempt in the middle; its answer is what executing would do")
    func whatIfCommitsNothing() throws {
        let (dir, ledger) = try Self.history(seed: 9, commands: 400)
        let head = try ledger.log.head()
        let at = head.at ?? Timestamp(seconds: 0)
        var g = HistoryGenerator(seed: 10, organisations: 4)
        _ = g.commands(400)  // the same organisations, later commands
        var commands = g.commands(30).map { TimedCommand(at: at.adding(seconds: 60), $0.command) }
        // a refusal and a recorded failed Add Open License attempt in the middle
        commands.insert(TimedCommand(at: at.adding(seconds: 60), .grantRoles(by: "nobody", email: "x@y.example", licensingId: "EA-1", roles: [.download], saBenefits: [])), at: 10)
        commands.insert(TimedCommand(at: at.adding(seconds: 60), .addOpenLicense(account: "u0-org1", licenseNumber: "OL-1-0", authorizationNumber: "wrong", acknowledged: true)), at: 15)
        // the log's data file and the vault's (format 2): what-if writes neither
        func dataFiles() -> [String: [UInt8]] {
            Dictionary(filesUnder(dir.path).filter { $0.0.hasSuffix("data.mdb") }, uniquingKeysWith: { a, _ in a })
        }
        let bytes = dataFiles()
        #expect(bytes.count == 2, "\(bytes.keys.sorted())")
        let stats = try ledger.stats()
        let answer = try ledger.whatIf(commands)
        #expect(dataFiles() == bytes)
        #expect(try ledger.stats() == stats)
        #expect(try ledger.log.head().seq == head.seq)
        #expect(try ledger.verify().ok)
        #expect(answer.results.contains { !$0.accepted } && answer.results.contains { $0.accepted })
        #expect(!answer.changes.isEmpty)
        // executing the same commands on a copy gives the same results and the same diff
        let copy = TempDir()
        try FileManager.default.removeItem(atPath: copy.path)
        try FileManager.default.copyItem(atPath: dir.path, toPath: copy.path)
        let twin = try PermissionLedger(directory: copy.path, options: .init(authorizationKey: testKey, durability: .noSync))
        let executed = try commands.map { try twin.execute($0) }
        #expect(executed == answer.results)
        #expect(try twin.log.head().seq == answer.toSeq)
        #expect(try twin.diff(from: .seq(head.seq)).get().changes == answer.changes)
    }

    @Test("the feed delivers every stored change once, in order, then new ones as they commit; a restart from a seq misses none")
    func feedDeliversEachChangeOnce() async throws {
        let (dir, ledger) = try Self.history(seed: 12, commands: 200)
        _ = dir
        var g = HistoryGenerator(seed: 13, organisations: 4)
        _ = g.commands(200)
        let more = g.commands(300)
        let writer = Task.detached {
            for chunk in stride(from: 0, to: more.count, by: 25) {
                _ = try await ledger.executeBatch(Array(more[chunk ..< min(chunk + 25, more.count)]))
                try await Task.sleep(for: .milliseconds(2))
            }
        }
        // first follower: stops at a seq boundary after 150 changes
        var first: [PermissionChange] = []
        for try await change in ledger.permissionChanges(after: 0) {
            if first.count >= 150, let last = first.last, change.seq != last.seq { break }
            first.append(change)
        }
        try await writer.value
        let total = try Self.storedChanges(ledger)
        // restarted from its last seq, it reads up to the head
        var second: [PermissionChange] = []
        for try await change in ledger.permissionChanges(after: first.last?.seq ?? 0) {
            second.append(change)
            if first.count + second.count >= total.count { break }
        }
        #expect(first + second == total)
        #expect(total.count > 200)
    }
}
