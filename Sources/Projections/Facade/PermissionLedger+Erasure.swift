import Foundation
import Ledger

/// What an erasure (R15) did: the event appended, the subject erased and how many personal
/// fields of the log were its — or the refusal.
public struct ErasureResult: Sendable, Equatable {
    /// The seq of the `subjectErased` event (empty when refused).
    public var seqs: [UInt64]
    /// The erased subject's pseudonym (32 hex digits): what outputs show in place of its
    /// values, as `erased:PSEUDONYM`.
    public var subject: String?
    /// The personal fields of the subject in the log (each occurrence in each event once).
    public var fieldsErased: Int
    /// Nil when the subject was erased; the refusal otherwise (`unknownEmail`,
    /// `alreadyErased`, `subjectHoldsAccess`, `timeWentBackwards`).
    public var refusal: DomainError?

    /// Whether the subject was erased.
    public var accepted: Bool { refusal == nil }

    /// The result as `ledger-tool erase --json` prints it: `ok`, `error` and `message` when
    /// refused, `seq`, and `subject` with `fieldsErased` when erased.
    public var json: JSONValue {
        var fields: [(key: String, value: JSONValue)] = [("ok", .bool(accepted))]
        if let refusal { fields += [("error", .string(refusal.code.rawValue)), ("message", .string(refusal.message))] }
        fields.append(("seq", .array(seqs.map { .uint($0) })))
        if let subject { fields += [("subject", .string(subject)), ("fieldsErased", .int(Int64(fieldsErased)))] }
        return .object(fields)
    }
}

/// An erasure decided against the local state, with its `subjectErased` event already
/// sequenced and chained after the local head (see `PermissionLedger.prepareErasure`).
public struct PreparedErasure: Sendable, Equatable {
    /// The local head it was decided at: the shared log must still end there.
    public var base: Head
    /// What `erase` would return (the seq the event will get, or the refusal).
    public var result: ErasureResult
    /// The event to append (empty when refused).
    public var events: [StoredEvent]
}

// R15 (DOMAIN.md §5.1): erasing a subject's personal data while every hash stays as it was.

extension PermissionLedger {
    static let pendingErasuresKey = Array("pendingErasures".utf8)

    /// Erases the subject of `email` (R15): appends `subjectErased{subject, legalBasis}` (no
    /// personal data) at `at` (default: now; `timeWentBackwards` applies), withdrawing the
    /// subject's pending requests, then deletes the subject's values, secret and key from the
    /// vault and compacts it, so that no file of the ledger's directory still holds them.
    /// The hashed bytes of every event stay as they were: the chain and every checkpoint
    /// still verify, and the facts stay, with `erased:PSEUDONYM` in place of the person.
    ///
    /// Refusals, in order: `unknownEmail` (never seen, or malformed), `alreadyErased`,
    /// `subjectHoldsAccess` (a role on any Licensing ID, or a contact on a legal form).
    /// A crash after the event committed is finished by the next open of the ledger.
    /// Throws `InputError` on a format-1 ledger, whose values are in the hashed bytes, and on
    /// a replica of the shared log, which erases through it (`SharedLedger.erase`, so that
    /// PostgreSQL and every replica erase too; an erasure here alone would diverge).
    public func erase(email: String, legalBasis: LegalBasis, at: Timestamp? = nil) throws -> ErasureResult {
        guard let vault else { throw Self.format1Erasure }
        if try isSharedLogReplica() { throw Self.replicaErasure }
        let outcome: (ErasureResult, Pseudonym?) = try environment.write { txn in
            try txn.withWriter { writer in
                let state = try DomainState(databases: projectionDatabases, reader: writer, hot: hot, idCache: idCache)
                var head = try log.head(reader: writer)
                guard head.seq == state.lastSeq else { throw StateError.outOfStep(projections: state.lastSeq, log: head.seq) }
                let time = at ?? .now
                switch try decideErasure(email, legalBasis: legalBasis, at: time, vault: vault, state: state, reader: writer) {
                case let .refused(result): return (result, nil)
                case let .erase(subject, fields, event):
                    // format 2's payload: no personal field, then the event's own bytes
                    let seqs = try log.append([NewEvent(id: ids.next(), kind: event.kind, at: time, payload: SealedPayload.encode(event, fields: []))],
                                              after: &head, writer: writer)
                    for seq in seqs { try evolver.evolve(state, event, seq: seq, at: time) }
                    // the vault's part is finished after the commit, or by the next open after a crash
                    try setPendingErasures(try pendingErasures(writer) + [subject], writer)
                    try state.flush()
                    return (ErasureResult(seqs: seqs, subject: subject.description, fieldsErased: fields, refusal: nil), subject)
                }
            }
        }
        if let subject = outcome.1 { try finishErasure(subject) }
        return outcome.0
    }

