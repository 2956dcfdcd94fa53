import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import _LedgerTestSupport
import Testing

/// Format 2's personal data (issue 18): events sealed into payloads that hold pseudonyms and
/// commitments, never a value; the fold's view of them; and outputs reading the values back
/// from a real subject vault on disk.
@Suite("Format-2 payloads: sealing, the fold's view, reading back (issue 18)")
struct SealedPayloadTests {

    /// A sealer whose vault already holds every account the samples name.
    private static func sealerWithAccounts(_ vault: SubjectVault) throws -> PersonalSealer {
        let sealer = try PersonalSealer(vault: vault)
        let accounts = Set(PersonalFieldsTests.samples.flatMap { $0.event.personalFields.filter { $0.kind == .account }.map(\.value) })
        for (i, account) in accounts.sorted().enumerated() where account != "acct-reg" {
            _ = try sealer.seal(.userRegistered(account: account, businessEmail: "owner\(i)@personal.example"), id: UUID())
        }
        return sealer
    }

    @Test("every event type seals to a payload with no personal value and every other one; its view holds tokens and reads back to the event")
    func roundTrip() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let sealer = try Self.sealerWithAccounts(vault)
        var sealed: [(DomainEvent, [UInt8], DomainEvent)] = []
        for sample in PersonalFieldsTests.samples {
            let (payload, view) = try sealer.seal(sample.event, id: UUID())
            for value in sample.personal {
                #expect(!holds(payload, value), "\(sample.event.type): \(value) in the sealed payload")
            }
            for value in sample.other { #expect(holds(payload, value), "\(sample.event.type): \(value) lost") }
            #expect(view.personalFields.allSatisfy { PersonalToken($0.value) != nil }, "\(sample.event.type): a value in the view")
            let decoded = try payload.withUnsafeBytes { try SealedPayload.view(kind: sample.event.kind, payload: $0) }
            #expect(decoded == view, "\(sample.event.type): the view from the bytes differs from the sealer's")
            sealed.append((sample.event, payload, view))
        }
        try sealer.commit()
        // a fresh resolver reads every value back from the vault alone
        var resolver = PersonalResolver(vault: try SubjectVault(directory: dir.path + "/vault"))
        for (event, _, view) in sealed {
            #expect(try resolver.resolve(view) == event, "\(event.type) does not read back")
        }
    }

