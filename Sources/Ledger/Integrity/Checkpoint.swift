import Crypto
import Foundation

/// A statement of the log's head at one moment — `(seq, head hash)` — for an auditor to keep
/// outside the ledger. A bare hash chain can't reveal a truncated tail or a complete
/// rewrite; a kept checkpoint can: `verify(against:)` proves the history up to it is
/// unchanged. Optionally HMAC-signed with a key kept outside the ledger, so that the
/// checkpoint itself can't be forged by whoever can rewrite the ledger.
public struct Checkpoint: Sendable, Equatable {
    /// The seq of the last event covered.
    public var seq: UInt64
    /// That event's chain hash (32 zero bytes for an empty log).
    public var headHash: [UInt8]
    /// That event's time.
    public var at: Timestamp?
    /// HMAC-SHA-256 over the statement, when signed.
    public var signature: [UInt8]?

    /// Creates a checkpoint from its parts (e.g. read back from a file).
    public init(seq: UInt64, headHash: [UInt8], at: Timestamp?, signature: [UInt8]?) {
        self.seq = seq
        self.headHash = headHash
        self.at = at
        self.signature = signature
    }

    /// The head of `log` now, signed with `key` when given.
    public static func make(_ log: EventLog, key: [UInt8]? = nil) throws -> Checkpoint {
        let head = try log.head()
        var c = Checkpoint(seq: head.seq, headHash: head.hash, at: head.at, signature: nil)
        if let key { c.signature = c.sign(key) }
        return c
    }

    /// The bytes a signature covers.
    var statement: [UInt8] {
        Array("permission-ledger checkpoint v1\n\(seq)\n".utf8) + headHash
    }

    func sign(_ key: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: statement, using: SymmetricKey(data: key)))
    }

    /// Whether the signature is valid under `key` (constant-time comparison).
    public func isSigned(by key: [UInt8]) -> Bool {
        guard let signature else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: statement, using: SymmetricKey(data: key))
    }

    /// What is wrong with `log` against this checkpoint, or nil when the history up to it is
    /// unchanged: the whole chain is walked (`EventLog.verify`) and the event at `seq` must
    /// carry `headHash`.
    public func problem(in log: EventLog) throws -> (seq: UInt64?, problem: String)? {
        let report = try log.verify()
        if !report.ok, let bad = report.firstBadSeq, bad <= seq {
            return (bad, report.problem ?? "the chain is broken")
        }
        if seq == 0 { return nil }
        guard let event = try log.event(seq) else {
            let head = try log.head().seq
            return (head + 1, "the log ends at seq \(head), before the checkpoint's seq \(seq): events were removed")
        }
        if event.hash != headHash {
            return (seq, "the event at seq \(seq) no longer has the checkpoint's hash: the history up to it was rewritten")
        }
        return nil
    }
}
