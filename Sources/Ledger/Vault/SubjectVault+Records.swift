import Crypto
import Foundation

/// A personal value read from the vault: the value, or the pseudonym of the erased subject
/// it belonged to.
public enum OpenedField: Sendable, Equatable, CustomStringConvertible {
    /// The value.
    case value(String)
    /// The subject was erased: the value is gone for good.
    case erased(Pseudonym)

    /// The value, or `erased:PSEUDONYM`: what outputs show.
    public var description: String {
        switch self {
        case .value(let v): return v
        case .erased(let p): return "erased:\(p)"
        }
    }
}

/// An account the vault holds: its own pseudonym (what an event's account field names) and
/// the subject it belongs to (the email it registered with).
public struct VaultAccount: Sendable, Equatable, Hashable {
    /// The account's pseudonym: 128 random bits, never derived from its name.
    public let pseudonym: Pseudonym
    /// The subject of the email the account registered with.
    public let owner: Pseudonym
}

/// A subject's two secrets: the key that seals its values and the secret its commitments
/// are made under.
struct SubjectKeys: Sendable {
    var key: SymmetricKey
    var secret: [UInt8]
}

/// The records of the vault, as stored:
/// - `subjects`: pseudonym → key (32) ‖ secret (32) ‖ AES-GCM of the email (bound to the
///   pseudonym); empty once erased;
/// - `accounts`: account pseudonym → owner (16) ‖ AES-GCM of the name under the owner's key
///   (bound to the account); the owner alone once erased;
/// - `texts`: subject ‖ commitment → AES-GCM of event id ‖ field ‖ 0 ‖ text (bound to both);
///   deleted with the subject;
/// - `lookup`: HMAC(kind ‖ value) under the vault's index key → pseudonym (a subject's for
///   an email, an account's for an account name);
/// - `owned`: subject ‖ 0 ‖ look-up hash, and subject ‖ 1 ‖ account: what an erasure deletes;
/// - `erased`: HMAC of each erased email under the vault's erased key (`alreadyErased`).
extension SubjectVault {
    static let commitmentLabel = Array("permission-ledger commitment 2\u{0}".utf8)
    static let subjectLabel = Array("permission-ledger subject 2\u{0}".utf8)
    static let accountLabel = Array("permission-ledger account 2\u{0}".utf8)
    static let textLabel = Array("permission-ledger text 2\u{0}".utf8)

