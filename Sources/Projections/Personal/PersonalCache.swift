import Ledger
import Synchronization

/// What a format-2 ledger read from its vault, kept across calls while the vault's
/// generation stays: look-ups that found a subject or an account, and the values of tokens.
/// An erasure always moves the vault to a new generation, so nothing kept outlives it; only
/// found names are kept, so a name first seen later is looked up then. Bounded: it starts
/// afresh past `limit` entries.
final class PersonalCache: Sendable {
    struct State {
        var generation: UInt64 = 0
        var subjects: [String: Pseudonym] = [:]
        var accounts: [String: VaultAccount] = [:]
        var owners: [Pseudonym: Pseudonym] = [:]
        var values: [String: String] = [:]
        var count: Int { subjects.count + accounts.count + owners.count + values.count }
    }

    private let state = Mutex(State())
    let limit: Int

    init(limit: Int = 400_000) { self.limit = limit }

    /// Runs `body` on the entries of `generation` (emptied when they were another one's).
    func with<R>(_ generation: UInt64, _ body: (inout State) -> R) -> R {
        state.withLock { s in
            if s.generation != generation || s.count > limit { s = State(generation: generation) }
            return body(&s)
        }
    }
}

/// The vault as a batch or an answer reads it: through the ledger's cache, at one generation.
struct CachedVault {
    let vault: SubjectVault
    let cache: PersonalCache
    let generation: UInt64

    init(vault: SubjectVault, cache: PersonalCache) throws {
        self.vault = vault
        self.cache = cache
        generation = try vault.generation
    }

    func subject(email: String) throws -> Pseudonym? {
        if let p = cache.with(generation, { $0.subjects[email] }) { return p }
        guard let p = try vault.subject(email: email) else { return nil }
        cache.with(generation) { $0.subjects[email] = p }
        return p
    }

    func account(named name: String) throws -> VaultAccount? {
        if let a = cache.with(generation, { $0.accounts[name] }) { return a }
        guard let a = try vault.account(named: name) else { return nil }
        cache.with(generation) {
            $0.accounts[name] = a
            $0.owners[a.pseudonym] = a.owner
        }
        return a
    }

    /// The state's form of the account `name` (normalised): its token when the vault knows
    /// it, else the name itself.
    func stateAccount(_ name: String) throws -> String {
        try account(named: name).map { PersonalToken.account($0.pseudonym).string } ?? name
    }

    func owner(ofAccount a: Pseudonym) throws -> Pseudonym {
        if let o = cache.with(generation, { $0.owners[a] }) { return o }
        let o = try vault.owner(ofAccount: a)
        cache.with(generation) { $0.owners[a] = o }
        return o
    }

    /// The value a token shows (or `erased:PSEUDONYM`).
    func shown(_ token: String, _ open: () throws -> OpenedField) throws -> OpenedField {
        if let v = cache.with(generation, { $0.values[token] }) { return .value(v) }
        let opened = try open()
        if case let .value(v) = opened { cache.with(generation) { $0.values[token] = v } }
        return opened
    }
}
