import Ledger
import ServiceLifecycle

// Running the ledger's writer in a swift-service-lifecycle ServiceGroup.

extension PermissionLedger: Service {
    /// Runs until the service group shuts down gracefully (or the task is cancelled), then
    /// drains: returns once every command submitted (``submit(_:)`` and the async `execute`)
    /// before the shutdown is decided, committed, durable and answered. Put the ledger after the
    /// services that submit commands in the group's list: a group shuts its services down in
    /// reverse order, so they stop submitting before the ledger drains.
    ///
    /// The ledger stays open afterwards: a command submitted later is still executed (and
    /// durable) — draining waits for what was queued, it doesn't close the ledger.
    public func run() async throws {
        // returns at graceful shutdown; throws CancellationError when cancelled first
        try? await gracefulShutdown()
        await drainSubmitted()
    }

    /// Returns when every command submitted before the call has been committed, made durable
    /// and answered (at once when group commit has never run).
    public func drainSubmitted() async {
        guard let committer = committer.withLock({ $0 }) else { return }
        await committer.idle()
    }
}
