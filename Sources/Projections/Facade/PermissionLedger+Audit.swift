import Foundation
import Ledger

// The auditor's questions (DOMAIN.md §4.1): access review, history, diff, what-if and the
// feed of effective changes, answered from the stored changelog and the versioned
// projections — never by replaying the log.

extension PermissionLedger {
    /// The access review of `licensingId` at a point (the head when nil): every email with
    /// any role on it there, with its roles, SA benefits, sources and the account whose
    /// validated business email it is. `unknownLicensingId` when the ID is not recorded at
    /// that point. Reads one range of `p.effective` (the pairs that ever had a role on the
    /// ID) and the sources of those that hold one.
    @_disfavoredOverload
    public func access(licensingId: String, asOf: AsOf? = nil) throws -> Result<AccessReview, DomainError> {
        try withPointState(try pointSeq(asOf)) { state in
            guard let record = try state.agreement(licensingId) else { return .failure(Self.unknown(licensingId, state)) }
            var emails: [String] = []
            try state.effective.forEach(first: licensingId) { email, bits in if !bits.isEmpty { emails.append(email) } }
            var principals: [AccessEntry] = []
            for email in emails.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                let report = try state.roleReport(email, licensingId, record: record)
                var sources = Set(report.direct.map(\.source))
                if report.inheritedAdminVia != nil || !report.inheritedInfoVia.isEmpty { sources.insert(.inherited) }
                let owner = try state.owner(ofEmail: email)
                principals.append(AccessEntry(email: email, account: owner,
                                              permissions: EffectivePermissions(roles: report.roles, saBenefits: report.saBenefits),
                                              sources: RoleSource.allCases.filter(sources.contains), report: report))
            }
            var r = resolver()
            return .success(try AccessReview(licensingId: licensingId, asOfSeq: state.lastSeq, principals: principals).resolved(&r))
        }
    }

    /// Every effective change of `email` (optionally only on `licensingId`) made by an event
    /// after the point `from` (default: the empty state) up to the point `to` (default: the
    /// head), in seq order, then Licensing ID. `unknownLicensingId` when `licensingId` is not
    /// recorded at the later point. Reads one range of `p.emailChanges`: the cost follows
    /// the answer, not the history.
    @_disfavoredOverload
    public func history(email: String, licensingId: String? = nil, from: AsOf? = nil, to: AsOf? = nil) throws
        -> Result<PermissionHistory, DomainError> {
        let e = try stateEmail(email), shown = Normalize.email(email) ?? email.lowercased()
        let (fromSeq, toSeq) = (try from.map(pointSeq) ?? 0, try pointSeq(to))
        return try withPointState(max(fromSeq, toSeq)) { state in
            if let licensingId, try state.agreement(licensingId) == nil { return .failure(Self.unknown(licensingId, state)) }
            let wanted = try licensingId.map { try state.ids.id(.licensingId, $0) ?? 0 }
            var changes: [PermissionChange] = []
            try state.emailChanges.versions(of: e, after: fromSeq, through: toSeq) { seq, record in
                let entries = (record?.entries ?? []).filter { wanted == nil || $0.lid == wanted }
                guard !entries.isEmpty else { return true }
                let (at, type) = try eventFacts(seq, state)
                for c in entries {
                    guard let lid = try state.ids.name(.licensingId, c.lid) else { throw Self.unnamed(c) }
                    changes.append(PermissionChange(seq: seq, at: at, type: type, email: e, licensingId: lid,
                                                    before: c.before.permissions, after: c.after.permissions))
                }
                return true
            }
            changes.sort { $0.seq != $1.seq ? $0.seq < $1.seq : bytesPrecede([$0.licensingId], [$1.licensingId]) }
            for i in changes.indices { changes[i].email = shown }
            return .success(PermissionHistory(email: shown, fromSeq: fromSeq, toSeq: toSeq, changes: changes))
        }
    }

    /// Every (email, Licensing ID) whose effective permissions differ between the points
    /// `from` and `to` (default: the head), with both, sorted by email then Licensing ID;
    /// optionally only one email's or one ID's. `from` after `to` keeps `before` = the state
    /// at `from`. Reads the changes between the two points (`p.changes`, or for one email
    /// `p.emailChanges`): a pair's value at the earlier point is its first change's
    /// `before`, at the later one its last change's `after`. `unknownLicensingId` when
    /// `licensingId` is not recorded at the later point.
    @_disfavoredOverload
    public func diff(from: AsOf, to: AsOf? = nil, email: String? = nil, licensingId: String? = nil) throws
        -> Result<PermissionDiff, DomainError> {
        let e = try email.map { try stateEmail($0) }
        let (fromSeq, toSeq) = (try pointSeq(from), try pointSeq(to))
        let (low, high) = (min(fromSeq, toSeq), max(fromSeq, toSeq))
        return try withPointState(high) { state in
            if let licensingId, try state.agreement(licensingId) == nil { return .failure(Self.unknown(licensingId, state)) }
            let wantedLid = try licensingId.map { try state.ids.id(.licensingId, $0) ?? 0 }
            // per pair: the value at `low` and at `high`
            var spans = PairSpans()
            func note(_ c: PairChange, email: UInt32) {
                guard wantedLid == nil || c.lid == wantedLid else { return }
                var change = c
                change.email = email
                spans.note(change)
            }
            if let e {
                if let id = try state.ids.id(.email, e) {
                    try state.emailChanges.versions(of: e, after: low, through: high) { _, record in
                        for c in record?.entries ?? [] { note(c, email: id) }
                        return true
                    }
                }
            } else {
                try state.changes.versions(of: "", after: low, through: high) { _, record in
                    for c in record?.entries ?? [] { note(c, email: c.email) }
                    return true
                }
            }
            var r = resolver()
            let out = try spans.differences(named: state.ids, reversed: fromSeq > toSeq).resolved(&r)
            return .success(PermissionDiff(fromSeq: fromSeq, toSeq: toSeq, changes: out))
        }
    }

    /// The effective changes of the events after `seq`, up to `limit` events' worth (at least
    /// every change of one event), in order (seq, then email, then Licensing ID), optionally
    /// only one email's or one Licensing ID's (an ID not recorded yet is fine: it has none).
    /// Also returns the seq read up to, the cursor for the next call (the head when nothing
    /// is left).
    @_disfavoredOverload
    public func changes(after seq: UInt64, email: String? = nil, licensingId: String? = nil, limit: Int = 4_096) throws
        -> (changes: [PermissionChange], through: UInt64) {
        let e = try email.map { try stateEmail($0) }
        var r = resolver()
        return try environment.read { txn in
            let head = try log.head(in: txn).seq
            return try txn.withReader { reader in
                let state = try DomainState(databases: projectionDatabases, reader: reader, asOf: head, at: nil, idCache: idCache)
                guard seq < head else { return ([], max(seq, head)) }
                let wantedEmail = try e.map { try state.ids.id(.email, $0) ?? 0 }
                let wantedLid = try licensingId.map { try state.ids.id(.licensingId, $0) ?? 0 }
                var out: [PermissionChange] = []
                var through = head, events = 0
                try state.changes.versions(of: "", after: seq, through: head) { s, record in
                    if events >= max(limit, 1) {
                        through = s - 1
                        return false
                    }
                    events += 1
                    let entries = (record?.entries ?? []).filter { (wantedEmail == nil || $0.email == wantedEmail) && (wantedLid == nil || $0.lid == wantedLid) }
                    guard !entries.isEmpty else { return true }
                    let (at, type) = try eventFacts(s, state)
                    var batch: [PermissionChange] = []
                    for c in entries {
                        guard let email = try state.ids.name(.email, c.email), let lid = try state.ids.name(.licensingId, c.lid) else { throw Self.unnamed(c) }
                        batch.append(PermissionChange(seq: s, at: at, type: type, email: email, licensingId: lid,
                                                      before: c.before.permissions, after: c.after.permissions))
                    }
                    batch.sort { bytesPrecede([$0.email, $0.licensingId], [$1.email, $1.licensingId]) }
                    out += try batch.resolved(&r)
                    return true
                }
                return (out, through)
            }
        }
    }

    /// The feed of effective changes after `seq` (DOMAIN.md §4.1 watch): the stored ones,
    /// then each new one as its event commits — in this process or another one on the same
    /// directory — each exactly once, in order. It ends when the task is cancelled.
    /// `pollInterval`: how often the log's head is looked at while nothing is new.
    public func permissionChanges(after seq: UInt64, email: String? = nil, licensingId: String? = nil,
                                  pollInterval: Duration = .milliseconds(1)) -> PermissionChangeFeed {
        PermissionChangeFeed(ledger: self, after: seq, email: email, licensingId: licensingId, pollInterval: pollInterval)
    }

    /// What `commands` would do: each decided and folded, one after another, on a copy of
    /// the head's projections (in memory over a read transaction), as `executeBatch` would
    /// — nothing is appended and nothing is written. Returns each result, with the seqs its
    /// events would get, and the diff from the head to the state they would leave.
    @_disfavoredOverload
    public func whatIf(_ commands: [TimedCommand]) throws -> WhatIfResult {
        try environment.read { txn in
            let head = try log.head(in: txn)
            return try txn.withReader { reader in
                let ids = StableIDs(db: projectionDatabases[.ids], reader: reader, shared: idCache)
                let state = try DomainState(databases: projectionDatabases, reader: reader, overlayAsOf: head.seq, at: head.at, replay: ids)
                guard state.lastSeq == head.seq else { throw StateError.outOfStep(projections: state.lastSeq, log: head.seq) }
                var spans = PairSpans()
                state.changeObserver = { _, changes in for c in changes { spans.note(c) } }
                var next = head.seq
                var results: [ExecutionResult] = []
                // format 2: tokens as `execute` makes them; the sealer's vault batch is never committed
                let sealer = try vault.map { try PersonalSealer(vault: $0, cache: personalCache) }
                for var command in commands {
                    if let id = command.id, let seqs = try knownSeqs(ofCommand: id, reader: reader) {
                        results.append(ExecutionResult(seqs: seqs, refusal: try originalRefusal(firstSeq: seqs[0], reader: reader), wasDuplicate: true))
                        continue
                    }
                    let at = command.time(after: state.lastAt)
                    if let sealer { command.command = try sealer.tokenize(command.command) }
                    let (events, refusal) = try decision(command.stamped(after: state.lastAt), state: state)
                    var seqs: [UInt64] = []
                    for event in events {
                        next += 1
                        try evolver.evolve(state, try sealer?.seal(event, id: UUID()).view ?? event, seq: next, at: at)
                        seqs.append(next)
                    }
                    results.append(ExecutionResult(seqs: seqs, refusal: refusal, wasDuplicate: false))
                }
                var r = resolver(known: sealer?.values ?? [:])
                for i in results.indices {
                    guard vault != nil, let refusal = results[i].refusal else { continue }
                    results[i].refusal = DomainError(refusal.code, r.resolveWithin(refusal.message), until: refusal.until)
                }
                let out = try spans.differences(named: ids).resolved(&r)
                return WhatIfResult(results: results, fromSeq: head.seq, toSeq: next, changes: out)
            }
        }
    }

    // MARK: Helpers

    /// The seq a point stands for, clamped to the head (nil: the head).
    func pointSeq(_ point: AsOf?) throws -> UInt64 {
        try environment.read { txn in
            let head = try log.head(in: txn).seq
            switch point {
            case nil: return head
            case let .seq(n)?: return min(n, head)
            case let .time(t)?: return min(try log.lastSeq(atOrBefore: t, in: txn), head)
            }
        }
    }

    /// Runs `body` on the stored projections as of `seq` (a read transaction; the versioned
    /// tables read at that seq).
    private func withPointState<R>(_ seq: UInt64, _ body: (DomainState) throws -> R) throws -> R {
        try environment.read { txn in
            let at = seq == 0 ? nil : try log.event(seq, in: txn)?.at
            return try txn.withReader { reader in
                try body(try DomainState(databases: projectionDatabases, reader: reader, asOf: seq, at: at, idCache: idCache))
            }
        }
    }

    /// The time and type name of the event at `seq`.
    private func eventFacts(_ seq: UInt64, _ state: DomainState) throws -> (Timestamp, String) {
        guard let reader = state.transactionReader, let stored = try log.event(seq, reader: reader) else {
            throw LogError.corrupt(seq: seq, reason: "the changelog names an event the log does not hold")
        }
        return (stored.at, DomainEvent.typeName(kind: stored.kind) ?? "kind\(stored.kind)")
    }

    private static func unnamed(_ c: PairChange) -> StateError { c.unnamed }
}

