import Crypto
import Ledger

extension Policy {
    /// The policy's deterministic binary form (what is stored with a ledger and what the
    /// fingerprint covers): threshold, window, duration, each contact type's roles in
    /// `ContactType.allCases` order (absent types as no roles), the limited set.
    var storedBytes: [UInt8] {
        var w = BinaryWriter(capacity: 64)
        w.write(UInt8(1))  // the form's version
        w.writeVarint(UInt64(lockoutThreshold))
        w.write(lockoutWindow)
        w.write(lockoutDuration)
        for type in ContactType.allCases { w.writeRoles(contactRoles[type] ?? []) }
        w.writeRoles(limitedOpenLicenseRoles)
        return w.bytes
    }

    /// Reads `storedBytes` back.
    static func decode(stored bytes: UnsafeRawBufferPointer) throws -> Policy {
        var r = BinaryReader(bytes)
        let version = try r.readUInt8()
        guard version == 1 else { throw LedgerDecodingError("unknown stored policy version \(version)", offset: 0) }
        let threshold = try r.readVarint()
        guard threshold <= UInt64(Int.max) else { throw LedgerDecodingError("lockout threshold out of range", offset: r.offset) }
        let window = try r.readInt64(), duration = try r.readInt64()
        var contacts: [ContactType: [Role]] = [:]
        for type in ContactType.allCases {
            let roles = try r.readRoles()
            if !roles.isEmpty { contacts[type] = roles }
        }
        let limited = try r.readRoles()
        try r.expectEnd()
        var p = Policy.default
        p.lockoutThreshold = Int(threshold)
        p.lockoutWindow = window
        p.lockoutDuration = duration
        p.contactRoles = contacts
        p.limitedOpenLicenseRoles = limited
        return p
    }

    /// The policy's fingerprint: the first 8 bytes of SHA-256 of its stored form, in hex
    /// (equal policies have equal fingerprints; the role order given does not matter).
    public var fingerprint: String {
        Hex.encode(SHA256.hash(data: normalised.storedBytes).prefix(8))
    }

    /// The policy with every role list in canonical order (what is compared and stored).
    var normalised: Policy {
        var p = self
        p.contactRoles = contactRoles.compactMapValues { $0.isEmpty ? nil : $0.canonical }
        p.limitedOpenLicenseRoles = limitedOpenLicenseRoles.canonical
        return p
    }

    /// The fields in which `other` differs from this policy, by name.
    func differences(from other: Policy) -> [String] {
        let a = normalised, b = other.normalised
        var fields: [String] = []
        if a.lockoutThreshold != b.lockoutThreshold { fields.append("lockoutThreshold") }
        if a.lockoutWindow != b.lockoutWindow { fields.append("lockoutWindow") }
        if a.lockoutDuration != b.lockoutDuration { fields.append("lockoutDuration") }
        if a.contactRoles != b.contactRoles { fields.append("contactRoles") }
        if a.limitedOpenLicenseRoles != b.limitedOpenLicenseRoles { fields.append("limitedOpenLicenseRoles") }
        return fields
    }
}

/// A ledger was opened with a policy other than the one stored with it: the projections
/// were folded under the stored one, so deciding, `verify` and `rebuild` under another
/// would disagree with them. Open without a policy (the stored one is used), with the stored
/// one, or set `Options.adoptPolicy` to switch (the projections are then rebuilt under the
/// new policy and the switch is recorded).
public struct PolicyConflict: Error, Sendable, CustomStringConvertible {
    /// The stored policy's fingerprint.
    public var stored: String
    /// The given policy's fingerprint.
    public var given: String
    /// The fields that differ.
    public var fields: [String]

    public var description: String {
        "the ledger's stored policy (\(stored)) differs from the one given (\(given)) in \(fields.joined(separator: ", ")); open without a policy to use the stored one, or set adoptPolicy to rebuild the projections under the new one"
    }
}

/// The policy stored with a ledger and the record of every change of it.
struct StoredPolicy {
    /// The policy in force.
    var policy: Policy
    /// Each adoption of another policy: the head seq when it was adopted and the
    /// fingerprint of the policy it replaced.
    var adoptions: [(seq: UInt64, replaced: String)]
    /// Set while the projections are being rebuilt under a newly adopted policy: an open that
    /// finds it set finishes the rebuild first.
    var rebuildPending = false

    var encoded: [UInt8] {
        var w = BinaryWriter(capacity: 96)
        w.writeBytes(policy.normalised.storedBytes)
        w.writeVarint(UInt64(adoptions.count))
        for a in adoptions { w.writeVarint(a.seq); w.write(a.replaced) }
        w.write(UInt8(rebuildPending ? 1 : 0))
        return w.bytes
    }

    /// The record in `db` (the settings database), nil when none was stored.
    static func read(_ reader: TransactionReader, _ db: LMDBDatabase) throws -> StoredPolicy? {
        try reader.withValue(db, key: key) { try decode($0) }
    }

    /// Its key in the settings database.
    static let key = Array("policy".utf8)

    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> StoredPolicy {
        var r = BinaryReader(bytes)
        let policyBytes = try r.readBytes()
        let policy = try policyBytes.withUnsafeBytes { try Policy.decode(stored: $0) }
        let n = try r.readLength("adoptions")
        var adoptions: [(UInt64, String)] = []
        for _ in 0 ..< n { adoptions.append((try r.readVarint(), try r.readString())) }
        let pending = try r.readPresence()
        try r.expectEnd()
        return StoredPolicy(policy: policy, adoptions: adoptions, rebuildPending: pending)
    }
}
