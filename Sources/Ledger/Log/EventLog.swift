import Foundation
import Logging

/// Errors of the event log, each with a stable `code`.
public enum LogError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The caller expected head `expected` but the log is at `actual`.
    case conflict(expected: UInt64, actual: UInt64)
    /// An event's `at` is earlier than the `at` of the event before it.
    case timeWentBackwards(at: Timestamp, previous: Timestamp)
    /// A stored record could not be decoded.
    case corrupt(seq: UInt64, reason: String)
    /// An event id is already stored (use the idempotent `append` to skip known ids).
    case duplicateID(UUID)

    /// A stable machine-readable code.
    public var code: String {
        switch self {
        case .conflict: return "conflict"
        case .timeWentBackwards: return "timeWentBackwards"
        case .corrupt: return "corrupt"
        case .duplicateID: return "duplicateID"
        }
    }

    public var description: String {
        switch self {
        case let .conflict(expected, actual):
            return "expected the log head at seq \(expected) but it is at \(actual); reload the state and decide again"
        case let .timeWentBackwards(at, previous):
            return "event time \(at) is earlier than the previous event's \(previous)"
        case let .corrupt(seq, reason):
            return "stored event \(seq) is undecodable: \(reason)"
        case let .duplicateID(id):
            return "event id \(id) is already stored"
        }
    }
}

/// The head of the log: the last seq (0 when empty), its hash and time.
public struct Head: Sendable, Equatable {
    /// The last seq, 0 for an empty log.
    public var seq: UInt64
    /// The last event's hash (32 zero bytes for an empty log).
    public var hash: [UInt8]
    /// The last event's time, nil for an empty log.
    public var at: Timestamp?

    /// The head of an empty log.
    public static let empty = Head(seq: 0, hash: Envelope.genesisHash, at: nil)

    /// Creates a head.
    public init(seq: UInt64, hash: [UInt8], at: Timestamp?) {
        self.seq = seq
        self.hash = hash
        self.at = at
    }
}

/// What `verify` found.
public struct VerifyReport: Sendable, Equatable {
    /// True when the chain, the seq continuity and every record are sound.
    public var ok: Bool
    /// The number of events walked.
    public var events: UInt64
    /// The hash of the last good event.
    public var headHash: [UInt8]
    /// The first seq found bad, when not ok.
    public var firstBadSeq: UInt64?
    /// What was wrong, when not ok.
    public var problem: String?
}

/// The append-only, hash-chained event log stored in an LMDB environment.
///
/// Databases: `events` (big-endian seq → canonical bytes ‖ hash, appended with
/// `MDB_APPEND`) and `eventIds` (UUID → seq, for idempotent appends).
public final class EventLog: Sendable {
    /// The environment holding the log.
    public let environment: LMDBEnvironment
    let eventsDB: LMDBDatabase
    let idsDB: LMDBDatabase
    /// `eventIds` with its types: UUID → seq.
    let ids: TypedDatabase<UUIDCodec, BigEndianUInt64Codec>
    /// `events` with its types: seq → stored event.
    public let typedEvents: TypedDatabase<BigEndianUInt64Codec, StoredEventCodec>

    /// The names of the databases the log uses.
    public static let databaseNames = ["events", "eventIds"]

    /// Opens the log's databases in `environment` (creating them when missing).
    public init(environment: LMDBEnvironment) throws {
        self.environment = environment
        let dbs = try environment.openDatabases(Self.databaseNames)
        eventsDB = dbs[0]
        idsDB = dbs[1]
        ids = TypedDatabase(idsDB)
        typedEvents = TypedDatabase(eventsDB)
    }

    // MARK: Append

    /// Appends `events` atomically in one write transaction and returns the seq of each
    /// (see `append(_:expectedHead:in:)`).
    @discardableResult
    public func append(_ events: [NewEvent], expectedHead: UInt64? = nil) throws -> [UInt64] {
        try environment.write { txn in try append(events, expectedHead: expectedHead, in: &txn) }
    }

    /// Appends `events` inside `txn`: all or none (an error leaves the transaction to be
    /// aborted by `LMDBEnvironment.write`).
    ///
    /// - Events whose `id` is already stored are not appended again; their original seq is
    ///   returned. When every event is known, nothing is checked or written.
    /// - `expectedHead`, when given, must equal the current head seq (optimistic
    ///   concurrency), else `LogError.conflict`.
    /// - `at` must never go backwards, else `LogError.timeWentBackwards`.
    /// - Returns one seq per input event, in input order.
    public func append(_ events: [NewEvent], expectedHead: UInt64?, in txn: inout WriteTransaction) throws -> [UInt64] {
        try txn.withWriter { try append(events, expectedHead: expectedHead, writer: $0) }
    }

