import Foundation
import Ledger

// The questions a service and an auditor ask: permissions, checks, explanations, events.

extension PermissionLedger {
    /// The My Permissions view of `email`.
    @_disfavoredOverload
    public func permissions(email: String, asOf: AsOf? = nil, includeInactive: Bool = false) throws -> PermissionsView {
        let e = try stateEmail(email)
        var view = try withState(asOf: asOf) { try $0.permissionsView(email: e, includeInactive: includeInactive) }
        view.email = Normalize.email(email) ?? email.lowercased()
        return view
    }

    /// The My Permissions view of `account`: its validated business email's, or a refusal
    /// (`notRegistered`, `emailNotValidated`).
    @_disfavoredOverload
    public func permissions(account: String, asOf: AsOf? = nil, includeInactive: Bool = false) throws -> Result<PermissionsView, DomainError> {
        let a = try stateAccount(account), shown = Normalize.account(account) ?? account
        var r = resolver()
        return try withState(asOf: asOf) { state in
            guard let record = try state.account(a) else { return .failure(DomainError(.notRegistered, "account '\(shown)' is not registered")) }
            guard record.validated else {
                return .failure(DomainError(.emailNotValidated, "account '\(shown)' has not validated \(try r.resolve(record.email)); nothing is visible before validation"))
            }
            var view = try state.permissionsView(email: record.email, includeInactive: includeInactive)
            view.email = try r.resolve(view.email)
            return .success(view)
        }
    }

    /// Whether `account` may do `action` on `licensingId`.
    @_disfavoredOverload
    public func check(account: String, action: Action, licensingId: String, benefit: SABenefit? = nil, asOf: AsOf? = nil) throws -> CheckResult {
        try LedgerMetrics.timed(asOf == nil ? metrics.checkHead : metrics.checkPast) {
            try checkTimed(account: account, action: action, licensingId: licensingId, benefit: benefit, asOf: asOf)
        }
    }

    private func checkTimed(account: String, action: Action, licensingId: String, benefit: SABenefit?, asOf: AsOf?) throws -> CheckResult {
        guard let vault else { return try checkState(account: Normalize.account(account) ?? account, action: action, licensingId: licensingId, benefit: benefit, asOf: asOf) }
        // one view of the cache for the account's look-up and the answer's values
        let name = Normalize.account(account) ?? account
        let cached = try CachedVault(vault: vault, cache: personalCache)
        let a = try cached.stateAccount(name)
        var r = PersonalResolver(cached: cached, account: (a, name))
        return try checkState(account: a, action: action, licensingId: licensingId, benefit: benefit, asOf: asOf).resolved(&r)
    }

    /// `check` of an account in the state's form.
    private func checkState(account a: String, action: Action, licensingId: String, benefit: SABenefit?, asOf: AsOf?) throws -> CheckResult {
        // at the head, from the hot cache alone when it is at the last commit and holds
        // every record the check reads (no transaction, one lock)
        if asOf == nil, let hot, let answer = try hot.withFacts(at: environment.lastCommitID, {
            try checkPermission(facts: $0, account: a, licensingId: licensingId, action: action, benefit: benefit)
        }) {
            return answer
        }
        return try withState(asOf: asOf) { try $0.check(account: a, licensingId: licensingId, action: action, benefit: benefit) }
    }

    /// The lockout status of `account` at `at` (the events up to that time).
    @_disfavoredOverload
    public func lockout(account: String, at: Timestamp) throws -> LockoutStatus {
        try lockout(account: account, asOf: .time(at), now: at)
    }

    /// The lockout status of `account` at a point (DOMAIN.md §6): R9 evaluated at the
    /// point's time — the time given, or for `.seq(N)` the time of event N — over the events
    /// up to the point; with no point, at `now` over every event. An account never
    /// registered is not an error: it is not locked and has no failures.
    public func lockout(account: String, asOf point: AsOf?, now: Timestamp) throws -> LockoutStatus {
        let a = try stateAccount(account)
        let at: Timestamp
        switch point {
        case nil: at = now
        case let .time(t)?: at = t
        // a seq past the head means the head; seq 0 is the empty state, where nothing counts whenever asked
        case let .seq(n)?: at = try log.event(min(n, try log.head().seq))?.at ?? now
        }
        var status = try withState(asOf: point) { try $0.lockoutStatus(account: a, at: at, policy: decider.policy) }
        status.account = Normalize.account(account) ?? account
        return status
    }

