import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import _LedgerTestSupport
import Testing

/// R15 on a real format-2 ledger on disk (issue 18): the chain and every kept checkpoint still
/// verify, every fact is kept with the pseudonym in place of the person, no value is left in
/// any file, and the refusals come in DOMAIN.md's order.
@Suite("Erasure of a subject (R15, issue 18)")
struct ErasureTests {
    static let t0 = Timestamp(seconds: 1_767_225_600)
    static let planted = PlantedPerson(email: "zelda.quartermain@nightjar-erasure.example", account: "zq-nightjar-account")

    /// A format-2 ledger with a generated history and a planted subject that wrote one of
    /// each kind of personal field, administers E-PLANT for a while, then has its roles
    /// revoked; returns the ledger and the next time.
    static func ledger(_ dir: TempDir, seed: UInt64 = 41) throws -> (PermissionLedger, Timestamp) {
        let ledger = try FormatTwoTests.open(dir.path, format: 2)
        var generator = HistoryGenerator(seed: seed, organisations: 10)
        let history = generator.commands(400)
        _ = try ledger.executeBatch(history)
        var t = (try ledger.inspector.head()).at ?? t0
        func at() -> Timestamp { t = t.adding(seconds: 60); return t }
        let commands = planted.story(revoked: true)
        for c in commands {
            let r = try ledger.execute(TimedCommand(at: at(), c))
            #expect(r.accepted, "\(c): \(r.refusal.map(\.description) ?? "")")
        }
        return (ledger, at())
    }

    /// Every form a value could be written in: UTF-8 and UTF-16 (both orders), lower and
    /// upper case, JSON-escaped.
    static func forms(_ value: String) -> [[UInt8]] { plaintextForms(value) }

    static func exportText(_ ledger: PermissionLedger) throws -> [UInt8] {
        Array(try ledger.events().map(\.json.text).joined(separator: "\n").utf8)
    }

