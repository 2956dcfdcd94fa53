import Crypto
import Foundation
@testable import Ledger
import Testing

/// Every file under `directory`, as bytes.
private func filesUnder(_ directory: String) -> [(String, [UInt8])] {
    let names = FileManager.default.subpaths(atPath: directory) ?? []
    return names.compactMap { name in
        let path = directory + "/" + name
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
              let data = FileManager.default.contents(atPath: path) else { return nil }
        return (name, [UInt8](data))
    }
}

private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count, let first = needle.first else { return false }
    var i = 0
    let last = haystack.count - needle.count
    while i <= last {
        if haystack[i] == first && Array(haystack[i..<(i + needle.count)]) == needle { return true }
        i += 1
    }
    return false
}

/// The files under `directory` that hold `needle`.
private func holders(_ directory: String, _ needle: [UInt8]) -> [String] {
    filesUnder(directory).filter { contains($0.1, needle) }.map(\.0)
}

/// The subject's key and secret as stored (test access to the vault's internals).
private func keyBytes(_ vault: SubjectVault, _ subject: Pseudonym) throws -> [UInt8]? {
    let g = try vault.current()
    guard let bytes = try g.environment.read({ txn in try txn.get(g.subjects, key: subject.bytes) }), bytes.count > 64 else { return nil }
    return Array(bytes[0..<64])
}

/// Subjects for `emails`, committed in one batch.
private func assign(_ vault: SubjectVault, _ emails: [String]) throws -> [Pseudonym] {
    let batch = vault.batch()
    let subjects = try emails.map { try batch.subject(email: $0).subject }
    try batch.commit()
    return subjects
}

@Suite("Subject vault: personal values, commitments and erasure (issue 18)")
struct SubjectVaultTests {
    let email = "zelda.quartermain@contoso-erasure.example"

