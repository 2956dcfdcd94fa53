import Crypto
import Foundation
import Ledger
import Logging
import Metrics
import Synchronization

/// A point in history to ask a question at.
public enum AsOf: Sendable, Equatable {
    /// After the event with this seq (the head when beyond it).
    case seq(UInt64)
    /// After the last event whose time is at or before this time.
    case time(Timestamp)
}

/// What `execute` did.
public struct ExecutionResult: Sendable, Equatable {
    /// The seqs appended (or, for a repeated command id, the seqs appended the first time).
    public var seqs: [UInt64]
    /// Nil when accepted; the refusal otherwise (`seqs` may still hold R9's recorded failure).
    public var refusal: DomainError?
    /// True when the command's id had been executed before and nothing new was appended.
    public var wasDuplicate: Bool

    /// Whether the command was accepted.
    public var accepted: Bool { refusal == nil }
}

/// Why an import was refused; nothing of it was appended.
public struct ImportError: Error, Sendable, CustomStringConvertible {
    /// The 1-based position of the offending event in the input.
    public var index: Int
    /// What is wrong.
    public var message: String
    /// The rule's code when an event does not apply cleanly.
    public var code: String?
    public var description: String { "event \(index): \(message)" }
}

/// What `verify` found, for the log and the projections.
public struct LedgerVerifyReport: Sendable, Equatable {
    /// The log's chain report.
    public var log: VerifyReport
    /// Nil when the stored projections equal a fresh replay; what differs otherwise.
    public var projectionProblem: String?
    /// Whether everything is sound.
    public var ok: Bool { log.ok && projectionProblem == nil }
}

/// What `rebuild` did.
public struct RebuildReport: Sendable, Equatable {
    /// Events folded.
    public var events: UInt64
    /// Wall-clock seconds.
    public var seconds: Double
    /// Events per second.
    public var eventsPerSecond: Double { seconds > 0 ? Double(events) / seconds : Double(events) }
    /// Projection entries that differed from the replay and were written or removed (0 when
    /// the stored projections were sound).
    public var changedEntries: Int = 0
}

/// Statistics of a ledger.
public struct LedgerStats: Sendable, Equatable {
    public var events: UInt64
    public var byType: [String: UInt64]
    public var head: Head
    public var fileBytes: Int
}

/// The permission ledger a service embeds: an LMDB environment holding the event log and
/// the projections, the rules, and every query of DOMAIN.md.
///
/// - `execute(_:)` decides a command on the current state and appends its events in the
///   same LMDB write transaction that updates the projections: a reader never sees an
///   event without its effect. Deciding inside the write transaction means the state
///   decided on is the head appended to, also across processes (LMDB serialises writers);
///   the append still passes the expected head, so a broken invariant is a loud conflict.
/// - Queries read a consistent snapshot; `asOf` answers read the versioned projections as
///   they were at the point asked (every projection entry keeps every version it had), at
///   about the cost of the same question at the head.
/// - Safe to call from any thread or task; writes are serialised inside the process.
public final class PermissionLedger: Sendable {
    /// Options for opening a ledger.
    public struct Options: Sendable {
        /// The rules' configurable parts. Nil (the default): the policy stored with the
        /// ledger — DOMAIN.md's default for a new one. A ledger stores the policy it was
        /// created with (and a fingerprint of it); opening it with another one throws
        /// `PolicyConflict` unless `adoptPolicy` is set.
        public var policy: Policy?
        /// Switch an existing ledger to `policy`: the projections are rebuilt under it
        /// (crash-safe: an interrupted switch is finished by the next open) and the switch is
        /// recorded with the head seq and the replaced policy's fingerprint.
        public var adoptPolicy = false
        /// The key authorization numbers are hashed with (nil: Open Licenses can't be
        /// recorded or checked).
        public var authorizationKey: AuthorizationKey?
        /// Keys retired by a rotation: still used to check Add Open License attempts on
        /// agreements recorded under them (each stored hash names its key id).
        public var previousAuthorizationKeys: [AuthorizationKey]
        /// Durable (fsync per commit, the default) or faster `noSync`.
        public var durability: Durability
        /// The LMDB map size to start with; it grows on its own.
        public var initialMapSize: Int
        /// Where the ledger logs.
        public var logger: Logger
        /// Decoded projection records kept in memory between transactions (per projection
        /// table, at most this many; 0 turns the cache off). Each is valid at one LMDB commit
        /// and used only by transactions that see that commit, so writes by other processes
        /// are never missed. Memory: roughly 100–300 bytes per record.
        public var hotCacheEntries: Int
        /// The least time between two loads of a whole table into the hot cache, and the
        /// unanswered questions before one (tests set them low).
        var hotWholeLoadInterval: UInt64 = 1_000_000_000
        var hotWholeLoadAfterMisses = 256
        /// Benchmarks only: `false` folds events without the changelog, to measure what it
        /// costs. Such a ledger's projections are incomplete (`verify` reports it, `rebuild`
        /// makes them whole again); never set it on a ledger anyone reads.
        @_spi(Benchmarks) public var foldsChangelog = true
        /// The event format a new ledger is created with: 2, the default (pseudonyms and
        /// commitments in the hashed bytes, the values in the subject vault beside the log, so
        /// that they can be erased: `erase(email:legalBasis:at:)`; DESIGN.md, "Personal data"),
        /// or 1, the legacy format (personal values inside the hashed bytes). An existing ledger
        /// keeps the one it has. A format-1 ledger opens only when this is 1 — to be read by
        /// `upgrade(to:options:)`, or as a replica of the shared log made before it carried
        /// format 2; otherwise opening it throws ``EventFormatError`` (`upgradeRequired`), naming
        /// `ledger-tool upgrade OLD NEW`.
        public var eventFormat: UInt8 = 2
        /// Where the ledger's metrics go (see the Operating article for their names): nil, the
        /// default, takes `MetricsSystem.factory` when the ledger opens — bootstrap the
        /// metrics system first. The library never bootstraps one.
        public var metricsFactory: (any MetricsFactory)?

