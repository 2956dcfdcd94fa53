import Foundation
import Ledger

/// Who denies a reseller's automatic access (R12).
public enum Denier: Sendable, Equatable {
    /// A signed-in account (`via: manageUsers`).
    case account(String)
    /// The administrator's email from the welcome email's link (`via: emailLink`).
    case email(String)
}

/// A command of DOMAIN.md §3. Accounts are normalised when parsed; emails are kept as
/// given so that the rule can refuse a bad one with `invalidEmail`.
public enum Command: Sendable, Equatable {
    case registerUser(account: String, businessEmail: String)
    case validateEmail(account: String)
    case completeProfile(account: String, firstName: String, lastName: String)
    case recordAgreement(RecordAgreement)
    case setLicensingIdStatus(licensingId: String, status: Status)
    case grantRoles(by: String, email: String, licensingId: String, roles: [Role], saBenefits: [SABenefit])
    case revokeRoles(by: String, email: String, licensingId: String, roles: [Role])
    case requestPermissions(requestId: String, account: String, licensingId: String, roles: [Role], saBenefits: [SABenefit], comment: String?)
    case approveRequest(by: String, requestId: String)
    case denyRequest(by: String, requestId: String, reason: String?)
    case addOpenLicense(account: String, licenseNumber: String, authorizationNumber: String, acknowledged: Bool)
    case removeLicensingId(account: String, licensingId: String)
    case optOutAdminInheritance(account: String, parentId: String)
    case optInAdminInheritance(account: String, parentId: String)
    case denyResellerAccess(by: Denier, email: String, licensingId: String, via: DenyVia)
    case denyOpenLicenseAccess(by: String, email: String, licensingId: String)
    case migrateLegacyPermission(source: String, legacyRole: String, email: String, licensingId: String)

    /// The fields of `recordAgreement` (the legal form).
    public struct RecordAgreement: Sendable, Equatable {
        public var licensingId: String
        public var program: Program
        public var parent: String?
        public var status: Status
        public var contacts: [(type: ContactType, email: String)]
        public var availableRoles: [Role]?
        /// The plain authorization number; only its keyed hash is ever stored.
        public var authorizationNumber: String?
        public var resellerEmail: String?

        /// Creates the form.
        public init(licensingId: String, program: Program, parent: String? = nil, status: Status = .active,
                    contacts: [(type: ContactType, email: String)], availableRoles: [Role]? = nil,
                    authorizationNumber: String? = nil, resellerEmail: String? = nil) {
            self.licensingId = licensingId
            self.program = program
            self.parent = parent
            self.status = status
            self.contacts = contacts
            self.availableRoles = availableRoles
            self.authorizationNumber = authorizationNumber
            self.resellerEmail = resellerEmail
        }

        public static func == (a: RecordAgreement, b: RecordAgreement) -> Bool {
            a.licensingId == b.licensingId && a.program == b.program && a.parent == b.parent && a.status == b.status
                && a.contacts.map(\.type) == b.contacts.map(\.type) && a.contacts.map(\.email) == b.contacts.map(\.email)
                && a.availableRoles == b.availableRoles && a.authorizationNumber == b.authorizationNumber && a.resellerEmail == b.resellerEmail
        }
    }

