import Ledger

/// One row of the My Permissions view.
public struct PermissionRow: Sendable, Equatable {
    public var licensingId: String
    public var program: Program
    public var status: Status
    /// The direct parent, where there is one.
    public var parent: String?
    /// The nearest ancestor of kind `mbsa`, where there is one.
    public var mbsa: String?
    public var roles: [Role]
    public var saBenefits: [SABenefit]
}

/// The My Permissions view of an email (DOMAIN.md §4).
public struct PermissionsView: Sendable, Equatable {
    /// The business email the permissions are assigned to.
    public var email: String
    /// The seq of the last event the answer includes (0 when none).
    public var asOfSeq: UInt64
    /// One row per Licensing ID with at least one role, sorted by ID.
    public var rows: [PermissionRow]
}

/// The answer to "may this account do this on this Licensing ID?".
public struct CheckResult: Sendable, Equatable {
    /// Whether the action is allowed.
    public var allowed: Bool
    /// Why: `allowed`, or why not.
    public var reason: Reason
    /// A sentence for people (written when asked for: a check on the hot path does not
    /// format text nobody reads).
    public var message: String { explanation.sentence }
    /// The roles the account's email holds on the ID.
    public var roles: [Role]
    /// The seq of the last event the answer includes.
    public var asOfSeq: UInt64
    /// What the sentence says.
    let explanation: CheckExplanation
}

extension CheckResult {
    /// Why a check answered as it did: a stable code. An extensible struct (later releases may
    /// add reasons, so a `switch` needs a `default`); compare with `==`.
    public struct Reason: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        /// The reason's name.
        public let rawValue: String
        /// A reason by its name.
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The roles allow the action.
        public static let allowed = Reason(rawValue: "allowed")
        /// No account has this name.
        public static let notRegistered = Reason(rawValue: "notRegistered")
        /// The account has not validated its business email: nothing is allowed before.
        public static let emailNotValidated = Reason(rawValue: "emailNotValidated")
        /// No agreement has this Licensing ID.
        public static let unknownLicensingId = Reason(rawValue: "unknownLicensingId")
        /// No role the email holds on the ID allows the action.
        public static let noRole = Reason(rawValue: "noRole")
        /// Software Assurance Manager is held, but not for the benefit asked about.
        public static let benefitNotHeld = Reason(rawValue: "benefitNotHeld")
    }
}

/// The facts behind a check's sentence.
enum CheckExplanation: Sendable, Equatable {
    case notRegistered(account: String)
    case emailNotValidated(account: String, email: String)
    case unknownLicensingId(String)
    case allowed(email: String, by: Role, lid: String)
    case benefitNotHeld(email: String, lid: String, benefit: SABenefit)
    case noRole(action: Action, lid: String, email: String, roles: [Role])

    var sentence: String {
        switch self {
        case let .notRegistered(account): return "account '\(account)' is not registered"
        case let .emailNotValidated(account, email): return "account '\(account)' has not validated \(email)"
        case let .unknownLicensingId(lid): return "Licensing ID '\(lid)' is not recorded"
        case let .allowed(email, by, lid): return "\(email) holds \(by.rawValue) on \(lid)"
        case let .benefitNotHeld(email, lid, benefit):
            return "\(email) manages Software Assurance on \(lid) but not the \(benefit.rawValue) benefit"
        case let .noRole(action, lid, email, roles):
            let needed = action.allowingRole == .administrator ? "administrator" : "\(action.allowingRole.rawValue) or administrator"
            let held = roles.isEmpty ? "no role" : roles.map(\.rawValue).joined(separator: ", ")
            return "\(action.rawValue) needs \(needed) on \(lid); \(email) holds \(held)"
        }
    }
}

/// The lockout state of an account at a time (R9).
public struct LockoutStatus: Sendable, Equatable {
    public var account: String
    public var locked: Bool
    /// When the suspension ends, while locked.
    public var lockedUntil: Timestamp?
    /// The failures that count at that time.
    public var recentFailures: Int
    /// The time the answer is for.
    public var at: Timestamp
}

/// An effective administrator and where the role comes from.
public struct AdministratorEntry: Sendable, Equatable {
    public var email: String
    public var sources: [AdminSource]
}

/// Every role of an email on a Licensing ID with the events behind it.
public struct Explanation: Sendable, Equatable {
    public var email: String
    public var licensingId: String
    public var asOfSeq: UInt64
    /// Roles in canonical order, each with its reasons (direct sources in seq order, then inherited).
    public var roles: [(role: Role, reasons: [RoleReason])]
    /// The SA benefits held.
    public var saBenefits: [SABenefit]
    /// The actions these roles allow, in `Action` order.
    public var actions: [Action] = []