    /// Appends `events` through `writer` (see `append(_:expectedHead:in:)`), for callers
    /// that also write their own databases in the same transaction.
    public func append(_ events: [NewEvent], expectedHead: UInt64?, writer txn: TransactionWriter) throws -> [UInt64] {
        var seqs = [UInt64](repeating: 0, count: events.count)
        var fresh: [Int] = []
        var seenInBatch: [UUID: Int] = [:]
        for (i, e) in events.enumerated() {
            if let known = try seq(forID: e.id, reader: txn) {
                seqs[i] = known
            } else if let first = seenInBatch[e.id] {
                seqs[i] = UInt64.max - UInt64(first)  // placeholder, resolved below
            } else {
                seenInBatch[e.id] = i
                fresh.append(i)
            }
        }
        if fresh.isEmpty { return seqs }
        var head = try self.head(reader: txn)
        if let expectedHead, expectedHead != head.seq {
            throw LogError.conflict(expected: expectedHead, actual: head.seq)
        }
        let appended = try append(fresh.map { events[$0] }, after: &head, writer: txn)
        for (i, seq) in zip(fresh, appended) { seqs[i] = seq }
        for i in seqs.indices where seqs[i] > UInt64.max - UInt64(events.count) {
            seqs[i] = seqs[Int(UInt64.max - seqs[i])]
        }
        return seqs
    }

    /// Appends `events` (all new ids, in a batch the caller controls) after `head`, which
    /// the caller read in this transaction and keeps up to date: no head lookup, no id
    /// check. Used by callers that already decided the events and checked idempotency.
    public func append(_ events: [NewEvent], after head: inout Head, writer txn: TransactionWriter) throws -> [UInt64] {
        var seqs: [UInt64] = []
        seqs.reserveCapacity(events.count)
        for e in events {
            if let previous = head.at, e.at < previous {
                throw LogError.timeWentBackwards(at: e.at, previous: previous)
            }
            let seq = head.seq + 1
            var value = Envelope.canonicalBytes(seq: seq, id: e.id, kind: e.kind, at: e.at, payload: e.payload)
            let hash = Envelope.chainHash(previous: head.hash, canonical: value)
            value.append(contentsOf: hash)
            try txn.put(eventsDB, key: BigEndianKey.bytes(seq), value: value, flags: .append)
            do {
                try ids.put(e.id, seq, writer: txn, flags: .noOverwrite)
            } catch let error as LMDBError where error.isKeyExists {
                throw LogError.duplicateID(e.id)
            }
            seqs.append(seq)
            head = Head(seq: seq, hash: hash, at: e.at)
        }
        return seqs
    }

    // MARK: Read

    /// The seq under which `id` is stored, if any.
    public func seq(forID id: UUID, in txn: borrowing some TransactionReading & ~Copyable) throws -> UInt64? {
        try txn.withReader { try seq(forID: id, reader: $0) }
    }

    /// The seq under which `id` is stored, if any.
    public func seq(forID id: UUID, reader: TransactionReader) throws -> UInt64? {
        try ids.get(id, reader: reader)
    }

    /// The seq under which `id` is stored, if any.
    public func seq(forID id: UUID) throws -> UInt64? {
        try environment.read { txn in try seq(forID: id, in: txn) }
    }

    /// The current head.
    public func head() throws -> Head {
        try environment.read { txn in try head(in: txn) }
    }

    /// The head as seen by `txn`.
    public func head(in txn: borrowing some TransactionReading & ~Copyable) throws -> Head {
        try txn.withReader { try head(reader: $0) }
    }

    /// The head as seen through `reader`.
    public func head(reader txn: TransactionReader) throws -> Head {
        try txn.withLast(eventsDB) { key, value in
            let seq = BigEndianKey.value(key) ?? 0
            do {
                let view = try EventView.decode(value)
                return Head(seq: seq, hash: Array(view.hash), at: view.at)
            } catch {
                throw LogError.corrupt(seq: seq, reason: "\(error)")
            }
        } ?? .empty
    }

    /// The event stored at `seq`, if any.
    public func event(_ seq: UInt64) throws -> StoredEvent? {
        try environment.read { txn in try event(seq, in: txn) }
    }

    /// The event stored at `seq` as seen by `txn`, if any.
    public func event(_ seq: UInt64, in txn: borrowing some TransactionReading & ~Copyable) throws -> StoredEvent? {
        do { return try typedEvents.get(seq, in: txn) } catch let e as LedgerDecodingError {
            throw LogError.corrupt(seq: seq, reason: "\(e)")
        }
    }

    /// The event stored at `seq` as seen through `reader`, if any.
    public func event(_ seq: UInt64, reader: TransactionReader) throws -> StoredEvent? {
        do { return try typedEvents.get(seq, reader: reader) } catch let e as LedgerDecodingError {
            throw LogError.corrupt(seq: seq, reason: "\(e)")
        }
    }

