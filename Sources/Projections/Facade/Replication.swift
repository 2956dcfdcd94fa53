import Foundation
import Ledger

/// A command decided against the local state, with the events it would append already
/// sequenced and chained after the local head — ready to be appended to a **shared log**
/// (see the `SharedLog` package), which accepts them only if its head is still `base`.
public struct PreparedCommand: Sendable, Equatable {
    /// The local head the command was decided at: the shared log must still end there.
    public var base: Head
    /// What `execute` would return (the seqs the events will get, a refusal, a duplicate).
    public var result: ExecutionResult
    /// The events to append, with `seq` and `hash` chained from `base`. Empty for a
    /// duplicate and for a refusal that records nothing.
    public var events: [StoredEvent]
    /// What the events need from the subject vault on every host (format 2): the subjects,
    /// accounts and texts they are the first to name. The host appends these beside the
    /// events and hands both to `applyReplicated(_:personal:)`; nothing was written locally.
    public var personal: [VaultItem] = []
}

/// Commands decided together against the local state (see `PermissionLedger.prepareBatch`).
public struct PreparedBatch: Sendable, Equatable {
    /// The local head they were decided at.
    public var base: Head
    /// One result per command, as `executeBatch` would return.
    public var results: [ExecutionResult]
    /// Every event to append, in order, chained from `base`.
    public var events: [StoredEvent]
    /// What the events need from the subject vault on every host (see `PreparedCommand.personal`).
    public var personal: [VaultItem]

    /// Creates a prepared batch from its parts.
    public init(base: Head, results: [ExecutionResult], events: [StoredEvent], personal: [VaultItem]) {
        self.base = base
        self.results = results
        self.events = events
        self.personal = personal
    }

    /// The batch of one prepared command: its events with the vault items they need.
    public init(_ command: PreparedCommand) {
        self.init(base: command.base, results: [command.result], events: command.events, personal: command.personal)
    }
}

/// Why replicated events could not be applied to a local replica.
public enum ReplicationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The replica holds a different event at `seq` than the shared log: they diverged
    /// (the replica was written outside the shared log, or one of them was altered).
    case diverged(seq: UInt64, local: [UInt8], shared: [UInt8])
    /// An event arrived out of order: the replica expected `expected`.
    case gap(expected: UInt64, got: UInt64)
    /// The event's hash is not what its bytes and the previous hash give.
    case badHash(seq: UInt64)
    /// The event does not apply to the state before it.
    case invalid(seq: UInt64, code: String, message: String)

    /// A stable code.
    public var code: String {
        switch self {
        case .diverged: return "replicaDiverged"
        case .gap: return "replicationGap"
        case .badHash: return "hashMismatch"
        case .invalid: return "invalidReplicatedEvent"
        }
    }

    public var description: String {
        switch self {
        case let .diverged(seq, local, shared):
            return "\(code): at seq \(seq) the replica has hash \(Hex.encode(local)) but the shared log has \(Hex.encode(shared))"
        case let .gap(expected, got): return "\(code): expected seq \(expected), got \(got)"
        case let .badHash(seq): return "\(code): the hash of seq \(seq) does not match its bytes and the previous hash"
        case let .invalid(seq, code, message): return "\(self.code): seq \(seq) does not apply (\(code)): \(message)"
        }
    }
}

extension PermissionLedger {
    /// Decides `command` against the current local state **without appending**: returns the
    /// events it would append, sequenced and hashed after the local head. A command whose
    /// idempotency id is already in the log comes back as a duplicate with its seqs.
    ///
    /// Used by a shared-log host: it appends `events` to the shared log expecting
    /// `base.seq`, then applies them locally with `applyReplicated(_:)`.
    public func prepare(_ command: TimedCommand) throws -> PreparedCommand {
        try environment.read { txn in
            try txn.withReader { reader in
                let state = try DomainState(databases: projectionDatabases, reader: reader, hot: hot, idCache: idCache)
                let head = try log.head(reader: reader)
                guard head.seq == state.lastSeq else { throw StateError.outOfStep(projections: state.lastSeq, log: head.seq) }
                if let id = command.id, let seqs = try knownSeqs(ofCommand: id, reader: reader) {
                    return PreparedCommand(base: head, result: ExecutionResult(seqs: seqs, refusal: nil, wasDuplicate: true), events: [])
                }
                // format 2: the command's new subjects, accounts and texts go into a batch that
                // is never committed here; they travel with the events instead
                let sealer = try vault.map { try PersonalSealer(vault: $0, cache: personalCache, erasing: Set(try pendingErasures(reader))) }
                var last = head
                let (result, events) = try decideAndChain(command, state: state, after: &last, fold: false, sealer: sealer)
                state.publishHot(committed: state.snapshotVersion)
                return PreparedCommand(base: head, result: showingValues([result], sealer)[0], events: events, personal: sealer?.items ?? [])
            }
        }
    }