    @Test("the log's records are byte for byte the same after the erasure; verify passes and every checkpoint kept before still verifies")
    func chainInvariance() throws {
        let dir = TempDir()
        let (ledger, at) = try Self.ledger(dir)
        let head = try ledger.inspector.head().seq
        let checkpoints = try [head / 4, head / 2, head].map { seq -> Checkpoint in
            let stored = try #require(try ledger.inspector.event(seq))
            return Checkpoint(seq: seq, headHash: stored.hash, at: stored.at, signature: nil)
        } + [try ledger.inspector.checkpoint()]
        let before = try ledger.inspector.events()
        let result = try ledger.erase(email: Self.planted.email, legalBasis: .consentWithdrawn, at: at)
        #expect(result.accepted, "\(result.refusal.map(\.description) ?? "")")
        #expect(result.seqs == [head + 1])
        // the planted subject's fields: 2 + 2 + 3 (registration, validation, profile), the grant's
        // and the revocation's email, the denial's by and reason, its request's account, email
        // and comment, and its email among both requests' routedTo (it administered E-PLANT then)
        #expect(result.fieldsErased == 16)
        let after = try ledger.inspector.events()
        #expect(Array(after.prefix(before.count)) == before, "a stored record changed")
        #expect(after.count == before.count + 1 && after.last?.kind == DomainEvent.kind(typeName: "subjectErased"))
        let report = try ledger.verify()
        #expect(report.ok, "\(report)")
        // the bounded-memory comparison confirms it too (verify and rebuild would otherwise
        // fall back to a whole fold in memory)
        #expect(try ledger.streamingComparison(chunk: 97, progress: nil) == head + 1)
        #expect(try ledger.streamingComparison(progress: nil) == head + 1)
        for c in checkpoints { #expect(try ledger.inspector.problem(against: c) == nil, "checkpoint at \(c.seq)") }
        // a reopen keeps all of it
        let reopened = try FormatTwoTests.open(dir.path, format: 2)
        #expect(try reopened.verify().ok)
        #expect(try reopened.inspector.events().prefix(before.count).elementsEqual(before))
    }

    @Test("facts are kept: others' answers are unchanged; the person's show erased:PSEUDONYM; pending requests are withdrawn")
    func factsKept() throws {
        let dir = TempDir()
        let (ledger, at) = try Self.ledger(dir)
        let head = try ledger.inspector.head().seq
        let events = try ledger.events()
        let others = Array(Set(events.flatMap(\.event.personalFields).filter { $0.kind == .email }.map(\.value))
            .subtracting([Self.planted.email])).sorted()
        let sample = Array(others.prefix(30))
        let lids = Array(Set(events.compactMap(\.event.licensingId))).sorted()
        let points: [AsOf?] = [.seq(head), .seq(head / 2), .seq(head - 3)]
        func answers() throws -> [String] {
            var out: [String] = []
            for point in points {
                for e in sample {
                    out.append(try ledger.permissions(email: e, asOf: point).json.text)
                    out.append("\(try ledger.history(email: e, to: .seq(head)))")
                }
                for lid in lids where lid != "E-PLANT" {
                    out.append("\(try ledger.access(licensingId: lid, asOf: point))")
                    out.append("\(try ledger.explain(email: sample[0], licensingId: lid, asOf: point))")
                }
            }
            return out
        }
        let before = try answers()
        // the person's own check, twice (the second answered from what the first kept of the account)
        let checks = try (0 ..< 2).map { _ in try ledger.check(account: Self.planted.account, action: .downloadSoftware, licensingId: "E-PLANT") }
        #expect(checks[0] == checks[1] && checks[1].message.contains(Self.planted.email), "\(checks[1].message)")
        let withPerson = try ledger.access(licensingId: "E-PLANT", asOf: .seq(head - 3))
        #expect(try withPerson.get().principals.contains { $0.email == Self.planted.email })
        let result = try ledger.erase(email: Self.planted.email, legalBasis: .noLongerNecessary, at: at)
        let erased = "erased:\(try #require(result.subject))"
        let afterAnswers = try answers()
        let differing = zip(before, afterAnswers).first { $0 != $1 }
        #expect(differing == nil, "\(differing.map { "\($0)\n≠\n\($1)" } ?? "")")
        // the person's place in the facts: the same roles, under the pseudonym
        let afterwards = try ledger.access(licensingId: "E-PLANT", asOf: .seq(head - 3)).get()
        let principal = try #require(afterwards.principals.first { $0.email == erased })
        let original = try #require(try withPerson.get().principals.first { $0.email == Self.planted.email })
        #expect(principal.permissions == original.permissions && principal.account == erased)
        #expect(afterwards.principals.map(\.email) == afterwards.principals.map(\.email).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        let request = try #require(try ledger.request("plant-r2"))
        #expect(request.status == .withdrawn && request.account == erased && request.comment == erased)
        let denied = try #require(try ledger.request("plant-r1"))
        #expect(denied.decidedBy == erased)
        let approve = try ledger.execute(TimedCommand(at: at.adding(seconds: 60), .approveRequest(by: "boss", requestId: "plant-r2")))
        #expect(approve.refusal?.code == .requestNotPending)
        // the email and the account no longer resolve
        #expect(try ledger.permissions(account: Self.planted.account).failureCode == .notRegistered)
        let checked = try ledger.check(account: Self.planted.account, action: .downloadSoftware, licensingId: "E-PLANT")
        #expect(checked.reason == .notRegistered && !checked.message.contains(Self.planted.email), "\(checked.message)")
        #expect(try ledger.permissions(email: Self.planted.email).rows.isEmpty)
        let explained = try ledger.explain(email: Self.planted.email, licensingId: "E-PLANT")
        #expect(try explained.get().roles.isEmpty)
        #expect(try ledger.events(from: head + 1).map(\.type) == ["subjectErased"])
    }

    @Test("no file of the ledger's directory, no export and no output holds any form of the person's values afterwards; the export did before")
    func noPlaintextLeft() throws {
        let dir = TempDir()
        let (ledger, at) = try Self.ledger(dir)
        let p = Self.planted
        let values = [p.email, p.account, p.first, p.last, p.comment, p.reason]
        let exportBefore = try Self.exportText(ledger)
        for v in values { #expect(holds(exportBefore, Array(v.utf8)), "control: \(v) in the export before") }
        _ = try ledger.erase(email: p.email, legalBasis: .objection, at: at)
        let files = filesUnder(dir.path)
        #expect(files.contains { $0.0.hasSuffix("data.mdb") && $0.0.contains("vault") })
        let outputs = try Self.exportText(ledger) + Array("\(try ledger.access(licensingId: "E-PLANT", asOf: .seq(420)))".utf8)
            + Array("\(try ledger.requests())".utf8)
        for v in values {
            for form in Self.forms(v) {
                let holders = files.filter { holds($0.1, form) }.map(\.0)
                #expect(holders.isEmpty, "\(v) in \(holders)")
                #expect(!holds(outputs, form), "\(v) in an output")
            }
        }
    }

    @Test("refusals in order: unknownEmail, alreadyErased, subjectHoldsAccess (a role, or a contact on a legal form even without roles); a later registration is a new subject")
    func refusals() throws {
        let dir = TempDir()
        let (ledger, at) = try Self.ledger(dir)
        #expect(try ledger.erase(email: "never@seen.example", legalBasis: .objection, at: at).refusal?.code == .unknownEmail)
        #expect(try ledger.erase(email: "not an email", legalBasis: .objection, at: at).refusal?.code == .unknownEmail)
        let boss = try ledger.erase(email: "boss@nightjar.example", legalBasis: .objection, at: at)
        #expect(boss.refusal?.code == .subjectHoldsAccess && boss.seqs.isEmpty)
        #expect(boss.refusal?.message.contains("boss@nightjar.example") == true)
        // a contact whose roles R10 removed is still on the legal form
        _ = try ledger.execute(TimedCommand(at: at, .removeLicensingId(account: "boss", licensingId: "E-PLANT")))
        #expect(try ledger.erase(email: "boss@nightjar.example", legalBasis: .objection, at: at).refusal?.code == .subjectHoldsAccess)
        #expect(try ledger.erase(email: Self.planted.email, legalBasis: .objection, at: Self.t0).refusal?.code == .timeWentBackwards)
        let first = try ledger.erase(email: Self.planted.email.uppercased(), legalBasis: .objection, at: at)
        #expect(first.accepted)
        #expect(try ledger.erase(email: Self.planted.email, legalBasis: .objection, at: at).refusal?.code == .alreadyErased)
        // the same email and account name again: a new subject and a new account
        let later = at.adding(seconds: 60)
        #expect(try ledger.execute(TimedCommand(at: later, .registerUser(account: Self.planted.account, businessEmail: Self.planted.email))).accepted)
        #expect(try ledger.execute(TimedCommand(at: later, .validateEmail(account: Self.planted.account))).accepted)
        #expect(try ledger.permissions(account: Self.planted.account).failureCode == nil)
        let again = try ledger.erase(email: Self.planted.email, legalBasis: .objection, at: later)
        #expect(again.accepted && again.subject != first.subject && again.fieldsErased == 4)
        // a format-1 ledger can't erase
        let plain = try FormatTwoTests.open(TempDir().path, format: 1)
        #expect(throws: InputError.self) { _ = try plain.erase(email: Self.planted.email, legalBasis: .objection) }
    }

    @Test("an erasure whose event committed and whose vault step did not is finished by the next open")
    func finishedOnOpen() throws {
        let dir = TempDir()
        let (ledger, at) = try Self.ledger(dir)
        let subject = try #require(try ledger.vault?.subject(email: Self.planted.email))
        // as a crash after the commit leaves it: the event and the pending mark, the vault untouched
        let result = try ledger.erase(email: Self.planted.email, legalBasis: .objection, at: at)
        #expect(result.subject == subject.description)
        let settings = try #require(try ledger.environment.openDatabases([PermissionLedger.settingsDatabase]).first)
        try ledger.environment.write { txn in try txn.put(settings, key: PermissionLedger.pendingErasuresKey, value: subject.bytes) }
        let reopened = try FormatTwoTests.open(dir.path, format: 2)
        #expect(try reopened.vault?.email(of: subject) == .erased(subject))
        let pending = try reopened.environment.read { txn in try txn.get(settings, key: PermissionLedger.pendingErasuresKey) }
        #expect(pending == nil)
    }
}

extension Result where Failure == DomainError {
    var failureCode: DomainErrorCode? {
        if case let .failure(e) = self { return e.code }
        return nil
    }
}

@Suite("The export of a format-2 ledger (issue 18)")
struct FormatTwoExportTests {
    static func lines(_ ledger: PermissionLedger) throws -> [String] { try ledger.events().map(\.json.text) }
    static func parsed(_ lines: [String]) throws -> [ImportedEvent] { try lines.map { try ImportedEvent(json: try JSONParser.parse(Array($0.utf8))) } }

    @Test("an export, erased subject included, appends into an empty format-2 ledger with every seq and hash, and exports again byte for byte")
    func roundTrip() throws {
        let dir = TempDir()
        let (ledger, at) = try ErasureTests.ledger(dir)
        #expect(try ledger.erase(email: ErasureTests.planted.email, legalBasis: .unlawful, at: at).accepted)
        let exported = try Self.lines(ledger)
        #expect(exported.allSatisfy { $0.contains("\"sealed\":[") })
        let copy = try FormatTwoTests.open(TempDir().path, format: 2)
        try copy.importEvents(try Self.parsed(exported))
        #expect(try copy.inspector.events() == ledger.inspector.events())
        #expect(try Self.lines(copy) == exported)
        #expect(try copy.verify().ok)
        // the copy shows the same facts, and knows nothing of the erased email
        #expect(try copy.access(licensingId: "E-PLANT", asOf: .seq(420)) == ledger.access(licensingId: "E-PLANT", asOf: .seq(420)))
        #expect(try copy.erase(email: ErasureTests.planted.email, legalBasis: .unlawful, at: at).refusal?.code == .unknownEmail)
        // into a format-1 ledger it is refused, naming why
        let plain = try FormatTwoTests.open(TempDir().path, format: 1)
        do {
            try plain.importEvents(try Self.parsed(exported))
            Issue.record("a format-2 export went into a format-1 ledger")
        } catch let error as ImportError {
            #expect(error.message.contains("format-2"))
        }
    }

    @Test("an auditor checks the export offline: every hash from the pseudonyms and commitments, every value against its commitment")
    func offlineCheck() throws {
        let dir = TempDir()
        let (ledger, at) = try ErasureTests.ledger(dir)
        #expect(try ledger.erase(email: ErasureTests.planted.email, legalBasis: .unlawful, at: at).accepted)
        let events = try Self.parsed(try Self.lines(ledger))
        var chain = ExportChain()
        for e in events {
            let added = chain.add(e)
            #expect(added)
        }
        let head = try ledger.inspector.head().hash
        #expect(chain.problem(against: nil) == nil)
        #expect(chain.headHash == head)
        // a value changed where its subject lives: its commitment no longer matches
        var tampered = events
        let index = try #require(tampered.firstIndex { if case .rolesGranted = $0.event { return true } else { return false } })
        if case let .rolesGranted(by, _, l, roles, sa) = tampered[index].event {
            tampered[index].event = .rolesGranted(by: by, email: "mallory@evil.example", licensingId: l, roles: roles, saBenefits: sa)
        }
        var bad = ExportChain()
        for e in tampered where bad.add(e) {}
        let badSeq = bad.problem(against: nil)?.seq
        #expect(badSeq == UInt64(index + 1))
        // an erased value can't be swapped for a guess either: it must read erased:PSEUDONYM
        let erasedIndex = try #require(events.firstIndex { $0.sealed?.contains { $0.secret == nil } ?? false })
        var guessed = events
        guessed[erasedIndex].event = guessed[erasedIndex].event.mappingPersonalFields { f in
            f.value.hasPrefix("erased:") ? ErasureTests.planted.email : f.value
        }
        var guess = ExportChain()
        for e in guessed where guess.add(e) {}
        let guessSeq = guess.problem(against: nil)?.seq
        #expect(guessSeq == UInt64(erasedIndex + 1))
    }

    @Test("a copy holding the subject live erases it when it appends the erasure from a later export")
    func erasureTravels() throws {
        let dir = TempDir()
        let (ledger, at) = try ErasureTests.ledger(dir)
        let copyDir = TempDir()
        let copy = try FormatTwoTests.open(copyDir.path, format: 2)
        try copy.importEvents(try Self.parsed(try Self.lines(ledger)))
        #expect(try copy.permissions(account: ErasureTests.planted.account).failureCode == nil)
        let result = try ledger.erase(email: ErasureTests.planted.email, legalBasis: .unlawful, at: at)
        // the events already there are skipped by id; the erasure is appended and carried out
        try copy.importEvents(try Self.parsed(try Self.lines(ledger)))
        let hex = try #require(result.subject)
        let subject = try #require(Pseudonym(hex: hex))
        #expect(try copy.vault?.email(of: subject) == .erased(subject))
        #expect(try copy.permissions(account: ErasureTests.planted.account).failureCode == .notRegistered)
        #expect(try copy.inspector.head() == ledger.inspector.head())
        let files = filesUnder(copyDir.path)
        for form in ErasureTests.forms(ErasureTests.planted.first) { #expect(!files.contains { holds($0.1, form) }) }
    }
}
