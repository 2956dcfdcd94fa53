import CLMDB
import Foundation
import Logging
import Synchronization

/// How hard a committed write transaction tries to reach the disk.
public enum Durability: String, Sendable, CaseIterable {
    /// Every commit is flushed with `fsync` before it returns. A committed append
    /// survives a process crash, an OS crash and a power loss. (LMDB flushes the data
    /// pages inside the commit and this library flushes the meta page right after it,
    /// outside the write lock, so the next writer can start meanwhile: see
    /// `LMDBEnvironment.write`.)
    case durable
    /// Commits are not flushed (`MDB_NOSYNC`): a process crash loses nothing (the OS
    /// still holds the pages), but an OS crash or power loss may lose the latest commits
    /// and, where the storage reorders writes (most do), leave the database corrupt — LMDB
    /// documents this, and the power-loss suite shows it. Much faster: use it for work you
    /// can redo from scratch (bulk loads into a new ledger, benchmarks, tests), then call
    /// `LMDBEnvironment.sync()`.
    case noSync
}

/// Options for opening an `LMDBEnvironment`.
public struct EnvironmentOptions: Sendable {
    /// The map size the environment starts with, in bytes. It grows on its own
    /// (doubling) whenever a write finds the map full, so this can be small.
    public var initialMapSize: Int
    /// The largest number of named databases.
    public var maxDatabases: UInt32
    /// The largest number of concurrent read transactions across all processes.
    public var maxReaders: UInt32
    /// Whether commits are flushed to disk before they return.
    public var durability: Durability
    /// Open read-only: no write transaction can begin.
    public var readOnly: Bool

    /// Creates options; the defaults are durable, 64 MiB to start, 32 databases.
    public init(initialMapSize: Int = 64 << 20, maxDatabases: UInt32 = 32, maxReaders: UInt32 = 254,
                durability: Durability = .durable, readOnly: Bool = false) {
        self.initialMapSize = initialMapSize
        self.maxDatabases = maxDatabases
        self.maxReaders = maxReaders
        self.durability = durability
        self.readOnly = readOnly
    }
}

/// A handle to a named database inside an environment (an LMDB `MDB_dbi`).
public struct LMDBDatabase: Sendable, Hashable {
    /// LMDB's handle.
    let dbi: MDB_dbi
    /// The name it was opened with.
    public let name: String
}

/// Flags for `mdb_dbi_open`, wrapped so the `Int32` macros become `UInt32` options.
public struct DatabaseFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Keys are native-endian integers (unused here: this library stores big-endian keys).
    public static let integerKey = DatabaseFlags(rawValue: UInt32(MDB_INTEGERKEY))
    /// Create the database when it is missing.
    public static let create = DatabaseFlags(rawValue: UInt32(MDB_CREATE))
}

/// Flags for `mdb_put`.
public struct PutFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Fail with `keyExists` instead of overwriting.
    public static let noOverwrite = PutFlags(rawValue: UInt32(MDB_NOOVERWRITE))
    /// The key sorts after every existing key (fast path; fails with `keyExists` otherwise).
    public static let append = PutFlags(rawValue: UInt32(MDB_APPEND))
}

/// An LMDB environment: one directory holding a memory-mapped data file and its lock file.
///
/// Rules this type enforces:
/// - One `LMDBEnvironment` per path per process (`open` returns the existing one).
/// - Read transactions may run on any thread at once (`MDB_NOTLS`); write transactions
///   are serialised inside the process and begin and commit on the calling thread
///   (write closures are synchronous).
/// - Every transaction holds the read side of a process-wide gate; growing the map takes
///   the write side, so it happens only while no transaction of this process is open.
/// - When a write finds the map full (at `mdb_put` or at commit) the map is doubled and
///   the whole write closure runs again: write closures must be re-runnable.
///
/// `@unchecked Sendable`: the `MDB_env` pointer is immutable after `open`; LMDB allows an
/// environment to be shared by threads; mutable Swift state (`databases`, `mapSize`) is
/// guarded by `registryLock`/`gate`, and write transactions by `writerLock`.
public final class LMDBEnvironment: @unchecked Sendable {
    /// The directory of the environment (standardised path).
    public let path: String
    /// The options it was opened with.
    public let options: EnvironmentOptions
    let env: OpaquePointer
    let gate = ReadWriteLock()
    let writerLock = PlainMutex()
    private let stateLock = PlainMutex()
    private var databases: [String: LMDBDatabase] = [:]
    private let logger: Logger
    /// Reset read transactions kept for reuse (`mdb_txn_renew` is far cheaper than
    /// `mdb_txn_begin`, which takes a reader slot each time under `MDB_NOTLS`). Guarded by
    /// `poolLock`; emptied under the write side of `gate` before the map is resized.
    private var readPool: [OpaquePointer] = []
    private let poolLock = PlainMutex()
    /// How many reset read transactions are kept: each holds a slot of the reader table
    /// (shared by every process), so at most 1/32 of it, and none for a tiny table.
    private lazy var readPoolLimit: Int = {
        var readers: UInt32 = 0
        mdb_env_get_maxreaders(env, &readers)
        return min(8, Int(readers) / 32)
    }()

