import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import Testing

/// R9's lockout boundaries, exactly.
@Suite("R9 lockout boundaries")
struct LockoutTests {
    func setUp(_ kind: BackendKind) throws -> Harness {
        let h = try Harness(kind, start: "2026-04-01T00:00:00Z")
        try h.agreement("OL-1", .openLicense, contacts: [(.primaryContact, "own@t.com")], auth: "GOOD")
        try h.agreement("OL-2", .openLicense, contacts: [(.primaryContact, "own@t.com")], auth: "GOOD2")
        try h.user("own", "own@t.com")
        try h.user("r", "r@t.com", profile: true)
        try h.ok(.grantRoles(by: "own", email: "r@t.com", licensingId: "OL-1", roles: [.licensingInfo], saBenefits: []))
        return h
    }

    func attempt(_ h: Harness, at iso: String, auth: String = "BAD", license: String = "OL-2") throws -> ExecutionResult {
        h.set(iso)
        return try h.run(.addOpenLicense(account: "r", licenseNumber: license, authorizationNumber: auth, acknowledged: true))
    }

    func status(_ h: Harness, _ iso: String) throws -> LockoutStatus {
        let t = Timestamp(iso8601: iso) ?? Timestamp(seconds: 0)
        return try h.state { try $0.lockoutStatus(account: "r", at: t, policy: h.policy) }
    }

    @Test("a failure exactly 24 h old does not count", arguments: BackendKind.allCases)
    func windowIsOpenAtItsStart(kind: BackendKind) throws {
        let h = try setUp(kind)
        #expect(try attempt(h, at: "2026-04-01T10:00:00Z").refusal?.code == .invalidLicenseAuthorization)
        #expect(try attempt(h, at: "2026-04-01T11:00:00Z").refusal?.code == .invalidLicenseAuthorization)
        // 10:00 the day after: the first failure is exactly 24 h old
        #expect(try status(h, "2026-04-02T10:00:00Z").recentFailures == 1)
        #expect(try status(h, "2026-04-02T09:59:59Z").recentFailures == 2)
        #expect(try attempt(h, at: "2026-04-02T10:00:00Z").refusal?.code == .invalidLicenseAuthorization)
        // one second later, three failures fall in the window: suspended
        let r = try attempt(h, at: "2026-04-02T10:00:01Z")
        #expect(r.refusal?.code == .suspended)
        #expect(r.refusal?.until == Timestamp(iso8601: "2026-04-03T10:00:01Z"))
        #expect(r.seqs.count == 1)
    }

    @Test("the lock ends exactly at t3 + 24 h; while locked nothing is evaluated or recorded", arguments: BackendKind.allCases)
    func lockEndsExactly(kind: BackendKind) throws {
        let h = try setUp(kind)
        _ = try attempt(h, at: "2026-04-01T10:00:00Z")
        _ = try attempt(h, at: "2026-04-01T10:01:00Z")
        #expect(try attempt(h, at: "2026-04-01T10:02:00Z").refusal?.code == .suspended)
        let before = try h.headSeq()
        // the right numbers while suspended: refused, not recorded, not evaluated
        let during = try attempt(h, at: "2026-04-02T10:01:59Z", auth: "GOOD2")
        #expect(during.refusal?.code == .suspended)
        #expect(during.seqs.isEmpty)
        #expect(try h.headSeq() == before)
        let locked = try status(h, "2026-04-02T10:01:59Z")
        #expect(locked.locked && locked.lockedUntil == Timestamp(iso8601: "2026-04-02T10:02:00Z"))
        #expect(locked.recentFailures == 1)  // the window still applies: only 10:02 of the day before is under 24 h old
        // while suspended, the failures that caused it still count
        #expect(try status(h, "2026-04-01T20:00:00Z").recentFailures == 3)
        let after = try status(h, "2026-04-02T10:02:00Z")
        #expect(!after.locked && after.lockedUntil == nil && after.recentFailures == 0)
        // exactly at the end: evaluated again, and the old failures no longer count
        #expect(try attempt(h, at: "2026-04-02T10:02:00Z").refusal?.code == .invalidLicenseAuthorization)
        #expect(try status(h, "2026-04-02T10:02:00Z").recentFailures == 1)
        #expect(try attempt(h, at: "2026-04-02T10:03:00Z").refusal?.code == .invalidLicenseAuthorization)
        #expect(try attempt(h, at: "2026-04-02T10:04:00Z").refusal?.code == .suspended)
        #expect(try attempt(h, at: "2026-04-03T10:04:00Z", auth: "GOOD2").refusal == nil)
    }

