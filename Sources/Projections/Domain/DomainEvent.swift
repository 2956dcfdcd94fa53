import Foundation
import Ledger

/// Every fact the ledger records (DOMAIN.md §3), with the field names of the export form.
///
/// Role and benefit lists are kept deduplicated in canonical order. `kind` is the stable
/// type code stored in the envelope; new types get new codes, codes are never reused.
public enum DomainEvent: Sendable, Equatable {
    case userRegistered(account: String, businessEmail: String)
    case businessEmailValidated(account: String, email: String)
    case profileCompleted(account: String, firstName: String, lastName: String)
    case agreementRecorded(AgreementRecorded)
    case resellerAutoGranted(email: String, licensingId: String, roles: [Role])
    case licensingIdStatusChanged(licensingId: String, status: Status)
    case rolesGranted(by: String, email: String, licensingId: String, roles: [Role], saBenefits: [SABenefit])
    case rolesRevoked(by: String, email: String, licensingId: String, roles: [Role])
    case permissionsRequested(PermissionsRequested)
    case permissionRequestApproved(by: String, requestId: String, email: String, licensingId: String, roles: [Role], saBenefits: [SABenefit])
    case permissionRequestDenied(by: String, requestId: String, reason: String?)
    case openLicenseAttemptFailed(account: String, licenseNumber: String, reason: AttemptFailure)
    case openLicenseAdded(account: String, email: String, licensingId: String, roles: [Role], notified: [String])
    case licensingIdRemovedByUser(account: String, email: String, licensingId: String)
    case adminInheritanceOptedOut(account: String, email: String, parentId: String)
    case adminInheritanceOptedIn(account: String, email: String, parentId: String)
    /// `by` is the signed-in account (via `manageUsers`), nil via `emailLink`; `byEmail` is
    /// the denying administrator's email either way.
    case resellerAccessDenied(by: String?, byEmail: String, email: String, licensingId: String, via: DenyVia)
    case openLicenseAccessDenied(by: String, email: String, licensingId: String)
    case legacyPermissionMigrated(source: String, legacyRole: String, email: String, licensingId: String, roles: [Role], saBenefits: [SABenefit])
    /// R15: every personal field of the subject with this pseudonym (32 hex digits) is erased;
    /// the event itself holds no personal data.
    case subjectErased(subject: String, legalBasis: LegalBasis)

    /// The fields of `agreementRecorded`.
    public struct AgreementRecorded: Sendable, Equatable {
        public var licensingId: String
        public var program: Program
        public var parent: String?
        public var status: Status
        public var contacts: [Contact]
        public var availableRoles: [Role]
        /// HMAC-SHA-256 of the authorization number (never the number itself).
        public var authorizationHash: [UInt8]?
        /// Which HMAC key made `authorizationHash`.
        public var keyId: String?
        public var resellerEmail: String?
    }

    /// The fields of `permissionsRequested`.
    public struct PermissionsRequested: Sendable, Equatable {
        public var requestId: String
        public var account: String
        public var email: String
        public var licensingId: String
        public var roles: [Role]
        public var saBenefits: [SABenefit]
        public var comment: String?
        /// The effective administrators of the Licensing ID when it was requested.
        public var routedTo: [String]
    }

    /// Every type name, in kind-code order (kind = index + 1).
    public static let typeNames = [
        "userRegistered", "businessEmailValidated", "profileCompleted", "agreementRecorded", "resellerAutoGranted",
        "licensingIdStatusChanged", "rolesGranted", "rolesRevoked", "permissionsRequested", "permissionRequestApproved",
        "permissionRequestDenied", "openLicenseAttemptFailed", "openLicenseAdded", "licensingIdRemovedByUser",
        "adminInheritanceOptedOut", "adminInheritanceOptedIn", "resellerAccessDenied", "openLicenseAccessDenied",
        "legacyPermissionMigrated", "subjectErased",
    ]