/// The feed of effective changes `PermissionLedger.permissionChanges(after:)` returns: an
/// `AsyncSequence` of `PermissionChange`, each delivered once, in order; it waits for new
/// commits (polling the log's head) and ends when its task is cancelled. The seq of the
/// last change delivered is the cursor to resume from after a restart.
public struct PermissionChangeFeed: AsyncSequence, Sendable {
    public typealias Element = PermissionChange
    let ledger: PermissionLedger
    let after: UInt64
    let email: String?
    let licensingId: String?
    let pollInterval: Duration

    public func makeAsyncIterator() -> Iterator {
        Iterator(feed: self, cursor: after)
    }

    /// Delivers the changes of one feed.
    public struct Iterator: AsyncIteratorProtocol {
        let feed: PermissionChangeFeed
        var cursor: UInt64
        var buffered: [PermissionChange] = []
        var index = 0

        public mutating func next() async throws -> PermissionChange? {
            while index >= buffered.count {
                if Task.isCancelled { return nil }
                // the async form: the read runs off the cooperative pool
                let (changes, through) = try await feed.ledger.changes(after: cursor, email: feed.email, licensingId: feed.licensingId)
                cursor = through
                buffered = changes
                index = 0
                if changes.isEmpty {
                    do { try await Task.sleep(for: feed.pollInterval) } catch { return nil }
                }
            }
            defer { index += 1 }
            return buffered[index]
        }

    }
}

/// Whether `a` sorts before `b`, element by element, each by its UTF-8 bytes (the order of
/// every list the contract sorts).
func bytesPrecede(_ a: [String], _ b: [String]) -> Bool {
    for (x, y) in zip(a, b) where x != y { return x.utf8.lexicographicallyPrecedes(y.utf8) }
    return a.count < b.count
}
