import Foundation

/// One occurrence of personal data in an event (DOMAIN.md §5.1): where it is, its value, and
/// whose it is.
public struct PersonalField: Sendable, Equatable {
    /// Whose a value is: the subject of an email, or the subject of an account (the email it
    /// registered with).
    public enum Owner: Sendable, Equatable, Hashable {
        /// The subject of this email (an email field is its own subject's).
        case email(String)
        /// The subject of this account (an account field, and the names, comments and denial
        /// reasons its account wrote).
        case account(String)
    }

    /// What a field holds: an email, an account name, or a free text (a first or last name, a
    /// comment, a denial's reason).
    public enum Kind: Sendable, Equatable, Hashable {
        /// An email: its own subject's.
        case email
        /// An account name: the subject's of the email it registered with.
        case account
        /// A free text: the subject's of the account (or, for none today, email) that wrote it.
        case text
    }

    /// The field's place in the export form: `email`, `contacts[1].email`, `routedTo[0]`, ….
    public var name: String
    /// What it holds.
    public var kind: Kind
    /// The value.
    public var value: String
    /// Whose the value is.
    public var owner: Owner
}

extension DomainEvent {
    /// The event with each list a rule derives from the state — a request's `routedTo`, an
    /// Open License's `notified`, in the state's order — replaced by `transform` of it (given
    /// the list and its field's name).
    func mappingDerivedLists(_ transform: ([String], String) throws -> [String]) rethrows -> DomainEvent {
        switch self {
        case var .permissionsRequested(r):
            r.routedTo = try transform(r.routedTo, "routedTo")
            return .permissionsRequested(r)
        case let .openLicenseAdded(a, e, l, roles, notified):
            return .openLicenseAdded(account: a, email: e, licensingId: l, roles: roles, notified: try transform(notified, "notified"))
        default:
            return self
        }
    }

    /// Every personal field of the event, in the order of its canonical payload: each email
    /// wherever it appears (lists and contacts included), each account, first and last names,
    /// a request's comment and a denial's free-text reason. An Open License attempt's reason
    /// is a code and its license number an agreement's, not personal; nor are Licensing IDs,
    /// request ids and the legacy source and role.
    public var personalFields: [PersonalField] {
        var fields: [PersonalField] = []
        _ = mappingPersonalFields { fields.append($0); return $0.value }
        return fields
    }

    /// The event with every personal value replaced by `transform` of its field (e.g.
    /// `erased:PSEUDONYM` for an erased subject's); the one list of which fields are personal,
    /// which ``personalFields`` reads too.
    public func mappingPersonalFields(_ transform: (PersonalField) throws -> String) rethrows -> DomainEvent {
        func email(_ name: String, _ value: String) throws -> String {
            try transform(PersonalField(name: name, kind: .email, value: value, owner: .email(value)))
        }
        func account(_ name: String, _ value: String, of owner: PersonalField.Owner? = nil) throws -> String {
            try transform(PersonalField(name: name, kind: .account, value: value, owner: owner ?? .account(value)))
        }
        func text(_ name: String, _ value: String, of owner: PersonalField.Owner) throws -> String {
            try transform(PersonalField(name: name, kind: .text, value: value, owner: owner))
        }
        func emails(_ name: String, _ values: [String]) throws -> [String] {
            var out: [String] = []
            out.reserveCapacity(values.count)
            for (i, v) in values.enumerated() { out.append(try email("\(name)[\(i)]", v)) }
            return out
        }
        switch self {
        case let .userRegistered(a, e):
            // the account is registered with this email: it is that subject's from here on
            return .userRegistered(account: try account("account", a, of: .email(e)), businessEmail: try email("businessEmail", e))
        case let .businessEmailValidated(a, e):
            return .businessEmailValidated(account: try account("account", a), email: try email("email", e))
        case let .profileCompleted(a, f, l):
            return .profileCompleted(account: try account("account", a), firstName: try text("firstName", f, of: .account(a)),
                                     lastName: try text("lastName", l, of: .account(a)))
        case var .agreementRecorded(r):
            for i in r.contacts.indices { r.contacts[i].email = try email("contacts[\(i)].email", r.contacts[i].email) }
            if let e = r.resellerEmail { r.resellerEmail = try email("resellerEmail", e) }
            return .agreementRecorded(r)
        case let .resellerAutoGranted(e, l, roles):
            return .resellerAutoGranted(email: try email("email", e), licensingId: l, roles: roles)
        case .licensingIdStatusChanged, .subjectErased:
            return self
        case let .rolesGranted(b, e, l, roles, benefits):
            return .rolesGranted(by: try account("by", b), email: try email("email", e), licensingId: l, roles: roles, saBenefits: benefits)
        case let .rolesRevoked(b, e, l, roles):
            return .rolesRevoked(by: try account("by", b), email: try email("email", e), licensingId: l, roles: roles)
        case var .permissionsRequested(r):
            let owner = r.account
            r.account = try account("account", r.account)
            r.email = try email("email", r.email)
            if let c = r.comment { r.comment = try text("comment", c, of: .account(owner)) }
            r.routedTo = try emails("routedTo", r.routedTo)
            return .permissionsRequested(r)
        case let .permissionRequestApproved(b, id, e, l, roles, benefits):
            return .permissionRequestApproved(by: try account("by", b), requestId: id, email: try email("email", e), licensingId: l,
                                              roles: roles, saBenefits: benefits)
        case let .permissionRequestDenied(b, id, reason):
            return .permissionRequestDenied(by: try account("by", b), requestId: id,
                                            reason: try reason.map { try text("reason", $0, of: .account(b)) })
        case let .openLicenseAttemptFailed(a, n, reason):
            return .openLicenseAttemptFailed(account: try account("account", a), licenseNumber: n, reason: reason)
        case let .openLicenseAdded(a, e, l, roles, notified):
            return .openLicenseAdded(account: try account("account", a), email: try email("email", e), licensingId: l, roles: roles,
                                     notified: try emails("notified", notified))
        case let .licensingIdRemovedByUser(a, e, l):
            return .licensingIdRemovedByUser(account: try account("account", a), email: try email("email", e), licensingId: l)
        case let .adminInheritanceOptedOut(a, e, p):
            return .adminInheritanceOptedOut(account: try account("account", a), email: try email("email", e), parentId: p)
        case let .adminInheritanceOptedIn(a, e, p):
            return .adminInheritanceOptedIn(account: try account("account", a), email: try email("email", e), parentId: p)
        case let .resellerAccessDenied(b, be, e, l, via):
            return .resellerAccessDenied(by: try b.map { try account("by", $0) }, byEmail: try email("byEmail", be),
                                         email: try email("email", e), licensingId: l, via: via)
        case let .openLicenseAccessDenied(b, e, l):
            return .openLicenseAccessDenied(by: try account("by", b), email: try email("email", e), licensingId: l)
        case let .legacyPermissionMigrated(s, lr, e, l, roles, benefits):
            return .legacyPermissionMigrated(source: s, legacyRole: lr, email: try email("email", e), licensingId: l, roles: roles,
                                             saBenefits: benefits)
        }
    }
}
