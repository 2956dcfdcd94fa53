import Foundation
import Ledger

// Questions about a point in history: resolving a point to a seq and the state there.

extension PermissionLedger {
    /// Runs `body` on the state as of `asOf` (the live projections when nil or at/after
    /// the head).
    ///
    /// A past state is folded in memory from the best base: the state of the previous as-of
    /// question when it lies before the point and within one snapshot interval, else the
    /// nearest stored snapshot at or before the point, else the empty state. Folding past a
    /// multiple of the snapshot spacing stores a snapshot there (see `Options.maxSnapshots`).
    /// Cost: loading a snapshot (proportional to the state's size) plus folding at most one
    /// spacing of events.
    public func withState<R>(asOf: AsOf? = nil, _ body: (DomainState) throws -> R) throws -> R {
        if let asOf {
            let target = try resolve(asOf)
            let head = try log.head().seq
            if target < head {
                let spacing = snapshotSpacing(head: head)
                return try asOfCache.withLock { cache in
                    var state: DomainState
                    if let cached = cache?.state, cached.lastSeq <= target, target - cached.lastSeq < spacing {
                        state = cached
                    } else {
                        state = try nearestSnapshot(atOrBefore: target) ?? DomainState()
                        if let cached = cache?.state, cached.lastSeq <= target, cached.lastSeq > state.lastSeq { state = cached }
                    }
                    cache = AsOfCache(state: state)
                    try foldStoringSnapshots(into: state, upTo: target, spacing: spacing)
                    return try body(state)
                }
            }
        }
        return try environment.read { txn in
            try txn.withReader { reader in
                let state = try DomainState(databases: projectionDatabases, reader: reader, hot: hot)
                let result = try body(state)
                state.publishHot(committed: state.snapshotVersion)
                return result
            }
        }
    }

    /// The distance between as-of snapshots for a log of `head` events: the interval,
    /// doubled until at most `maxSnapshots` fit.
    func snapshotSpacing(head: UInt64) -> UInt64 {
        var spacing = snapshotInterval
        while head / spacing > UInt64(maxSnapshots), spacing <= UInt64.max / 4 { spacing *= 2 }
        return spacing
    }

    /// The stored snapshot with the largest seq ≤ `target` (snapshots sit at multiples of
    /// the interval), loaded into a memory state.
    func nearestSnapshot(atOrBefore target: UInt64) throws -> DomainState? {
        guard let db = tables[.snapshots] else { return nil }
        var multiple = target / snapshotInterval
        return try environment.read { txn in
            while multiple > 0 {
                if let state = try txn.withValue(db, key: BigEndianKey.bytes(multiple * snapshotInterval), { try DomainState.fromStoredSnapshot($0) }) {
                    return state
                }
                multiple -= 1
            }
            return nil
        }
    }

    /// Folds to `target`, storing a snapshot at each multiple of `spacing` passed that has
    /// none yet; snapshots off that spacing (left from a shorter log) are deleted then.
    func foldStoringSnapshots(into state: DomainState, upTo target: UInt64, spacing: UInt64) throws {
        while state.lastSeq < target {
            let next = (state.lastSeq / spacing + 1) * spacing
            guard next <= target else {
                try fold(into: state, upTo: target)
                return
            }
            let before = state.lastSeq
            try fold(into: state, upTo: next)
            if state.lastSeq == next, let db = tables[.snapshots] {
                let bytes = state.storedSnapshot()
                try environment.write { txn in
                    if try txn.get(db, key: BigEndianKey.bytes(next)) == nil {
                        try txn.put(db, key: BigEndianKey.bytes(next), value: bytes)
                    }
                    try txn.withWriter { writer in
                        var offGrid: [[UInt8]] = []
                        try writer.scan(db) { key, _ in
                            if let seq = BigEndianKey.value(key), seq % spacing != 0 { offGrid.append(Array(key)) }
                            return true
                        }
                        for key in offGrid { _ = try writer.delete(db, key: key) }
                    }
                }
            }
            if state.lastSeq == before { return }  // the log ends here
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

/// The memory state of the last as-of question, reused when the next one is further on.
struct AsOfCache: @unchecked Sendable {
    // Only touched under `PermissionLedger.asOfCache`'s lock.
    let state: DomainState
}
