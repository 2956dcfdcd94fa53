import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import Testing

/// The async forms (issue 15): from many tasks at once they give what the sync forms give
/// one by one, and nothing waits on a blocked thread.
@Suite("Async forms")
struct AsyncTests {
    /// What one task's steps answered, without the seqs (which depend on the interleaving).
    struct Outcome: Equatable {
        var refusals: [DomainErrorCode?] = []
        var allowed: Bool?
        var rows: [[String]] = []
        var explained: [Role] = []
        var history: [[Role]] = []
    }

    static func setUp(_ ledger: PermissionLedger) throws {
        let t = Timestamp(seconds: 1_800_000_000)
        _ = try ledger.executeBatch([
            TimedCommand(at: t, .recordAgreement(.init(licensingId: "EA-1", program: .enterpriseAgreement,
                                                        contacts: [(type: .primaryContact, email: "pc@t.com")]))),
            TimedCommand(at: t, .registerUser(account: "pc", businessEmail: "pc@t.com")),
            TimedCommand(at: t, .validateEmail(account: "pc")),
        ])
    }

    /// Task `i`'s commands (no times: the ledger stamps them) and what they lead to.
    static func commands(_ i: Int) -> [TimedCommand] {
        var roles: [Role] = [.download]
        if i % 3 == 0 { roles.append(.productKeys) }
        var out = [
            TimedCommand(.registerUser(account: "u\(i)", businessEmail: "u\(i)@t.com")),
            TimedCommand(.validateEmail(account: "u\(i)")),
            TimedCommand(.grantRoles(by: "pc", email: "u\(i)@t.com", licensingId: "EA-1", roles: roles, saBenefits: [])),
        ]
        // a refusal in the middle: u(i) administers nothing
        if i % 5 == 0 { out.append(TimedCommand(.grantRoles(by: "u\(i)", email: "pc@t.com", licensingId: "EA-1", roles: [.download], saBenefits: []))) }
        return out
    }

    /// Every task's steps, one task after the other, through the sync forms.
    static func oneByOne(_ n: Int, in dir: TempDir) throws -> [Outcome] {
        let serial = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey, durability: .noSync))
        try setUp(serial)
        var expected: [Outcome] = []
        for i in 0 ..< n {
            var o = Outcome()
            for c in commands(i) { o.refusals.append(try serial.execute(c).refusal?.code) }
            o.allowed = try serial.check(account: "u\(i)", action: .downloadSoftware, licensingId: "EA-1").allowed
            o.rows = try serial.permissions(email: "u\(i)@t.com").rows.map { [$0.licensingId] + $0.roles.map(\.rawValue) }
            o.explained = try serial.explain(email: "u\(i)@t.com", licensingId: "EA-1").get().roles.map(\.role)
            o.history = try serial.history(email: "u\(i)@t.com").get().changes.map(\.after.roles)
            expected.append(o)
        }
        return expected
    }

    /// The whole-ledger questions, through the sync forms.
    struct Overall: Equatable {
        var access: AccessReview
        var admins: [AdministratorEntry]
        var diff: PermissionDiff
        var lockout: LockoutStatus
    }

    static func overall(_ ledger: PermissionLedger, at: Timestamp) throws -> Overall {
        Overall(access: try ledger.access(licensingId: "EA-1").get(), admins: try ledger.administrators(of: "EA-1").get(),
                diff: try ledger.diff(from: .seq(0)).get(), lockout: try ledger.lockout(account: "u1", at: at))
    }

    @Test("200 tasks mixing commands and queries through the async forms get what the sync forms give one by one, and all finish")
    func concurrentMatchesSerial() async throws {
        let n = 200
        // one by one, through the sync forms
        let serialDir = TempDir()
        let expected = try Self.oneByOne(n, in: serialDir)

        // all at once, through the async forms (durable: group commit and its flushes)
        let dir = TempDir()
        let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey))
        try Self.setUp(ledger)
        let finished = try await withThrowingTaskGroup(of: (Int, Outcome)?.self) { group -> [Int: Outcome]? in
            for i in 0 ..< n {
                group.addTask {
                    var o = Outcome()
                    for c in Self.commands(i) { o.refusals.append(try await ledger.execute(c).refusal?.code) }
                    o.allowed = try await ledger.check(account: "u\(i)", action: .downloadSoftware, licensingId: "EA-1").allowed
                    o.rows = try await ledger.permissions(email: "u\(i)@t.com").rows.map { [$0.licensingId] + $0.roles.map(\.rawValue) }
                    o.explained = try await ledger.explain(email: "u\(i)@t.com", licensingId: "EA-1").get().roles.map(\.role)
                    o.history = try await ledger.history(email: "u\(i)@t.com").get().changes.map(\.after.roles)
                    return (i, o)
                }
            }
            // the deadline: a task stuck behind a blocked thread would never finish
            group.addTask {
                try await Task.sleep(for: .seconds(120))
                return nil
            }
            var out: [Int: Outcome] = [:]
            for try await result in group {
                guard let (i, o) = result else { group.cancelAll(); return nil }
                out[i] = o
                if out.count == n { group.cancelAll(); return out }
            }
            return out
        }
        guard let finished else { Issue.record("the tasks did not finish within 120 s"); return }
        #expect(finished.count == n)
        for i in 0 ..< n where finished[i] != expected[i] {
            Issue.record("task \(i): \(String(describing: finished[i])) one by one: \(expected[i])")
        }
        #expect(expected.filter { $0.refusals.contains(.forbidden) }.count == n / 5)
        #expect(expected.allSatisfy { $0.allowed == true })
        // the other async forms answer as the sync ones
        let now = Timestamp.now
        let viaAsync = Overall(access: try await ledger.access(licensingId: "EA-1").get(), admins: try await ledger.administrators(of: "EA-1").get(),
                               diff: try await ledger.diff(from: .seq(0)).get(), lockout: try await ledger.lockout(account: "u1", at: now))
        #expect(viaAsync == (try Self.overall(ledger, at: now)))
        #expect(viaAsync.access.principals.count == n + 1)
        let batch = try await ledger.executeBatch([TimedCommand(.registerUser(account: "late", businessEmail: "late@t.com"))])
        #expect(batch.map(\.refusal) == [nil])
        #expect(try await ledger.whatIf([TimedCommand(.validateEmail(account: "late"))]).results.map(\.refusal) == [nil])
    }
}