        /// Creates options with DOMAIN.md's policy, durable commits and a 64 MiB initial map.
        public init(policy: Policy? = nil, authorizationKey: AuthorizationKey? = nil,
                    previousAuthorizationKeys: [AuthorizationKey] = [], durability: Durability = .durable,
                    initialMapSize: Int = 64 << 20, logger: Logger = Logger(label: "permission-ledger"),
                    hotCacheEntries: Int = 1_000_000, metricsFactory: (any MetricsFactory)? = nil) {
            self.hotCacheEntries = max(0, hotCacheEntries)
            self.metricsFactory = metricsFactory
            self.policy = policy
            self.authorizationKey = authorizationKey
            self.previousAuthorizationKeys = previousAuthorizationKeys
            self.durability = durability
            self.initialMapSize = initialMapSize
            self.logger = logger
        }

        /// Refuses options (and a policy) that their setters made unsound, naming the field.
        public func validate() throws {
            try policy?.validate()
            if hotCacheEntries < 0 { throw InputError(field: "hotCacheEntries", "must not be negative, got \(hotCacheEntries)") }
            if initialMapSize < 1 { throw InputError(field: "initialMapSize", "must be positive, got \(initialMapSize)") }
        }
    }

    /// The event log. Storage internals: a service reads the log through ``inspector``, which
    /// cannot append; the benchmarks, the shared log and the tamper tests use these through
    /// `@_spi(LedgerInternals)`.
    @_spi(LedgerInternals) public let log: EventLog
    /// The LMDB environment.
    @_spi(LedgerInternals) public let environment: LMDBEnvironment
    /// The rules.
    @_spi(LedgerInternals) public let decider: Decider
    /// The fold.
    @_spi(LedgerInternals) public let evolver: Evolver
    let logger: Logger
    let metrics: LedgerMetrics
    let tables: [ProjectionTable: LMDBDatabase]
    let projectionDatabases: ProjectionDatabases
    let committer = Mutex<GroupCommitter?>(nil)
    let ids = EventIDs()
    /// Decoded projection records kept between transactions (nil when turned off).
    let hot: HotCache?
    /// Committed stable ids, shared by this ledger's transactions (nil with the hot cache off).
    let idCache: IDCache?
    /// The ledger's event format (1 or 2; see `Options.eventFormat`).
    public let eventFormat: UInt8
    /// The subject vault beside the log (format 2), in `DIRECTORY/vault`.
    @_spi(LedgerInternals) public let vault: SubjectVault?
    /// What this process read from the vault, kept while its generation stays.
    let personalCache = PersonalCache()

