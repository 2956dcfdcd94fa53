import Ledger

// The changelog (DOMAIN.md §4.1): every effective change of every (email, Licensing ID)
// pair, worked out when its event is folded and stored three ways — by pair (`p.effective`:
// the effective permissions of each pair, versioned, so the value at any seq is one seek,
// and the Licensing ID first, so an access review reads one prefix), by email
// (`p.emailChanges`: a history reads one range) and by seq (`p.changes`: a diff or a feed
// reads one range).

/// The effective permissions of one pair as two bit sets: roles (bit = canonical order) and
/// SA benefits (bit = canonical order). Stored in `p.effective`; absent means no role.
struct EffectiveBits: StateRecord, Hashable, Sendable {
    var roles: UInt8
    var benefits: UInt8

    static let none = EffectiveBits(roles: 0, benefits: 0)

    var isEmpty: Bool { roles == 0 && benefits == 0 }

    init(roles: UInt8, benefits: UInt8) {
        self.roles = roles
        self.benefits = benefits
    }

    /// What the direct sources `entries` give (a cell's part of a pair's permissions).
    init(direct entries: [GrantEntry]) {
        var r: UInt8 = 0, b: UInt8 = 0
        for e in entries {
            r |= 1 << UInt8(e.role.order)
            if e.role == .softwareAssuranceManager { for benefit in e.benefits { b |= 1 << UInt8(benefit.order) } }
        }
        self.init(roles: r, benefits: b)
    }

    /// The administrator bit, the licensing-info bit, and both (what a pair can inherit).
    static let administrator = UInt8(1 << Role.administrator.order)
    static let licensingInfo = UInt8(1 << Role.licensingInfo.order)
    static let inheritable = administrator | licensingInfo

    /// What `report` holds.
    init(_ report: RoleReport) {
        var r: UInt8 = 0
        for role in report.roles { r |= 1 << UInt8(role.order) }
        var b: UInt8 = 0
        for benefit in report.saBenefits { b |= 1 << UInt8(benefit.order) }
        self.init(roles: r, benefits: b)
    }

    /// The roles, in canonical order.
    var roleList: [Role] { Role.canonical.filter { roles & (1 << UInt8($0.order)) != 0 } }

    /// The SA benefits, in canonical order.
    var benefitList: [SABenefit] { SABenefit.allCases.filter { benefits & (1 << UInt8($0.order)) != 0 } }

    /// The public form.
    var permissions: EffectivePermissions { EffectivePermissions(roles: roleList, saBenefits: benefitList) }

    func encode(to w: inout BinaryWriter) {
        w.write(roles)
        w.write(benefits)
    }

    static func decode(from r: inout BinaryReader) throws -> EffectiveBits {
        let roles = try r.readUInt8(), benefits = try r.readUInt8()
        guard roles < 1 << 7 else { throw LedgerDecodingError("role bits \(roles)", offset: r.offset) }
        return EffectiveBits(roles: roles, benefits: benefits)
    }
}

/// One effective change inside an event: the pair by stable ids, before and after.
struct PairChange: Equatable, Sendable {
    var email: UInt32
    var lid: UInt32
    var before: EffectiveBits
    var after: EffectiveBits
}

extension PairChange {
    /// The error for a change whose ids name nothing in the dictionary (a damaged store).
    var unnamed: StateError {
        .unnamedKey(table: ProjectionTable.changes.rawValue, key: "email id \(email), Licensing ID id \(lid)")
    }
}

/// The values of each pair at the two ends of a run of changes given in seq order: its first
/// change's `before` and its last change's `after` (what `diff` and `whatIf` compare).
struct PairSpans {
    private var spans: [UInt64: (first: EffectiveBits, last: EffectiveBits)] = [:]

    mutating func note(_ c: PairChange) {
        let key = UInt64(c.email) << 32 | UInt64(c.lid)
        if let s = spans[key] { spans[key] = (s.first, c.after) } else { spans[key] = (c.before, c.after) }
    }

    /// The pairs whose two values differ, named through `ids`, sorted by email then
    /// Licensing ID; `reversed`: `before` is the run's end and `after` its start.
    func differences(named ids: StableIDs, reversed: Bool = false) throws -> [PermissionDifference] {
        var out: [PermissionDifference] = []
        for (key, s) in spans where s.first != s.last {
            let c = PairChange(email: UInt32(key >> 32), lid: UInt32(key & 0xFFFF_FFFF), before: s.first, after: s.last)
            guard let email = try ids.name(.email, c.email), let lid = try ids.name(.licensingId, c.lid) else { throw c.unnamed }
            let (before, after) = reversed ? (s.last, s.first) : (s.first, s.last)
            out.append(PermissionDifference(email: email, licensingId: lid, before: before.permissions, after: after.permissions))
        }
        return out.sorted { bytesPrecede([$0.email, $0.licensingId], [$1.email, $1.licensingId]) }
    }
}

