import Foundation
import Ledger
import Logging

// Rebuild and verify: the stored projections against a replay of the log.

extension PermissionLedger {
    /// Refolds every projection from the log alone and makes the stored projections equal to
    /// it — every version of every entry, and the dictionary of stable ids — in one write
    /// transaction (readers keep seeing the old projections until it commits); only entries
    /// that differ are written or removed. A ledger in an older format (with whole-state
    /// snapshots) is upgraded this way: its old entries differ from every new one.
    /// `progress` is told the seq reached now and then.
    @discardableResult
    public func rebuild(progress: ((UInt64) -> Void)? = nil) throws -> RebuildReport {
        let start = DispatchTime.now().uptimeNanoseconds
        // sound projections (the usual case) are confirmed chunk by chunk, in bounded memory
        if let events = try streamingComparison(progress: progress) {
            try dropLegacySnapshots()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            logger.debug("rebuilt projections", metadata: ["events": "\(events)", "seconds": "\(seconds)", "changed": "0"])
            return RebuildReport(events: events, seconds: seconds, changedEntries: 0)
        }
        let state = DomainState(recording: true)
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
                for (table, diff) in diffs {
                    changed += try apply(diff, to: projectionDatabases[table], writer: writer)
                }
                try writer.put(projectionDatabases[.meta], key: Self.formatKey, value: [DomainState.format])
            }
        }
        try dropLegacySnapshots()
        idCache?.clear()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        logger.debug("rebuilt projections", metadata: ["events": "\(events)", "seconds": "\(seconds)", "changed": "\(changed)"])
        return RebuildReport(events: events, seconds: seconds, changedEntries: changed)
    }

    /// Events folded per step of a streaming comparison.
    static let streamChunk: UInt64 = 32_768

    /// The file-backed resident memory past which a streaming comparison gives back the
    /// data file's mapped pages (`TransactionReader.releaseMappedPages(above:)`).
    static let mappedBudget = 128 << 20

    /// Whether the stored projections equal a replay of the log, found without holding the
    /// history's versions in memory: in one read transaction, each chunk of events is folded
    /// into the stored projections as of the chunk's start (an overlay: what the chunk
    /// changes stays in memory), and every version it makes must be stored, byte for byte;
    /// at the end each versioned table must hold exactly as many versions as were made (so
    /// none more), and the dictionary and the position must equal the replay's. By induction
    /// over the chunks that is equality of every table. Memory: one chunk's changes and the
    /// dictionary. Returns the events compared, or nil at the first difference (the caller
    /// then compares in full, to name it or to repair it).
    func streamingComparison(chunk: UInt64 = streamChunk, progress: ((UInt64) -> Void)?) throws -> UInt64? {
        try environment.read { txn in
            try txn.withReader { reader -> UInt64? in
                // a fold that scans a whole table (an erasure withdraws the subject's requests)
                // gives the mapping back inside the scan too
                reader.scanMappedBudget = Self.mappedBudget
                let head = try log.head(reader: reader)
                let meta = projectionDatabases[.meta]
                guard try reader.withValue(meta, key: Self.formatKey, { Array($0) }) == [DomainState.format] else { return nil }
                let replay = StableIDs(memory: ())
                var made: [ProjectionTable: Int] = [:]
                var start: UInt64 = 1
                var lastAt: Timestamp?
                while start <= head.seq {
                    let end = min(head.seq, start + max(chunk, 1) - 1)
                    let state = try DomainState(databases: projectionDatabases, reader: reader, overlayAsOf: start - 1, at: lastAt, replay: replay)
                    try log.forEach(from: start, reader: reader) { view in
                        if view.seq > end { return false }
                        try evolver.evolve(state, try foldEvent(kind: view.kind, payload: view.payload), seq: view.seq, at: view.at)
                        // a chunk reads pages all over the projections: what it read is
                        // decoded in memory, so the mapped pages are given back when they
                        // pass the budget (the resident set does not grow with the file)
                        if view.seq % 2_048 == 0 { try reader.releaseMappedPages(above: Self.mappedBudget) }
                        return true
                    }
                    lastAt = state.lastAt
                    for (table, rows) in state.takeRecorded() {
                        made[table, default: 0] += rows.count
                        let db = projectionDatabases[table]
                        let equal = try rows.withRows { row in
                            for i in 0 ..< rows.count {
                                // each look-up maps pages anywhere in the table, as the fold's do
                                if i % 4_096 == 4_095 { try reader.releaseMappedPages(above: Self.mappedBudget) }
                                let r = row(i)
                                guard try reader.withValue(db, key: r.key, { RowBuffer.compare($0, r.value) == 0 }) == true else { return false }
                            }
                            return true
                        }
                        if !equal { return nil }
                        try reader.releaseMappedPages(above: Self.mappedBudget)
                    }
                    progress?(end)
                    start = end + 1
                }
                for spec in StateTables.all where StableIDs.prefixLength(spec.key) != nil {
                    if try reader.count(projectionDatabases[spec.table]) != made[spec.table, default: 0] { return nil }
                }
                // the dictionary, and the position (beside the format)
                guard try replay.matchesStored(projectionDatabases[.ids], reader: reader) else { return nil }
                let position = SortedRows(sorted: [(Array("checkpoint".utf8), MetaRecord(lastSeq: head.seq, lastAt: head.at).encoded)])
                let formatKey = Self.formatKey
                guard try TableDifferences.between(position, stored: meta, reader: reader, ignoring: { $0.elementsEqual(formatKey) }).isEmpty else { return nil }
                return head.seq
            }
        }
    }

    /// Empties `p.snapshots`, where format 1 kept whole-state snapshots (when it exists).
    private func dropLegacySnapshots() throws {
        guard try environment.databaseExists("p.snapshots"), let db = try environment.openDatabases(["p.snapshots"]).first else { return }
        try environment.write { txn in try txn.clear(db) }
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

    /// How each stored projection database differs from the recording memory `state`,
    /// compared on every core, each in a read transaction; nil when the log's head is not
    /// the state's position (a writer appended after the fold).
    private func differences(from state: DomainState) throws -> [(ProjectionTable, TableDifferences)]? {
        let forms = state.storedForms
        let work = UncheckedBox(forms), position = state.lastSeq
        let diffs = ConcurrentResults<TableDifferences>(count: forms.count)
        let failures = ConcurrentResults<any Error>(count: forms.count)
        let formatKey = Self.formatKey
        DispatchQueue.concurrentPerform(iterations: forms.count) { i in
            do {
                let form = work.value[i]
                let db = projectionDatabases[form.table]
                let expected = try form.rows()
                try environment.read { txn in
                    try txn.withReader { reader in
                        guard try log.head(reader: reader).seq == position else { return }
                        // the format is written by open and rebuild, not by the fold
                        diffs.set(i, try TableDifferences.between(expected, stored: db, reader: reader,
                                                                  ignoring: { form.table == .meta && $0.elementsEqual(formatKey) }))
                    }
                }
            } catch {
                failures.set(i, error)
            }
        }
        for i in forms.indices { if let failure = failures.get(i) { throw failure } }
        var result: [(ProjectionTable, TableDifferences)] = []
        for i in forms.indices {
            guard let diff = diffs.get(i) else { return nil }
            result.append((forms[i].table, diff))
        }
        return result
    }

    /// Writes what makes `db` equal its memory table: only what differs, so a rebuild of
    /// sound projections writes nothing (no page is copied, the file does not grow), and the
    /// result is the same as clearing the database and writing every entry. Into an empty
    /// database the entries are appended in key order. Returns the entries written or removed.
    private func apply(_ diff: TableDifferences, to db: LMDBDatabase, writer: TransactionWriter) throws -> Int {
        let empty = diff.removals.isEmpty ? try writer.count(db) == 0 : false
        for key in diff.removals { _ = try writer.delete(db, key: key) }
        for (k, v) in diff.puts { try writer.put(db, key: k, value: v, flags: empty ? .append : []) }
        return diff.removals.count + diff.puts.count
    }

    /// Checks the hash chain and seq continuity, then that the stored projections — every
    /// version of every entry, and the dictionary of stable ids — equal a fresh replay of
    /// the log, byte for byte. `progress` is told the seq replayed now and then.
    public func verify(progress: ((UInt64) -> Void)? = nil) throws -> LedgerVerifyReport {
        let logReport = try log.verify()
        guard logReport.ok else { return LedgerVerifyReport(log: logReport, projectionProblem: nil) }
        if let format = try environment.read({ txn in try txn.withValue(projectionDatabases[.meta], key: Self.formatKey) { Array($0) } }),
           format != [DomainState.format] {
            return LedgerVerifyReport(log: logReport, projectionProblem: "the projections are in format \(format.first ?? 0), not \(DomainState.format); run rebuild")
        }
        // sound projections (the usual case) are confirmed chunk by chunk, in bounded memory;
        // a difference is then found again in full, to name it
        if try streamingComparison(progress: progress) != nil {
            return LedgerVerifyReport(log: logReport, projectionProblem: nil)
        }
        let state = DomainState(recording: true)
        // the projections are compared at the point the fold reached: a writer that appended
        // meanwhile is caught up with (each table's read transaction checks the head)
        var diffs: [(ProjectionTable, TableDifferences)]?
        for _ in 0 ..< 100 {
            try fold(into: state, progress: progress)
            diffs = try differences(from: state)
            if diffs != nil { break }
        }
        let described = state.ids
        guard let diffs else {
            Self.freeInBackground(consume state)
            return LedgerVerifyReport(log: logReport, projectionProblem: "the log kept growing while verify compared the projections; run it again")
        }
        var problem: String?
        for (table, diff) in diffs where !diff.isEmpty {
            let name = table.rawValue
            if let key = diff.removals.first {
                problem = "\(name) holds an entry a replay does not produce (\(Self.describe(key, table, described)))"
            } else if let key = diff.firstChanged {
                problem = "\(name) differs from a replay at \(Self.describe(key, table, described))"
            } else {
                problem = "\(name) lacks \(diff.missing) entries a replay produces"
            }
            break
        }
        Self.freeInBackground(consume state)
        return LedgerVerifyReport(log: logReport, projectionProblem: problem)
    }

    /// A stored key in words: for a versioned table the names its ids stand for and the
    /// version's seq (`ids`: the replay's dictionary).
    private static func describe(_ key: [UInt8], _ table: ProjectionTable, _ ids: StableIDs) -> String {
        let spec = StateTables.all.first { $0.table == table }
        if let shape = spec?.key, let length = StableIDs.prefixLength(shape), key.count == length + 8 {
            let seq = key.withUnsafeBytes { BigEndianKey.value(UnsafeRawBufferPointer(rebasing: $0[length...])) } ?? 0
            let name = (try? key.withUnsafeBytes { try ids.key(stored: UnsafeRawBufferPointer(rebasing: $0[0 ..< length]), shape) }) ?? nil
            return "key \((name ?? "(unknown id)").debugDescription), version seq \(seq)"
        }
        return "key \(String(decoding: key, as: UTF8.self).debugDescription)"
    }
}
