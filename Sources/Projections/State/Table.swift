import Foundation
import Ledger

/// One projection table: string keys to records, either held in memory (the whole state,
/// for pure folds, tests and rebuilds) or read and written through an open LMDB
/// transaction with a cache (the live projections and the state as of a past seq).
///
/// A versioned table (every state table but `p.meta`) keeps every version of every entry:
/// it stores `key ‖ seq` (the key as stable ids, see `StableIDs`; seq 8 bytes big-endian) →
/// the value the event at `seq` gave it, or a tombstone when the event removed it. The entry
/// as of seq N is its latest version at or before N: one cursor seek
/// (`TransactionReading.withLatest`). A memory table asked to (`recording`) keeps the same
/// versions, so a rebuild and `verify` compare them with the stored ones.
final class Table<V: StateRecord> {
    let db: LMDBDatabase?
    let shape: KeyShape
    private var cache: [String: V?] = [:]
    /// Entries read or written by their ids (`get(_:ids:)`), over a transaction.
    private var idCache: [IDKey: V?] = [:]
    /// Versions made by ids (`setChanged(_:ids:_:seq:)`) not yet written, as stored.
    private var idVersions = RowBuffer()
    /// Changes not yet written (write transactions), in the order made.
    private var versions: [(key: String, seq: UInt64, value: V?)] = []
    /// Every version made, as stored (recording memory tables), in the order made: the
    /// stored key (`ids` prefix ‖ seq) and the stored value.
    private var recorded = RowBuffer()
    /// The dictionary a recording memory table makes its stored keys with.
    private let recordingIDs: StableIDs?
    /// Whether a memory table keeps `versions`.
    private let recording: Bool
    /// Keys written back by `flush` (published to the hot cache after the commit).
    private var written: [String] = []
    /// Keys read from LMDB in this transaction (published to the hot cache).
    private var loaded: [String] = []
    private let reader: TransactionReader?
    private let writer: TransactionWriter?
    private let ids: StableIDs?
    /// The latest seq a read sees (`.max`: the head).
    private let asOf: UInt64
    /// Records kept between transactions, used while valid at `hotVersion`.
    private let hot: HotTable<V>?
    private let hotCache: HotCache?
    private let hotVersion: UInt64

    init(memory shape: KeyShape, recording dictionary: StableIDs?) {
        db = nil
        self.shape = shape
        recording = dictionary != nil
        recordingIDs = dictionary
        reader = nil
        writer = nil
        ids = nil
        asOf = .max
        hot = nil
        hotCache = nil
        hotVersion = 0
    }

    /// Over a transaction; `overlay`: read-only transaction, the table as of `asOf` with the
    /// changes of a replay kept (and recorded) in memory on top — what a streaming
    /// comparison folds a chunk of events into (`overlay` is the replay's dictionary).
    init(db: LMDBDatabase, shape: KeyShape, reader: TransactionReader, ids: StableIDs, asOf: UInt64,
         hot: HotTable<V>?, hotCache: HotCache?, hotVersion: UInt64, overlay: StableIDs? = nil) {
        self.db = db
        self.shape = shape
        recording = overlay != nil
        recordingIDs = overlay
        self.reader = reader
        writer = reader as? TransactionWriter
        self.ids = ids
        self.asOf = asOf
        self.hot = hot
        self.hotCache = hotCache
        self.hotVersion = hotVersion
    }

