import Ledger

/// The projections an event changes, in groups that never read one another: folding the
/// same events into each group on its own, in any interleaving, gives the same tables as
/// folding them into all at once (a rebuild folds the groups on two cores).
@_spi(LedgerInternals) public struct EvolveParts: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// accounts, email owners, permission requests, lockouts
    public static let people = EvolveParts(rawValue: 1)
    /// cells and the indexes kept with them (email → IDs, ID → administrators, legal contacts)
    public static let grants = EvolveParts(rawValue: 2)
    /// agreements (with their children) and administrator inheritance opt-outs
    public static let agreements = EvolveParts(rawValue: 4)
    /// the state's position: the last seq and time folded in
    public static let position = EvolveParts(rawValue: 8)
    /// the changelog (effective permissions per pair and their changes): it reads the
    /// grants and the agreements, so it is folded together with both
    public static let changelog = EvolveParts(rawValue: 16)
    public static let all: EvolveParts = [.people, .grants, .agreements, .position, .changelog]
}

/// Folds events into a `DomainState`: `evolve(state, event)`. This is the only way any
/// projection changes; it trusts the event (the decider or the import validator has
/// already judged it).
@_spi(LedgerInternals) public struct Evolver: Sendable {
    /// The policy (lockout and contact tables) events are folded with.
    public var policy: Policy

    /// Whether the changelog is folded (always, but for the benchmark that measures its cost).
    let foldsChangelog: Bool

    /// Creates an evolver.
    public init(policy: Policy = .default) { self.init(policy: policy, foldsChangelog: true) }

    init(policy: Policy, foldsChangelog: Bool) {
        self.policy = policy
        self.foldsChangelog = foldsChangelog
    }

    /// Applies `event`, stored at `seq` with time `at`, to `state`.
    public func evolve(_ state: DomainState, _ event: DomainEvent, seq: UInt64, at: Timestamp) throws {
        try evolve(state, event, seq: seq, at: at, parts: .all)
    }

