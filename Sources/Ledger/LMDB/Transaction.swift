import CLMDB
import Foundation

/// Read access shared by read and write transactions.
///
/// Values handed to closures point into the memory map and are valid only inside the
/// closure: copy or decode them there.
public protocol TransactionReading: ~Copyable {
    /// The underlying `MDB_txn`. Valid only while the transaction is open.
    var handle: OpaquePointer { get }
}

extension TransactionReading where Self: ~Copyable {
    /// Calls `body` with the value stored under `key`, or returns nil when there is none.
    public func withValue<R>(_ db: LMDBDatabase, key: some ContiguousBytes,
                             _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        try key.withUnsafeBytes { keyBytes in
            var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            var v = MDB_val()
            let rc = mdb_get(handle, db.dbi, &k, &v)
            if rc == MDB_NOTFOUND { return nil }
            try LMDBError.check(rc, "mdb_get(\(db.name))")
            return try body(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
        }
    }

    /// A copy of the value stored under `key`, or nil.
    public func get(_ db: LMDBDatabase, key: some ContiguousBytes) throws -> [UInt8]? {
        try withValue(db, key: key) { Array($0) }
    }

    /// Visits entries in key order starting at the first key ≥ `start` (or the first key),
    /// until `body` returns false. Keys and values are valid only inside `body`.
    public func scan(_ db: LMDBDatabase, from start: [UInt8]? = nil,
                     _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws {
        var cursor: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(handle, db.dbi, &cursor), "mdb_cursor_open(\(db.name))")
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()
        var rc: Int32
        if let start {
            rc = start.withUnsafeBytes { bytes in
                k = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
                return mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
            }
        } else {
            rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
        }
        while rc == MDB_SUCCESS {
            let keep = try body(UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                                UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
            if !keep { return }
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try LMDBError.check(rc, "mdb_cursor_get(\(db.name))") }
    }

    /// Calls `body` with the last entry (largest key), or returns nil when the database is empty.
    public func withLast<R>(_ db: LMDBDatabase,
                            _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> R) throws -> R? {
        var cursor: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(handle, db.dbi, &cursor), "mdb_cursor_open(\(db.name))")
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()
        let rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc, "mdb_cursor_get(\(db.name), last)")
        return try body(UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                        UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    /// The latest version of `prefix` at or before `version`, for a database whose keys are
    /// `prefix ‖ version` (8 bytes, big-endian) with prefixes of one fixed length: one
    /// cursor seek to `prefix ‖ (version + 1)` and a step back. Calls `body` with that
    /// entry's version and value (valid only inside `body`); nil when `prefix` has no
    /// version at or before `version`.
    public func withLatest<R>(_ db: LMDBDatabase, prefix: [UInt8], atOrBefore version: UInt64,
                              _ body: (_ version: UInt64, _ value: UnsafeRawBufferPointer) throws -> R) throws -> R? {
        var cursor: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(handle, db.dbi, &cursor), "mdb_cursor_open(\(db.name))")
        defer { mdb_cursor_close(cursor) }
        var seek = prefix
        // past every version ≤ `version` of this prefix (for the largest version, past them all)
        seek.append(contentsOf: BigEndianKey.bytes(version == .max ? .max : version + 1))
        var k = MDB_val()
        var v = MDB_val()
        var rc = seek.withUnsafeBytes { bytes in
            k = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
            return mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
        }
        if rc == MDB_SUCCESS, version == .max, k.mv_size == seek.count,
           memcmp(k.mv_data, seek, seek.count) == 0 {
            // an entry at the largest version itself is the latest
        } else if rc == MDB_SUCCESS {
            rc = mdb_cursor_get(cursor, &k, &v, MDB_PREV)
        } else if rc == MDB_NOTFOUND {
            rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST)
        }
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc, "mdb_cursor_get(\(db.name), latest)")
        let key = UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size)
        guard key.count == prefix.count + 8, key.prefix(prefix.count).elementsEqual(prefix),
              let found = BigEndianKey.value(UnsafeRawBufferPointer(rebasing: key[prefix.count...])) else { return nil }
        return try body(found, UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    /// LMDB's transaction id: for a read transaction, the id of the commit it sees; for the
    /// write transaction, the id its commit will have (when it writes anything).
    public var id: UInt64 { UInt64(mdb_txn_id(handle)) }

    /// The number of entries in `db`.
    public func count(_ db: LMDBDatabase) throws -> Int {
        var stat = MDB_stat()
        try LMDBError.check(mdb_stat(handle, db.dbi, &stat), "mdb_stat(\(db.name))")
        return stat.ms_entries
    }
}

