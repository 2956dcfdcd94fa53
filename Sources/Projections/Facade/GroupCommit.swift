import Foundation
import Ledger

/// Batches concurrent `submit` calls into shared write transactions: while one batch
/// commits, new commands queue up; the next batch takes them all (up to `maxBatch`) in one
/// transaction and one `fsync`. Each caller resumes when the transaction holding its
/// command is durable. A refused command does not affect the others in its batch.
///
/// `@unchecked Sendable`: `pending` and `draining` are only touched under `lock`; the
/// ledger is Sendable; batches run one at a time on `queue`.
final class GroupCommitter: @unchecked Sendable {
    // unowned: the ledger owns the committer; while a batch drains, the suspended `submit`
    // calls keep the ledger alive.
    private unowned let ledger: PermissionLedger
    private let maxBatch: Int
    private let lock = NSLock()
    private var pending: [(TimedCommand, CheckedContinuation<ExecutionResult, any Error>)] = []
    private var draining = false
    private let queue = DispatchQueue(label: "permission-ledger.group-commit")

    init(ledger: PermissionLedger, maxBatch: Int = 1_024) {
        self.ledger = ledger
        self.maxBatch = maxBatch
    }

    func submit(_ command: TimedCommand) async throws -> ExecutionResult {
        try await withCheckedThrowingContinuation { continuation in
            lock.lock()
            pending.append((command, continuation))
            let start = !draining
            draining = true
            lock.unlock()
            if start { queue.async { self.drain() } }
        }
    }

    private func drain() {
        while true {
            lock.lock()
            if pending.isEmpty {
                draining = false
                lock.unlock()
                return
            }
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            lock.unlock()
            do {
                let results = try ledger.executeBatch(batch.map(\.0))
                for ((_, continuation), result) in zip(batch, results) { continuation.resume(returning: result) }
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