    /// Opens the ledger in `directory`, creating the directory (and its parents, owner-only)
    /// and the ledger's databases when new. Opening never replays history: the projections
    /// are stored. Every failure is a thrown `LedgerError` naming what was wrong:
    /// `InputError` (`invalidInput`, naming the field) when `options` or its policy is unsound;
    /// `LedgerDirectoryError` (`notALedger`) when the directory holds other files and no
    /// ledger; `LMDBError` naming the path and the cause when the directory can't be made
    /// (`notADirectory`, `accessDenied`) or the ledger can't be opened there (`accessDenied`
    /// for a read-only directory, `notALedger` for a `data.mdb` that is not LMDB's);
    /// `PolicyConflict` for another policy than the stored one; `EventFormatError`
    /// (`upgradeRequired`) for a ledger of event format 1 unless `options.eventFormat` is 1.
    public init(directory: String, options: Options = .init()) throws {
        try options.validate()
        try Self.makeDirectory(directory)
        try Self.refuseForeignDirectory(directory)
        environment = try LMDBEnvironment.open(path: directory, options: EnvironmentOptions(
            initialMapSize: options.initialMapSize, durability: options.durability), logger: options.logger)
        log = try EventLog(environment: environment)
        let names = ProjectionTable.allCases.map(\.rawValue)
        let dbs = try environment.openDatabases(names)
        var tables: [ProjectionTable: LMDBDatabase] = [:]
        for (t, d) in zip(ProjectionTable.allCases, dbs) { tables[t] = d }
        self.tables = tables
        projectionDatabases = try ProjectionDatabases(tables)
        eventFormat = try Self.storedEventFormat(options, environment: environment, log: log)
        try Self.refuseLegacyFormat(eventFormat, directory: directory, options: options, environment: environment)
        vault = eventFormat == 2 ? try SubjectVault(directory: directory + "/vault") : nil
        let (policy, rebuildNeeded) = try Self.storedPolicy(options, environment: environment, log: log)
        decider = Decider(policy: policy, authorizationKey: options.authorizationKey,
                          previousAuthorizationKeys: options.previousAuthorizationKeys)
        evolver = Evolver(policy: policy, foldsChangelog: options.foldsChangelog)
        logger = options.logger
        metrics = LedgerMetrics(factory: options.metricsFactory ?? MetricsSystem.factory)
        hot = options.hotCacheEntries > 0
            ? HotCache(limitPerTable: options.hotCacheEntries, wholeLoadInterval: options.hotWholeLoadInterval,
                       wholeLoadAfterMisses: options.hotWholeLoadAfterMisses) : nil
        idCache = options.hotCacheEntries > 0 ? IDCache(limit: options.hotCacheEntries) : nil
        let upgrade = try Self.checkFormat(environment: environment, meta: projectionDatabases[.meta])
        if rebuildNeeded || upgrade {
            if upgrade {
                logger.notice("upgrading the projections to format \(DomainState.format) (versioned, with stable ids and the changelog): rebuilding them from the log")
            } else {
                logger.notice("rebuilding the projections under the adopted policy", metadata: ["policy": "\(policy.fingerprint)"])
            }
            _ = try rebuild()
            if rebuildNeeded { try Self.finishAdoption(environment: environment) }
        }
        try finishPendingErasures()
    }

    /// The key of the projections' format in `p.meta` (see `DomainState.format`).
    static let formatKey = Array("format".utf8)

    /// Whether the stored projections must be rebuilt to this build's format: a new ledger
    /// gets the format now; one with projections and no format was written in format 1
    /// (whole-state snapshots, string keys) and is upgraded by a rebuild — on this first
    /// open, or by `ledger-tool rebuild`; a format newer than this build's is refused.
    private static func checkFormat(environment: LMDBEnvironment, meta: LMDBDatabase) throws -> Bool {
        let stored: [UInt8]?? = try environment.read { txn in try txn.withValue(meta, key: formatKey) { Array($0) } }
        if let stored = stored ?? nil {
            guard stored.count == 1, let version = stored.first else { throw StateError.unknownFormat(stored.first ?? 0) }
            if version > DomainState.format { throw StateError.unknownFormat(version) }
            return version < DomainState.format
        }
        return try environment.write { txn in
            if try txn.get(meta, key: Array("checkpoint".utf8)) != nil { return true }
            try txn.put(meta, key: formatKey, value: [DomainState.format])
            return false
        }
    }

    /// The rules' configurable parts in force (the policy stored with the ledger).
    public var policy: Policy { decider.policy }

    /// The database holding the ledger's settings (not a projection: rebuild leaves it).
    static let settingsDatabase = "settings"

