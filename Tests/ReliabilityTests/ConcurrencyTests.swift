import Foundation
import Ledger
@_spi(LedgerInternals) import Projections
import Testing

/// Many processes and threads writing one ledger at once.
@Suite("Concurrency", .serialized)
struct ConcurrencyTests {
    let at = "2026-06-01T00:00:00Z"

    func setUp(_ dir: TempDir) throws {
        let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: try AuthorizationKey(bytes: Array("reliability-suite-fixed-key-32by".utf8)),
                                                                              durability: .noSync))
        let t = Timestamp(iso8601: "2026-05-01T00:00:00Z") ?? Timestamp(seconds: 0)
        for c: Command in [
            .recordAgreement(.init(licensingId: "OL-BURST", program: .openLicense, contacts: [(type: .primaryContact, email: "own@t.com")], authorizationNumber: "RIGHT")),
            .registerUser(account: "own", businessEmail: "own@t.com"), .validateEmail(account: "own"),
            .registerUser(account: "burst", businessEmail: "burst@t.com"), .validateEmail(account: "burst"),
            .completeProfile(account: "burst", firstName: "B", lastName: "B"),
            .grantRoles(by: "own", email: "burst@t.com", licensingId: "OL-BURST", roles: [.licensingInfo], saBenefits: []),
        ] {
            #expect(try ledger.execute(TimedCommand(at: t, c)).accepted)
        }
        try ledger.environment.sync()
    }

    @Test("8 processes × 4 threads with retries reusing ids: no duplicate, no loss, no gap")
    func processesAndThreads() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let dir = TempDir()
        try setUp(dir)
        let seed = suiteSeed()
        let children = try (0 ..< 8).map { p in
            try Child(harnessPath, ["stress", dir.path, "--threads", "4", "--commands", "30", "--seed", "\(seed &+ UInt64(p) &* 101)", "--at", at], stderr: true)
        }
        var acks: [UUID: [UInt64]] = [:]
        for child in children {
            for line in child.finish() {
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 3, parts[0] == "ack", let id = UUID(uuidString: String(parts[1])) else { continue }
                acks[id] = parts[2].split(separator: ",").compactMap { UInt64($0) }
            }
            #expect(child.process.terminationStatus == 0, "a stress process failed (seed \(seed))")
        }
        #expect(acks.count == 8 * 4 * 30, "lost acknowledgements (seed \(seed))")
        let ledger = try PermissionLedger(directory: dir.path, options: .init(durability: .noSync))
        let events = try ledger.events()
        #expect(Set(events.map(\.id)).count == events.count, "duplicate event id (seed \(seed))")
        #expect(events.map(\.seq) == Array(1 ... UInt64(events.count)), "gap (seed \(seed))")
        let byID = Dictionary(uniqueKeysWithValues: events.map { ($0.id, $0.seq) })
        for (id, seqs) in acks where !seqs.isEmpty {
            #expect(byID[id] == seqs.first, "acknowledged command \(id) is not stored at \(seqs) (seed \(seed))")
            #expect(seqs.allSatisfy { $0 <= UInt64(events.count) })
        }
        #expect(try ledger.verify().ok)
    }

    @Test("a concurrent burst of failed Add Open License attempts records exactly the attempts before suspension")
    func lockoutBurst() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let dir = TempDir()
        try setUp(dir)
        let children = try (0 ..< 8).map { p in
            try Child(harnessPath, ["stress", dir.path, "--threads", "4", "--commands", "3", "--seed", "\(p)", "--at", at, "--burst-account", "burst"], stderr: true)
        }
        for child in children {
            _ = child.finish()
            #expect(child.process.terminationStatus == 0)
        }
        let ledger = try PermissionLedger(directory: dir.path, options: .init(durability: .noSync))
        let failures = try ledger.events { if case .openLicenseAttemptFailed = $0.event { return true } else { return false } }
        #expect(failures.count == 3)
        let status = try ledger.lockout(account: "burst", at: Timestamp(iso8601: at) ?? Timestamp(seconds: 0))
        #expect(status.locked && status.recentFailures == 3)
    }
}
