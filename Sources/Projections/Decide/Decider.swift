import Ledger

/// What the rules make of a command.
@_spi(LedgerInternals) public enum Decision: Sendable, Equatable {
    /// The command is accepted: append these events.
    case accepted([DomainEvent])
    /// The command is refused. `recorded` is what is appended all the same (only R9's
    /// failed attempt); usually empty.
    case refused(DomainError, recorded: [DomainEvent])
}

/// The rules of DOMAIN.md §3 as a pure function of a command and the current state:
/// `decide(command, state) -> Decision`. It reads the state and never changes it.
@_spi(LedgerInternals) public struct Decider: Sendable {
    /// The configurable parts of the rules.
    public var policy: Policy
    /// The key new authorization numbers are hashed with; nil when this ledger has none
    /// (recording Open Licenses then refuses).
    public var authorizationKey: AuthorizationKey?
    /// Keys retired by a rotation, still used to check the numbers of agreements recorded
    /// under them (found by the key id stored with each hash).
    public var previousAuthorizationKeys: [AuthorizationKey]

    /// Creates a decider.
    public init(policy: Policy = .default, authorizationKey: AuthorizationKey?, previousAuthorizationKeys: [AuthorizationKey] = []) {
        self.policy = policy
        self.authorizationKey = authorizationKey
        self.previousAuthorizationKeys = previousAuthorizationKeys
    }

    /// The key with this id, current or previous.
    func key(withId id: String?) -> AuthorizationKey? {
        guard let id else { return nil }
        if let key = authorizationKey, key.keyId == id { return key }
        return previousAuthorizationKeys.first { $0.keyId == id }
    }

    /// Decides `command` against `state`, at its time (a command without one: the later of
    /// now and the state's last time). Throws only when the state can't be read.
    public func decide(_ command: TimedCommand, state: DomainState) throws -> Decision {
        do {
            let at = command.time(after: state.lastAt)
            if let last = state.lastAt, at < last {
                throw DomainError(.timeWentBackwards, "the command's time \(at) is before the last event's time \(last)")
            }
            guard let normalized = command.command.normalizingAccounts() else {
                throw DomainError(.invalidAccount, "an account must be 1–254 characters after trimming")
            }
            if case let .recordAgreement(form) = normalized, !Normalize.isLicensingID(form.licensingId) {
                throw DomainError(.invalidLicensingId, "'\(form.licensingId)' is not a Licensing ID ([A-Za-z0-9-]{1,32})")
            }
            return try decideRule(normalized, at: at, state: state)
        } catch let refusal as DomainError {
            return .refused(refusal, recorded: [])
        }
    }

    // MARK: - Shared checks

    /// The actor checks: a registered account with a validated email. Returns its email.
    func actor(_ account: String, _ state: DomainState) throws -> String {
        guard let record = try state.account(account) else {
            throw DomainError(.notRegistered, "account '\(account)' is not registered; register it first")
        }
        guard record.validated else {
            throw DomainError(.emailNotValidated, "account '\(account)' has not validated its business email \(record.email)")
        }
        return record.email
    }

    func knownAgreement(_ lid: String, _ state: DomainState) throws -> AgreementRecord {
        guard let a = try state.agreement(lid) else {
            throw DomainError(.unknownLicensingId, "Licensing ID '\(lid)' is not recorded")
        }
        return a
    }

    func validEmail(_ raw: String, what: String = "email") throws -> String {
        // a format-2 ledger decides on tokens: the email was checked before it got one
        if case .email? = PersonalToken(raw) { return raw }
        guard let e = Normalize.email(raw) else {
            throw DomainError(.invalidEmail, "\(what) '\(raw)' is not a business email of the form local@domain.tld")
        }
        return e
    }

    func requireAdministrator(_ email: String, of lid: String, _ state: DomainState, doing: String) throws {
        guard try state.isAdministrator(email, lid) else {
            throw DomainError(.forbidden, "\(email) is not an administrator of \(lid) and may not \(doing)")
        }
    }

    func requireAvailable(_ roles: [Role], on agreement: AgreementRecord, _ lid: String) throws {
        if let missing = roles.first(where: { !agreement.availableRoles.contains($0) }) {
            throw DomainError(.roleNotAvailable, "role \(missing.rawValue) is not available on \(lid)")
        }
    }

    func requireBenefits(_ roles: [Role], _ benefits: [SABenefit]) throws {
        if roles.contains(.softwareAssuranceManager) && benefits.isEmpty {
            throw DomainError(.missingSABenefits, "softwareAssuranceManager needs a non-empty saBenefits list")
        }
    }

