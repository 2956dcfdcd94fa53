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

/// The subject's key as stored (test access to the vault's internals).
private func keyBytes(_ vault: SubjectVault, _ subject: Pseudonym) throws -> [UInt8]? {
    let g = try vault.current()
    guard let bytes = try g.environment.read({ txn in try txn.get(g.subjects, key: subject.bytes) }), bytes.count > 32 else { return nil }
    return Array(bytes[0..<32])
}

@Suite("Subject vault: sealed personal fields and erasure (issue 18, first step)")
struct SubjectVaultTests {
    let email = "zelda.quartermain@contoso-erasure.example"

    @Test("a sealed field opens to its value; the same email sealed twice has unrelated commitments and ciphertexts")
    func sealAndOpen() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let (subject, isNew) = try vault.assignSubject(email: email)
        #expect(isNew)
        let again = try vault.assignSubject(email: email)
        #expect(again.subject == subject && !again.isNew)
        #expect(try vault.subject(.email, email) == subject)
        #expect(try vault.email(of: subject) == .value(email))
        let e1 = UUID(), e2 = UUID()
        let a = try vault.seal(email, field: "email", event: e1, subject: subject)
        let b = try vault.seal(email, field: "email", event: e2, subject: subject)
        let c = try vault.seal(email, field: "email", event: e1, subject: subject)
        #expect(a.commitment.count == 32)
        #expect(a.commitment != b.commitment && a.commitment != c.commitment)
        #expect(a.ciphertext != c.ciphertext)
        #expect(try vault.open(a, field: "email", event: e1) == .value(email))
        #expect(try vault.open(b, field: "email", event: e2) == .value(email))
        // the seal never holds the value in clear
        #expect(!contains(a.ciphertext, Array(email.utf8)))
    }

    @Test("a batch assigns one subject per distinct email in one transaction, and finds the ones already known")
    func batchAssignment() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let known = try vault.assignSubject(email: "known@contoso.example").subject
        let out = try vault.assignSubjects(emails: ["a@contoso.example", "known@contoso.example", "a@contoso.example", "b@contoso.example"])
        #expect(out.map(\.isNew) == [true, false, false, true])
        #expect(out[1].subject == known)
        #expect(out[0].subject == out[2].subject && out[0].subject != out[3].subject)
        #expect(try vault.subject(.email, "a@contoso.example") == out[0].subject)
        #expect(try vault.subject(.email, "b@contoso.example") == out[3].subject)
        #expect(try vault.assignSubjects(emails: []).isEmpty)
    }

    @Test("a batch seals each field under its own subject with its own secret; an erased subject in it is refused")
    func batchSealing() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let out = try vault.assignSubjects(emails: ["a@contoso.example", "b@contoso.example"])
        let (a, b) = (out[0].subject, out[1].subject)
        let event = UUID()
        let fields = [FieldToSeal(value: "a@contoso.example", field: "email", event: event, subject: a),
                      FieldToSeal(value: "b@contoso.example", field: "routedTo[0]", event: event, subject: b),
                      FieldToSeal(value: "a@contoso.example", field: "routedTo[1]", event: event, subject: a)]
        let sealed = try vault.seal(fields)
        #expect(sealed.map(\.subject) == [a, b, a])
        #expect(Set(sealed.map(\.commitment)).count == 3 && Set(sealed.map { Array($0.ciphertext.prefix(12)) }).count == 3)
        for (f, s) in zip(fields, sealed) { #expect(try vault.open(s, field: f.field, event: event) == .value(f.value)) }
        try vault.erase(b)
        #expect(throws: VaultError(reason: .unknownSubject(b))) { try vault.seal(fields) }
        #expect(try vault.open(sealed[0], field: "email", event: event) == .value("a@contoso.example"))
        #expect(try vault.open(sealed[1], field: "routedTo[0]", event: event) == .erased(b))
    }

    @Test("a seal moved to another event or field, altered, or paired with another commitment is refused as corrupt")
    func tamperIsFound() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let subject = try vault.assignSubject(email: email).subject
        let event = UUID()
        let sealed = try vault.seal("Zelda", field: "firstName", event: event, subject: subject)
        func reason(_ body: () throws -> OpenedField) -> VaultError.Reason? {
            do { _ = try body(); return nil } catch let e as VaultError { return e.reason } catch { return nil }
        }
        #expect(reason { try vault.open(sealed, field: "firstName", event: UUID()) } == .sealBroken(field: "firstName"))
        #expect(reason { try vault.open(sealed, field: "lastName", event: event) } == .sealBroken(field: "lastName"))
        var flipped = sealed.ciphertext
        flipped[flipped.count / 2] ^= 0x01
        #expect(reason { try vault.open(SealedField(subject: subject, commitment: sealed.commitment, ciphertext: flipped), field: "firstName", event: event) } == .sealBroken(field: "firstName"))
        let other = try vault.seal("Zelda", field: "firstName", event: event, subject: subject)
        #expect(reason { try vault.open(SealedField(subject: subject, commitment: other.commitment, ciphertext: sealed.ciphertext), field: "firstName", event: event) } == .commitmentMismatch(field: "firstName"))
        let stranger = try Pseudonym.random()
        #expect(reason { try vault.open(SealedField(subject: stranger, commitment: sealed.commitment, ciphertext: sealed.ciphertext), field: "firstName", event: event) } == .unknownSubject(stranger))
        #expect(VaultError(reason: .sealBroken(field: "x")).errorCode == .corrupt)
    }

    @Test("erasure: fields open as erased:PSEUDONYM, look-ups are gone, the email is known as erased, a new registration is a new subject")
    func erasure() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let subject = try vault.assignSubject(email: email).subject
        try vault.link(.account, "Quartermain Holdings", to: subject)
        let keep = try vault.assignSubject(email: "kept@contoso.example").subject
        let event = UUID()
        let sealed = try vault.seal("Quartermain Holdings", field: "account", event: event, subject: subject)
        let kept = try vault.seal("kept@contoso.example", field: "email", event: event, subject: keep)
        #expect(try vault.subject(.account, "Quartermain Holdings") == subject)
        #expect(try vault.wasErased(email: email) == false)
        #expect(try vault.generation == 1)

        #expect(try vault.erase(subject) == .erased)
        #expect(try vault.generation == 2)
        #expect(try vault.open(sealed, field: "account", event: event) == .erased(subject))
        #expect(try vault.open(sealed, field: "account", event: event).description == "erased:\(subject)")
        #expect(try vault.email(of: subject) == .erased(subject))
        #expect(try vault.subject(.email, email) == nil)
        #expect(try vault.subject(.account, "Quartermain Holdings") == nil)
        #expect(try vault.wasErased(email: email))
        #expect(try vault.wasErased(email: "kept@contoso.example") == false)
        // others are untouched
        #expect(try vault.open(kept, field: "email", event: event) == .value("kept@contoso.example"))
        #expect(try vault.subject(.email, "kept@contoso.example") == keep)
        // idempotent; a pseudonym never assigned is refused
        #expect(try vault.erase(subject) == .alreadyErased)
        #expect(try vault.generation == 2)
        #expect(throws: VaultError.self) { try vault.erase(try Pseudonym.random()) }
        #expect(throws: VaultError.self) { try vault.link(.account, "Again", to: subject) }
        // the same email seen again is a new subject
        let reborn = try vault.assignSubject(email: email)
        #expect(reborn.isNew && reborn.subject != subject)
        #expect(try vault.open(sealed, field: "account", event: event) == .erased(subject))
        // only the live generation is left on disk
        let entries = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/vault").sorted()
        #expect(entries == ["current", "gen-000002", "writer.lock"])
    }

    @Test("no file of the vault holds the erased subject's key or look-up afterwards, freed pages included (positive control before)")
    func nothingLeftOnDisk() throws {
        let dir = TempDir()
        let root = dir.path + "/vault"
        let vault = try SubjectVault(directory: root)
        let subject = try vault.assignSubject(email: email).subject
        try vault.link(.account, "Quartermain Holdings", to: subject)
        // others written after it, so that its pages are shared and rewritten
        for i in 0..<200 { _ = try vault.assignSubject(email: "other\(i)@contoso.example") }
        let key = try #require(try keyBytes(vault, subject))
        let g = try vault.current()
        let lookup = SubjectVault.lookupHash(.email, email, g)
        let accountLookup = SubjectVault.lookupHash(.account, "Quartermain Holdings", g)
        // positive control: the key and the look-ups are in the data file now
        #expect(!holders(root, key).isEmpty)
        #expect(!holders(root, lookup).isEmpty)
        #expect(!holders(root, accountLookup).isEmpty)
        // the values themselves are only ever sealed
        for form in [email, email.uppercased()] {
            #expect(holders(root, Array(form.utf8)).isEmpty)
            #expect(holders(root, Array(form.utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }).isEmpty)
        }

        // the deletion alone leaves the key in freed pages: that is what the compaction is for
        _ = try vault.writing { g in try vault.delete(subject, in: g) }
        #expect(!holders(root, key).isEmpty, "a freed page still holds the deleted key before the compaction")

        // a new open (as after a crash here) finishes the erasure
        let reopened = try SubjectVault(directory: root)
        #expect(try reopened.generation == 2)
        #expect(holders(root, key).isEmpty)
        #expect(holders(root, lookup).isEmpty)
        #expect(holders(root, accountLookup).isEmpty)
        #expect(try reopened.email(of: subject) == .erased(subject))
        #expect(try reopened.subject(.email, "other7@contoso.example") != nil)
    }

    @Test("dictionary attack: with every byte left after erasure and a guess list holding the true value, no commitment matches and no seal opens (the same attack succeeds before)")
    func dictionaryAttack() throws {
        let dir = TempDir()
        let root = dir.path + "/vault"
        let vault = try SubjectVault(directory: root)
        let subject = try vault.assignSubject(email: email).subject
        for i in 0..<50 { _ = try vault.assignSubject(email: "other\(i)@contoso.example") }
        let events = (0..<3).map { _ in UUID() }
        let sealed = try events.map { try vault.seal(email, field: "email", event: $0, subject: subject) }
        let guesses = ["alice@contoso.example", email, email.uppercased(), "bob@fabrikam.example"]

        /// Every 32-byte window of every file of the vault, tried as the subject's key (to
        /// open a seal and read the secret) and as a commitment's secret: the values it
        /// recovers or confirms.
        func attack() -> Set<String> {
            var windows = Set<[UInt8]>()
            for (_, bytes) in filesUnder(root) where bytes.count >= 32 {
                for start in 0...(bytes.count - 32) where bytes[start] != 0 || bytes[start + 31] != 0 {
                    windows.insert(Array(bytes[start..<(start + 32)]))
                }
            }
            var found = Set<String>()
            for (event, field) in zip(events, sealed) {
                let context = SubjectVault.sealContext(subject, field: "email", event: event)
                for window in windows {
                    if let box = try? AES.GCM.SealedBox(combined: field.ciphertext),
                       let plain = try? AES.GCM.open(box, using: SymmetricKey(data: window), authenticating: context),
                       plain.count > 32, let value = String(bytes: plain[32...], encoding: .utf8) {
                        found.insert(value)
                    }
                }
                for guess in guesses {
                    if Array(SHA256.hash(data: Array(guess.utf8))) == field.commitment { found.insert(guess) }
                    for window in windows
                    where SubjectVault.commitment(value: guess, field: "email", event: event, secret: window) == field.commitment {
                        found.insert(guess)
                    }
                }
            }
            return found
        }
        // positive control: while the subject lives, its key is in the vault and opens the seals
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
        let subject = try a.assignSubject(email: email).subject
        let event = UUID()
        let sealed = try b.seal(email, field: "email", event: event, subject: subject)
        #expect(try b.open(sealed, field: "email", event: event) == .value(email))
        try a.erase(subject)
        #expect(try b.open(sealed, field: "email", event: event) == .erased(subject))
        let later = try b.assignSubject(email: "later@contoso.example").subject
        #expect(try a.subject(.email, "later@contoso.example") == later)
        #expect(try b.generation == 2)
    }

    @Test("leftovers of an interrupted compaction are removed on open; a damaged pointer is refused, naming the file")
    func leftoversAndDamage() throws {
        let dir = TempDir()
        let root = dir.path + "/vault"
        do {
            let vault = try SubjectVault(directory: root)
            _ = try vault.assignSubject(email: email)
        }
        try FileManager.default.createDirectory(atPath: root + "/.gen-000002.compacting", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/gen-000002", withIntermediateDirectories: true)
        let vault = try SubjectVault(directory: root)
        #expect(try vault.generation == 1)
        #expect(try vault.subject(.email, email) != nil)
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
