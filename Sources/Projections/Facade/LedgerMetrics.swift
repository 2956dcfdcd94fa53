import Dispatch
import Ledger
import Metrics

/// The metrics a ledger reports through swift-metrics (names in DocC's Operating article):
///
/// | label | kind | dimensions |
/// |---|---|---|
/// | `permission_ledger_commands_total` | counter | `result`: `accepted`, `refused` (with `code`), `duplicate` |
/// | `permission_ledger_events_appended_total` | counter | |
/// | `permission_ledger_group_commit_batch_size` | recorder | |
/// | `permission_ledger_fsync_duration` | timer | |
/// | `permission_ledger_check_duration` | timer | `point`: `head`, `past` |
/// | `permission_ledger_asof_query_duration` | timer | |
///
/// The handles are made once, when the ledger opens, from the factory in
/// ``PermissionLedger/Options/metricsFactory`` or else `MetricsSystem.factory` — so a service
/// bootstraps its metrics system before it opens the ledger. The library never bootstraps one.
struct LedgerMetrics: Sendable {
    let accepted: Counter
    let duplicate: Counter
    let refused: [DomainErrorCode: Counter]
    let eventsAppended: Counter
    let batchSize: Recorder
    let fsync: Metrics.Timer
    let checkHead: Metrics.Timer
    let checkPast: Metrics.Timer
    let asOfQuery: Metrics.Timer

    static let commands = "permission_ledger_commands_total"

    init(factory: any MetricsFactory) {
        accepted = Counter(label: Self.commands, dimensions: [("result", "accepted")], factory: factory)
        duplicate = Counter(label: Self.commands, dimensions: [("result", "duplicate")], factory: factory)
        var refused: [DomainErrorCode: Counter] = [:]
        for code in DomainErrorCode.allCases {
            refused[code] = Counter(label: Self.commands, dimensions: [("result", "refused"), ("code", code.rawValue)], factory: factory)
        }
        self.refused = refused
        eventsAppended = Counter(label: "permission_ledger_events_appended_total", factory: factory)
        batchSize = Recorder(label: "permission_ledger_group_commit_batch_size", factory: factory)
        fsync = Metrics.Timer(label: "permission_ledger_fsync_duration", factory: factory)
        checkHead = Metrics.Timer(label: "permission_ledger_check_duration", dimensions: [("point", "head")], factory: factory)
        checkPast = Metrics.Timer(label: "permission_ledger_check_duration", dimensions: [("point", "past")], factory: factory)
        asOfQuery = Metrics.Timer(label: "permission_ledger_asof_query_duration", factory: factory)
    }

    /// Counts what a batch of commands did: each accepted, refused (by code) or a duplicate,
    /// and the events appended (a refusal may record one: R9's failed attempt).
    func record(_ results: [ExecutionResult]) {
        var accepted = 0, duplicates = 0, events = 0
        for r in results {
            if r.wasDuplicate {
                duplicates += 1
                continue
            }
            events += r.seqs.count
            if let code = r.refusal?.code { refused[code]?.increment() } else { accepted += 1 }
        }
        if accepted > 0 { self.accepted.increment(by: accepted) }
        if duplicates > 0 { duplicate.increment(by: duplicates) }
        if events > 0 { eventsAppended.increment(by: events) }
    }

    /// Runs `body` and records how long it took in `timer`.
    @inline(__always)
    static func timed<R>(_ timer: Metrics.Timer, _ body: () throws -> R) rethrows -> R {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { timer.recordNanoseconds(Int64(clamping: DispatchTime.now().uptimeNanoseconds &- start)) }
        return try body()
    }
}
