import Foundation
import Ledger

/// Errors of the projection store.
public enum StateError: Error, Sendable, CustomStringConvertible {
    /// A write was attempted through a read-only view.
    case readOnly
    /// A projection database was not opened.
    case missingTable(String)
    /// The projections are behind or ahead of the log.
    case outOfStep(projections: UInt64, log: UInt64)
    /// A projection key names something no event gave a stable id (a defect of the fold).
    case unnamedKey(table: String, key: String)
    /// 2³² − 1 names of one kind were given ids.
    case idsExhausted(String)
    /// The stored projections are in a format this build does not know.
    case unknownFormat(UInt8)

    public var description: String {
        switch self {
        case .readOnly: return "the projection state was opened read-only"
        case let .missingTable(name): return "projection database \(name) is not open"
        case let .outOfStep(p, l): return "projections reflect seq \(p) but the log is at \(l); run rebuild"
        case let .unnamedKey(table, key): return "\(table): key \(key.debugDescription) names something without a stable id"
        case let .idsExhausted(kind): return "no stable id is left for another \(kind)"
        case let .unknownFormat(v): return "the projections are stored in format \(v), which this build does not know (it knows \(DomainState.format)); use a newer build"
        }
    }
}

/// The state the rules decide on and the events fold into: every projection of DOMAIN.md
/// §4 as keyed tables.
///
/// A state is either in memory (`DomainState()`: pure, used by tests, as-of replays and
/// rebuilds) or a view over an open LMDB transaction (reads are lazy; in a write
/// transaction every change is written through, so the projections commit atomically
/// with the events that changed them). Decide and evolve are the same code for both.
@_spi(LedgerInternals) public final class DomainState {
    private let databases: ProjectionDatabases?
    private let reader: TransactionReader?
    /// Records kept between transactions (nil for memory states, past states and when disabled).
    private let hot: HotCache?
    /// The dictionary of stable ids the versioned tables' keys are made of.
    let ids: StableIDs
    /// The latest seq reads see (`.max`: the head).
    private let asOf: UInt64
    /// Whether a memory state's tables keep every version (rebuild, verify).
    private let recording: Bool
    /// Whether this is a replay's overlay over stored projections (see `init(overlayAsOf:)`).
    private var overlay = false
    /// The commit this state's transaction sees (for a write transaction, the commit
    /// before its own).
    let snapshotVersion: UInt64

    /// The tables opened so far, by `ProjectionTable.index` (each created on first use, so
    /// a query that touches two tables pays for two).
    private var opened = [(any AnyTable)?](repeating: nil, count: StateTables.all.count)

    /// The table of `spec`: in memory, or over the transaction.
    func table<V>(_ spec: TableSpec<V>) -> Table<V> {
        let i = spec.table.index
        // the slot of `spec.table` only ever holds the table `spec` made
        if let t = opened[i] { return unsafeDowncast(t, to: Table<V>.self) }
        let t: Table<V>
        if let reader, let db = databases?[spec.table] {
            t = Table(db: db, shape: spec.key, reader: reader, ids: ids, asOf: asOf,
                      hot: spec.cached ? hot.flatMap { $0[keyPath: spec.hot] } : nil, hotCache: spec.cached ? hot : nil, hotVersion: snapshotVersion,
                      overlay: overlay ? ids : nil)
        } else {
            t = Table(memory: spec.key, recording: recording ? ids : nil)
        }
        opened[i] = t
        return t
    }

    var accounts: Table<AccountRecord> { table(StateTables.accounts) }
    var emailOwners: Table<StringValue> { table(StateTables.emailOwners) }
    var agreements: Table<AgreementRecord> { table(StateTables.agreements) }
    var cells: Table<CellRecord> { table(StateTables.cells) }
    var emailLids: Table<StringSet> { table(StateTables.emailLids) }
    var legalContactLids: Table<StringSet> { table(StateTables.legalContactLids) }
    var lidAdmins: Table<StringSet> { table(StateTables.lidAdmins) }
    var optOuts: Table<SeqValue> { table(StateTables.optOuts) }
    var requests: Table<RequestRecord> { table(StateTables.requests) }
    var lockouts: Table<LockoutRecord> { table(StateTables.lockouts) }
    var effective: Table<EffectiveBits> { table(StateTables.effective) }
    var emailChanges: Table<EmailChanges> { table(StateTables.emailChanges) }
    var changes: Table<EventChanges> { table(StateTables.changes) }
    var meta: Table<MetaRecord> { table(StateTables.meta) }

    /// Every table, opened now when not yet (in `ProjectionTable` order).
    private var everyTable: [any AnyTable] { StateTables.all.map { $0.open(in: self) } }

    /// The last event folded in (0 when none).
    public private(set) var lastSeq: UInt64 = 0
    /// The time of the last event folded in.
    public private(set) var lastAt: Timestamp?
    /// Whether the position moved since it was last written (LMDB-backed states write it once
    /// per transaction, in `flush`).
    private var positionDirty = false

