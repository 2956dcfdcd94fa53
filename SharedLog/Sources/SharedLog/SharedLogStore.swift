import Foundation
import Ledger
import Logging
import NIOCore
import PostgresNIO
import Projections

/// The shared log in PostgreSQL: the events of one ledger in tables named after it.
///
/// ```sql
/// CREATE TABLE NAME_events (seq bigint PRIMARY KEY, id uuid NOT NULL UNIQUE,
///                           record bytea NOT NULL, hash bytea NOT NULL);
/// CREATE TABLE NAME_head (singleton boolean PRIMARY KEY, seq bigint NOT NULL, hash bytea NOT NULL);
/// CREATE TABLE NAME_personal (kind smallint, ref bytea, subject bytea, seq bigint NOT NULL,
///                             sealed bytea, key_id bytea NOT NULL,
///                             PRIMARY KEY (kind, ref, subject));
/// ```
///
/// `NAME_personal` holds the vault items of a format-2 ledger (`VaultItem`: subjects,
/// accounts, free texts), each sealed under the cluster key and stored at the seq of the first
/// event of the append that brought it, with the identifier of the cluster key that sealed it
/// (`key_id`); an erasure sets the subject's `sealed` to NULL in the transaction that appends
/// its `subjectErased`, and a cluster-key rotation seals each row again under a new key.
///
/// `record` is exactly the value the LMDB log stores (the canonical bytes of DOMAIN.md §5's
/// envelope followed by the chain hash), so the chain is the same on every host. An append
/// is one transaction that moves the head row from the expected (seq, hash) to the new one
/// — `UPDATE … WHERE seq = expected AND hash = expected` — and inserts the events; the row
/// lock serialises appenders, and the primary key on seq and the unique id back it up. It
/// then notifies channel `NAME_appended` with the new head seq.
public struct SharedLogStore: Sendable {
    /// The ledger's name in PostgreSQL (table prefix and channel).
    public let name: String
    let connection: SerialConnection
    let logger: Logger

    /// What an append did.
    public enum AppendOutcome: Sendable, Equatable {
        /// Appended: the shared head is now the last event.
        case appended
        /// The shared head was no longer `expected`: it is `actual`.
        case conflict(actual: UInt64)
    }

    /// A store for ledger `name` (1–40 characters of a–z, 0–9 and _, starting with a letter).
    public init(location: PostgresLocation, name: String = "ledger", logger: Logger = Logger(label: "shared-log")) throws {
        guard Self.isValidName(name) else { throw SharedLogError.invalidName(name) }
        self.name = name
        self.logger = logger
        connection = SerialConnection(location: location, logger: logger)
    }

