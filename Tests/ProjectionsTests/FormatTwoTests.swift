import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import _LedgerTestSupport
import Testing

/// Event format 2 (issue 18): the same history on a format-1 and a format-2 ledger gives the
/// same answer to every question, while no file of the format-2 ledger holds a personal value.
@Suite("Event format 2: pseudonyms and commitments in the log, values in the vault (issue 18)")
struct FormatTwoTests {
    static func open(_ path: String, format: UInt8) throws -> PermissionLedger {
        var options = PermissionLedger.Options(authorizationKey: testKey, durability: .noSync, initialMapSize: 1 << 20)
        options.eventFormat = format
        return try PermissionLedger(directory: path, options: options)
    }



    @Test("a batch's new subjects and accounts are in the ledger's cache once the vault holds them, as a read gives them; a refused command's are in neither")
    func cacheTakesCommitted() throws {
        let dir = TempDir()
        let ledger = try Self.open(dir.path, format: 2)
        guard let vault = ledger.vault else { Issue.record("format 2 has a vault"); return }
        let results = try ledger.executeBatch([
            TimedCommand(.registerUser(account: "ravi", businessEmail: "ravi@contoso.example")),
            // refused (the account name is taken): its new email makes no subject
            TimedCommand(.registerUser(account: "ravi", businessEmail: "other@contoso.example")),
        ])
        #expect(results[0].refusal == nil && results[1].refusal != nil)
        let generation = try vault.generation
        let kept = ledger.personalCache.with(generation) { ($0.subjects, $0.accounts, $0.owners, $0.values) }
        let subject = try vault.subject(email: "ravi@contoso.example")
        let account = try vault.account(named: "ravi")
        #expect(subject != nil && account?.owner == subject)
        #expect(kept.0["ravi@contoso.example"] == subject)
        #expect(kept.1["ravi"] == account)
        #expect(account.map { kept.2[$0.pseudonym] } == subject)
        #expect(subject.map { kept.3[PersonalToken.email($0).string] } == "ravi@contoso.example")
        #expect(account.map { kept.3[PersonalToken.account($0.pseudonym).string] } == "ravi")
        #expect(try vault.subject(email: "other@contoso.example") == nil)
        #expect(kept.0["other@contoso.example"] == nil)
        // the next batch names them through the cache, and answers show the values
        let validated = try ledger.executeBatch([TimedCommand(.validateEmail(account: "ravi"))])
        #expect(validated[0].refusal == nil)
        #expect(try ledger.permissions(account: "ravi").get().email == "ravi@contoso.example")
    }

