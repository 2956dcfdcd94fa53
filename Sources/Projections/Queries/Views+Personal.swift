import Ledger

// What answers show on a format-2 ledger: each token of the state replaced by its value (or
// `erased:PSEUDONYM`), and lists that are sorted by a person re-sorted by what they show
// (DOMAIN.md §5.1: "outputs sort by the string they show"). On a format-1 ledger the
// resolver changes nothing and the order is the state's, which is already by value.

extension CheckExplanation {
    func resolved(_ r: inout PersonalResolver) throws -> CheckExplanation {
        switch self {
        case let .notRegistered(a): return .notRegistered(account: try r.resolve(a))
        case let .emailNotValidated(a, e): return .emailNotValidated(account: try r.resolve(a), email: try r.resolve(e))
        case .unknownLicensingId: return self
        case let .allowed(e, by, lid): return .allowed(email: try r.resolve(e), by: by, lid: lid)
        case let .benefitNotHeld(e, lid, b): return .benefitNotHeld(email: try r.resolve(e), lid: lid, benefit: b)
        case let .noRole(action, lid, e, roles): return .noRole(action: action, lid: lid, email: try r.resolve(e), roles: roles)
        }
    }
}

extension CheckResult {
    func resolved(_ r: inout PersonalResolver) throws -> CheckResult {
        guard r.vault != nil else { return self }
        return CheckResult(allowed: allowed, reason: reason, roles: roles, asOfSeq: asOfSeq, explanation: try explanation.resolved(&r))
    }
}

extension Array where Element == AdministratorEntry {
    func resolved(_ r: inout PersonalResolver) throws -> [AdministratorEntry] {
        guard r.vault != nil else { return self }
        var out = try map { entry in
            var e = entry
            e.email = try r.resolve(entry.email)
            return e
        }
        out.sort { $0.email.utf8.lexicographicallyPrecedes($1.email.utf8) }
        return out
    }
}

extension RoleReason {
    func resolved(_ r: inout PersonalResolver) throws -> RoleReason {
        var out = self
        out.by = try r.resolve(by)
        if var origin {
            origin.sources = try origin.sources.map { try $0.resolved(&r) }
            out.origin = origin
        }
        return out
    }
}

extension Explanation {
    func resolved(_ r: inout PersonalResolver) throws -> Explanation {
        guard r.vault != nil else { return self }
        var out = self
        out.email = try r.resolve(email)
        for i in out.roles.indices {
            out.roles[i].reasons = try out.roles[i].reasons.map { try $0.resolved(&r) }
        }
        return out
    }
}

extension RequestRecord {
    func resolved(_ r: inout PersonalResolver) throws -> RequestRecord {
        guard r.vault != nil else { return self }
        var out = self
        out.account = try r.resolve(account)
        out.email = try r.resolve(email)
        out.comment = try r.resolve(comment)
        out.routedTo = try r.resolve(routedTo).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        out.decidedBy = try r.resolve(decidedBy)
        return out
    }
}

extension PermissionChange {
    func resolved(_ r: inout PersonalResolver) throws -> PermissionChange {
        var out = self
        out.email = try r.resolve(email)
        return out
    }
}

extension Array where Element == PermissionChange {
    /// Resolved, and in order: seq, then email, then Licensing ID.
    func resolved(_ r: inout PersonalResolver) throws -> [PermissionChange] {
        guard r.vault != nil else { return self }
        var out = try map { try $0.resolved(&r) }
        out.sort { $0.seq != $1.seq ? $0.seq < $1.seq : bytesPrecede([$0.email, $0.licensingId], [$1.email, $1.licensingId]) }
        return out
    }
}

extension Array where Element == PermissionDifference {
    /// Resolved, and in order: email, then Licensing ID.
    func resolved(_ r: inout PersonalResolver) throws -> [PermissionDifference] {
        guard r.vault != nil else { return self }
        var out = try map { d in
            var e = d
            e.email = try r.resolve(d.email)
            return e
        }
        out.sort { bytesPrecede([$0.email, $0.licensingId], [$1.email, $1.licensingId]) }
        return out
    }
}

extension AccessReview {
    func resolved(_ r: inout PersonalResolver) throws -> AccessReview {
        guard r.vault != nil else { return self }
        var out = self
        out.principals = try principals.map { p in
            var e = p
            e.email = try r.resolve(p.email)
            e.account = try r.resolve(p.account)
            return e
        }
        out.principals.sort { $0.email.utf8.lexicographicallyPrecedes($1.email.utf8) }
        return out
    }
}