    /// Decides `command` on `state` and chains the events it produces after `last` (moved to
    /// the last of them); with `fold`, also folds them into `state` (a write view). Shared by
    /// `prepare` and `prepareBatch`.
    func decideAndChain(_ command: TimedCommand, state: DomainState, after last: inout Head, fold: Bool,
                        sealer: PersonalSealer?) throws -> (ExecutionResult, [StoredEvent]) {
        // a command without a time gets the later of now and the shared log's head's
        let at = command.time(after: last.at)
        var command = command
        command.at = at
        if let sealer { command.command = try sealer.tokenize(command.command) }
        let (events, refusal) = try decision(command, state: state)
        if !events.isEmpty, let previous = last.at, at < previous {
            throw LogError.timeWentBackwards(at: at, previous: previous)
        }
        var chained: [StoredEvent] = []
        for (i, e) in events.enumerated() {
            let seq = last.seq + 1
            let id = command.id.map { Self.eventID($0, i) } ?? ids.next()
            var folded = e
            let payload: [UInt8]
            if let sealer { (payload, folded) = try sealer.seal(e, id: id) } else { payload = e.encodedPayload() }
            let canonical = Envelope.canonicalBytes(seq: seq, id: id, kind: e.kind, at: at, payload: payload)
            let hash = Envelope.chainHash(previous: last.hash, canonical: canonical)
            chained.append(StoredEvent(seq: seq, id: id, kind: e.kind, at: at, payload: payload, hash: hash))
            last = Head(seq: seq, hash: hash, at: at)
            if fold { try evolver.evolve(state, folded, seq: seq, at: at) }
        }
        return (ExecutionResult(seqs: chained.map(\.seq), refusal: refusal, wasDuplicate: false), chained)
    }

    /// `prepare` for several commands at once: each is decided on the state the ones before
    /// it leave (their events are folded in a write transaction that is then abandoned, so
    /// nothing is written), and all the events are chained after the local head. A shared-log
    /// host appends them in one PostgreSQL transaction. A command id repeated within the
    /// batch is a duplicate of its first occurrence.
    public func prepareBatch(_ commands: [TimedCommand]) throws -> PreparedBatch {
        struct Abandon: Error { let batch: PreparedBatch }
        do {
            _ = try environment.write { txn in
                try txn.withWriter { writer in
                    // reads through the hot cache; never publishes (the transaction is abandoned)
                    let state = try DomainState(databases: projectionDatabases, reader: writer, hot: hot, idCache: idCache)
                    let base = try log.head(reader: writer)
                    guard base.seq == state.lastSeq else { throw StateError.outOfStep(projections: state.lastSeq, log: base.seq) }
                    let sealer = try vault.map { try PersonalSealer(vault: $0, cache: personalCache, erasing: Set(try pendingErasures(writer))) }
                    var last = base
                    var results: [ExecutionResult] = []
                    var chained: [StoredEvent] = []
                    var inBatch: [UUID: [UInt64]] = [:]
                    for command in commands {
                        if let id = command.id {
                            if let seqs = inBatch[id] {
                                results.append(ExecutionResult(seqs: seqs, refusal: nil, wasDuplicate: true))
                                continue
                            }
                            if let seqs = try knownSeqs(ofCommand: id, reader: writer) {
                                results.append(ExecutionResult(seqs: seqs, refusal: nil, wasDuplicate: true))
                                continue
                            }
                        }
                        let (result, events) = try decideAndChain(command, state: state, after: &last, fold: true, sealer: sealer)
                        chained += events
                        if let id = command.id, !result.seqs.isEmpty { inBatch[id] = result.seqs }
                        results.append(result)
                    }
                    throw Abandon(batch: PreparedBatch(base: base, results: showingValues(results, sealer), events: chained,
                                                       personal: sealer?.items ?? []))
                }
            }
        } catch let abandoned as Abandon {
            return abandoned.batch
        }
        // The closure above always ends by throwing Abandon; this line is never reached.
        throw StateError.readOnly
    }

