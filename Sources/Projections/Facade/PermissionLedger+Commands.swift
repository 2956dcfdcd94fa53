import Crypto
import Foundation
import Ledger
import Logging

// Commands: deciding, appending and group commit (see DESIGN.md).

extension PermissionLedger {
    /// Decides `command` and appends what it produces, atomically with the projections.
    /// A refusal appends nothing, except R9's recorded failed attempt.
    @_disfavoredOverload
    public func execute(_ command: TimedCommand) throws -> ExecutionResult {
        try executeBatch([command])[0]
    }

    /// Decides and appends `commands` in order in **one** write transaction (one commit,
    /// one `fsync`): each command sees the effects of those before it, and a refused
    /// command does not affect the others. Returns one result per command.
    @_disfavoredOverload
    public func executeBatch(_ commands: [TimedCommand]) throws -> [ExecutionResult] {
        let (results, through) = try executeBatchDeferringSync(commands)
        try makeDurable(through: through)
        metrics.record(results)
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
                let state = try DomainState(databases: projectionDatabases, reader: writer, hot: hot, idCache: idCache)
                var head = try log.head(reader: writer)
                guard head.seq == state.lastSeq else { throw StateError.outOfStep(projections: state.lastSeq, log: head.seq) }
                // format 2: the batch's personal values go to the vault, committed (durably)
                // before the log's transaction is, so no event names what the vault lacks
                // after a failed commit or flush of the vault, the log is not written either
                try vault?.refuseWritesAfterFailure()
                let sealer = try vault.map { try PersonalSealer(vault: $0, cache: personalCache, erasing: Set(try pendingErasures(writer))) }
                let results = try commands.map { try executeOne($0, state: state, head: &head, writer: writer, sealer: sealer) }
                // the vault's durable commit runs on another core while this one writes the
                // projections into the log's transaction; the log commits after both (a
                // failed vault commit throws here, and the log's transaction is abandoned)
                if let sealer, commands.count >= Self.overlapFrom {
                    committed = try Self.whileOnAnotherThread(sealer.commit) { try state.flush() ? state : nil }
                } else {
                    try sealer?.commit()
                    committed = try state.flush() ? state : nil
                }
                return showingValues(results, sealer)
            }
        }
        // the commit wrote, so LMDB's id moved to the write transaction's: publish there
        if let committed { committed.publishHot(committed: committed.snapshotVersion + 1) }
        return (results, through)
    }

    /// Runs `other` on a thread of its own while `here` runs on this one (which keeps its
    /// transactions: an LMDB write transaction stays on its thread), and returns `here`'s
    /// result once both are done; `other`'s error is thrown first. The two must share no
    /// mutable state. A thread is made for the call, not taken from a pool: a pool whose
    /// threads all wait (as callers of the async API may make them) would never run it.
    static func whileOnAnotherThread<R>(_ other: () throws -> Void, _ here: () throws -> R) throws -> R {
        try withoutActuallyEscaping(other) { other in
            let job = OneJob(other)
            let finished = DispatchSemaphore(value: 0)
            let thread = Thread {
                job.run()
                finished.signal()
            }
            thread.stackSize = 1 << 21
            thread.start()
            let result = Result { try here() }
            // `other` may not outlive this call (it does not escape): wait for it even when
            // `here` threw; the job let it go when it ran
            finished.wait()
            if let error = job.failure { throw error }
            return try result.get()
        }
    }

    /// The smallest batch whose vault commit runs beside its projections' flush (below it, a
    /// thread's start costs about what the overlap saves).
    static let overlapFrom = 16

    /// `environment.makeDurable(through:)`, timing the flush when it made one.
    func makeDurable(through id: UInt64) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        if try environment.makeDurable(through: id) {
            metrics.fsync.recordNanoseconds(Int64(clamping: DispatchTime.now().uptimeNanoseconds &- start))
        }
    }

    private func executeOne(_ command: TimedCommand, state: DomainState, head: inout Head, writer: TransactionWriter,
                            sealer: PersonalSealer?) throws -> ExecutionResult {
        if let id = command.id, let seqs = try knownSeqs(ofCommand: id, reader: writer) {
            return ExecutionResult(seqs: seqs, refusal: try originalRefusal(firstSeq: seqs[0], reader: writer), wasDuplicate: true)
        }
        // a command without a time gets the ledger's: the later of now and the head's
        let at = command.time(after: head.at)
        var command = command
        command.at = at
        if let sealer { command.command = try sealer.tokenize(command.command) }
        let (events, refusal) = try decision(command, state: state)
        let seqs = try append(events, at: at, commandID: command.id, state: state, head: &head, writer: writer, sealer: sealer)
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
        let at = command.time(after: state.lastAt)
        guard at.isInLedgerRange else { throw InputError.outOfRange(at) }
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
              case let .openLicenseAttemptFailed(account, _, _) = try foldEvent(kind: stored.kind, payload: stored.payload)
        else { return nil }
        var before = LockoutRecord.empty
        // only this account's failed attempts change its lockout record: fold them, in order
        try log.forEach(from: 1, reader: reader) { e in
            guard e.seq < firstSeq else { return false }
            guard e.kind == failedKind,
                  case let .openLicenseAttemptFailed(a, _, _) = try foldEvent(kind: e.kind, payload: e.payload), a == account
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
                        head: inout Head, writer: TransactionWriter, sealer: PersonalSealer?) throws -> [UInt64] {
        if events.isEmpty { return [] }
        var new: [NewEvent] = []
        var folded = events
        new.reserveCapacity(events.count)
        for (i, e) in events.enumerated() {
            let id = commandID.map { Self.eventID($0, i) } ?? ids.next()
            if let sealer {
                let (payload, view) = try sealer.seal(e, id: id)
                new.append(NewEvent(id: id, kind: e.kind, at: at, payload: payload))
                folded[i] = view
            } else {
                new.append(NewEvent(id: id, kind: e.kind, at: at, payload: e.encodedPayload()))
            }
        }
        guard head.seq == state.lastSeq else { throw LogError.conflict(expected: state.lastSeq, actual: head.seq) }
        let seqs = try log.append(new, after: &head, writer: writer)
        for (event, seq) in zip(folded, seqs) { try evolver.evolve(state, event, seq: seq, at: at) }
        return seqs
    }
}

/// A closure run once on another thread, and dropped as it runs (the thread's object may
/// outlive the call that made the closure); its error is read after the run, by the thread
/// that waited for it.
private final class OneJob: @unchecked Sendable {
    private var body: (() throws -> Void)?
    private(set) var failure: (any Error)?

    init(_ body: @escaping () throws -> Void) { self.body = body }

    func run() {
        guard let body else { return }
        self.body = nil
        do { try body() } catch { failure = error }
    }
}
