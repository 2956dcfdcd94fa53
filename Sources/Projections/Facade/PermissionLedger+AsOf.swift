import Foundation
import Ledger

// Questions about a point in history: resolving a point to a seq and the state there.

extension PermissionLedger {
    /// Runs `body` on the state as of `asOf` (the live projections when nil or at/after
    /// the head), in one read transaction.
    ///
    /// A past state is read from the versioned projections: every entry as its latest
    /// version at or before the point, one cursor seek per entry read, so a question about
    /// any point costs about what the same question at the head costs without the hot cache
    /// — nothing is folded and nothing grows with the distance from the head.
    @_spi(LedgerInternals) public func withState<R>(asOf: AsOf? = nil, _ body: (DomainState) throws -> R) throws -> R {
        try environment.read { txn in
            if let asOf {
                let target: UInt64
                switch asOf {
                case let .seq(n): target = n
                case let .time(t): target = try log.lastSeq(atOrBefore: t, in: txn)
                }
                if target < (try log.head(in: txn)).seq {
                    let at = target == 0 ? nil : try log.event(target, in: txn)?.at
                    return try LedgerMetrics.timed(metrics.asOfQuery) {
                        try txn.withReader { reader in
                            try body(try DomainState(databases: projectionDatabases, reader: reader, asOf: target, at: at, idCache: idCache))
                        }
                    }
                }
            }
            return try txn.withReader { reader in
                let state = try DomainState(databases: projectionDatabases, reader: reader, hot: hot, idCache: idCache)
                let result = try body(state)
                state.publishHot(committed: state.snapshotVersion)
                return result
            }
        }
    }

    /// The seq an `AsOf` stands for: the seq itself, or for a time the last event with
    /// `at` at or before it (0 when none), found by binary search over the log's times.
    public func resolve(_ asOf: AsOf) throws -> UInt64 {
        switch asOf {
        case let .seq(n): return n
        case let .time(t): return try environment.read { txn in try log.lastSeq(atOrBefore: t, in: txn) }
        }
    }
}