    /// R15's refusal for the email (its state form) when it holds access at this point: a
    /// role on any Licensing ID, or a place among an agreement's contacts (the legal form is
    /// the contract's record, GDPR Art. 17(3)), even after R10 removed its roles.
    static func erasureRefusal(email: String, state: DomainState) throws -> DomainError? {
        let view = try state.permissionsView(email: email, includeInactive: true)
        if let held = view.rows.first(where: { !$0.roles.isEmpty }) {
            return DomainError(.subjectHoldsAccess, "\(email) holds \(held.roles.map(\.rawValue).joined(separator: ", ")) on \(held.licensingId): revoke and remove it first")
        }
        var contactOf: String?
        try state.agreements.forEachCurrent { lid, agreement in
            if contactOf == nil, agreement.contacts.contains(where: { $0.email == email }) { contactOf = lid }
        }
        if let lid = contactOf {
            return DomainError(.subjectHoldsAccess, "\(email) is a contact on the legal form of \(lid), which is kept (GDPR Art. 17(3))")
        }
        return nil
    }

    // MARK: - The rules

    func decideRule(_ command: Command, at: Timestamp, state: DomainState) throws -> Decision {
        switch command {
        case let .registerUser(account, rawEmail):
            let email = try validEmail(rawEmail, what: "business email")
            if try state.account(account) != nil {
                throw DomainError(.alreadyRegistered, "account '\(account)' is already registered")
            }
            if let owner = try state.owner(ofEmail: email), owner != account {
                throw DomainError(.emailInUse, "\(email) was validated by another account")
            }
            return .accepted([.userRegistered(account: account, businessEmail: email)])

        case let .validateEmail(account):
            guard let record = try state.account(account) else {
                throw DomainError(.notRegistered, "account '\(account)' is not registered; register it first")
            }
            if record.validated { throw DomainError(.alreadyValidated, "account '\(account)' already validated \(record.email)") }
            if let owner = try state.owner(ofEmail: record.email), owner != account {
                throw DomainError(.emailInUse, "\(record.email) was validated by another account first")
            }
            return .accepted([.businessEmailValidated(account: account, email: record.email)])

        case let .completeProfile(account, first, last):
            _ = try actor(account, state)
            guard let f = Normalize.name(first), let l = Normalize.name(last) else {
                throw DomainError(.invalidName, "first and last name must each be 1–100 characters after trimming")
            }
            return .accepted([.profileCompleted(account: account, firstName: f, lastName: l)])

        case let .recordAgreement(form):
            return try recordAgreement(form, state)

        case let .setLicensingIdStatus(lid, status):
            _ = try knownAgreement(lid, state)
            return .accepted([.licensingIdStatusChanged(licensingId: lid, status: status)])

        case let .grantRoles(by, rawEmail, lid, roles, benefits):
            let actorEmail = try actor(by, state)
            let agreement = try knownAgreement(lid, state)
            let email = try validEmail(rawEmail)
            try requireAdministrator(actorEmail, of: lid, state, doing: "grant roles on it")
            try requireAvailable(roles, on: agreement, lid)
            try requireBenefits(roles, benefits)
            let kept = roles.contains(.softwareAssuranceManager) ? benefits : []
            return .accepted([.rolesGranted(by: by, email: email, licensingId: lid, roles: roles, saBenefits: kept)])

        case let .revokeRoles(by, rawEmail, lid, roles):
            let actorEmail = try actor(by, state)
            _ = try knownAgreement(lid, state)
            let email = try validEmail(rawEmail)
            try requireAdministrator(actorEmail, of: lid, state, doing: "revoke roles on it")
            let report = try state.roleReport(email, lid)
            for role in roles where !report.holdsDirectly(role) {
                if report.holdsByInheritance(role) {
                    throw DomainError(.inheritedAccess, "\(email) holds \(role.rawValue) on \(lid) only by inheritance; it can't be revoked here")
                }
                throw DomainError(.roleNotHeld, "\(email) does not hold \(role.rawValue) on \(lid)")
            }
            if roles.contains(.administrator) {
                let remaining = try state.effectiveAdministrators(lid).filter { admin in
                    admin.email != email || admin.sources.contains { $0.source == .inherited }
                }
                if remaining.isEmpty {
                    throw DomainError(.lastAdministrator, "\(email) is the last administrator of \(lid); grant administrator to someone else first")
                }
            }
            return .accepted([.rolesRevoked(by: by, email: email, licensingId: lid, roles: roles)])

        case let .requestPermissions(requestId, account, lid, roles, benefits, comment):
            let email = try actor(account, state)
            if try state.request(requestId) != nil {
                throw DomainError(.duplicateRequestId, "request id '\(requestId)' is already used")
            }
            let agreement = try knownAgreement(lid, state)
            try requireAvailable(roles, on: agreement, lid)
            try requireBenefits(roles, benefits)
            let admins = try state.effectiveAdministrators(lid).map(\.email)
            if admins.isEmpty {
                throw DomainError(.noAdministrator, "\(lid) has no administrator to route the request to")
            }
            let kept = roles.contains(.softwareAssuranceManager) ? benefits : []
            return .accepted([.permissionsRequested(.init(requestId: requestId, account: account, email: email, licensingId: lid, roles: roles,
                                                          saBenefits: kept, comment: comment, routedTo: admins))])

        case let .approveRequest(by, requestId), let .denyRequest(by, requestId, _):
            let actorEmail = try actor(by, state)
            guard let request = try state.request(requestId) else {
                throw DomainError(.unknownRequest, "no request has id '\(requestId)'")
            }
            try requireAdministrator(actorEmail, of: request.licensingId, state, doing: "decide requests for it")
            guard request.status == .pending else {
                throw DomainError(.requestNotPending, "request '\(requestId)' was already \(request.status.rawValue)")
            }
            if case let .denyRequest(_, _, reason) = command {
                return .accepted([.permissionRequestDenied(by: by, requestId: requestId, reason: reason)])
            }
            return .accepted([.permissionRequestApproved(by: by, requestId: requestId, email: request.email, licensingId: request.licensingId,
                                                         roles: request.roles, saBenefits: request.saBenefits)])

        case let .addOpenLicense(account, number, authorization, acknowledged):
            return try addOpenLicense(account: account, number: number, authorization: authorization, acknowledged: acknowledged, at: at, state)

        case let .removeLicensingId(account, lid):
            let email = try actor(account, state)
            let agreement = try knownAgreement(lid, state)
            if agreement.isLegalContact(email) {
                throw DomainError(.cannotRemoveContact, "\(email) is the primary contact or notices correspondent of \(lid) and can't remove it")
            }
            let report = try state.roleReport(email, lid)
            if let ancestor = report.inheritedInfoVia.first {
                throw DomainError(.retainedByParentContact, "\(email) is a primary contact or notices correspondent of \(ancestor), which keeps licensingInfo on \(lid)")
            }
            if let via = report.inheritedAdminVia {
                throw DomainError(.inheritedAccess, "\(email) administers \(lid) by inheritance from \(via); opt out of inheritance on \(via) instead")
            }
            if report.direct.isEmpty {
                throw DomainError(.nothingToRemove, "\(email) holds no role on \(lid)")
            }
            return .accepted([.licensingIdRemovedByUser(account: account, email: email, licensingId: lid)])

        case let .optOutAdminInheritance(account, parent), let .optInAdminInheritance(account, parent):
            let email = try actor(account, state)
            _ = try knownAgreement(parent, state)
            try requireAdministrator(email, of: parent, state, doing: "opt in or out of inheritance from it")
            if case .optOutAdminInheritance = command {
                return .accepted([.adminInheritanceOptedOut(account: account, email: email, parentId: parent)])
            }
            return .accepted([.adminInheritanceOptedIn(account: account, email: email, parentId: parent)])

        case let .denyResellerAccess(denier, rawEmail, lid, via):
            var by: String?
            let denierEmail: String
            switch denier {
            case let .account(account):
                denierEmail = try actor(account, state)
                by = account
            case let .email(raw):
                denierEmail = Normalize.email(raw) ?? raw
            }
            _ = try knownAgreement(lid, state)
            guard try state.isAdministrator(denierEmail, lid) else {
                throw DomainError(.forbidden, "\(denierEmail) is not an administrator of \(lid) and may not deny access to it")
            }
            let email = Normalize.email(rawEmail) ?? rawEmail
            guard try state.cell(email, lid)?.entries.contains(where: { $0.source == .reseller }) == true else {
                throw DomainError(.nothingToDeny, "\(email) has no automatic reseller access to \(lid)")
            }
            return .accepted([.resellerAccessDenied(by: by, byEmail: denierEmail, email: email, licensingId: lid, via: via)])

        case let .denyOpenLicenseAccess(by, rawEmail, lid):
            let actorEmail = try actor(by, state)
            _ = try knownAgreement(lid, state)
            try requireAdministrator(actorEmail, of: lid, state, doing: "deny access to it")
            let email = Normalize.email(rawEmail) ?? rawEmail
            guard try state.cell(email, lid)?.entries.contains(where: { $0.source == .openLicense }) == true else {
                throw DomainError(.nothingToDeny, "\(email) has no Add Open License access to \(lid)")
            }
            return .accepted([.openLicenseAccessDenied(by: by, email: email, licensingId: lid)])

        case let .migrateLegacyPermission(source, legacyRole, rawEmail, lid):
            let agreement = try knownAgreement(lid, state)
            let email = try validEmail(rawEmail)
            guard let mapped = LegacyRoles.map(source: source, legacyRole: legacyRole) else {
                throw DomainError(.unknownLegacyRole, "(\(source), \(legacyRole)) is not a known legacy role")
            }
            try requireAvailable(mapped.roles, on: agreement, lid)
            return .accepted([.legacyPermissionMigrated(source: source, legacyRole: legacyRole, email: email, licensingId: lid,
                                                        roles: mapped.roles, saBenefits: mapped.benefits)])
        }
    }

