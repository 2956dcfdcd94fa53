import Foundation
import Ledger

/// One projection table: string keys to records, either held in memory (the whole
/// state, for pure folds, tests and as-of replays) or read and written through an open
/// LMDB transaction with a cache (the live projections).
final class Table<V: StateRecord> {
    let db: Database?
    private var cache: [String: V?] = [:]
    private var dirty = Set<String>()
    /// Keys written back by `flush` (published to the hot cache after the commit).
    private var written: [String] = []
    /// Keys read from LMDB in this transaction (published to the hot cache).
    private var loaded: [String] = []
    private let reader: TransactionReader?
    private let writer: TransactionWriter?
    /// Records kept between transactions, used while valid at `hotVersion`.
    private let hot: HotTable<V>?
    private let hotCache: HotCache?
    private let hotVersion: UInt64

    init(memory: ()) {
        db = nil
        reader = nil
        writer = nil
        hot = nil
        hotCache = nil
        hotVersion = 0
    }

    init(db: Database, reader: TransactionReader, hot: HotTable<V>?, hotCache: HotCache?, hotVersion: UInt64) {
        self.db = db
        self.reader = reader
        writer = reader as? TransactionWriter
        self.hot = hot
        self.hotCache = hotCache
        self.hotVersion = hotVersion
    }

    var isMemory: Bool { reader == nil }

    func get(_ key: String) throws -> V? {
        if !cache.isEmpty, let hit = cache[key] { return hit }
        if let hot, let hotCache {
            switch hotCache.lookup(hot, key, at: hotVersion) {
            case let .hit(v): return v
            case .absent: return nil
            case .unknown:
                if writer == nil, let whole = try loadWhole(hot, hotCache) { return whole[key] }
            }
        }
        guard let reader, let db else { return nil }
        var k = key
        let value = try k.withUTF8 { utf8 in try reader.withValue(db, key: UnsafeRawBufferPointer(utf8)) { try V.decode(bytes: $0) } }
        cache[key] = .some(value)
        if hot != nil, value != nil { loaded.append(key) }
        return value
    }

    /// Reads the whole table into the hot cache when it is completable, small enough and
    /// due (see `HotCache.claimWholeLoad`); returns what it read (valid at this
    /// transaction's commit), or nil when it did not load. Read-only transactions only: a
    /// write transaction's view is not a commit.
    private func loadWhole(_ hot: HotTable<V>, _ hotCache: HotCache) throws -> [String: V]? {
        guard hot.completable, let reader, let db, hotCache.claimWholeLoad(hot, at: hotVersion),
              try reader.count(db) <= hotCache.limitPerTable else { return nil }
        var whole: [String: V] = [:]
        try reader.scan(db) { key, value in
            whole[String(decoding: key, as: UTF8.self)] = try V.decode(bytes: value)
            return true
        }
        hotCache.installWhole(hot, whole, at: hotVersion)
        return whole
    }

    /// Whether this transaction read or wrote anything to publish.
    var hasNews: Bool { hot != nil && (!loaded.isEmpty || !written.isEmpty) }

    /// Copies what this transaction read and wrote into the hot table (under the hot
    /// cache's lock, after a commit).
    func publish(limit: Int) {
        guard let hot, !loaded.isEmpty || !written.isEmpty else { return }
        defer { if hot.entries.count > limit { hot.empty() } }
        // only records that exist are kept (absent keys are unbounded: a random question
        // about any email and any ID); a key written absent is dropped
        for key in loaded { if case let .some(.some(v)) = cache[key] { hot.entries[key] = v } }
        for key in written {
            if case let .some(.some(v)) = cache[key] { hot.entries[key] = v } else { hot.entries.removeValue(forKey: key) }
        }
    }

    func set(_ key: String, _ value: V?) throws {
        if writer != nil {
            // written back in `flush`, once per key per transaction, in key order
            cache[key] = .some(value)
            dirty.insert(key)
        } else if reader != nil {
            throw StateError.readOnly
        } else if let value {
            cache[key] = value
        } else {
            cache.removeValue(forKey: key)
        }
    }

    /// Writes every changed entry through the transaction, in key order (neighbouring keys
    /// share pages, so fewer pages are dirtied).
    func flush() throws {
        guard let writer, let db, !dirty.isEmpty else { return }
        for (bytes, key) in dirty.map({ (Array($0.utf8), $0) }).sorted(by: { KeyOrder.precedes($0.0, $1.0) }) {
            if let value = cache[key] ?? nil {
                try writer.put(db, key: bytes, value: value.encoded)
            } else {
                try writer.delete(db, key: bytes)
            }
        }
        if hot != nil { written.append(contentsOf: dirty) }
        dirty.removeAll()
    }

