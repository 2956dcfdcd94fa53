import Ledger

/// Where an effective administrator's role on a Licensing ID comes from.
public struct AdminSource: Sendable, Equatable, Hashable {
    /// `contact`, `grant` (…) for a direct source, `inherited` for inheritance.
    public var source: RoleSource
    /// For `inherited`: the parent the administration flows from.
    public var via: String?
}

/// One role of an email on a Licensing ID and every reason it is held.
public struct RoleReason: Sendable, Equatable {
    /// The direct source, or `inherited`.
    public var source: RoleSource
    /// The event behind a direct source.
    public var seq: UInt64?
    /// That event's type name.
    public var type: String?
    /// For `inherited`: the ancestor it comes through (the parent for administrator, the
    /// ancestor whose primary contact or notices correspondent E is for licensingInfo).
    public var via: String?
    /// For a direct source, filled by `PermissionLedger.explain`: the event's time.
    public var at: Timestamp?
    /// For a direct source, filled by `PermissionLedger.explain`: the account that made the
    /// event (the granting or approving administrator, the account that added an Open
    /// License); nil for a legal form, a reseller grant or a migration.
    public var by: String?
    /// For `inherited`, filled by `PermissionLedger.explain`: where the inheritance starts —
    /// the ancestor holding the role directly (administrator) or naming E as primary contact
    /// or notices correspondent (licensingInfo), and the direct sources there.
    public var origin: InheritanceOrigin?
}

/// Where an inherited role starts: an ancestor and the direct sources there.
public struct InheritanceOrigin: Sendable, Equatable {
    /// The ancestor.
    public var licensingId: String
    /// Its direct sources of the role (administrator), or of E's contact there (licensingInfo),
    /// with seq, type, time and actor.
    public var sources: [RoleReason]
}

/// The roles of an email on a Licensing ID, with their sources (DOMAIN.md §2).
public struct RoleReport: Sendable, Equatable {
    /// The direct sources (contact, grant, openLicense, reseller).
    public var direct: [GrantEntry]
    /// The parent administration is inherited through, when it is.
    public var inheritedAdminVia: String?
    /// Ancestors where the email is primary contact or notices correspondent (each gives licensingInfo).
    public var inheritedInfoVia: [String]

    /// Every role held, canonical order.
    public var roles: [Role] {
        var held = 0
        for e in direct { held |= 1 << e.role.order }
        if inheritedAdminVia != nil { held |= 1 << Role.administrator.order }
        if !inheritedInfoVia.isEmpty { held |= 1 << Role.licensingInfo.order }
        return Role.canonical.filter { held & (1 << $0.order) != 0 }
    }

    /// The SA benefits held (the union over the `softwareAssuranceManager` entries).
    public var saBenefits: [SABenefit] {
        Array(Set(direct.filter { $0.role == .softwareAssuranceManager }.flatMap(\.benefits))).sorted()
    }

    /// Whether `role` is held through a direct source.
    public func holdsDirectly(_ role: Role) -> Bool { direct.contains { $0.role == role } }

    /// Whether `role` is held through inheritance.
    public func holdsByInheritance(_ role: Role) -> Bool {
        (role == .administrator && inheritedAdminVia != nil) || (role == .licensingInfo && !inheritedInfoVia.isEmpty)
    }

    /// Whether `role` is held at all.
    public func holds(_ role: Role) -> Bool { holdsDirectly(role) || holdsByInheritance(role) }

    /// Every reason for `role`, direct ones in seq order, then inherited ones.
    public func reasons(for role: Role) -> [RoleReason] {
        var out = direct.filter { $0.role == role }.sorted { $0.seq < $1.seq }
            .map { RoleReason(source: $0.source, seq: $0.seq, type: DomainEvent.typeName(kind: $0.kind), via: nil) }
        if role == .administrator, let via = inheritedAdminVia { out.append(RoleReason(source: .inherited, via: via)) }
        if role == .licensingInfo { out += inheritedInfoVia.map { RoleReason(source: .inherited, via: $0) } }
        return out
    }

    /// Whether `action` (optionally for one SA benefit) is allowed by these roles.
    public func allows(_ action: Action, benefit: SABenefit? = nil) -> Bool {
        if holds(.administrator) { return true }
        let role = action.allowingRole
        guard holds(role) else { return false }
        if action == .manageSoftwareAssurance, let benefit { return saBenefits.contains(benefit) }
        return true
    }
}

extension DomainState {
    /// The ancestors of `lid`: its parent, the parent's parent, … (cycles and runaway
    /// chains are cut at 64 levels; recording refuses cycles anyway).
    public func ancestors(of lid: String) throws -> [String] {
        var out: [String] = []
        var current = try agreement(lid)?.parent
        while let p = current, out.count < 64, !out.contains(p), p != lid {
            out.append(p)
            current = try agreement(p)?.parent
        }
        return out
    }

    /// The parent through which `email` inherits administration of `lid`, if it does:
    /// `admin(E, L) = directAdmin(E, L) ∨ (¬optedOut(E, P) ∧ admin(E, P))`.
    public func inheritedAdminVia(_ email: String, _ lid: String) throws -> String? {
        guard let parent = try agreement(lid)?.parent, parent != lid else { return nil }
        if try optedOut(email, from: parent) { return nil }
        return try isAdministrator(email, parent, depth: 1) ? parent : nil
    }

    /// Whether `email` is an effective administrator of `lid` (directly or inherited).
    public func isAdministrator(_ email: String, _ lid: String) throws -> Bool {
        try isAdministrator(email, lid, depth: 0)
    }