    func recordAgreement(_ form: Command.RecordAgreement, _ state: DomainState) throws -> Decision {
        if try state.agreement(form.licensingId) != nil {
            throw DomainError(.duplicateLicensingId, "Licensing ID '\(form.licensingId)' is already recorded")
        }
        if let parent = form.parent {
            guard let p = try state.agreement(parent) else {
                throw DomainError(.unknownParent, "parent '\(parent)' is not recorded")
            }
            guard p.program.isParentKind else {
                throw DomainError(.invalidParentKind, "parent '\(parent)' is a \(p.program.rawValue), not an mbsa, enterpriseAgreement or selectAgreement")
            }
        }
        let contacts = try form.contacts.map { Contact(type: $0.type, email: try validEmail($0.email, what: "contact email")) }
        var hash: [UInt8]?
        var keyId: String?
        if form.program == .openLicense {
            guard let number = form.authorizationNumber, !number.isEmpty else {
                throw DomainError(.missingAuthorizationNumber, "an openLicense needs its authorizationNumber")
            }
            guard let key = authorizationKey else {
                throw DomainError(.authorizationKeyUnavailable, "this ledger has no authorization key to hash the authorization number with")
            }
            hash = key.hash(number)
            keyId = key.keyId
        }
        let reseller = try form.resellerEmail.map { try validEmail($0, what: "reseller email") }
        let available = form.availableRoles ?? Role.allCases
        var events: [DomainEvent] = [.agreementRecorded(.init(
            licensingId: form.licensingId, program: form.program, parent: form.parent, status: form.status, contacts: contacts,
            availableRoles: available, authorizationHash: hash, keyId: keyId, resellerEmail: reseller))]
        if let reseller {
            events.append(.resellerAutoGranted(email: reseller, licensingId: form.licensingId, roles: policy.limitedSet(available: available)))
        }
        return .accepted(events)
    }