    /// Every entry, sorted by key bytes (memory tables only).
    func sortedEntries() -> [(key: [UInt8], value: [UInt8])] {
        cache.compactMap { k, v in v.map { (Array(k.utf8), $0.encoded) } }
            .sorted { KeyOrder.precedes($0.key, $1.key) }
    }

    var count: Int { cache.count }

    /// Sets an entry of a memory table (a no-op on a table over a transaction).
    func setInMemory(_ key: String, _ value: V) {
        guard reader == nil else { return }
        cache[key] = value
    }

    /// Makes room for `count` entries (memory tables: a fold that knows its size does not
    /// rehash the table as it grows).
    func reserve(_ count: Int) { cache.reserveCapacity(count) }

    /// How the stored database `db` differs from this memory table: the stored keys to
    /// remove and the entries to put, sorted by key. One pass over the stored entries, each
    /// looked up here by its exact bytes and its value compared with this record encoded —
    /// no sort of the whole table; entries held here but not stored (none when the
    /// projections are sound) are found by a second pass only when some are missing.
    func differences(stored db: Database, reader: TransactionReader) throws -> TableDifferences {
        var result = TableDifferences()
        var matched = 0
        var w = BinaryWriter(capacity: 256)
        try reader.scan(db) { key, value in
            let k = String(decoding: key, as: UTF8.self)
            // the exact bytes: String equality is canonical equivalence, keys are bytes
            if let i = cache.index(forKey: k), cache[i].key.utf8.elementsEqual(key), let record = cache[i].value {
                matched += 1
                w.removeAll()
                record.encode(to: &w)
                if !w.bytes.elementsEqual(value) {
                    if result.firstChanged == nil { result.firstChanged = Array(key) }
                    result.puts.append((Array(key), w.bytes))
                }
            } else {
                result.removals.append(Array(key))
            }
            return true
        }
        if matched < cache.count {
            for (k, v) in cache {
                guard let v else { continue }
                let bytes = Array(k.utf8)
                if try reader.withValue(db, key: bytes, { _ in () }) == nil {
                    result.missing += 1
                    result.puts.append((bytes, v.encoded))
                }
            }
        }
        result.puts.sort { KeyOrder.precedes($0.key, $1.key) }
        return result
    }

    /// Inserts an encoded entry into a memory table (loading a snapshot).
    func load(key: [UInt8], value: UnsafeRawBufferPointer) throws {
        guard let k = String(validating: key, as: UTF8.self) else { throw DecodingError("snapshot key is not UTF-8", offset: 0) }
        cache[k] = try V.decode(bytes: value)
    }
}

/// What makes a stored projection database equal a memory table (see
/// `Table.differences`).
struct TableDifferences {
    /// Stored keys the memory table does not hold.
    var removals: [[UInt8]] = []
    /// Entries missing or different in the database, sorted by key.
    var puts: [(key: [UInt8], value: [UInt8])] = []
    /// How many of `puts` are missing from the database (the others differ).
    var missing = 0
    /// The smallest stored key whose value differs.
    var firstChanged: [UInt8]?

    /// Whether the database equals the memory table.
    var isEmpty: Bool { removals.isEmpty && puts.isEmpty }
}

/// Errors of the projection store.
public enum StateError: Error, Sendable, CustomStringConvertible {
    /// A write was attempted through a read-only view.
    case readOnly
    /// A projection database was not opened.
    case missingTable(String)
    /// The projections are behind or ahead of the log.
    case outOfStep(projections: UInt64, log: UInt64)