    /// Applies events taken from a shared log, in one write transaction with the projections:
    /// each must come in seq order right after the local head, carry the hash its bytes and
    /// the previous hash give, and apply to the state before it (as an import is checked).
    /// Events at or below the local head are skipped when they equal the replica's (every
    /// field) and refused as `ReplicationError.diverged` when they do not. All or nothing.
    /// Returns the local head afterwards.
    ///
    /// Format 2: `personal` carries what the events need from the subject vault (the
    /// `personal` of the prepared batch that appended them, or what the shared log holds of
    /// it now): it is adopted into the local vault before the events are committed — a
    /// record the vault already holds is left as it is, an erased one is adopted as erased
    /// — and every personal field of every event must name a subject or account the vault
    /// then holds (`missingPersonalData` otherwise). A `subjectErased` event erases the
    /// subject from the local vault, as `erase` does (finished by the next open after a crash).
    @discardableResult
    public func applyReplicated(_ events: [StoredEvent], personal: [VaultItem] = []) throws -> Head {
        if vault == nil, !personal.isEmpty {
            throw InputError(field: "personal", "a ledger of event format 1 keeps no subject vault: its events carry their values")
        }
        var erasures = false
        let validator = ImportValidator(decider: decider)
        let settings = try environment.openDatabases([Self.settingsDatabase]).first
        var committed: DomainState?
        let head = try environment.write { txn in
            try txn.withWriter { writer in
                var head = try log.head(reader: writer)
                /// An event the replica has must be the very same (every field, not only the hash).
                func checkKnown(_ e: StoredEvent) throws {
                    let local = try log.event(e.seq, reader: writer)
                    if local != e { throw ReplicationError.diverged(seq: e.seq, local: local?.hash ?? [], shared: e.hash) }
                }
                if events.allSatisfy({ $0.seq <= head.seq }) {
                    for e in events { try checkKnown(e) }
                    return head
                }
                let state = try DomainState(databases: projectionDatabases, reader: writer, hot: hot, idCache: idCache)
                guard head.seq == state.lastSeq else { throw StateError.outOfStep(projections: state.lastSeq, log: head.seq) }
                var previous: DomainEvent?
                if head.seq > 0, let last = try log.event(head.seq, reader: writer) {
                    previous = try foldEvent(kind: last.kind, payload: last.payload)
                }
                let sealer = try replicationSealer(events, after: head.seq, personal: personal, writer: writer)
                var newlyErased: [Pseudonym] = []
                for e in events {
                    if e.seq <= head.seq {
                        try checkKnown(e)
                        continue
                    }
                    guard e.seq == head.seq + 1 else { throw ReplicationError.gap(expected: head.seq + 1, got: e.seq) }
                    let canonical = Envelope.canonicalBytes(seq: e.seq, id: e.id, kind: e.kind, at: e.at, payload: e.payload)
                    guard Envelope.chainHash(previous: head.hash, canonical: canonical) == e.hash else { throw ReplicationError.badHash(seq: e.seq) }
                    let event: DomainEvent
                    do {
                        event = try foldEvent(kind: e.kind, payload: e.payload)
                    } catch {
                        throw ReplicationError.invalid(seq: e.seq, code: "invalidPayload", message: "\(error)")
                    }
                    if let sealer { try checkHeld(e, sealer) }
                    if let refusal = try validator.check(event, at: e.at, state: state, previous: previous) {
                        throw ReplicationError.invalid(seq: e.seq, code: refusal.code.rawValue, message: refusal.message)
                    }
                    do {
                        _ = try log.append([NewEvent(id: e.id, kind: e.kind, at: e.at, payload: e.payload)], after: &head, writer: writer)
                    } catch let error as LogError {
                        throw ReplicationError.invalid(seq: e.seq, code: error.code, message: error.description)
                    }
                    try evolver.evolve(state, event, seq: e.seq, at: e.at)
                    // an erasure is made in the local vault after the commit (or by the next open)
                    if case let .subjectErased(subject, _) = event, let p = Pseudonym(hex: subject), let vault,
                       sealer?.isLive(p) ?? false || (try? vault.secret(of: p)) != nil {
                        newlyErased.append(p)
                    }
                    previous = event
                }
                do { try sealer?.commit() } catch let error as VaultError {
                    throw ReplicationError.invalid(seq: head.seq, code: error.errorCode.rawValue, message: error.description)
                }
                if !newlyErased.isEmpty {
                    try setPendingErasures(try pendingErasures(writer) + newlyErased, writer)
                    erasures = true
                }
                if let settings, try writer.withValue(settings, key: Self.sharedLogReplicaKey, { _ in true }) == nil {
                    try writer.put(settings, key: Self.sharedLogReplicaKey, value: [1])
                }
                committed = try state.flush() ? state : nil
                return head
            }
        }
        if let committed { committed.publishHot(committed: committed.snapshotVersion + 1) }
        if erasures { try finishPendingErasures() }
        return head
    }