    private static let registry = Mutex<[String: WeakEnvironment]>([:])

    /// The last transaction id known to be on disk (guarded by `syncLock`, which is held
    /// across the flush so that callers arriving meanwhile share the next one).
    private var durableID: UInt64 = 0
    private let syncLock = PlainMutex()
    /// Flushes made by `makeDurable` (guarded by `syncLock`).
    private var flushCount = 0
    /// The first I/O failure of a commit or a flush (guarded by `syncLock`): once set, this
    /// process refuses every further write on the environment (see `refuseWritesAfter`).
    private var ioFailure: LMDBError?

    /// Records an I/O failure of a commit or a flush and returns it. After a failed `fsync`
    /// the kernel may already have dropped the pages it could not write and marked them
    /// clean (a retried `fsync` then reports success with the data lost), and a failed
    /// write inside a commit may have been partly done: what this process sees can no longer
    /// be trusted to be what is on disk, so its writes are refused from then on. Reads go
    /// on; a new process opening the ledger starts from the last commit on disk.
    private func refuseWritesAfter(_ error: LMDBError) -> LMDBError {
        syncLock.withLock { if ioFailure == nil { ioFailure = error } }
        return error
    }

    /// The refusal of a write after an I/O failure, nil when there was none.
    private var writeRefusal: LMDBError? {
        syncLock.withLock {
            ioFailure.map { LMDBError(code: $0.code, operation: "write refused: an earlier commit or flush of the data file failed (\($0.description)); after a failed write or fsync this process can't trust its view of the file, so it writes no more — reopen the ledger in a new process, which starts from the last commit on disk") }
        }
    }
    /// Throws the refusal every write gets after an I/O failure of a commit or a flush (see
    /// `refuseWritesAfter`); returns when there was none. For a store written together with
    /// this environment (the subject vault beside the log), so that neither goes on alone.
    public func refuseWritesAfterFailure() throws {
        if let refusal = writeRefusal { throw refusal }
    }

    /// Flushes made by `makeDurable` so far (for tests and monitoring).
    var durableFlushes: Int { syncLock.withLock { flushCount } }

    private init(path: String, options: EnvironmentOptions, env: OpaquePointer, logger: Logger) {
        self.path = path
        self.options = options
        self.env = env
        self.logger = logger
    }

    deinit {
        for txn in readPool { mdb_txn_abort(txn) }
        mdb_env_close(env)
    }

    /// A read transaction handle: a pooled one renewed, or a new one.
    private func beginRead() -> (OpaquePointer?, Int32) {
        if let pooled = poolLock.withLock({ readPool.popLast() }) {
            let rc = mdb_txn_renew(pooled)
            if rc == MDB_SUCCESS { return (pooled, rc) }
            mdb_txn_abort(pooled)
            if rc == MDB_MAP_RESIZED { return (nil, rc) }
        }
        var txn: OpaquePointer?
        var rc = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
        if rc == MDB_READERS_FULL {
            var dead: Int32 = 0
            _ = mdb_reader_check(env, &dead)
            rc = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
        }
        return (txn, rc)
    }

    /// Ends a read transaction, keeping its handle (reset) for reuse when the pool has room.
    private func endRead(_ txn: OpaquePointer) {
        mdb_txn_reset(txn)
        let kept = poolLock.withLock {
            guard readPool.count < readPoolLimit else { return false }
            readPool.append(txn)
            return true
        }
        if !kept { mdb_txn_abort(txn) }
    }