    /// The policy to run under, and whether the projections must be rebuilt under it first:
    /// the stored one; a new ledger (or one made before policies were stored) stores the one
    /// given or the default; another one given is a `PolicyConflict` unless adopted.
    private static func storedPolicy(_ options: Options, environment: LMDBEnvironment, log: EventLog) throws -> (Policy, Bool) {
        guard let db = try environment.openDatabases([settingsDatabase]).first else { throw StateError.missingTable(settingsDatabase) }
        let stored = try environment.read { txn in try txn.withReader { try StoredPolicy.read($0, db) } }
        if let stored, !stored.rebuildPending, options.policy.map({ $0.fingerprint == stored.policy.fingerprint }) ?? true {
            return (stored.policy, false)
        }
        // something to write: decided again inside the write transaction (another process may open it too)
        return try environment.write { txn in
            try txn.withWriter { writer in
                let current = try StoredPolicy.read(writer, db)
                guard var current else {
                    let policy = (options.policy ?? .default).normalised
                    try writer.put(db, key: StoredPolicy.key, value: StoredPolicy(policy: policy, adoptions: []).encoded)
                    return (policy, false)
                }
                if let given = options.policy?.normalised, given.fingerprint != current.policy.fingerprint {
                    guard options.adoptPolicy else {
                        throw PolicyConflict(stored: current.policy.fingerprint, given: given.fingerprint, fields: current.policy.differences(from: given))
                    }
                    current.adoptions.append((try log.head(reader: writer).seq, current.policy.fingerprint))
                    current.policy = given
                    current.rebuildPending = true
                    try writer.put(db, key: StoredPolicy.key, value: current.encoded)
                }
                return (current.policy, current.rebuildPending)
            }
        }
    }

    static let eventFormatKey = Array("eventFormat".utf8)

    /// The ledger's event format: the stored one; for a ledger without one, 1 when it holds
    /// events (written before formats were stored), else the one the options give, stored now.
    private static func storedEventFormat(_ options: Options, environment: LMDBEnvironment, log: EventLog) throws -> UInt8 {
        guard let db = try environment.openDatabases([settingsDatabase]).first else { throw StateError.missingTable(settingsDatabase) }
        func known(_ bytes: [UInt8]) throws -> UInt8 {
            guard bytes.count == 1, let f = bytes.first, f == 1 || f == 2 else {
                throw InputError(field: "eventFormat", "the ledger's event format \(bytes) is not one this build reads (1 or 2)")
            }
            return f
        }
        if let stored = try environment.read({ txn in try txn.get(db, key: eventFormatKey) }) { return try known(stored) }
        guard options.eventFormat == 1 || options.eventFormat == 2 else {
            throw InputError(field: "eventFormat", "must be 1 or 2, got \(options.eventFormat)")
        }
        return try environment.write { txn in
            if let stored = try txn.get(db, key: eventFormatKey) { return try known(stored) }
            let format: UInt8 = try log.head(in: txn).seq > 0 ? 1 : options.eventFormat
            try txn.put(db, key: eventFormatKey, value: [format])
            return format
        }
    }

    /// Marks a ledger that applied events from the shared log (`applyReplicated`).
    static let sharedLogReplicaKey = Array("sharedLogReplica".utf8)

    /// Whether this ledger applied events from the shared log (`applyReplicated`).
    func isSharedLogReplica() throws -> Bool {
        guard let db = try environment.openDatabases([Self.settingsDatabase]).first else { return false }
        return try environment.read { txn in try txn.get(db, key: Self.sharedLogReplicaKey) } != nil
    }

    /// Refuses a ledger of event format 1 with `EventFormatError` unless the options ask for
    /// that format, or the ledger is a replica of the shared log made while it carried format
    /// 1 only (so that every reader of such a replica, `ledger-tool` included, still opens it).
    private static func refuseLegacyFormat(_ format: UInt8, directory: String, options: Options, environment: LMDBEnvironment) throws {
        guard format == 1, options.eventFormat != 1 else { return }
        guard let db = try environment.openDatabases([settingsDatabase]).first else { throw StateError.missingTable(settingsDatabase) }
        if try environment.read({ txn in try txn.get(db, key: sharedLogReplicaKey) }) != nil { return }
        throw EventFormatError(path: directory)
    }

    /// Clears the pending-rebuild mark once the projections were rebuilt under the policy.
    private static func finishAdoption(environment: LMDBEnvironment) throws {
        guard let db = try environment.openDatabases([settingsDatabase]).first else { return }
        try environment.write { txn in
            try txn.withWriter { writer in
                guard var current = try StoredPolicy.read(writer, db) else { return }
                current.rebuildPending = false
                try writer.put(db, key: StoredPolicy.key, value: current.encoded)
            }
        }
    }

    /// Each switch of policy this ledger recorded: the head seq when it was adopted and the
    /// fingerprint of the policy it replaced.
    public func policyAdoptions() throws -> [(seq: UInt64, replaced: String)] {
        guard let db = try environment.openDatabases([Self.settingsDatabase]).first else { return [] }
        return try environment.read { txn in
            try txn.withReader { try StoredPolicy.read($0, db)?.adoptions ?? [] }
        }
    }

}