    @Test("one history, two formats: every command's result and every question's answer are the same", arguments: [31, 32] as [UInt64])
    func sameAnswers(seed: UInt64) throws {
        let dir1 = TempDir(), dir2 = TempDir()
        let plain = try Self.open(dir1.path, format: 1), sealed = try Self.open(dir2.path, format: 2)
        #expect(plain.eventFormat == 1 && sealed.eventFormat == 2 && sealed.vault != nil)
        var generator = HistoryGenerator(seed: seed, organisations: 20)
        let commands = generator.commands(1_200)
        var rng = SeededRandom(seed: seed)
        var start = 0
        while start < commands.count {
            let batch = Array(commands[start ..< min(commands.count, start + 1 + rng.below(30))])
            start += batch.count
            let a = try plain.executeBatch(batch), b = try sealed.executeBatch(batch)
            #expect(a == b, "batch at \(start - batch.count): \(zip(a, b).first { $0 != $1 }.map { "\($0) vs \($1)" } ?? "")")
        }
        let events = try plain.events()
        let sealedEvents = try sealed.events()
        let firstDifferent = zip(sealedEvents, events).first { $0.event != $1.event }
        #expect(firstDifferent == nil, "\(firstDifferent.map { "seq \($0.seq): \($0.event) vs \($1.event)" } ?? "")")
        #expect(try sealed.events().map(\.seq) == events.map(\.seq))
        let fields = events.flatMap(\.event.personalFields)
        let emails = Array(Set(fields.filter { $0.kind == .email }.map(\.value))).sorted()
        let accounts = Array(Set(fields.filter { $0.kind == .account }.map(\.value))).sorted()
        let lids = Array(Set(events.compactMap(\.event.licensingId))).sorted()
        #expect(emails.count > 20 && accounts.count > 10 && lids.count > 10)
        let head = try plain.inspector.head().seq
        let points: [AsOf?] = [nil, .seq(head / 3), .seq(head / 2 + 1)]
        for point in points {
            for e in emails.prefix(40) {
                #expect(try plain.permissions(email: e, asOf: point) == sealed.permissions(email: e, asOf: point), "\(e)")
                for lid in lids.prefix(6) {
                    #expect(try plain.explain(email: e, licensingId: lid, asOf: point) == sealed.explain(email: e, licensingId: lid, asOf: point))
                }
            }
            for lid in lids {
                #expect(try plain.access(licensingId: lid, asOf: point) == sealed.access(licensingId: lid, asOf: point), "\(lid)")
                #expect(try plain.administrators(of: lid, asOf: point) == sealed.administrators(of: lid, asOf: point), "\(lid)")
            }
            for a in accounts.prefix(30) {
                #expect(try plain.permissions(account: a, asOf: point) == sealed.permissions(account: a, asOf: point), "\(a)")
                for lid in lids.prefix(5) {
                    for action in [Action.manageUsers, .downloadSoftware, .viewLicensingInfo] {
                        #expect(try plain.check(account: a, action: action, licensingId: lid, asOf: point)
                                == sealed.check(account: a, action: action, licensingId: lid, asOf: point), "\(a) \(lid) \(action)")
                    }
                }
                let now = Timestamp(seconds: 1_767_225_600 + 86_400 * 400)
                #expect(try plain.lockout(account: a, asOf: point, now: now) == sealed.lockout(account: a, asOf: point, now: now))
            }
            #expect(try plain.requests(asOf: point) == sealed.requests(asOf: point))
        }
        for e in emails.prefix(40) {
            #expect(try plain.history(email: e) == sealed.history(email: e), "\(e)")
        }
        #expect(try plain.diff(from: .seq(head / 4)) == sealed.diff(from: .seq(head / 4)))
        #expect(try plain.diff(from: .seq(head / 4), to: .seq(head / 2), email: emails[3]) == sealed.diff(from: .seq(head / 4), to: .seq(head / 2), email: emails[3]))
        #expect(try plain.changes(after: head / 2).changes == sealed.changes(after: head / 2).changes)
        #expect(try plain.requests(routedTo: emails[0]) == sealed.requests(routedTo: emails[0]))
        // unknown names are answered the same way
        #expect(try plain.permissions(account: "nobody-here") == sealed.permissions(account: "nobody-here"))
        #expect(try plain.permissions(email: "never@seen.example") == sealed.permissions(email: "never@seen.example"))
        #expect(try plain.check(account: "nobody-here", action: .downloadSoftware, licensingId: lids[0])
                == sealed.check(account: "nobody-here", action: .downloadSoftware, licensingId: lids[0]))
        // what-if: the next commands, decided on each
        let next = generator.commands(30)
        #expect(try plain.whatIf(next) == sealed.whatIf(next))

        // sound, and the same after a rebuild and a reopen
        #expect(try sealed.verify().ok)
        _ = try sealed.rebuild()
        #expect(try sealed.verify().ok)
        let reopened = try Self.open(dir2.path, format: 1)
        #expect(reopened.eventFormat == 2, "a ledger keeps the format it was made with")
        #expect(try reopened.access(licensingId: lids[0]) == plain.access(licensingId: lids[0]))

        // no personal value in any file of the format-2 ledger; the format-1 one holds them
        let sample = (emails.prefix(25) + accounts.prefix(25)).filter { $0.count >= 6 }
        let sealedFiles = filesUnder(dir2.path), plainLog = filesUnder(dir1.path).filter { $0.0 == "data.mdb" }
        #expect(sealedFiles.contains { $0.0.hasSuffix("vault/current") })
        for value in sample {
            #expect(plainLog.contains { holds($0.1, value) }, "control: \(value) in the format-1 log")
            let holders = sealedFiles.filter { holds($0.1, value) }.map(\.0)
            #expect(holders.isEmpty, "\(value) in \(holders)")
        }
    }

    @Test("refusals name what the command named, never a token; an event format this build does not know is refused")
    func messagesAndFormats() throws {
        let dir = TempDir()
        let ledger = try Self.open(dir.path, format: 2)
        let at = Timestamp(seconds: 1_767_225_600)
        let results = try ledger.executeBatch([
            TimedCommand(at: at, .registerUser(account: "Zelda", businessEmail: "zelda@contoso.example")),
            TimedCommand(at: at, .registerUser(account: "zelda", businessEmail: "zelda@contoso.example")),
            TimedCommand(at: at, .grantRoles(by: "zelda", email: "kim@contoso.example", licensingId: "L1", roles: [.download], saBenefits: [])),
            TimedCommand(at: at, .validateEmail(account: "ghost")),
        ])
        #expect(results[0].accepted)
        #expect(results[1].refusal?.code == .alreadyRegistered)
        #expect(results[1].refusal?.message.contains("'zelda'") == true, "\(results[1].refusal?.message ?? "")")
        #expect(results[2].refusal?.code == .emailNotValidated)
        #expect(results[2].refusal?.message.contains("zelda@contoso.example") == true, "\(results[2].refusal?.message ?? "")")
        #expect(results[3].refusal?.message.contains("ghost") == true)
        for r in results { #expect(!(r.refusal?.message.contains("~e") ?? false) && !(r.refusal?.message.contains("~a") ?? false)) }
        // the refused commands' new names were not kept
        #expect(try ledger.vault?.subject(email: "kim@contoso.example") == nil)
        #expect(try ledger.vault?.account(named: "ghost") == nil)
        #expect(try ledger.vault?.account(named: "zelda") != nil)
        var options = PermissionLedger.Options(durability: .noSync, initialMapSize: 1 << 20)
        options.eventFormat = 3
        #expect(throws: InputError.self) { _ = try PermissionLedger(directory: TempDir().path, options: options) }
    }
}

