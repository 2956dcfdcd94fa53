/// A permission role, in DOMAIN.md's canonical order.
public enum Role: String, CaseIterable, Sendable, Hashable, Comparable, Codable {
    case administrator, licensingInfo, download, productKeys, softwareAssuranceManager,
         onlineServicesManager, subscriptionsManager

    /// Position in the canonical order.
    public var order: Int {
        switch self {
        case .administrator: 0
        case .licensingInfo: 1
        case .download: 2
        case .productKeys: 3
        case .softwareAssuranceManager: 4
        case .onlineServicesManager: 5
        case .subscriptionsManager: 6
        }
    }
    public static func < (a: Role, b: Role) -> Bool { a.order < b.order }

    /// Every role in canonical order (made once).
    static let canonical = Role.allCases
}

/// A Software Assurance benefit a `softwareAssuranceManager` may manage.
public enum SABenefit: String, CaseIterable, Sendable, Hashable, Comparable, Codable {
    case planningServices, trainingVouchers, eLearning, employeePurchaseProgram, homeUseProgram,
         techNet, problemResolutionSupport, software

    /// Position in the canonical order.
    public var order: Int {
        switch self {
        case .planningServices: 0
        case .trainingVouchers: 1
        case .eLearning: 2
        case .employeePurchaseProgram: 3
        case .homeUseProgram: 4
        case .techNet: 5
        case .problemResolutionSupport: 6
        case .software: 7
        }
    }
    public static func < (a: SABenefit, b: SABenefit) -> Bool { a.order < b.order }
}

/// Something a user may try to do on a Licensing ID.
public enum Action: String, CaseIterable, Sendable, Hashable, Codable {
    case manageUsers, viewLicensingInfo, viewSoftwareAssuranceSummary, downloadSoftware, viewProductKeys,
         manageSoftwareAssurance, manageOnlineServices, manageSubscriptions

    /// The non-administrator role that allows this action (`administrator` allows all).
    public var allowingRole: Role {
        switch self {
        case .manageUsers: return .administrator
        case .viewLicensingInfo, .viewSoftwareAssuranceSummary: return .licensingInfo
        case .downloadSoftware: return .download
        case .viewProductKeys: return .productKeys
        case .manageSoftwareAssurance: return .softwareAssuranceManager
        case .manageOnlineServices: return .onlineServicesManager
        case .manageSubscriptions: return .subscriptionsManager
        }
    }
}

/// A volume-licensing program.
public enum Program: String, CaseIterable, Sendable, Hashable, Codable {
    case mbsa, enterpriseAgreement, selectAgreement, enterpriseEnrollment, selectEnrollment,
         selectPlusCustomer, openValue, openLicense

    /// Whether a Licensing ID of this program may be another's parent.
    public var isParentKind: Bool { self == .mbsa || self == .enterpriseAgreement || self == .selectAgreement }
}

/// Whether a Licensing ID is listed by default on My Permissions.
public enum Status: String, CaseIterable, Sendable, Hashable, Codable {
    case active, inactive
}

/// A contact type on the legal form.
public enum ContactType: String, CaseIterable, Sendable, Hashable, Codable {
    case primaryContact, noticesCorrespondent, onlineAccessContact, softwareAssuranceManager,
         onlineServicesManager, subscriptionsManager

    /// Whether this contact keeps `licensingInfo` on every descendant and can't remove the ID.
    public var isLegalContact: Bool { self == .primaryContact || self == .noticesCorrespondent }
}

/// A contact listed on an agreement.
public struct Contact: Sendable, Hashable, Codable {
    /// The contact's type.
    public var type: ContactType
    /// The contact's business email (normalised).
    public var email: String
    /// Creates a contact.
    public init(type: ContactType, email: String) {
        self.type = type
        self.email = email
    }
}

/// How a reseller denial arrived.
public enum DenyVia: String, CaseIterable, Sendable, Hashable, Codable {
    /// The link in the administrator's welcome email (no sign-in).
    case emailLink
    /// The Manage Users page (signed in).
    case manageUsers
}

/// The legal basis an erasure is made under (R15, GDPR Art. 17(1)).
public enum LegalBasis: String, CaseIterable, Sendable, Hashable, Codable {
    /// Art. 17(1)(b): the person withdrew the consent the processing rested on.
    case consentWithdrawn
    /// Art. 17(1)(a): the data are no longer necessary for their purpose.
    case noLongerNecessary
    /// Art. 17(1)(c): the person objected, and no overriding legitimate grounds remain.
    case objection
    /// Art. 17(1)(d): the data were processed unlawfully.
    case unlawful
    /// Art. 17(1)(e): a legal obligation requires the erasure.
    case legalObligation
}

/// Where a role on (email, Licensing ID) comes from (DOMAIN.md §2).
public enum RoleSource: String, CaseIterable, Sendable, Hashable, Codable {
    case contact, grant, openLicense, reseller, inherited
}

/// Why a failed Add Open License attempt failed (recorded for auditors only).
public enum AttemptFailure: String, Sendable, Hashable, Codable, CaseIterable {
    case unknownLicense, authorizationMismatch
}

