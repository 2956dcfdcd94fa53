import Ledger
import Synchronization

/// What a stable id names.
enum KeySpace: UInt8, CaseIterable, Sendable {
    case account = 1, email = 2, licensingId = 3, request = 4
}

/// How a projection table's keys are stored: as they are (`plain`), or as the stable ids of
/// one name or of two (`pair`: a key `a␀b`, as `DomainState.pairKey` makes it), 4 bytes
/// big-endian each, so every key of a versioned table has one length; or `single`: one
/// entry (key ""), versioned, so the table is indexed by seq alone (the changelog by seq).
enum KeyShape: Sendable {
    case plain
    case single
    case one(KeySpace)
    case pair(KeySpace, KeySpace)
}

/// The dictionary of stable ids (database `p.ids`): each account, email, Licensing ID and
/// request id gets a 32-bit id, per kind, the first time an event names it as a key of a
/// projection (`DomainEvent.keyNames`), in the order of the log; an id is never reused or
/// changed. Versioned projection keys are made of these ids instead of the strings, so
/// keys are short and of one length, and a name appears once in the store.
///
/// Entries: `kind ‖ name` → id, `kind | 0x80 ‖ id` → name, and `0 ‖ kind` → the ids given
/// so far. Ids follow from the log alone, so a rebuild reproduces the dictionary byte for
/// byte and `verify` compares it like every projection.
///
/// In memory (a pure fold) or over a transaction: ids a write transaction assigns are kept
/// here until `flush` writes them, in the same transaction as the projections.
final class StableIDs {
    private let db: LMDBDatabase?
    private let reader: TransactionReader?
    /// Committed ids shared by the ledger's transactions (nil: none).
    private let shared: IDCache?
    /// name → id per kind: every id in memory; over a transaction, the ones assigned or read here.
    private var forward: [[String: UInt32]] = Array(repeating: [:], count: 5)
    /// id → name per kind (index id − 1) in memory; over a transaction, the ones read.
    private var names: [[UInt32: String]] = Array(repeating: [:], count: 5)
    /// Ids given so far per kind (over a transaction: read once, then counted here).
    private var counts: [UInt32?] = Array(repeating: nil, count: 5)
    /// Assigned in this transaction, not yet written.
    private var assigned: [(KeySpace, String, UInt32)] = []
    /// Written by `flush`, for the shared cache once the transaction committed.
    private var published: [(KeySpace, String, UInt32)] = []

    init(memory: ()) {
        db = nil
        reader = nil
        shared = nil
        counts = Array(repeating: 0, count: 5)
    }

    init(db: LMDBDatabase, reader: TransactionReader, shared: IDCache? = nil) {
        self.db = db
        self.reader = reader
        self.shared = shared
    }

    /// The id of `name`, nil when no event named it.
    func id(_ kind: KeySpace, _ name: String) throws -> UInt32? {
        let k = Int(kind.rawValue)
        if let id = forward[k][name] { return id }
        guard let reader, let db else { return nil }
        if let id = shared?.id(kind, name) {
            forward[k][name] = id
            return id
        }
        var key = [kind.rawValue]
        key.append(contentsOf: name.utf8)
        let stored: UInt32?? = try reader.withValue(db, key: key) { Self.readID($0) }
        guard let id = stored ?? nil else { return nil }
        forward[k][name] = id
        // read from the database before this transaction wrote any: committed
        shared?.insert([(kind, name, id)])
        return id
    }

    /// The name of `id`, nil when no name has it.
    func name(_ kind: KeySpace, _ id: UInt32) throws -> String? {
        let k = Int(kind.rawValue)
        if let name = names[k][id] { return name }
        guard let reader, let db else { return nil }
        let key = [kind.rawValue | 0x80] + Self.bytes(id)
        let stored: String?? = try reader.withValue(db, key: key) { String(validating: $0, as: UTF8.self) }
        guard let name = stored ?? nil else { return nil }
        names[k][id] = name
        return name
    }

    /// The id of `name`, given now when it has none.
    @discardableResult
    func assign(_ kind: KeySpace, _ name: String) throws -> UInt32 {
        if let id = try id(kind, name) { return id }
        let k = Int(kind.rawValue)
        var count = try counts[k] ?? storedCount(kind)
        guard count < UInt32.max else { throw StateError.idsExhausted(String(describing: kind)) }
        count += 1
        counts[k] = count
        forward[k][name] = count
        names[k][count] = name
        if reader != nil { assigned.append((kind, name, count)) }
        return count
    }

    /// Gives ids to the names `event` uses as projection keys (before it is folded).
    func register(_ event: DomainEvent) throws {
        for (kind, name) in event.keyNames { try assign(kind, name) }
    }

