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
    /// The signature over the statement, when signed: HMAC-SHA-256 (32 bytes, no key id) or
    /// Ed25519 (64 bytes, with `keyId`).
    public var signature: [UInt8]?
    /// For an Ed25519 signature: the id of the public key that checks it.
    public var keyId: String?

    /// Creates a checkpoint from its parts (e.g. read back from a file).
    public init(seq: UInt64, headHash: [UInt8], at: Timestamp?, signature: [UInt8]?, keyId: String? = nil) {
        self.seq = seq
        self.headHash = headHash
        self.at = at
        self.signature = signature
        self.keyId = keyId
    }

    /// How a checkpoint is signed.
    public enum Scheme: String, Sendable {
        /// HMAC-SHA-256 under a shared secret: whoever can check it can also forge it.
        case hmacSHA256 = "hmac-sha256"
        /// Ed25519: checked with a public key; only the private key's holder can sign.
        case ed25519
    }

    /// How this checkpoint is signed (nil when unsigned).
    public var scheme: Scheme? {
        guard let signature else { return nil }
        return keyId != nil || signature.count == 64 ? .ed25519 : .hmacSHA256
    }

    /// The head of `log` now, signed with the Ed25519 `key`: the signature covers the seq,
    /// the head hash, the time and the key id.
    public static func make(_ log: EventLog, signingKey key: CheckpointSigningKey) throws -> Checkpoint {
        let head = try log.head()
        var c = Checkpoint(seq: head.seq, headHash: head.hash, at: head.at, signature: nil, keyId: key.publicKey.keyId)
        c.signature = try key.sign(c.ed25519Statement)
        return c
    }

    /// The bytes an Ed25519 signature covers: a label, seq, time (seconds, or "-" for an
    /// empty log), key id, then the 32-byte head hash.
    var ed25519Statement: [UInt8] {
        Array("permission-ledger checkpoint v2 ed25519\n\(seq)\n\(at.map { String($0.seconds) } ?? "-")\n\(keyId ?? "")\n".utf8) + headHash
    }

    /// What checking this checkpoint's signature with a public key finds.
    public enum SignatureCheck: Sendable, Equatable {
        /// Signed with the private key of this public key, and unaltered.
        case valid
        /// Not signed at all.
        case unsigned
        /// Signed with HMAC (a shared secret), which a public key can't check.
        case hmacSigned
        /// Signed by another key (the checkpoint's key id).
        case otherKey(String)
        /// The signature does not match: the checkpoint was altered.
        case invalid
    }

    /// Checks the Ed25519 signature with `publicKey`.
    public func check(publicKey: CheckpointPublicKey) -> SignatureCheck {
        guard let signature else { return .unsigned }
        guard scheme == .ed25519 else { return .hmacSigned }
        if let keyId, keyId != publicKey.keyId { return .otherKey(keyId) }
        return publicKey.isValidSignature(signature, for: ed25519Statement) ? .valid : .invalid
    }

    /// The head of `log` now, HMAC-signed with `key` when given.
    public static func make(_ log: EventLog, key: [UInt8]? = nil) throws -> Checkpoint {
        let head = try log.head()
        var c = Checkpoint(seq: head.seq, headHash: head.hash, at: head.at, signature: nil)
        if let key { c.signature = c.sign(key) }
        return c
    }

    /// The bytes an HMAC signature covers.
    var statement: [UInt8] {
        Array("permission-ledger checkpoint v1\n\(seq)\n".utf8) + headHash
    }

    func sign(_ key: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: statement, using: SymmetricKey(data: key)))
    }

    /// Whether the HMAC signature is valid under `key` (constant-time comparison).
    public func isSigned(by key: [UInt8]) -> Bool {
        guard let signature, scheme == .hmacSHA256 else { return false }
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

/// The private half of an Ed25519 key pair that signs checkpoints (`ledger-tool keygen`).
/// Keep it outside the ledger; give auditors the public half.
public struct CheckpointSigningKey: Sendable {
    private let key: Curve25519.Signing.PrivateKey

    /// A new random key.
    public static func generate() -> CheckpointSigningKey { CheckpointSigningKey(key: .init()) }

    private init(key: Curve25519.Signing.PrivateKey) { self.key = key }

    /// A key from its 32 raw bytes; throws when they are not a key.
    public init(rawRepresentation bytes: [UInt8]) throws {
        key = try Curve25519.Signing.PrivateKey(rawRepresentation: bytes)
    }

    /// The 32 raw bytes.
    public var rawRepresentation: [UInt8] { Array(key.rawRepresentation) }

    /// The public half.
    public var publicKey: CheckpointPublicKey { CheckpointPublicKey(key: key.publicKey) }

    func sign(_ statement: [UInt8]) throws -> [UInt8] { Array(try key.signature(for: statement)) }
}

/// The public half of a checkpoint signing key: checks signatures, can't make them.
public struct CheckpointPublicKey: Sendable {
    fileprivate let key: Curve25519.Signing.PublicKey

    fileprivate init(key: Curve25519.Signing.PublicKey) { self.key = key }

    /// A key from its 32 raw bytes; throws when they are not a key.
    public init(rawRepresentation bytes: [UInt8]) throws {
        key = try Curve25519.Signing.PublicKey(rawRepresentation: bytes)
    }

    /// The 32 raw bytes.
    public var rawRepresentation: [UInt8] { Array(key.rawRepresentation) }

    /// The key id a signed checkpoint names: the first 8 bytes of SHA-256 of the raw key, in hex.
    public var keyId: String { SHA256.hash(data: rawRepresentation).prefix(8).map { String(format: "%02x", $0) }.joined() }

    func isValidSignature(_ signature: [UInt8], for statement: [UInt8]) -> Bool {
        key.isValidSignature(signature, for: statement)
    }
}