    /// The type code stored in the envelope.
    public var kind: UInt16 {
        switch self {
        case .userRegistered: return 1
        case .businessEmailValidated: return 2
        case .profileCompleted: return 3
        case .agreementRecorded: return 4
        case .resellerAutoGranted: return 5
        case .licensingIdStatusChanged: return 6
        case .rolesGranted: return 7
        case .rolesRevoked: return 8
        case .permissionsRequested: return 9
        case .permissionRequestApproved: return 10
        case .permissionRequestDenied: return 11
        case .openLicenseAttemptFailed: return 12
        case .openLicenseAdded: return 13
        case .licensingIdRemovedByUser: return 14
        case .adminInheritanceOptedOut: return 15
        case .adminInheritanceOptedIn: return 16
        case .resellerAccessDenied: return 17
        case .openLicenseAccessDenied: return 18
        case .legacyPermissionMigrated: return 19
        case .subjectErased: return 20
        }
    }

    /// The type name of the export form, e.g. `rolesGranted`.
    public var type: String { Self.typeName(kind: kind) ?? "unknown" }

    /// The type name for a kind code.
    public static func typeName(kind: UInt16) -> String? {
        kind >= 1 && Int(kind) <= typeNames.count ? typeNames[Int(kind) - 1] : nil
    }

    /// The kind code for a type name.
    public static func kind(typeName: String) -> UInt16? {
        typeNames.firstIndex(of: typeName).map { UInt16($0 + 1) }
    }

    /// The emails this event concerns (for filtering listings).
    public var emails: [String] {
        switch self {
        case let .userRegistered(_, e), let .businessEmailValidated(_, e): return [e]
        case .profileCompleted, .licensingIdStatusChanged, .openLicenseAttemptFailed, .permissionRequestDenied, .subjectErased: return []
        case let .agreementRecorded(a): return a.contacts.map(\.email) + (a.resellerEmail.map { [$0] } ?? [])
        case let .resellerAutoGranted(e, _, _), let .rolesGranted(_, e, _, _, _), let .rolesRevoked(_, e, _, _),
             let .permissionRequestApproved(_, _, e, _, _, _), let .openLicenseAdded(_, e, _, _, _),
             let .licensingIdRemovedByUser(_, e, _), let .adminInheritanceOptedOut(_, e, _), let .adminInheritanceOptedIn(_, e, _),
             let .openLicenseAccessDenied(_, e, _), let .legacyPermissionMigrated(_, _, e, _, _, _):
            return [e]
        case let .permissionsRequested(r): return [r.email] + r.routedTo
        case let .resellerAccessDenied(_, byEmail, e, _, _): return [e, byEmail]
        }
    }

    /// The Licensing ID this event concerns, if any.
    public var licensingId: String? {
        switch self {
        case .userRegistered, .businessEmailValidated, .profileCompleted, .permissionRequestDenied, .subjectErased: return nil
        case let .agreementRecorded(a): return a.licensingId
        case let .permissionsRequested(r): return r.licensingId
        case let .resellerAutoGranted(_, l, _), let .licensingIdStatusChanged(l, _), let .rolesGranted(_, _, l, _, _),
             let .rolesRevoked(_, _, l, _), let .permissionRequestApproved(_, _, _, l, _, _), let .openLicenseAttemptFailed(_, l, _),
             let .openLicenseAdded(_, _, l, _, _), let .licensingIdRemovedByUser(_, _, l), let .adminInheritanceOptedOut(_, _, l),
             let .adminInheritanceOptedIn(_, _, l), let .resellerAccessDenied(_, _, _, l, _), let .openLicenseAccessDenied(_, _, l),
             let .legacyPermissionMigrated(_, _, _, l, _, _):
            return l
        }
    }
}

// MARK: - Binary codec