    /// The seq of the last event with `at ≤ time` (0 when none), found by binary search
    /// over the log's times, which never go backwards: about log₂(head) reads, never a scan.
    public func lastSeq(atOrBefore time: Timestamp, in txn: borrowing some TransactionReading & ~Copyable) throws -> UInt64 {
        let head = try head(in: txn)
        guard let headAt = head.at else { return 0 }
        if headAt <= time { return head.seq }
        // invariant: at(lo) ≤ time (lo = 0 stands for the empty state), at(hi) > time
        var lo: UInt64 = 0, hi = head.seq
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            let at = try txn.withValue(eventsDB, key: BigEndianKey.bytes(mid)) { bytes -> Timestamp in
                do { return try EventView.decode(bytes).at } catch { throw LogError.corrupt(seq: mid, reason: "\(error)") }
            }
            guard let at else { throw LogError.corrupt(seq: mid, reason: "missing from the log (seqs have no gaps)") }
            if at <= time { lo = mid } else { hi = mid }
        }
        return lo
    }

    /// Copies of the events with `from ≤ seq ≤ to`.
    public func events(from: UInt64 = 1, to: UInt64 = .max) throws -> [StoredEvent] {
        var out: [StoredEvent] = []
        try environment.read { txn in
            try forEach(from: from, in: txn) { view in
                if view.seq > to { return false }
                out.append(view.copy())
                return true
            }
        }
        return out
    }

    /// Visits events in seq order from `from`, without copying them, until `body` returns
    /// false. Each view is valid only inside `body`.
    public func forEach(from: UInt64 = 1, in txn: borrowing some TransactionReading & ~Copyable,
                        _ body: (EventView) throws -> Bool) throws {
        try txn.withReader { try forEach(from: from, reader: $0, body) }
    }

    /// Visits events in seq order from `from` through `reader` (see `forEach(from:in:_:)`).
    public func forEach(from: UInt64 = 1, reader txn: TransactionReader, _ body: (EventView) throws -> Bool) throws {
        try txn.scan(eventsDB, from: BigEndianKey.bytes(max(from, 1))) { key, value in
            let seq = BigEndianKey.value(key) ?? 0
            let view: EventView
            do { view = try EventView.decode(value) } catch { throw LogError.corrupt(seq: seq, reason: "\(error)") }
            return try body(view)
        }
    }

    /// The number of stored events.
    public func count() throws -> Int {
        try environment.read { txn in try txn.count(eventsDB) }
    }

    /// An asynchronous sequence of every stored event from `seq`, then each new one as it
    /// commits (in this or another process). New events are found by polling the head
    /// (1 ms, backing off to 50 ms while idle). Ends when the consuming task is cancelled.
    public func follow(from seq: UInt64 = 1) -> AsyncThrowingStream<StoredEvent, any Error> {
        let log = self
        return AsyncThrowingStream { continuation in
            let task = Task {
                var next = max(seq, 1)
                var idle: UInt64 = 1_000_000
                while !Task.isCancelled {
                    do {
                        let batch = try log.events(from: next, to: next + 1023)
                        for e in batch { continuation.yield(e) }
                        if let last = batch.last {
                            next = last.seq + 1
                            idle = 1_000_000
                        } else {
                            try await Task.sleep(nanoseconds: idle)
                            idle = min(idle * 2, 50_000_000)
                        }
                    } catch is CancellationError {
                        break
                    } catch {
                        continuation.finish(throwing: error)
                        return
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: Verify

    /// Walks the whole chain: every key is the next seq from 1, every record decodes and
    /// names its own seq, time never goes backwards, every hash matches. Reports the first
    /// bad seq and what is wrong.
    public func verify() throws -> VerifyReport {
        try environment.read { txn in
            var expected: UInt64 = 1
            var previous = Envelope.genesisHash
            var previousAt: Timestamp?
            var problem: (UInt64, String)?
            try txn.scan(eventsDB) { key, value in
                guard let seq = BigEndianKey.value(key), key.count == 8 else {
                    problem = (expected, "a key of \(key.count) bytes is not a seq")
                    return false
                }
                if seq != expected {
                    problem = (expected, seq > expected ? "gap: seq \(expected) is missing (next stored is \(seq))" : "seq \(seq) out of order")
                    return false
                }
                let view: EventView
                do { view = try EventView.decode(value) } catch {
                    problem = (seq, "undecodable: \(error)")
                    return false
                }
                if view.seq != seq {
                    problem = (seq, "the record stored at seq \(seq) names seq \(view.seq)")
                    return false
                }
                if let previousAt, view.at < previousAt {
                    problem = (seq, "time went backwards (\(view.at) after \(previousAt))")
                    return false
                }
                let canonical = UnsafeRawBufferPointer(rebasing: value[0 ..< value.count - 32])
                let hash = Envelope.chainHash(previous: previous, canonical: canonical)
                if !hash.elementsEqual(view.hash) {
                    problem = (seq, "hash mismatch: the stored hash does not match SHA-256(previous hash ‖ canonical bytes)")
                    return false
                }
                previous = hash
                previousAt = view.at
                expected += 1
                return true
            }
            if let (seq, what) = problem {
                return VerifyReport(ok: false, events: expected - 1, headHash: previous, firstBadSeq: seq, problem: what)
            }
            let ids = try txn.count(idsDB)
            if UInt64(ids) != expected - 1 {
                return VerifyReport(ok: false, events: expected - 1, headHash: previous, firstBadSeq: nil,
                                    problem: "the id index holds \(ids) entries for \(expected - 1) events")
            }
            return VerifyReport(ok: true, events: expected - 1, headHash: previous, firstBadSeq: nil, problem: nil)
        }
    }
}
