import Ledger

/// The configurable parts of the rules, with DOMAIN.md's defaults.
public struct Policy: Sendable, Equatable {
    /// Failed Add Open License attempts within `lockoutWindow` that suspend an account.
    public var lockoutThreshold: Int
    /// The rolling window failures are counted in, in seconds.
    public var lockoutWindow: Int64
    /// How long a suspension lasts from the failure that starts it, in seconds.
    public var lockoutDuration: Int64
    /// The roles each contact type holds on its Licensing ID.
    public var contactRoles: [ContactType: [Role]]
    /// The roles of Add Open License and of reseller auto-grants (before intersecting with
    /// the ID's available roles). Never contains `administrator`.
    public var limitedOpenLicenseRoles: [Role]

    /// DOMAIN.md's defaults: 3 failures in 24 h suspend for 24 h; the contact table of §1;
    /// the limited set `licensingInfo, download, productKeys, subscriptionsManager`.
    public static let `default` = Policy(
        lockoutThreshold: 3, lockoutWindow: 86_400, lockoutDuration: 86_400,
        contactRoles: [
            .primaryContact: [.administrator], .noticesCorrespondent: [.administrator], .onlineAccessContact: [.administrator],
            .softwareAssuranceManager: [.licensingInfo, .softwareAssuranceManager],
            .onlineServicesManager: [.licensingInfo, .onlineServicesManager],
            .subscriptionsManager: [.licensingInfo, .subscriptionsManager],
        ],
        limitedOpenLicenseRoles: [.licensingInfo, .download, .productKeys, .subscriptionsManager])

    /// Creates a policy; `administrator` is removed from `limitedOpenLicenseRoles` whatever is passed.
    public init(lockoutThreshold: Int, lockoutWindow: Int64, lockoutDuration: Int64,
                contactRoles: [ContactType: [Role]], limitedOpenLicenseRoles: [Role]) {
        self.lockoutThreshold = max(1, lockoutThreshold)
        self.lockoutWindow = lockoutWindow
        self.lockoutDuration = lockoutDuration
        self.contactRoles = contactRoles
        self.limitedOpenLicenseRoles = limitedOpenLicenseRoles.filter { $0 != .administrator }.canonical
    }

    /// The longest lockout window or suspension accepted: ten years, in seconds.
    public static let longestLockoutSpan: Int64 = 3_650 * 86_400

    /// Refuses a policy its setters made unsound, naming the field: a threshold below 1, a
    /// window or suspension outside 1 s … 10 years, or `administrator` in the limited Open
    /// License set (Add Open License and reseller grants would hand out administration).
    /// `PermissionLedger` calls it when it opens.
    public func validate() throws {
        if lockoutThreshold < 1 { throw InputError(field: "policy.lockoutThreshold", "must be at least 1, got \(lockoutThreshold)") }
        for (name, value) in [("lockoutWindow", lockoutWindow), ("lockoutDuration", lockoutDuration)] where value < 1 || value > Self.longestLockoutSpan {
            throw InputError(field: "policy.\(name)", "must be between 1 and \(Self.longestLockoutSpan) seconds, got \(value)")
        }
        if limitedOpenLicenseRoles.contains(.administrator) {
            throw InputError(field: "policy.limitedOpenLicenseRoles", "must not contain administrator: Add Open License and reseller grants never give administration")
        }
    }

    /// The limited set on an ID with `available` roles.
    public func limitedSet(available: [Role]) -> [Role] {
        limitedOpenLicenseRoles.filter { available.contains($0) }
    }
}

/// The MVLS/eOpen → VLSC role table of R13.
public enum LegacyRoles {
    /// The roles (and SA benefits) a legacy role migrates to, nil for an unknown pair.
    public static func map(source: String, legacyRole: String) -> (roles: [Role], benefits: [SABenefit])? {
        switch (source, legacyRole) {
        case ("mvls", "user"): return ([.licensingInfo], [])
        case ("mvls", "userVLK"): return ([.licensingInfo, .download, .productKeys], [])
        case ("mvls", "saBenefitAdministrator"): return ([.softwareAssuranceManager], SABenefit.allCases)
        case ("mvls", "onlineServicesBenefitAdministrator"): return ([.onlineServicesManager], [])
        case ("mvls", "msdnBenefitAdministrator"): return ([.subscriptionsManager], [])
        case ("mvls", "administrator"): return ([.administrator], [])
        case ("eopen", "none"): return ([.administrator], [])
        default: return nil
        }
    }
}
