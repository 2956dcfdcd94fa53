import Ledger

/// The names of the projection databases, in their one order (a state's tables, then the
/// dictionary of stable ids).
enum ProjectionTable: String, CaseIterable, Sendable {
    case accounts = "p.accounts"
    case emailOwners = "p.emailOwners"
    case agreements = "p.agreements"
    case cells = "p.cells"
    case emailLids = "p.emailLids"
    case legalContactLids = "p.legalContactLids"
    case lidAdmins = "p.lidAdmins"
    case optOuts = "p.optOuts"
    case requests = "p.requests"
    case lockouts = "p.lockouts"
    case effective = "p.effective"
    case emailChanges = "p.emailChanges"
    case changes = "p.changes"
    case meta = "p.meta"
    case ids = "p.ids"

    /// The position in `allCases`.
    var index: Int {
        switch self {
        case .accounts: 0
        case .emailOwners: 1
        case .agreements: 2
        case .cells: 3
        case .emailLids: 4
        case .legalContactLids: 5
        case .lidAdmins: 6
        case .optOuts: 7
        case .requests: 8
        case .lockouts: 9
        case .effective: 10
        case .emailChanges: 11
        case .changes: 12
        case .meta: 13
        case .ids: 14
        }
    }

    /// The tables of records (the dictionary is not one).
    static var stateTables: [ProjectionTable] { allCases.filter { $0 != .ids } }
}

/// A state table's name, record type and hot-cache table: each declared once, below, and
/// listed once in `all`, which the store, the fold, rebuild, verify, snapshots and the hot
/// cache iterate.
struct TableSpec<V: StateRecord>: AnyTableSpec {
    let table: ProjectionTable
    /// How its keys are stored (and whether it is versioned: all but `meta`).
    let key: KeyShape
    let hot: KeyPath<HotCache, HotTable<V>> & Sendable
    /// Whether the table's records are kept in the hot cache (not the changelog's: the head
    /// path never reads them, and publishing them after every commit costs).
    var cached = true

    func open(in state: DomainState) -> any AnyTable { state.table(self) }
    func hotTable(in cache: HotCache) -> any ClearableHotTable { cache[keyPath: hot] }
}

/// A `TableSpec` of any record type.
protocol AnyTableSpec: Sendable {
    var table: ProjectionTable { get }
    var key: KeyShape { get }
    /// The state's table (created when first asked for).
    func open(in state: DomainState) -> any AnyTable
    /// Its table in `cache`.
    func hotTable(in cache: HotCache) -> any ClearableHotTable
}

enum StateTables {
    static let accounts = TableSpec<AccountRecord>(table: .accounts, key: .one(.account), hot: \.accounts)
    /// validated email → account
    static let emailOwners = TableSpec<StringValue>(table: .emailOwners, key: .one(.email), hot: \.emailOwners)
    static let agreements = TableSpec<AgreementRecord>(table: .agreements, key: .one(.licensingId), hot: \.agreements)
    /// "email␀lid" → direct sources
    static let cells = TableSpec<CellRecord>(table: .cells, key: .pair(.email, .licensingId), hot: \.cells)
    /// email → Licensing IDs with a non-empty cell
    static let emailLids = TableSpec<StringSet>(table: .emailLids, key: .one(.email), hot: \.emailLids)
    /// email → Licensing IDs where it is primary contact or notices correspondent
    static let legalContactLids = TableSpec<StringSet>(table: .legalContactLids, key: .one(.email), hot: \.legalContactLids)
    /// lid → emails holding administrator directly
    static let lidAdmins = TableSpec<StringSet>(table: .lidAdmins, key: .one(.licensingId), hot: \.lidAdmins)
    /// "email␀lid" → seq of the opt-out
    static let optOuts = TableSpec<SeqValue>(table: .optOuts, key: .pair(.email, .licensingId), hot: \.optOuts)
    static let requests = TableSpec<RequestRecord>(table: .requests, key: .one(.request), hot: \.requests)
    static let lockouts = TableSpec<LockoutRecord>(table: .lockouts, key: .one(.account), hot: \.lockouts)
    /// "lid␀email" → the pair's effective permissions (absent: none); a version per change
    static let effective = TableSpec<EffectiveBits>(table: .effective, key: .pair(.licensingId, .email), hot: \.effective, cached: false)
    /// email → the changes one event made to its pairs (a version per event that changed any)
    static let emailChanges = TableSpec<EmailChanges>(table: .emailChanges, key: .one(.email), hot: \.emailChanges, cached: false)
    /// one entry whose versions are the changes of each event that changed any pair
    static let changes = TableSpec<EventChanges>(table: .changes, key: .single, hot: \.changes, cached: false)
    /// "checkpoint" → the position the projections reflect
    static let meta = TableSpec<MetaRecord>(table: .meta, key: .plain, hot: \.meta)

    /// Every state table, in `ProjectionTable` order (checked by `ProjectionsTests`).
    static let all: [any AnyTableSpec] = [accounts, emailOwners, agreements, cells, emailLids, legalContactLids,
                                          lidAdmins, optOuts, requests, lockouts, effective, emailChanges, changes, meta]
}

/// What is done with every table of a state, whatever its record type.
protocol AnyTable: AnyObject {
    /// Whether this transaction read or wrote anything to publish to the hot cache.
    var hasNews: Bool { get }
    /// Copies what this transaction read and wrote into the hot table.
    func publish(limit: Int)
    /// Writes every change through the transaction.
    func flush() throws
    /// Every entry, sorted by key bytes (memory tables).
    func sortedEntries() -> [(key: [UInt8], value: [UInt8])]
    /// The versions recorded since the last call, in key order (recording tables).
    func takeRecorded() -> SortedRows
    /// What the stored database holds after a fold of the same events (memory tables).
    func storedForm() -> SortedRows
}

extension Table: AnyTable {}

/// The projection databases of a ledger, checked complete once (at open) and indexed by
/// position, so a state is made without a lookup per table.
struct ProjectionDatabases: Sendable {
    private let ordered: [LMDBDatabase]

    init(_ tables: [ProjectionTable: LMDBDatabase]) throws {
        ordered = try ProjectionTable.allCases.map { t in
            guard let db = tables[t] else { throw StateError.missingTable(t.rawValue) }
            return db
        }
    }

    subscript(_ t: ProjectionTable) -> LMDBDatabase { ordered[t.index] }
}
