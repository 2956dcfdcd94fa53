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
        /// What a check needs of each account name found, in one look-up.
        var accountTokens: [String: AccountShown] = [:]
        var owners: [Pseudonym: Pseudonym] = [:]
        var values: [String: String] = [:]
        var count: Int { subjects.count + accounts.count + accountTokens.count + owners.count + values.count }
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

/// What a check needs of an account name: the account's token (the state's form), its
/// owner's email token, and the value that token shows once an answer read it.
struct AccountShown: Sendable {
    var token: String
    var emailToken: String
    var email: String?
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

    func owner(ofAccount a: Pseudonym) throws -> Pseudonym {
        if let o = cache.with(generation, { $0.owners[a] }) { return o }
        let o = try vault.owner(ofAccount: a)
        cache.with(generation) { $0.owners[a] = o }
        return o
    }

    /// The token of the account `name` names, nil when none does: a hit costs one look-up
    /// under the cache's lock (no token formatted again).
    func accountToken(named name: String) throws -> String? {
        try accountShown(named: name)?.token
    }

    /// What a check needs of the account `name` names, nil when none does.
    func accountShown(named name: String) throws -> AccountShown? {
        if let t = cache.with(generation, { $0.accountTokens[name] }) { return t }
        guard let a = try account(named: name) else { return nil }
        let shown = AccountShown(token: PersonalToken.account(a.pseudonym).string, emailToken: PersonalToken.email(a.owner).string)
        cache.with(generation) { $0.accountTokens[name] = shown }
        return shown
    }

    /// Keeps with the account `name` the value its owner's email token shows, when the
    /// cache holds that value (so the next check of the account reads no other entry).
    func rememberEmail(ofAccount name: String, _ shown: AccountShown) {
        cache.with(generation) { s in
            guard let v = s.values[shown.emailToken] else { return }
            s.accountTokens[name]?.email = v
        }
    }

    /// The value the token `string` shows when the cache holds it (no token parsed, no vault
    /// read); nil: not held.
    func cachedValue(_ string: String) -> String? {
        cache.with(generation) { $0.values[string] }
    }

    /// The value a token shows (or `erased:PSEUDONYM`).
    func shown(_ token: String, _ open: () throws -> OpenedField) throws -> OpenedField {
        if let v = cache.with(generation, { $0.values[token] }) { return .value(v) }
        let opened = try open()
        if case let .value(v) = opened { cache.with(generation) { $0.values[token] = v } }
        return opened
    }
}