    static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...40).contains(bytes.count), let first = bytes.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) else { return false }
        return bytes.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "_") }
    }

    var events: String { name + "_events" }
    var headTable: String { name + "_head" }
    var personalTable: String { name + "_personal" }

    /// A vault item as the shared log holds it: its kind, record and subject in the clear
    /// (pseudonyms and a commitment), its personal bytes sealed under the cluster key (nil
    /// once the subject was erased).
    public struct PersonalRow: Sendable, Equatable {
        /// `VaultItem.Kind`'s raw value.
        public var kind: UInt8
        /// The item's record key.
        public var ref: [UInt8]
        /// The subject's pseudonym (16 bytes).
        public var subject: [UInt8]
        /// The sealed personal bytes, nil once erased.
        public var sealed: [UInt8]?
        /// The identifier of the cluster key `sealed` is under (`ClusterKey.id`).
        public var keyID: [UInt8]
        /// A row from its parts.
        public init(kind: UInt8, ref: [UInt8], subject: [UInt8], sealed: [UInt8]?, keyID: [UInt8]) {
            self.kind = kind
            self.ref = ref
            self.subject = subject
            self.sealed = sealed
            self.keyID = keyID
        }
    }
    /// The NOTIFY channel.
    public var channel: String { name + "_appended" }

    /// Creates the tables when missing (safe to run from several hosts at once).
    public func ensureSchema() async throws {
        try await connection.run { c in
            _ = try await c.rows("BEGIN", logger: logger)
            do {
                _ = try await c.rows("SELECT pg_advisory_xact_lock(hashtext(\(name)))", logger: logger)
                _ = try await c.rows("""
                    CREATE TABLE IF NOT EXISTS \(unescaped: events) (
                      seq bigint PRIMARY KEY CHECK (seq > 0),
                      id uuid NOT NULL UNIQUE,
                      record bytea NOT NULL,
                      hash bytea NOT NULL CHECK (length(hash) = 32))
                    """, logger: logger)
                _ = try await c.rows("""
                    CREATE TABLE IF NOT EXISTS \(unescaped: headTable) (
                      singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                      seq bigint NOT NULL,
                      hash bytea NOT NULL)
                    """, logger: logger)
                // CREATE INDEX takes a share lock on its table even when the index exists, and
                // an append running meanwhile (head row locked, items still to insert) would
                // deadlock with this transaction's INSERT into the head table below: the
                // items' table and its indexes are created only when missing
                var hasPersonal = false
                for row in try await c.rows("SELECT to_regclass(\(personalTable)) IS NOT NULL", logger: logger) {
                    hasPersonal = try row.decode(Bool.self)
                }
                if !hasPersonal {
                    _ = try await c.rows("""
                        CREATE TABLE \(unescaped: personalTable) (
                          kind smallint NOT NULL,
                          ref bytea NOT NULL,
                          subject bytea NOT NULL CHECK (length(subject) = 16),
                          seq bigint NOT NULL CHECK (seq > 0),
                          sealed bytea,
                          key_id bytea NOT NULL,
                          PRIMARY KEY (kind, ref, subject))
                        """, logger: logger)
                    _ = try await c.rows("CREATE INDEX IF NOT EXISTS \(unescaped: personalTable)_seq ON \(unescaped: personalTable) (seq)", logger: logger)
                    _ = try await c.rows("CREATE INDEX IF NOT EXISTS \(unescaped: personalTable)_subject ON \(unescaped: personalTable) (subject)", logger: logger)
                    _ = try await c.rows("CREATE INDEX IF NOT EXISTS \(unescaped: personalTable)_key ON \(unescaped: personalTable) (key_id)", logger: logger)
                }
                let genesis = ByteBuffer(bytes: Envelope.genesisHash)
                _ = try await c.rows("INSERT INTO \(unescaped: headTable) (singleton, seq, hash) VALUES (true, 0, \(genesis)) ON CONFLICT DO NOTHING", logger: logger)
                _ = try await c.rows("COMMIT", logger: logger)
            } catch {
                if !c.isClosed, SerialConnection.isServerError(error) { _ = try? await c.rows("ROLLBACK", logger: logger) }
                throw error
            }
        }
    }

    /// The shared head: last seq (0 when empty) and its hash.
    public func head() async throws -> (seq: UInt64, hash: [UInt8]) {
        try await connection.run { c in
            for row in try await c.rows("SELECT seq, hash FROM \(unescaped: headTable)", logger: logger) {
                let (seq, hash) = try row.decode((Int64, ByteBuffer).self)
                return (UInt64(clamping: seq), Array(hash.readableBytesView))
            }
            throw SharedLogError.server("the head row of \(headTable) is missing (was the schema created?)")
        }
    }

    /// Appends `events` (sequenced and chained after `base`) if the shared head is still
    /// `base`; otherwise appends nothing and reports the actual head. A `base` whose seq
    /// matches but whose hash does not means the replica diverged: `SharedLogError.diverged`.
    /// `personal`: the vault items the events need, stored at the first event's seq in the
    /// same transaction; `erasing`: a subject whose items are emptied in it (the events'
    /// `subjectErased`).
    public func append(_ newEvents: [StoredEvent], after base: Head, personal: [PersonalRow] = [],
                       erasing: Pseudonym? = nil) async throws -> AppendOutcome {
        guard let last = newEvents.last else { return .appended }
        return try await connection.run { c in
            _ = try await c.rows("BEGIN", logger: logger)
            do {
                // appends share this lock; a writer that keeps losing the race takes it
                // exclusively (`lockAppends`) and so gets its turn
                _ = try await c.rows("SELECT pg_advisory_xact_lock_shared(\(appendLockKey))", logger: logger)
                let updated = try await c.rows("""
                    UPDATE \(unescaped: headTable) SET seq = \(Int64(clamping: last.seq)), hash = \(ByteBuffer(bytes: last.hash))
                    WHERE seq = \(Int64(clamping: base.seq)) AND hash = \(ByteBuffer(bytes: base.hash)) RETURNING seq
                    """, logger: logger)
                guard !updated.isEmpty else {
                    var actual: (UInt64, [UInt8]) = (0, [])
                    for row in try await c.rows("SELECT seq, hash FROM \(unescaped: headTable)", logger: logger) {
                        let (seq, hash) = try row.decode((Int64, ByteBuffer).self)
                        actual = (UInt64(clamping: seq), Array(hash.readableBytesView))
                    }
                    _ = try await c.rows("ROLLBACK", logger: logger)
                    if actual.0 == base.seq {
                        throw SharedLogError.diverged(seq: base.seq, problem: "the replica's head hash \(Hex.encode(base.hash)) is not the shared log's \(Hex.encode(actual.1))")
                    }
                    return .conflict(actual: actual.0)
                }
                // one multi-row INSERT per 1,000 events (4 parameters each)
                var start = 0
                while start < newEvents.count {
                    let chunk = newEvents[start ..< min(start + 1_000, newEvents.count)]
                    var binds = PostgresBindings()
                    var values: [String] = []
                    for (k, e) in chunk.enumerated() {
                        binds.append(Int64(clamping: e.seq))
                        binds.append(e.id)
                        binds.append(ByteBuffer(bytes: e.storedBytes))
                        binds.append(ByteBuffer(bytes: e.hash))
                        values.append("($\(4 * k + 1), $\(4 * k + 2), $\(4 * k + 3), $\(4 * k + 4))")
                    }
                    _ = try await c.rows(PostgresQuery(unsafeSQL: "INSERT INTO \(events) (seq, id, record, hash) VALUES " + values.joined(separator: ", "),
                                                       binds: binds), logger: logger)
                    start += chunk.count
                }
                // the vault items, at the append's first seq (one INSERT per 1,000 rows, 6 parameters each)
                let at = Int64(clamping: newEvents[0].seq)
                start = 0
                while start < personal.count {
                    let chunk = personal[start ..< min(start + 1_000, personal.count)]
                    var binds = PostgresBindings()
                    var values: [String] = []
                    for (k, row) in chunk.enumerated() {
                        binds.append(Int16(row.kind))
                        binds.append(ByteBuffer(bytes: row.ref))
                        binds.append(ByteBuffer(bytes: row.subject))
                        binds.append(at)
                        if let sealed = row.sealed { binds.append(ByteBuffer(bytes: sealed)) } else { binds.appendNull() }
                        binds.append(ByteBuffer(bytes: row.keyID))
                        values.append("(" + (1...6).map { "$\(6 * k + $0)" }.joined(separator: ", ") + ")")
                    }
                    _ = try await c.rows(PostgresQuery(unsafeSQL: "INSERT INTO \(personalTable) (kind, ref, subject, seq, sealed, key_id) VALUES "
                                                       + values.joined(separator: ", "), binds: binds), logger: logger)
                    start += chunk.count
                }
                if let erasing {
                    _ = try await c.rows("UPDATE \(unescaped: personalTable) SET sealed = NULL WHERE subject = \(ByteBuffer(bytes: erasing.bytes))", logger: logger)
                }
                _ = try await c.rows("SELECT pg_notify(\(channel), \(String(last.seq)))", logger: logger)
                _ = try await c.rows("COMMIT", logger: logger)
                return .appended
            } catch let error as SharedLogError {
                throw error
            } catch {
                // after a statement error the session lives on: end the transaction (a broken
                // connection is dropped by the caller, which ends it on the server)
                if !c.isClosed, SerialConnection.isServerError(error) { _ = try? await c.rows("ROLLBACK", logger: logger) }
                throw error
            }
        }
    }

    var appendLockKey: Int64 {
        // FNV-1a of the name: a stable 64-bit advisory-lock key
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in (name + "_append").utf8 { h = (h ^ UInt64(b)) &* 0x0100_0000_01b3 }
        return Int64(bitPattern: h)
    }

    /// Takes the append lock exclusively on this store's connection (a session lock): until
    /// `unlockAppends()`, or the connection ends, no other host's append can commit, so the
    /// holder's next append after a catch-up cannot meet a conflict. Waiters are served in
    /// order, so a host that keeps losing the optimistic race is never starved.
    public func lockAppends() async throws {
        try await connection.run { c in
            _ = try await c.rows("SELECT pg_advisory_lock(\(appendLockKey))", logger: logger, timeout: .seconds(60))
        }
    }

    /// Releases `lockAppends()`.
    public func unlockAppends() async throws {
        try await connection.run { c in
            _ = try await c.rows("SELECT pg_advisory_unlock(\(appendLockKey))", logger: logger)
        }
    }

    /// Up to `limit` events after `seq`, in order, each checked to be well formed.
    public func events(after seq: UInt64, limit: Int = 1_000) async throws -> [StoredEvent] {
        try await connection.run { c in
            let rows = try await c.rows("""
                SELECT seq, record FROM \(unescaped: events) WHERE seq > \(Int64(clamping: seq)) ORDER BY seq LIMIT \(Int64(limit))
                """, logger: logger)
            var out: [StoredEvent] = []
            out.reserveCapacity(rows.count)
            for row in rows {
                let (rowSeq, record) = try row.decode((Int64, ByteBuffer).self)
                let event: StoredEvent
                do {
                    event = try record.readableBytesView.withContiguousStorageIfAvailable { try Envelope.decode(stored: UnsafeRawBufferPointer($0)) }
                        ?? Array(record.readableBytesView).withUnsafeBytes { try Envelope.decode(stored: $0) }
                } catch {
                    throw SharedLogError.corruptRow(seq: rowSeq, problem: "\(error)")
                }
                guard UInt64(exactly: rowSeq) == event.seq else {
                    throw SharedLogError.corruptRow(seq: rowSeq, problem: "its record says seq \(event.seq)")
                }
                out.append(event)
            }
            return out
        }
    }

    /// The vault items stored at seqs in `seqs` (those of the appends whose first event is
    /// there).
    public func personal(at seqs: ClosedRange<UInt64>) async throws -> [PersonalRow] {
        try await connection.run { c in
            let rows = try await c.rows("""
                SELECT kind, ref, subject, sealed, key_id FROM \(unescaped: personalTable)
                WHERE seq >= \(Int64(clamping: seqs.lowerBound)) AND seq <= \(Int64(clamping: seqs.upperBound)) ORDER BY seq, kind
                """, logger: logger)
            return try rows.map { try personalRow($0) }
        }
    }

    /// Every vault item of `subject` (what an erasure empties).
    public func personal(of subject: Pseudonym) async throws -> [PersonalRow] {
        try await connection.run { c in
            let rows = try await c.rows("""
                SELECT kind, ref, subject, sealed, key_id FROM \(unescaped: personalTable) WHERE subject = \(ByteBuffer(bytes: subject.bytes))
                """, logger: logger)
            return try rows.map { try personalRow($0) }
        }
    }

    /// Up to `limit` rows still sealed under a key other than `keyID` (what a cluster-key
    /// rotation seals again).
    public func personal(sealedOtherThan keyID: [UInt8], limit: Int = 1_000) async throws -> [PersonalRow] {
        try await connection.run { c in
            let rows = try await c.rows("""
                SELECT kind, ref, subject, sealed, key_id FROM \(unescaped: personalTable)
                WHERE key_id <> \(ByteBuffer(bytes: keyID)) AND sealed IS NOT NULL LIMIT \(Int64(limit))
                """, logger: logger)
            return try rows.map { try personalRow($0) }
        }
    }

    /// How many sealed rows each cluster key holds (a rotation is done when one key seals
    /// them all).
    public func personalKeys() async throws -> [(keyID: [UInt8], rows: Int)] {
        try await connection.run { c in
            let rows = try await c.rows("""
                SELECT key_id, count(*) FROM \(unescaped: personalTable) WHERE sealed IS NOT NULL GROUP BY key_id ORDER BY key_id
                """, logger: logger)
            return try rows.map { row in
                let (keyID, count) = try row.decode((ByteBuffer, Int64).self)
                return (Array(keyID.readableBytesView), Int(count))
            }
        }
    }

    /// Replaces each row's `sealed` and `key_id` by the new ones, in one transaction, where
    /// the row still holds what it was read with (a row erased or sealed again meanwhile is
    /// left as it is); returns how many rows changed.
    public func reseal(_ changes: [(old: PersonalRow, sealed: [UInt8], keyID: [UInt8])]) async throws -> Int {
        guard !changes.isEmpty else { return 0 }
        return try await connection.run { c in
            _ = try await c.rows("BEGIN", logger: logger)
            do {
                var changed = 0
                for change in changes {
                    guard let oldSealed = change.old.sealed else { continue }
                    let rows = try await c.rows("""
                        UPDATE \(unescaped: personalTable) SET sealed = \(ByteBuffer(bytes: change.sealed)), key_id = \(ByteBuffer(bytes: change.keyID))
                        WHERE kind = \(Int16(change.old.kind)) AND ref = \(ByteBuffer(bytes: change.old.ref))
                          AND subject = \(ByteBuffer(bytes: change.old.subject))
                          AND key_id = \(ByteBuffer(bytes: change.old.keyID)) AND sealed = \(ByteBuffer(bytes: oldSealed))
                        RETURNING kind
                        """, logger: logger)
                    changed += rows.count
                }
                _ = try await c.rows("COMMIT", logger: logger)
                return changed
            } catch {
                if !c.isClosed, SerialConnection.isServerError(error) { _ = try? await c.rows("ROLLBACK", logger: logger) }
                throw error
            }
        }
    }

    /// A row of `NAME_personal` read as (kind, ref, subject, sealed, key_id).
    private func personalRow(_ row: PostgresRow) throws -> PersonalRow {
        let (kind, ref, subject, sealed, keyID) = try row.decode((Int16, ByteBuffer, ByteBuffer, ByteBuffer?, ByteBuffer).self)
        guard let k = UInt8(exactly: kind) else { throw SharedLogError.server("a row of \(personalTable) has kind \(kind)") }
        return PersonalRow(kind: k, ref: Array(ref.readableBytesView), subject: Array(subject.readableBytesView),
                           sealed: sealed.map { Array($0.readableBytesView) }, keyID: Array(keyID.readableBytesView))
    }

    /// The seq of the event with `id`, if the shared log has it.
    public func seq(forID id: UUID) async throws -> UInt64? {
        try await connection.run { c in
            for row in try await c.rows("SELECT seq FROM \(unescaped: events) WHERE id = \(id)", logger: logger) {
                return UInt64(clamping: try row.decode(Int64.self))
            }
            return nil
        }
    }

    /// Closes the connection.
    public func close() async {
        await connection.close()
    }
}