    public var description: String {
        switch self {
        case .readOnly: return "the projection state was opened read-only"
        case let .missingTable(name): return "projection database \(name) is not open"
        case let .outOfStep(p, l): return "projections reflect seq \(p) but the log is at \(l); run rebuild"
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
public final class DomainState {
    private let databases: ProjectionDatabases?
    private let reader: TransactionReader?
    /// Records kept between transactions (nil for memory states and when disabled).
    private let hot: HotCache?
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
            t = Table(db: db, reader: reader, hot: hot?[keyPath: spec.hot], hotCache: hot, hotVersion: snapshotVersion)
        } else {
            t = Table(memory: ())
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

    /// Whether the state is in memory (not over a transaction).
    var isMemory: Bool { reader == nil }

    /// Creates every table now (they are otherwise made on first use), so that threads
    /// folding disjoint `EvolveParts` into this state only read these properties.
    func openAllTables() { _ = everyTable }

    /// An empty in-memory state.
    public init() {
        databases = nil
        reader = nil
        hot = nil
        snapshotVersion = 0
    }

    /// A view over an open transaction (read-only for a `TransactionReader`, written through
    /// for a `TransactionWriter`), using `hot` for records an earlier transaction read or
    /// wrote at the commit this one sees.
    init(databases: ProjectionDatabases, reader: TransactionReader, hot: HotCache? = nil) throws {
        self.databases = databases
        self.reader = reader
        self.hot = hot
        let id = try reader.id()
        snapshotVersion = reader is TransactionWriter ? id &- 1 : id
        if let m = try meta.get("checkpoint") {
            lastSeq = m.lastSeq
            lastAt = m.lastAt
        }
    }

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

    func setCell(_ email: String, _ lid: String, _ cell: CellRecord) throws {
        let key = Self.pairKey(email, lid)
        let before = try cells.get(key)
        let wasAdmin = before?.hasAdministrator ?? false
        let isAdmin = cell.hasAdministrator
        if cell.entries.isEmpty {
            if before != nil {
                try cells.set(key, nil)
                var set = try emailLids.get(email) ?? StringSet(values: [])
                if set.remove(lid) { try emailLids.set(email, set.values.isEmpty ? nil : set) }
            }
        } else {
            try cells.set(key, cell)
            if before == nil || before?.entries.isEmpty == true {
                var set = try emailLids.get(email) ?? StringSet(values: [])
                if set.insert(lid) { try emailLids.set(email, set) }
            }
        }
        if wasAdmin != isAdmin {
            var admins = try lidAdmins.get(lid) ?? StringSet(values: [])
            if isAdmin { _ = admins.insert(email) } else { _ = admins.remove(email) }
            try lidAdmins.set(lid, admins.values.isEmpty ? nil : admins)
        }
    }

    func addLegalContact(_ email: String, _ lid: String) throws {
        var set = try legalContactLids.get(email) ?? StringSet(values: [])
        if set.insert(lid) { try legalContactLids.set(email, set) }
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
            try meta.set("checkpoint", MetaRecord(lastSeq: lastSeq, lastAt: lastAt))
            positionDirty = false
        }
        for case let t? in opened { try t.flush() }
        return moved
    }

    // MARK: Persistence of a memory state

    /// Each table's part of a snapshot: its entry count, then every (key, value) sorted,
    /// each length-prefixed; in `allTables` order. Encoded on all cores.
    private func snapshotParts() -> [[UInt8]] {
        let tables = UncheckedBox(allTables)
        let parts = ConcurrentResults<[UInt8]>(count: tables.value.count)
        DispatchQueue.concurrentPerform(iterations: tables.value.count) { i in
            let rows = tables.value[i].1()
            var w = BinaryWriter(capacity: 1 << 12)
            w.writeVarint(UInt64(rows.count))
            for (k, v) in rows {
                w.writeBytes(k)
                w.writeBytes(v)
            }
            parts.set(i, w.bytes)
        }
        return (0 ..< tables.value.count).map { parts.get($0) ?? [] }
    }

    /// The whole state as bytes, uncompressed (format 1, which is also what `verify`
    /// compares): format version, then each table's part (see `snapshotParts`).
    func snapshotBytes() -> [UInt8] {
        [UInt8(1)] + snapshotParts().joined()
    }

    /// The stored form of a snapshot (format 2): format version, then for each table its
    /// uncompressed length, compressed length (LEB128) and its part compressed with zlib
    /// (about a quarter of the size). Tables are compressed, and later decompressed and
    /// loaded, on all cores.
    func storedSnapshot() -> [UInt8] {
        let parts = UncheckedBox(snapshotParts())
        let packed = ConcurrentResults<[UInt8]>(count: parts.value.count)
        DispatchQueue.concurrentPerform(iterations: parts.value.count) { i in packed.set(i, Deflate.compress(parts.value[i])) }
        var w = BinaryWriter(capacity: 1 << 16)
        w.write(UInt8(2))
        for i in 0 ..< parts.value.count {
            let p = packed.get(i) ?? []
            w.writeVarint(UInt64(parts.value[i].count))
            w.writeVarint(UInt64(p.count))
            w.writeRaw(p)
        }
        return w.bytes
    }

    /// The frames of a format-2 snapshot: each table's uncompressed length and the range of
    /// its compressed bytes.
    private static func snapshotFrames(_ bytes: UnsafeRawBufferPointer) throws -> [(count: Int, range: Range<Int>)] {
        var r = BinaryReader(bytes)
        _ = try r.readUInt8()
        var frames: [(count: Int, range: Range<Int>)] = []
        for _ in 0 ..< snapshotTableCount {
            let plain = try r.readVarint()
            guard plain <= UInt64(Int.max) else { throw DecodingError("snapshot table length \(plain) is out of range", offset: r.offset) }
            let packed = try r.readLength("compressed snapshot table length")
            frames.append((Int(plain), r.offset ..< r.offset + packed))
            _ = try r.readSlice(packed)
        }
        try r.expectEnd()
        return frames
    }

    /// The number of tables a snapshot holds.
    private static var snapshotTableCount: Int { StateTables.all.count }

    /// The `snapshotBytes()` a stored snapshot holds: format 1 (uncompressed, as written
    /// before format 2) as it is, format 2 decompressed.
    static func snapshotPlainBytes(stored bytes: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard let version = bytes.first else { throw DecodingError("empty snapshot", offset: 0) }
        switch version {
        case 1: return Array(bytes)
        case 2:
            var plain: [UInt8] = [1]
            for f in try snapshotFrames(bytes) {
                plain += try Deflate.decompress(UnsafeRawBufferPointer(rebasing: bytes[f.range]), count: f.count)
            }
            return plain
        default: throw DecodingError("unknown snapshot version \(version)", offset: 0)
        }
    }

    /// A memory state from a stored snapshot of either format.
    static func fromStoredSnapshot(_ bytes: UnsafeRawBufferPointer) throws -> DomainState {
        guard let version = bytes.first else { throw DecodingError("empty snapshot", offset: 0) }
        let state = DomainState()
        switch version {
        case 1:
            var r = BinaryReader(bytes)
            _ = try r.readUInt8()
            for load in state.loaders { try loadPart(&r, into: load) }
            try r.expectEnd()
        case 2:
            let frames = try snapshotFrames(bytes)
            state.openAllTables()
            let loaders = UncheckedBox(state.loaders), source = UncheckedBox(bytes)
            let failures = ConcurrentResults<any Error>(count: frames.count)
            DispatchQueue.concurrentPerform(iterations: frames.count) { i in
                do {
                    let plain = try Deflate.decompress(UnsafeRawBufferPointer(rebasing: source.value[frames[i].range]), count: frames[i].count)
                    try plain.withUnsafeBytes { part in
                        var r = BinaryReader(part)
                        try loadPart(&r, into: loaders.value[i])
                        try r.expectEnd()
                    }
                } catch {
                    failures.set(i, error)
                }
            }
            for i in 0 ..< frames.count { if let failure = failures.get(i) { throw failure } }
        default:
            throw DecodingError("unknown snapshot version \(version)", offset: 0)
        }
        if let m = try state.meta.get("checkpoint") {
            state.lastSeq = m.lastSeq
            state.lastAt = m.lastAt
        }
        return state
    }

    /// Each table's loader, in `allTables` order.
    private var loaders: [([UInt8], UnsafeRawBufferPointer) throws -> Void] { everyTable.map { $0.load } }

    /// Reads one table's part (entry count, then entries) into `load`.
    private static func loadPart(_ r: inout BinaryReader, into load: ([UInt8], UnsafeRawBufferPointer) throws -> Void) throws {
        let n = try r.readLength("entry count")
        for _ in 0 ..< n {
            let key = try r.readBytes()
            try load(key, try r.readSlice(try r.readLength("value length")))
        }
    }

    /// What rebuild does with each memory table: make room, and compare with the stored one.
    var memoryTables: [(table: ProjectionTable, reserve: (Int) -> Void,
                        differences: (Database, TransactionReader) throws -> TableDifferences)] {
        recordPosition()
        return zip(StateTables.all, everyTable).map { ($0.table, $1.reserve, $1.differences) }
    }

    var allTables: [(ProjectionTable, () -> [(key: [UInt8], value: [UInt8])])] {
        recordPosition()
        return zip(StateTables.all, everyTable).map { ($0.table, $1.sortedEntries) }
    }
}