    @Test("one email in two events is one token in the fold's view and two unrelated commitments in the bytes")
    func sameEmailTwice() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let sealer = try PersonalSealer(vault: vault)
        let a = try sealer.seal(.resellerAutoGranted(email: "twice@personal.example", licensingId: "L1", roles: [.download]), id: UUID())
        let b = try sealer.seal(.resellerAutoGranted(email: "twice@personal.example", licensingId: "L1", roles: [.download]), id: UUID())
        #expect(a.view == b.view)
        let fa = try a.payload.withUnsafeBytes { try SealedPayload.decode(kind: 5, payload: $0) }.fields
        let fb = try b.payload.withUnsafeBytes { try SealedPayload.decode(kind: 5, payload: $0) }.fields
        #expect(fa[0].ref == fb[0].ref && fa[0].commitment != fb[0].commitment)
    }

    @Test("after the subject's erasure its fields read as erased:PSEUDONYM (accounts and texts included); others' as before")
    func erasedReadsAsPseudonym() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let sealer = try PersonalSealer(vault: vault)
        _ = try sealer.seal(.userRegistered(account: "zelda", businessEmail: "zelda@personal.example"), id: UUID())
        let profile = try sealer.seal(.profileCompleted(account: "zelda", firstName: "Zelda", lastName: "Quartermain"), id: UUID())
        let grant = try sealer.seal(.rolesGranted(by: "zelda", email: "kim@personal.example", licensingId: "L1", roles: [.download], saBenefits: []), id: UUID())
        try sealer.commit()
        let subject = try #require(try vault.subject(email: "zelda@personal.example"))
        try vault.erase(subject)
        var resolver = PersonalResolver(vault: vault)
        let erased = "erased:\(subject)"
        #expect(try resolver.resolve(profile.view) == .profileCompleted(account: erased, firstName: erased, lastName: erased))
        #expect(try resolver.resolve(grant.view) == .rolesGranted(by: erased, email: "kim@personal.example", licensingId: "L1",
                                                                  roles: [.download], saBenefits: []))
        // an event can't be sealed for an erased subject's token
        let again = try PersonalSealer(vault: vault)
        #expect(throws: (any Error).self) { _ = try again.seal(grant.view, id: UUID()) }
    }

    @Test("what a refused command named is not written to the vault; what sealed events name is")
    func onlyNamedIsWritten() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let sealer = try PersonalSealer(vault: vault)
        let dropped = try sealer.emailToken("refused@personal.example")
        _ = try sealer.newAccountToken("refused-account", owner: dropped)
        _ = try sealer.seal(.resellerAutoGranted(email: "kept@personal.example", licensingId: "L1", roles: [.download]), id: UUID())
        try sealer.commit()
        #expect(try vault.subject(email: "refused@personal.example") == nil)
        #expect(try vault.account(named: "refused-account") == nil)
        #expect(try vault.subject(email: "kept@personal.example") != nil)
    }

    @Test("while an erasure the log records is being made, the subject's email and account start anew; the erasure then leaves the new ones")
    func namesDuringErasure() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let first = try PersonalSealer(vault: vault)
        _ = try first.seal(.userRegistered(account: "zelda", businessEmail: "zelda@personal.example"), id: UUID())
        try first.commit()
        let old = try #require(try vault.subject(email: "zelda@personal.example"))
        // the window between the log's commit of subjectErased and the vault's deletion
        let during = try PersonalSealer(vault: vault, erasing: [old])
        #expect(try during.accountToken("zelda") == nil)
        let (_, view) = try during.seal(.userRegistered(account: "zelda", businessEmail: "zelda@personal.example"), id: UUID())
        try during.commit()
        guard case let .userRegistered(accountToken, email) = view, case let .email(fresh)? = PersonalToken(email),
              case let .account(freshAccount)? = PersonalToken(accountToken) else {
            Issue.record("not a registration of tokens: \(view)")
            return
        }
        #expect(fresh != old)
        try vault.erase(old)
        #expect(try vault.subject(email: "zelda@personal.example") == fresh)
        let account = try #require(try vault.account(named: "zelda"))
        #expect(account.pseudonym == freshAccount && account.owner == fresh)
        #expect(try vault.email(of: old) == .erased(old))
    }

    @Test("malformed payloads are refused, never trapped on: a wrong count, a value in a personal field, truncation, random bytes")
    func malformed() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let sealer = try PersonalSealer(vault: vault)
        let event = DomainEvent.resellerAutoGranted(email: "x@personal.example", licensingId: "L1", roles: [.download])
        let (payload, _) = try sealer.seal(event, id: UUID())
        func refused(_ bytes: [UInt8], kind: UInt16 = 5) -> Bool {
            (try? bytes.withUnsafeBytes { try SealedPayload.view(kind: kind, payload: $0) }) == nil
        }
        #expect(!refused(payload))
        var wrongCount = payload
        wrongCount[0] = 0
        #expect(refused(wrongCount))
        // the same fields in front of the format-1 payload, which holds the value
        let withValue = Array(payload.prefix(1 + 48)) + event.encodedPayload()
        #expect(refused(withValue))
        for cut in 0 ..< payload.count { #expect(refused(Array(payload.prefix(cut)))) }
        #expect(refused(payload, kind: 99))
        var rng = SystemRandomNumberGenerator()
        for _ in 0 ..< 2_000 {
            let bytes = (0 ..< Int.random(in: 0 ... 120, using: &rng)).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
            _ = try? bytes.withUnsafeBytes { try SealedPayload.view(kind: UInt16.random(in: 1 ... 19, using: &rng), payload: $0) }
        }
    }

    @Test("tokens within a refusal's message read back; other text, a lone ~ and non-ASCII are kept")
    func messages() throws {
        let dir = TempDir()
        let vault = try SubjectVault(directory: dir.path + "/vault")
        let sealer = try PersonalSealer(vault: vault)
        let token = try sealer.emailToken("msg@personal.example")
        var resolver = PersonalResolver(vault: vault, known: sealer.values)
        #expect(resolver.resolveWithin("email \(token) is not validated ~ café ~e12") == "email msg@personal.example is not validated ~ café ~e12")
        var plain = PersonalResolver(vault: nil)
        #expect(plain.resolveWithin("email \(token)") == "email \(token)")
        #expect(PersonalToken(token) != nil && PersonalToken("~e" + String(repeating: "g", count: 32)) == nil && PersonalToken("~x") == nil)
    }
}
