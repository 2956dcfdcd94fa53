import Ledger

/// A value stored in a projection table, with a deterministic binary form (so that a
/// rebuild reproduces the stored bytes exactly).
protocol StateRecord: Equatable, Sendable {
    func encode(to w: inout BinaryWriter)
    static func decode(from r: inout BinaryReader) throws -> Self
}

extension StateRecord {
    var encoded: [UInt8] {
        var w = BinaryWriter(capacity: 64)
        encode(to: &w)
        return w.bytes
    }

    static func decode(bytes: UnsafeRawBufferPointer) throws -> Self {
        var r = BinaryReader(bytes)
        let v = try decode(from: &r)
        try r.expectEnd()
        return v
    }
}

/// A registered account.
public struct AccountRecord: StateRecord, Sendable {
    /// The business email it registered with (normalised).
    public var email: String
    /// Whether that email was validated.
    public var validated: Bool
    /// First name, once the profile is complete.
    public var firstName: String?
    /// Last name, once the profile is complete.
    public var lastName: String?

    /// Whether the profile (first and last name) is complete.
    public var profileComplete: Bool { firstName != nil && lastName != nil }

    func encode(to w: inout BinaryWriter) {
        w.write(email); w.write(UInt8(validated ? 1 : 0)); w.write(firstName); w.write(lastName)
    }

    static func decode(from r: inout BinaryReader) throws -> AccountRecord {
        AccountRecord(email: try r.readString(), validated: try r.readPresence(), firstName: try r.readOptionalString(),
                      lastName: try r.readOptionalString())
    }
}

/// A recorded Licensing ID.
public struct AgreementRecord: StateRecord, Sendable {
    public var program: Program
    public var parent: String?
    public var status: Status
    public var contacts: [Contact]
    public var availableRoles: [Role]
    public var authorizationHash: [UInt8]?
    public var keyId: String?
    /// Licensing IDs naming this one as parent, sorted.
    public var children: [String]

    func encode(to w: inout BinaryWriter) {
        w.writeEnum(program); w.write(parent); w.writeEnum(status)
        w.writeContacts(contacts)
        w.writeRoles(availableRoles)
        w.writeOptionalBytes(authorizationHash)
        w.write(keyId)
        w.write(children)
    }

    static func decode(from r: inout BinaryReader) throws -> AgreementRecord {
        let program: Program = try r.readEnum()
        let parent = try r.readOptionalString()
        let status: Status = try r.readEnum()
        let contacts = try r.readContacts()
        let available = try r.readRoles()
        let hash = try r.readOptionalBytes()
        return AgreementRecord(program: program, parent: parent, status: status, contacts: contacts, availableRoles: available,
                               authorizationHash: hash, keyId: try r.readOptionalString(), children: try r.readStrings())
    }

    /// Whether `email` is the primary contact or notices correspondent.
    public func isLegalContact(_ email: String) -> Bool {
        contacts.contains { $0.email == email && $0.type.isLegalContact }
    }
}

/// One role held through one direct source, with the event that gave it.
public struct GrantEntry: Sendable, Equatable {
    /// The role.
    public var role: Role
    /// Where it comes from (never `inherited`: inherited roles are computed).
    public var source: RoleSource
    /// The event that gave it.
    public var seq: UInt64
    /// That event's kind code.
    public var kind: UInt16
    /// For `softwareAssuranceManager`: the benefits this entry carries.
    public var benefits: [SABenefit]
}

/// The direct sources of the roles of one email on one Licensing ID.
@_spi(LedgerInternals) public struct CellRecord: StateRecord, Sendable {
    /// Every (role, source, event), in the order they were given.
    public var entries: [GrantEntry]

    /// The roles held through any direct source, canonical order.
    public var roles: [Role] {
        var held = 0
        for e in entries { held |= 1 << e.role.order }
        return Role.canonical.filter { held & (1 << $0.order) != 0 }
    }

    /// Whether `administrator` is held directly.
    public var hasAdministrator: Bool { entries.contains { $0.role == .administrator } }

    func encode(to w: inout BinaryWriter) {
        w.writeVarint(UInt64(entries.count))
        for e in entries {
            w.write(UInt8(e.role.order)); w.writeEnum(e.source); w.writeVarint(e.seq); w.write(e.kind); w.writeBenefits(e.benefits)
        }
    }