    /// The command with every account field trimmed and lowercased (DOMAIN.md §1); nil
    /// when an account is empty or longer than 254 characters after trimming.
    public func normalizingAccounts() -> Command? {
        func n(_ a: String) -> String? { Normalize.account(a) }
        switch self {
        case let .registerUser(a, e): return n(a).map { .registerUser(account: $0, businessEmail: e) }
        case let .validateEmail(a): return n(a).map { .validateEmail(account: $0) }
        case let .completeProfile(a, f, l): return n(a).map { .completeProfile(account: $0, firstName: f, lastName: l) }
        case .recordAgreement, .setLicensingIdStatus, .migrateLegacyPermission: return self
        case let .grantRoles(b, e, l, r, sa): return n(b).map { .grantRoles(by: $0, email: e, licensingId: l, roles: r.canonical, saBenefits: sa.canonical) }
        case let .revokeRoles(b, e, l, r): return n(b).map { .revokeRoles(by: $0, email: e, licensingId: l, roles: r.canonical) }
        case let .requestPermissions(id, a, l, r, sa, c):
            return n(a).map { .requestPermissions(requestId: id, account: $0, licensingId: l, roles: r.canonical, saBenefits: sa.canonical, comment: c) }
        case let .approveRequest(b, id): return n(b).map { .approveRequest(by: $0, requestId: id) }
        case let .denyRequest(b, id, reason): return n(b).map { .denyRequest(by: $0, requestId: id, reason: reason) }
        case let .addOpenLicense(a, num, auth, ack):
            return n(a).map { .addOpenLicense(account: $0, licenseNumber: num, authorizationNumber: auth, acknowledged: ack) }
        case let .removeLicensingId(a, l): return n(a).map { .removeLicensingId(account: $0, licensingId: l) }
        case let .optOutAdminInheritance(a, p): return n(a).map { .optOutAdminInheritance(account: $0, parentId: p) }
        case let .optInAdminInheritance(a, p): return n(a).map { .optInAdminInheritance(account: $0, parentId: p) }
        case let .denyResellerAccess(.account(a), e, l, via): return n(a).map { .denyResellerAccess(by: .account($0), email: e, licensingId: l, via: via) }
        case .denyResellerAccess: return self
        case let .denyOpenLicenseAccess(b, e, l): return n(b).map { .denyOpenLicenseAccess(by: $0, email: e, licensingId: l) }
        }
    }

    /// Every command name.
    public static let names = [
        "registerUser", "validateEmail", "completeProfile", "recordAgreement", "setLicensingIdStatus", "grantRoles", "revokeRoles",
        "requestPermissions", "approveRequest", "denyRequest", "addOpenLicense", "removeLicensingId", "optOutAdminInheritance",
        "optInAdminInheritance", "denyResellerAccess", "denyOpenLicenseAccess", "migrateLegacyPermission",
    ]
}

/// A command with its time and an optional idempotency id.
public struct TimedCommand: Sendable, Equatable {
    /// When the command happens (never before the log head's time: else `timeWentBackwards`).
    /// nil: the ledger stamps it when it decides it, with the later of the current time and
    /// the head's time — so callers that don't control the order of commits never see
    /// `timeWentBackwards`.
    public var at: Timestamp?
    /// The command.
    public var command: Command
    /// When set, the ids of the events the command appends are derived from it, so
    /// executing the same command again (a retry) appends nothing twice.
    public var id: UUID?

    /// Creates a command that happens at `at`.
    public init(at: Timestamp, _ command: Command, id: UUID? = nil) {
        self.at = at
        self.command = command
        self.id = id
    }

    /// Creates a command the ledger stamps with its time when it decides it (`at` is nil).
    public init(_ command: Command, id: UUID? = nil) {
        at = nil
        self.command = command
        self.id = id
    }

    /// The time the command is decided at after an event at `last` (nil: none): its own, or
    /// for a command without one the later of `now` and `last`.
    public func time(after last: Timestamp?, now: Timestamp = .now) -> Timestamp {
        if let at { return at }
        guard let last else { return now }
        return max(now, last)
    }

    /// This command with its time: its own, or the one `time(after:now:)` gives.
    public func stamped(after last: Timestamp?, now: Timestamp = .now) -> TimedCommand {
        var c = self
        c.at = time(after: last, now: now)
        return c
    }

    /// Parses one `exec` line object `{"command": NAME, "at": TIME, …fields}`; throws
    /// `InputError` naming the field at fault.
    public init(json: JSONValue) throws {
        var f = try Fields(json, what: "a command")
        let name = try f.string("command")
        guard Command.names.contains(name) else {
            throw InputError(field: "command", InputError.unknown("command", name, known: Command.names))
        }
        at = try f.time("at")
        if let idText = try f.optionalString("id") {
            guard let id = UUID(uuidString: idText) else { throw InputError(field: "id", "\(InputError.quote(idText)) is not a UUID") }
            self.id = id
        }
        command = try Command.parse(name: name, fields: &f)
        try f.finish("the \(name) command")
    }
}