@Suite("Upgrading a format-1 ledger to format 2 (issue 18)")
struct UpgradeTests {
    @Test("upgrade writes every event with its id, time and facts into a format-2 ledger whose answers are the same; only the hashes change")
    func upgrade() throws {
        let dir1 = TempDir(), dir2 = TempDir()
        let old = try FormatTwoTests.open(dir1.path, format: 1)
        var generator = HistoryGenerator(seed: 51, organisations: 15)
        _ = try old.executeBatch(generator.commands(900))
        let report = try old.upgrade(to: dir2.path + "/new", options: .init(authorizationKey: testKey, durability: .noSync))
        let new = try PermissionLedger(directory: dir2.path + "/new", options: .init(authorizationKey: testKey))
        #expect(new.eventFormat == 2)
        let oldHead = try old.inspector.head(), newHead = try new.inspector.head()
        #expect(report.oldHead == oldHead && report.newHead == newHead)
        #expect(report.oldHead.seq == report.newHead.seq && report.oldHead.hash != report.newHead.hash)
        let before = try old.events(), after = try new.events()
        #expect(before.map(\.id) == after.map(\.id) && before.map(\.at) == after.map(\.at))
        #expect(before.map(\.event) == after.map(\.event))
        #expect(try new.verify().ok)
        let lids = Array(Set(before.compactMap(\.event.licensingId))).sorted()
        for lid in lids { #expect(try old.access(licensingId: lid) == new.access(licensingId: lid), "\(lid)") }
        // the same commands afterwards decide the same way
        let next = generator.commands(100)
        #expect(try old.executeBatch(next) == new.executeBatch(next))
        // refusals: a format-2 ledger, and a directory holding a ledger
        #expect(throws: InputError.self) { _ = try new.upgrade(to: TempDir().path) }
        #expect(throws: InputError.self) { _ = try old.upgrade(to: dir2.path + "/new") }
    }
}
