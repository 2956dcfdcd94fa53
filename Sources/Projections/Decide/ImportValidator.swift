import Ledger

/// Judges an event brought in from outside (an import) against the state before it: it
/// must be exactly what the rules would have produced there. Where the event carries the
/// whole command, the command is rebuilt and decided; where it can't (the authorization
/// number is never exported), the rule's other conditions are checked directly.
struct ImportValidator {
    let decider: Decider

    /// The refusal the event would meet, or nil when it applies cleanly.
    /// `previous` is the event just before it in the same import (for auto-grants).
    func check(_ event: DomainEvent, at: Timestamp, state: DomainState, previous: DomainEvent?) throws -> DomainError? {
        guard at.isInLedgerRange else { throw InputError.outOfRange(at) }
        if let last = state.lastAt, at < last {
            return DomainError(.timeWentBackwards, "event time \(at) is before the previous event's time \(last)")
        }
        func mismatch(_ what: String) -> DomainError {
            DomainError(.forbidden, "the event does not match what the rules produce here: \(what)")
        }
        func replay(_ command: Command, expecting: (DomainEvent) -> Bool = { _ in true }) throws -> DomainError? {
            switch try decider.decide(TimedCommand(at: at, command), state: state) {
            case let .refused(error, _): return error
            case let .accepted(events):
                guard let first = events.first else { return mismatch("nothing") }
                return first == event || expecting(first) ? nil : mismatch("expected \(first.jsonFields.map { "\($0.key)=\($0.value.text)" }.joined(separator: " "))")
            }
        }
        switch event {
        case let .userRegistered(a, e): return try replay(.registerUser(account: a, businessEmail: e))
        case let .businessEmailValidated(a, _): return try replay(.validateEmail(account: a))
        case let .profileCompleted(a, f, l): return try replay(.completeProfile(account: a, firstName: f, lastName: l))
        case let .agreementRecorded(r):
            if try state.agreement(r.licensingId) != nil { return DomainError(.duplicateLicensingId, "\(r.licensingId) is already recorded") }
            guard Normalize.isLicensingID(r.licensingId) else { return mismatch("'\(r.licensingId)' is not a Licensing ID") }
            if let parent = r.parent {
                guard let p = try state.agreement(parent) else { return DomainError(.unknownParent, "parent \(parent) is not recorded") }
                guard p.program.isParentKind else { return DomainError(.invalidParentKind, "parent \(parent) is a \(p.program.rawValue)") }
            }
            // a format-2 view holds tokens, made only for emails the sealer found normalised
            func normal(_ e: String) -> Bool { PersonalToken(e) != nil || Normalize.email(e) == e }
            if let bad = r.contacts.first(where: { !normal($0.email) }) {
                return DomainError(.invalidEmail, "contact email '\(bad.email)' is not a normalised business email")
            }
            if (r.program == .openLicense) != (r.authorizationHash != nil) {
                return DomainError(.missingAuthorizationNumber, "an authorizationHash is required for, and only for, openLicense")
            }
            if let reseller = r.resellerEmail, r.program != .openLicense || !normal(reseller) {
                return DomainError(.invalidEmail, "resellerEmail is only for a valid openLicense")
            }
            return nil
        case let .resellerAutoGranted(email, lid, roles):
            guard case let .agreementRecorded(r)? = previous, r.licensingId == lid, r.resellerEmail == email,
                  roles == decider.policy.limitedSet(available: r.availableRoles) else {
                return mismatch("resellerAutoGranted must directly follow the agreementRecorded that names this reseller, with the limited set")
            }
            return nil
        case let .licensingIdStatusChanged(l, s): return try replay(.setLicensingIdStatus(licensingId: l, status: s))
        case let .rolesGranted(b, e, l, r, sa): return try replay(.grantRoles(by: b, email: e, licensingId: l, roles: r, saBenefits: sa))
        case let .rolesRevoked(b, e, l, r): return try replay(.revokeRoles(by: b, email: e, licensingId: l, roles: r))
        case let .permissionsRequested(r):
            return try replay(.requestPermissions(requestId: r.requestId, account: r.account, licensingId: r.licensingId, roles: r.roles,
                                                  saBenefits: r.saBenefits, comment: r.comment))
        case let .permissionRequestApproved(b, id, _, _, _, _): return try replay(.approveRequest(by: b, requestId: id))
        case let .permissionRequestDenied(b, id, reason): return try replay(.denyRequest(by: b, requestId: id, reason: reason))
        case let .openLicenseAttemptFailed(account, number, reason):
            _ = try decider.actor(account, state)
            if let until = try state.lockout(account)?.suspendedUntil(at: at) {
                return DomainError(.suspended, "account \(account) is suspended until \(until); no attempt is recorded while suspended")
            }
            let known = try state.agreement(number)?.program == .openLicense
            if known != (reason == .authorizationMismatch) { return mismatch("reason \(reason.rawValue) for license \(number)") }
            return nil
        case let .openLicenseAdded(account, email, lid, roles, notified):
            let actorEmail = try decider.actor(account, state)
            if let until = try state.lockout(account)?.suspendedUntil(at: at) {
                return DomainError(.suspended, "account \(account) is suspended until \(until)")
            }
            guard let a = try state.agreement(lid), a.program == .openLicense else {
                return DomainError(.invalidLicenseAuthorization, "\(lid) is not an Open License")
            }
            guard actorEmail == email, roles == decider.policy.limitedSet(available: a.availableRoles),
                  notified == (try state.effectiveAdministrators(lid).map(\.email)) else { return mismatch("email, roles or notified") }
            return nil
        case let .licensingIdRemovedByUser(a, _, l): return try replay(.removeLicensingId(account: a, licensingId: l))
        case let .adminInheritanceOptedOut(a, _, p): return try replay(.optOutAdminInheritance(account: a, parentId: p))
        case let .adminInheritanceOptedIn(a, _, p): return try replay(.optInAdminInheritance(account: a, parentId: p))
        case let .resellerAccessDenied(by, byEmail, e, l, via):
            return try replay(.denyResellerAccess(by: by.map { .account($0) } ?? .email(byEmail), email: e, licensingId: l, via: via))
        case let .openLicenseAccessDenied(b, e, l): return try replay(.denyOpenLicenseAccess(by: b, email: e, licensingId: l))
        case let .legacyPermissionMigrated(s, r, e, l, _, _):
            return try replay(.migrateLegacyPermission(source: s, legacyRole: r, email: e, licensingId: l))
        case let .subjectErased(subject, _):
            return try Decider.erasureRefusal(email: "~e" + subject, state: state)
        }
    }
}