    static func decode(from r: inout BinaryReader) throws -> CellRecord {
        let n = try r.readLength("entries")
        var entries: [GrantEntry] = []
        entries.reserveCapacity(n)
        for _ in 0 ..< n {
            let roleIndex = Int(try r.readUInt8())
            guard roleIndex < Role.canonical.count else { throw LedgerDecodingError("role index \(roleIndex)", offset: r.offset) }
            entries.append(GrantEntry(role: Role.canonical[roleIndex], source: try r.readEnum(), seq: try r.readVarint(),
                                      kind: try r.readUInt16(), benefits: try r.readBenefits()))
        }
        return CellRecord(entries: entries)
    }
}

/// A sorted list of strings (an index entry).
struct StringSet: StateRecord, Sendable {
    var values: [String]

    func encode(to w: inout BinaryWriter) { w.write(values) }
    static func decode(from r: inout BinaryReader) throws -> StringSet { StringSet(values: try r.readStrings()) }

    /// The first position whose value is not below `v` (`values` is sorted).
    private func lowerBound(_ v: String) -> Int {
        var lo = 0, hi = values.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if values[mid] < v { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    mutating func insert(_ v: String) -> Bool {
        let i = lowerBound(v)
        if i < values.count && values[i] == v { return false }
        values.insert(v, at: i)
        return true
    }

    /// Whether `v` is in the set.
    func contains(_ v: String) -> Bool {
        let i = lowerBound(v)
        return i < values.count && values[i] == v
    }

    mutating func remove(_ v: String) -> Bool {
        guard let i = values.firstIndex(of: v) else { return false }
        values.remove(at: i)
        return true
    }
}

/// A single string value (e.g. the account that validated an email).
struct StringValue: StateRecord, Sendable {
    var value: String
    func encode(to w: inout BinaryWriter) { w.write(value) }
    static func decode(from r: inout BinaryReader) throws -> StringValue { StringValue(value: try r.readString()) }
}

/// The seq of the event that set a flag (e.g. an inheritance opt-out).
struct SeqValue: StateRecord, Sendable {
    var seq: UInt64
    func encode(to w: inout BinaryWriter) { w.writeVarint(seq) }
    static func decode(from r: inout BinaryReader) throws -> SeqValue { SeqValue(seq: try r.readVarint()) }
}

/// Where a permission request stands.
public enum RequestStatus: String, Sendable, CaseIterable, Codable {
    case pending, approved, denied
    /// Withdrawn by the erasure of its subject (R15): no longer pending.
    case withdrawn
}

/// A permission request (R7, R8).
public struct RequestRecord: StateRecord, Sendable {
    public var account: String
    public var email: String
    public var licensingId: String
    public var roles: [Role]
    public var saBenefits: [SABenefit]
    public var comment: String?
    public var routedTo: [String]
    public var status: RequestStatus
    /// The seq of `permissionsRequested`.
    public var requestedSeq: UInt64
    /// The seq of the approval or denial.
    public var decidedSeq: UInt64?
    /// The account that decided it.
    public var decidedBy: String?

    func encode(to w: inout BinaryWriter) {
        w.write(account); w.write(email); w.write(licensingId); w.writeRoles(roles); w.writeBenefits(saBenefits); w.write(comment)
        w.write(routedTo); w.writeEnum(status); w.writeVarint(requestedSeq)
        if let decidedSeq { w.write(UInt8(1)); w.writeVarint(decidedSeq) } else { w.write(UInt8(0)) }
        w.write(decidedBy)
    }

    static func decode(from r: inout BinaryReader) throws -> RequestRecord {
        let account = try r.readString(), email = try r.readString(), lid = try r.readString()
        let roles = try r.readRoles(), benefits = try r.readBenefits(), comment = try r.readOptionalString()
        let routed = try r.readStrings()
        let status: RequestStatus = try r.readEnum()
        let requested = try r.readVarint()
        let decided: UInt64? = try r.readPresence() ? try r.readVarint() : nil
        return RequestRecord(account: account, email: email, licensingId: lid, roles: roles, saBenefits: benefits, comment: comment,
                             routedTo: routed, status: status, requestedSeq: requested, decidedSeq: decided, decidedBy: try r.readOptionalString())
    }
}

/// The failed Add Open License attempts of one account that can still count, and its
/// suspensions (R9).
public struct LockoutRecord: StateRecord, Sendable {
    /// Times of failures that may still count (ascending).
    public var failures: [Timestamp]
    /// The latest suspension, as [start, end).
    public var suspension: (start: Timestamp, end: Timestamp)?
    /// The end of the suspension before `suspension`, if any.
    public var previousSuspensionEnd: Timestamp?

    public static func == (a: LockoutRecord, b: LockoutRecord) -> Bool {
        a.failures == b.failures && a.suspension?.start == b.suspension?.start && a.suspension?.end == b.suspension?.end
            && a.previousSuspensionEnd == b.previousSuspensionEnd
    }

    func encode(to w: inout BinaryWriter) {
        w.writeVarint(UInt64(failures.count))
        for f in failures { w.write(f.seconds) }
        if let s = suspension { w.write(UInt8(1)); w.write(s.start.seconds); w.write(s.end.seconds) } else { w.write(UInt8(0)) }
        if let p = previousSuspensionEnd { w.write(UInt8(1)); w.write(p.seconds) } else { w.write(UInt8(0)) }
    }

    static func decode(from r: inout BinaryReader) throws -> LockoutRecord {
        let n = try r.readLength("failures")
        var failures: [Timestamp] = []
        for _ in 0 ..< n { failures.append(Timestamp(seconds: try r.readInt64())) }
        var suspension: (Timestamp, Timestamp)?
        if try r.readPresence() { suspension = (Timestamp(seconds: try r.readInt64()), Timestamp(seconds: try r.readInt64())) }
        var previous: Timestamp?
        if try r.readPresence() { previous = Timestamp(seconds: try r.readInt64()) }
        return LockoutRecord(failures: failures, suspension: suspension, previousSuspensionEnd: previous)
    }

    /// The end of the last suspension that has ended by `t`.
    func lastEndedSuspension(at t: Timestamp) -> Timestamp? {
        if let s = suspension, s.end <= t { return s.end }
        return previousSuspensionEnd
    }

    /// The failures that count at `t` (R9): `t − window < at ≤ t` and not before the end
    /// of the last suspension that has ended by `t`.
    public func countingFailures(at t: Timestamp, window: Int64) -> Int {
        let floor = lastEndedSuspension(at: t)
        return failures.filter { x in x <= t && x > t.subtracting(seconds: window) && (floor.map { x >= $0 } ?? true) }.count
    }

    /// R9 in one place: this record after a failed attempt at `at` is recorded, and the end
    /// of the suspension that failure starts (nil when it starts none). Failures that can
    /// never count again are forgotten (those before the end of a suspension that has
    /// ended, and those older than the window); the failure suspends when, with it, at
    /// least `threshold` failures count at `at`. Deciding, folding and the import check all
    /// call this, so the three can't disagree. A failure is recorded only while no
    /// suspension is in force (`suspendedUntil(at:)` is nil): callers refuse it before.
    func recordingFailure(at: Timestamp, policy: Policy) -> (record: LockoutRecord, suspendsUntil: Timestamp?) {
        var record = self
        if let s = record.suspension, s.end <= at {
            record.previousSuspensionEnd = s.end
            record.suspension = nil
        }
        let floor = record.previousSuspensionEnd
        record.failures.removeAll { x in x <= at.subtracting(seconds: policy.lockoutWindow) || (floor.map { x < $0 } ?? false) }
        record.failures.append(at)
        var until: Timestamp?
        if record.suspendedUntil(at: at) == nil,
           record.countingFailures(at: at, window: policy.lockoutWindow) >= policy.lockoutThreshold {
            let end = at.adding(seconds: policy.lockoutDuration)
            record.suspension = (at, end)
            until = end
        }
        return (record, until)
    }

    /// The record of an account with no failure recorded.
    static let empty = LockoutRecord(failures: [], suspension: nil, previousSuspensionEnd: nil)

    /// The end of the suspension in force at `t`, if any.
    public func suspendedUntil(at t: Timestamp) -> Timestamp? {
        if let s = suspension, s.start <= t, t < s.end { return s.end }
        return nil
    }
}

/// The log position the projections reflect.
struct MetaRecord: StateRecord, Sendable {
    var lastSeq: UInt64
    var lastAt: Timestamp?
    func encode(to w: inout BinaryWriter) {
        w.write(lastSeq)
        if let lastAt { w.write(UInt8(1)); w.write(lastAt.seconds) } else { w.write(UInt8(0)) }
    }
    static func decode(from r: inout BinaryReader) throws -> MetaRecord {
        let seq = try r.readUInt64()
        let at: Timestamp? = try r.readPresence() ? Timestamp(seconds: try r.readInt64()) : nil
        return MetaRecord(lastSeq: seq, lastAt: at)
    }
}