    /// Told the changes each folded event made (what-if collects them); nil: nobody asks.
    var changeObserver: ((_ seq: UInt64, _ changes: [PairChange]) -> Void)?

    /// The transaction a stored state reads through (nil in memory).
    var transactionReader: TransactionReader? { reader }

    /// Whether the state is in memory (not over a transaction).
    var isMemory: Bool { reader == nil }

    /// Creates every table now (they are otherwise made on first use), so that threads
    /// folding disjoint `EvolveParts` into this state only read these properties.
    func openAllTables() { _ = everyTable }

    /// An empty in-memory state.
    public convenience init() { self.init(recording: false) }

    /// An empty in-memory state; `recording`: its tables keep every version they are given
    /// (what a rebuild and `verify` compare with the stored projections).
    init(recording: Bool) {
        databases = nil
        reader = nil
        hot = nil
        snapshotVersion = 0
        ids = StableIDs(memory: ())
        asOf = .max
        self.recording = recording
    }

    /// A view over an open transaction (read-only for a `TransactionReader`, written through
    /// for a `TransactionWriter`), using `hot` for records an earlier transaction read or
    /// wrote at the commit this one sees.
    init(databases: ProjectionDatabases, reader: TransactionReader, hot: HotCache? = nil, idCache: IDCache? = nil) throws {
        self.databases = databases
        self.reader = reader
        self.hot = hot
        ids = StableIDs(db: databases[.ids], reader: reader, shared: idCache)
        asOf = .max
        recording = false
        let id = try reader.id()
        snapshotVersion = reader is TransactionWriter ? id &- 1 : id
        if let m = try meta.get("checkpoint") {
            lastSeq = m.lastSeq
            lastAt = m.lastAt
        }
    }

    /// The state as of seq `seq` (the event there stored at `at`), read from the versioned
    /// projections through a read transaction: every entry's latest version at or before it.
    init(databases: ProjectionDatabases, reader: TransactionReader, asOf seq: UInt64, at: Timestamp?, idCache: IDCache? = nil) throws {
        self.databases = databases
        self.reader = reader
        hot = nil
        ids = StableIDs(db: databases[.ids], reader: reader, shared: idCache)
        asOf = seq
        recording = false
        snapshotVersion = try reader.id()
        lastSeq = seq
        lastAt = at
    }

    /// The stored projections as of seq `seq` (the event there stored at `at`), read through
    /// a read transaction, with a replay's changes kept and recorded in memory on top; names
    /// get their ids from the replay's dictionary `replay`. A streaming comparison folds one
    /// chunk of events into such a state and compares the versions it recorded.
    init(databases: ProjectionDatabases, reader: TransactionReader, overlayAsOf seq: UInt64, at: Timestamp?, replay: StableIDs) throws {
        self.databases = databases
        self.reader = reader
        hot = nil
        ids = replay
        asOf = seq
        recording = true
        overlay = true
        snapshotVersion = try reader.id()
        lastSeq = seq
        lastAt = at
    }

    /// The projections' on-disk format (`p.meta` key `format`): 3 is the versioned store with
    /// stable ids and the changelog (2 lacked the changelog); a ledger without the key was
    /// written in format 1 (whole-state snapshots). An older format is upgraded by a rebuild.
    static let format: UInt8 = 3

    /// `email ␀ lid`, built in one allocation.
    static func pairKey(_ email: String, _ lid: String) -> String {
        var key = String()
        key.reserveCapacity(email.utf8.count + 1 + lid.utf8.count)
        key.append(email)
        key.append("\u{0}")
        key.append(lid)
        return key
    }

    // MARK: Lookups

    /// The account record, if registered.
    public func account(_ account: String) throws -> AccountRecord? { try accounts.get(account) }

    /// The agreement record of a Licensing ID, if recorded.
    public func agreement(_ lid: String) throws -> AgreementRecord? { try agreements.get(lid) }

    /// The account that validated `email`, if any.
    public func owner(ofEmail email: String) throws -> String? { try emailOwners.get(email)?.value }

    /// The direct sources of `email` on `lid`.
    public func cell(_ email: String, _ lid: String) throws -> CellRecord? { try cells.get(Self.pairKey(email, lid)) }

    /// Whether `email` opted out of administrator inheritance from `parent`.
    public func optedOut(_ email: String, from parent: String) throws -> Bool { try optOuts.get(Self.pairKey(email, parent)) != nil }

    /// A permission request.
    public func request(_ id: String) throws -> RequestRecord? { try requests.get(id) }

    /// The lockout record of an account.
    public func lockout(_ account: String) throws -> LockoutRecord? { try lockouts.get(account) }

    /// Licensing IDs where `email` has a non-empty cell.
    func lidsWithCells(_ email: String) throws -> [String] { try lidsWithCells(of: email)?.values ?? [] }

