import Crypto
import Foundation

/// A personal field as the chain holds it: whose it is, and a commitment to its value — never
/// the value. `ciphertext` carries the value and the commitment's secret sealed under the
/// subject's key; it travels beside the event (never inside its hashed bytes), and after
/// the subject's erasure nothing can open it.
public struct SealedField: Sendable, Equatable {
    /// The subject the value belongs to.
    public let subject: Pseudonym
    /// HMAC-SHA-256, under a random 256-bit secret of this field alone, of the event id, the
    /// field's name and the value: the same email in two events has two unrelated
    /// commitments, and no guess can be checked against one without its secret.
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
        var message = commitmentLabel
        message += uuidBytes(event)
        message += Array(field.utf8)
        message.append(0)
        message += Array(value.utf8)
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret)))
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

    static func decodeSubject(_ bytes: [UInt8], _ subject: Pseudonym) throws -> SubjectRecord? {
        if bytes.isEmpty { return nil }
        guard bytes.count > 32 else { throw VaultError(reason: .damaged("the record of subject \(subject) is \(bytes.count) bytes")) }
        let key = SymmetricKey(data: bytes[0..<32])
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
        let box = try AES.GCM.seal(Array(email.utf8), using: key, authenticating: subjectLabel + subject.bytes)
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
                    var p = Pseudonym.random()
                    while try txn.get(g.subjects, key: p.bytes) != nil { p = Pseudonym.random() }
                    try txn.put(g.subjects, key: p.bytes, value: try Self.encodeSubject(key: SymmetricKey(size: .bits256), email: email, p))
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
        let g = try current()
        guard let bytes = try g.environment.read({ txn in try txn.get(g.subjects, key: subject.bytes) }),
              let record = try Self.decodeSubject(bytes, subject) else {
            throw VaultError(reason: .unknownSubject(subject))
        }
        let secret = Self.randomKeyBytes()
        let commitment = Self.commitment(value: value, field: field, event: event, secret: secret)
        let box = try AES.GCM.seal(secret + Array(value.utf8), using: record.key,
                                   authenticating: Self.sealContext(subject, field: field, event: event))
        guard let combined = box.combined else { throw VaultError(reason: .damaged("AES-GCM gave no combined form")) }
        return SealedField(subject: subject, commitment: commitment, ciphertext: Array(combined))
    }

    /// Opens a sealed field of `event`: its value, checked against the commitment, or
    /// `.erased` when its subject was erased. Throws `VaultError` (`corrupt`) when the seal
    /// does not open (damaged, or moved to another event or field) or the value does not
    /// match the commitment; `unknownSubject` for a subject the vault never held.
    public func open(_ sealed: SealedField, field: String, event: UUID) throws -> OpenedField {
        let g = try current()
        let subject = sealed.subject
        guard let bytes = try g.environment.read({ txn in try txn.get(g.subjects, key: subject.bytes) }) else {
            throw VaultError(reason: .unknownSubject(subject))
        }
        guard let record = try Self.decodeSubject(bytes, subject) else { return .erased(subject) }
        let plain: [UInt8]
        do {
            let box = try AES.GCM.SealedBox(combined: sealed.ciphertext)
            plain = Array(try AES.GCM.open(box, using: record.key,
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
