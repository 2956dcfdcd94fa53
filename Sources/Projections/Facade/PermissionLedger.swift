import Crypto
import Foundation
import Ledger
import Logging
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
/// - Queries read a consistent snapshot; `asOf` answers replay the log in memory up to the
///   point asked (cost: one fold of the events before that point, cached for the next
///   question further on).
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
        /// As-of questions store a snapshot of the state every this many events (when they
        /// fold past such a point), so later questions fold at most this many events — while
        /// the log is short enough for `maxSnapshots` of them (see there).
        public var snapshotInterval: UInt64
        /// The most as-of snapshots kept. Each holds the whole state of its time, so without
        /// a bound they would take (events / interval) × the state's size: quadratic in the
        /// history. Once the log holds more than `maxSnapshots` intervals, the spacing doubles
        /// (and again as it grows) and snapshots off the new spacing are deleted: storage
        /// stays within `maxSnapshots` states, and an as-of question folds at most one
        /// spacing (under 2 × events / `maxSnapshots`) after loading one.
        public var maxSnapshots: Int
        /// Decoded projection records kept in memory between transactions (per projection
        /// table, at most this many; 0 turns the cache off). Each is valid at one LMDB commit
        /// and used only by transactions that see that commit, so writes by other processes
        /// are never missed. Memory: roughly 100–300 bytes per record.
        public var hotCacheEntries: Int
        /// The least time between two loads of a whole table into the hot cache, and the
        /// unanswered questions before one (tests set them low).
        var hotWholeLoadInterval: UInt64 = 1_000_000_000
        var hotWholeLoadAfterMisses = 256

        /// Creates options with DOMAIN.md's policy, durable commits and a 64 MiB initial map.
        public init(policy: Policy? = nil, authorizationKey: AuthorizationKey? = nil,
                    previousAuthorizationKeys: [AuthorizationKey] = [], durability: Durability = .durable,
                    initialMapSize: Int = 64 << 20, logger: Logger = Logger(label: "permission-ledger"),
                    snapshotInterval: UInt64 = 50_000, maxSnapshots: Int = 16, hotCacheEntries: Int = 1_000_000) {
            self.snapshotInterval = max(1_000, snapshotInterval)
            self.maxSnapshots = max(1, maxSnapshots)
            self.hotCacheEntries = max(0, hotCacheEntries)
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
            if snapshotInterval < 1 { throw InputError(field: "snapshotInterval", "must be at least 1, got 0") }
            if maxSnapshots < 1 { throw InputError(field: "maxSnapshots", "must be at least 1, got \(maxSnapshots)") }
            if hotCacheEntries < 0 { throw InputError(field: "hotCacheEntries", "must not be negative, got \(hotCacheEntries)") }
            if initialMapSize < 1 { throw InputError(field: "initialMapSize", "must be positive, got \(initialMapSize)") }
        }
    }

    /// The event log.
    public let log: EventLog
    /// The LMDB environment.
    public let environment: Environment
    /// The rules.
    public let decider: Decider
    /// The fold.
    public let evolver: Evolver
    let logger: Logger
    let tables: [ProjectionTable: Database]
    let projectionDatabases: ProjectionDatabases
    private let snapshotInterval: UInt64
    private let maxSnapshots: Int
    private let asOfCache = Mutex<AsOfCache?>(nil)
    private let committer = Mutex<GroupCommitter?>(nil)
    let ids = EventIDs()
    /// Decoded projection records kept between transactions (nil when turned off).
    let hot: HotCache?

    /// Opens the ledger in `directory` (which must exist), creating its databases when new.
    /// Opening never replays history: the projections are stored.
    /// Throws `InputError` naming the field when `options` or its policy is unsound.
    public init(directory: String, options: Options = .init()) throws {
        try options.validate()
        environment = try Environment.open(path: directory, options: EnvironmentOptions(
            initialMapSize: options.initialMapSize, durability: options.durability), logger: options.logger)
        log = try EventLog(environment: environment)
        let names = ProjectionTable.allCases.map(\.rawValue)
        let dbs = try environment.openDatabases(names)
        var tables: [ProjectionTable: Database] = [:]
        for (t, d) in zip(ProjectionTable.allCases, dbs) { tables[t] = d }
        self.tables = tables
        projectionDatabases = try ProjectionDatabases(tables)
        let (policy, rebuildNeeded) = try Self.storedPolicy(options, environment: environment, log: log)
        decider = Decider(policy: policy, authorizationKey: options.authorizationKey,
                          previousAuthorizationKeys: options.previousAuthorizationKeys)
        evolver = Evolver(policy: policy)
        logger = options.logger
        snapshotInterval = options.snapshotInterval
        maxSnapshots = options.maxSnapshots
        hot = options.hotCacheEntries > 0
            ? HotCache(limitPerTable: options.hotCacheEntries, wholeLoadInterval: options.hotWholeLoadInterval,
                       wholeLoadAfterMisses: options.hotWholeLoadAfterMisses) : nil
        if rebuildNeeded {
            logger.notice("rebuilding the projections under the adopted policy", metadata: ["policy": "\(policy.fingerprint)"])
            _ = try rebuild()
            try Self.finishAdoption(environment: environment)
        }
    }

    /// The rules' configurable parts in force (the policy stored with the ledger).
    public var policy: Policy { decider.policy }

    /// The database holding the ledger's settings (not a projection: rebuild leaves it).
    static let settingsDatabase = "settings"

    /// The policy to run under, and whether the projections must be rebuilt under it first:
    /// the stored one; a new ledger (or one made before policies were stored) stores the one
    /// given or the default; another one given is a `PolicyConflict` unless adopted.
    private static func storedPolicy(_ options: Options, environment: Environment, log: EventLog) throws -> (Policy, Bool) {
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

    /// Clears the pending-rebuild mark once the projections were rebuilt under the policy.
    private static func finishAdoption(environment: Environment) throws {
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

    // MARK: - Commands

    /// Decides `command` and appends what it produces, atomically with the projections.
    /// A refusal appends nothing, except R9's recorded failed attempt.
    public func execute(_ command: TimedCommand) throws -> ExecutionResult {
        try executeBatch([command])[0]
    }

    /// Decides and appends `commands` in order in **one** write transaction (one commit,
    /// one `fsync`): each command sees the effects of those before it, and a refused
    /// command does not affect the others. Returns one result per command.
    public func executeBatch(_ commands: [TimedCommand]) throws -> [ExecutionResult] {
        let (results, through) = try executeBatchDeferringSync(commands)
        try environment.makeDurable(through: through)
        return results
    }

    /// `executeBatch` up to the commit, without waiting for the disk: returns the results
    /// and the transaction id `environment.makeDurable(through:)` must reach before the
    /// results may be reported (group commit flushes there while the next batch runs).
    func executeBatchDeferringSync(_ commands: [TimedCommand]) throws -> ([ExecutionResult], UInt64) {
        if commands.isEmpty { return ([], 0) }
        var committed: DomainState?
        let (results, through) = try environment.writeDeferringSync { txn in
            try txn.withWriter { writer in
                let state = try DomainState(databases: projectionDatabases, reader: writer, hot: hot)
                var head = try log.head(reader: writer)
                guard head.seq == state.lastSeq else { throw StateError.outOfStep(projections: state.lastSeq, log: head.seq) }
                let results = try commands.map { try executeOne($0, state: state, head: &head, writer: writer) }
                committed = try state.flush() ? state : nil
                return results
            }
        }
        // the commit wrote, so LMDB's id moved to the write transaction's: publish there
        if let committed { committed.publishHot(committed: committed.snapshotVersion + 1) }
        return (results, through)
    }

    private func executeOne(_ command: TimedCommand, state: DomainState, head: inout Head, writer: TransactionWriter) throws -> ExecutionResult {
        if let id = command.id, let seqs = try knownSeqs(ofCommand: id, reader: writer) {
            return ExecutionResult(seqs: seqs, refusal: try originalRefusal(firstSeq: seqs[0], reader: writer), wasDuplicate: true)
        }
        let (events, refusal) = try decision(command, state: state)
        let seqs = try append(events, at: command.at, commandID: command.id, state: state, head: &head, writer: writer)
        if let refusal {
            logger.debug("command refused", metadata: ["code": "\(refusal.code.rawValue)", "recorded": "\(seqs)"])
        } else {
            logger.trace("command accepted", metadata: ["seqs": "\(seqs)", "types": "\(events.map(\.type))"])
        }
        return ExecutionResult(seqs: seqs, refusal: refusal, wasDuplicate: false)
    }

    /// Executes `command` from async code with **group commit**: concurrent callers' commands
    /// are batched by the single writer into one transaction and one `fsync`; each caller
    /// resumes when its command is durable (with the durable default). Results are those of
    /// `execute`; a refused command in a batch does not affect the others.
    public func submit(_ command: TimedCommand) async throws -> ExecutionResult {
        let c = committer.withLock { c in
            if let c { return c }
            let made = GroupCommitter(ledger: self)
            c = made
            return made
        }
        return try await c.submit(command)
    }

    /// What group commit (`submit`) has done so far in this process: transactions and the
    /// commands they held. For monitoring: an average near 1 under load means callers are
    /// not overlapping.
    public var groupCommitStatistics: GroupCommitStatistics {
        committer.withLock { $0?.currentStatistics } ?? GroupCommitStatistics(batches: 0, commands: 0)
    }

    /// What `command` appends on `state` and its refusal, if refused (a refusal may still
    /// record events: R9's failed attempt).
    func decision(_ command: TimedCommand, state: DomainState) throws -> (events: [DomainEvent], refusal: DomainError?) {
        // bad input, not a refusal: the transaction is abandoned, nothing of the batch is appended
        guard command.at.isInLedgerRange else { throw InputError.outOfRange(command.at) }
        switch try decider.decide(command, state: state) {
        case let .accepted(events): return (events, nil)
        case let .refused(error, recorded): return (recorded, error)
        }
    }

    /// The refusal a command whose first event is `firstSeq` got when it was executed: nil
    /// when it was accepted; for R9's recorded failed attempt (the only refusal that appends),
    /// the refusal that attempt got — a suspension when it started one, worked out with R9's
    /// one function from the account's lockout record as it stood before the attempt (the
    /// events before `firstSeq` folded into a memory state for that one account, read from
    /// the log in the same transaction). A refusal that appended nothing left no trace, so a
    /// retry of it is decided again (DESIGN.md, "Retries").
    func originalRefusal(firstSeq: UInt64, reader: TransactionReader) throws -> DomainError? {
        let failedKind = DomainEvent.kind(typeName: "openLicenseAttemptFailed")
        guard let stored = try log.event(firstSeq, reader: reader), stored.kind == failedKind,
              case let .openLicenseAttemptFailed(account, _, _) = try DomainEvent.decode(kind: stored.kind, payload: stored.payload)
        else { return nil }
        var before = LockoutRecord.empty
        // only this account's failed attempts change its lockout record: fold them, in order
        try log.forEach(from: 1, reader: reader) { e in
            guard e.seq < firstSeq else { return false }
            guard e.kind == failedKind,
                  case let .openLicenseAttemptFailed(a, _, _) = try DomainEvent.decode(kind: e.kind, payload: e.payload), a == account
            else { return true }
            before = before.recordingFailure(at: e.at, policy: decider.policy).record
            return true
        }
        return Decider.attemptRefusal(suspendsUntil: before.recordingFailure(at: stored.at, policy: decider.policy).suspendsUntil)
    }

    /// The seqs of the events of the command with idempotency id `id`, when it is in the log.
    func knownSeqs(ofCommand id: UUID, reader: TransactionReader) throws -> [UInt64]? {
        guard let first = try log.seq(forID: Self.eventID(id, 0), reader: reader) else { return nil }
        var seqs = [first]
        var i = 1
        while let next = try log.seq(forID: Self.eventID(id, i), reader: reader) {
            seqs.append(next)
            i += 1
        }
        return seqs
    }

    /// The id of the `index`-th event of a command with idempotency id `id`: the command's
    /// id for its first event; for the others a name-based UUID (version 8, RFC 9562) made of
    /// the first 16 bytes of SHA-256("permission-ledger event id" ‖ id ‖ index), so no id a
    /// caller chooses can equal another command's derived id short of a SHA-256 preimage.
    /// (Ledgers written before this derivation used an XOR of the id: a retry of such a
    /// command still finds its first event, and so is still never appended twice.)
    static func eventID(_ id: UUID, _ index: Int) -> UUID {
        guard index > 0 else { return id }
        var hasher = SHA256()
        hasher.update(data: Array("permission-ledger event id".utf8))
        withUnsafeBytes(of: id.uuid) { hasher.update(bufferPointer: $0) }
        withUnsafeBytes(of: UInt64(index).bigEndian) { hasher.update(bufferPointer: $0) }
        var bytes = Array(hasher.finalize().prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80  // version 8
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        return bytes.withUnsafeBytes { UUID(uuid: $0.loadUnaligned(as: uuid_t.self)) }
    }

    private func append(_ events: [DomainEvent], at: Timestamp, commandID: UUID?, state: DomainState,
                        head: inout Head, writer: TransactionWriter) throws -> [UInt64] {
        if events.isEmpty { return [] }
        let new = events.enumerated().map { i, e in
            NewEvent(id: commandID.map { Self.eventID($0, i) } ?? ids.next(), kind: e.kind, at: at, payload: e.encodedPayload())
        }
        guard head.seq == state.lastSeq else { throw LogError.conflict(expected: state.lastSeq, actual: head.seq) }
        let seqs = try log.append(new, after: &head, writer: writer)
        for (event, seq) in zip(events, seqs) { try evolver.evolve(state, event, seq: seq, at: at) }
        return seqs
    }

    /// Appends events from outside (an export) all-or-nothing: each must parse, keep its
    /// claimed `seq`/`hash` when given, and apply cleanly to the state before it.
    @discardableResult
    public func importEvents(_ events: [ImportedEvent]) throws -> [UInt64] {
        var seqs: [UInt64] = []
        try importEvents(from: {
            seqs.removeAll()
            var iterator = events.makeIterator()
            return { iterator.next() }
        }, appended: { seq, _ in seqs.append(seq) })
        return seqs
    }

    /// Streaming import, all-or-nothing in one write transaction. `source` makes a fresh
    /// iterator over the events (it is called again if the transaction must be retried after
    /// the map grew); `appended` is told each event's seq and whether it is new (false for a
    /// known id, which is skipped).
    /// Returns the number of events read.
    @discardableResult
    public func importEvents(from source: () -> (() throws -> ImportedEvent?), appended: (UInt64, Bool) -> Void = { _, _ in }) throws -> Int {
        let validator = ImportValidator(decider: decider)
        return try environment.write { txn in
            try txn.withWriter { writer in
                let state = try DomainState(databases: projectionDatabases, reader: writer)
                let next = source()
                var previous: DomainEvent?
                var index = 0
                while let e = try next() {
                    index += 1
                    if let known = try log.seq(forID: e.id, reader: writer) {
                        appended(known, false)
                        continue
                    }
                    if let error = try validator.check(e.event, at: e.at, state: state, previous: previous) {
                        throw ImportError(index: index, message: "\(e.event.type) does not apply: \(error.code.rawValue): \(error.message)", code: error.code.rawValue)
                    }
                    let expected = state.lastSeq + 1
                    if let claimed = e.seq, claimed != expected {
                        throw ImportError(index: index, message: "claims seq \(claimed) but would be stored at seq \(expected)")
                    }
                    let seq = try log.append([NewEvent(id: e.id, kind: e.event.kind, at: e.at, payload: e.event.encodedPayload())],
                                             expectedHead: state.lastSeq, writer: writer)[0]
                    if let claimed = e.hash, let stored = try log.event(seq, reader: writer), stored.hash != claimed {
                        throw ImportError(index: index, message: "hash \(Hex.encode(claimed)) does not match the chain's \(Hex.encode(stored.hash))")
                    }
                    try evolver.evolve(state, e.event, seq: seq, at: e.at)
                    appended(seq, true)
                    previous = e.event
                }
                try state.flush()
                return index
            }
        }
    }

    // MARK: - Reading

    /// Runs `body` on the state as of `asOf` (the live projections when nil or at/after
    /// the head).
    ///
    /// A past state is folded in memory from the best base: the state of the previous as-of
    /// question when it lies before the point and within one snapshot interval, else the
    /// nearest stored snapshot at or before the point, else the empty state. Folding past a
    /// multiple of the snapshot spacing stores a snapshot there (see `Options.maxSnapshots`).
    /// Cost: loading a snapshot (proportional to the state's size) plus folding at most one
    /// spacing of events.
    public func withState<R>(asOf: AsOf? = nil, _ body: (DomainState) throws -> R) throws -> R {
        if let asOf {
            let target = try resolve(asOf)
            let head = try log.head().seq
            if target < head {
                let spacing = snapshotSpacing(head: head)
                return try asOfCache.withLock { cache in
                    var state: DomainState
                    if let cached = cache?.state, cached.lastSeq <= target, target - cached.lastSeq < spacing {
                        state = cached
                    } else {
                        state = try nearestSnapshot(atOrBefore: target) ?? DomainState()
                        if let cached = cache?.state, cached.lastSeq <= target, cached.lastSeq > state.lastSeq { state = cached }
                    }
                    cache = AsOfCache(state: state)
                    try foldStoringSnapshots(into: state, upTo: target, spacing: spacing)
                    return try body(state)
                }
            }
        }
        return try environment.read { txn in
            try txn.withReader { reader in
                let state = try DomainState(databases: projectionDatabases, reader: reader, hot: hot)
                let result = try body(state)
                state.publishHot(committed: state.snapshotVersion)
                return result
            }
        }
    }

    /// The distance between as-of snapshots for a log of `head` events: the interval,
    /// doubled until at most `maxSnapshots` fit.
    func snapshotSpacing(head: UInt64) -> UInt64 {
        var spacing = snapshotInterval
        while head / spacing > UInt64(maxSnapshots), spacing <= UInt64.max / 4 { spacing *= 2 }
        return spacing
    }

    /// The stored snapshot with the largest seq ≤ `target` (snapshots sit at multiples of
    /// the interval), loaded into a memory state.
    func nearestSnapshot(atOrBefore target: UInt64) throws -> DomainState? {
        guard let db = tables[.snapshots] else { return nil }
        var multiple = target / snapshotInterval
        return try environment.read { txn in
            while multiple > 0 {
                if let state = try txn.withValue(db, key: BigEndianKey.bytes(multiple * snapshotInterval), { try DomainState.fromStoredSnapshot($0) }) {
                    return state
                }
                multiple -= 1
            }
            return nil
        }
    }

    /// Folds to `target`, storing a snapshot at each multiple of `spacing` passed that has
    /// none yet; snapshots off that spacing (left from a shorter log) are deleted then.
    func foldStoringSnapshots(into state: DomainState, upTo target: UInt64, spacing: UInt64) throws {
        while state.lastSeq < target {
            let next = (state.lastSeq / spacing + 1) * spacing
            guard next <= target else {
                try fold(into: state, upTo: target)
                return
            }
            let before = state.lastSeq
            try fold(into: state, upTo: next)
            if state.lastSeq == next, let db = tables[.snapshots] {
                let bytes = state.storedSnapshot()
                try environment.write { txn in
                    if try txn.get(db, key: BigEndianKey.bytes(next)) == nil {
                        try txn.put(db, key: BigEndianKey.bytes(next), value: bytes)
                    }
                    try txn.withWriter { writer in
                        var offGrid: [[UInt8]] = []
                        try writer.scan(db) { key, _ in
                            if let seq = BigEndianKey.value(key), seq % spacing != 0 { offGrid.append(Array(key)) }
                            return true
                        }
                        for key in offGrid { _ = try writer.delete(db, key: key) }
                    }
                }
            }
            if state.lastSeq == before { return }  // the log ends here
        }
    }

    /// The seq an `AsOf` stands for: the seq itself, or for a time the last event with
    /// `at` at or before it (0 when none), found by binary search over the log's times.
    public func resolve(_ asOf: AsOf) throws -> UInt64 {
        switch asOf {
        case let .seq(n): return n
        case let .time(t): return try environment.read { txn in try log.lastSeq(atOrBefore: t, in: txn) }
        }
    }

    /// Folds events after the state's last seq, up to `target`, into a memory state;
    /// `progress` is told the seq reached every 16,384 events.
    func fold(into state: DomainState, upTo target: UInt64 = .max, progress: ((UInt64) -> Void)? = nil) throws {
        guard state.lastSeq < target else { return }
        if state.isMemory { return try foldOnTwoCores(into: state, upTo: target, progress: progress) }
        try environment.read { txn in
            try log.forEach(from: state.lastSeq + 1, in: txn) { view in
                if view.seq > target { return false }
                let event = try DomainEvent.decode(kind: view.kind, payload: view.payload)
                try evolver.evolve(state, event, seq: view.seq, at: view.at)
                if view.seq & 0x3FFF == 0 { progress?(view.seq) }
                return true
            }
        }
    }

    /// Events per step of a parallel fold.
    static let foldChunk = 4_096

    /// `fold` for a memory state, on two threads, in chunks of `foldChunk` events: while
    /// chunk k is folded — into the grants (`EvolveParts.grants`) on one thread and into the
    /// other projections on the other, which never read each other — the first thread also
    /// decodes chunk k + 1 and the second reads chunk k + 2 from the log (views into the
    /// map, valid while the read transaction lasts). Each table sees the same changes in the
    /// same order as in a single fold, so the state is the same.
    private func foldOnTwoCores(into state: DomainState, upTo target: UInt64, progress: ((UInt64) -> Void)?) throws {
        state.openAllTables()
        let shared = UncheckedBox(state)
        let evolver = evolver, log = log
        try environment.read { txn in
            try txn.withReader { reader in
                let source = UncheckedBox(reader)
                var raw = try Self.readChunk(log, source.value, from: state.lastSeq + 1, upTo: target)
                var ready = try Self.decodeChunk(raw)
                var next = (raw.last?.seq ?? state.lastSeq) + 1
                raw = try Self.readChunk(log, source.value, from: next, upTo: target)
                while let last = ready.last?.seq {
                    if let l = raw.last?.seq { next = l + 1 }
                    let toFold = UncheckedBox(ready), toDecode = UncheckedBox(raw), from = next
                    let decoded = ConcurrentResults<[(event: DomainEvent, seq: UInt64, at: Timestamp)]>(count: 1)
                    let read = ConcurrentResults<[(seq: UInt64, kind: UInt16, at: Timestamp, payload: UnsafeRawBufferPointer)]>(count: 1)
                    let failures = ConcurrentResults<any Error>(count: 2)
                    DispatchQueue.concurrentPerform(iterations: 2) { i in
                        do {
                            if i == 0 {
                                for e in toFold.value { try evolver.evolve(shared.value, e.event, seq: e.seq, at: e.at, parts: [.people, .agreements, .position]) }
                                decoded.set(0, try Self.decodeChunk(toDecode.value))
                            } else {
                                for e in toFold.value { try evolver.evolve(shared.value, e.event, seq: e.seq, at: e.at, parts: .grants) }
                                read.set(0, try Self.readChunk(log, source.value, from: from, upTo: target))
                            }
                        } catch {
                            failures.set(i, error)
                        }
                    }
                    for i in 0 ..< 2 { if let failure = failures.get(i) { throw failure } }
                    progress?(last)
                    ready = decoded.get(0) ?? []
                    raw = read.get(0) ?? []
                }
            }
        }
    }

    /// Up to `foldChunk` stored events from seq `from`, none past `target`, as views into the
    /// map (valid while `reader`'s transaction lasts).
    private static func readChunk(_ log: EventLog, _ reader: TransactionReader, from: UInt64, upTo target: UInt64) throws
        -> [(seq: UInt64, kind: UInt16, at: Timestamp, payload: UnsafeRawBufferPointer)] {
        var raw: [(seq: UInt64, kind: UInt16, at: Timestamp, payload: UnsafeRawBufferPointer)] = []
        guard from <= target else { return raw }
        raw.reserveCapacity(foldChunk)
        try log.forEach(from: from, reader: reader) { view in
            if view.seq > target { return false }
            raw.append((view.seq, view.kind, view.at, view.payload))
            return raw.count < foldChunk
        }
        return raw
    }

    /// The domain events of a chunk read by `readChunk`.
    private static func decodeChunk(_ raw: [(seq: UInt64, kind: UInt16, at: Timestamp, payload: UnsafeRawBufferPointer)]) throws
        -> [(event: DomainEvent, seq: UInt64, at: Timestamp)] {
        var out: [(event: DomainEvent, seq: UInt64, at: Timestamp)] = []
        out.reserveCapacity(raw.count)
        for v in raw { out.append((try DomainEvent.decode(kind: v.kind, payload: v.payload), v.seq, v.at)) }
        return out
    }

    /// The My Permissions view of `email`.
    public func permissions(email: String, asOf: AsOf? = nil, includeInactive: Bool = false) throws -> PermissionsView {
        let e = Normalize.email(email) ?? email.lowercased()
        return try withState(asOf: asOf) { try $0.permissionsView(email: e, includeInactive: includeInactive) }
    }

    /// The My Permissions view of `account`: its validated business email's, or a refusal
    /// (`notRegistered`, `emailNotValidated`).
    public func permissions(account: String, asOf: AsOf? = nil, includeInactive: Bool = false) throws -> Result<PermissionsView, DomainError> {
        let a = Normalize.account(account) ?? account
        return try withState(asOf: asOf) { state in
            guard let record = try state.account(a) else { return .failure(DomainError(.notRegistered, "account '\(a)' is not registered")) }
            guard record.validated else {
                return .failure(DomainError(.emailNotValidated, "account '\(a)' has not validated \(record.email); nothing is visible before validation"))
            }
            return .success(try state.permissionsView(email: record.email, includeInactive: includeInactive))
        }
    }

    /// Whether `account` may do `action` on `licensingId`.
    public func check(account: String, action: Action, licensingId: String, benefit: SABenefit? = nil, asOf: AsOf? = nil) throws -> CheckResult {
        let a = Normalize.account(account) ?? account
        // at the head, from the hot cache alone when it is at the last commit and holds
        // every record the check reads (no transaction, one lock)
        if asOf == nil, let hot, let answer = try hot.withFacts(at: environment.lastCommitID, {
            try checkPermission(facts: $0, account: a, licensingId: licensingId, action: action, benefit: benefit)
        }) {
            return answer
        }
        return try withState(asOf: asOf) { try $0.check(account: a, licensingId: licensingId, action: action, benefit: benefit) }
    }

    /// The lockout status of `account` at `at` (the events up to that time).
    public func lockout(account: String, at: Timestamp) throws -> LockoutStatus {
        try lockout(account: account, asOf: .time(at), now: at)
    }

    /// The lockout status of `account` at a point (DOMAIN.md §6): R9 evaluated at the
    /// point's time — the time given, or for `.seq(N)` the time of event N — over the events
    /// up to the point; with no point, at `now` over every event. An account never
    /// registered is not an error: it is not locked and has no failures.
    public func lockout(account: String, asOf point: AsOf?, now: Timestamp) throws -> LockoutStatus {
        let a = Normalize.account(account) ?? account
        let at: Timestamp
        switch point {
        case nil: at = now
        case let .time(t)?: at = t
        // a seq past the head means the head; seq 0 is the empty state, where nothing counts whenever asked
        case let .seq(n)?: at = try log.event(min(n, try log.head().seq))?.at ?? now
        }
        return try withState(asOf: point) { try $0.lockoutStatus(account: a, at: at, policy: decider.policy) }
    }

    /// R14: the effective administrators of `licensingId`, answered only to an account
    /// that administers it or an ancestor (`forbidden` otherwise).
    public func administrators(of licensingId: String, askedBy account: String) throws -> Result<[AdministratorEntry], DomainError> {
        let a = Normalize.account(account) ?? account
        return try withState { state in
            let email: String
            do { email = try decider.actor(a, state) } catch let e as DomainError { return .failure(e) }
            guard try state.agreement(licensingId) != nil else {
                return .failure(DomainError(.unknownLicensingId, "Licensing ID '\(licensingId)' is not recorded"))
            }
            var allowed = try state.isAdministrator(email, licensingId)
            for ancestor in try state.ancestors(of: licensingId) where !allowed {
                allowed = try state.isAdministrator(email, ancestor)
            }
            guard allowed else {
                return .failure(DomainError(.forbidden, "for privacy, only an administrator of \(licensingId) or of a parent agreement may see its administrators; submit a permission request instead"))
            }
            return .success(try state.administrators(of: licensingId))
        }
    }

    /// The effective administrators of `licensingId` for an operator (no R14 check), at a
    /// point; `unknownLicensingId` when the ID is not recorded there.
    public func administrators(of licensingId: String, asOf: AsOf? = nil) throws -> Result<[AdministratorEntry], DomainError> {
        try withState(asOf: asOf) { state in
            guard try state.agreement(licensingId) != nil else { return .failure(Self.unknown(licensingId, state)) }
            return .success(try state.administrators(of: licensingId))
        }
    }

    /// Every role of `email` on `licensingId` with the events behind it, at a point;
    /// `unknownLicensingId` when the ID is not recorded there. An email never seen is not
    /// an error: it has no roles.
    public func explain(email: String, licensingId: String, asOf: AsOf? = nil) throws -> Result<Explanation, DomainError> {
        let e = Normalize.email(email) ?? email.lowercased()
        return try withState(asOf: asOf) { state in
            guard try state.agreement(licensingId) != nil else { return .failure(Self.unknown(licensingId, state)) }
            return .success(try state.explain(email: e, licensingId: licensingId))
        }
    }

    /// The refusal for a Licensing ID not recorded in `state`.
    static func unknown(_ licensingId: String, _ state: DomainState) -> DomainError {
        DomainError(.unknownLicensingId, "Licensing ID '\(licensingId)' is not recorded" + (state.lastSeq > 0 ? " as of seq \(state.lastSeq)" : " (the ledger is empty at that point)"))
    }

    /// A permission request.
    public func request(_ id: String) throws -> RequestRecord? {
        try withState { try $0.request(id) }
    }

    /// Permission requests, optionally only those with `status` and/or routed to
    /// `administrator` (an email), sorted by request id.
    public func requests(status: RequestStatus? = nil, routedTo administrator: String? = nil) throws -> [RequestView] {
        guard let db = tables[.requests] else { return [] }
        let admin = administrator.map { Normalize.email($0) ?? $0.lowercased() }
        var out: [RequestView] = []
        try environment.read { txn in
            try txn.scan(db) { key, value in
                let record = try RequestRecord.decode(bytes: value)
                if (status == nil || record.status == status) && (admin == nil || record.routedTo.contains(admin ?? "")) {
                    out.append(RequestView(requestId: String(decoding: key, as: UTF8.self), record: record))
                }
                return true
            }
        }
        return out
    }

    /// Stored events with `from ≤ seq ≤ to` and, when given, `fromTime ≤ at ≤ toTime`,
    /// decoded, that pass `filter`. Times never go backwards, so the time bounds become seq
    /// bounds by binary search: only the events inside are read.
    public func events(from: UInt64 = 1, to: UInt64 = .max, fromTime: Timestamp? = nil, toTime: Timestamp? = nil,
                       filter: (LedgerEvent) -> Bool = { _ in true }) throws -> [LedgerEvent] {
        var first = max(from, 1), last = to
        if let fromTime { first = max(first, try resolve(.time(fromTime.subtracting(seconds: 1))) + 1) }
        if let toTime { last = min(last, try resolve(.time(toTime))) }
        var out: [LedgerEvent] = []
        guard first <= last else { return out }
        try forEachEvent(from: first, to: last) { e in
            if filter(e) { out.append(e) }
            return true
        }
        return out
    }

    /// Visits decoded events in seq order until `body` returns false (streaming).
    public func forEachEvent(from: UInt64 = 1, to: UInt64 = .max, _ body: (LedgerEvent) throws -> Bool) throws {
        try environment.read { txn in
            try log.forEach(from: from, in: txn) { view in
                if view.seq > to { return false }
                let event: DomainEvent
                do { event = try DomainEvent.decode(kind: view.kind, payload: view.payload) } catch {
                    throw LogError.corrupt(seq: view.seq, reason: "\(error)")
                }
                return try body(LedgerEvent(seq: view.seq, id: view.id, at: view.at, event: event, hash: Array(view.hash)))
            }
        }
    }

    /// Counts by type, the head and the data file's size.
    public func stats() throws -> LedgerStats {
        var byType: [String: UInt64] = [:]
        var count: UInt64 = 0
        try environment.read { txn in
            try log.forEach(from: 1, in: txn) { view in
                byType[DomainEvent.typeName(kind: view.kind) ?? "kind\(view.kind)", default: 0] += 1
                count += 1
                return true
            }
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: environment.path + "/data.mdb")[.size] as? Int) ?? nil
        return LedgerStats(events: count, byType: byType, head: try log.head(), fileBytes: size ?? environment.usedBytes)
    }

    // MARK: - Integrity

    /// Refolds every projection from the log alone and makes the stored projections equal to
    /// it, in one write transaction (readers keep seeing the old projections until it
    /// commits); only entries that differ are written or removed. Stored as-of snapshots are
    /// dropped.
    /// `progress` is told the seq reached now and then.
    @discardableResult
    public func rebuild(progress: ((UInt64) -> Void)? = nil) throws -> RebuildReport {
        let start = DispatchTime.now().uptimeNanoseconds
        let state = try stateSizedLikeStored()
        let names = state.memoryTables.map(\.table)
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
                for (table, diff) in zip(names, diffs) {
                    guard let db = tables[table] else { throw StateError.missingTable(table.rawValue) }
                    changed += try apply(diff, to: db, writer: writer)
                }
                // snapshots are caches of past states: dropped, made again by as-of questions
                if let db = tables[.snapshots] { try writer.clear(db) }
            }
        }
        asOfCache.withLock { $0 = nil }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        logger.debug("rebuilt projections", metadata: ["events": "\(events)", "seconds": "\(seconds)", "changed": "\(changed)"])
        return RebuildReport(events: events, seconds: seconds, changedEntries: changed)
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

    /// An empty memory state with room in each table for as many entries as the stored
    /// projection holds, so a fold from the first event does not rehash as tables grow.
    private func stateSizedLikeStored() throws -> DomainState {
        let state = DomainState()
        state.openAllTables()
        try environment.read { txn in
            for t in state.memoryTables { if let db = tables[t.table] { t.reserve(try txn.count(db)) } }
        }
        return state
    }

    /// How each stored projection database differs from the memory `state`, compared on
    /// every core, each in a read transaction; nil when the log's head is not the state's
    /// position (a writer appended after the fold).
    private func differences(from state: DomainState) throws -> [TableDifferences]? {
        let memoryTables = state.memoryTables
        let work = UncheckedBox(memoryTables), position = state.lastSeq
        let diffs = ConcurrentResults<TableDifferences>(count: memoryTables.count)
        let failures = ConcurrentResults<any Error>(count: memoryTables.count)
        DispatchQueue.concurrentPerform(iterations: memoryTables.count) { i in
            do {
                let t = work.value[i]
                guard let db = tables[t.table] else { throw StateError.missingTable(t.table.rawValue) }
                try environment.read { txn in
                    try txn.withReader { reader in
                        if try log.head(reader: reader).seq == position { diffs.set(i, try t.differences(db, reader)) }
                    }
                }
            } catch {
                failures.set(i, error)
            }
        }
        for i in memoryTables.indices { if let failure = failures.get(i) { throw failure } }
        var result: [TableDifferences] = []
        for i in memoryTables.indices {
            guard let diff = diffs.get(i) else { return nil }
            result.append(diff)
        }
        return result
    }

    /// Writes what makes `db` equal its memory table: only what differs, so a rebuild of
    /// sound projections writes nothing (no page is copied, the file does not grow), and the
    /// result is the same as clearing the database and writing every entry. Into an empty
    /// database the entries are appended in key order. Returns the entries written or removed.
    private func apply(_ diff: TableDifferences, to db: Database, writer: TransactionWriter) throws -> Int {
        let empty = diff.removals.isEmpty ? try writer.count(db) == 0 : false
        for key in diff.removals { _ = try writer.delete(db, key: key) }
        for (k, v) in diff.puts { try writer.put(db, key: k, value: v, flags: empty ? .append : []) }
        return diff.removals.count + diff.puts.count
    }

    /// Checks the hash chain and seq continuity, then that the stored projections equal a
    /// fresh replay of the log, byte for byte. `progress` is told the seq replayed now and then.
    public func verify(progress: ((UInt64) -> Void)? = nil) throws -> LedgerVerifyReport {
        let logReport = try log.verify()
        guard logReport.ok else { return LedgerVerifyReport(log: logReport, projectionProblem: nil) }
        let state = try stateSizedLikeStored()
        var snapshotSeqs: [UInt64] = []
        let snapshots = tables[.snapshots]
        if let db = snapshots {
            try environment.read { txn in
                try txn.scan(db) { key, _ in
                    if let seq = BigEndianKey.value(key) { snapshotSeqs.append(seq) }
                    return true
                }
            }
        }
        for seq in snapshotSeqs {
            guard let db = snapshots else { break }
            try fold(into: state, upTo: seq, progress: progress)
            let stored: [UInt8]? = try environment.read { txn in
                try txn.withValue(db, key: BigEndianKey.bytes(seq)) { try? DomainState.snapshotPlainBytes(stored: $0) } ?? nil
            }
            if state.lastSeq != seq || stored != state.snapshotBytes() {
                return LedgerVerifyReport(log: logReport, projectionProblem: "the stored snapshot at seq \(seq) differs from a replay; run rebuild")
            }
        }
        // the projections are compared at the point the fold reached: a writer that appended
        // meanwhile is caught up with (each table's read transaction checks the head)
        var diffs: [TableDifferences] = []
        for _ in 0 ..< 100 {
            try fold(into: state, progress: progress)
            guard let found = try differences(from: state) else { continue }
            diffs = found
            break
        }
        let names = state.memoryTables.map(\.table)
        Self.freeInBackground(consume state)
        guard diffs.count == names.count else {
            return LedgerVerifyReport(log: logReport, projectionProblem: "the log kept growing while verify compared the projections; run it again")
        }
        var problem: String?
        for (table, diff) in zip(names, diffs) where !diff.isEmpty {
            let name = table.rawValue
            if let key = diff.removals.first {
                problem = "\(name) holds an entry a replay does not produce (key \(String(decoding: key, as: UTF8.self).debugDescription))"
            } else if let key = diff.firstChanged {
                problem = "\(name) differs from a replay at key \(String(decoding: key, as: UTF8.self).debugDescription)"
            } else {
                problem = "\(name) lacks \(diff.missing) entries a replay produces"
            }
            break
        }
        return LedgerVerifyReport(log: logReport, projectionProblem: problem)
    }
}

/// Fresh event ids, time-ordered like RFC 9562's UUID version 7: 48 bits of Unix
/// milliseconds, a 12-bit counter that keeps ids strictly increasing within the process,
/// and 62 random bits from a generator seeded once from the system's randomness (ids must
/// be unique, not secret). Ids that grow with time land at the right edge of the id index's
/// B-tree, so an append touches one leaf page of it instead of a random one.
final class EventIDs: Sendable {
    private struct State {
        var rng: SeededRandom
        /// The last (milliseconds << 12 | counter) handed out.
        var last: UInt64 = 0
    }

    private let state: Mutex<State>

    init() {
        var system = SystemRandomNumberGenerator()
        state = Mutex(State(rng: SeededRandom(seed: system.next())))
    }

    func next() -> UUID {
        let now = UInt64(max(0, Date().timeIntervalSince1970 * 1_000)) & 0xFFFF_FFFF_FFFF
        let (stamp, random) = state.withLock { s in
            s.last = max(now << 12, s.last &+ 1)
            return (s.last, s.rng.next())
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

/// The memory state of the last as-of question, reused when the next one is further on.
struct AsOfCache: @unchecked Sendable {
    // Only touched under `PermissionLedger.asOfCache`'s lock.
    let state: DomainState
}
