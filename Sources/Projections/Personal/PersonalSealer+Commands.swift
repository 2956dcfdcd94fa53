import Ledger

extension PersonalSealer {
    /// `command` with each email and account it names as its token, so that it is decided on
    /// a format-2 state as it would be on a format-1 one: a valid email gets its subject's
    /// (a new one when first seen); an account the one it names, and a registration's new
    /// account one of the email's subject. What is malformed or unknown stays as given, so that
    /// the rule refuses it as before (`invalidEmail`, `invalidAccount`, `notRegistered`, …) —
    /// the state never holds a value, so a value is never found in it. Free texts stay values
    /// (the rules check them) and are sealed with the event.
    func tokenize(_ command: Command) throws -> Command {
        func email(_ raw: String) throws -> String {
            guard let e = Normalize.email(raw) else { return raw }
            return try emailToken(e)
        }
        func account(_ raw: String) throws -> String {
            guard let a = Normalize.account(raw) else { return raw }
            return try accountToken(a) ?? a
        }
        switch command {
        case let .registerUser(a, e):
            guard let name = Normalize.account(a), let valid = Normalize.email(e) else { return command }
            if let existing = try accountToken(name) { return .registerUser(account: existing, businessEmail: try emailToken(valid)) }
            let owner = try emailToken(valid)
            return .registerUser(account: try newAccountToken(name, owner: owner), businessEmail: owner)
        case let .validateEmail(a): return .validateEmail(account: try account(a))
        case let .completeProfile(a, f, l): return .completeProfile(account: try account(a), firstName: f, lastName: l)
        case var .recordAgreement(form):
            for i in form.contacts.indices { form.contacts[i].email = try email(form.contacts[i].email) }
            if let r = form.resellerEmail { form.resellerEmail = try email(r) }
            return .recordAgreement(form)
        case .setLicensingIdStatus: return command
        case let .grantRoles(b, e, l, r, sa): return .grantRoles(by: try account(b), email: try email(e), licensingId: l, roles: r, saBenefits: sa)
        case let .revokeRoles(b, e, l, r): return .revokeRoles(by: try account(b), email: try email(e), licensingId: l, roles: r)
        case let .requestPermissions(id, a, l, r, sa, c):
            return .requestPermissions(requestId: id, account: try account(a), licensingId: l, roles: r, saBenefits: sa, comment: c)
        case let .approveRequest(b, id): return .approveRequest(by: try account(b), requestId: id)
        case let .denyRequest(b, id, reason): return .denyRequest(by: try account(b), requestId: id, reason: reason)
        case let .addOpenLicense(a, n, auth, ack):
            return .addOpenLicense(account: try account(a), licenseNumber: n, authorizationNumber: auth, acknowledged: ack)
        case let .removeLicensingId(a, l): return .removeLicensingId(account: try account(a), licensingId: l)
        case let .optOutAdminInheritance(a, p): return .optOutAdminInheritance(account: try account(a), parentId: p)
        case let .optInAdminInheritance(a, p): return .optInAdminInheritance(account: try account(a), parentId: p)
        case let .denyResellerAccess(.account(a), e, l, via):
            return .denyResellerAccess(by: .account(try account(a)), email: try email(e), licensingId: l, via: via)
        case let .denyResellerAccess(.email(d), e, l, via):
            return .denyResellerAccess(by: .email(try email(d)), email: try email(e), licensingId: l, via: via)
        case let .denyOpenLicenseAccess(b, e, l): return .denyOpenLicenseAccess(by: try account(b), email: try email(e), licensingId: l)
        case let .migrateLegacyPermission(s, lr, e, l): return .migrateLegacyPermission(source: s, legacyRole: lr, email: try email(e), licensingId: l)
        }
    }
}