/// The changes one event made (`p.changes`, keyed by its seq), sorted by email id, then
/// Licensing ID id.
struct EventChanges: StateRecord, Sendable {
    var entries: [PairChange]

    func encode(to w: inout BinaryWriter) {
        w.writeVarint(UInt64(entries.count))
        for e in entries {
            w.writeVarint(UInt64(e.email)); w.writeVarint(UInt64(e.lid))
            e.before.encode(to: &w); e.after.encode(to: &w)
        }
    }

    static func decode(from r: inout BinaryReader) throws -> EventChanges {
        let n = try r.readLength("changes")
        var entries: [PairChange] = []
        entries.reserveCapacity(n)
        for _ in 0 ..< n {
            let email = try r.readID(), lid = try r.readID()
            entries.append(PairChange(email: email, lid: lid, before: try .decode(from: &r), after: try .decode(from: &r)))
        }
        return EventChanges(entries: entries)
    }
}

/// The changes one event made to one email's pairs (`p.emailChanges`, keyed by email and
/// seq), sorted by Licensing ID id; `email` is the key's and is not stored again.
struct EmailChanges: StateRecord, Sendable {
    var entries: [PairChange]

    func encode(to w: inout BinaryWriter) {
        w.writeVarint(UInt64(entries.count))
        for e in entries {
            w.writeVarint(UInt64(e.lid))
            e.before.encode(to: &w); e.after.encode(to: &w)
        }
    }

    static func decode(from r: inout BinaryReader) throws -> EmailChanges {
        let n = try r.readLength("changes")
        var entries: [PairChange] = []
        entries.reserveCapacity(n)
        for _ in 0 ..< n {
            let lid = try r.readID()
            entries.append(PairChange(email: 0, lid: lid, before: try .decode(from: &r), after: try .decode(from: &r)))
        }
        return EmailChanges(entries: entries)
    }
}

extension BinaryReader {
    /// A stable id written as a varint.
    mutating func readID() throws -> UInt32 {
        let v = try readVarint()
        guard v > 0, v <= UInt64(UInt32.max) else { throw LedgerDecodingError("stable id \(v)", offset: offset) }
        return UInt32(v)
    }
}

/// The pairs an event may change, with their effective permissions just before it, then
/// compared with the state after (`record`). Made once the event is folded: the pairs are
/// derived from projections the event does not change — the event's own pair, the
/// descendants an administrator change or an opt-out reaches, the people a new Licensing ID
/// gives a role — never from a scan of every email; their permissions before are the
/// stored ones (`p.effective`, written only by `record`), and the own pair's cell before
/// and after is handed over by the fold.
struct ChangeTracker {
    /// How a candidate's permissions after the event are found, from what the event can
    /// change of them (its other sources stay as they were).
    enum After {
        /// The event changed only the pair's cell, which gave `directBefore` before it.
        case cellChanged(directBefore: EffectiveBits)
        /// A cascade: only the administrator role can change, held directly or through
        /// `parent` (`admin(E, L) = directAdmin(E, L) ∨ (¬optedOut(E, P) ∧ admin(E, P))`,
        /// the parent's after the event: the candidates come parents first).
        case administratorThrough(parent: String)
        /// A new Licensing ID under `parent`: its cell, administrator through the parent,
        /// and licensing info when the email is a legal contact of an ancestor.
        case recorded(parent: String?, legalContactAbove: Bool)
    }

    private var pairs: [(email: String, lid: String, ids: IDKey?, before: EffectiveBits, after: After)] = []
    /// The own pair's cell after the event.
    private let cellAfter: CellRecord?