    /// R14: the effective administrators of `licensingId`, answered only to an account
    /// that administers it or an ancestor (`forbidden` otherwise).
    @_disfavoredOverload
    public func administrators(of licensingId: String, askedBy account: String) throws -> Result<[AdministratorEntry], DomainError> {
        let a = try stateAccount(account)
        var r = resolver(known: [a: Normalize.account(account) ?? account])
        return try withState { state in
            let email: String
            do { email = try decider.actor(a, state) } catch let e as DomainError {
                return .failure(DomainError(e.code, r.resolveWithin(e.message), until: e.until))
            }
            guard try state.agreement(licensingId) != nil else {
                return .failure(DomainError(.unknownLicensingId, "Licensing ID '\(licensingId)' is not recorded"))
            }
            var allowed = try state.isAdministrator(email, licensingId)
            for ancestor in try state.ancestors(of: licensingId) where !allowed {
                allowed = try state.isAdministrator(email, ancestor)
            }
            guard allowed else {
                return .failure(DomainError(.forbidden, "for privacy, only an administrator of \(licensingId) or of a parent agreement may see its administrators; submit a permission request instead"))
            }
            return .success(try state.administrators(of: licensingId).resolved(&r))
        }
    }

    /// The effective administrators of `licensingId` for an operator (no R14 check), at a
    /// point; `unknownLicensingId` when the ID is not recorded there.
    @_disfavoredOverload
    public func administrators(of licensingId: String, asOf: AsOf? = nil) throws -> Result<[AdministratorEntry], DomainError> {
        try withState(asOf: asOf) { try administrators(in: $0, of: licensingId) }
    }

    /// `administrators(of:asOf:)` in `state`.
    func administrators(in state: DomainState, of licensingId: String) throws -> Result<[AdministratorEntry], DomainError> {
        guard try state.agreement(licensingId) != nil else { return .failure(Self.unknown(licensingId, state)) }
        var r = resolver()
        return .success(try state.administrators(of: licensingId).resolved(&r))
    }

    /// Every role of `email` on `licensingId` with the events behind it, at a point;
    /// `unknownLicensingId` when the ID is not recorded there. An email never seen is not
    /// an error: it has no roles.
    @_disfavoredOverload
    public func explain(email: String, licensingId: String, asOf: AsOf? = nil) throws -> Result<Explanation, DomainError> {
        try withState(asOf: asOf) { try explain(in: $0, email: email, licensingId: licensingId) }
    }

    /// `explain(email:licensingId:asOf:)` in `state`.
    func explain(in state: DomainState, email: String, licensingId: String) throws -> Result<Explanation, DomainError> {
        let e = try stateEmail(email)
        guard try state.agreement(licensingId) != nil else { return .failure(Self.unknown(licensingId, state)) }
        var explanation = try state.explain(email: e, licensingId: licensingId)
        // what an auditor asks next: when and by whom, and where an inheritance starts
        for i in explanation.roles.indices {
            let role = explanation.roles[i].role
            for j in explanation.roles[i].reasons.indices {
                var reason = explanation.roles[i].reasons[j]
                if let via = reason.via {
                    reason.origin = try inheritanceOrigin(of: role, email: e, from: via, state)
                } else {
                    try describeSource(&reason, state)
                }
                explanation.roles[i].reasons[j] = reason
            }
        }
        var r = resolver()
        explanation = try explanation.resolved(&r)
        explanation.email = Normalize.email(email) ?? email.lowercased()
        return .success(explanation)
    }

    /// Fills a direct source's time and actor from its event.
    private func describeSource(_ reason: inout RoleReason, _ state: DomainState) throws {
        guard let seq = reason.seq else { return }
        let stored = try state.transactionReader.map { try log.event(seq, reader: $0) } ?? log.event(seq)
        guard let stored else { return }
        reason.at = stored.at
        switch try foldEvent(kind: stored.kind, payload: stored.payload) {
        case let .rolesGranted(by, _, _, _, _), let .permissionRequestApproved(by, _, _, _, _, _): reason.by = by
        case let .openLicenseAdded(account, _, _, _, _): reason.by = account
        default: break
        }
    }

