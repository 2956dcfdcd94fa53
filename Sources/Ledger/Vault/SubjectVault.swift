import CLMDB
import Crypto
import Foundation
import Synchronization

/// A subject's pseudonym: 128 random bits assigned when its email is first seen, never
/// derived from the email, shown as 32 lowercase hex digits (`erased:PSEUDONYM` once the
/// subject is erased).
public struct Pseudonym: Hashable, Sendable, CustomStringConvertible {
    /// The 16 bytes.
    public let bytes: [UInt8]

    /// A pseudonym from its 16 bytes; nil for another length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// A pseudonym from its 32 hex digits (either case); nil for anything else.
    public init?(hex: String) {
        guard let bytes = Hex.decode(hex), bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// A fresh random pseudonym.
    static func random() throws -> Pseudonym {
        Pseudonym(unchecked: try SubjectVault.randomBytes(16))
    }

    private init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// 32 lowercase hex digits.
    public var description: String { Hex.encode(bytes) }
}

/// What the vault looks a value up by: an email names a subject; an account name names an
/// account, which belongs to the subject of the email it registered with.
enum VaultLookup: UInt8, Sendable, CaseIterable {
    /// A (normalised) email.
    case email = 1
    /// An account name.
    case account = 2
}

/// An error of the subject vault.
public struct VaultError: LedgerError, Equatable {
    /// What went wrong.
    public enum Reason: Sendable, Equatable {
        /// A stored value does not open under its subject's key (damaged, or moved to another
        /// subject, event or field).
        case sealBroken(field: String)
        /// A value opened, but it does not match the commitment the chain holds.
        case commitmentMismatch(field: String)
        /// A stored record of the vault is not in the form this build writes.
        case damaged(String)
        /// The pseudonym names no subject (or account) the vault ever held, or one that is
        /// erased where a live one is needed.
        case unknownSubject(Pseudonym)
        /// A batch assigned a subject or an account to a value that another writer gave one
        /// meanwhile (writers of one vault must be serialised, as the ledger's are).
        case conflict(String)
        /// A shared log's cluster key is not 32 bytes, or an item does not open under it.
        case clusterKey(String)
    }
    /// What went wrong.
    public let reason: Reason

    /// `corrupt` for a broken seal, a commitment mismatch or a damaged record;
    /// `unknownSubject` for a pseudonym the vault does not hold; `conflict` for a batch that
    /// raced another writer; `invalidClusterKey` for a shared log's key that is not one or
    /// does not open its items.
    public var errorCode: LedgerErrorCode {
        switch reason {
        case .unknownSubject: return LedgerErrorCode("unknownSubject")
        case .conflict: return LedgerErrorCode("conflict")
        case .clusterKey: return LedgerErrorCode("invalidClusterKey")
        default: return .corrupt
        }
    }

    /// What went wrong, naming the field, the file or the subject.
    public var message: String {
        switch reason {
        case .sealBroken(let field): return "the sealed value of field \(field) does not open under its subject's key for this event and field: damaged or moved"
        case .commitmentMismatch(let field): return "the value of field \(field) does not match the commitment in the event: the vault or the log was altered"
        case .damaged(let what): return "the subject vault holds a damaged record: \(what)"
        case .unknownSubject(let p): return "no live subject or account \(p) in the vault"
        case .conflict(let what): return "another writer assigned \(what) meanwhile: the batch was not written"
        case .clusterKey(let what): return what
        }
    }