/// A read-only snapshot. Exists only inside `LMDBEnvironment.read`; it is `~Copyable` and
/// handed over `borrowing`, so it cannot outlive the closure.
public struct ReadTransaction: ~Copyable, TransactionReading {
    public let handle: OpaquePointer
    init(handle: OpaquePointer) { self.handle = handle }
}

/// The process's write transaction. Exists only inside `LMDBEnvironment.write`, which
/// commits or aborts it; it is `~Copyable`, so it cannot escape or be used afterwards.
public struct WriteTransaction: ~Copyable, TransactionReading {
    public let handle: OpaquePointer
    init(handle: OpaquePointer) { self.handle = handle }

    /// Stores `value` under `key`.
    public mutating func put(_ db: LMDBDatabase, key: some ContiguousBytes, value: some ContiguousBytes,
                             flags: PutFlags = []) throws {
        let h = handle
        try key.withUnsafeBytes { keyBytes in
            try value.withUnsafeBytes { valueBytes in
                var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                var v = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                try LMDBError.check(mdb_put(h, db.dbi, &k, &v, flags.rawValue), "mdb_put(\(db.name))")
            }
        }
    }

    /// Stores `count` rows, `row(i)`, given in ascending key order, through one cursor: LMDB
    /// then finds each key's leaf from the previous one's when it is on the same page,
    /// instead of searching from the root. `appending`: every key is greater than any
    /// stored (`MDB_APPEND`: no search at all; a key out of order fails with `MDB_KEYEXIST`).
    public mutating func putSorted(_ db: LMDBDatabase, count: Int, appending: Bool = false,
                                   _ row: (Int) -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)) throws {
        guard count > 0 else { return }
        var cursor: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(handle, db.dbi, &cursor), "mdb_cursor_open(\(db.name))")
        defer { mdb_cursor_close(cursor) }
        let flags = appending ? UInt32(MDB_APPEND) : 0
        for i in 0 ..< count {
            let (key, value) = row(i)
            var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
            var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
            try LMDBError.check(mdb_cursor_put(cursor, &k, &v, flags), "mdb_cursor_put(\(db.name))")
        }
    }

    /// Removes `key`; returns false when it was not there.
    @discardableResult
    public mutating func delete(_ db: LMDBDatabase, key: some ContiguousBytes) throws -> Bool {
        let h = handle
        return try key.withUnsafeBytes { keyBytes in
            var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            let rc = mdb_del(h, db.dbi, &k, nil)
            if rc == MDB_NOTFOUND { return false }
            try LMDBError.check(rc, "mdb_del(\(db.name))")
            return true
        }
    }

    /// Removes every entry of `db` (the database itself stays).
    public mutating func clear(_ db: LMDBDatabase) throws {
        try LMDBError.check(mdb_drop(handle, db.dbi, 0), "mdb_drop(\(db.name))")
    }
}

/// A reference-type view of an open transaction for code that reads lazily through an
/// object (e.g. a projection store). It is created by `withReader` and invalidated when
/// that call returns; any later use throws `TransactionReader.closed` instead of touching
/// freed memory.
public class TransactionReader {
    fileprivate var handle: OpaquePointer?