    /// Where `email`'s inherited `role` starts, looking up from `via`: for administrator the
    /// first ancestor where it is held directly, for licensingInfo `via` itself (E is its
    /// primary contact or notices correspondent).
    private func inheritanceOrigin(of role: Role, email: String, from via: String, _ state: DomainState) throws -> InheritanceOrigin? {
        var current: String? = via
        var steps = 0
        while let lid = current, steps < 64 {
            let entries = try state.cell(email, lid)?.entries ?? []
            let wanted = role == .administrator ? entries.filter { $0.role == .administrator }
                : entries.filter { $0.source == .contact }
            if !wanted.isEmpty || role != .administrator {
                var sources = wanted.sorted { $0.seq < $1.seq }
                    .map { RoleReason(source: $0.source, seq: $0.seq, type: DomainEvent.typeName(kind: $0.kind), via: nil) }
                for k in sources.indices { try describeSource(&sources[k], state) }
                return InheritanceOrigin(licensingId: lid, sources: sources)
            }
            current = try state.agreement(lid)?.parent
            steps += 1
        }
        return nil
    }

    /// The refusal for a Licensing ID not recorded in `state`.
    static func unknown(_ licensingId: String, _ state: DomainState) -> DomainError {
        DomainError(.unknownLicensingId, "Licensing ID '\(licensingId)' is not recorded" + (state.lastSeq > 0 ? " as of seq \(state.lastSeq)" : " (the ledger is empty at that point)"))
    }

    /// A permission request.
    public func request(_ id: String) throws -> RequestRecord? {
        var r = resolver()
        return try withState { try $0.request(id) }.map { try $0.resolved(&r) }
    }

    /// Permission requests, optionally only those with `status` and/or routed to
    /// `administrator` (an email), sorted by request id, at a point (the head by default).
    public func requests(status: RequestStatus? = nil, routedTo administrator: String? = nil, asOf: AsOf? = nil) throws -> [RequestView] {
        let admin = try administrator.map { try stateEmail($0) }
        var out: [RequestView] = []
        try withState(asOf: asOf) { state in
            try state.requests.forEach { id, record in
                if (status == nil || record.status == status) && (admin == nil || record.routedTo.contains(admin ?? "")) {
                    out.append(RequestView(requestId: id, record: record))
                }
                return true
            }
        }
        var r = resolver()
        return try out.sorted { $0.requestId.utf8.lexicographicallyPrecedes($1.requestId.utf8) }
            .map { RequestView(requestId: $0.requestId, record: try $0.record.resolved(&r)) }
    }

    /// Stored events with `from ≤ seq ≤ to` and, when given, `fromTime ≤ at ≤ toTime`,
    /// decoded, that pass `filter`. Times never go backwards, so the time bounds become seq
    /// bounds by binary search: only the events inside are read.
    public func events(from: UInt64 = 1, to: UInt64 = .max, fromTime: Timestamp? = nil, toTime: Timestamp? = nil,
                       filter: (LedgerEvent) -> Bool = { _ in true }) throws -> [LedgerEvent] {
        var first = max(from, 1), last = to
        if let fromTime { first = max(first, try resolve(.time(fromTime.subtracting(seconds: 1))) + 1) }
        if let toTime { last = min(last, try resolve(.time(toTime))) }
        var out: [LedgerEvent] = []
        guard first <= last else { return out }
        try forEachEvent(from: first, to: last) { e in
            if filter(e) { out.append(e) }
            return true
        }
        return out
    }

    /// Visits decoded events in seq order until `body` returns false (streaming).
    public func forEachEvent(from: UInt64 = 1, to: UInt64 = .max, _ body: (LedgerEvent) throws -> Bool) throws {
        var r = resolver()
        var keys = ChainKeys()
        try environment.read { txn in
            try log.forEach(from: from, in: txn) { view in
                if view.seq > to { return false }
                var event: DomainEvent
                do { event = try foldEvent(kind: view.kind, payload: view.payload) } catch {
                    throw LogError.corrupt(seq: view.seq, reason: "\(error)")
                }
                event = try r.resolve(event)
                let sealed = try vault == nil ? nil : chainFields(kind: view.kind, payload: view.payload, keys: &keys)
                return try body(LedgerEvent(seq: view.seq, id: view.id, at: view.at, event: event, hash: Array(view.hash), sealed: sealed))
            }
        }
    }

    /// Counts by type, the head and the data file's size.
    public func stats() throws -> LedgerStats {
        var byType: [String: UInt64] = [:]
        var count: UInt64 = 0
        try environment.read { txn in
            try log.forEach(from: 1, in: txn) { view in
                byType[DomainEvent.typeName(kind: view.kind) ?? "kind\(view.kind)", default: 0] += 1
                count += 1
                return true
            }
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: environment.path + "/data.mdb")[.size] as? Int) ?? nil
        return LedgerStats(events: count, byType: byType, head: try log.head(), fileBytes: size ?? environment.usedBytes)
    }
}