    private func storedCount(_ kind: KeySpace) throws -> UInt32 {
        guard let reader, let db else { return 0 }
        let stored: UInt32?? = try reader.withValue(db, key: [0, kind.rawValue]) { Self.readID($0) }
        return (stored ?? nil) ?? 0
    }

    /// Writes the ids assigned in this transaction (and the counts) through it.
    func flush() throws {
        guard let writer = reader as? TransactionWriter, let db, !assigned.isEmpty else { return }
        var touched = Set<UInt8>()
        for (kind, name, id) in assigned {
            var key = [kind.rawValue]
            key.append(contentsOf: name.utf8)
            try writer.put(db, key: key, value: Self.bytes(id))
            try writer.put(db, key: [kind.rawValue | 0x80] + Self.bytes(id), value: Array(name.utf8))
            touched.insert(kind.rawValue)
        }
        for k in touched { if let count = counts[Int(k)] { try writer.put(db, key: [0, k], value: Self.bytes(count)) } }
        if shared != nil { published.append(contentsOf: assigned) }
        assigned.removeAll()
    }

    /// Hands the ids this write transaction assigned to the shared cache: call after it
    /// committed.
    func publishCommitted() {
        guard let shared, !published.isEmpty else { return }
        shared.insert(published)
        published.removeAll()
    }

    /// Every entry a stored dictionary holds for these ids, sorted by key (memory only).
    func sortedEntries() -> [(key: [UInt8], value: [UInt8])] {
        var out: [(key: [UInt8], value: [UInt8])] = []
        for kind in KeySpace.allCases {
            let k = Int(kind.rawValue)
            guard let count = counts[k], count > 0 else { continue }
            out.append(([0, kind.rawValue], Self.bytes(count)))
            for (name, id) in forward[k] {
                out.append(([kind.rawValue] + Array(name.utf8), Self.bytes(id)))
                out.append(([kind.rawValue | 0x80] + Self.bytes(id), Array(name.utf8)))
            }
        }
        return out.sorted { KeyOrder.precedes($0.key, $1.key) }
    }

    /// Whether the stored dictionary `db` holds exactly this in-memory dictionary's entries
    /// (`sortedEntries()`, byte for byte), found in one scan that looks each stored entry up
    /// here instead of building the sorted entries (four arrays a name: the largest
    /// allocation of a streaming comparison otherwise). Equal when every stored entry is
    /// one of ours and there are as many as we have (a reader with a `scanMappedBudget`
    /// gives the mapping back as the scan goes).
    func matchesStored(_ db: LMDBDatabase, reader: TransactionReader) throws -> Bool {
        var expected = 0
        for kind in KeySpace.allCases {
            let k = Int(kind.rawValue)
            if let count = counts[k], count > 0 { expected += 1 + 2 * forward[k].count }
        }
        var seen = 0, equal = true
        try reader.scan(db) { key, value in
            // the kind: the second byte of a count's key (0 ‖ kind), else the first's low bits
            let first = key.first ?? 0
            let kindByte = first == 0 ? (key.count == 2 ? key[1] : 0) : first & 0x7F
            guard let kind = KeySpace(rawValue: kindByte) else {
                equal = false
                return false
            }
            let k = Int(kind.rawValue), rest = UnsafeRawBufferPointer(rebasing: key[(first == 0 ? 2 : 1)...])
            switch first {
            case 0:
                // the ids given so far
                equal = counts[k].map { $0 > 0 && value.elementsEqual(Self.bytes($0)) } ?? false
            case 0x80...:
                // id → name (the name's bytes exactly)
                equal = Self.readID(rest).flatMap { names[k][$0] }.map { value.elementsEqual($0.utf8) } ?? false
            default:
                // name → id; a String key matches canonically equivalent bytes too, so the
                // dictionary's own key is compared byte for byte
                if let name = String(validating: rest, as: UTF8.self), let i = forward[k].index(forKey: name) {
                    equal = forward[k][i].key.utf8.elementsEqual(rest) && value.elementsEqual(Self.bytes(forward[k][i].value))
                } else {
                    equal = false
                }
            }
            seen += 1
            return equal
        }
        return equal && seen == expected
    }

    // MARK: Keys of versioned tables

    /// The stored prefix of `key` in a table of `shape`: nil when a name in it has no id
    /// (then the table holds nothing under it).
    func storedKey(_ key: String, _ shape: KeyShape) throws -> [UInt8]? {
        switch shape {
        case .plain:
            return Array(key.utf8)
        case .single:
            return key.isEmpty ? [] : nil
        case let .one(kind):
            return try id(kind, key).map(Self.bytes)
        case let .pair(a, b):
            let utf8 = key.utf8
            guard let zero = utf8.firstIndex(of: 0) else { return nil }
            let first = String(key[..<zero]), second = String(key[utf8.index(after: zero)...])
            guard let x = try id(a, first), let y = try id(b, second) else { return nil }
            return Self.bytes(x) + Self.bytes(y)
        }
    }