    private func isAdministrator(_ email: String, _ lid: String, depth: Int) throws -> Bool {
        if try cell(email, lid)?.hasAdministrator == true { return true }
        guard depth < 64, let parent = try agreement(lid)?.parent, parent != lid else { return false }
        if try optedOut(email, from: parent) { return false }
        return try isAdministrator(email, parent, depth: depth + 1)
    }

    /// The effective administrators of `lid` with where each comes from, sorted by email.
    public func effectiveAdministrators(_ lid: String) throws -> [(email: String, sources: [AdminSource])] {
        var memo: [String: [String: Set<AdminSource>]] = [:]
        let table = try adminTable(lid, memo: &memo, depth: 0)
        return table.keys.sorted().map { email in
            (email, (table[email] ?? []).sorted { ($0.source.rawValue, $0.via ?? "") < ($1.source.rawValue, $1.via ?? "") })
        }
    }

    private func adminTable(_ lid: String, memo: inout [String: [String: Set<AdminSource>]], depth: Int) throws -> [String: Set<AdminSource>] {
        if let hit = memo[lid] { return hit }
        var table: [String: Set<AdminSource>] = [:]
        for email in try directAdmins(lid) {
            for entry in try cell(email, lid)?.entries ?? [] where entry.role == .administrator {
                table[email, default: []].insert(AdminSource(source: entry.source, via: nil))
            }
        }
        if depth < 64, let parent = try agreement(lid)?.parent, parent != lid {
            for (email, _) in try adminTable(parent, memo: &memo, depth: depth + 1) where !(try optedOut(email, from: parent)) {
                table[email, default: []].insert(AdminSource(source: .inherited, via: parent))
            }
        }
        memo[lid] = table
        return table
    }

    /// The roles of `email` on `lid` with their sources.
    public func roleReport(_ email: String, _ lid: String) throws -> RoleReport {
        try roleReport(email, lid, record: try agreement(lid))
    }

    /// `roleReport` when the caller already read `lid`'s agreement record.
    func roleReport(_ email: String, _ lid: String, record: AgreementRecord?) throws -> RoleReport {
        try readRoleReport(facts: self, email, lid, record: record)
    }

    /// Every Licensing ID on which `email` may hold a role: its cells, and the descendants
    /// of IDs it administers or is a legal contact of. Sorted.
    public func candidateIDs(_ email: String) throws -> [String] {
        var out = Set(try lidsWithCells(email))
        var stack = Array(out) + (try legalContactIDs(email))
        var visited = Set<String>()
        while let lid = stack.popLast() {
            guard visited.insert(lid).inserted, visited.count < 1_000_000 else { continue }
            for child in try agreement(lid)?.children ?? [] {
                out.insert(child)
                stack.append(child)
            }
        }
        return out.sorted()
    }
}

/// What a check and a role report read: a state over a transaction (`DomainState`), or the
/// hot cache held at one commit (`HotFacts`). One logic, so both give the same answers.
protocol PermissionFacts {
    /// The seq of the last event the facts include.
    var lastSeq: UInt64 { get }
    func account(_ account: String) throws -> AccountRecord?
    func agreement(_ lid: String) throws -> AgreementRecord?
    func cell(_ email: String, _ lid: String) throws -> CellRecord?
    func optedOut(_ email: String, from parent: String) throws -> Bool
    /// The Licensing IDs where `email` has a cell (nil: none).
    func lidsWithCells(of email: String) throws -> StringSet?
}

extension DomainState: PermissionFacts {
    func lidsWithCells(of email: String) throws -> StringSet? { try emailLids.get(email) }
}

/// The roles of `email` on `lid` read from `facts`, when the caller already read `lid`'s
/// agreement record. One walk up the parent chain reads each ancestor's record once; it
/// gives the same answer as `inheritedAdminVia` and `ancestors(of:)` (chains are acyclic: a
/// parent must be recorded before its children).
func readRoleReport(facts: some PermissionFacts, _ email: String, _ lid: String, record: AgreementRecord?) throws -> RoleReport {
    // a cell exists exactly when its ID is in the email's `emailLids` entry (`setCell`
    // keeps both), so one read of that entry answers for every absent cell on the chain
    let listed = try facts.lidsWithCells(of: email)
    func cell(_ email: String, _ lid: String) throws -> CellRecord? {
        guard listed?.contains(lid) == true else { return nil }
        return try facts.cell(email, lid)
    }
    let direct = try cell(email, lid)?.entries ?? []
    // each ancestor, and whether the email is its primary contact or notices correspondent
    var chain: [(lid: String, legalContact: Bool)] = []
    var current = record?.parent
    while let p = current, chain.count < 64, p != lid, !chain.contains(where: { $0.lid == p }) {
        let r = try facts.agreement(p)
        chain.append((p, r?.isLegalContact(email) ?? false))
        current = r?.parent
    }
    // admin(E, L) = directAdmin(E, L) ∨ (¬optedOut(E, P) ∧ admin(E, P)), up the chain: the
    // nearest ancestor the email administers directly, reached when no ID from the parent
    // up to it is opted out of (opt-outs are read only when there is such an ancestor)
    var via: String?
    if let parent = chain.first?.lid, let nearest = try chain.firstIndex(where: { try cell(email, $0.lid)?.hasAdministrator == true }),
       try !chain[...nearest].contains(where: { try facts.optedOut(email, from: $0.lid) }) {
        via = parent
    }
    let info = chain.filter(\.legalContact).map(\.lid)
    return RoleReport(direct: direct, inheritedAdminVia: via, inheritedInfoVia: info)
}
