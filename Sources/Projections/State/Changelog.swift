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

    /// The roles a pair can hold by inheritance (administrator, licensing info).
    static let inheritable = UInt8(1 << Role.administrator.order | 1 << Role.licensingInfo.order)

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
        guard roles < 1 << 7 else { throw DecodingError("role bits \(roles)", offset: r.offset) }
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
        guard v > 0, v <= UInt64(UInt32.max) else { throw DecodingError("stable id \(v)", offset: offset) }
        return UInt32(v)
    }
}

/// The pairs an event may change, with their effective permissions just before it: taken
/// before the event is folded, then compared with the state after (`record`). The pairs
/// are derived from the projections — the event's own pair, the descendants an
/// administrator change or an opt-out reaches, the people a new Licensing ID gives a role —
/// never from a scan of every email.
struct ChangeTracker {
    /// How a candidate's permissions after the event are found.
    enum After {
        /// From its sources (`DomainState.effectiveBits`).
        case recomputed
        /// The event changed only the pair's cell, which gave `directBefore` before it.
        case cellChanged(directBefore: EffectiveBits)
        /// The event gave administrator directly on an ancestor, which reaches the pair by
        /// inheritance (no opt-out on the way) or not.
        case ancestorAdministrator(reaches: Bool)
    }

    private var pairs: [(email: String, lid: String, ids: IDKey?, before: EffectiveBits, after: After)] = []

    /// The candidates of `event` on `state` (before it is folded).
    init(_ event: DomainEvent, _ state: DomainState) throws {
        var candidates: [(String, String, After)] = []
        // the event's own pair first: the event changes only its cell
        func adding(_ email: String, _ lid: String, _ roles: [Role]) throws {
            let cell = try state.cell(email, lid)
            candidates.append((email, lid, .cellChanged(directBefore: EffectiveBits(direct: cell?.entries ?? []))))
            if roles.contains(.administrator), !(cell?.hasAdministrator ?? false) {
                for (d, reaches) in try state.descendants(of: lid, inheritingFrom: email) {
                    candidates.append((email, d, reaches.map { .ancestorAdministrator(reaches: $0) } ?? .recomputed))
                }
            }
        }
        func removing(_ email: String, _ lid: String, where drop: (GrantEntry) -> Bool) throws {
            let entries = try state.cell(email, lid)?.entries ?? []
            candidates.append((email, lid, .cellChanged(directBefore: EffectiveBits(direct: entries))))
            if entries.contains(where: { $0.role == .administrator && drop($0) }) {
                for d in try state.descendants(of: lid) { candidates.append((email, d, .recomputed)) }
            }
        }
        switch event {
        case let .agreementRecorded(r):
            // a new ID (no children yet): its contacts, the administrators of its
            // ancestors, and the legal contacts of its ancestors
            var emails = Set(r.contacts.map(\.email))
            if let parent = r.parent {
                // an inherited administrator administers some ancestor directly; opt-outs
                // are applied when the candidates' permissions are computed
                for ancestor in [parent] + (try state.ancestors(of: parent)) {
                    for admin in try state.directAdmins(ancestor) { emails.insert(admin) }
                    for c in try state.agreement(ancestor)?.contacts ?? [] where c.type.isLegalContact { emails.insert(c.email) }
                }
            }
            candidates = emails.map { ($0, r.licensingId, .recomputed) }
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
            candidates = try state.descendants(of: parent).map { (email, $0, .recomputed) }
        case .userRegistered, .businessEmailValidated, .profileCompleted, .licensingIdStatusChanged, .permissionsRequested,
             .permissionRequestDenied, .openLicenseAttemptFailed:
            break
        }
        // the candidates are distinct: one pair and its descendants, or one ID's emails,
        // or one email's descendants
        for (email, lid, after) in candidates {
            // the stored value (what `record` compares and overwrites): one lookup by ids,
            // not a recomputation from the sources; a name without an id has no entry yet
            guard let e = try state.ids.id(.email, email), let l = try state.ids.id(.licensingId, lid) else {
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
        for p in pairs {
            let after = try Self.after(p, state)
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
        try state.changes.setChanged("", ids: .single, EventChanges(entries: changed.map(\.change)), seq: seq)
        var i = 0
        while i < changed.count {
            var j = i
            while j < changed.count, changed[j].change.email == changed[i].change.email { j += 1 }
            try state.emailChanges.setChanged(changed[i].email, ids: IDKey(first: changed[i].change.email, second: 0),
                                              EmailChanges(entries: changed[i ..< j].map(\.change)), seq: seq)
            i = j
        }
    }
}

extension ChangeTracker {
    /// A candidate's permissions after the event (`state` is after it).
    private static func after(_ p: (email: String, lid: String, ids: IDKey?, before: EffectiveBits, after: After),
                              _ state: DomainState) throws -> EffectiveBits {
        switch p.after {
        case .recomputed:
            return try state.effectiveBits(p.email, p.lid)
        case let .cellChanged(directBefore):
            // the inherited roles are the same: what `before` has beyond its cell's part is
            // inherited; a role that was both direct and perhaps inherited, and is direct no
            // more, needs the walk up the ancestors
            let direct = EffectiveBits(direct: try state.cell(p.email, p.lid)?.entries ?? [])
            guard p.before.roles & directBefore.roles & EffectiveBits.inheritable & ~direct.roles == 0 else {
                return try state.effectiveBits(p.email, p.lid)
            }
            return EffectiveBits(roles: direct.roles | p.before.roles & ~directBefore.roles & EffectiveBits.inheritable,
                                 benefits: direct.benefits)
        case let .ancestorAdministrator(reaches):
            // one more direct administrator up the chain: administrator is held if it was or
            // if this one reaches; nothing else changes
            let admin = UInt8(1 << Role.administrator.order)
            return reaches ? EffectiveBits(roles: p.before.roles | admin, benefits: p.before.benefits) : p.before
        }
    }
}

extension DomainState {
    /// The effective permissions of `email` on `lid`, computed from the sources (§2).
    func effectiveBits(_ email: String, _ lid: String) throws -> EffectiveBits {
        EffectiveBits(try roleReport(email, lid))
    }

    /// Every descendant of `lid`, in depth-first order, and whether administrator held by
    /// `email` on `lid` reaches it by inheritance: no ID from its parent up to `lid` is opted
    /// out of by `email` (nil past the depth the role walk looks up, `readRoleReport`).
    func descendants(of lid: String, inheritingFrom email: String) throws -> [(String, Bool?)] {
        var out: [(String, Bool?)] = []
        var stack = (try agreement(lid)?.children.reversed() ?? []).map { ($0, lid, true, 1) }
        var visited: Set<String> = [lid]
        while let (next, parent, parentReached, depth) = stack.popLast() {
            guard visited.insert(next).inserted, visited.count < 1_000_000 else { continue }
            let reaches = try parentReached && !optedOut(email, from: parent)
            out.append((next, depth <= 32 ? reaches : nil))
            stack.append(contentsOf: (try agreement(next)?.children ?? []).reversed().map { ($0, next, reaches, depth + 1) })
        }
        return out
    }

    /// Every descendant of `lid` (children, their children, …), in depth-first order.
    func descendants(of lid: String) throws -> [String] {
        var out: [String] = []
        var stack = try agreement(lid)?.children.reversed() ?? []
        var visited: Set<String> = [lid]
        while let next = stack.popLast() {
            guard visited.insert(next).inserted, visited.count < 1_000_000 else { continue }
            out.append(next)
            stack.append(contentsOf: (try agreement(next)?.children ?? []).reversed())
        }
        return out
    }
}