    /// Frees the pooled read transactions (before the map is resized: called under the
    /// write side of `gate`, so none is in use).
    private func drainReadPool() {
        let pooled = poolLock.withLock { () -> [OpaquePointer] in
            defer { readPool.removeAll() }
            return readPool
        }
        for txn in pooled { mdb_txn_abort(txn) }
    }

    /// Opens (or returns the already open) environment in directory `path`, which must exist.
    /// LMDB allows one environment per file in a process, so a second open shares the
    /// first; options that would not hold for it (another durability, read-only or not,
    /// more named databases) are refused with `EINVAL` naming the option, never dropped.
    public static func open(path: String, options: EnvironmentOptions = .init(),
                            logger: Logger = Logger(label: "permission-ledger.lmdb")) throws -> LMDBEnvironment {
        let key = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        return try registry.withLock { table in
            if let existing = table[key]?.value {
                let open = existing.options
                func conflict(_ what: String) -> LMDBError {
                    LMDBError(code: EINVAL, operation: "open(\(key)): already open in this process with \(what); close it first or open with the same options")
                }
                if open.durability != options.durability { throw conflict("durability \(open.durability), not \(options.durability)") }
                if open.readOnly != options.readOnly { throw conflict(open.readOnly ? "readOnly" : "read-write") }
                if options.maxDatabases > open.maxDatabases { throw conflict("at most \(open.maxDatabases) databases, not \(options.maxDatabases)") }
                return existing
            }
            var handle: OpaquePointer?
            try LMDBError.check(mdb_env_create(&handle), "mdb_env_create")
            guard let env = handle else { throw LMDBError(code: ENOMEM, operation: "mdb_env_create") }
            do {
                try LMDBError.check(mdb_env_set_maxdbs(env, options.maxDatabases), "mdb_env_set_maxdbs")
                try LMDBError.check(mdb_env_set_maxreaders(env, options.maxReaders), "mdb_env_set_maxreaders")
                try LMDBError.check(mdb_env_set_mapsize(env, max(options.initialMapSize, 1 << 16)), "mdb_env_set_mapsize")
                var flags = UInt32(MDB_NOTLS)
                if options.durability == .noSync { flags |= UInt32(MDB_NOSYNC) }
                // Durable: LMDB flushes a commit's data pages before writing its meta page
                // (so the file is consistent whatever a crash keeps); the meta page is then
                // flushed by `makeDurable`, outside the write lock, before any caller is told.
                if options.durability == .durable && !options.readOnly { flags |= UInt32(MDB_NOMETASYNC) }
                if options.readOnly { flags |= UInt32(MDB_RDONLY) } else { try createDataFileAtomically(in: key) }
                try LMDBError.check(mdb_env_open(env, key, flags, 0o600), "mdb_env_open(\(key))")
                // Clear reader slots left by processes that died holding a read transaction.
                var dead: Int32 = 0
                _ = mdb_reader_check(env, &dead)
            } catch {
                mdb_env_close(env)
                throw error
            }
            let environment = LMDBEnvironment(path: key, options: options, env: env, logger: logger)
            table[key] = WeakEnvironment(value: environment)
            return environment
        }
    }

    /// `mdb_env_info`, which reads the meta pages through the map: only while the map can't
    /// move, i.e. under the gate (read side, or the write side while resizing). Without it,
    /// a resize on another thread unmaps the pages being read.
    private func info() -> MDB_envinfo {
        var info = MDB_envinfo()
        mdb_env_info(env, &info)
        return info
    }

    /// The current size of the memory map in bytes.
    public var mapSize: Int { gate.withReadLock { info().me_mapsize } }

    /// The id of the last committed transaction (by any process), read from the meta pages
    /// without a transaction: a read transaction begun now would see this commit or a later one.
    public var lastCommitID: UInt64 { gate.withReadLock { UInt64(info().me_last_txnid) } }

    /// Bytes used by the data file on disk (pages in use × page size).
    public var usedBytes: Int {
        gate.withReadLock {
            var stat = MDB_stat()
            mdb_env_stat(env, &stat)
            return (info().me_last_pgno + 1) * Int(stat.ms_psize)
        }
    }

    /// Flushes buffers to disk (useful after `noSync` writes).
    public func sync() throws {
        try LMDBError.check(mdb_env_sync(env, 1), "mdb_env_sync")
    }

