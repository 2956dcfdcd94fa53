import Crypto
import Foundation

/// A personal field as the chain holds it: whose it is, and a commitment to its value — never
/// the value. `ciphertext` carries the value and the commitment's secret sealed under the
/// subject's key; it travels beside the event (never inside its hashed bytes), and after
/// the subject's erasure nothing can open it.
public struct SealedField: Sendable, Equatable {
    /// The subject the value belongs to.
    public let subject: Pseudonym
    /// SHA-256 of a random 256-bit secret of this field alone, the event id, the field's name
    /// and the value: the same email in two events has two unrelated commitments, and no
    /// guess can be checked against one without its secret.
    public let commitment: [UInt8]
    /// AES-GCM (nonce ‖ ciphertext ‖ tag) of the secret and the value under the subject's
    /// key, bound to the subject, the event id and the field's name.
    public let ciphertext: [UInt8]

    /// A sealed field from its parts (as stored or exported).
    public init(subject: Pseudonym, commitment: [UInt8], ciphertext: [UInt8]) {
        self.subject = subject
        self.commitment = commitment
        self.ciphertext = ciphertext
    }
}

/// A personal value to seal: the value, its field's name, its event and its subject.
public struct FieldToSeal: Sendable, Equatable {
    /// The value.
    public var value: String
    /// The field's name in the export form (`email`, `contacts[1].email`, …).
    public var field: String
    /// The id of the event the field belongs to.
    public var event: UUID
    /// Whose the value is.
    public var subject: Pseudonym

    /// A value to seal.
    public init(value: String, field: String, event: UUID, subject: Pseudonym) {
        self.value = value
        self.field = field
        self.event = event
        self.subject = subject
    }
}

/// A personal field opened: its value, or the pseudonym of the erased subject it belonged to.
public enum OpenedField: Sendable, Equatable, CustomStringConvertible {
    /// The value, checked against the commitment.
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

extension SubjectVault {
    static let commitmentLabel = Array("permission-ledger commitment 1\u{0}".utf8)
    static let sealLabel = Array("permission-ledger seal 1\u{0}".utf8)
    static let subjectLabel = Array("permission-ledger subject 1\u{0}".utf8)

