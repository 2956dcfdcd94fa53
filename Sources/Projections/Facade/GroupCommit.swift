import Foundation
import Ledger

/// What group commit has done so far (see `PermissionLedger.submit`): how many shared
/// transactions it committed and how many commands they held.
public struct GroupCommitStatistics: Sendable, Equatable {
    /// Write transactions committed for `submit` calls (one flush each).
    public var batches: Int
    /// Commands decided in them.
    public var commands: Int

    /// Commands per transaction (0 before the first).
    public var averageBatch: Double { batches == 0 ? 0 : Double(commands) / Double(batches) }
}

/// Batches concurrent `submit` calls into shared write transactions: while one batch
/// commits, new commands queue up; the next batch takes them all (up to `maxBatch`) in one
/// transaction and one `fsync`. Each caller resumes when the transaction holding its
/// command is durable. A refused command does not affect the others in its batch.
///
/// Two things make the batches large and keep the writer busy:
/// - **Gathering** (as PostgreSQL's `commit_delay`): when the previous batch held more than
///   one command, the writer waits up to `gatherWait` for as many to queue up before it
///   starts the next one. Callers resumed from one batch submit their next command while
///   the other half's batch commits; without the wait, 32 callers settle into two
///   alternating batches of 16, each paying its own flushes.
/// - **Flushing beside the writer**: the commit flushes the batch's data pages; the final
///   flush that makes it durable (`LMDBEnvironment.makeDurable`) runs on `flushQueue`, so the
///   writer starts the next batch meanwhile. Callers are resumed only after that flush.
///
/// `@unchecked Sendable`: `pending`, `draining`, `lastBatch` and `statistics` are only
/// touched under `condition`; the ledger is Sendable; batches run one at a time on `queue`.
final class GroupCommitter: @unchecked Sendable {
    // unowned: the ledger owns the committer; while a batch drains, the suspended `submit`
    // calls keep the ledger alive.
    private unowned let ledger: PermissionLedger
    private let maxBatch: Int
    private let gatherWait: TimeInterval
    private let condition = NSCondition()
    private var pending: [(TimedCommand, CheckedContinuation<ExecutionResult, any Error>)] = []
    private var draining = false
    /// The size of the last batch, which the writer waits to see again (under `condition`).
    private var lastBatch = 0
    /// The size the writer is waiting for, or 0 (under `condition`).
    private var awaited = 0
    private var statistics = GroupCommitStatistics(batches: 0, commands: 0)
    private let queue = DispatchQueue(label: "permission-ledger.group-commit")
    private let flushQueue = DispatchQueue(label: "permission-ledger.group-commit.flush")

    init(ledger: PermissionLedger, maxBatch: Int = 1_024, gatherWait: TimeInterval = 0.000_2) {
        self.ledger = ledger
        self.maxBatch = maxBatch
        self.gatherWait = gatherWait
    }

    var currentStatistics: GroupCommitStatistics {
        condition.lock()
        defer { condition.unlock() }
        return statistics
    }

    /// Commands handed to `submit` so far: those taken into batches and those still queued
    /// (tests wait on it).
    var submittedCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return statistics.commands + pending.count
    }

    func submit(_ command: TimedCommand) async throws -> ExecutionResult {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            pending.append((command, continuation))
            let start = !draining
            draining = true
            if awaited > 0 && pending.count >= awaited { condition.signal() }
            condition.unlock()
            if start { queue.async { self.drain() } }
        }
    }

    /// Returns when every command submitted before the call has been decided, committed and
    /// made durable, and its caller resumed: the writer's queue runs this after the batches
    /// queued before it (a drain runs until nothing is pending), and the flush queue after the
    /// flushes those batches handed it.
    func idle() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            queue.async { self.flushQueue.async { done.resume() } }
        }
    }

    /// The next batch, after gathering (nil when nothing is queued: draining stops).
    private func nextBatch() -> [(TimedCommand, CheckedContinuation<ExecutionResult, any Error>)]? {
        condition.lock()
        defer { condition.unlock() }
        if lastBatch > 1 && pending.count < min(lastBatch, maxBatch) {
            awaited = min(lastBatch, maxBatch)
            let deadline = Date(timeIntervalSinceNow: gatherWait)
            while pending.count < awaited && condition.wait(until: deadline) {}
            awaited = 0
        }
        if pending.isEmpty {
            draining = false
            lastBatch = 0
            return nil
        }
        let batch = Array(pending.prefix(maxBatch))
        pending.removeFirst(batch.count)
        lastBatch = batch.count
        statistics.batches += 1
        statistics.commands += batch.count
        return batch
    }

    private func drain() {
        while let batch = nextBatch() {
            do {
                let (results, through) = try ledger.executeBatchDeferringSync(batch.map(\.0))
                let ledger = ledger
                ledger.metrics.batchSize.record(batch.count)
                flushQueue.async {
                    do {
                        try ledger.makeDurable(through: through)
                        ledger.metrics.record(results)
                        for ((_, continuation), result) in zip(batch, results) { continuation.resume(returning: result) }
                    } catch {
                        // committed, but not known to be on disk: each caller is told (a retry
                        // with the command's id returns the stored seqs)
                        for (_, continuation) in batch { continuation.resume(throwing: error) }
                    }
                }
            } catch {
                // The shared transaction failed (storage, not a rule): run each on its own, so
                // one command's failure can't fail the others.
                for (command, continuation) in batch {
                    do { continuation.resume(returning: try ledger.execute(command)) } catch { continuation.resume(throwing: error) }
                }
            }
        }
    }
}