    /// Returns once every commit up to transaction `id` is on disk (a no-op for `.noSync`
    /// and read-only environments). Concurrent callers share flushes: whoever finds the
    /// flush in progress waits for it and returns at once when it covered their id.
    ///
    /// A flush covers every commit whose meta page was written before it began, made by
    /// this process or another (they share the file). Throws when the flush fails: the
    /// commit is then in the file but not known to be on disk. Returns whether this call
    /// flushed (false when another flush had covered `id` already).
    @discardableResult
    public func makeDurable(through id: UInt64) throws -> Bool {
        guard options.durability == .durable, !options.readOnly else { return false }
        return try syncLock.withLock {
            if durableID >= id { return false }
            // every commit up to `target` has written its meta page: the flush covers it
            let target = lastCommitID
            if let ioFailure { throw ioFailure }
            let rc = mdb_env_sync(env, 1)
            if rc != MDB_SUCCESS {
                let error = LMDBError(code: rc, operation: "fdatasync after commit (the commit is in the file but may not be on disk)")
                if ioFailure == nil { ioFailure = error }
                throw error
            }
            durableID = max(durableID, target)
            flushCount += 1
            return true
        }
    }

    /// The last transaction id this process has made sure is on disk (`makeDurable`); 0
    /// before the first durable write and always for `.noSync`.
    public var durableThrough: UInt64 { syncLock.withLock { durableID } }

    /// Opens (creating when missing) the named databases, once per process; later calls
    /// return the handles already open.
    public func openDatabases(_ names: [String]) throws -> [LMDBDatabase] {
        try stateLock.withLock {
            let missing = names.filter { databases[$0] == nil }
            if !missing.isEmpty {
                try gate.withReadLock {
                    try writerLock.withLock {
                        var txn: OpaquePointer?
                        let flags: UInt32 = options.readOnly ? UInt32(MDB_RDONLY) : 0
                        try LMDBError.check(mdb_txn_begin(env, nil, flags, &txn), "mdb_txn_begin")
                        guard let txn else { throw LMDBError(code: EINVAL, operation: "mdb_txn_begin") }
                        var opened: [String: LMDBDatabase] = [:]
                        for name in missing {
                            var dbi: MDB_dbi = 0
                            let create = options.readOnly ? 0 : UInt32(MDB_CREATE)
                            let rc = mdb_dbi_open(txn, name, create, &dbi)
                            if rc != MDB_SUCCESS {
                                mdb_txn_abort(txn)
                                throw LMDBError(code: rc, operation: "mdb_dbi_open(\(name))")
                            }
                            opened[name] = LMDBDatabase(dbi: dbi, name: name)
                        }
                        try LMDBError.check(mdb_txn_commit(txn), "mdb_txn_commit")
                        databases.merge(opened) { a, _ in a }
                    }
                }
            }
            return names.compactMap { databases[$0] }
        }
    }

    /// Whether the named database exists (without creating it).
    public func databaseExists(_ name: String) throws -> Bool {
        try stateLock.withLock {
            if databases[name] != nil { return true }
            return try gate.withReadLock {
                var txn: OpaquePointer?
                try LMDBError.check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin")
                guard let txn else { throw LMDBError(code: EINVAL, operation: "mdb_txn_begin") }
                defer { mdb_txn_abort(txn) }
                var dbi: MDB_dbi = 0
                let rc = mdb_dbi_open(txn, name, 0, &dbi)
                if rc == MDB_NOTFOUND { return false }
                try LMDBError.check(rc, "mdb_dbi_open(\(name))")
                return true
            }
        }
    }

    /// Runs `body` inside a read transaction (a consistent snapshot). Callable from any
    /// thread, concurrently with other reads and with a write.
    public func read<R>(_ body: (borrowing ReadTransaction) throws -> R) throws -> R {
        var resized = false
        while true {
            let outcome: Result<R, any Error>? = try gate.withReadLock {
                let (handle, rc) = beginRead()
                if rc == MDB_MAP_RESIZED && !resized { return nil }
                try LMDBError.check(rc, "mdb_txn_begin(read)")
                guard let txn = handle else { throw LMDBError(code: EINVAL, operation: "mdb_txn_begin") }
                let transaction = ReadTransaction(handle: txn)
                defer { endRead(txn) }
                do { return .success(try ThreadTransactions.within(ObjectIdentifier(self)) { try body(transaction) }) } catch { return .failure(error) }
            }
            if let outcome { return try outcome.get() }
            // Another process grew the map: adopt its size while no transaction is open here.
            try adoptMapSize()
            resized = true
        }
    }

