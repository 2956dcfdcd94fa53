import Foundation
import Ledger
import MetricsTestKit
@_spi(LedgerInternals) @testable import Projections
import ServiceLifecycle
import Testing

/// swift-metrics and swift-service-lifecycle (issue 15): what a service operator sees, and a
/// graceful shutdown that drains the writer's queue.
@Suite("Metrics and service lifecycle")
struct MetricsAndServiceTests {
    static let t = Timestamp(seconds: 1_800_000_000)

    /// An agreement, its primary contact registered and validated: 3 commands, 3 events.
    static func setUp(_ ledger: PermissionLedger) throws { _ = try ledger.executeBatch(setUp()) }

    static func setUp() -> [TimedCommand] {
        [
            TimedCommand(at: t, .recordAgreement(.init(licensingId: "EA-1", program: .enterpriseAgreement,
                                                        contacts: [(type: .primaryContact, email: "pc@t.com")]))),
            TimedCommand(at: t, .registerUser(account: "pc", businessEmail: "pc@t.com")),
            TimedCommand(at: t, .validateEmail(account: "pc")),
        ]
    }

    /// Through the sync forms: 3 + 1 accepted, 2 refused (validating twice; a grant by an
    /// account that administers nothing), 1 repeated.
    static func syncSteps(_ ledger: PermissionLedger) throws {
        _ = try ledger.executeBatch(setUp())
        #expect(try ledger.execute(TimedCommand(.validateEmail(account: "pc"))).refusal?.code == .alreadyValidated)
        let repeated = TimedCommand(.registerUser(account: "u", businessEmail: "u@t.com"), id: UUID())
        #expect(try ledger.execute(repeated).accepted)
        #expect(try ledger.execute(repeated).wasDuplicate)
        #expect(try ledger.execute(TimedCommand(.grantRoles(by: "u", email: "pc@t.com", licensingId: "EA-1", roles: [.download], saBenefits: []))).refusal != nil)
    }

    /// A check at the head, one in the past, and a past My Permissions view.
    static func queries(_ ledger: PermissionLedger) throws {
        _ = try ledger.check(account: "pc", action: .manageUsers, licensingId: "EA-1")
        _ = try ledger.check(account: "pc", action: .manageUsers, licensingId: "EA-1", asOf: .seq(2))
        _ = try ledger.permissions(email: "pc@t.com", asOf: .seq(1))
    }

    @Test("commands accepted, refused by code and repeated, events appended, batch sizes, flushes, check and as-of latency are recorded through the factory given")
    func metrics() async throws {
        let dir = TempDir()
        let metrics = TestMetrics()
        let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey, metricsFactory: metrics))
        try Self.syncSteps(ledger)
        // 20 concurrent submits through group commit: all accepted
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0 ..< 20 {
                group.addTask { _ = try await ledger.submit(TimedCommand(.registerUser(account: "g\(i)", businessEmail: "g\(i)@t.com"))) }
            }
            try await group.waitForAll()
        }
        try Self.queries(ledger)

        let label = "permission_ledger_commands_total"
        #expect(metrics.counterTotal(label: label, dimensions: [("result", "accepted")]) == 3 + 1 + 20)
        #expect(metrics.counterTotal(label: label, dimensions: [("result", "duplicate")]) == 1)
        #expect(metrics.counterTotal(label: label, dimensions: [("result", "refused"), ("code", "alreadyValidated")]) == 1)
        let refused = metrics.counters(label: label).filter { $0.dimensions.contains { $0 == ("result", "refused") } }
        #expect(refused.reduce(0) { $0 + $1.totalValue } == 2)
        #expect(metrics.counterTotal(label: "permission_ledger_events_appended_total") == Int64(try ledger.inspector.head().seq))
        let batches = try metrics.expectRecorder("permission_ledger_group_commit_batch_size").values
        #expect(batches.reduce(0, +) == 20)
        // a flush for the set-up batch, the first registration and at least one group commit
        // (a refusal that records nothing and a repeat commit nothing)
        #expect(try metrics.expectTimer("permission_ledger_fsync_duration").values.count >= 3)
        #expect(try metrics.expectTimer("permission_ledger_check_duration", [("point", "head")]).values.count == 1)
        #expect(try metrics.expectTimer("permission_ledger_check_duration", [("point", "past")]).values.count == 1)
        // the past check and the past permissions view
        #expect(try metrics.expectTimer("permission_ledger_asof_query_duration").values.count == 2)
    }

    /// A graceful shutdown with commands still queued: the group's run returns only after
    /// each of them is answered and durable.
    @Test("graceful shutdown drains a full queue: every command submitted before it is answered and on disk when the group returns")
    func gracefulShutdown() async throws {
        let dir = TempDir()
        let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey))
        try Self.setUp(ledger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: ledger)], logger: .init(label: "test")))
        let n = 2_000
        let answered = Counted()
        let headWhenDrained = Counted(), durableWhenDrained = Counted()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for i in 0 ..< n {
                tasks.addTask {
                    let r = try await ledger.submit(TimedCommand(.registerUser(account: "s\(i)", businessEmail: "s\(i)@t.com")))
                    if r.accepted { answered.add() }
                }
            }
            // every command is in the writer's queue (batches of at most 1,024, each flushed)
            while ledger.committer.withLock({ $0?.submittedCount ?? 0 }) < n { try await Task.sleep(for: .milliseconds(1)) }
            tasks.addTask {
                try await group.run()
                // what the ledger had committed and flushed when the group returned
                headWhenDrained.add(Int(try ledger.inspector.head().seq))
                let environment = ledger.environment
                durableWhenDrained.add(environment.durableThrough >= environment.lastCommitID ? 1 : 0)
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(answered.value == n)
        // the group returned only once every queued command was committed and flushed
        #expect(headWhenDrained.value == 3 + n)
        #expect(durableWhenDrained.value == 1)
        #expect(try ledger.inspector.head().seq == UInt64(3 + n))
        #expect(ledger.environment.durableThrough >= ledger.environment.lastCommitID)
    }

    @Test("the ledger's run returns after the queued commands when the group shuts down, before any is submitted too")
    func shutdownOrder() async throws {
        let dir = TempDir()
        let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey))
        let group = ServiceGroup(configuration: .init(services: [.init(service: ledger)], logger: .init(label: "test")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        await ledger.drainSubmitted()
        #expect(try ledger.inspector.head().seq == 0)
    }
}

/// A counter shared by tasks.
final class Counted: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add(_ k: Int = 1) { lock.withLock { n += k } }
    var value: Int { lock.withLock { n } }
}