    public static func == (a: Explanation, b: Explanation) -> Bool {
        a.email == b.email && a.licensingId == b.licensingId && a.asOfSeq == b.asOfSeq && a.saBenefits == b.saBenefits && a.actions == b.actions
            && a.roles.map(\.role) == b.roles.map(\.role) && a.roles.map(\.reasons) == b.roles.map(\.reasons)
    }
}

/// A permission request as the requests projection holds it.
public struct RequestView: Sendable, Equatable {
    public var requestId: String
    public var record: RequestRecord
}

extension DomainState {
    /// The My Permissions view of `email`.
    public func permissionsView(email: String, includeInactive: Bool) throws -> PermissionsView {
        var rows: [PermissionRow] = []
        for lid in try candidateIDs(email) {
            guard let agreement = try agreement(lid) else { continue }
            if agreement.status == .inactive && !includeInactive { continue }
            let report = try roleReport(email, lid)
            let roles = report.roles
            if roles.isEmpty { continue }
            var mbsa: String?
            for a in try ancestors(of: lid) where try self.agreement(a)?.program == .mbsa {
                mbsa = a
                break
            }
            rows.append(PermissionRow(licensingId: lid, program: agreement.program, status: agreement.status, parent: agreement.parent,
                                      mbsa: mbsa, roles: roles, saBenefits: report.saBenefits))
        }
        return PermissionsView(email: email, asOfSeq: lastSeq, rows: rows)
    }

    /// Whether `account` may do `action` on `lid` (for one SA benefit, optionally).
    public func check(account: String, licensingId lid: String, action: Action, benefit: SABenefit?) throws -> CheckResult {
        try checkPermission(facts: self, account: account, licensingId: lid, action: action, benefit: benefit)
    }

    /// The lockout status of `account` at `t` (events after the state's last seq are not seen).
    public func lockoutStatus(account: String, at t: Timestamp, policy: Policy) throws -> LockoutStatus {
        let record = try lockout(account)
        let until = record?.suspendedUntil(at: t)
        return LockoutStatus(account: account, locked: until != nil, lockedUntil: until,
                             recentFailures: record?.countingFailures(at: t, window: policy.lockoutWindow) ?? 0, at: t)
    }

    /// Every role of `email` on `lid`, each with its reasons.
    public func explain(email: String, licensingId lid: String) throws -> Explanation {
        let report = try roleReport(email, lid)
        return Explanation(email: email, licensingId: lid, asOfSeq: lastSeq,
                           roles: report.roles.map { ($0, report.reasons(for: $0)) }, saBenefits: report.saBenefits,
                           actions: Action.allCases.filter { report.allows($0) })
    }

    /// The effective administrators of `lid`, sorted by email.
    public func administrators(of lid: String) throws -> [AdministratorEntry] {
        try effectiveAdministrators(lid).map { AdministratorEntry(email: $0.email, sources: $0.sources) }
    }
}

/// Whether `account` may do `action` on `lid` (for one SA benefit, optionally), read from `facts`.
func checkPermission(facts: some PermissionFacts, account: String, licensingId lid: String, action: Action,
                     benefit: SABenefit?) throws -> CheckResult {
    let lastSeq = facts.lastSeq
    func deny(_ reason: CheckResult.Reason, _ why: CheckExplanation, _ roles: [Role] = []) -> CheckResult {
        CheckResult(allowed: false, reason: reason, roles: roles, asOfSeq: lastSeq, explanation: why)
    }
    guard let record = try facts.account(account) else { return deny(.notRegistered, .notRegistered(account: account)) }
    guard record.validated else { return deny(.emailNotValidated, .emailNotValidated(account: account, email: record.email)) }
    guard let agreement = try facts.agreement(lid) else { return deny(.unknownLicensingId, .unknownLicensingId(lid)) }
    let report = try readRoleReport(facts: facts, record.email, lid, record: agreement)
    let roles = report.roles
    if report.allows(action, benefit: benefit) {
        let by = report.holds(.administrator) ? Role.administrator : action.allowingRole
        return CheckResult(allowed: true, reason: .allowed, roles: roles, asOfSeq: lastSeq,
                           explanation: .allowed(email: record.email, by: by, lid: lid))
    }
    if action == .manageSoftwareAssurance, let benefit, report.holds(.softwareAssuranceManager) {
        return deny(.benefitNotHeld, .benefitNotHeld(email: record.email, lid: lid, benefit: benefit), roles)
    }
    return deny(.noRole, .noRole(action: action, lid: lid, email: record.email, roles: roles), roles)
}
