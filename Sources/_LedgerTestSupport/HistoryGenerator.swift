import Ledger
import Projections

/// A small, fast, deterministic random number generator (SplitMix64), so generated
/// histories are the same for the same seed on every machine.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator from `seed`.
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `0 ..< bound` (bound > 0).
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(bound, 1))) }

    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
}

/// Writes large, plausible, deterministic histories of many organisations, as commands:
/// agreements (MBSA → Enterprise Agreement → enrollments, Select Plus, Open Value, Open
/// Licenses bought through resellers), users registering and validating, grants and
/// revocations, permission requests approved and denied, Add Open License attempts (most
/// right, some wrong, a few locking an account out), reseller denials, removals,
/// inheritance opt-outs and MVLS/eOpen migrations.
///
/// Most commands are accepted; a realistic share is refused by the rules (wrong numbers,
/// forbidden grants), which is part of the workload. The same seed always gives the same
/// history.
public struct HistoryGenerator: Sendable {
    private var rng: SeededRandom
    private var time: Int64
    private var orgs: [Org] = []
    private var pending: [TimedCommand] = []
    private var pendingIndex = 0
    private var orgCount = 0
    private var requestCounter = 0
    /// Organisations are created until this many exist, then activity continues among them.
    public let maxOrganisations: Int

    struct Org: Sendable {
        var name: String
        var domain: String
        var ids: [String] = []
        var openLicenses: [(id: String, auth: String)] = []
        var users: [String] = []   // account names; email = account@domain
        var admins: [String] = []  // accounts that are administrators of every id (primary contacts)
        var pendingRequests: [String] = []
    }

    /// A prefix for every name the generator makes, so several histories can share a ledger.
    public let namespace: String

    /// Creates a generator; `organisations` bounds how many companies the history has; the
    /// first command is after `start`; names are prefixed by `namespace`.
    public init(seed: UInt64, organisations: Int = 1_000, start: Timestamp = Timestamp(seconds: 1_767_225_600), namespace: String = "") {
        rng = SeededRandom(seed: seed)
        time = start.seconds
        maxOrganisations = max(1, organisations)
        self.namespace = namespace
    }

    /// The authorization number the generator used for an Open License it recorded.
    public static func authorizationNumber(org: Int, index: Int) -> String { "AUTH-\(org)-\(index)-\(org &* 7919 % 10007)" }