    /// The key a stored prefix stands for (the inverse of `storedKey`).
    func key(stored prefix: UnsafeRawBufferPointer, _ shape: KeyShape) throws -> String? {
        switch shape {
        case .plain:
            return String(validating: prefix, as: UTF8.self)
        case .single:
            return prefix.isEmpty ? "" : nil
        case let .one(kind):
            guard prefix.count == 4, let id = Self.readID(prefix) else { return nil }
            return try name(kind, id)
        case let .pair(a, b):
            guard prefix.count == 8, let x = Self.readID(UnsafeRawBufferPointer(rebasing: prefix[0 ..< 4])),
                  let y = Self.readID(UnsafeRawBufferPointer(rebasing: prefix[4 ..< 8])),
                  let first = try name(a, x), let second = try name(b, y) else { return nil }
            return DomainState.pairKey(first, second)
        }
    }

    /// The length of a stored prefix in a table of `shape` (nil: keys of any length).
    static func prefixLength(_ shape: KeyShape) -> Int? {
        switch shape {
        case .plain: nil
        case .single: 0
        case .one: 4
        case .pair: 8
        }
    }

    static func bytes(_ id: UInt32) -> [UInt8] {
        [UInt8(id >> 24), UInt8((id >> 16) & 0xFF), UInt8((id >> 8) & 0xFF), UInt8(id & 0xFF)]
    }

    static func readID(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
        guard bytes.count == 4 else { return nil }
        return UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])
    }
}

/// Stable ids known to be committed, shared by every transaction of one ledger object. A
/// committed id never changes (ids follow from the log alone), so a cached one is always
/// right; a rebuild, which repairs a damaged dictionary, empties the cache. At most
/// `limit` names per kind are kept (then that kind starts again empty).
final class IDCache: Sendable {
    private let table = Mutex<[[String: UInt32]]>(Array(repeating: [:], count: 5))
    let limit: Int

    init(limit: Int) { self.limit = limit }

    func id(_ kind: KeySpace, _ name: String) -> UInt32? {
        table.withLock { $0[Int(kind.rawValue)][name] }
    }

    func insert(_ entries: [(KeySpace, String, UInt32)]) {
        table.withLock { t in
            for (kind, name, id) in entries {
                let k = Int(kind.rawValue)
                if t[k].count >= limit { t[k].removeAll(keepingCapacity: true) }
                t[k][name] = id
            }
        }
    }

    func clear() { table.withLock { t in for k in t.indices { t[k].removeAll() } } }
}

extension DomainEvent {
    /// The names this event uses as keys of projections, by kind, in a fixed order: they
    /// get stable ids before it is folded.
    var keyNames: [(KeySpace, String)] {
        switch self {
        case let .userRegistered(account, _), let .profileCompleted(account, _, _), let .openLicenseAttemptFailed(account, _, _):
            return [(.account, account)]
        case let .businessEmailValidated(account, email):
            return [(.account, account), (.email, email)]
        case let .agreementRecorded(r):
            var names: [(KeySpace, String)] = [(.licensingId, r.licensingId)]
            if let parent = r.parent { names.append((.licensingId, parent)) }
            for contact in r.contacts { names.append((.email, contact.email)) }
            return names
        case let .licensingIdStatusChanged(lid, _):
            return [(.licensingId, lid)]
        case let .resellerAutoGranted(email, lid, _), let .rolesGranted(_, email, lid, _, _), let .rolesRevoked(_, email, lid, _),
             let .openLicenseAdded(_, email, lid, _, _), let .licensingIdRemovedByUser(_, email, lid),
             let .adminInheritanceOptedOut(_, email, lid), let .adminInheritanceOptedIn(_, email, lid),
             let .resellerAccessDenied(_, _, email, lid, _), let .openLicenseAccessDenied(_, email, lid),
             let .legacyPermissionMigrated(_, _, email, lid, _, _):
            return [(.email, email), (.licensingId, lid)]
        case let .permissionsRequested(r):
            return [(.request, r.requestId)]
        case let .permissionRequestApproved(_, requestId, email, lid, _, _):
            return [(.request, requestId), (.email, email), (.licensingId, lid)]
        case let .permissionRequestDenied(_, requestId, _):
            return [(.request, requestId)]
        case .subjectErased:
            return []
        }
    }
}
