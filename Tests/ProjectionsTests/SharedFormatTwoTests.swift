import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import _LedgerTestSupport
import Testing

/// The replication primitives on format-2 ledgers (issue 18): events travel with the vault
/// items they need, several hosts race for the same new emails, and an erasure reaches every
/// replica. The shared log is modelled in memory with the semantics of the PostgreSQL one
/// (append only at the expected head; an erasure empties the subject's items in the same
/// step); the SharedLog package runs the same flow against a real server.
@Suite("Replication of format-2 ledgers: vault items beside the events (issue 18)")
struct SharedFormatTwoTests {
    /// A shared log in memory: events, and each vault item at the seq of the first event of
    /// the append that brought it (as `NAME_personal` in PostgreSQL).
    final class MemoryLog {
        var events: [StoredEvent] = []
        var items: [(seq: UInt64, item: VaultItem)] = []

        var head: Head {
            guard let last = events.last else { return Head(seq: 0, hash: Envelope.genesisHash, at: nil) }
            return Head(seq: last.seq, hash: last.hash, at: last.at)
        }

        /// Appends when `base` is still the head; false on a conflict (nothing appended).
        func append(_ events: [StoredEvent], personal: [VaultItem], after base: Head, erasing: Pseudonym? = nil) -> Bool {
            guard base.seq == head.seq, base.hash == head.hash, let first = events.first else { return false }
            self.events += events
            items += personal.map { (first.seq, $0) }
            if let erasing {
                for i in items.indices where items[i].item.subject == erasing { items[i].item.plain = nil }
            }
            return true
        }

        /// Catches `ledger` up in pages of `page` events, each with the items of its seqs.
        @discardableResult
        func catchUp(_ ledger: PermissionLedger, page: Int = 50) throws -> Head {
            var head = try ledger.inspector.head()
            while head.seq < events.count {
                let slice = Array(events[Int(head.seq) ..< min(events.count, Int(head.seq) + page)])
                let range = (slice.first?.seq ?? 0) ... (slice.last?.seq ?? 0)
                head = try ledger.applyReplicated(slice, personal: items.filter { range.contains($0.seq) }.map(\.item))
            }
            return head
        }
    }

    static func open(_ dir: TempDir) throws -> PermissionLedger { try FormatTwoTests.open(dir.path, format: 2) }

    /// A few answers that read every kind of personal value, as each host shows them.
    /// `timed`: also the answers that show events' times and ids (equal only between
    /// ledgers holding the same events).
    static func answers(_ ledger: PermissionLedger, emails: [String], accounts: [String], lids: [String], timed: Bool = true) throws -> [String] {
        var out: [String] = []
        for e in emails {
            out.append("\(try ledger.permissions(email: e))")
            if timed { out.append("\(try ledger.history(email: e))") }
        }
        for a in accounts {
            out.append("\(try ledger.permissions(account: a))")
            for lid in lids.prefix(4) { out.append("\(try ledger.check(account: a, action: .manageUsers, licensingId: lid))") }
        }
        for lid in lids {
            if timed { out.append("\(try ledger.access(licensingId: lid))") }
            out.append("\(try ledger.administrators(of: lid))")
        }
        if timed { out.append("\(try ledger.requests())") }
        return out
    }