    /// The next command.
    public mutating func next() -> TimedCommand {
        while pendingIndex >= pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingIndex = 0
            plan()
        }
        defer { pendingIndex += 1 }
        return pending[pendingIndex]
    }

    /// The next `count` commands.
    public mutating func commands(_ count: Int) -> [TimedCommand] {
        (0 ..< count).map { _ in next() }
    }

    private mutating func tick() -> Timestamp {
        time += Int64(1 + rng.below(90))
        return Timestamp(seconds: time)
    }

    private mutating func emit(_ c: Command) {
        pending.append(TimedCommand(at: tick(), c))
    }

    private func email(_ account: String, _ org: Org) -> String { "\(account)@\(org.domain)" }

    private mutating func plan() {
        if orgs.isEmpty || (orgCount < maxOrganisations && rng.chance(0.04)) {
            newOrganisation()
            return
        }
        let o = rng.below(orgs.count)
        var org = orgs[o]
        defer { orgs[o] = org }
        guard let lid = org.ids.randomElement(using: &rng), let admin = org.admins.first else { return }
        let roll = rng.below(100)
        switch roll {
        case 0 ..< 14: // a new colleague registers and gets a role
            let account = "u\(org.users.count)-\(org.name)"
            org.users.append(account)
            emit(.registerUser(account: account, businessEmail: email(account, org)))
            emit(.validateEmail(account: account))
            let role = [Role.licensingInfo, .download, .productKeys, .onlineServicesManager].randomElement(using: &rng) ?? .download
            emit(.grantRoles(by: admin, email: email(account, org), licensingId: lid, roles: [role], saBenefits: []))
        case 14 ..< 24: // permission request
            guard let user = org.users.randomElement(using: &rng) else { return }
            requestCounter += 1
            let id = "r\(requestCounter)"
            emit(.requestPermissions(requestId: id, account: user, licensingId: lid, roles: [.licensingInfo, .download], saBenefits: [],
                                     comment: rng.chance(0.5) ? "need access for the rollout" : nil))
            org.pendingRequests.append(id)
        case 24 ..< 34: // a decision on a request
            guard !org.pendingRequests.isEmpty else { return }
            let id = org.pendingRequests.removeFirst()
            if rng.chance(0.75) { emit(.approveRequest(by: admin, requestId: id)) } else {
                emit(.denyRequest(by: admin, requestId: id, reason: "not needed"))
            }
        case 34 ..< 42: // SA manager grant
            guard let user = org.users.randomElement(using: &rng) else { return }
            let benefit = SABenefit.allCases.randomElement(using: &rng) ?? .techNet
            emit(.grantRoles(by: admin, email: email(user, org), licensingId: lid, roles: [.softwareAssuranceManager], saBenefits: [benefit]))
        case 42 ..< 48: // revoke
            guard let user = org.users.randomElement(using: &rng) else { return }
            emit(.revokeRoles(by: admin, email: email(user, org), licensingId: lid, roles: [.download]))
        case 48 ..< 58: // Add Open License attempt, sometimes wrong
            guard let user = org.users.randomElement(using: &rng), let ol = org.openLicenses.randomElement(using: &rng) else { return }
            emit(.completeProfile(account: user, firstName: "First \(user)", lastName: "Last"))
            let right = rng.chance(0.7)
            emit(.addOpenLicense(account: user, licenseNumber: ol.id, authorizationNumber: right ? ol.auth : "WRONG-\(rng.below(1000))",
                                 acknowledged: true))
        case 58 ..< 62: // a reseller is denied
            guard let ol = org.openLicenses.randomElement(using: &rng) else { return }
            if rng.chance(0.5) {
                emit(.denyResellerAccess(by: .email(email(admin, org)), email: "reseller@\(org.name)-partner.example", licensingId: ol.id, via: .emailLink))
            } else {
                emit(.denyResellerAccess(by: .account(admin), email: "reseller@\(org.name)-partner.example", licensingId: ol.id, via: .manageUsers))
            }
        case 62 ..< 66: // a user removes an ID
            guard let user = org.users.randomElement(using: &rng) else { return }
            emit(.removeLicensingId(account: user, licensingId: lid))
        case 66 ..< 70: // inheritance opt-out / opt-in by a delegated administrator
            guard let user = org.users.randomElement(using: &rng), let parent = org.ids.first else { return }
            emit(.grantRoles(by: admin, email: email(user, org), licensingId: parent, roles: [.administrator], saBenefits: []))
            emit(rng.chance(0.6) ? .optOutAdminInheritance(account: user, parentId: parent) : .optInAdminInheritance(account: user, parentId: parent))
        case 70 ..< 75: // migration
            let legacy = [("mvls", "user"), ("mvls", "userVLK"), ("mvls", "saBenefitAdministrator"), ("mvls", "msdnBenefitAdministrator"),
                          ("eopen", "none"), ("mvls", "superuser")].randomElement(using: &rng) ?? ("mvls", "user")
            emit(.migrateLegacyPermission(source: legacy.0, legacyRole: legacy.1, email: "legacy\(rng.below(50))@\(org.domain)", licensingId: lid))
        case 75 ..< 78: // status change
            emit(.setLicensingIdStatus(licensingId: lid, status: rng.chance(0.3) ? .inactive : .active))
        case 78 ..< 84: // a non-administrator tries to grant (forbidden)
            guard let user = org.users.randomElement(using: &rng) else { return }
            emit(.grantRoles(by: user, email: email(user, org), licensingId: lid, roles: [.administrator], saBenefits: []))
        default: // a grant of a further role
            guard let user = org.users.randomElement(using: &rng) else { return }
            let role = Role.allCases.filter { $0 != .softwareAssuranceManager }.randomElement(using: &rng) ?? .download
            emit(.grantRoles(by: admin, email: email(user, org), licensingId: lid, roles: [role], saBenefits: []))
        }
    }

    private mutating func newOrganisation() {
        let n = orgCount
        orgCount += 1
        let name = "\(namespace)org\(n)"
        var org = Org(name: name, domain: "\(name).example")
        let admin = "admin-\(name)"
        let notices = "legal-\(name)"
        let pe = email(admin, org), le = email(notices, org)
        let id = namespace.isEmpty ? "\(n)" : "\(namespace)\(n)"
        let mbsa = "MB-\(id)", ea = "EA-\(id)"
        emit(.recordAgreement(.init(licensingId: mbsa, program: .mbsa, contacts: [(.primaryContact, pe), (.noticesCorrespondent, le)])))
        emit(.recordAgreement(.init(licensingId: ea, program: .enterpriseAgreement, parent: mbsa, contacts: [(.primaryContact, pe)])))
        org.ids = [mbsa, ea]
        for k in 0 ..< 1 + rng.below(3) {
            let en = "EN-\(id)-\(k)"
            emit(.recordAgreement(.init(licensingId: en, program: .enterpriseEnrollment, parent: ea,
                                        contacts: [(.onlineAccessContact, email("it-\(name)", org)), (.softwareAssuranceManager, email("sam-\(name)", org))])))
            org.ids.append(en)
        }
        if rng.chance(0.5) {
            let sp = "SP-\(id)"
            emit(.recordAgreement(.init(licensingId: sp, program: .selectPlusCustomer, contacts: [(.primaryContact, pe)])))
            org.ids.append(sp)
        }
        if rng.chance(0.4) {
            let ov = "OV-\(id)"
            emit(.recordAgreement(.init(licensingId: ov, program: .openValue, contacts: [(.primaryContact, pe), (.subscriptionsManager, email("subs-\(name)", org))])))
            org.ids.append(ov)
        }
        for k in 0 ..< 1 + rng.below(2) {
            let ol = "OL-\(id)-\(k)"
            let auth = Self.authorizationNumber(org: n, index: k)
            emit(.recordAgreement(.init(licensingId: ol, program: .openLicense, contacts: [(.primaryContact, pe)], authorizationNumber: auth,
                                        resellerEmail: rng.chance(0.6) ? "reseller@\(name)-partner.example" : nil)))
            org.openLicenses.append((ol, auth))
            org.ids.append(ol)
        }
        for account in [admin, notices] {
            emit(.registerUser(account: account, businessEmail: email(account, org)))
            emit(.validateEmail(account: account))
        }
        org.admins = [admin]
        // A first colleague with a role on the first Open License, so Add Open License is open to them.
        let first = "u0-\(name)"
        org.users.append(first)
        emit(.registerUser(account: first, businessEmail: email(first, org)))
        emit(.validateEmail(account: first))
        if let ol = org.openLicenses.first {
            emit(.grantRoles(by: admin, email: email(first, org), licensingId: ol.id, roles: [.licensingInfo], saBenefits: []))
        }
        orgs.append(org)
    }
}

