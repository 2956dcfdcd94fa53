import Ledger

/// The effective permissions of one email on one Licensing ID (DOMAIN.md §4.1): the roles
/// from every source, inherited included, and the SA benefits.
public struct EffectivePermissions: Sendable, Hashable {
    /// The roles, in canonical order.
    public var roles: [Role]
    /// The SA benefits, in canonical order.
    public var saBenefits: [SABenefit]

    /// No role and no benefit.
    public static let none = EffectivePermissions(roles: [], saBenefits: [])

    /// Whether no role is held.
    public var isEmpty: Bool { roles.isEmpty && saBenefits.isEmpty }

    /// Creates a value.
    public init(roles: [Role], saBenefits: [SABenefit]) {
        self.roles = roles
        self.saBenefits = saBenefits
    }
}

/// An effective change: the event at `seq` changed the permissions of (email, Licensing ID).
public struct PermissionChange: Sendable, Hashable {
    /// The event that made the change.
    public var seq: UInt64
    /// Its time.
    public var at: Timestamp
    /// Its type name (e.g. `rolesGranted`).
    public var type: String
    /// The email whose permissions changed.
    public var email: String
    /// The Licensing ID they changed on.
    public var licensingId: String
    /// Just before the event.
    public var before: EffectivePermissions
    /// Just after it.
    public var after: EffectivePermissions

    /// The roles the change gave.
    public var rolesGained: [Role] { after.roles.filter { !before.roles.contains($0) } }
    /// The roles the change took away.
    public var rolesLost: [Role] { before.roles.filter { !after.roles.contains($0) } }
}

/// The history of one email (optionally on one Licensing ID) between two points.
public struct PermissionHistory: Sendable, Equatable {
    /// The email asked about.
    public var email: String
    /// The seq of the from point (changes are after it).
    public var fromSeq: UInt64
    /// The seq of the to point (changes are up to it, inclusive).
    public var toSeq: UInt64
    /// Every effective change in between, by seq, then Licensing ID.
    public var changes: [PermissionChange]
}

/// One pair whose permissions differ between two points.
public struct PermissionDifference: Sendable, Hashable {
    public var email: String
    public var licensingId: String
    /// At the from point.
    public var before: EffectivePermissions
    /// At the to point.
    public var after: EffectivePermissions
}

/// What differs between two points.
public struct PermissionDiff: Sendable, Equatable {
    public var fromSeq: UInt64
    public var toSeq: UInt64
    /// Sorted by email, then Licensing ID.
    public var changes: [PermissionDifference]
}

/// One principal of an access review.
public struct AccessEntry: Sendable, Equatable {
    /// The email holding the roles.
    public var email: String
    /// The account whose validated business email it is at the point, if any.
    public var account: String?
    /// The roles and benefits held.
    public var permissions: EffectivePermissions
    /// The distinct sources behind the roles, in DOMAIN.md §2's order.
    public var sources: [RoleSource]
    /// Every role with its reasons (as `explain` gives them).
    public var report: RoleReport
}

/// The access review of a Licensing ID at a point: everyone holding any role on it.
public struct AccessReview: Sendable, Equatable {
    public var licensingId: String
    /// The seq of the last event the answer includes.
    public var asOfSeq: UInt64
    /// Sorted by email.
    public var principals: [AccessEntry]
}

/// What `whatIf` found: each command's result, and what would change.
public struct WhatIfResult: Sendable, Equatable {
    /// One per command, with the seqs its events would get.
    public var results: [ExecutionResult]
    /// The head the commands were decided on.
    public var fromSeq: UInt64
    /// The seq the last event would have (the head when none would be appended).
    public var toSeq: UInt64
    /// The head's permissions against those the commands would leave.
    public var changes: [PermissionDifference]
}