    @Test("a success does not clear the count", arguments: BackendKind.allCases)
    func successDoesNotReset(kind: BackendKind) throws {
        let h = try setUp(kind)
        _ = try attempt(h, at: "2026-04-01T10:00:00Z")
        _ = try attempt(h, at: "2026-04-01T10:01:00Z")
        #expect(try attempt(h, at: "2026-04-01T10:02:00Z", auth: "GOOD2").refusal == nil)
        #expect(try attempt(h, at: "2026-04-01T10:03:00Z").refusal?.code == .suspended)
    }

    @Test("the policy is configurable", arguments: BackendKind.allCases)
    func configurable(kind: BackendKind) throws {
        var policy = Policy.default
        policy.lockoutThreshold = 2
        policy.lockoutDuration = 3_600
        let h = try Harness(kind, policy: policy, start: "2026-04-01T00:00:00Z")
        try h.agreement("OL-1", .openLicense, contacts: [(.primaryContact, "own@t.com")], auth: "GOOD")
        try h.user("own", "own@t.com")
        try h.user("r", "r@t.com", profile: true)
        try h.ok(.grantRoles(by: "own", email: "r@t.com", licensingId: "OL-1", roles: [.licensingInfo], saBenefits: []))
        _ = try attempt(h, at: "2026-04-01T10:00:00Z")
        let r = try attempt(h, at: "2026-04-01T10:00:30Z")
        #expect(r.refusal?.code == .suspended)
        #expect(r.refusal?.until == Timestamp(iso8601: "2026-04-01T11:00:30Z"))
    }

    @Test("a retried attempt reports the outcome it had the first time (issue 16, item 1)")
    func retryReportsOriginalOutcome() throws {
        let h = try setUp(.disk)
        guard let ledger = h.ledger else { return }
        let add = Command.addOpenLicense(account: "r", licenseNumber: "OL-2", authorizationNumber: "BAD", acknowledged: true)
        let ids = (0 ..< 4).map { _ in UUID() }
        func send(_ i: Int, _ iso: String) throws -> ExecutionResult {
            try ledger.execute(TimedCommand(at: Timestamp(iso8601: iso) ?? h.now, add, id: ids[i]))
        }
        let first = try send(0, "2026-04-01T10:00:00Z")
        #expect(first.refusal?.code == .invalidLicenseAuthorization && first.seqs.count == 1)
        _ = try send(1, "2026-04-01T10:01:00Z")
        let third = try send(2, "2026-04-01T10:02:00Z")
        #expect(third.refusal?.code == .suspended)
        // retries, later: each reports what its command got, from the log, appending nothing
        let head = try h.headSeq()
        let again = try send(0, "2026-04-05T00:00:00Z")
        #expect(again.wasDuplicate && again.seqs == first.seqs)
        #expect(again.refusal?.code == .invalidLicenseAuthorization)
        #expect(!again.accepted)
        let thirdAgain = try send(2, "2026-04-05T00:00:00Z")
        #expect(thirdAgain.wasDuplicate && thirdAgain.seqs == third.seqs)
        #expect(thirdAgain.refusal?.code == .suspended)
        #expect(thirdAgain.refusal?.until == third.refusal?.until)
        #expect(try h.headSeq() == head)
        // an accepted command's retry is still accepted
        let good = TimedCommand(at: Timestamp(iso8601: "2026-04-05T00:00:00Z") ?? h.now,
                                .addOpenLicense(account: "r", licenseNumber: "OL-2", authorizationNumber: "GOOD2", acknowledged: true), id: ids[3])
        let accepted = try ledger.execute(good)
        #expect(accepted.accepted && !accepted.wasDuplicate)
        let ok = try ledger.execute(good)
        #expect(ok.wasDuplicate && ok.seqs == accepted.seqs && ok.accepted)
    }
}