    /// The message.
    public var description: String { message }
}

/// The store of personal data beside the log (DOMAIN.md §5.1): per subject (an email, the
/// accounts registered with it, and what they wrote) a random 256-bit key that seals its
/// values and a random 256-bit secret that its commitments are made under, and the look-ups
/// from an email or an account name, kept only as keyed hashes.
///
/// The log and the projections never hold a personal value: an event holds, for each
/// personal field, a pseudonym (the subject's, or for an account field the account's) and a
/// commitment to the value (``commitment(value:field:event:subject:)``), and the values live
/// here, sealed: each subject's email, each account's name, and each free text (names,
/// comments, reasons) under the subject and its commitment. Erasing a subject
/// (``erase(_:)``) deletes its key, secret, values and look-ups and then replaces the
/// vault's file by a compacted copy, so that no file of the directory — freed pages
/// included — still holds them; every commitment in the chain stays as it was, so the chain
/// and every checkpoint still verify, and none can be matched by hashing guesses.
///
/// Writes go through a ``VaultBatch`` (one durable transaction for a batch of events).
///
/// On disk, in its directory:
/// - `current` names the live generation (`gen-000001`, …), replaced atomically;
/// - `gen-NNNNNN/` is an LMDB environment holding the records and look-ups;
/// - `writer.lock` is held (`flock`) by whoever writes, and by an erasure from the deletion
///   to the switch of generation, across processes.
///
/// A process that has the previous generation open (reading or writing) uses it until its
/// next call, which finds the mark the erasure left in it (`supersededBy`, one read of its
/// meta table) and moves to the generation `current` names. An erasure interrupted by a
/// crash is finished by the next open of the vault or the next write (the deletion commits
/// first; the compaction is redone until `current` names a copy made after it).
public final class SubjectVault: Sendable {
    /// The vault's directory.
    public let directory: String
    let lockFD: Int32
    let state: Mutex<Generation>
    /// The generation and the commit of its environment at which it was last found live.
    private let liveAt = Mutex<(index: UInt64, commit: UInt64)>((0, 0))
    /// Serialises this process's writers; `flock` serialises processes.
    let writers = PlainMutex()
    /// Subjects' keys and secrets read in one generation (nil: erased).
    let keyCache = Mutex(KeyCache())
    static let keyCacheLimit = 100_000

    struct KeyCache: Sendable {
        var generation: UInt64 = 0
        var keys: [Pseudonym: SubjectKeys?] = [:]
    }

    /// One open generation of the vault.
    struct Generation: Sendable {
        var index: UInt64
        var environment: LMDBEnvironment
        var meta: LMDBDatabase
        var subjects: LMDBDatabase
        var lookup: LMDBDatabase
        var owned: LMDBDatabase
        var erased: LMDBDatabase
        var accounts: LMDBDatabase
        var texts: LMDBDatabase
        /// The look-up key and the key of the erased-email hashes.
        var indexKey: SymmetricKey
        var erasedKey: SymmetricKey
        /// HMAC-SHA-256 keyed with `indexKey` once: each look-up copies it (the key's two
        /// blocks are not hashed again for every name).
        var indexMAC: HMAC<SHA256>

        init(index: UInt64, environment: LMDBEnvironment, meta: LMDBDatabase, subjects: LMDBDatabase, lookup: LMDBDatabase,
             owned: LMDBDatabase, erased: LMDBDatabase, accounts: LMDBDatabase, texts: LMDBDatabase,
             indexKey: SymmetricKey, erasedKey: SymmetricKey) {
            self.index = index
            self.environment = environment
            self.meta = meta
            self.subjects = subjects
            self.lookup = lookup
            self.owned = owned
            self.erased = erased
            self.accounts = accounts
            self.texts = texts
            self.indexKey = indexKey
            self.erasedKey = erasedKey
            indexMAC = HMAC<SHA256>(key: indexKey)
        }
    }

    static let databaseNames = ["meta", "subjects", "lookup", "owned", "erased", "accounts", "texts"]
    static let indexKeyName = Array("indexKey".utf8)
    static let erasedKeyName = Array("erasedKey".utf8)
    /// The generation in which an erasure deleted something and whose copy is still due.
    static let pendingName = Array("compactionDue".utf8)
    /// The generation that replaced this one (set by the erasure that made it).
    static let supersededName = Array("supersededBy".utf8)