    @Test("three hosts racing through one shared log: the results and answers of one ledger executing the same batches in the log's order, and a late replica's too")
    func racingHosts() throws {
        let dirs = [TempDir(), TempDir(), TempDir()], originDir = TempDir(), lateDir = TempDir()
        let hosts = try dirs.map(Self.open), origin = try Self.open(originDir)
        let log = MemoryLog()
        var generator = HistoryGenerator(seed: 77, organisations: 12)
        var queues = [[TimedCommand]](repeating: [], count: 3)
        // without times: each is stamped when decided, so that three queues never go back in time
        for (i, c) in generator.commands(900).enumerated() { queues[i % 3].append(TimedCommand(c.command, id: c.id)) }
        var rng = SeededRandom(seed: 77)
        var conflicts = 0, adoptedElsewhere = 0
        while queues.contains(where: { !$0.isEmpty }) {
            // every host with work catches up and decides its next batch at the same head …
            var prepared: [(Int, Int, PreparedBatch)] = []
            for h in hosts.indices where !queues[h].isEmpty {
                try log.catchUp(hosts[h])
                let n = min(queues[h].count, 1 + rng.below(6))
                prepared.append((h, n, try hosts[h].prepareBatch(Array(queues[h].prefix(n)))))
            }
            // … and they append in a random order: the first wins, the others decide again next round
            prepared.shuffle(using: &rng)
            for (h, n, batch) in prepared {
                // (a batch that appends nothing is compared with the origin only when decided at the head)
                let done = batch.events.isEmpty ? batch.base == log.head : log.append(batch.events, personal: batch.personal, after: batch.base)
                if done {
                    try hosts[h].applyReplicated(batch.events, personal: batch.personal)
                    let expected = try origin.executeBatch(Array(queues[h].prefix(n)))
                    #expect(expected.map(\.seqs) == batch.results.map(\.seqs))
                    #expect(expected.map(\.refusal) == batch.results.map(\.refusal), "host \(h)")
                    queues[h].removeFirst(n)
                } else {
                    conflicts += 1
                    // a losing host made fresh subjects that the log never took: none is in its vault
                    adoptedElsewhere += batch.personal.filter { $0.kind == .subject }.count
                }
            }
        }
        #expect(conflicts > 50 && adoptedElsewhere > 10, "the race was run: \(conflicts) conflicts, \(adoptedElsewhere) subjects dropped")
        let late = try Self.open(lateDir)
        for ledger in hosts + [late] { try log.catchUp(ledger, page: 37) }

        let events = try origin.events()
        let fields = events.flatMap(\.event.personalFields)
        let emails = Array(Set(fields.filter { $0.kind == .email }.map(\.value))).sorted().prefix(30)
        let accounts = Array(Set(fields.filter { $0.kind == .account }.map(\.value))).sorted().prefix(20)
        let lids = Array(Set(events.compactMap(\.event.licensingId))).sorted()
        #expect(emails.count >= 20 && accounts.count >= 10)
        // the origin stamped its own times and ids; the hosts and the late replica hold the same events
        let untimed = try Self.answers(origin, emails: Array(emails), accounts: Array(accounts), lids: lids, timed: false)
        let expected = try Self.answers(hosts[0], emails: Array(emails), accounts: Array(accounts), lids: lids)
        let shown = events.map { "\($0.seq) \($0.event)" }
        for (i, ledger) in (hosts + [late]).enumerated() {
            #expect(try ledger.inspector.head().seq == UInt64(log.events.count))
            #expect(try ledger.events().map { "\($0.seq) \($0.event)" } == shown, "ledger \(i) shows other events")
            #expect(try Self.answers(ledger, emails: Array(emails), accounts: Array(accounts), lids: lids, timed: false) == untimed, "ledger \(i)")
            #expect(try Self.answers(ledger, emails: Array(emails), accounts: Array(accounts), lids: lids) == expected, "ledger \(i)")
            #expect(try ledger.verify().ok)
            // the same log byte for byte on every host
            #expect(try ledger.log.events() == log.events)
        }
        // no personal value is in the shared log's events: only pseudonyms and commitments
        let logBytes = log.events.flatMap(\.storedBytes)
        for value in (emails + accounts).filter({ $0.count >= 6 }) { #expect(!holds(logBytes, value), "\(value) in the shared events") }
    }

    static let planted = ErasureTests.planted

    /// Runs `commands` through `host` and the shared log (one append each).
    static func run(_ host: PermissionLedger, _ log: MemoryLog, _ commands: [TimedCommand]) throws -> [ExecutionResult] {
        try log.catchUp(host)
        let batch = try host.prepareBatch(commands)
        #expect(log.append(batch.events, personal: batch.personal, after: batch.base) || batch.events.isEmpty)
        try host.applyReplicated(batch.events, personal: batch.personal)
        return batch.results
    }

    @Test("an erasure through the shared log: every replica erases when it applies it — online, caught up later, or new — and shows the same facts; a re-registration is a new subject everywhere")
    func erasureReachesReplicas() throws {
        let dirA = TempDir(), dirB = TempDir(), dirC = TempDir(), dirD = TempDir()
        let a = try Self.open(dirA), b = try Self.open(dirB), c = try Self.open(dirC)
        let log = MemoryLog()
        var generator = HistoryGenerator(seed: 41, organisations: 8)
        _ = try Self.run(a, log, generator.commands(300))
        var t = log.head.at ?? ErasureTests.t0
        func at() -> Timestamp { t = t.adding(seconds: 60); return t }
        let p = Self.planted
        let story = p.story(revoked: false)
        // the subject is made on host A and used on host B
        for r in try Self.run(a, log, story.prefix(7).map { TimedCommand(at: at(), $0) }) { #expect(r.accepted, "\(r)") }
        for r in try Self.run(b, log, story.dropFirst(7).map { TimedCommand(at: at(), $0) }) { #expect(r.accepted, "\(r)") }
        try log.catchUp(c)
        let values = p.values
        let exportedBefore = Array(try c.events().map(\.json.text).joined(separator: "\n").utf8)
        for v in values { #expect(holds(exportedBefore, v), "control: replica C shows \(v) before") }
        #expect(try c.permissions(account: p.account).get().email == p.email, "C shows the values of a subject made on A")

        // refused while the subject holds a role; then B revokes it and erases through the log
        try log.catchUp(b)
        #expect(try b.prepareErasure(email: p.email, legalBasis: .objection, at: at()).result.refusal?.code == .subjectHoldsAccess)
        #expect(try b.prepareErasure(email: "nobody@nowhere.example", legalBasis: .objection, at: at()).result.refusal?.code == .unknownEmail)
        _ = try Self.run(b, log, [TimedCommand(at: at(), .revokeRoles(by: "boss", email: p.email, licensingId: "E-PLANT", roles: [.administrator]))])
        // a replica's own erase would diverge from the log: refused, nothing appended
        let headBefore = try b.inspector.head()
        #expect(throws: InputError.self) { try b.erase(email: p.email, legalBasis: .objection, at: at()) }
        #expect(try b.inspector.head() == headBefore && b.vault?.subject(email: p.email) != nil)
        let prepared = try b.prepareErasure(email: p.email, legalBasis: .objection, at: at())
        let subject = try #require(prepared.result.subject.flatMap { Pseudonym(hex: $0) })
        #expect(prepared.result.fieldsErased >= values.count && prepared.events.count == 1)
        #expect(try b.inspector.head() == prepared.base, "prepareErasure writes nothing")
        #expect(log.append(prepared.events, personal: [], after: prepared.base, erasing: subject))
        try b.applyReplicated(prepared.events)
        #expect(try b.prepareErasure(email: p.email, legalBasis: .objection, at: at()).result.refusal?.code == .alreadyErased)

        // the same email registers again: a new subject
        _ = try Self.run(b, log, [TimedCommand(at: at(), .registerUser(account: "zq-again", businessEmail: p.email)),
                                  TimedCommand(at: at(), .validateEmail(account: "zq-again"))])
        // A was online (catches up now, the erasure and the new registration in one page);
        // C catches up after them; D is a new replica whose items of the subject are gone
        try log.catchUp(a, page: 1_000)
        try log.catchUp(c, page: 3)
        let d = try Self.open(dirD)
        try log.catchUp(d)
        let shown = try b.events().map(\.json.text)
        #expect(shown.contains { $0.contains("erased:\(subject)") })
        for (name, ledger, dir) in [("A", a, dirA), ("B", b, dirB), ("C", c, dirC), ("D", d, dirD)] {
            #expect(try ledger.events().map(\.json.text) == shown, "replica \(name) shows other events")
            #expect(try ledger.verify().ok, "\(name)")
            #expect(try ledger.permissions(account: "zq-again").get().email == p.email, "\(name): the new account resolves")
            let gone = try ledger.permissions(account: p.account)
            guard case let .failure(refusal) = gone else { Issue.record("\(name): the erased account still resolves: \(gone)"); continue }
            #expect(refusal.code == .notRegistered, "\(name): \(refusal)")
            // no file of any replica holds the erased values, in any form (the new registration's email aside)
            let files = filesUnder(dir.path)
            for v in values.dropFirst() {
                for form in plaintextForms(v) {
                    let holders = files.filter { holds($0.1, form) }.map(\.0)
                    #expect(holders.isEmpty, "\(name): \(v) in \(holders)")
                }
            }
        }
        // the items the shared log keeps of the subject are pseudonyms only
        #expect(log.items.filter { $0.item.subject == subject }.allSatisfy { $0.item.plain == nil })
    }

    @Test("events whose vault items are missing or altered are refused, all or nothing; items for a format-1 ledger too")
    func refusals() throws {
        let dirA = TempDir(), dirB = TempDir()
        let a = try Self.open(dirA), b = try Self.open(dirB)
        let log = MemoryLog()
        var generator = HistoryGenerator(seed: 9, organisations: 4)
        _ = try Self.run(a, log, generator.commands(60))
        #expect(log.items.contains { $0.item.kind == .text }, "the history wrote free texts")
        // without the items
        #expect {
            try b.applyReplicated(log.events)
        } throws: { error in (error as? ReplicationError)?.code == "invalidReplicatedEvent" && "\(error)".contains("missingPersonalData") }
        #expect(try b.inspector.head().seq == 0)
        // a text that does not match its commitment
        var altered = log.items.map(\.item)
        let text = try #require(altered.firstIndex { $0.kind == .text && $0.plain != nil })
        altered[text].plain = (altered[text].plain ?? []) + Array("!".utf8)
        #expect {
            try b.applyReplicated(log.events, personal: altered)
        } throws: { error in "\(error)".contains("commitment") }
        #expect(try b.inspector.head().seq == 0)
        // a subject's email taken by another subject's item
        var twice = log.items.map(\.item)
        let first = try #require(twice.firstIndex { $0.kind == .subject })
        var copy = twice[first]
        let other = try #require(Pseudonym(bytes: Array(repeating: 7, count: 16)))
        copy.ref = other.bytes
        copy.subject = other
        twice.append(copy)
        #expect(throws: ReplicationError.self) { try b.applyReplicated(log.events, personal: twice) }
        #expect(try b.inspector.head().seq == 0)
        // the right items apply
        try log.catchUp(b)
        #expect(try b.events().map(\.json.text) == a.events().map(\.json.text))
        // a format-1 ledger takes no items
        let legacyDir = TempDir()
        var options = PermissionLedger.Options(authorizationKey: testKey)
        options.eventFormat = 1
        let legacy = try PermissionLedger(directory: legacyDir.path, options: options)
        #expect(throws: InputError.self) { try legacy.applyReplicated([], personal: [altered[text]]) }
    }
}