    /// The candidates of `event` on `state` (after it is folded); `cell`: the cell the event
    /// changed, before and after (nil, nil: none).
    init(_ event: DomainEvent, _ state: DomainState, cell: (before: CellRecord?, after: CellRecord?)) throws {
        cellAfter = cell.after
        var candidates: [(String, String, After)] = []
        // the event's own pair first, then the descendants an administrator change reaches
        func changing(_ email: String, _ lid: String, administrator: (CellRecord?) -> Bool) throws {
            candidates.append((email, lid, .cellChanged(directBefore: EffectiveBits(direct: cell.before?.entries ?? []))))
            if administrator(cell.before) {
                for (d, parent) in try state.descendants(of: lid) { candidates.append((email, d, .administratorThrough(parent: parent))) }
            }
        }
        func adding(_ email: String, _ lid: String, _ roles: [Role]) throws {
            try changing(email, lid) { roles.contains(.administrator) && !($0?.hasAdministrator ?? false) }
        }
        func removing(_ email: String, _ lid: String, where drop: (GrantEntry) -> Bool) throws {
            try changing(email, lid) { $0?.entries.contains { $0.role == .administrator && drop($0) } ?? false }
        }
        switch event {
        case let .agreementRecorded(r):
            // a new ID (no children yet): its contacts, the administrators of its
            // ancestors, and the legal contacts of its ancestors
            var emails = Set(r.contacts.map(\.email)), legalContacts = Set<String>()
            if let parent = r.parent {
                // an inherited administrator administers some ancestor directly; opt-outs
                // are applied when the candidates' permissions are computed
                for ancestor in [parent] + (try state.ancestors(of: parent)) {
                    for admin in try state.directAdmins(ancestor) { emails.insert(admin) }
                    for c in try state.agreement(ancestor)?.contacts ?? [] where c.type.isLegalContact { legalContacts.insert(c.email) }
                }
            }
            candidates = emails.union(legalContacts).map {
                ($0, r.licensingId, .recorded(parent: r.parent, legalContactAbove: legalContacts.contains($0)))
            }
        case let .resellerAutoGranted(email, lid, roles), let .rolesGranted(_, email, lid, roles, _),
             let .openLicenseAdded(_, email, lid, roles, _), let .legacyPermissionMigrated(_, _, email, lid, roles, _),
             let .permissionRequestApproved(_, _, email, lid, roles, _):
            try adding(email, lid, roles)
        case let .rolesRevoked(_, email, lid, roles):
            try removing(email, lid) { roles.contains($0.role) }
        case let .licensingIdRemovedByUser(_, email, lid):
            try removing(email, lid) { _ in true }
        case let .resellerAccessDenied(_, _, email, lid, _):
            try removing(email, lid) { $0.source == .reseller }
        case let .openLicenseAccessDenied(_, email, lid):
            try removing(email, lid) { $0.source == .openLicense }
        case let .adminInheritanceOptedOut(_, email, parent), let .adminInheritanceOptedIn(_, email, parent):
            candidates = try state.descendants(of: parent).map { (email, $0.lid, .administratorThrough(parent: $0.parent)) }
        case .userRegistered, .businessEmailValidated, .profileCompleted, .licensingIdStatusChanged, .permissionsRequested,
             .permissionRequestDenied, .openLicenseAttemptFailed, .subjectErased:
            break
        }
        // the candidates are distinct: one pair and its descendants, one ID's emails, or
        // one email's descendants
        var emailID: (email: String, id: UInt32?)?
        for (email, lid, after) in candidates {
            // the stored value (what `record` compares and overwrites): one lookup by ids,
            // not a recomputation from the sources; a name without an id has no entry yet
            if emailID?.email != email { emailID = (email, try state.ids.id(.email, email)) }
            guard let e = emailID?.id, let l = try state.ids.id(.licensingId, lid) else {
                pairs.append((email, lid, nil, .none, after))
                continue
            }
            let key = IDKey(first: l, second: e)
            pairs.append((email, lid, key, try state.effective.get(DomainState.pairKey(lid, email), ids: key) ?? .none, after))
        }
    }

    /// Stores the changes the event at `seq` made (`state` is after it): in `p.effective`,
    /// `p.emailChanges` and `p.changes`, in the same transaction as the event.
    func record(_ state: DomainState, seq: UInt64) throws {
        guard !pairs.isEmpty else { return }
        var changed: [(email: String, change: PairChange)] = []
        // administrator after the event on each candidate ID so far (cascades name one email)
        var administers: [String: Bool] = [:]
        for p in pairs {
            let after = try Self.after(p, state, administers, cell: cellAfter)
            if pairs.count > 1 { administers[p.lid] = after.roles & EffectiveBits.administrator != 0 }
            guard after != p.before else { continue }
            // a pair named for the first time by this event has its ids now
            guard let key = try p.ids ?? state.ids.id(.licensingId, p.lid).flatMap({ l in try state.ids.id(.email, p.email).map { IDKey(first: l, second: $0) } }) else {
                throw StateError.unnamedKey(table: ProjectionTable.changes.rawValue, key: DomainState.pairKey(p.email, p.lid))
            }
            changed.append((p.email, PairChange(email: key.second, lid: key.first, before: p.before, after: after)))
            try state.effective.setChanged(DomainState.pairKey(p.lid, p.email), ids: key, after.isEmpty ? nil : after, seq: seq)
        }
        guard !changed.isEmpty else { return }
        state.changeObserver?(seq, changed.map(\.change))
        if changed.count > 1 { changed.sort { ($0.change.email, $0.change.lid) < ($1.change.email, $1.change.lid) } }
        try state.changes.setChanged("", ids: .single, EventChanges(entries: changed.map(\.change)), seq: seq, readBack: false)
        var i = 0
        while i < changed.count {
            var j = i
            while j < changed.count, changed[j].change.email == changed[i].change.email { j += 1 }
            try state.emailChanges.setChanged(changed[i].email, ids: IDKey(first: changed[i].change.email, second: 0),
                                              EmailChanges(entries: changed[i ..< j].map(\.change)), seq: seq, readBack: false)
            i = j
        }
    }
}

