import Ledger

/// Turns the tokens of a format-2 state back into what outputs show (DOMAIN.md §5.1): each
/// email, account name and free text as its value while its subject lives, `erased:PSEUDONYM`
/// (the subject's pseudonym) once erased. Any other string is shown as it is — on a format-1
/// ledger every string is a value.
///
/// Values read are cached for the resolver's life (one answer); `known` holds the values a
/// write batch made, not yet in the vault (for the messages of its refused commands).
struct PersonalResolver {
    let vault: SubjectVault?
    private var cache: [String: String]
    /// The ledger's cache, shared across answers (nil: none), and the view of it this
    /// resolver reads through, opened at the first value it needs (an answer that shows none
    /// reads nothing of the vault).
    private let shared: PersonalCache?
    private var cached: CachedVault??

    init(vault: SubjectVault?, known: [String: String] = [:], cache shared: PersonalCache? = nil) {
        self.vault = vault
        cache = known
        self.shared = shared
    }

    /// A resolver reading through `cached`, a view of the ledger's cache the caller already
    /// opened (at the generation its own look-ups read), for one answer about an account:
    /// `account` is its token and the name it shows (no dictionary made for them).
    init(cached: CachedVault, account: (token: String, name: String)) {
        vault = cached.vault
        cache = [:]
        shared = cached.cache
        self.cached = .some(cached)
        knownAccount = account
    }

    private var knownAccount: (token: String, name: String)?

    /// What `string` shows: its value when it is a token, else itself.
    mutating func resolve(_ string: String) throws -> String {
        guard let vault, string.utf8.first == UInt8(ascii: "~") else { return string }
        if let k = knownAccount, k.token == string { return k.name }
        if let v = cache[string] { return v }
        // a value the shared cache holds was a token's when it was put there (only opened
        // tokens' values are): no parse, and no copy into this resolver's own cache
        if case let .some(cached?) = cached, let v = cached.cache.with(cached.generation, { $0.values[string] }) { return v }
        guard let token = PersonalToken(string) else { return string }
        func open() throws -> OpenedField {
            switch token {
            case .email(let p): return try vault.email(of: p)
            case .account(let a): return try vault.name(ofAccount: a)
            case .text(let p, let c): return try vault.text(subject: p, commitment: c)
            }
        }
        if cached == nil { cached = .some(shared.flatMap { try? CachedVault(vault: vault, cache: $0) }) }
        let shown = try ((cached ?? nil)?.shown(string, open) ?? open()).description
        cache[string] = shown
        return shown
    }

    /// `resolve` of an optional.
    mutating func resolve(_ string: String?) throws -> String? {
        try string.map { try resolve($0) }
    }

    /// `resolve` of each.
    mutating func resolve(_ strings: [String]) throws -> [String] {
        try strings.map { try resolve($0) }
    }

    /// The event with each personal field shown; the lists a rule derives in order of the
    /// state (`routedTo`, `notified`: sorted by token in a format-2 event) sorted by what they
    /// show, as a format-1 event holds them.
    mutating func resolve(_ event: DomainEvent) throws -> DomainEvent {
        guard vault != nil else { return event }
        return try event.mappingPersonalFields { try resolve($0.value) }
            .mappingDerivedLists { list, _ in list.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } }
    }

    /// A free text (a refusal's message) with every token in it shown.
    mutating func resolveWithin(_ text: String) -> String {
        guard vault != nil, text.contains("~") else { return text }
        let u = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(u.count)
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "~") {
                var replaced = false
                for length in [98, 34] where u.count - i >= length {
                    // tokens are ASCII: a slice that is one decodes as it is
                    let piece = String(decoding: u[i ..< i + length], as: UTF8.self)
                    if PersonalToken(piece) != nil, let shown = try? resolve(piece) {
                        out += Array(shown.utf8)
                        i += length
                        replaced = true
                        break
                    }
                }
                if replaced { continue }
            }
            out.append(u[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