extension Command {
    static func parse(name: String, fields f: inout Fields) throws -> Command {
        func account(_ field: String) throws -> String {
            let raw = try f.string(field)
            guard let a = Normalize.account(raw) else { throw InputError(field: field, "an account must be 1–254 characters after trimming") }
            return a
        }
        func roles() throws -> [Role] { (try f.values("roles", Role.self, nonEmpty: true) ?? []).canonical }
        func benefits() throws -> [SABenefit] { (try f.values("saBenefits", SABenefit.self, required: false) ?? []).canonical }
        switch name {
        case "registerUser": return .registerUser(account: try account("account"), businessEmail: try f.string("businessEmail"))
        case "validateEmail": return .validateEmail(account: try account("account"))
        case "completeProfile":
            return .completeProfile(account: try account("account"), firstName: try f.string("firstName"), lastName: try f.string("lastName"))
        case "recordAgreement":
            let lid = try f.string("licensingId")
            guard Normalize.isLicensingID(lid) else { throw InputError(field: "licensingId", "\(InputError.quote(lid)) is not a Licensing ID ([A-Za-z0-9-]{1,32})") }
            let program = try f.value("program", Program.self)
            let parent = try f.optionalString("parent")
            let status = try f.optionalValue("status", Status.self) ?? .active
            let contacts = try f.contacts()
            let available = try f.values("availableRoles", Role.self, required: false)?.canonical
            let auth = try f.optionalString("authorizationNumber")
            let reseller = try f.optionalString("resellerEmail")
            if program != .openLicense {
                if auth != nil { throw InputError(field: "authorizationNumber", "is only for program openLicense") }
                if reseller != nil { throw InputError(field: "resellerEmail", "is only for program openLicense") }
            }
            return .recordAgreement(.init(licensingId: lid, program: program, parent: parent, status: status, contacts: contacts,
                                          availableRoles: available, authorizationNumber: auth, resellerEmail: reseller))
        case "setLicensingIdStatus": return .setLicensingIdStatus(licensingId: try f.string("licensingId"), status: try f.value("status", Status.self))
        case "grantRoles":
            return .grantRoles(by: try account("by"), email: try f.string("email"), licensingId: try f.string("licensingId"),
                               roles: try roles(), saBenefits: try benefits())
        case "revokeRoles":
            let c = Command.revokeRoles(by: try account("by"), email: try f.string("email"), licensingId: try f.string("licensingId"), roles: try roles())
            _ = try benefits()  // accepted for symmetry with grantRoles; a revocation removes the role with all its benefits
            return c
        case "requestPermissions":
            return .requestPermissions(requestId: try f.string("requestId"), account: try account("account"), licensingId: try f.string("licensingId"),
                                       roles: try roles(), saBenefits: try benefits(), comment: try f.optionalString("comment"))
        case "approveRequest": return .approveRequest(by: try account("by"), requestId: try f.string("requestId"))
        case "denyRequest": return .denyRequest(by: try account("by"), requestId: try f.string("requestId"), reason: try f.optionalString("reason"))
        case "addOpenLicense":
            return .addOpenLicense(account: try account("account"), licenseNumber: try f.string("licenseNumber"),
                                   authorizationNumber: try f.string("authorizationNumber"), acknowledged: try f.bool("acknowledged"))
        case "removeLicensingId": return .removeLicensingId(account: try account("account"), licensingId: try f.string("licensingId"))
        case "optOutAdminInheritance": return .optOutAdminInheritance(account: try account("account"), parentId: try f.string("parentId"))
        case "optInAdminInheritance": return .optInAdminInheritance(account: try account("account"), parentId: try f.string("parentId"))
        case "denyResellerAccess":
            let via = try f.value("via", DenyVia.self)
            let by: Denier
            switch via {
            case .manageUsers:
                if f.raw("byEmail") != nil { throw InputError(field: "byEmail", "is for via emailLink; via manageUsers names the signed-in account in 'by'") }
                by = .account(try account("by"))
            case .emailLink:
                if f.raw("by") != nil { throw InputError(field: "by", "is for via manageUsers; via emailLink names the administrator in 'byEmail'") }
                by = .email(try f.string("byEmail"))
            }
            return .denyResellerAccess(by: by, email: try f.string("email"), licensingId: try f.string("licensingId"), via: via)
        case "denyOpenLicenseAccess":
            return .denyOpenLicenseAccess(by: try account("by"), email: try f.string("email"), licensingId: try f.string("licensingId"))
        case "migrateLegacyPermission":
            return .migrateLegacyPermission(source: try f.string("source"), legacyRole: try f.string("legacyRole"),
                                            email: try f.string("email"), licensingId: try f.string("licensingId"))
        default:
            throw InputError(field: "command", InputError.unknown("command", name, known: Command.names))
        }
    }
}
