import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import Testing

/// Commands without a time are stamped by the ledger when it decides them (issue 15).
@Suite("Ledger-stamped time")
struct LedgerTimeTests {
    @Test("a command's time: its own when given, else the later of now and the last event's")
    func timeRule() {
        let now = Timestamp(seconds: 1_000), earlier = Timestamp(seconds: 900), later = Timestamp(seconds: 1_100)
        let unstamped = TimedCommand(.validateEmail(account: "a"))
        #expect(unstamped.at == nil)
        #expect(unstamped.time(after: nil, now: now) == now)
        #expect(unstamped.time(after: earlier, now: now) == now)
        #expect(unstamped.time(after: later, now: now) == later)
        #expect(unstamped.stamped(after: later, now: now).at == later)
        let given = TimedCommand(at: earlier, .validateEmail(account: "a"))
        #expect(given.time(after: later, now: now) == earlier)
        #expect(given.stamped(after: later, now: now) == given)
    }

    @Test("200 concurrent commands without times are all decided, in commit order, with times that never go backwards; given times out of order keep the rule")
    func concurrentUnstampedCommands() async throws {
        let dir = TempDir()
        let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey, durability: .noSync))
        let before = Timestamp.now
        let results = try await withThrowingTaskGroup(of: ExecutionResult.self) { group in
            for i in 0 ..< 200 {
                group.addTask { try await ledger.submit(TimedCommand(.registerUser(account: "u\(i)", businessEmail: "u\(i)@t.com"))) }
            }
            var all: [ExecutionResult] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 200 && results.allSatisfy { $0.refusal == nil && $0.seqs.count == 1 })
        let events = try ledger.events()
        #expect(events.count == 200)
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.at <= $1.at })
        #expect(events.allSatisfy { $0.at >= before && $0.at <= Timestamp.now })

        // a head in the future: the next unstamped command takes the head's time, not now
        let future = Timestamp(seconds: Timestamp.now.seconds + 86_400 * 365)
        #expect(try await ledger.execute(TimedCommand(at: future, .registerUser(account: "f", businessEmail: "f@t.com"))).refusal == nil)
        #expect(try await ledger.execute(TimedCommand(.validateEmail(account: "f"))).refusal == nil)
        #expect(try ledger.events().last?.at == future)
        // a given time before the head's is still refused
        let back = try await ledger.execute(TimedCommand(at: before, .validateEmail(account: "u1")))
        #expect(back.refusal?.code == .timeWentBackwards)
    }

    @Test("what-if decides a command without a time at the head's time or later")
    func whatIfStamps() throws {
        let dir = TempDir()
        let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey, durability: .noSync))
        let future = Timestamp(seconds: Timestamp.now.seconds + 86_400)
        _ = try ledger.execute(TimedCommand(at: future, .registerUser(account: "a", businessEmail: "a@t.com")))
        let result = try ledger.whatIf([TimedCommand(.validateEmail(account: "a"))])
        #expect(result.results.map(\.refusal) == [nil])
        #expect(try ledger.events().count == 1)
    }
}