    /// Runs `body` inside the process's single write transaction and commits it; with
    /// `.durable` it returns once the commit is on disk.
    ///
    /// If the map fills up (at a put or at the commit), the transaction is discarded, the
    /// map doubled, and `body` runs again from the start — so `body` must not have side
    /// effects outside the transaction that would break when repeated. An error thrown by
    /// `body` aborts the transaction: nothing it wrote is kept.
    public func write<R>(_ body: (inout WriteTransaction) throws -> R) throws -> R {
        let (value, through) = try writeDeferringSync(body)
        try makeDurable(through: through)
        return value
    }

    /// `write` without waiting for the disk: commits and returns the transaction id that
    /// `makeDurable(through:)` must reach before anyone may be told the commit is durable —
    /// the commit's own id, or, when it wrote nothing, the id of the commit it read. The
    /// data pages are flushed inside the commit; the meta page that makes the commit
    /// current is flushed by `makeDurable`, so the next write can begin meanwhile (group
    /// commit overlaps one batch's flush with the next batch's work).
    public func writeDeferringSync<R>(_ body: (inout WriteTransaction) throws -> R) throws -> (R, UInt64) {
        if options.readOnly { throw LMDBError(code: EACCES, operation: "write on a read-only environment") }
        if let refusal = writeRefusal { throw refusal }
        if ThreadTransactions.holds(ObjectIdentifier(self)) {
            throw LMDBError(code: EDEADLK, operation: "a write begun inside a read or write closure of the same ledger on the same thread (transactions are not reentrant: finish the closure, then write)")
        }
        while true {
            let step: WriteStep<R> = try gate.withReadLock {
                try writerLock.withLock {
                    var txn: OpaquePointer?
                    let rc = mdb_txn_begin(env, nil, 0, &txn)
                    if rc == MDB_MAP_RESIZED { return .adopt }
                    try LMDBError.check(rc, "mdb_txn_begin(write)")
                    guard let txn else { throw LMDBError(code: EINVAL, operation: "mdb_txn_begin") }
                    var transaction = WriteTransaction(handle: txn)
                    let value: R
                    do {
                        value = try ThreadTransactions.within(ObjectIdentifier(self)) { try body(&transaction) }
                    } catch let error as LMDBError where error.isMapFull {
                        mdb_txn_abort(txn)
                        return .grow
                    } catch {
                        mdb_txn_abort(txn)
                        throw error
                    }
                    // After mdb_txn_commit the transaction is freed whatever it returns. A
                    // transaction that wrote nothing commits nothing: it depends on the commit
                    // it read (its id - 1).
                    let id = UInt64(mdb_txn_id(txn))
                    let commit = mdb_txn_commit(txn)
                    if commit == MDB_MAP_FULL { return .grow }
                    if commit == EIO || commit == ENOSPC || commit == EFBIG || commit == EDQUOT {
                        throw refuseWritesAfter(LMDBError(code: commit, operation: "mdb_txn_commit (could not write the data file: is the disk full, or a file-size limit reached? nothing of this transaction was kept)"))
                    }
                    if commit != MDB_SUCCESS { throw refuseWritesAfter(LMDBError(code: commit, operation: "mdb_txn_commit")) }
                    // under the gate already: read the meta pages directly
                    return .done(value, min(id, UInt64(info().me_last_txnid)))
                }
            }
            switch step {
            case let .done(value, through): return (value, through)
            case .grow: try growMap()
            case .adopt: try adoptMapSize()
            }
        }
    }

    /// Doubles the map. Only legal while no transaction of this process is open: takes the
    /// write side of the gate.
    private func growMap() throws {
        try gate.withWriteLock {
            drainReadPool()
            let current = info().me_mapsize
            let next = current * 2
            logger.debug("growing LMDB map", metadata: ["from": "\(current)", "to": "\(next)"])
            try LMDBError.check(mdb_env_set_mapsize(env, next), "mdb_env_set_mapsize")
        }
    }

    /// Adopts a map size set by another process (`MDB_MAP_RESIZED`).
    private func adoptMapSize() throws {
        try gate.withWriteLock {
            drainReadPool()
            try LMDBError.check(mdb_env_set_mapsize(env, 0), "mdb_env_set_mapsize(0)")
        }
    }
}

private enum WriteStep<R> {
    case done(R, UInt64)
    case grow
    case adopt
}

private struct WeakEnvironment {
    weak var value: LMDBEnvironment?
}
