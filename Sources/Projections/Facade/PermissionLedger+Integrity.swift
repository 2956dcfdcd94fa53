import Foundation
import Ledger
import Logging

// Rebuild and verify: the stored projections against a replay of the log.

extension PermissionLedger {
    /// Refolds every projection from the log alone and makes the stored projections equal to
    /// it, in one write transaction (readers keep seeing the old projections until it
    /// commits); only entries that differ are written or removed. Stored as-of snapshots are
    /// dropped.
    /// `progress` is told the seq reached now and then.
    @discardableResult
    public func rebuild(progress: ((UInt64) -> Void)? = nil) throws -> RebuildReport {
        let start = DispatchTime.now().uptimeNanoseconds
        let state = try stateSizedLikeStored()
        let names = state.memoryTables.map(\.table)
        try fold(into: state, progress: progress)
        let events = state.lastSeq
        // each table compared with the stored one, on every core, each in a read transaction
        // (a writer that appends meanwhile makes this, or the write below, a conflict)
        guard let diffs = try differences(from: state) else {
            throw LogError.conflict(expected: events, actual: try log.head().seq)
        }
        Self.freeInBackground(consume state)
        var changed = 0
        try environment.write { txn in
            changed = 0
            try txn.withWriter { writer in
                let head = try log.head(reader: writer)
                guard head.seq == events else { throw LogError.conflict(expected: events, actual: head.seq) }
                for (table, diff) in zip(names, diffs) {
                    guard let db = tables[table] else { throw StateError.missingTable(table.rawValue) }
                    changed += try apply(diff, to: db, writer: writer)
                }
                // snapshots are caches of past states: dropped, made again by as-of questions
                if let db = tables[.snapshots] { try writer.clear(db) }
            }
        }
        asOfCache.withLock { $0 = nil }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        logger.debug("rebuilt projections", metadata: ["events": "\(events)", "seconds": "\(seconds)", "changed": "\(changed)"])
        return RebuildReport(events: events, seconds: seconds, changedEntries: changed)
    }

    /// Frees a memory state on another thread: a large one takes tens of milliseconds to
    /// free (every entry of every table released), which the caller need not wait for. The
    /// caller's reference is given up before the other thread lets go of its own, so the
    /// last release (and the freeing) happens there.
    private static func freeInBackground(_ state: consuming DomainState) {
        let owner = UncheckedBox(Unmanaged.passRetained(state))
        _ = consume state
        DispatchQueue.global(qos: .utility).async { owner.value.release() }
    }

    /// An empty memory state with room in each table for as many entries as the stored
    /// projection holds, so a fold from the first event does not rehash as tables grow.
    private func stateSizedLikeStored() throws -> DomainState {
        let state = DomainState()
        state.openAllTables()
        try environment.read { txn in
            for t in state.memoryTables { if let db = tables[t.table] { t.reserve(try txn.count(db)) } }
        }
        return state
    }

    /// How each stored projection database differs from the memory `state`, compared on
    /// every core, each in a read transaction; nil when the log's head is not the state's
    /// position (a writer appended after the fold).
    private func differences(from state: DomainState) throws -> [TableDifferences]? {
        let memoryTables = state.memoryTables
        let work = UncheckedBox(memoryTables), position = state.lastSeq
        let diffs = ConcurrentResults<TableDifferences>(count: memoryTables.count)
        let failures = ConcurrentResults<any Error>(count: memoryTables.count)
        DispatchQueue.concurrentPerform(iterations: memoryTables.count) { i in
            do {
                let t = work.value[i]
                guard let db = tables[t.table] else { throw StateError.missingTable(t.table.rawValue) }
                try environment.read { txn in
                    try txn.withReader { reader in
                        if try log.head(reader: reader).seq == position { diffs.set(i, try t.differences(db, reader)) }
                    }
                }
            } catch {
                failures.set(i, error)
            }
        }
        for i in memoryTables.indices { if let failure = failures.get(i) { throw failure } }
        var result: [TableDifferences] = []
        for i in memoryTables.indices {
            guard let diff = diffs.get(i) else { return nil }
            result.append(diff)
        }
        return result
    }

    /// Writes what makes `db` equal its memory table: only what differs, so a rebuild of
    /// sound projections writes nothing (no page is copied, the file does not grow), and the
    /// result is the same as clearing the database and writing every entry. Into an empty
    /// database the entries are appended in key order. Returns the entries written or removed.
    private func apply(_ diff: TableDifferences, to db: Database, writer: TransactionWriter) throws -> Int {
        let empty = diff.removals.isEmpty ? try writer.count(db) == 0 : false
        for key in diff.removals { _ = try writer.delete(db, key: key) }
        for (k, v) in diff.puts { try writer.put(db, key: k, value: v, flags: empty ? .append : []) }
        return diff.removals.count + diff.puts.count
    }

    /// Checks the hash chain and seq continuity, then that the stored projections equal a
    /// fresh replay of the log, byte for byte. `progress` is told the seq replayed now and then.
    public func verify(progress: ((UInt64) -> Void)? = nil) throws -> LedgerVerifyReport {
        let logReport = try log.verify()
        guard logReport.ok else { return LedgerVerifyReport(log: logReport, projectionProblem: nil) }
        let state = try stateSizedLikeStored()
        var snapshotSeqs: [UInt64] = []
        let snapshots = tables[.snapshots]
        if let db = snapshots {
            try environment.read { txn in
                try txn.scan(db) { key, _ in
                    if let seq = BigEndianKey.value(key) { snapshotSeqs.append(seq) }
                    return true
                }
            }
        }
        for seq in snapshotSeqs {
            guard let db = snapshots else { break }
            try fold(into: state, upTo: seq, progress: progress)
            let stored: [UInt8]? = try environment.read { txn in
                try txn.withValue(db, key: BigEndianKey.bytes(seq)) { try? DomainState.snapshotPlainBytes(stored: $0) } ?? nil
            }
            if state.lastSeq != seq || stored != state.snapshotBytes() {
                return LedgerVerifyReport(log: logReport, projectionProblem: "the stored snapshot at seq \(seq) differs from a replay; run rebuild")
            }
        }
        // the projections are compared at the point the fold reached: a writer that appended
        // meanwhile is caught up with (each table's read transaction checks the head)
        var diffs: [TableDifferences] = []
        for _ in 0 ..< 100 {
            try fold(into: state, progress: progress)
            guard let found = try differences(from: state) else { continue }
            diffs = found
            break
        }
        let names = state.memoryTables.map(\.table)
        Self.freeInBackground(consume state)
        guard diffs.count == names.count else {
            return LedgerVerifyReport(log: logReport, projectionProblem: "the log kept growing while verify compared the projections; run it again")
        }
        var problem: String?
        for (table, diff) in zip(names, diffs) where !diff.isEmpty {
            let name = table.rawValue
            if let key = diff.removals.first {
                problem = "\(name) holds an entry a replay does not produce (key \(String(decoding: key, as: UTF8.self).debugDescription))"
            } else if let key = diff.firstChanged {
                problem = "\(name) differs from a replay at key \(String(decoding: key, as: UTF8.self).debugDescription)"
            } else {
                problem = "\(name) lacks \(diff.missing) entries a replay produces"
            }
            break
        }
        return LedgerVerifyReport(log: logReport, projectionProblem: problem)
    }
}
