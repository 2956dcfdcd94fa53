import Foundation
import Ledger
import Logging
import PostgresNIO
import Projections

/// A host's view of a ledger whose log is shared in PostgreSQL by several hosts.
///
/// The host's LMDB `PermissionLedger` is a **local replica**: every query is a local read
/// (`local.permissions(…)`, `local.check(…)`, …). Writes go through `execute`, which catches
/// the replica up, decides the command on the local state at head H, and appends the events
/// to PostgreSQL only if the shared head is still H (optimistic concurrency); on a conflict
/// it catches up and decides again. Every rule — the lockout included — therefore holds
/// across hosts exactly as on one host. `follow()` keeps the replica current in the
/// background (woken by `LISTEN/NOTIFY`, polling as a fallback).
///
/// Consistency: a host reads its own writes (`execute` applies the events locally before
/// it returns); another host sees them once its replica reaches the seq — call
/// `waitUntilApplied(seq:)` with a seq a client carries to read after someone else's write.
/// While PostgreSQL is unreachable, reads keep working and `execute` throws
/// `SharedLogError.unavailable`; retried with the same command id, a command takes effect
/// exactly once.
public final class SharedLedger: Sendable {
    /// The local replica (all queries read it).
    public let local: PermissionLedger
    /// The shared log in PostgreSQL.
    public let store: SharedLogStore
    private let location: PostgresLocation
    let options: Options
    private let writer = AsyncLock()
    /// The follower's and `catchUp`'s reads use their own connection, so a catch-up never
    /// waits behind a write transaction.
    private let reader: SharedLogStore

    /// Tuning.
    public struct Options: Sendable {
        /// The ledger's name in PostgreSQL (table prefix and NOTIFY channel).
        public var name: String
        /// How often `follow()` polls when no notification arrives.
        public var pollInterval: Duration
        /// How many times `execute` decides again after losing the race to another host.
        public var maxConflictRetries: Int
        /// After this many lost races in a row, `execute` takes the append lock exclusively
        /// for its next try (fairness: a busy host can't starve a slower one).
        public var escalateAfterConflicts: Int
        /// How many events one catch-up query fetches.
        public var pageSize: Int
        /// Where to log.
        public var logger: Logger
        /// When true, a command stamped before the shared head's time (another host's
        /// clock runs ahead) is stamped with the head's time instead of being refused with
        /// `LogError.timeWentBackwards`. Off by default: as on one host, time never goes
        /// backwards and the caller decides.
        public var clampTimeToHead: Bool
        /// The key the vault items of a format-2 ledger are sealed under in PostgreSQL, the
        /// same on every host (required for a format-2 replica; see `ClusterKey`).
        public var clusterKey: ClusterKey?
        /// Keys this host still opens items with but never seals under: the old key while a
        /// rotation is under way (`rotateClusterKey()`; docs/SCALE-OUT.md).
        public var retiredClusterKeys: [ClusterKey]

        /// Creates options.
        public init(name: String = "ledger", pollInterval: Duration = .seconds(1), maxConflictRetries: Int = 64, escalateAfterConflicts: Int = 2,
                    pageSize: Int = 1_000, logger: Logger = Logger(label: "shared-ledger"), clampTimeToHead: Bool = false,
                    clusterKey: ClusterKey? = nil, retiredClusterKeys: [ClusterKey] = []) {
            self.name = name
            self.pollInterval = pollInterval
            self.maxConflictRetries = maxConflictRetries
            self.escalateAfterConflicts = escalateAfterConflicts
            self.pageSize = pageSize
            self.logger = logger
            self.clampTimeToHead = clampTimeToHead
            self.clusterKey = clusterKey
            self.retiredClusterKeys = retiredClusterKeys
        }
    }

    /// Wraps `local` as a replica of the shared log at `location`. Call `start()` (creates
    /// the tables when missing and catches up) before `execute`.
    /// Throws `SharedLogError.clusterKeyMissing` for a format-2 ledger without
    /// `options.clusterKey`.
    public init(local: PermissionLedger, location: PostgresLocation, options: Options = .init()) throws {
        if local.eventFormat == 2, options.clusterKey == nil { throw SharedLogError.clusterKeyMissing }
        self.local = local
        self.location = location
        self.options = options
        store = try SharedLogStore(location: location, name: options.name, logger: options.logger)
        reader = try SharedLogStore(location: location, name: options.name, logger: options.logger)
    }