    /// Format 2: a sealer for the events of `applyReplicated` after `seq`, holding the
    /// vault items they came with. Subjects those events erase give their emails' look-ups
    /// up at once, so that a later registration of the same email in the same events is
    /// adopted as the new subject it is.
    private func replicationSealer(_ events: [StoredEvent], after seq: UInt64, personal: [VaultItem],
                                   writer: TransactionWriter) throws -> PersonalSealer? {
        guard let vault else { return nil }
        // after a failed commit or flush of the vault, the log is not written either
        try vault.refuseWritesAfterFailure()
        var erasing = Set(try pendingErasures(writer))
        let erasedKind = DomainEvent.kind(typeName: "subjectErased")
        for e in events where e.seq > seq && e.kind == erasedKind {
            if case let .subjectErased(subject, _)? = try? foldEvent(kind: e.kind, payload: e.payload), let p = Pseudonym(hex: subject) {
                erasing.insert(p)
            }
        }
        let sealer = try PersonalSealer(vault: vault, cache: personalCache, erasing: erasing)
        do { try sealer.adopt(personal) } catch let error as VaultError {
            throw ReplicationError.invalid(seq: seq + 1, code: error.errorCode.rawValue, message: "a vault item does not apply: \(error.description)")
        }
        return sealer
    }

    /// Every personal field of `e` names a subject or an account the vault or the sealer's
    /// batch holds (`missingPersonalData` otherwise: the replica could never show it).
    private func checkHeld(_ e: StoredEvent, _ sealer: PersonalSealer) throws {
        let (event, fields) = try e.payload.withUnsafeBytes { try SealedPayload.decode(kind: e.kind, payload: $0) }
        for (f, sealed) in zip(event.personalFields, fields) where try !sealer.holds(f.kind, sealed.ref) {
            throw ReplicationError.invalid(seq: e.seq, code: "missingPersonalData",
                                           message: "field \(f.name) names \(f.kind == .account ? "account" : "subject") \(sealed.ref), which neither this replica's vault nor the items it was given hold")
        }
    }

    /// `results` with each refusal's message showing the values its tokens stand for.
    func showingValues(_ results: [ExecutionResult], _ sealer: PersonalSealer?) -> [ExecutionResult] {
        guard let sealer else { return results }
        var shown = resolver(known: sealer.values)
        return results.map { r in
            var r = r
            if let refusal = r.refusal { r.refusal = DomainError(refusal.code, shown.resolveWithin(refusal.message), until: refusal.until) }
            return r
        }
    }
}