/// Fresh event ids, time-ordered like RFC 9562's UUID version 7: 48 bits of Unix
/// milliseconds, a 12-bit counter that keeps ids strictly increasing within the process,
/// and 62 random bits from a generator seeded once from the system's randomness (ids must
/// be unique, not secret). Ids that grow with time land at the right edge of the id index's
/// B-tree, so an append touches one leaf page of it instead of a random one.
final class EventIDs: Sendable {
    private struct State {
        /// SplitMix64 state, seeded once from the system's randomness.
        var random: UInt64
        /// The last (milliseconds << 12 | counter) handed out.
        var last: UInt64 = 0
    }

    private let state: Mutex<State>

    init() {
        var system = SystemRandomNumberGenerator()
        state = Mutex(State(random: system.next()))
    }

    func next() -> UUID {
        let now = UInt64(max(0, Date().timeIntervalSince1970 * 1_000)) & 0xFFFF_FFFF_FFFF
        let (stamp, random) = state.withLock { s in
            s.last = max(now << 12, s.last &+ 1)
            s.random &+= 0x9E37_79B9_7F4A_7C15
            var z = s.random
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return (s.last, z ^ (z >> 31))
        }
        // 48-bit milliseconds ‖ version 7 ‖ 12-bit counter, then variant 10 ‖ 62 random bits
        let high = ((stamp >> 12) << 16) | 0x7000 | (stamp & 0xFFF)
        let low = (random & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        var bytes = (high.bigEndian, low.bigEndian)
        return withUnsafeBytes(of: &bytes) { UUID(uuid: $0.loadUnaligned(as: uuid_t.self)) }
    }
}

/// A value handed to other threads by code that guarantees they don't use it at once (each
/// `concurrentPerform` iteration reads its own table; a discarded state is only released).
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: consuming T) { self.value = value }
}

/// One result per `concurrentPerform` iteration, each written by its own iteration.
final class ConcurrentResults<T>: @unchecked Sendable {
    // Slot i is written only by iteration i, and read after concurrentPerform returned; raw
    // memory, so the writes of different slots are not one exclusive access to an array.
    private let slots: UnsafeMutablePointer<T?>
    private let count: Int

    init(count: Int) {
        self.count = count
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil, count: count)
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    func set(_ i: Int, _ value: T) { if i >= 0 && i < count { slots[i] = value } }
    func get(_ i: Int) -> T? { i >= 0 && i < count ? slots[i] : nil }
}

extension PermissionLedger {
    /// Creates `path` and its missing parents (mode 0700) unless it is a directory already;
    /// the error names the path, the part of it at fault and the cause (`errno`).
    static func makeDirectory(_ path: String) throws {
        func make(_ part: String) throws {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: part, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else {
                    throw LMDBError(code: ENOTDIR, operation: "open the ledger at \(path): \(part) is a file, not a directory")
                }
                return
            }
            let parent = (part as NSString).deletingLastPathComponent
            if !parent.isEmpty, parent != part { try make(parent) }
            guard mkdir(part, 0o700) == 0 || errno == EEXIST else {
                let code = errno
                throw LMDBError(code: code, operation: "open the ledger at \(path): creating the directory \(part)")
            }
        }
        try make(path)
    }

    /// Refuses a directory that holds files and no ledger (no `data.mdb`): opening one — a
    /// home directory given by mistake, say — would scatter the ledger's files among them.
    /// The ledger's own files may be there before it: its key files (`ledger-tool init` and
    /// ``AuthorizationKey/readOrCreate(inLedger:)`` write them first), a lock file, the
    /// temporary file of an interrupted creation.
    static func refuseForeignDirectory(_ path: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: path + "/data.mdb") { return }
        guard let names = try? fm.contentsOfDirectory(atPath: path) else { return }
        let foreign = names.sorted().first { name in
            !(name == "lock.mdb" || name == AuthorizationKey.fileName || name.hasPrefix(AuthorizationKey.fileName + ".")
              || (name.hasPrefix(".") && name.hasSuffix(".creating.data.mdb")))
        }
        if let foreign {
            throw LedgerDirectoryError(path: path, errorCode: .notALedger,
                                       message: "\(path) holds \(foreign.debugDescription) and no ledger (no data.mdb): open a ledger's directory, an empty one or a missing one")
        }
    }
}

/// A directory that can't hold the ledger: what is wrong with it.
public struct LedgerDirectoryError: LedgerError, Equatable {
    /// The directory.
    public var path: String
    /// `notALedger`: it holds other files and no ledger.
    public var errorCode: LedgerErrorCode
    /// What is wrong, naming the path and the first foreign file.
    public var message: String
    public var description: String { message }
}