    /// Creates the shared tables when missing and catches the replica up.
    @discardableResult
    public func start() async throws -> Head {
        try await store.ensureSchema()
        return try await catchUp()
    }

    /// Pulls every event the replica lacks from PostgreSQL and applies it (same checks and
    /// projections as a local append). Returns the local head afterwards.
    @discardableResult
    public func catchUp() async throws -> Head {
        var head = try local.inspector.head()
        while true {
            // The page starts at the local head's own event, so every catch-up also checks
            // that the replica's head is the shared log's (same seq, same hash).
            let page = try await reader.events(after: head.seq > 0 ? head.seq - 1 : 0, limit: options.pageSize)
            if head.seq > 0, page.first?.seq != head.seq {
                throw SharedLogError.diverged(seq: head.seq, problem: "the replica is ahead of the shared log (written outside it)")
            }
            // the vault items of the appends that start in the page past the local head
            var personal: [VaultItem] = []
            if options.clusterKey != nil, let last = page.last, last.seq > head.seq {
                personal = try opened(try await reader.personal(at: (head.seq + 1)...last.seq))
            }
            do {
                head = try local.applyReplicated(page, personal: personal)
            } catch let error as ReplicationError {
                throw SharedLogError.diverged(seq: page.first?.seq ?? head.seq, problem: error.description)
            }
            if page.count < options.pageSize { return head }
        }
    }

    /// The items `rows` hold, each opened under the key that sealed it (the cluster key or a
    /// retired one).
    func opened(_ rows: [SharedLogStore.PersonalRow]) throws -> [VaultItem] {
        let keys = (options.clusterKey.map { [$0] } ?? []) + options.retiredClusterKeys
        do {
            return try rows.map { row in
                // an erased row opens without a key
                guard row.sealed != nil else {
                    return try ClusterKey.openErased(kind: row.kind, ref: row.ref, subject: row.subject)
                }
                guard let key = keys.first(where: { $0.id == row.keyID }) else {
                    throw SharedLogError.personalData("an item of subject \(Hex.encode(row.subject)) is sealed under cluster key \(Hex.encode(row.keyID)), which this host does not hold (its keys: \(keys.map(\.idHex).joined(separator: ", "))): give it the shared log's current key (a rotation may be under way)")
                }
                return try key.open(kind: row.kind, ref: row.ref, subject: row.subject, sealed: row.sealed, ledger: store.name)
            }
        } catch let error as VaultError {
            throw SharedLogError.personalData(error.message)
        }
    }

    /// `items` sealed under the cluster key for PostgreSQL.
    private func sealed(_ items: [VaultItem]) throws -> [SharedLogStore.PersonalRow] {
        guard !items.isEmpty else { return [] }
        guard let key = options.clusterKey else { throw SharedLogError.clusterKeyMissing }
        return try items.map { item in
            SharedLogStore.PersonalRow(kind: item.kind.rawValue, ref: item.ref, subject: item.subject.bytes,
                                       sealed: try key.seal(item, ledger: store.name), keyID: key.id)
        }
    }