    /// R15 decided on the local state **without appending** (`prepare` for an erasure): the
    /// `subjectErased` event sequenced and chained after the local head, or the refusal. A
    /// shared-log host appends the event to the shared log expecting `base` (deleting the
    /// subject's vault items there in the same transaction), then applies it locally with
    /// `applyReplicated(_:personal:)`, which erases the local vault as `erase` does.
    public func prepareErasure(email: String, legalBasis: LegalBasis, at: Timestamp? = nil) throws -> PreparedErasure {
        guard let vault else { throw Self.format1Erasure }
        return try environment.read { txn in
            try txn.withReader { reader in
                let state = try DomainState(databases: projectionDatabases, reader: reader, hot: hot, idCache: idCache)
                let head = try log.head(reader: reader)
                guard head.seq == state.lastSeq else { throw StateError.outOfStep(projections: state.lastSeq, log: head.seq) }
                let time = at ?? max(.now, head.at ?? .now)
                switch try decideErasure(email, legalBasis: legalBasis, at: time, vault: vault, state: state, reader: reader) {
                case let .refused(result): return PreparedErasure(base: head, result: result, events: [])
                case let .erase(subject, fields, event):
                    let id = ids.next(), seq = head.seq + 1
                    let payload = SealedPayload.encode(event, fields: [])
                    let canonical = Envelope.canonicalBytes(seq: seq, id: id, kind: event.kind, at: time, payload: payload)
                    let stored = StoredEvent(seq: seq, id: id, kind: event.kind, at: time, payload: payload,
                                             hash: Envelope.chainHash(previous: head.hash, canonical: canonical))
                    return PreparedErasure(base: head, result: ErasureResult(seqs: [seq], subject: subject.description, fieldsErased: fields, refusal: nil),
                                           events: [stored])
                }
            }
        }
    }

    static let format1Erasure = InputError(field: "eventFormat", "this ledger keeps personal values inside its hash chain (event format 1): they can't be erased without breaking every hash after them; a format-2 ledger keeps them beside the log")

    static let replicaErasure = InputError(field: "sharedLog", "this ledger is a replica of the shared log: erase through it (`ledger-replica erase DIR --postgres URL`, or SharedLedger.erase), so that PostgreSQL and every replica erase the subject too; erasing this replica alone would make it diverge")

    private enum ErasureDecision {
        case refused(ErasureResult)
        case erase(Pseudonym, fields: Int, event: DomainEvent)
    }