/// The policy is stored with the ledger (issue 16, item 2).
@Suite("Stored policy")
struct StoredPolicyTests {
    func strictPolicy() -> Policy {
        var p = Policy.default
        p.lockoutThreshold = 2
        p.lockoutDuration = 3_600
        return p
    }

    /// A ledger with one registered Open License user and two failed attempts (a suspension
    /// under the strict policy, none under the default).
    func make(_ dir: TempDir, policy: Policy?) throws -> PermissionLedger {
        let ledger = try PermissionLedger(directory: dir.path, options: .init(policy: policy, authorizationKey: testKey, durability: .noSync))
        let t = Timestamp(iso8601: "2026-04-01T10:00:00Z") ?? Timestamp(seconds: 0)
        let setup: [Command] = [
            .recordAgreement(.init(licensingId: "OL-1", program: .openLicense, contacts: [(.primaryContact, "own@t.com")], authorizationNumber: "GOOD")),
            .registerUser(account: "own", businessEmail: "own@t.com"), .validateEmail(account: "own"),
            .registerUser(account: "r", businessEmail: "r@t.com"), .validateEmail(account: "r"),
            .completeProfile(account: "r", firstName: "R", lastName: "R"),
            .grantRoles(by: "own", email: "r@t.com", licensingId: "OL-1", roles: [.licensingInfo], saBenefits: []),
            .addOpenLicense(account: "r", licenseNumber: "OL-9", authorizationNumber: "BAD", acknowledged: true),
            .addOpenLicense(account: "r", licenseNumber: "OL-9", authorizationNumber: "BAD", acknowledged: true),
        ]
        for c in setup { _ = try ledger.execute(TimedCommand(at: t, c)) }
        return ledger
    }

    @Test("a ledger keeps the policy it was made with: opened without one it uses it, with another it refuses unless told to adopt it")
    func storedPolicy() throws {
        let dir = TempDir()
        let strict = strictPolicy()
        do {
            let ledger = try make(dir, policy: strict)
            #expect(try ledger.lockout(account: "r", asOf: nil, now: Timestamp(iso8601: "2026-04-01T10:30:00Z") ?? .earliest).locked)
        }
        // opened without a policy (as ledger-tool does): the stored one, so verify agrees
        do {
            let plain = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey, durability: .noSync))
            #expect(plain.policy.fingerprint == strict.fingerprint)
            #expect(try plain.verify().ok)
        }
        // another policy: refused, naming the fields; nothing changed
        var conflict: PolicyConflict?
        do { _ = try PermissionLedger(directory: dir.path, options: .init(policy: .default, durability: .noSync)) } catch let e as PolicyConflict { conflict = e }
        #expect(conflict?.fields == ["lockoutThreshold", "lockoutDuration"])
        #expect(conflict?.stored == strict.fingerprint)
        // adopted: the projections are rebuilt under it and the switch is recorded
        var adopt = PermissionLedger.Options(policy: .default, authorizationKey: testKey, durability: .noSync)
        adopt.adoptPolicy = true
        let adopted = try PermissionLedger(directory: dir.path, options: adopt)
        #expect(adopted.policy.fingerprint == Policy.default.fingerprint)
        #expect(try !adopted.lockout(account: "r", asOf: nil, now: Timestamp(iso8601: "2026-04-01T10:30:00Z") ?? .earliest).locked)
        #expect(try adopted.verify().ok)
        let adoptions = try adopted.policyAdoptions()
        #expect(adoptions.count == 1 && adoptions.first?.seq == 9 && adoptions.first?.replaced == strict.fingerprint)
    }

    @Test("the stored form round-trips and the fingerprint ignores role order")
    func storedForm() throws {
        var p = strictPolicy()
        p.contactRoles[.subscriptionsManager] = [.subscriptionsManager, .licensingInfo]
        let back = try p.storedBytes.withUnsafeBytes { try Policy.decode(stored: $0) }
        #expect(back.normalised == p.normalised)
        #expect(p.fingerprint == back.fingerprint)
        #expect(p.fingerprint != Policy.default.fingerprint)
    }
}