/// The JSON Lines form of a command, as `ledger-tool exec` reads it.
extension TimedCommand {
    /// `{"command": NAME, "at": TIME, …fields}` (no `at` for a command the ledger stamps:
    /// `exec` requires one).
    public var json: JSONValue {
        var f: [(key: String, value: JSONValue)] = []
        func s(_ k: String, _ v: String?) { if let v { f.append((k, .string(v))) } }
        func roles(_ r: [Role]) { f.append(("roles", .strings(r.map(\.rawValue)))) }
        func benefits(_ b: [SABenefit]) { if !b.isEmpty { f.append(("saBenefits", .strings(b.map(\.rawValue)))) } }
        let name: String
        switch command {
        case let .registerUser(a, e): name = "registerUser"; s("account", a); s("businessEmail", e)
        case let .validateEmail(a): name = "validateEmail"; s("account", a)
        case let .completeProfile(a, fn, ln): name = "completeProfile"; s("account", a); s("firstName", fn); s("lastName", ln)
        case let .recordAgreement(r):
            name = "recordAgreement"; s("licensingId", r.licensingId); s("program", r.program.rawValue); s("parent", r.parent)
            if r.status != .active { s("status", r.status.rawValue) }
            f.append(("contacts", .array(r.contacts.map { .object([("type", .string($0.type.rawValue)), ("email", .string($0.email))]) })))
            if let av = r.availableRoles { f.append(("availableRoles", .strings(av.map(\.rawValue)))) }
            s("authorizationNumber", r.authorizationNumber); s("resellerEmail", r.resellerEmail)
        case let .setLicensingIdStatus(l, st): name = "setLicensingIdStatus"; s("licensingId", l); s("status", st.rawValue)
        case let .grantRoles(b, e, l, r, sa): name = "grantRoles"; s("by", b); s("email", e); s("licensingId", l); roles(r); benefits(sa)
        case let .revokeRoles(b, e, l, r): name = "revokeRoles"; s("by", b); s("email", e); s("licensingId", l); roles(r)
        case let .requestPermissions(id, a, l, r, sa, c):
            name = "requestPermissions"; s("requestId", id); s("account", a); s("licensingId", l); roles(r); benefits(sa); s("comment", c)
        case let .approveRequest(b, id): name = "approveRequest"; s("by", b); s("requestId", id)
        case let .denyRequest(b, id, reason): name = "denyRequest"; s("by", b); s("requestId", id); s("reason", reason)
        case let .addOpenLicense(a, n, auth, ack):
            name = "addOpenLicense"; s("account", a); s("licenseNumber", n); s("authorizationNumber", auth); f.append(("acknowledged", .bool(ack)))
        case let .removeLicensingId(a, l): name = "removeLicensingId"; s("account", a); s("licensingId", l)
        case let .optOutAdminInheritance(a, p): name = "optOutAdminInheritance"; s("account", a); s("parentId", p)
        case let .optInAdminInheritance(a, p): name = "optInAdminInheritance"; s("account", a); s("parentId", p)
        case let .denyResellerAccess(by, e, l, via):
            name = "denyResellerAccess"
            switch by {
            case let .account(a): s("by", a)
            case let .email(x): s("byEmail", x)
            }
            s("email", e); s("licensingId", l); s("via", via.rawValue)
        case let .denyOpenLicenseAccess(b, e, l): name = "denyOpenLicenseAccess"; s("by", b); s("email", e); s("licensingId", l)
        case let .migrateLegacyPermission(src, lr, e, l):
            name = "migrateLegacyPermission"; s("source", src); s("legacyRole", lr); s("email", e); s("licensingId", l)
        }
        // (a command the ledger stamps has no time to write)
        var out: [(key: String, value: JSONValue)] = [("command", .string(name))] + (at.map { [("at", .string($0.iso8601))] } ?? [])
        if let id { out.append(("id", .string(id.uuidString.lowercased()))) }
        return .object(out + f)
    }
}
