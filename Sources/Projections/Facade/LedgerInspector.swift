import Foundation
import Ledger

/// A read-only view of a ledger's event log, for operator tools and auditors: the head, the
/// stored events, the chain's verification and checkpoints. It cannot append: every write goes
/// through the ledger's commands, which keep the projections in step with the log.
///
/// Get one from ``PermissionLedger/inspector``. Each call is one LMDB read transaction; none
/// blocks a writer.
public struct LedgerInspector: Sendable {
    let log: EventLog

    /// The last event's seq, hash and time (seq 0 and 32 zero bytes for an empty ledger).
    public func head() throws -> Head { try log.head() }

    /// The stored event at `seq`, nil past the head.
    public func event(_ seq: UInt64) throws -> StoredEvent? { try log.event(seq) }

    /// The stored events from `from` through `to` (both included), in seq order.
    public func events(from: UInt64 = 1, to: UInt64 = .max) throws -> [StoredEvent] {
        try log.events(from: from, to: to)
    }

    /// The seq of the event with this id, nil when none has it.
    public func seq(forEventID id: UUID) throws -> UInt64? { try log.seq(forID: id) }

    /// The events from `seq` on as they are committed: every stored event, then each new one.
    public func follow(from seq: UInt64 = 1) -> AsyncThrowingStream<StoredEvent, any Error> { log.follow(from: seq) }

    /// Recomputes the hash chain from seq 1 and reports the first event that does not match.
    public func verifyChain() throws -> VerifyReport { try log.verify() }

    /// A checkpoint of the head: its seq, hash and time, signed with an HMAC-SHA-256 `key`
    /// when one is given.
    public func checkpoint(key: [UInt8]? = nil) throws -> Checkpoint { try Checkpoint.make(log, key: key) }

    /// A checkpoint of the head signed with Ed25519, which anyone with the public key can check.
    public func checkpoint(signingKey: CheckpointSigningKey) throws -> Checkpoint {
        try Checkpoint.make(log, signingKey: signingKey)
    }

    /// What is wrong with this history against a kept checkpoint: nil when the event at the
    /// checkpoint's seq has the checkpoint's hash (and time), else the seq at fault (nil when
    /// the history is shorter) and a sentence.
    public func problem(against checkpoint: Checkpoint) throws -> (seq: UInt64?, problem: String)? {
        try checkpoint.problem(in: log)
    }
}

extension PermissionLedger {
    /// A read-only view of the event log: head, events, chain verification, checkpoints.
    public var inspector: LedgerInspector { LedgerInspector(log: log) }
}