    fileprivate init(handle: OpaquePointer) { self.handle = handle }

    /// Thrown when the reader is used after its transaction ended.
    public static let closed = LMDBError(code: EINVAL, operation: "use of a TransactionReader after its transaction ended")

    fileprivate func invalidate() { handle = nil }

    /// When set, every scan through this reader gives the data file's mapped pages back
    /// every 4,096 entries once this process's file-backed resident memory passes this many
    /// bytes (`releaseMappedPages(above:)`): what a bounded-memory pass over a large ledger
    /// sets, so that no single long scan inside it (a fold that visits a whole table)
    /// escapes the budget.
    public var scanMappedBudget: Int?

    fileprivate func open() throws -> OpaquePointer {
        guard let handle else { throw Self.closed }
        return handle
    }

    /// Calls `body` with the bytes under `key` (valid only inside `body`), or returns nil.
    public func withValue<R>(_ db: LMDBDatabase, key: some ContiguousBytes,
                             _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        let view = BorrowedTransaction(handle: try open())
        return try view.withValue(db, key: key, body)
    }

    /// Calls `body` with the last entry, or returns nil when `db` is empty.
    public func withLast<R>(_ db: LMDBDatabase,
                            _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> R) throws -> R? {
        let view = BorrowedTransaction(handle: try open())
        return try view.withLast(db, body)
    }

    /// The latest version of `prefix` at or before `version` (see `TransactionReading.withLatest`).
    public func withLatest<R>(_ db: LMDBDatabase, prefix: [UInt8], atOrBefore version: UInt64,
                              _ body: (_ version: UInt64, _ value: UnsafeRawBufferPointer) throws -> R) throws -> R? {
        let view = BorrowedTransaction(handle: try open())
        return try view.withLatest(db, prefix: prefix, atOrBefore: version, body)
    }

    /// LMDB's transaction id (see `TransactionReading.id`).
    public func id() throws -> UInt64 { UInt64(mdb_txn_id(try open())) }

    /// Gives back this process's mapping of the data file's pages (`madvise(MADV_DONTNEED)`
    /// over the map, Linux): they stay in the kernel's page cache and are mapped
    /// again, from it, on the next read. Only the process's resident set changes — LMDB maps
    /// the file read-only here (no `MDB_WRITEMAP`), so nothing written is at stake, and the
    /// map can't move while a transaction is open. A scan that reads every page of a large
    /// file once (a rebuild's comparison) calls it between steps, so its resident set does
    /// not grow with the file.
    public func releaseMappedPages() throws {
        try releaseMappedPages(above: 0)
    }

    /// `releaseMappedPages()` when this process's file-backed resident pages (all its
    /// mappings, `/proc/self/statm`) exceed `budget` bytes: cheap enough to ask every few
    /// hundred reads of a long scan, whose resident set then stays near `budget`.
    public func releaseMappedPages(above budget: Int) throws {
        #if os(Linux)
        if budget > 0 {
            // "size resident shared …" in pages; shared = file-backed (and shared memory)
            guard let statm = procText("/proc/self/statm") else { return }
            let fields = statm.split(separator: " ")
            guard fields.count > 2, let shared = Int(fields[2]), shared > budget / max(1, Int(sysconf(Int32(_SC_PAGESIZE)))) else { return }
        }
        // LMDB does not say where it mapped the file (`me_mapaddr` is only a fixed map's):
        // the kernel's list of this process's mappings does
        var dir: UnsafePointer<CChar>?
        try LMDBError.check(mdb_env_get_path(mdb_txn_env(try open()), &dir), "mdb_env_get_path")
        guard let dir, let file = realpath(String(cString: dir) + "/data.mdb", nil) else { return }
        let path = String(cString: file)
        free(file)
        guard let maps = procText("/proc/self/maps") else { return }
        for line in maps.split(separator: "\n") where line.hasSuffix(" " + path) {
            // "start-end perms offset dev inode path", addresses in hex
            let range = line.prefix { $0 != " " }.split(separator: "-")
            guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16), end > start,
                  let base = UnsafeMutableRawPointer(bitPattern: start) else { continue }
            // advice only: a failure leaves the pages mapped, which is what not calling it does
            _ = madvise(base, Int(end - start), MADV_DONTNEED)
        }
        #endif
    }

    /// The number of entries in `db`.
    public func count(_ db: LMDBDatabase) throws -> Int {
        let view = BorrowedTransaction(handle: try open())
        return try view.count(db)
    }

    /// Visits entries in key order from the first key ≥ `start` until `body` returns false.
    public func scan(_ db: LMDBDatabase, from start: [UInt8]? = nil,
                     _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws {
        let view = BorrowedTransaction(handle: try open())
        guard let budget = scanMappedBudget else { return try view.scan(db, from: start, body) }
        var visited = 0
        try view.scan(db, from: start) { key, value in
            visited += 1
            if visited % 4_096 == 0 { try releaseMappedPages(above: budget) }
            return try body(key, value)
        }
    }
}