    @Test("a batch gives each new email a subject and each registration an account; nothing is written until it commits")
    func subjectsAndAccounts() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let batch = vault.batch()
        let (subject, isNew) = try batch.subject(email: email)
        #expect(isNew)
        #expect(try batch.subject(email: email) == (subject, true))
        let account = try batch.registerAccount(named: "quartermain holdings", owner: subject)
        #expect(account != subject)
        #expect(try batch.account(named: "quartermain holdings") == VaultAccount(pseudonym: account, owner: subject))
        // nothing in the vault before the commit
        #expect(try vault.subject(email: email) == nil)
        #expect(try vault.account(named: "quartermain holdings") == nil)
        try batch.commit()
        #expect(batch.isEmpty)
        #expect(try vault.subject(email: email) == subject)
        #expect(try vault.account(named: "quartermain holdings") == VaultAccount(pseudonym: account, owner: subject))
        #expect(try vault.email(of: subject) == .value(email))
        #expect(try vault.name(ofAccount: account) == .value("quartermain holdings"))
        #expect(try vault.owner(ofAccount: account) == subject)
        // a later batch finds them
        let later = vault.batch()
        #expect(try later.subject(email: email) == (subject, false))
        // a batch never committed leaves nothing
        let dropped = vault.batch()
        _ = try dropped.subject(email: "dropped@contoso.example")
        #expect(try vault.subject(email: "dropped@contoso.example") == nil)
        // unknown pseudonyms are refused, naming them
        let stranger = try #require(Pseudonym(bytes: Array(repeating: 7, count: 16)))
        #expect(throws: VaultError(reason: .unknownSubject(stranger))) { try vault.email(of: stranger) }
        #expect(throws: VaultError(reason: .unknownSubject(stranger))) { try vault.batch().registerAccount(named: "x", owner: stranger) }
    }

    @Test("a batch larger than the vault's map commits whole: the write that found the map full runs again after it grew")
    func largeBatch() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let batch = vault.batch()
        var subjects: [Pseudonym] = []
        for i in 0 ..< 12_000 {
            let p = try batch.subject(email: "bulk\(i)@contoso.example").subject
            subjects.append(p)
            _ = try batch.storeText(String(repeating: "x", count: 200) + "\(i)", field: "comment", event: UUID(), subject: p)
        }
        try batch.commit()
        #expect(try vault.subject(email: "bulk11999@contoso.example") == subjects[11_999])
        #expect(try vault.email(of: subjects[0]) == .value("bulk0@contoso.example"))
    }

    @Test("commitments: under the subject's secret, bound to the event and the field; the same email in two events or fields differs")
    func commitments() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let subject = try assign(vault, [email])[0]
        let e1 = UUID(), e2 = UUID()
        let a = try vault.commitment(value: email, field: "email", event: e1, subject: subject)
        #expect(a.count == 32)
        #expect(a == (try vault.commitment(value: email, field: "email", event: e1, subject: subject)))
        #expect(a != (try vault.commitment(value: email, field: "email", event: e2, subject: subject)))
        #expect(a != (try vault.commitment(value: email, field: "routedTo[0]", event: e1, subject: subject)))
        #expect(a != Array(SHA256.hash(data: Array(email.utf8))))
        let secret = try #require(try vault.secret(of: subject))
        #expect(SubjectVault.commitment(value: email, field: "email", event: e1, secret: secret) == a)
        // a batch's commitments for a new subject are under the secret it commits
        let batch = vault.batch()
        let fresh = try batch.subject(email: "new@contoso.example").subject
        let c = try batch.commitment(value: "new@contoso.example", field: "email", event: e1, subject: fresh)
        try batch.commit()
        #expect(try vault.commitment(value: "new@contoso.example", field: "email", event: e1, subject: fresh) == c)
    }

    @Test("two batches giving one email a subject: the second commit is a conflict and writes nothing of its batch")
    func conflict() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let first = vault.batch(), second = vault.batch()
        let a = try first.subject(email: email).subject
        let b = try second.subject(email: email).subject
        let other = try second.subject(email: "other@contoso.example").subject
        _ = try second.registerAccount(named: "other", owner: other)
        try first.commit()
        do {
            try second.commit()
            Issue.record("the conflicting batch was written")
        } catch let error as VaultError {
            #expect(error.errorCode == LedgerErrorCode("conflict"))
        }
        #expect(a != b)
        #expect(try vault.subject(email: email) == a)
        #expect(try vault.subject(email: "other@contoso.example") == nil)
        #expect(try vault.account(named: "other") == nil)
    }

    @Test("texts open under their subject and commitment, checked against it; moved or altered ones are refused as corrupt")
    func texts() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let subject = try assign(vault, [email])[0]
        let event = UUID()
        let batch = vault.batch()
        let first = try batch.storeText("Zelda", field: "firstName", event: event, subject: subject)
        let comment = try batch.storeText("Please grant me download rights", field: "comment", event: event, subject: subject)
        try batch.commit()
        #expect(first == (try vault.commitment(value: "Zelda", field: "firstName", event: event, subject: subject)))
        #expect(try vault.text(subject: subject, commitment: first) == .value("Zelda"))
        #expect(try vault.text(subject: subject, commitment: comment) == .value("Please grant me download rights"))
        func reason(_ body: () throws -> OpenedField) -> VaultError.Reason? {
            do { _ = try body(); return nil } catch let e as VaultError { return e.reason } catch { return nil }
        }
        let g = try vault.current()
        // a text moved under another commitment does not open
        let sealed = try #require(try g.environment.read { txn in try txn.get(g.texts, key: subject.bytes + first) })
        try g.environment.write { txn in try txn.put(g.texts, key: subject.bytes + comment, value: sealed) }
        #expect(reason { try vault.text(subject: subject, commitment: comment) } == .sealBroken(field: "a text of subject \(subject)"))
        // an altered byte does not open
        var flipped = sealed
        flipped[20] ^= 1
        try g.environment.write { txn in try txn.put(g.texts, key: subject.bytes + first, value: flipped) }
        #expect(reason { try vault.text(subject: subject, commitment: first) } == .sealBroken(field: "a text of subject \(subject)"))
        // sealed right but for another event: opens, and its commitment does not match
        let keys = try #require(try vault.keys(of: subject, in: g))
        let forged = try SubjectVault.seal(SubjectVault.textPlain("Zelda", field: "firstName", event: UUID()), key: keys.key,
                                           nonce: ArraySlice(Array(repeating: 1, count: 12)), context: SubjectVault.textContext(subject, first))
        try g.environment.write { txn in try txn.put(g.texts, key: subject.bytes + first, value: forged) }
        #expect(reason { try vault.text(subject: subject, commitment: first) } == .commitmentMismatch(field: "firstName"))
        #expect(VaultError(reason: .sealBroken(field: "x")).errorCode == .corrupt)
    }

    @Test("erasure: values read as erased:PSEUDONYM, look-ups are gone, the email is known as erased, the same email and account name start anew")
    func erasure() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let batch = vault.batch()
        let subject = try batch.subject(email: email).subject
        let keep = try batch.subject(email: "kept@contoso.example").subject
        let account = try batch.registerAccount(named: "quartermain holdings", owner: subject)
        let kept = try batch.registerAccount(named: "kept", owner: keep)
        let event = UUID()
        let text = try batch.storeText("Zelda", field: "firstName", event: event, subject: subject)
        let keptText = try batch.storeText("Kim", field: "firstName", event: event, subject: keep)
        try batch.commit()
        #expect(try vault.erase(subject) == .erased)
        #expect(try vault.email(of: subject) == .erased(subject))
        #expect(try vault.email(of: subject).description == "erased:\(subject)")
        #expect(try vault.name(ofAccount: account) == .erased(subject))
        #expect(try vault.owner(ofAccount: account) == subject)
        #expect(try vault.text(subject: subject, commitment: text) == .erased(subject))
        #expect(try vault.secret(of: subject) == nil)
        #expect(throws: VaultError(reason: .unknownSubject(subject))) { try vault.commitment(value: email, field: "email", event: event, subject: subject) }
        #expect(try vault.subject(email: email) == nil)
        #expect(try vault.account(named: "quartermain holdings") == nil)
        #expect(try vault.wasErased(email: email))
        #expect(try !vault.wasErased(email: "kept@contoso.example"))
        // the other subject is untouched
        #expect(try vault.email(of: keep) == .value("kept@contoso.example"))
        #expect(try vault.name(ofAccount: kept) == .value("kept"))
        #expect(try vault.text(subject: keep, commitment: keptText) == .value("Kim"))
        // idempotent
        #expect(try vault.erase(subject) == .alreadyErased)
        #expect(try vault.generation == 2)
        // the same email is a new subject, the same account name a new account
        let again = vault.batch()
        let (fresh, isNew) = try again.subject(email: email)
        #expect(isNew && fresh != subject)
        let newAccount = try again.registerAccount(named: "quartermain holdings", owner: fresh)
        try again.commit()
        #expect(try vault.account(named: "quartermain holdings") == VaultAccount(pseudonym: newAccount, owner: fresh))
        #expect(try vault.name(ofAccount: account) == .erased(subject))
        // a live subject's account name is not taken over
        let thief = vault.batch()
        _ = try thief.registerAccount(named: "kept", owner: fresh)
        #expect(throws: VaultError.self) { try thief.commit() }
        let entries = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/vault").sorted()
        #expect(entries == ["current", "gen-000002", "writer.lock"])
    }

    @Test("no file of the vault holds the erased subject's key, secret, look-ups or sealed values afterwards, freed pages included (positive control before)")
    func nothingLeftOnDisk() throws {
        let dir = TempDir()
        let root = dir.path + "/vault"
        let vault = try SubjectVault(directory: root)
        let batch = vault.batch()
        let subject = try batch.subject(email: email).subject
        _ = try batch.registerAccount(named: "quartermain holdings", owner: subject)
        let text = try batch.storeText("Zelda Quartermain-Erasure", field: "firstName", event: UUID(), subject: subject)
        try batch.commit()
        // others written after it, so that its pages are shared and rewritten
        _ = try assign(vault, (0..<200).map { "other\($0)@contoso.example" })
        let keys = try #require(try keyBytes(vault, subject))
        let g = try vault.current()
        let sealedText = try #require(try g.environment.read { txn in try txn.get(g.texts, key: subject.bytes + text) })
        let sealedEmail = try #require(try g.environment.read { txn in try txn.get(g.subjects, key: subject.bytes) })
        let secrets = [Array(keys[0..<32]), Array(keys[32..<64]), SubjectVault.lookupHash(.email, email, g),
                       SubjectVault.lookupHash(.account, "quartermain holdings", g), Array(sealedText.suffix(24)),
                       Array(sealedEmail.suffix(24))]
        // positive control: all of it is in the data file now
        for s in secrets { #expect(!holders(root, s).isEmpty) }
        // the values themselves are only ever sealed
        for form in [email, email.uppercased(), "Zelda Quartermain-Erasure", "quartermain holdings"] {
            #expect(holders(root, Array(form.utf8)).isEmpty)
            #expect(holders(root, Array(form.utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }).isEmpty)
        }

        // the deletion alone leaves the key in freed pages: that is what the compaction is for
        _ = try vault.writing { g in try vault.delete(subject, in: g) }
        #expect(!holders(root, secrets[0]).isEmpty, "a freed page still holds the deleted key before the compaction")

        // a new open (as after a crash here) finishes the erasure
        let reopened = try SubjectVault(directory: root)
        #expect(try reopened.generation == 2)
        for (i, s) in secrets.enumerated() { #expect(holders(root, s).isEmpty, "secret \(i) is still on disk") }
        #expect(try reopened.email(of: subject) == .erased(subject))
        #expect(try reopened.subject(email: "other7@contoso.example") != nil)
    }

    @Test("dictionary attack: with every byte left after erasure and a guess list holding the true values, no commitment matches (the same attack succeeds before)")
    func dictionaryAttack() throws {
        let dir = TempDir()
        let root = dir.path + "/vault"
        let vault = try SubjectVault(directory: root)
        let subject = try assign(vault, [email])[0]
        _ = try assign(vault, (0..<50).map { "other\($0)@contoso.example" })
        let events = (0..<3).map { _ in UUID() }
        let commitments = try events.map { try vault.commitment(value: email, field: "email", event: $0, subject: subject) }
        #expect(Set(commitments).count == 3)
        let guesses = ["alice@contoso.example", email, email.uppercased(), "bob@fabrikam.example"]

        /// Every 32-byte window of every file of the vault, tried as the commitments' secret:
        /// the guesses it confirms.
        func attack() -> Set<String> {
            var windows = Set<[UInt8]>()
            for (_, bytes) in filesUnder(root) where bytes.count >= 32 {
                for start in 0...(bytes.count - 32) where bytes[start] != 0 || bytes[start + 31] != 0 {
                    windows.insert(Array(bytes[start..<(start + 32)]))
                }
            }
            var found = Set<String>()
            for (event, commitment) in zip(events, commitments) {
                for guess in guesses {
                    if Array(SHA256.hash(data: Array(guess.utf8))) == commitment { found.insert(guess) }
                    for window in windows
                    where SubjectVault.commitment(value: guess, field: "email", event: event, secret: window) == commitment {
                        found.insert(guess)
                    }
                }
            }
            return found
        }
        // positive control: while the subject lives, its secret is in the vault and confirms the guess
        #expect(attack() == [email])
        try vault.erase(subject)
        #expect(attack().isEmpty)
    }

    @Test("a vault opened before another handle's erasure moves to the new generation on its next call, and its writes land there")
    func secondHandleFollows() throws {
        let dir = TempDir()
        let root = dir.path + "/vault"
        let a = try SubjectVault(directory: root)
        let b = try SubjectVault(directory: root)
        let subject = try assign(a, [email])[0]
        #expect(try b.email(of: subject) == .value(email))
        _ = try b.secret(of: subject)
        try a.erase(subject)
        #expect(try b.email(of: subject) == .erased(subject))
        #expect(try b.secret(of: subject) == nil, "a cached secret outlived the erasure")
        let later = try assign(b, ["later@contoso.example"])[0]
        #expect(try a.subject(email: "later@contoso.example") == later)
        #expect(try b.generation == 2)
    }

    @Test("leftovers of an interrupted compaction are removed on open; a damaged pointer is refused, naming the file")
    func leftoversAndDamage() throws {
        let dir = TempDir()
        let root = dir.path + "/vault"
        do {
            let vault = try SubjectVault(directory: root)
            _ = try assign(vault, [email])
        }
        try FileManager.default.createDirectory(atPath: root + "/.gen-000002.compacting", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/gen-000002", withIntermediateDirectories: true)
        let vault = try SubjectVault(directory: root)
        #expect(try vault.generation == 1)
        #expect(try vault.subject(email: email) != nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).sorted() == ["current", "gen-000001", "writer.lock"])
        try Array("nonsense\n".utf8).withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: root + "/current")) }
        do {
            _ = try SubjectVault(directory: root)
            Issue.record("a damaged pointer was accepted")
        } catch let error as VaultError {
            #expect(error.message.contains("current"))
            #expect(error.errorCode == .corrupt)
        }
    }

    @Test("pseudonyms: 32 hex digits both ways; anything else is refused")
    func pseudonyms() throws {
        let p = try #require(try? Pseudonym.random())
        #expect(p.description.count == 32)
        #expect(Pseudonym(hex: p.description) == p)
        #expect(Pseudonym(hex: p.description.uppercased()) == p)
        #expect(Pseudonym(hex: "xyz") == nil)
        #expect(Pseudonym(hex: String(repeating: "g", count: 32)) == nil)
        #expect(Pseudonym(bytes: [1, 2, 3]) == nil)
    }
}