    /// The commitment to `value` in field `field` of event `event` under `secret`.
    public static func commitment(value: String, field: String, event: UUID, secret: some ContiguousBytes) -> [UInt8] {
        // SHA-256 over the label, the 256-bit secret, the event id, the field's name and the
        // value: hiding (no guess can be checked without the secret) and binding (SHA-256's
        // collision resistance). HMAC's nesting guards a MAC against length extension, which a
        // commitment — always recomputed over the whole field — does not need; it made sealing
        // and opening about a third slower here (BENCHMARKS.md, the subject vault).
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

    static func sealContext(_ subject: Pseudonym, field: String, event: UUID) -> [UInt8] {
        var context = sealLabel
        context += subject.bytes
        context += uuidBytes(event)
        context += Array(field.utf8)
        return context
    }

    /// The keyed hash a look-up is stored under (never the value).
    static func lookupHash(_ kind: VaultLookup, _ value: String, _ g: Generation) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: [kind.rawValue] + Array(value.utf8), using: g.indexKey))
    }

    static func erasedHash(_ email: String, _ g: Generation) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(email.utf8), using: g.erasedKey))
    }

    /// A subject's record: its key and its email sealed under it; empty once erased.
    struct SubjectRecord {
        var key: SymmetricKey
        var email: String
    }

    /// A subject record's key alone (what sealing and opening need), nil once erased.
    static func subjectKey(_ bytes: [UInt8], _ subject: Pseudonym) throws -> SymmetricKey? {
        if bytes.isEmpty { return nil }
        guard bytes.count > 32 else { throw VaultError(reason: .damaged("the record of subject \(subject) is \(bytes.count) bytes")) }
        return SymmetricKey(data: bytes[0..<32])
    }

    static func decodeSubject(_ bytes: [UInt8], _ subject: Pseudonym) throws -> SubjectRecord? {
        guard let key = try subjectKey(bytes, subject) else { return nil }
        do {
            let box = try AES.GCM.SealedBox(combined: bytes[32...])
            let email = try AES.GCM.open(box, using: key, authenticating: subjectLabel + subject.bytes)
            guard let text = String(bytes: email, encoding: .utf8) else { throw VaultError(reason: .damaged("the email of subject \(subject) is not UTF-8")) }
            return SubjectRecord(key: key, email: text)
        } catch let error as VaultError {
            throw error
        } catch {
            throw VaultError(reason: .damaged("the email of subject \(subject) does not open under its key"))
        }
    }

    static func encodeSubject(key: SymmetricKey, email: String, _ subject: Pseudonym) throws -> [UInt8] {
        let box = try AES.GCM.seal(Array(email.utf8), using: key, nonce: try AES.GCM.Nonce(data: try randomBytes(12)),
                                   authenticating: subjectLabel + subject.bytes)
        guard let combined = box.combined else { throw VaultError(reason: .damaged("AES-GCM gave no combined form")) }
        return key.withUnsafeBytes { Array($0) } + Array(combined)
    }

    /// The subject a look-up names now (nil for a value never seen, or erased).
    public func subject(_ kind: VaultLookup, _ value: String) throws -> Pseudonym? {
        let g = try current()
        let hash = Self.lookupHash(kind, value, g)
        guard let bytes = try g.environment.read({ txn in try txn.get(g.lookup, key: hash) }) else { return nil }
        guard let p = Pseudonym(bytes: bytes) else { throw VaultError(reason: .damaged("a look-up names \(bytes.count) bytes, not a pseudonym")) }
        return p
    }

    /// The subject of `email`: the one it has, or a new one (random pseudonym, fresh key)
    /// when the email was never seen or its subject was erased. `isNew` tells which.
    public func assignSubject(email: String) throws -> (subject: Pseudonym, isNew: Bool) {
        let assigned = try assignSubjects(emails: [email])
        guard let first = assigned.first else { throw VaultError(reason: .damaged("no subject assigned")) }
        return first
    }

    /// ``assignSubject(email:)`` for many emails in one durable transaction (one flush for a
    /// whole batch of commands), in the order given; an email given twice gets one subject.
    public func assignSubjects(emails: [String]) throws -> [(subject: Pseudonym, isNew: Bool)] {
        try writing { g in
            try g.environment.write { txn in
                var made: [String: Pseudonym] = [:]
                var out: [(subject: Pseudonym, isNew: Bool)] = []
                out.reserveCapacity(emails.count)
                for email in emails {
                    if let p = made[email] { out.append((p, false)); continue }
                    let hash = Self.lookupHash(.email, email, g)
                    if let bytes = try txn.get(g.lookup, key: hash) {
                        guard let p = Pseudonym(bytes: bytes) else { throw VaultError(reason: .damaged("a look-up names \(bytes.count) bytes, not a pseudonym")) }
                        out.append((p, false))
                        continue
                    }
                    var p = try Pseudonym.random()
                    while try txn.get(g.subjects, key: p.bytes) != nil { p = try Pseudonym.random() }
                    try txn.put(g.subjects, key: p.bytes, value: try Self.encodeSubject(key: SymmetricKey(data: try Self.randomBytes(32)), email: email, p))
                    try txn.put(g.lookup, key: hash, value: p.bytes)
                    try txn.put(g.owned, key: p.bytes + hash, value: [UInt8]())
                    made[email] = p
                    out.append((p, true))
                }
                return out
            }
        }
    }

    /// Makes `value` (an account name) look up `subject`, the subject that registered it;
    /// refused for a subject the vault does not hold (unknown or erased).
    public func link(_ kind: VaultLookup, _ value: String, to subject: Pseudonym) throws {
        try writing { g in
            let hash = Self.lookupHash(kind, value, g)
            try g.environment.write { txn in
                guard let record = try txn.get(g.subjects, key: subject.bytes), !record.isEmpty else {
                    throw VaultError(reason: .unknownSubject(subject))
                }
                if let old = try txn.get(g.lookup, key: hash), let owner = Pseudonym(bytes: old), owner != subject {
                    _ = try txn.delete(g.owned, key: owner.bytes + hash)
                }
                try txn.put(g.lookup, key: hash, value: subject.bytes)
                try txn.put(g.owned, key: subject.bytes + hash, value: [UInt8]())
            }
        }
    }

    /// The email of `subject`: `.erased` once it was erased; `unknownSubject` when the vault
    /// never held it.
    public func email(of subject: Pseudonym) throws -> OpenedField {
        let g = try current()
        guard let bytes = try g.environment.read({ txn in try txn.get(g.subjects, key: subject.bytes) }) else {
            throw VaultError(reason: .unknownSubject(subject))
        }
        guard let record = try Self.decodeSubject(bytes, subject) else { return .erased(subject) }
        return .value(record.email)
    }

    /// Whether `email` belonged to a subject this vault erased (known from a keyed hash kept
    /// here, never from the log).
    public func wasErased(email: String) throws -> Bool {
        let g = try current()
        return try g.environment.read { txn in try txn.get(g.erased, key: Self.erasedHash(email, g)) } != nil
    }

    /// Seals `value` of field `field` in event `event` for `subject`: a fresh random secret,
    /// the commitment under it, and both sealed under the subject's key.
    public func seal(_ value: String, field: String, event: UUID, subject: Pseudonym) throws -> SealedField {
        let sealed = try seal([FieldToSeal(value: value, field: field, event: event, subject: subject)])
        guard let first = sealed.first else { throw VaultError(reason: .damaged("nothing sealed")) }
        return first
    }

    /// ``seal(_:field:event:subject:)`` for many fields at once (a batch of events): one
    /// look at the live generation and one draw of randomness for all. Throws
    /// `unknownSubject` for a subject the vault does not hold (never assigned, or erased).
    public func seal(_ fields: [FieldToSeal]) throws -> [SealedField] {
        let g = try current()
        // per field: a 32-byte secret and a 12-byte nonce
        let random = try Self.randomBytes(fields.count * 44)
        var out: [SealedField] = []
        out.reserveCapacity(fields.count)
        for (i, f) in fields.enumerated() {
            guard let key = try key(of: f.subject, in: g) else { throw VaultError(reason: .unknownSubject(f.subject)) }
            let secret = random[(i * 44) ..< (i * 44 + 32)]
            let nonce = try AES.GCM.Nonce(data: random[(i * 44 + 32) ..< (i * 44 + 44)])
            let commitment = Self.commitment(value: f.value, field: f.field, event: f.event, secret: secret)
            let box = try AES.GCM.seal(Array(secret) + Array(f.value.utf8), using: key, nonce: nonce,
                                       authenticating: Self.sealContext(f.subject, field: f.field, event: f.event))
            guard let combined = box.combined else { throw VaultError(reason: .damaged("AES-GCM gave no combined form")) }
            out.append(SealedField(subject: f.subject, commitment: commitment, ciphertext: Array(combined)))
        }
        return out
    }

    /// The key of `subject` in generation `g`: from the cache of that generation, else read
    /// (and cached); nil once erased; `unknownSubject` when the vault never held it. An
    /// erasure always switches generation, so a cached key never outlives its subject's
    /// erasure past the switch.
    func key(of subject: Pseudonym, in g: Generation) throws -> SymmetricKey? {
        if let cached = keyCache.withLock({ $0.generation == g.index ? $0.keys[subject] : nil }) { return cached }
        guard let bytes = try g.environment.read({ txn in try txn.get(g.subjects, key: subject.bytes) }) else {
            throw VaultError(reason: .unknownSubject(subject))
        }
        let key = try Self.subjectKey(bytes, subject)
        keyCache.withLock { cache in
            if cache.generation != g.index || cache.keys.count >= Self.keyCacheLimit {
                cache = KeyCache(generation: g.index, keys: [:])
            }
            cache.keys[subject] = .some(key)
        }
        return key
    }

    /// Opens a sealed field of `event`: its value, checked against the commitment, or
    /// `.erased` when its subject was erased. Throws `VaultError` (`corrupt`) when the seal
    /// does not open (damaged, or moved to another event or field) or the value does not
    /// match the commitment; `unknownSubject` for a subject the vault never held.
    public func open(_ sealed: SealedField, field: String, event: UUID) throws -> OpenedField {
        let g = try current()
        let subject = sealed.subject
        guard let key = try key(of: subject, in: g) else { return .erased(subject) }
        let plain: [UInt8]
        do {
            let box = try AES.GCM.SealedBox(combined: sealed.ciphertext)
            plain = Array(try AES.GCM.open(box, using: key,
                                           authenticating: Self.sealContext(subject, field: field, event: event)))
        } catch {
            throw VaultError(reason: .sealBroken(field: field))
        }
        guard plain.count >= 32, let value = String(bytes: plain[32...], encoding: .utf8) else {
            throw VaultError(reason: .sealBroken(field: field))
        }
        guard Self.commitment(value: value, field: field, event: event, secret: plain[0..<32]) == sealed.commitment else {
            throw VaultError(reason: .commitmentMismatch(field: field))
        }
        return .value(value)
    }
}