    /// Licensing IDs where `email` is primary contact or notices correspondent.
    func legalContactIDs(_ email: String) throws -> [String] { try legalContactLids.get(email)?.values ?? [] }

    /// Emails holding administrator directly on `lid`.
    func directAdmins(_ lid: String) throws -> [String] { try lidAdmins.get(lid)?.values ?? [] }

    // MARK: Writes used by evolve

    func setCell(_ email: String, _ lid: String, _ cell: CellRecord, seq: UInt64) throws {
        let key = Self.pairKey(email, lid)
        let before = try cells.get(key)
        let wasAdmin = before?.hasAdministrator ?? false
        let isAdmin = cell.hasAdministrator
        if cell.entries.isEmpty {
            if before != nil {
                try cells.set(key, nil, seq: seq)
                var set = try emailLids.get(email) ?? StringSet(values: [])
                if set.remove(lid) { try emailLids.set(email, set.values.isEmpty ? nil : set, seq: seq) }
            }
        } else {
            try cells.set(key, cell, seq: seq)
            if before == nil || before?.entries.isEmpty == true {
                var set = try emailLids.get(email) ?? StringSet(values: [])
                if set.insert(lid) { try emailLids.set(email, set, seq: seq) }
            }
        }
        if wasAdmin != isAdmin {
            var admins = try lidAdmins.get(lid) ?? StringSet(values: [])
            if isAdmin { _ = admins.insert(email) } else { _ = admins.remove(email) }
            try lidAdmins.set(lid, admins.values.isEmpty ? nil : admins, seq: seq)
        }
    }

    func addLegalContact(_ email: String, _ lid: String, seq: UInt64) throws {
        var set = try legalContactLids.get(email) ?? StringSet(values: [])
        if set.insert(lid) { try legalContactLids.set(email, set, seq: seq) }
    }

    func setPosition(seq: UInt64, at: Timestamp) throws {
        lastSeq = seq
        lastAt = at
        // written once, by `flush` (a transaction) or `recordPosition` (a memory state)
        positionDirty = true
    }

    /// A memory state's position written into its meta table (the projections' checkpoint),
    /// once before its tables are read whole rather than at every event.
    private func recordPosition() {
        guard positionDirty, meta.isMemory else { return }
        meta.setInMemory("checkpoint", MetaRecord(lastSeq: lastSeq, lastAt: lastAt))
        positionDirty = false
    }

    /// Publishes what this state read (and, for a write transaction, wrote) to the hot
    /// cache, valid at commit `committed`: call after the transaction ended — for a write,
    /// only when it committed and wrote something (`flush` returned true).
    func publishHot(committed: UInt64) {
        ids.publishCommitted()
        guard let hot, opened.contains(where: { $0?.hasNews ?? false }) else { return }
        hot.publish(base: snapshotVersion, new: committed) {
            for case let t? in opened { t.publish(limit: hot.limitPerTable) }
        }
    }

    /// Writes every change (and the position, the projections' checkpoint) through the
    /// transaction: once per key per transaction, before it commits. Only tables that were
    /// opened can have changes. Returns whether anything was written.
    @discardableResult
    func flush() throws -> Bool {
        let moved = positionDirty
        if positionDirty {
            try meta.set("checkpoint", MetaRecord(lastSeq: lastSeq, lastAt: lastAt), seq: lastSeq)
            positionDirty = false
        }
        for case let t? in opened { try t.flush() }
        try ids.flush()
        return moved
    }

    // MARK: A memory state compared

    /// Every table's entries (latest values), sorted, table after table: equal for two
    /// memory states exactly when they hold the same projections.
    func contentBytes() -> [UInt8] {
        recordPosition()
        var w = BinaryWriter(capacity: 1 << 12)
        for table in everyTable {
            let rows = table.sortedEntries()
            w.writeVarint(UInt64(rows.count))
            for (k, v) in rows {
                w.writeBytes(k)
                w.writeBytes(v)
            }
        }
        return w.bytes
    }

    /// What each stored projection database holds after a fold of the events this memory
    /// state was folded from (every version, for a recording state), table by table, and
    /// last the dictionary of stable ids: what rebuild and verify compare.
    var storedForms: [(table: ProjectionTable, rows: () throws -> SortedRows)] {
        recordPosition()
        let ids = self.ids
        return zip(StateTables.all, everyTable).map { spec, table in (spec.table, { table.storedForm() }) }
            + [(ProjectionTable.ids, { SortedRows(sorted: ids.sortedEntries()) })]
    }

    /// Each versioned table's versions recorded since the last call (an overlay's chunk).
    func takeRecorded() -> [(table: ProjectionTable, rows: SortedRows)] {
        zip(StateTables.all, opened).compactMap { spec, table in
            guard let table, StableIDs.prefixLength(spec.key) != nil else { return nil }
            return (spec.table, table.takeRecorded())
        }
    }
}