extension DomainEvent {
    /// The canonical binary payload (what the hash chain covers).
    public func encodedPayload() -> [UInt8] {
        var w = BinaryWriter(capacity: 96)
        switch self {
        case let .userRegistered(a, e): w.write(a); w.write(e)
        case let .businessEmailValidated(a, e): w.write(a); w.write(e)
        case let .profileCompleted(a, f, l): w.write(a); w.write(f); w.write(l)
        case let .agreementRecorded(r):
            w.write(r.licensingId); w.writeEnum(r.program); w.write(r.parent); w.writeEnum(r.status)
            w.writeContacts(r.contacts)
            w.writeRoles(r.availableRoles)
            w.writeOptionalBytes(r.authorizationHash)
            w.write(r.keyId); w.write(r.resellerEmail)
        case let .resellerAutoGranted(e, l, roles): w.write(e); w.write(l); w.writeRoles(roles)
        case let .licensingIdStatusChanged(l, s): w.write(l); w.writeEnum(s)
        case let .rolesGranted(b, e, l, roles, benefits): w.write(b); w.write(e); w.write(l); w.writeRoles(roles); w.writeBenefits(benefits)
        case let .rolesRevoked(b, e, l, roles): w.write(b); w.write(e); w.write(l); w.writeRoles(roles)
        case let .permissionsRequested(r):
            w.write(r.requestId); w.write(r.account); w.write(r.email); w.write(r.licensingId)
            w.writeRoles(r.roles); w.writeBenefits(r.saBenefits); w.write(r.comment); w.write(r.routedTo)
        case let .permissionRequestApproved(b, id, e, l, roles, benefits):
            w.write(b); w.write(id); w.write(e); w.write(l); w.writeRoles(roles); w.writeBenefits(benefits)
        case let .permissionRequestDenied(b, id, reason): w.write(b); w.write(id); w.write(reason)
        case let .openLicenseAttemptFailed(a, n, reason): w.write(a); w.write(n); w.writeEnum(reason)
        case let .openLicenseAdded(a, e, l, roles, notified): w.write(a); w.write(e); w.write(l); w.writeRoles(roles); w.write(notified)
        case let .licensingIdRemovedByUser(a, e, l): w.write(a); w.write(e); w.write(l)
        case let .adminInheritanceOptedOut(a, e, p): w.write(a); w.write(e); w.write(p)
        case let .adminInheritanceOptedIn(a, e, p): w.write(a); w.write(e); w.write(p)
        case let .resellerAccessDenied(b, be, e, l, via): w.write(b); w.write(be); w.write(e); w.write(l); w.writeEnum(via)
        case let .openLicenseAccessDenied(b, e, l): w.write(b); w.write(e); w.write(l)
        case let .legacyPermissionMigrated(s, lr, e, l, roles, benefits):
            w.write(s); w.write(lr); w.write(e); w.write(l); w.writeRoles(roles); w.writeBenefits(benefits)
        case let .subjectErased(subject, basis): w.write(subject); w.writeEnum(basis)
        }
        return w.bytes
    }

    /// Decodes a payload of type `kind`; throws `LedgerDecodingError` on any malformed byte.
    public static func decode(kind: UInt16, payload: UnsafeRawBufferPointer) throws -> DomainEvent {
        var r = BinaryReader(payload)
        let event: DomainEvent
        switch kind {
        case 1: event = .userRegistered(account: try r.readString(), businessEmail: try r.readString())
        case 2: event = .businessEmailValidated(account: try r.readString(), email: try r.readString())
        case 3: event = .profileCompleted(account: try r.readString(), firstName: try r.readString(), lastName: try r.readString())
        case 4:
            let lid = try r.readString()
            let program: Program = try r.readEnum()
            let parent = try r.readOptionalString()
            let status: Status = try r.readEnum()
            let contacts = try r.readContacts()
            let available = try r.readRoles()
            let hash = try r.readOptionalBytes()
            event = .agreementRecorded(.init(licensingId: lid, program: program, parent: parent, status: status, contacts: contacts,
                                             availableRoles: available, authorizationHash: hash, keyId: try r.readOptionalString(),
                                             resellerEmail: try r.readOptionalString()))
        case 5: event = .resellerAutoGranted(email: try r.readString(), licensingId: try r.readString(), roles: try r.readRoles())
        case 6: event = .licensingIdStatusChanged(licensingId: try r.readString(), status: try r.readEnum())
        case 7: event = .rolesGranted(by: try r.readString(), email: try r.readString(), licensingId: try r.readString(),
                                      roles: try r.readRoles(), saBenefits: try r.readBenefits())
        case 8: event = .rolesRevoked(by: try r.readString(), email: try r.readString(), licensingId: try r.readString(), roles: try r.readRoles())
        case 9:
            event = .permissionsRequested(.init(requestId: try r.readString(), account: try r.readString(), email: try r.readString(),
                                                licensingId: try r.readString(), roles: try r.readRoles(), saBenefits: try r.readBenefits(),
                                                comment: try r.readOptionalString(), routedTo: try r.readStrings()))
        case 10: event = .permissionRequestApproved(by: try r.readString(), requestId: try r.readString(), email: try r.readString(),
                                                    licensingId: try r.readString(), roles: try r.readRoles(), saBenefits: try r.readBenefits())
        case 11: event = .permissionRequestDenied(by: try r.readString(), requestId: try r.readString(), reason: try r.readOptionalString())
        case 12: event = .openLicenseAttemptFailed(account: try r.readString(), licenseNumber: try r.readString(), reason: try r.readEnum())
        case 13: event = .openLicenseAdded(account: try r.readString(), email: try r.readString(), licensingId: try r.readString(),
                                           roles: try r.readRoles(), notified: try r.readStrings())
        case 14: event = .licensingIdRemovedByUser(account: try r.readString(), email: try r.readString(), licensingId: try r.readString())
        case 15: event = .adminInheritanceOptedOut(account: try r.readString(), email: try r.readString(), parentId: try r.readString())
        case 16: event = .adminInheritanceOptedIn(account: try r.readString(), email: try r.readString(), parentId: try r.readString())
        case 17: event = .resellerAccessDenied(by: try r.readOptionalString(), byEmail: try r.readString(), email: try r.readString(),
                                               licensingId: try r.readString(), via: try r.readEnum())
        case 18: event = .openLicenseAccessDenied(by: try r.readString(), email: try r.readString(), licensingId: try r.readString())
        case 19: event = .legacyPermissionMigrated(source: try r.readString(), legacyRole: try r.readString(), email: try r.readString(),
                                                   licensingId: try r.readString(), roles: try r.readRoles(), saBenefits: try r.readBenefits())
        case 20:
            let subject = try r.readString()
            guard Pseudonym(hex: subject)?.description == subject else { throw LedgerDecodingError("subject \(subject.debugDescription) is not a pseudonym", offset: 0) }
            event = .subjectErased(subject: subject, legalBasis: try r.readEnum())
        default: throw LedgerDecodingError("unknown event kind \(kind)", offset: 0)
        }
        try r.expectEnd()
        return event
    }