    /// R15's refusals in DOMAIN.md's order, or the subject to erase with the event that does it.
    private func decideErasure(_ email: String, legalBasis: LegalBasis, at time: Timestamp, vault: SubjectVault,
                               state: DomainState, reader: TransactionReader) throws -> ErasureDecision {
        func refused(_ code: DomainErrorCode, _ message: String) -> ErasureDecision {
            .refused(ErasureResult(seqs: [], subject: nil, fieldsErased: 0, refusal: DomainError(code, message)))
        }
        guard let normalised = Normalize.email(email) else { return refused(.unknownEmail, "'\(email)' is not an email this ledger has seen") }
        if let last = state.lastAt, time < last {
            return refused(.timeWentBackwards, "the erasure's time \(time) is before the last event's time \(last)")
        }
        guard let subject = try vault.subject(email: normalised) else {
            if try vault.wasErased(email: normalised) { return refused(.alreadyErased, "\(normalised) was erased before") }
            return refused(.unknownEmail, "\(normalised) is not an email this ledger has seen")
        }
        let token = PersonalToken.email(subject).string
        let accounts = try accounts(of: token, state)
        guard try state.ids.id(.email, token) != nil || !accounts.isEmpty else {
            return refused(.unknownEmail, "\(normalised) is not an email this ledger has seen")
        }
        if let refusal = try Decider.erasureRefusal(email: token, state: state) {
            var shown = resolver()
            return .refused(ErasureResult(seqs: [], subject: nil, fieldsErased: 0,
                                          refusal: DomainError(refusal.code, shown.resolveWithin(refusal.message))))
        }
        let fields = try countFields(of: subject, accounts: accounts, reader: reader)
        return .erase(subject, fields: fields, event: .subjectErased(subject: subject.description, legalBasis: legalBasis))
    }

    /// The accounts registered with the email whose token is `email`.
    private func accounts(of email: String, _ state: DomainState) throws -> Set<Pseudonym> {
        var accounts = Set<Pseudonym>()
        try state.accounts.forEachCurrent { account, record in
            if record.email == email, case let .account(a)? = PersonalToken(account) { accounts.insert(a) }
        }
        return accounts
    }

    /// The personal fields of the log that are `subject`'s: its email's, its `accounts`', and
    /// the texts it wrote — each occurrence in each event once.
    private func countFields(of subject: Pseudonym, accounts: Set<Pseudonym>, reader: TransactionReader) throws -> Int {
        var count = 0
        try log.forEach(from: 1, reader: reader) { view in
            let (event, fields) = try SealedPayload.decode(kind: view.kind, payload: view.payload)
            for (field, sealed) in zip(event.personalFields, fields) {
                if field.kind == .account ? accounts.contains(sealed.ref) : sealed.ref == subject { count += 1 }
            }
            return true
        }
        return count
    }

    func pendingErasures(_ reader: TransactionReader) throws -> [Pseudonym] {
        guard let db = try environment.openDatabases([Self.settingsDatabase]).first,
              let bytes = try reader.withValue(db, key: Self.pendingErasuresKey, { Array($0) }) else { return [] }
        return stride(from: 0, to: bytes.count - bytes.count % 16, by: 16).compactMap { Pseudonym(bytes: Array(bytes[$0 ..< $0 + 16])) }
    }

    func setPendingErasures(_ subjects: [Pseudonym], _ writer: TransactionWriter) throws {
        guard let db = try environment.openDatabases([Self.settingsDatabase]).first else { throw StateError.missingTable(Self.settingsDatabase) }
        if subjects.isEmpty {
            _ = try writer.delete(db, key: Self.pendingErasuresKey)
        } else {
            try writer.put(db, key: Self.pendingErasuresKey, value: subjects.flatMap(\.bytes))
        }
    }

    /// The vault's part of an erasure whose event committed: the deletion and compaction
    /// (idempotent), then the subject leaves the pending list.
    private func finishErasure(_ subject: Pseudonym) throws {
        guard let vault else { return }
        try vault.erase(subject)
        try environment.write { txn in
            try txn.withWriter { writer in try setPendingErasures(try pendingErasures(writer).filter { $0 != subject }, writer) }
        }
    }

    /// Finishes every erasure the log records and the vault has not done (a crash between
    /// the two); called when the ledger opens.
    func finishPendingErasures() throws {
        guard vault != nil else { return }
        let pending = try environment.read { txn in try txn.withReader { try pendingErasures($0) } }
        for subject in pending {
            logger.notice("finishing an erasure the log records", metadata: ["subject": "\(subject)"])
            try finishErasure(subject)
        }
    }
}