    /// The commitment to `value` in field `field` of event `event` under a subject's
    /// `secret`: SHA-256 over a label, the 256-bit secret, the event id, the field's name and
    /// the value. Hiding (no guess can be checked without the secret, which erasure deletes)
    /// and binding (SHA-256's collision resistance); the event id and the field make the same
    /// email in two events, or in two fields, two unrelated commitments. HMAC's nesting guards
    /// a MAC against length extension, which a commitment — always recomputed over the whole
    /// field — does not need, and it costs a second hash (BENCHMARKS.md, the subject vault).
    public static func commitment(value: String, field: String, event: UUID, secret: some ContiguousBytes) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: commitmentLabel)
        secret.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        hasher.update(data: uuidBytes(event))
        hasher.update(data: Array(field.utf8))
        hasher.update(data: [0])
        hasher.update(data: Array(value.utf8))
        return Array(hasher.finalize())
    }

    static func uuidBytes(_ id: UUID) -> [UInt8] {
        withUnsafeBytes(of: id.uuid) { Array($0) }
    }

    /// The keyed hash a look-up is stored under (never the value).
    static func lookupHash(_ kind: VaultLookup, _ value: String, _ g: Generation) -> [UInt8] {
        var mac = g.indexMAC
        mac.update(data: [kind.rawValue])
        mac.update(data: Array(value.utf8))
        return Array(mac.finalize())
    }

    static func erasedHash(_ email: String, _ g: Generation) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(email.utf8), using: g.erasedKey))
    }

    static func ownedLookupKey(_ subject: Pseudonym, _ hash: [UInt8]) -> [UInt8] { subject.bytes + [0] + hash }
    static func ownedAccountKey(_ subject: Pseudonym, _ account: Pseudonym) -> [UInt8] { subject.bytes + [1] + account.bytes }

    // MARK: sealing

    static func seal(_ plain: [UInt8], key: SymmetricKey, nonce: ArraySlice<UInt8>, context: [UInt8]) throws -> [UInt8] {
        let box = try AES.GCM.seal(plain, using: key, nonce: try AES.GCM.Nonce(data: nonce), authenticating: context)
        guard let combined = box.combined else { throw VaultError(reason: .damaged("AES-GCM gave no combined form")) }
        return Array(combined)
    }

    static func unseal(_ sealed: some DataProtocol, key: SymmetricKey, context: [UInt8], field: String) throws -> [UInt8] {
        do {
            return Array(try AES.GCM.open(try AES.GCM.SealedBox(combined: sealed), using: key, authenticating: context))
        } catch {
            throw VaultError(reason: .sealBroken(field: field))
        }
    }

    static func utf8(_ bytes: some Collection<UInt8>, _ what: String) throws -> String {
        guard let text = String(bytes: bytes, encoding: .utf8) else { throw VaultError(reason: .damaged("\(what) is not UTF-8")) }
        return text
    }

    static func encodeSubject(_ keys: SubjectKeys, email: String, _ subject: Pseudonym, nonce: ArraySlice<UInt8>) throws -> [UInt8] {
        keys.key.withUnsafeBytes { Array($0) } + keys.secret
            + (try seal(Array(email.utf8), key: keys.key, nonce: nonce, context: subjectLabel + subject.bytes))
    }

    /// A subject record's keys alone (what commitments and sealing need), nil once erased.
    static func subjectKeys(_ bytes: some Collection<UInt8>, _ subject: Pseudonym) throws -> SubjectKeys? {
        if bytes.isEmpty { return nil }
        let b = Array(bytes)
        guard b.count > 64 else { throw VaultError(reason: .damaged("the record of subject \(subject) is \(b.count) bytes")) }
        return SubjectKeys(key: SymmetricKey(data: b[0..<32]), secret: Array(b[32..<64]))
    }

    static func decodeEmail(_ bytes: [UInt8], _ subject: Pseudonym) throws -> String? {
        guard let keys = try subjectKeys(bytes, subject) else { return nil }
        let plain = try unseal(bytes[64...], key: keys.key, context: subjectLabel + subject.bytes, field: "the email of subject \(subject)")
        return try utf8(plain, "the email of subject \(subject)")
    }

    static func textContext(_ subject: Pseudonym, _ commitment: [UInt8]) -> [UInt8] { textLabel + subject.bytes + commitment }

    /// A text's plain form: the event and field it was written in, then the text (so that
    /// opening checks it against its commitment).
    static func textPlain(_ text: String, field: String, event: UUID) -> [UInt8] {
        uuidBytes(event) + Array(field.utf8) + [0] + Array(text.utf8)
    }

    // MARK: reads

    /// The keys of `subject` in generation `g`: from the cache of that generation, else read
    /// (and cached); nil once erased; `unknownSubject` when the vault never held it. An
    /// erasure always switches generation, so cached keys never outlive their subject's
    /// erasure past the switch.
    func keys(of subject: Pseudonym, in g: Generation) throws -> SubjectKeys? {
        if let cached = keyCache.withLock({ $0.generation == g.index ? $0.keys[subject] : nil }) { return cached }
        guard let keys = try g.environment.read({ txn in
            try txn.withValue(g.subjects, key: subject.bytes) { try Self.subjectKeys($0, subject) }
        }) else {
            throw VaultError(reason: .unknownSubject(subject))
        }
        keyCache.withLock { cache in
            if cache.generation != g.index || cache.keys.count >= Self.keyCacheLimit {
                cache = KeyCache(generation: g.index, keys: [:])
            }
            cache.keys[subject] = .some(keys)
        }
        return keys
    }

    static func pseudonym(_ bytes: [UInt8]) throws -> Pseudonym {
        guard let p = Pseudonym(bytes: bytes) else { throw VaultError(reason: .damaged("a look-up names \(bytes.count) bytes, not a pseudonym")) }
        return p
    }

    /// The subject `email` names now: nil for an email never seen, or whose subject was erased
    /// (a later event naming it starts a new subject).
    public func subject(email: String) throws -> Pseudonym? {
        let g = try current()
        let hash = Self.lookupHash(.email, email, g)
        return try g.environment.read { txn in try txn.get(g.lookup, key: hash) }.map(Self.pseudonym)
    }

    /// The account `name` names now: nil for a name never registered, or whose subject was
    /// erased (it may be registered again, as a new account).
    public func account(named name: String) throws -> VaultAccount? {
        let g = try current()
        let hash = Self.lookupHash(.account, name, g)
        return try g.environment.read { txn -> VaultAccount? in
            guard let bytes = try txn.get(g.lookup, key: hash) else { return nil }
            let account = try Self.pseudonym(bytes)
            return VaultAccount(pseudonym: account, owner: try Self.owner(of: account, txn, g))
        }
    }

    static func owner<T: TransactionReading & ~Copyable>(of account: Pseudonym, _ txn: borrowing T, _ g: Generation) throws -> Pseudonym {
        guard let record = try txn.get(g.accounts, key: account.bytes) else { throw VaultError(reason: .unknownSubject(account)) }
        guard record.count >= 16 else { throw VaultError(reason: .damaged("the record of account \(account) is \(record.count) bytes")) }
        return try pseudonym(Array(record[0..<16]))
    }

    /// The subject account `account` belongs to (kept after its erasure).
    public func owner(ofAccount account: Pseudonym) throws -> Pseudonym {
        let g = try current()
        return try g.environment.read { txn in try Self.owner(of: account, txn, g) }
    }

    /// The email of `subject`: `.erased` once it was erased; `unknownSubject` when the vault
    /// never held it.
    public func email(of subject: Pseudonym) throws -> OpenedField {
        let g = try current()
        guard let bytes = try g.environment.read({ txn in try txn.get(g.subjects, key: subject.bytes) }) else {
            throw VaultError(reason: .unknownSubject(subject))
        }
        guard let email = try Self.decodeEmail(bytes, subject) else { return .erased(subject) }
        return .value(email)
    }

    /// The name of account `account`: `.erased` with its owner's pseudonym once its subject was
    /// erased; `unknownSubject` when the vault never held it.
    public func name(ofAccount account: Pseudonym) throws -> OpenedField {
        let g = try current()
        guard let record = try g.environment.read({ txn in try txn.get(g.accounts, key: account.bytes) }), record.count >= 16 else {
            throw VaultError(reason: .unknownSubject(account))
        }
        let owner = try Self.pseudonym(Array(record[0..<16]))
        guard let keys = try keys(of: owner, in: g), record.count > 16 else { return .erased(owner) }
        let plain = try Self.unseal(record[16...], key: keys.key, context: Self.accountLabel + account.bytes, field: "the name of account \(account)")
        return .value(try Self.utf8(plain, "the name of account \(account)"))
    }

    /// The free text (a name, a comment, a reason) `subject` wrote under `commitment`, checked
    /// against it: `.erased` once the subject was erased; `corrupt` when it is missing for a
    /// live subject, does not open, or does not match the commitment.
    public func text(subject: Pseudonym, commitment: [UInt8]) throws -> OpenedField {
        let g = try current()
        guard let keys = try keys(of: subject, in: g) else { return .erased(subject) }
        let what = "a text of subject \(subject)"
        guard let sealed = try g.environment.read({ txn in try txn.get(g.texts, key: subject.bytes + commitment) }) else {
            throw VaultError(reason: .damaged("\(what) is missing"))
        }
        let plain = try Self.unseal(sealed, key: keys.key, context: Self.textContext(subject, commitment), field: what)
        guard plain.count > 16, let zero = plain[16...].firstIndex(of: 0) else {
            throw VaultError(reason: .damaged("\(what) is not in the stored form"))
        }
        let event = Self.uuid(plain[0..<16])
        let field = try Self.utf8(plain[16..<zero], what), text = try Self.utf8(plain[(zero + 1)...], what)
        guard Self.commitment(value: text, field: field, event: event, secret: keys.secret) == commitment else {
            throw VaultError(reason: .commitmentMismatch(field: field))
        }
        return .value(text)
    }

    static func uuid(_ bytes: some Collection<UInt8>) -> UUID {
        let b = Array(bytes)
        return UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }

    /// The commitment to `value` in field `field` of event `event` for `subject`, under the
    /// subject's secret; `unknownSubject` for a subject the vault does not hold or erased.
    public func commitment(value: String, field: String, event: UUID, subject: Pseudonym) throws -> [UInt8] {
        guard let keys = try keys(of: subject, in: try current()) else { throw VaultError(reason: .unknownSubject(subject)) }
        return Self.commitment(value: value, field: field, event: event, secret: keys.secret)
    }

    /// The secret `subject`'s commitments are made under (what an export carries so that its
    /// values can be checked), nil once erased.
    public func secret(of subject: Pseudonym) throws -> [UInt8]? {
        try keys(of: subject, in: try current())?.secret
    }

    /// Whether `email` belonged to a subject this vault erased (known from a keyed hash kept
    /// here, never from the log).
    public func wasErased(email: String) throws -> Bool {
        let g = try current()
        return try g.environment.read { txn in try txn.get(g.erased, key: Self.erasedHash(email, g)) } != nil
    }

    /// A batch of writes, committed in one durable transaction (``VaultBatch/commit(keeping:)``).
    public func batch() -> VaultBatch { VaultBatch(self) }
}