    /// Decodes a payload held in an array.
    public static func decode(kind: UInt16, payload: [UInt8]) throws -> DomainEvent {
        try payload.withUnsafeBytes { try decode(kind: kind, payload: $0) }
    }
}

extension BinaryWriter {
    mutating func writeEnum<E: CaseIterable & Equatable>(_ value: E) {
        write(UInt8(E.allCases.firstIndex(of: value).map { E.allCases.distance(from: E.allCases.startIndex, to: $0) } ?? 0))
    }

    mutating func writeContacts(_ contacts: [Contact]) {
        writeVarint(UInt64(contacts.count))
        for c in contacts { writeEnum(c.type); write(c.email) }
    }

    mutating func writeOptionalBytes(_ bytes: [UInt8]?) {
        if let bytes { write(UInt8(1)); writeBytes(bytes) } else { write(UInt8(0)) }
    }

    mutating func writeRoles(_ roles: [Role]) {
        var mask: UInt8 = 0
        for r in roles { mask |= 1 << UInt8(r.order) }
        write(mask)
    }

    mutating func writeBenefits(_ benefits: [SABenefit]) {
        var mask: UInt8 = 0
        for b in benefits { mask |= 1 << UInt8(b.order) }
        write(mask)
    }
}

extension BinaryReader {
    mutating func readEnum<E: CaseIterable>() throws -> E {
        let index = Int(try readUInt8())
        let all = Array(E.allCases)
        guard index < all.count else { throw LedgerDecodingError("enum index \(index) out of range for \(E.self)", offset: offset - 1) }
        return all[index]
    }

    mutating func readContacts() throws -> [Contact] {
        let n = try readLength("contact count")
        var contacts: [Contact] = []
        for _ in 0 ..< n { contacts.append(Contact(type: try readEnum(), email: try readString())) }
        return contacts
    }

    mutating func readOptionalBytes() throws -> [UInt8]? {
        try readPresence() ? try readBytes() : nil
    }

    mutating func readRoles() throws -> [Role] {
        let mask = try readUInt8()
        guard mask >> Role.allCases.count == 0 else { throw LedgerDecodingError("role mask \(mask) has unknown bits", offset: offset - 1) }
        return Role.allCases.filter { mask & (1 << UInt8($0.order)) != 0 }
    }

    mutating func readBenefits() throws -> [SABenefit] {
        let mask = try readUInt8()
        return SABenefit.allCases.filter { mask & (1 << UInt8($0.order)) != 0 }
    }
}