    var isMemory: Bool { reader == nil }
    private var versioned: Bool {
        if case .plain = shape { return false }
        return true
    }

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
        let value: V?
        if versioned {
            if let prefix = try ids?.storedKey(key, shape) {
                value = try reader.withLatest(db, prefix: prefix, atOrBefore: asOf) { _, bytes in try Self.decodeVersion(bytes) } ?? nil
            } else {
                value = nil
            }
        } else {
            var k = key
            value = try k.withUTF8 { utf8 in try reader.withValue(db, key: UnsafeRawBufferPointer(utf8)) { try V.decode(bytes: $0) } }
        }
        cache[key] = .some(value)
        if hot != nil, value != nil { loaded.append(key) }
        return value
    }

    /// A stored version: a tombstone (one 0 byte) or 1 and the record.
    private static func decodeVersion(_ bytes: UnsafeRawBufferPointer) throws -> V? {
        guard let tag = bytes.first else { throw LedgerDecodingError("empty projection version", offset: 0) }
        switch tag {
        case 0:
            guard bytes.count == 1 else { throw LedgerDecodingError("tombstone with \(bytes.count - 1) extra bytes", offset: 1) }
            return nil
        case 1: return try V.decode(bytes: UnsafeRawBufferPointer(rebasing: bytes[1...]))
        default: throw LedgerDecodingError("unknown projection version tag \(tag)", offset: 0)
        }
    }

    /// Appends the stored version `prefix ‖ seq` → tombstone or `1 ‖ record` to `rows`.
    private static func appendVersion(_ value: V?, prefix: [UInt8], seq: UInt64, to rows: inout RowBuffer) {
        rows.begin(key: prefix + BigEndianKey.bytes(seq))
        encodeVersion(value, to: &rows.writer)
    }

    /// A stored version's value: a tombstone (one 0 byte) or 1 and the record.
    private static func encodeVersion(_ value: V?, to writer: inout BinaryWriter) {
        if let value {
            writer.write(UInt8(1))
            value.encode(to: &writer)
        } else {
            writer.write(UInt8(0))
        }
    }

    /// Calls `body` with every entry as of this table's point, in stored key order, until it
    /// returns false (key order is id order for a versioned table, not name order).
    func forEach(_ body: (String, V) throws -> Bool) throws {
        guard let reader, let db else {
            for (k, v) in cache { if let v, try !body(k, v) { return } }
            return
        }
        guard versioned, let ids, let length = StableIDs.prefixLength(shape) else {
            try reader.scan(db) { key, value in
                guard let k = String(validating: key, as: UTF8.self) else { return true }
                return try body(k, try V.decode(bytes: value))
            }
            return
        }
        // the versions of one key are consecutive: keep the latest at or before `asOf`
        var current: [UInt8]? = nil
        var latest: V?? = nil
        func emit() throws -> Bool {
            guard let prefix = current, case let .some(.some(value)) = latest else { return true }
            guard let key = try prefix.withUnsafeBytes({ try ids.key(stored: $0, shape) }) else { return true }
            return try body(key, value)
        }
        var stopped = false
        try reader.scan(db) { key, value in
            guard key.count == length + 8, let seq = BigEndianKey.value(UnsafeRawBufferPointer(rebasing: key[length...])) else { return true }
            let prefix = UnsafeRawBufferPointer(rebasing: key[0 ..< length])
            if current.map({ !$0.elementsEqual(prefix) }) ?? true {
                if try !emit() { stopped = true; return false }
                current = Array(prefix)
                latest = nil
            }
            if seq <= asOf { latest = .some(try Self.decodeVersion(value)) }
            return true
        }
        if !stopped { _ = try emit() }
    }

    /// Every entry as this state sees it — the stored ones as of its point with this state's
    /// own reads and writes over them, and the entries it wrote that are not stored yet — in
    /// no particular order.
    func forEachCurrent(_ body: (String, V) throws -> Void) throws {
        var seen = Set<String>()
        try forEach { key, stored in
            seen.insert(key)
            if let mine = cache[key] {
                if let mine { try body(key, mine) }
            } else {
                try body(key, stored)
            }
            return true
        }
        for (key, value) in cache where !seen.contains(key) {
            if let value { try body(key, value) }
        }
    }

    /// Every entry of a `pair` table whose first name is `first`, as of this table's point:
    /// `body` gets the second name and the value (order: by the second name's id over a
    /// transaction, unordered in memory). One range of the stored table is read.
    func forEach(first: String, _ body: (String, V) throws -> Void) throws {
        guard case let .pair(a, b) = shape else { return }
        guard let reader, let db else {
            let prefix = first + "\u{0}"
            for (k, v) in cache {
                if let v, k.hasPrefix(prefix) { try body(String(k.dropFirst(prefix.count)), v) }
            }
            return
        }
        guard let ids, let firstID = try ids.id(a, first) else { return }
        let prefix = StableIDs.bytes(firstID)
        var current: UInt32?
        var latest: V?? = nil
        func emit() throws {
            guard let id = current, case let .some(.some(value)) = latest, let name = try ids.name(b, id) else { return }
            try body(name, value)
        }
        try reader.scan(db, from: prefix) { key, value in
            guard key.count == 16, key.prefix(4).elementsEqual(prefix) else { return false }
            guard let second = StableIDs.readID(UnsafeRawBufferPointer(rebasing: key[4 ..< 8])),
                  let seq = BigEndianKey.value(UnsafeRawBufferPointer(rebasing: key[8...])) else { return true }
            if second != current {
                try emit()
                current = second
                latest = nil
            }
            if seq <= asOf { latest = .some(try Self.decodeVersion(value)) }
            return true
        }
        try emit()
    }

    /// The stored versions of `key` with `after < seq ≤ through` (and ≤ this table's point),
    /// in seq order, until `body` returns false: each version's seq and value (nil: removed).
    /// Only that range of the stored table is read; nothing for a memory table.
    func versions(of key: String, after: UInt64, through: UInt64, _ body: (UInt64, V?) throws -> Bool) throws {
        guard let reader, let db, let ids, after < through, let prefix = try ids.storedKey(key, shape) else { return }
        let last = min(through, asOf)
        let length = prefix.count
        try reader.scan(db, from: prefix + BigEndianKey.bytes(after + 1)) { k, value in
            guard k.count == length + 8, k.prefix(length).elementsEqual(prefix),
                  let seq = BigEndianKey.value(UnsafeRawBufferPointer(rebasing: k[length...])), seq <= last else { return false }
            return try body(seq, try Self.decodeVersion(value))
        }
    }

    /// Reads the whole table into the hot cache when it is completable, small enough and
    /// due (see `HotCache.claimWholeLoad`); returns what it read (valid at this
    /// transaction's commit), or nil when it did not load. Read-only transactions at the
    /// head only: a write transaction's view is not a commit.
    private func loadWhole(_ hot: HotTable<V>, _ hotCache: HotCache) throws -> [String: V]? {
        guard hot.completable, let reader, let db, asOf == .max, hotCache.claimWholeLoad(hot, at: hotVersion),
              try reader.count(db) <= hotCache.limitPerTable else { return nil }
        var whole: [String: V] = [:]
        try forEach { key, value in
            whole[key] = value
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

    /// Sets `key` to `value` (nil removes it) by the event at `seq`. Setting what the key
    /// already holds changes nothing (no version is made).
    func set(_ key: String, _ value: V?, seq: UInt64) throws {
        if try get(key) == value { return }
        try setChanged(key, value, seq: seq)
    }

    /// `set` for a value known to differ from what the key holds (a changelog entry: each
    /// version differs from the one before by construction), without reading the key first.
    func setChanged(_ key: String, _ value: V?, seq: UInt64) throws {
        if reader != nil, writer == nil, recordingIDs == nil { throw StateError.readOnly }
        cache[key] = .some(value)
        if writer != nil {
            versions.append((key, seq, value))
        } else if let recordingIDs {
            // the names were given ids before the event was folded (read-only here, so two
            // threads folding disjoint tables may do this at once)
            if versioned {
                guard let prefix = try recordingIDs.storedKey(key, shape) else { throw StateError.unnamedKey(table: "memory", key: key) }
                Self.appendVersion(value, prefix: prefix, seq: seq, to: &recorded)
            }
        }
        // (an overlay keeps the removal: the stored table below still holds the old value)
        if reader == nil, value == nil { cache.removeValue(forKey: key) }
    }

    // MARK: Keys given by their ids

    /// `get(key)` for a caller that also knows the key's ids (the changelog, whose pairs
    /// are ids already): over a transaction the stored prefix is made from `ids` directly,
    /// with no look-up of names; a memory table uses `key`. A table is read and written
    /// either by ids or by names within one transaction, never both.
    func get(_ key: @autoclosure () -> String, ids: IDKey) throws -> V? {
        guard let reader, let db else { return try get(key()) }
        if let hit = idCache[ids] { return hit }
        let value = try reader.withLatest(db, prefix: ids.stored(shape), atOrBefore: asOf) { _, bytes in try Self.decodeVersion(bytes) } ?? nil
        idCache[ids] = .some(value)
        return value
    }

    /// `setChanged(key, value, seq:)` by ids (see `get(_:ids:)`); `readBack: false`: the
    /// entry is not read again in this transaction (a record of changes), so it is not
    /// cached for `get`, which would then not see it.
    func setChanged(_ key: @autoclosure () -> String, ids: IDKey, _ value: V?, seq: UInt64, readBack: Bool = true) throws {
        guard reader != nil else { return try setChanged(key(), value, seq: seq) }
        if writer == nil, recordingIDs == nil { throw StateError.readOnly }
        if readBack { idCache[ids] = .some(value) }
        if writer != nil {
            Self.appendVersion(value, ids: ids, shape, seq: seq, to: &idVersions)
        } else {
            // an overlay's ids are its replay's dictionary (`recordingIDs`)
            Self.appendVersion(value, ids: ids, shape, seq: seq, to: &recorded)
        }
    }

    /// Appends the stored version `ids ‖ seq` → tombstone or `1 ‖ record` to `rows`.
    private static func appendVersion(_ value: V?, ids: IDKey, _ shape: KeyShape, seq: UInt64, to rows: inout RowBuffer) {
        rows.begin(ids: ids, shape, seq: seq)
        encodeVersion(value, to: &rows.writer)
    }

    /// Writes every change through the transaction, in key order (neighbouring keys share
    /// pages, so fewer pages are dirtied): for a versioned table every version made. A
    /// table of one key (`.single`) only ever gains versions at seqs past its last one, so
    /// they are appended.
    func flush() throws {
        if let writer, let db, idVersions.count > 0 {
            let sorted = idVersions.sortedLastOfEachKey()
            let appending = if case .single = shape { true } else { false }
            try sorted.withRows { row in try writer.putSorted(db, count: sorted.count, appending: appending, row) }
            idVersions = RowBuffer()
        }
        guard let writer, let db, !versions.isEmpty else { return }
        if versioned {
            guard let ids else { return }
            var buffer = RowBuffer()
            for change in versions {
                guard let prefix = try ids.storedKey(change.key, shape) else { throw StateError.unnamedKey(table: db.name, key: change.key) }
                Self.appendVersion(change.value, prefix: prefix, seq: change.seq, to: &buffer)
            }
            // one version per key per seq (the last value the event gave it), in key order
            let sorted = buffer.sortedLastOfEachKey()
            try sorted.withRows { row in try writer.putSorted(db, count: sorted.count, row) }
        } else {
            for (bytes, key) in Set(versions.map(\.key)).map({ (Array($0.utf8), $0) }).sorted(by: { KeyOrder.precedes($0.0, $1.0) }) {
                if let value = cache[key] ?? nil {
                    try writer.put(db, key: bytes, value: value.encoded)
                } else {
                    try writer.delete(db, key: bytes)
                }
            }
        }
        if hot != nil { written.append(contentsOf: versions.map(\.key)) }
        versions.removeAll()
    }

    /// Every entry of a memory table (its latest values), sorted by key bytes: what a
    /// state holds, for comparing two states.
    func sortedEntries() -> [(key: [UInt8], value: [UInt8])] {
        cache.compactMap { k, v in v.map { (Array(k.utf8), $0.encoded) } }
            .sorted { KeyOrder.precedes($0.key, $1.key) }
    }

    /// What the stored database of this table holds after a fold of the same events: for
    /// a recording memory table every version, else its entries.
    func storedForm() -> SortedRows {
        guard versioned, recording else { return SortedRows(sorted: sortedEntries()) }
        return recorded.sortedLastOfEachKey()
    }

    /// The versions recorded since the last call, in key order (one per key and seq); they
    /// are forgotten here (a streaming comparison checks them chunk by chunk).
    func takeRecorded() -> SortedRows {
        let rows = recorded.sortedLastOfEachKey()
        recorded = RowBuffer()
        return rows
    }

    /// Sets an entry of a memory table (a no-op on a table over a transaction).
    func setInMemory(_ key: String, _ value: V) {
        guard reader == nil else { return }
        cache[key] = value
    }

}

/// A key of a versioned table by its stable ids: `first` and `second` for a `pair`, `first`
/// for `one`, neither for `single` (0 where unused).
struct IDKey: Hashable, Sendable {
    var first: UInt32
    var second: UInt32

    static let single = IDKey(first: 0, second: 0)

    /// The stored prefix in a table of `shape` (a `plain` table has no ids: empty).
    func stored(_ shape: KeyShape) -> [UInt8] {
        switch shape {
        case .plain, .single: []
        case .one: StableIDs.bytes(first)
        case .pair: StableIDs.bytes(first) + StableIDs.bytes(second)
        }
    }
}

/// What makes a stored projection database equal what a replay produces.
struct TableDifferences {
    /// Stored keys the replay does not produce.
    var removals: [[UInt8]] = []
    /// Entries missing or different in the database, sorted by key.
    var puts: [(key: [UInt8], value: [UInt8])] = []
    /// How many of `puts` are missing from the database (the others differ).
    var missing = 0
    /// The smallest stored key whose value differs.
    var firstChanged: [UInt8]?

    /// Whether the database equals the replay.
    var isEmpty: Bool { removals.isEmpty && puts.isEmpty }

    /// How `db` differs from `expected`: one merge of the two in key order (a reader with a
    /// `scanMappedBudget` gives the mapping back as it goes). Keys `ignoring` accepts are
    /// left out of the comparison.
    static func between(_ expected: SortedRows, stored db: LMDBDatabase, reader: TransactionReader,
                        ignoring: (UnsafeRawBufferPointer) -> Bool = { _ in false }) throws -> TableDifferences {
        var result = TableDifferences()
        try expected.withRows { row in
            var i = 0
            func put(_ r: (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)) { result.puts.append((Array(r.key), Array(r.value))) }
            try reader.scan(db) { key, value in
                while i < expected.count, RowBuffer.compare(row(i).key, key) < 0 {
                    result.missing += 1
                    put(row(i))
                    i += 1
                }
                if i < expected.count, RowBuffer.compare(row(i).key, key) == 0 {
                    let r = row(i)
                    if RowBuffer.compare(r.value, value) != 0 {
                        if result.firstChanged == nil { result.firstChanged = Array(r.key) }
                        put(r)
                    }
                    i += 1
                } else if !ignoring(key) {
                    result.removals.append(Array(key))
                }
                return true
            }
            while i < expected.count {
                result.missing += 1
                put(row(i))
                i += 1
            }
        }
        return result
    }
}