    /// The refusal of a failed Add Open License attempt that is recorded: the suspension it
    /// starts, or an invalid combination (also what a retry of that command reports).
    static func attemptRefusal(suspendsUntil until: Timestamp?) -> DomainError {
        if let until {
            return DomainError(.suspended, "invalid License/Authorization number combination entered too often; Add Open License is suspended until \(until)", until: until)
        }
        return DomainError(.invalidLicenseAuthorization, "invalid Authorization/License number combination")
    }

    func addOpenLicense(account: String, number: String, authorization: String, acknowledged: Bool, at: Timestamp,
                        _ state: DomainState) throws -> Decision {
        let email = try actor(account, state)
        guard acknowledged else { throw DomainError(.notAcknowledged, "the acknowledgement must be accepted") }
        guard try state.account(account)?.profileComplete == true else {
            throw DomainError(.profileIncomplete, "complete the profile (first and last name) before using Add Open License")
        }
        var hasOpenLicense = false
        for lid in try state.candidateIDs(email) where try state.agreement(lid)?.program == .openLicense {
            if try !state.roleReport(email, lid).roles.isEmpty { hasOpenLicense = true; break }
        }
        guard hasOpenLicense else {
            throw DomainError(.noOpenLicenseOnProfile, "Add Open License is for users who already hold a role on an Open License")
        }
        let lockout = try state.lockout(account)
        if let until = lockout?.suspendedUntil(at: at) {
            throw DomainError(.suspended, "Add Open License is suspended for this account until \(until) after repeated invalid attempts", until: until)
        }
        let agreement = try state.agreement(number)
        var failure: AttemptFailure?
        if let agreement, agreement.program == .openLicense, let stored = agreement.authorizationHash {
            guard let key = key(withId: agreement.keyId) else {
                throw DomainError(.authorizationKeyUnavailable,
                                  "this ledger does not hold the authorization key \(agreement.keyId ?? "?") the license was recorded with")
            }
            if !key.matches(authorization, stored: stored) { failure = .authorizationMismatch }
        } else {
            failure = .unknownLicense
        }
        if let failure {
            let event = DomainEvent.openLicenseAttemptFailed(account: account, licenseNumber: number, reason: failure)
            return .refused(Self.attemptRefusal(suspendsUntil: (lockout ?? .empty).recordingFailure(at: at, policy: policy).suspendsUntil),
                            recorded: [event])
        }
        let lid = number
        let roles = policy.limitedSet(available: agreement?.availableRoles ?? [])
        let notified = try state.effectiveAdministrators(lid).map(\.email)
        return .accepted([.openLicenseAdded(account: account, email: email, licensingId: lid, roles: roles, notified: notified)])
    }
}