extension ChangeTracker {
    /// A candidate's permissions after the event (`state` is after it); `administers`: the
    /// administrator role after it on the candidates before this one; `cell`: the own pair's
    /// cell after it.
    private static func after(_ p: (email: String, lid: String, ids: IDKey?, before: EffectiveBits, after: After),
                              _ state: DomainState, _ administers: [String: Bool], cell: CellRecord?) throws -> EffectiveBits {
        let admin = EffectiveBits.administrator
        /// Whether the email administers `lid` after the event: a candidate's value, or the
        /// stored one (an ID the event does not change for the email).
        func administrator(_ lid: String) throws -> Bool {
            if let known = administers[lid] { return known }
            guard let e = try state.ids.id(.email, p.email), let l = try state.ids.id(.licensingId, lid) else { return false }
            let stored = try state.effective.get(DomainState.pairKey(lid, p.email), ids: IDKey(first: l, second: e))
            return (stored?.roles ?? 0) & admin != 0
        }
        func inherits(through parent: String?) throws -> Bool {
            guard let parent else { return false }
            // the cheaper question first: a candidate's value is at hand, a stored one is a seek
            if let known = administers[parent] { return try known && !state.optedOut(p.email, from: parent) }
            return try !state.optedOut(p.email, from: parent) && administrator(parent)
        }
        switch p.after {
        case let .cellChanged(directBefore):
            // the inherited roles are the same: what `before` has beyond its cell's part is
            // inherited; a role that was both direct and perhaps inherited, and is direct no
            // more, needs the walk up the ancestors
            let direct = EffectiveBits(direct: cell?.entries ?? [])
            guard p.before.roles & directBefore.roles & EffectiveBits.inheritable & ~direct.roles == 0 else {
                return try state.effectiveBits(p.email, p.lid)
            }
            return EffectiveBits(roles: direct.roles | p.before.roles & ~directBefore.roles & EffectiveBits.inheritable,
                                 benefits: direct.benefits)
        case let .administratorThrough(parent):
            // a cell exists exactly when its ID is in the email's `emailLids` entry (one read
            // for the whole cascade), so most descendants need no cell lookup
            let direct = try state.lidsWithCells(of: p.email)?.contains(p.lid) == true && state.cell(p.email, p.lid)?.hasAdministrator == true
            let holds = try direct || inherits(through: parent)
            return EffectiveBits(roles: holds ? p.before.roles | admin : p.before.roles & ~admin, benefits: p.before.benefits)
        case let .recorded(parent, legalContactAbove):
            let direct = EffectiveBits(direct: try state.cell(p.email, p.lid)?.entries ?? [])
            let inherited = (try inherits(through: parent) ? admin : 0) | (legalContactAbove ? EffectiveBits.licensingInfo : 0)
            return EffectiveBits(roles: direct.roles | inherited, benefits: direct.benefits)
        }
    }
}

extension DomainState {
    /// The effective permissions of `email` on `lid`, computed from the sources (§2).
    func effectiveBits(_ email: String, _ lid: String) throws -> EffectiveBits {
        EffectiveBits(try roleReport(email, lid))
    }

    /// Every descendant of `lid` (children, their children, …) with its parent, in
    /// depth-first order (a parent before its children).
    func descendants(of lid: String) throws -> [(lid: String, parent: String)] {
        var out: [(lid: String, parent: String)] = []
        var stack = (try agreement(lid)?.children.reversed() ?? []).map { ($0, lid) }
        var visited: Set<String> = [lid]
        while let (next, parent) = stack.popLast() {
            guard visited.insert(next).inserted, visited.count < 1_000_000 else { continue }
            out.append((next, parent))
            stack.append(contentsOf: (try agreement(next)?.children ?? []).reversed().map { ($0, next) })
        }
        return out
    }
}