    /// Applies to `state` only what `event` changes in `parts` (see `EvolveParts`).
    public func evolve(_ state: DomainState, _ event: DomainEvent, seq: UInt64, at: Timestamp, parts: EvolveParts) throws {
        // the names the event keys projections by get their stable ids first (once: the
        // part that folds the position does it, so two threads folding parts don't race)
        if parts.contains(.position) { try state.ids.register(event) }
        let kind = event.kind
        let people = parts.contains(.people), grants = parts.contains(.grants), agreements = parts.contains(.agreements)
        // the cell last written, before and after (the event's own pair's, for an event
        // that changes one cell: what the changelog starts from)
        var written: (before: CellRecord?, after: CellRecord?) = (nil, nil)
        func add(_ email: String, _ lid: String, _ roles: [Role], _ source: RoleSource, benefits: [SABenefit] = []) throws {
            guard grants else { return }
            let before = try state.cell(email, lid)
            var cell = before ?? CellRecord(entries: [])
            for role in roles {
                cell.entries.append(GrantEntry(role: role, source: source, seq: seq, kind: kind,
                                               benefits: role == .softwareAssuranceManager ? benefits : []))
            }
            try state.setCell(email, lid, cell, seq: seq)
            written = (before, cell)
        }
        func remove(_ email: String, _ lid: String, where drop: (GrantEntry) -> Bool) throws {
            guard grants, let before = try state.cell(email, lid) else { return }
            var cell = before
            cell.entries.removeAll(where: drop)
            try state.setCell(email, lid, cell, seq: seq)
            written = (before, cell)
        }

        switch event {
        case let .userRegistered(account, email):
            if people { try state.accounts.set(account, AccountRecord(email: email, validated: false), seq: seq) }
        case let .businessEmailValidated(account, email) where people:
            if var record = try state.account(account) {
                record.validated = true
                try state.accounts.set(account, record, seq: seq)
            }
            try state.emailOwners.set(email, StringValue(value: account), seq: seq)
        case let .profileCompleted(account, first, last) where people:
            if var record = try state.account(account) {
                record.firstName = first
                record.lastName = last
                try state.accounts.set(account, record, seq: seq)
            }
        case let .agreementRecorded(r):
            if agreements {
                try state.agreements.set(r.licensingId, AgreementRecord(
                    program: r.program, parent: r.parent, status: r.status, contacts: r.contacts, availableRoles: r.availableRoles,
                    authorizationHash: r.authorizationHash, keyId: r.keyId, children: []), seq: seq)
                if let parent = r.parent, var p = try state.agreement(parent) {
                    var children = StringSet(values: p.children)
                    if children.insert(r.licensingId) {
                        p.children = children.values
                        try state.agreements.set(parent, p, seq: seq)
                    }
                }
            }
            for contact in r.contacts where grants {
                let roles = (policy.contactRoles[contact.type] ?? []).filter { r.availableRoles.contains($0) }
                if !roles.isEmpty {
                    try add(contact.email, r.licensingId, roles, .contact, benefits: SABenefit.allCases)
                }
                if contact.type.isLegalContact { try state.addLegalContact(contact.email, r.licensingId, seq: seq) }
            }
        case let .resellerAutoGranted(email, lid, roles):
            try add(email, lid, roles, .reseller)
        case let .licensingIdStatusChanged(lid, status) where agreements:
            if var a = try state.agreement(lid) {
                a.status = status
                try state.agreements.set(lid, a, seq: seq)
            }
        case let .rolesGranted(_, email, lid, roles, benefits):
            try add(email, lid, roles, .grant, benefits: benefits)
        case let .rolesRevoked(_, email, lid, roles):
            try remove(email, lid) { roles.contains($0.role) }
        case let .permissionsRequested(r) where people:
            try state.requests.set(r.requestId, RequestRecord(
                account: r.account, email: r.email, licensingId: r.licensingId, roles: r.roles, saBenefits: r.saBenefits,
                comment: r.comment, routedTo: r.routedTo, status: .pending, requestedSeq: seq, decidedSeq: nil, decidedBy: nil), seq: seq)
        case let .permissionRequestApproved(by, requestId, email, lid, roles, benefits):
            if people, var request = try state.request(requestId) {
                request.status = .approved
                request.decidedSeq = seq
                request.decidedBy = by
                try state.requests.set(requestId, request, seq: seq)
            }
            try add(email, lid, roles, .grant, benefits: benefits)
        case let .permissionRequestDenied(by, requestId, _) where people:
            if var request = try state.request(requestId) {
                request.status = .denied
                request.decidedSeq = seq
                request.decidedBy = by
                try state.requests.set(requestId, request, seq: seq)
            }
        case let .subjectErased(subject, _) where people:
            // the subject's pending requests are withdrawn: its email's, and its accounts'
            let email = "~e" + subject  // its email's token (a decoded subject is 32 lowercase hex digits)
            var withdrawn: [(String, RequestRecord)] = []
            try state.requests.forEachCurrent { id, request in
                guard request.status == .pending else { return }
                if try request.email == email || state.account(request.account)?.email == email { withdrawn.append((id, request)) }
            }
            for (id, var request) in withdrawn.sorted(by: { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }) {
                request.status = .withdrawn
                request.decidedSeq = seq
                try state.requests.set(id, request, seq: seq)
            }
        case let .openLicenseAttemptFailed(account, _, _) where people:
            let record = (try state.lockout(account) ?? .empty).recordingFailure(at: at, policy: policy).record
            try state.lockouts.set(account, record, seq: seq)
        case let .openLicenseAdded(_, email, lid, roles, _):
            try add(email, lid, roles, .openLicense)
        case let .licensingIdRemovedByUser(_, email, lid):
            try remove(email, lid) { _ in true }
        case let .adminInheritanceOptedOut(_, email, parent) where agreements:
            try state.optOuts.set(DomainState.pairKey(email, parent), SeqValue(seq: seq), seq: seq)
        case let .adminInheritanceOptedIn(_, email, parent) where agreements:
            try state.optOuts.set(DomainState.pairKey(email, parent), nil, seq: seq)
        case let .resellerAccessDenied(_, _, email, lid, _):
            try remove(email, lid) { $0.source == .reseller }
        case let .openLicenseAccessDenied(_, email, lid):
            try remove(email, lid) { $0.source == .openLicense }
        case let .legacyPermissionMigrated(_, _, email, lid, roles, benefits):
            try add(email, lid, roles, .grant, benefits: benefits)
        case .businessEmailValidated, .profileCompleted, .licensingIdStatusChanged, .permissionsRequested, .permissionRequestDenied,
             .openLicenseAttemptFailed, .adminInheritanceOptedOut, .adminInheritanceOptedIn, .subjectErased:
            break  // in a part not asked for
        }
        // the effective changes, worked out from the state after the event and the stored
        // permissions before it
        if parts.contains(.changelog) && foldsChangelog { try ChangeTracker(event, state, cell: written).record(state, seq: seq) }
        if parts.contains(.position) { try state.setPosition(seq: seq, at: at) }
    }
}