/// A `TransactionReader` that can also write: created by `WriteTransaction.withWriter`.
public final class TransactionWriter: TransactionReader {
    /// Stores `value` under `key`.
    public func put(_ db: LMDBDatabase, key: some ContiguousBytes, value: some ContiguousBytes, flags: PutFlags = []) throws {
        var txn = WriteTransaction(handle: try open())
        try txn.put(db, key: key, value: value, flags: flags)
    }

    /// Stores rows given in ascending key order through one cursor (see
    /// `WriteTransaction.putSorted`).
    public func putSorted(_ db: LMDBDatabase, count: Int, appending: Bool = false,
                          _ row: (Int) -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)) throws {
        var txn = WriteTransaction(handle: try open())
        try txn.putSorted(db, count: count, appending: appending, row)
    }

    /// Removes `key`; returns false when it was not there.
    @discardableResult
    public func delete(_ db: LMDBDatabase, key: some ContiguousBytes) throws -> Bool {
        var txn = WriteTransaction(handle: try open())
        return try txn.delete(db, key: key)
    }

    /// Removes every entry of `db`.
    public func clear(_ db: LMDBDatabase) throws {
        var txn = WriteTransaction(handle: try open())
        try txn.clear(db)
    }
}

/// A transaction handle borrowed for the duration of one call.
private struct BorrowedTransaction: ~Copyable, TransactionReading {
    let handle: OpaquePointer
}

extension TransactionReading where Self: ~Copyable {
    /// Calls `body` with a `TransactionReader` over this transaction, valid only inside `body`.
    public func withReader<R>(_ body: (TransactionReader) throws -> R) rethrows -> R {
        let reader = TransactionReader(handle: handle)
        defer { reader.invalidate() }
        return try body(reader)
    }
}

extension WriteTransaction {
    /// Calls `body` with a `TransactionWriter` over this transaction, valid only inside `body`.
    public mutating func withWriter<R>(_ body: (TransactionWriter) throws -> R) rethrows -> R {
        let writer = TransactionWriter(handle: handle)
        defer { writer.invalidate() }
        return try body(writer)
    }
}

/// Big-endian encoding of `UInt64` keys, so that LMDB's byte order is numeric order.
public enum BigEndianKey {
    /// The 8 big-endian bytes of `value`.
    @inline(__always)
    public static func bytes(_ value: UInt64) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    /// Reads a big-endian `UInt64` from the first 8 bytes, or nil when fewer are given.
    @inline(__always)
    public static func value(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard bytes.count >= 8 else { return nil }
        return UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
    }
}

/// The whole text of a `/proc` file, read to its end (such files report a size of 0, so
/// nothing may trust the size to read them).
func procText(_ path: String) -> String? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    guard let data = try? handle.readToEnd() else { return nil }
    return String(decoding: data, as: UTF8.self)
}