    /// Catches up until the local head reaches `seq` (or `timeout` passes); returns the
    /// local head. Use it to read after a write made on another host.
    @discardableResult
    public func waitUntilApplied(seq: UInt64, timeout: Duration = .seconds(10)) async throws -> Head {
        let deadline = ContinuousClock.now + timeout
        var head = try local.inspector.head()
        while head.seq < seq {
            head = try await catchUp()
            if head.seq >= seq || ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        return head
    }

    /// Executes `command` through the shared log and returns what `PermissionLedger.execute`
    /// would: decided at the shared head, appended there, applied locally before returning.
    ///
    /// - Throws: `SharedLogError.unavailable` when PostgreSQL can't be reached (nothing was
    ///   appended, or — if the connection broke during the commit — retrying with the same
    ///   command id resolves it exactly once); `.tooManyConflicts` when other hosts won the
    ///   race `maxConflictRetries` times in a row.
    public func execute(_ command: TimedCommand) async throws -> ExecutionResult {
        let results = try await executeBatch([command])
        guard let result = results.first else { throw SharedLogError.server("no result for the command") }
        return result
    }

    /// Executes `commands` in order through the shared log with **one** append (one
    /// PostgreSQL transaction and commit flush for all of them): each is decided on the
    /// state the ones before it leave, a refused command does not affect the others, and a
    /// conflict decides the whole batch again. Returns one result per command, as
    /// `PermissionLedger.executeBatch` does.
    public func executeBatch(_ commands: [TimedCommand]) async throws -> [ExecutionResult] {
        if commands.isEmpty { return [] }
        return try await writer.withLock {
            var conflicts = 0
            while true {
                let exclusive = conflicts >= options.escalateAfterConflicts
                if exclusive { try await store.lockAppends() }
                let outcome: Attempt
                do {
                    outcome = try await attempt(commands)
                } catch {
                    if exclusive { try? await store.unlockAppends() }
                    throw error
                }
                if exclusive { try? await store.unlockAppends() }
                switch outcome {
                case let .done(results): return results
                case .conflict:
                    conflicts += 1
                    if conflicts > options.maxConflictRetries { throw SharedLogError.tooManyConflicts(attempts: conflicts) }
                }
            }
        }
    }

    private enum Attempt: Sendable {
        case done([ExecutionResult])
        case conflict
    }

    /// One try: catch up, decide at the local head, append there.
    private func attempt(_ commands: [TimedCommand]) async throws -> Attempt {
        let head = try await catchUp()
        var commands = commands
        if options.clampTimeToHead, var floor = head.at {
            // (a command without a time is stamped at the head's time or later anyway)
            for i in commands.indices {
                guard let at = commands[i].at else { continue }
                if at < floor { commands[i].at = floor } else { floor = at }
            }
        }
        let prepared: PreparedBatch
        do {
            if commands.count == 1 {
                prepared = PreparedBatch(try local.prepare(commands[0]))
            } else {
                prepared = try local.prepareBatch(commands)
            }
        } catch LogError.timeWentBackwards where options.clampTimeToHead {
            // the follower applied a later event between the catch-up and the decision
            return .conflict
        }
        if prepared.events.isEmpty { return .done(prepared.results) }
        let outcome: SharedLogStore.AppendOutcome
        do {
            outcome = try await store.append(prepared.events, after: prepared.base, personal: try sealed(prepared.personal))
        } catch SharedLogError.unavailable(let why) {
            // The commit may or may not have happened: look for the first event.
            if let first = prepared.events.first, let seq = try? await store.seq(forID: first.id) {
                options.logger.info("append outcome recovered after a broken connection", metadata: ["seq": "\(seq)"])
                try await catchUp()
                return .done(prepared.results)
            }
            throw SharedLogError.unavailable(why)
        }
        switch outcome {
        case .appended:
            do {
                try local.applyReplicated(prepared.events, personal: prepared.personal)
            } catch let error as ReplicationError {
                throw SharedLogError.diverged(seq: prepared.base.seq + 1, problem: error.description)
            }
            return .done(prepared.results)
        case let .conflict(actual):
            options.logger.debug("shared head moved", metadata: ["expected": "\(prepared.base.seq)", "actual": "\(actual)"])
            return .conflict
        }
    }

    /// Erases the subject of `email` (R15) through the shared log: decided at the shared head
    /// as `PermissionLedger.erase` decides it, `subjectErased` appended to PostgreSQL in the
    /// transaction that empties the subject's vault items there, then applied locally — which
    /// erases the local vault, as every replica's does when it applies the event. Refusals
    /// append nothing. Retried after a lost race, as `execute` is.
    public func erase(email: String, legalBasis: LegalBasis, at: Timestamp? = nil) async throws -> ErasureResult {
        try await writer.withLock {
            var conflicts = 0
            while true {
                let exclusive = conflicts >= options.escalateAfterConflicts
                if exclusive { try await store.lockAppends() }
                let outcome: ErasureResult?
                do {
                    outcome = try await attemptErasure(email: email, legalBasis: legalBasis, at: at)
                } catch {
                    if exclusive { try? await store.unlockAppends() }
                    throw error
                }
                if exclusive { try? await store.unlockAppends() }
                if let outcome { return outcome }
                conflicts += 1
                if conflicts > options.maxConflictRetries { throw SharedLogError.tooManyConflicts(attempts: conflicts) }
            }
        }
    }

    /// One try of `erase`: nil when another host appended first.
    private func attemptErasure(email: String, legalBasis: LegalBasis, at: Timestamp?) async throws -> ErasureResult? {
        try await catchUp()
        let prepared = try local.prepareErasure(email: email, legalBasis: legalBasis, at: at)
        guard let subject = prepared.result.subject.flatMap(Pseudonym.init(hex:)), !prepared.events.isEmpty else { return prepared.result }
        guard case .appended = try await store.append(prepared.events, after: prepared.base, erasing: subject) else { return nil }
        do {
            try local.applyReplicated(prepared.events)
        } catch let error as ReplicationError {
            throw SharedLogError.diverged(seq: prepared.base.seq + 1, problem: error.description)
        }
        return prepared.result
    }

    /// Keeps the replica current until the task is cancelled: catches up whenever PostgreSQL
    /// notifies an append, and every `pollInterval` in any case (so a lost notification or
    /// a broken listening connection only delays, never stops, replication). Errors while
    /// PostgreSQL is down are logged and retried; `onCaughtUp` is told the local head after
    /// each catch-up. A diverged replica stops following with `SharedLogError.diverged`.
    public func follow(onCaughtUp: @escaping @Sendable (Head) -> Void = { _ in }) async throws {
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let location = location
        let logger = options.logger
        let channel = store.channel
        let poll = options.pollInterval
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // LISTEN on a dedicated connection, reconnecting after failures.
                var id = 1_000_000
                while !Task.isCancelled {
                    id += 1
                    do {
                        let c = try await PostgresConnection.connect(configuration: location.configuration, id: id, logger: logger)
                        defer { Task { try? await c.close() } }
                        try await c.listen(on: channel) { notifications in
                            wake.yield()  // catch up once the listener is in place
                            for try await _ in notifications { wake.yield() }
                        }
                    } catch {
                        logger.debug("LISTEN connection failed; polling until it is back", metadata: ["error": "\(SerialConnection.describe(error))"])
                    }
                    try? await Task.sleep(for: poll)
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    wake.yield()
                    try? await Task.sleep(for: poll)
                }
                wake.finish()
            }
            defer { group.cancelAll() }
            for await _ in wakes {
                if Task.isCancelled { break }
                do {
                    onCaughtUp(try await catchUp())
                } catch let error as SharedLogError {
                    if case .diverged = error { throw error }
                    logger.warning("catch-up failed; retrying", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Compares the replica with the shared log event by event (seq and hash).
    public func compare() async throws -> ReplicaComparison {
        let localHead = try local.inspector.head()
        let shared = try await reader.head()
        var firstMismatch: UInt64?
        var checked: UInt64 = 0
        var after: UInt64 = 0
        let upTo = min(localHead.seq, shared.seq)
        outer: while after < upTo {
            let page = try await reader.events(after: after, limit: options.pageSize)
            if page.isEmpty { break }
            for e in page where e.seq <= upTo {
                let mine = try local.inspector.event(e.seq)
                if mine?.hash != e.hash || mine?.id != e.id {
                    firstMismatch = e.seq
                    break outer
                }
                checked += 1
            }
            after = page.last?.seq ?? upTo
        }
        return ReplicaComparison(localHead: localHead.seq, sharedHead: shared.seq, checked: checked, firstMismatch: firstMismatch)
    }

    /// Closes the PostgreSQL connections (the local ledger stays open).
    public func close() async {
        await store.close()
        await reader.close()
    }
}

/// How a replica compares with the shared log.
public struct ReplicaComparison: Sendable, Equatable {
    /// The replica's head seq.
    public var localHead: UInt64
    /// The shared log's head seq.
    public var sharedHead: UInt64
    /// Events compared equal (seq, id, hash).
    public var checked: UInt64
    /// The first seq where they differ, if any.
    public var firstMismatch: UInt64?

    /// Every event both have is the same, and the replica is not ahead.
    public var consistent: Bool { firstMismatch == nil && localHead <= sharedHead && checked == localHead }
    /// The replica has every event of the shared log.
    public var inStep: Bool { consistent && localHead == sharedHead }
}
