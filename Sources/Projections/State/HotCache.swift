import Synchronization

/// The decoded projection records of one table, kept between transactions.
final class HotTable<V: StateRecord> {
    /// key → record (only records that exist). Touched only under `HotCache`'s lock.
    var entries: [String: V] = [:]
}

/// Decoded projection records kept **between** transactions, so that a check or a command
/// does not read and decode from LMDB what an earlier transaction already did.
///
/// Every entry is valid at one LMDB commit: `version`, LMDB's transaction id. A state
/// whose transaction sees commit R uses the cache only while `version == R` (checked at
/// every lookup, under the lock); a commit by anyone (this process or another, a rebuild,
/// an import) moves LMDB past `version`, so the cache is simply no longer used until a
/// transaction publishes records at the new commit, which clears what is older. Nothing
/// is ever invalidated by hand, and a record is never seen at a commit it is not valid at.
///
/// - A read-only state at commit R publishes what it read when `version ≤ R` (clearing the
///   cache first when `version < R`).
/// - A write transaction that committed W (its snapshot was W − 1) publishes what it read
///   and wrote when `version < W` (clearing first unless `version == W − 1`). A write
///   transaction that wrote nothing does not move LMDB's id and publishes nothing.
///
/// `@unchecked Sendable`: the tables are touched only inside `lock.withLock`.
final class HotCache: @unchecked Sendable {
    /// The commit the entries are valid at (0: none), and the lock every access takes.
    private let lock = Mutex<UInt64>(0)
    /// Entries per table beyond which the table is emptied (memory bound).
    let limitPerTable: Int
    let accounts = HotTable<AccountRecord>(), emailOwners = HotTable<StringValue>(), agreements = HotTable<AgreementRecord>()
    let cells = HotTable<CellRecord>(), emailLids = HotTable<StringSet>(), legalContactLids = HotTable<StringSet>()
    let lidAdmins = HotTable<StringSet>(), optOuts = HotTable<SeqValue>(), requests = HotTable<RequestRecord>()
    let lockouts = HotTable<LockoutRecord>(), meta = HotTable<MetaRecord>()
    private let all: [any ClearableHotTable]

    init(limitPerTable: Int) {
        self.limitPerTable = limitPerTable
        all = [accounts, emailOwners, agreements, cells, emailLids, legalContactLids, lidAdmins, optOuts, requests, lockouts, meta]
    }

    /// The cached record for `key` when the cache is valid at `version` and holds it (nil:
    /// the cache can't say; absent keys are not cached).
    func lookup<V>(_ table: HotTable<V>, _ key: String, at version: UInt64) -> V? {
        lock.withLock { current in current == version ? table.entries[key] : nil }
    }

    /// The commit the cache is valid at (0: none).
    var version: UInt64 { lock.withLock { $0 } }

    /// Publishes records valid at commit `new`, from a transaction whose snapshot was `base`
    /// (`base == new` for a read transaction, `new − 1` for a write that committed `new`).
    /// `fill` inserts them (and empties a table grown past `limitPerTable`); it runs under
    /// the lock, only when they are newer than the cache or at its commit.
    func publish(base: UInt64, new: UInt64, _ fill: () -> Void) {
        lock.withLock { current in
            if new < current || (new == current && base != new) { return }
            if current != base && current != new {
                for t in all { t.clear() }
            }
            fill()
            current = new
        }
    }
}

/// The type-erased housekeeping of a `HotTable`.
protocol ClearableHotTable: AnyObject {
    func clear()
}

extension HotTable: ClearableHotTable {
    func clear() { entries.removeAll() }
}