/// Normalisation and shape checks of DOMAIN.md §1.
public enum Normalize {
    /// Trims and lowercases an account id; nil unless 1–254 characters remain.
    public static func account(_ raw: String) -> String? {
        if let ascii = asciiTrimmedLowercased(raw) {
            return (1 ... 254).contains(ascii.count) ? String(decoding: ascii, as: UTF8.self) : nil
        }
        let s = raw.trimmingWhitespace().lowercased()
        return (1 ... 254).contains(s.count) ? s : nil
    }

    /// For an all-ASCII string: its bytes without leading and trailing whitespace, lowercased
    /// (the same as `trimmingWhitespace().lowercased()` for ASCII, without String work).
    static func asciiTrimmedLowercased(_ raw: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(raw.utf8.count)
        for b in raw.utf8 {
            if b >= 0x80 { return nil }
            bytes.append(b >= 65 && b <= 90 ? b + 32 : b)
        }
        func space(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
        var start = 0, end = bytes.count
        while start < end && space(bytes[start]) { start += 1 }
        while end > start && space(bytes[end - 1]) { end -= 1 }
        if start > 0 || end < bytes.count { bytes = Array(bytes[start ..< end]) }
        return bytes
    }

    /// The email check on ASCII bytes (trimmed and lowercased): nil unless valid.
    static func asciiEmail(_ b: [UInt8]) -> String? {
        guard !b.isEmpty, b.count <= 254, let at = b.firstIndex(of: 64), b.lastIndex(of: 64) == at else { return nil }
        let local = b[..<at], domain = b[(at + 1)...]
        func letterOrDigit(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
        let localExtra = Set("!#$%&'*+/=?^_`{|}~.-".utf8)
        guard !local.isEmpty, local.count <= 64, local.allSatisfy({ letterOrDigit($0) || localExtra.contains($0) }),
              local.first != 46, local.last != 46 else { return nil }
        var previousDot = false
        for c in local {
            if c == 46 && previousDot { return nil }
            previousDot = c == 46
        }
        let labels = domain.split(separator: 46, omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return nil }
        for label in labels {
            guard !label.isEmpty, label.count <= 63, label.allSatisfy({ letterOrDigit($0) || $0 == 45 }),
                  label.first != 45, label.last != 45 else { return nil }
        }
        guard let tld = labels.last, tld.count >= 2, tld.allSatisfy({ $0 >= 97 && $0 <= 122 }) else { return nil }
        return String(decoding: b, as: UTF8.self)
    }

    /// Trims and lowercases a business email; nil unless it has the `local@domain.tld`
    /// shape and at most 254 characters.
    public static func email(_ raw: String) -> String? {
        if let ascii = asciiTrimmedLowercased(raw) { return asciiEmail(ascii) }
        return unicodeEmail(raw)
    }

    /// The general path of `email` (any Unicode input; only ASCII addresses pass).
    static func unicodeEmail(_ raw: String) -> String? {
        let s = raw.trimmingWhitespace().lowercased()
        guard s.utf8.count <= 254, !s.isEmpty else { return nil }
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let local = parts[0], domain = parts[1]
        guard !local.isEmpty, local.utf8.count <= 64 else { return nil }
        func ok(_ c: Character, extra: String) -> Bool {
            guard c.isASCII else { return false }
            return c.isLetter || c.isNumber || extra.contains(c)
        }
        guard local.allSatisfy({ ok($0, extra: "!#$%&'*+/=?^_`{|}~.-") }),
              !local.hasPrefix("."), !local.hasSuffix("."), !local.contains("..") else { return nil }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return nil }
        for label in labels {
            guard !label.isEmpty, label.count <= 63, label.allSatisfy({ ok($0, extra: "-") }),
                  !label.hasPrefix("-"), !label.hasSuffix("-") else { return nil }
        }
        guard let tld = labels.last, tld.count >= 2, tld.allSatisfy({ $0.isLetter }) else { return nil }
        return s
    }

    /// Whether `id` has the Licensing ID shape `[A-Za-z0-9-]{1,32}`.
    public static func isLicensingID(_ id: String) -> Bool {
        (1 ... 32).contains(id.utf8.count) && id.utf8.allSatisfy {
            ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45
        }
    }

    /// A first or last name trimmed; nil unless 1–100 characters remain.
    public static func name(_ raw: String) -> String? {
        let s = raw.trimmingWhitespace()
        return (1 ... 100).contains(s.count) ? s : nil
    }
}

extension String {
    /// The string without leading and trailing whitespace and newlines.
    func trimmingWhitespace() -> String {
        var scalars = Substring(self).unicodeScalars
        while let f = scalars.first, f.properties.isWhitespace { scalars.removeFirst() }
        while let l = scalars.last, l.properties.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}

extension Array where Element == Role {
    /// Deduplicated, in canonical order.
    public var canonical: [Role] { Array(Set(self)).sorted() }
}

extension Array where Element == SABenefit {
    /// Deduplicated, in canonical order.
    public var canonical: [SABenefit] { Array(Set(self)).sorted() }
}