    /// Opens the vault in `directory`, creating it when missing, and finishes an erasure a
    /// crash interrupted (the compaction and the switch of generation), removing what such a
    /// crash left behind.
    public init(directory: String) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw LMDBError(code: EACCES, operation: "create the vault directory \(directory): \(error.localizedDescription)")
        }
        let fd = Foundation.open(directory + "/writer.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw LMDBError(code: errno, operation: "open(\(directory)/writer.lock)") }
        lockFD = fd
        let opened: Generation
        do {
            opened = try Self.withFileLock(fd) { () throws -> Generation in
                let generation = try Self.openCurrent(directory, creating: true)
                try Self.removeLeftovers(directory, keeping: generation.index)
                return generation
            }
        } catch {
            close(fd)
            throw error
        }
        state = Mutex(opened)
        // from here a failure deinitialises the vault, which closes the lock file
        try finishPendingErasure()
    }

    deinit { close(lockFD) }

    // MARK: generations

    static func generationName(_ index: UInt64) -> String { String(format: "gen-%06llu", index) }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Opens the generation `current` names; with `creating`, makes the first one when the
    /// vault is new (only under the file lock).
    static func openCurrent(_ directory: String, creating: Bool) throws -> Generation {
        let pointer = directory + "/current"
        if !exists(pointer) {
            guard creating else { throw VaultError(reason: .damaged("\(pointer) is missing")) }
            let first = directory + "/" + generationName(1)
            try FileManager.default.createDirectory(atPath: first, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            let env = try LMDBEnvironment.open(path: first, options: EnvironmentOptions(initialMapSize: 1 << 20, durability: .durable))
            let dbs = try env.openDatabases(databaseNames)
            try env.write { txn in
                try txn.put(dbs[0], key: indexKeyName, value: try randomKeyBytes())
                try txn.put(dbs[0], key: erasedKeyName, value: try randomKeyBytes())
            }
            try writePointer(directory, index: 1)
        }
        for _ in 0..<8 {
            // the file read is whole (it is replaced by rename, never written in place)
            let text = try String(contentsOfFile: pointer, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            guard text.hasPrefix("gen-"), let index = UInt64(text.dropFirst(4)), index > 0, index < 1 << 40 else {
                throw VaultError(reason: .damaged("\(pointer) names \(text.debugDescription), not a generation"))
            }
            let path = directory + "/" + generationName(index)
            let env: LMDBEnvironment
            do {
                // removed meanwhile by an erasure that switched again: read the pointer again
                guard exists(path + "/data.mdb") else { continue }
                env = try LMDBEnvironment.open(path: path, options: EnvironmentOptions(initialMapSize: 1 << 20, durability: .durable))
            } catch where !exists(path + "/data.mdb") {
                continue
            }
            let dbs = try env.openDatabases(databaseNames)
            guard dbs.count == databaseNames.count else { throw VaultError(reason: .damaged("databases missing in \(path)")) }
            let keys = try env.read { txn in (try txn.get(dbs[0], key: indexKeyName), try txn.get(dbs[0], key: erasedKeyName)) }
            guard let indexKey = keys.0, indexKey.count == 32, let erasedKey = keys.1, erasedKey.count == 32 else {
                throw VaultError(reason: .damaged("the keys of \(path) are missing"))
            }
            return Generation(index: index, environment: env, meta: dbs[0], subjects: dbs[1], lookup: dbs[2],
                              owned: dbs[3], erased: dbs[4], accounts: dbs[5], texts: dbs[6],
                              indexKey: SymmetricKey(data: indexKey), erasedKey: SymmetricKey(data: erasedKey))
        }
        throw VaultError(reason: .damaged("\(pointer) keeps changing or names a missing generation"))
    }

    /// Makes `current` name generation `index`, atomically and durably.
    static func writePointer(_ directory: String, index: UInt64) throws {
        let temporary = directory + "/.current.tmp"
        let fd = Foundation.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw LMDBError(code: errno, operation: "open(\(temporary))") }
        let bytes = Array((generationName(index) + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0 else { throw LMDBError(code: errno == 0 ? EIO : errno, operation: "write(\(temporary))") }
        guard rename(temporary, directory + "/current") == 0 else { throw LMDBError(code: errno, operation: "rename(\(temporary), current)") }
        try LMDBEnvironment.flush(directory: directory)
    }

    /// Removes every generation but `index` and every unfinished copy.
    static func removeLeftovers(_ directory: String, keeping index: UInt64) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var removed = false
        for name in names where (name.hasPrefix("gen-") && name != generationName(index)) || name.hasPrefix(".gen-") {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
            removed = true
        }
        if removed { try LMDBEnvironment.flush(directory: directory) }
    }

    static func randomKeyBytes() throws -> [UInt8] { try randomBytes(32) }

    /// The kernel's CSPRNG, opened once per process.
    static let urandom: Int32 = Foundation.open("/dev/urandom", O_RDONLY | O_CLOEXEC)

    /// `count` bytes from the kernel's CSPRNG (`/dev/urandom`), in as few reads as it takes —
    /// one for a whole batch, where a `SystemRandomNumberGenerator` makes a system call per
    /// 8 bytes.
    static func randomBytes(_ count: Int) throws -> [UInt8] {
        guard urandom >= 0 else { throw LMDBError(code: EIO, operation: "open(/dev/urandom)") }
        var out = [UInt8](repeating: 0, count: count)
        var filled = 0
        try out.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            while filled < count {
                let n = read(urandom, base + filled, count - filled)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw LMDBError(code: n < 0 ? errno : EIO, operation: "read(/dev/urandom)") }
                filled += n
            }
        }
        return out
    }

