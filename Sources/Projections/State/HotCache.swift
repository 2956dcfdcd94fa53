import Dispatch
import Synchronization

/// The decoded projection records of one table, kept between transactions. Every field is
/// touched only under `HotCache`'s lock.
final class HotTable<V: StateRecord> {
    /// key → record (only records that exist).
    var entries: [String: V] = [:]
    /// Whether `entries` is the whole table at the cache's commit, so that a key not in it
    /// is known to be absent.
    var complete = false
    /// Whether a reader may load the whole table (small tables a check reads).
    let completable: Bool
    /// When the table was last loaded whole (uptime in ns): at most once per
    /// `HotCache.wholeLoadInterval` (a second by default), so commits by another process
    /// can't turn every question into a full load.
    var lastLoad: UInt64 = 0
    /// Questions the cache could not answer since the last whole load: a table is loaded
    /// whole only once it is asked about often (so a short-lived process, or one question
    /// after opening, never pays for a load).
    var misses = 0

    init(completable: Bool = false) { self.completable = completable }

    func empty() {
        entries.removeAll()
        complete = false
    }
}

/// What the hot cache knows of a key.
enum HotAnswer<V: Sendable>: Sendable {
    /// The record.
    case hit(V)
    /// The table is held whole at this commit and the key is not in it.
    case absent
    /// The cache can't say (another commit, or a record not held).
    case unknown
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
/// - A reader may load a small table whole (`claimWholeLoad`, `installWhole`); then a key
///   not in it is known to be absent at that commit, and `withFacts` can answer a check
///   without a transaction.
///
/// `@unchecked Sendable`: the tables are touched only inside `lock.withLock`.
final class HotCache: @unchecked Sendable {
    /// The commit the entries are valid at (0: none), and the lock every access takes.
    private let lock = Mutex<UInt64>(0)
    /// Entries per table beyond which the table is emptied (memory bound).
    let limitPerTable: Int
    // The tables a check reads are held whole when they fit (accounts, agreements, each
    // email's IDs with a cell, opt-outs): a check then needs LMDB only for cells that exist.
    let accounts = HotTable<AccountRecord>(completable: true), emailOwners = HotTable<StringValue>()
    let agreements = HotTable<AgreementRecord>(completable: true)
    let cells = HotTable<CellRecord>(), emailLids = HotTable<StringSet>(completable: true), legalContactLids = HotTable<StringSet>()
    let lidAdmins = HotTable<StringSet>(), optOuts = HotTable<SeqValue>(completable: true), requests = HotTable<RequestRecord>()
    let lockouts = HotTable<LockoutRecord>(), meta = HotTable<MetaRecord>()
    let effective = HotTable<EffectiveBits>(), emailChanges = HotTable<EmailChanges>(), changes = HotTable<EventChanges>()
    private var all: [any ClearableHotTable] = []

    /// The least time between two loads of a whole table (ns).
    let wholeLoadInterval: UInt64
    /// Unanswered questions about a table before it is loaded whole.
    let wholeLoadAfterMisses: Int

    init(limitPerTable: Int, wholeLoadInterval: UInt64 = 1_000_000_000, wholeLoadAfterMisses: Int = 256) {
        self.limitPerTable = limitPerTable
        self.wholeLoadInterval = wholeLoadInterval
        self.wholeLoadAfterMisses = wholeLoadAfterMisses
        all = StateTables.all.map { $0.hotTable(in: self) }
    }

    /// Runs `body` on the cache's records when the cache is at commit `version`, under the
    /// lock, without a transaction; nil when it is not at that commit or `body` needs a
    /// record the cache does not hold (then the question is asked through a transaction).
    /// `body` must be short and must not call back into the cache.
    func withFacts<R: Sendable>(at version: UInt64, _ body: (HotFacts) throws -> R) throws -> R? {
        try lock.withLock { current -> R? in
            guard current == version, let checkpoint = meta.entries["checkpoint"] else { return nil }
            do {
                let answer = try body(HotFacts(cache: self, lastSeq: checkpoint.lastSeq))
                answeredAlone += 1
                return answer
            } catch is HotFacts.NotHeld {
                return nil
            }
        }
    }

    /// Questions `withFacts` answered (guarded by the lock; for tests).
    private var answeredAlone = 0
    var answeredWithoutTransaction: Int { lock.withLock { _ in answeredAlone } }

    /// Whether `table` is held whole (for tests).
    func isWhole<V>(_ table: HotTable<V>) -> Bool { lock.withLock { _ in table.complete } }

    /// What the cache knows of `key` for a transaction at commit `version`.
    func lookup<V>(_ table: HotTable<V>, _ key: String, at version: UInt64) -> HotAnswer<V> {
        lock.withLock { current in
            guard current == version else { return .unknown }
            if let v = table.entries[key] { return .hit(v) }
            return table.complete ? .absent : .unknown
        }
    }

    /// Whether a reader at commit `version` should load `table` whole now: it is completable,
    /// not already whole at that commit, the cache is not newer, the table was asked about
    /// `wholeLoadAfterMisses` times without an answer, and the last load was at least
    /// `wholeLoadInterval` ago. Claims the load: others are told no until it is due again.
    func claimWholeLoad<V>(_ table: HotTable<V>, at version: UInt64) -> Bool {
        guard table.completable else { return false }
        let now = DispatchTime.now().uptimeNanoseconds
        return lock.withLock { current in
            table.misses += 1
            guard version >= current, !(version == current && table.complete), table.misses >= wholeLoadAfterMisses,
                  now &- table.lastLoad >= wholeLoadInterval || table.lastLoad == 0 else { return false }
            table.lastLoad = now
            table.misses = 0
            return true
        }
    }

    /// Installs the whole of `table` read at commit `version` (clearing the cache first
    /// when it was at an older commit; nothing when it has moved past `version`).
    func installWhole<V>(_ table: HotTable<V>, _ entries: [String: V], at version: UInt64) {
        lock.withLock { current in
            guard version >= current, entries.count <= limitPerTable else { return }
            if version != current {
                for t in all { t.clear() }
                current = version
            }
            table.entries = entries
            table.complete = true
        }
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
    func clear() { empty() }
}

/// The hot cache at one commit, read under its lock (see `HotCache.withFacts`): a record
/// it does not hold, in a table it does not hold whole, throws `NotHeld`.
struct HotFacts: PermissionFacts {
    /// The cache can't answer: ask through a transaction.
    struct NotHeld: Error {}

    let cache: HotCache
    let lastSeq: UInt64

    private func lookup<V>(_ table: HotTable<V>, _ key: String) throws -> V? {
        if let v = table.entries[key] { return v }
        guard table.complete else { throw NotHeld() }
        return nil
    }

    func account(_ account: String) throws -> AccountRecord? { try lookup(cache.accounts, account) }
    func agreement(_ lid: String) throws -> AgreementRecord? { try lookup(cache.agreements, lid) }
    func cell(_ email: String, _ lid: String) throws -> CellRecord? { try lookup(cache.cells, DomainState.pairKey(email, lid)) }
    func optedOut(_ email: String, from parent: String) throws -> Bool { try lookup(cache.optOuts, DomainState.pairKey(email, parent)) != nil }
    func lidsWithCells(of email: String) throws -> StringSet? { try lookup(cache.emailLids, email) }
}