    /// Runs `body` holding the cross-process writer lock.
    static func withFileLock<R>(_ fd: Int32, _ body: () throws -> R) throws -> R {
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw LMDBError(code: errno, operation: "flock(writer.lock)") }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    /// Throws the write refusal of the open generation after an I/O failure of its commit or
    /// flush (`LMDBEnvironment.refuseWritesAfterFailure`): the ledger then writes no more,
    /// since what the vault holds on disk is no longer known.
    public func refuseWritesAfterFailure() throws {
        try state.withLock { $0 }.environment.refuseWritesAfterFailure()
    }

    /// The live generation: the one open, or the next one when an erasure switched since.
    ///
    /// An erasure marks the generation it replaces (`supersededBy`, committed before
    /// `current` names the next one), so one read of this generation's own meta table tells
    /// whether it is still live — no system call, and no trust in `current`'s inode, which a
    /// file system reuses at once (a writer of another process that compared inodes kept
    /// writing to a removed generation: found by `VaultCrashTests`).
    ///
    /// A generation found live at commit N of its environment stays live until a later
    /// commit: LMDB's last transaction id (read from the shared meta page, no transaction)
    /// tells, so the mark is read again only after a commit of the vault.
    func current() throws -> Generation {
        let open = state.withLock { $0 }
        let commit = open.environment.lastCommitID
        if liveAt.withLock({ $0.index == open.index && $0.commit == commit }) { return open }
        guard try Self.supersedingIndex(open) != nil else {
            liveAt.withLock { $0 = (open.index, commit) }
            return open
        }
        let fresh = try Self.openCurrent(directory, creating: false)
        // `current` may still name this one: the erasure that marked it crashed before the
        // switch, and the next writer or open redoes the copy
        if fresh.index == open.index { return open }
        state.withLock { if $0.index < fresh.index { $0 = fresh } }
        return fresh
    }

    /// The generation that replaces `g`, when an erasure marked it.
    static func supersedingIndex(_ g: Generation) throws -> UInt64? {
        let marked = try g.environment.read { txn in
            try txn.withValue(g.meta, key: supersededName) { BigEndianKey.value($0) }
        }
        guard let next = marked ?? nil, next > g.index else { return nil }
        return next
    }

    /// Runs a write against the live generation, excluding every other writer (of this
    /// process and of others) and any erasure; an erasure a crash left half done (deleted,
    /// not yet copied) is finished first.
    func writing<R>(_ body: (Generation) throws -> R) throws -> R {
        try writers.withLock {
            try Self.withFileLock(lockFD) {
                let g = try current()
                return try body(try compactIfDue(g) ? try current() : g)
            }
        }
    }

    /// The generation now live (for tests and `stats`).
    public var generation: UInt64 { get throws { try current().index } }
}
