import Crypto
import Foundation

/// The vault's writes for a batch of events, committed in one durable transaction before the
/// events are: the subjects and accounts first seen in it, with their keys and secrets, and
/// the free texts its events hold. Commitments of the batch's fields are made here, under
/// the secrets of the subjects they belong to (new or stored).
///
/// A batch is made, filled and committed by one writer at a time (the ledger does it inside
/// its write transaction, which serialises writers across processes); ``commit(keeping:)`` refuses
/// with `conflict` a value that another writer gave a subject or an account meanwhile, and
/// writes nothing then. A batch that is never committed leaves no trace.
public final class VaultBatch {
    let vault: SubjectVault

    struct NewSubject {
        /// nil: adopted as erased (from an export)
        var email: String?
        var keys: SubjectKeys
    }
    struct NewAccount {
        /// nil: adopted as erased (from an export)
        var name: String?
        var owner: Pseudonym
    }
    struct Text {
        var subject: Pseudonym
        var commitment: [UInt8]
        var plain: [UInt8]
    }

    var subjects: [Pseudonym: NewSubject] = [:]
    var subjectOrder: [Pseudonym] = []
    private var byEmail: [String: Pseudonym] = [:]
    var accounts: [Pseudonym: NewAccount] = [:]
    var accountOrder: [Pseudonym] = []
    private var byName: [String: Pseudonym] = [:]
    var texts: [Text] = []
    private var random: [UInt8] = []
    private var randomUsed = 0

    /// Subjects whose erasure is recorded and not yet made (the ledger's log committed it; the
    /// vault's deletion follows): their email and accounts resolve to nothing here, and a new
    /// subject or account takes their look-up over.
    public var erasing: Set<Pseudonym> = []

    init(_ vault: SubjectVault) { self.vault = vault }

    /// Whether this batch makes `subject` with its email (a live subject, not yet stored).
    public func isLive(_ subject: Pseudonym) -> Bool { subjects[subject]?.email != nil }

    /// Whether the batch has nothing to write.
    public var isEmpty: Bool { subjects.isEmpty && accounts.isEmpty && texts.isEmpty }

    /// `count` random bytes from a pool refilled 4 KiB at a time (one read of the kernel's
    /// CSPRNG for many subjects).
    private func randomBytes(_ count: Int) throws -> [UInt8] {
        if randomUsed + count > random.count {
            random = try SubjectVault.randomBytes(max(4096, count))
            randomUsed = 0
        }
        defer { randomUsed += count }
        return Array(random[randomUsed ..< randomUsed + count])
    }

    private func freshPseudonym() throws -> Pseudonym {
        try SubjectVault.pseudonym(try randomBytes(16))
    }

    /// The subject of `email`: the one it has (in the vault or in this batch), or a new one
    /// (random pseudonym, fresh key and secret) when the email was never seen or its subject
    /// was erased. `isNew` tells which. `storedLookedUp`: the caller has just found no live
    /// subject of `email` in the vault, so it is not looked up again.
    public func subject(email: String, storedLookedUp: Bool = false) throws -> (subject: Pseudonym, isNew: Bool) {
        if let p = byEmail[email] { return (p, subjects[p] != nil) }
        if !storedLookedUp, let p = try vault.subject(email: email), !erasing.contains(p) {
            byEmail[email] = p
            return (p, false)
        }
        let p = try freshPseudonym()
        let keys = SubjectKeys(key: SymmetricKey(data: try randomBytes(32)), secret: try randomBytes(32))
        subjects[p] = NewSubject(email: email, keys: keys)
        subjectOrder.append(p)
        byEmail[email] = p
        return (p, true)
    }

    /// The account `name` names (in the vault or in this batch), nil when none does.
    /// `storedLookedUp`: the caller has just found no live account of that name in the vault.
    public func account(named name: String, storedLookedUp: Bool = false) throws -> VaultAccount? {
        if let a = byName[name], let made = accounts[a] { return VaultAccount(pseudonym: a, owner: made.owner) }
        guard !storedLookedUp, let stored = try vault.account(named: name), !erasing.contains(stored.owner) else { return nil }
        return stored
    }

    /// A new account `name` of subject `owner` (a registration): a fresh random pseudonym; the
    /// name then looks it up, replacing an erased subject's account of that name.
    /// `unknownSubject` when `owner` is neither in the vault nor in this batch.
    public func registerAccount(named name: String, owner: Pseudonym) throws -> Pseudonym {
        _ = try keys(of: owner)
        let a = try freshPseudonym()
        accounts[a] = NewAccount(name: name, owner: owner)
        accountOrder.append(a)
        byName[name] = a
        return a
    }

    private func keys(of subject: Pseudonym) throws -> SubjectKeys {
        if let made = subjects[subject] {
            guard made.email != nil else { throw VaultError(reason: .unknownSubject(subject)) }
            return made.keys
        }
        guard let keys = try vault.keys(of: subject, in: try vault.current()) else { throw VaultError(reason: .unknownSubject(subject)) }
        return keys
    }

    /// The commitment to `value` in field `field` of event `event` for `subject`, under its
    /// secret; `unknownSubject` for a subject neither stored (live) nor in this batch.
    public func commitment(value: String, field: String, event: UUID, subject: Pseudonym) throws -> [UInt8] {
        SubjectVault.commitment(value: value, field: field, event: event, secret: try keys(of: subject).secret)
    }

    /// Takes subject `subject` as an export gives it: its email and the secret its
    /// commitments were made under, or neither once erased. A subject the vault (or this
    /// batch) holds must be the same one; a new one gets a fresh key, and its email looks it
    /// up unless the email names another subject (`conflict`). An erased one is kept as
    /// erased (its values read as `erased:PSEUDONYM`), and its email is not known as erased.
    public func adoptSubject(_ subject: Pseudonym, email: String?, secret: [UInt8]?) throws {
        if let made = subjects[subject] {
            guard made.email == email, email == nil || made.keys.secret == secret else {
                throw VaultError(reason: .conflict("subject \(subject) with two emails or secrets"))
            }
            return
        }
        let g = try vault.current()
        if let stored = try g.environment.read({ txn in try txn.get(g.subjects, key: subject.bytes) }) {
            let storedEmail = try SubjectVault.decodeEmail(stored, subject)
            let storedSecret = try SubjectVault.subjectKeys(stored, subject)?.secret
            guard storedEmail == email || storedEmail == nil, email == nil || storedEmail == nil || storedSecret == secret else {
                throw VaultError(reason: .conflict("subject \(subject), held with another email or secret"))
            }
            return
        }
        if let email {
            guard let secret, secret.count == 32 else { throw VaultError(reason: .damaged("subject \(subject) comes without a 32-byte secret")) }
            // (a subject whose erasure is on its way gives its email's look-up up)
            if let other = try byEmail[email] ?? vault.subject(email: email), other != subject, !erasing.contains(other) {
                throw VaultError(reason: .conflict("an email of subject \(subject), which names subject \(other) here"))
            }
            subjects[subject] = NewSubject(email: email, keys: SubjectKeys(key: SymmetricKey(data: try randomBytes(32)), secret: secret))
            byEmail[email] = subject
        } else {
            subjects[subject] = NewSubject(email: nil, keys: SubjectKeys(key: SymmetricKey(data: try randomBytes(32)), secret: try randomBytes(32)))
        }
        subjectOrder.append(subject)
    }

    /// Takes account `account` of subject `owner` as an export gives it: its name, or none
    /// once erased. An account the vault (or this batch) holds must have that owner.
    public func adoptAccount(_ account: Pseudonym, owner: Pseudonym, name: String?) throws {
        if let made = accounts[account] {
            guard made.owner == owner, made.name == name else { throw VaultError(reason: .conflict("account \(account) with two owners or names")) }
            return
        }
        let g = try vault.current()
        let stored: Pseudonym? = try g.environment.read { txn in
            try txn.get(g.accounts, key: account.bytes) == nil ? nil : try SubjectVault.owner(of: account, txn, g)
        }
        if let stored {
            guard stored == owner else { throw VaultError(reason: .conflict("account \(account), held for another subject")) }
            return
        }
        accounts[account] = NewAccount(name: name, owner: owner)
        accountOrder.append(account)
        if let name { byName[name] = account }
    }

    /// Stores a free text (a name, a comment, a reason) of `subject` written in field `field`
    /// of event `event`, and returns its commitment, under which
    /// ``SubjectVault/text(subject:commitment:)`` reads it back.
    public func storeText(_ text: String, field: String, event: UUID, subject: Pseudonym) throws -> [UInt8] {
        let commitment = try self.commitment(value: text, field: field, event: event, subject: subject)
        texts.append(Text(subject: subject, commitment: commitment, plain: SubjectVault.textPlain(text, field: field, event: event)))
        return commitment
    }

    /// Adds a text in its stored form (checked by the caller against its commitment).
    func appendText(subject: Pseudonym, commitment: [UInt8], plain: [UInt8]) {
        texts.append(Text(subject: subject, commitment: commitment, plain: plain))
    }

    /// What a commit wrote: the live subjects and accounts it made, by their look-up values,
    /// in the generation it wrote them to (a caller's cache of look-ups may take them, as
    /// it would after reading them back).
    public struct Committed: Sendable {
        /// The vault generation written to (0: nothing was written).
        public var generation: UInt64 = 0
        /// Each new live subject's email and pseudonym.
        public var subjects: [(email: String, subject: Pseudonym)] = []
        /// Each new live account's name and record.
        public var accounts: [(name: String, account: VaultAccount)] = []
    }

    /// Writes the batch in one durable transaction (nothing when it is empty), and empties it.
    /// With `keeping`, only the new subjects and accounts it names are written (those the
    /// batch's committed events name; a refused command's are dropped), and every text.
    @discardableResult
    public func commit(keeping: Set<Pseudonym>? = nil) throws -> Committed {
        if let keeping {
            subjectOrder.removeAll { !keeping.contains($0) }
            accountOrder.removeAll { !keeping.contains($0) }
        }
        guard !subjectOrder.isEmpty || !accountOrder.isEmpty || !texts.isEmpty else { clear(); return Committed() }
        var committed = Committed()
        let nonces = try randomBytes(12 * (subjectOrder.count + accountOrder.count + texts.count))
        var nonce = 0
        func nextNonce() -> ArraySlice<UInt8> {
            defer { nonce += 12 }
            return nonces[nonce ..< nonce + 12]
        }
        try vault.writing { g in
            committed.generation = g.index
            try g.environment.write { txn in
                // a write that found the map full is run again after it grew: from the first nonce
                nonce = 0
                for p in subjectOrder {
                    guard let made = subjects[p] else { continue }
                    guard let email = made.email else {
                        if try txn.get(g.subjects, key: p.bytes) == nil { try txn.put(g.subjects, key: p.bytes, value: [UInt8]()) }
                        continue
                    }
                    let hash = SubjectVault.lookupHash(.email, email, g)
                    if let old = try txn.get(g.lookup, key: hash), !erasing.contains(try SubjectVault.pseudonym(old)) {
                        throw VaultError(reason: .conflict("a subject to an email of this batch"))
                    }
                    if try txn.get(g.subjects, key: p.bytes) != nil { throw VaultError(reason: .conflict("a subject's pseudonym")) }
                    try txn.put(g.subjects, key: p.bytes, value: try SubjectVault.encodeSubject(made.keys, email: email, p, nonce: nextNonce()))
                    try txn.put(g.lookup, key: hash, value: p.bytes)
                    try txn.put(g.owned, key: SubjectVault.ownedLookupKey(p, hash), value: [UInt8]())
                }
                for a in accountOrder {
                    guard let made = accounts[a] else { continue }
                    guard let name = made.name else {
                        if try txn.get(g.accounts, key: a.bytes) != nil { throw VaultError(reason: .conflict("an account pseudonym")) }
                        try txn.put(g.accounts, key: a.bytes, value: made.owner.bytes)
                        try txn.put(g.owned, key: SubjectVault.ownedAccountKey(made.owner, a), value: [UInt8]())
                        continue
                    }
                    let keys = try liveKeys(of: made.owner, txn, g)
                    if try txn.get(g.accounts, key: a.bytes) != nil { throw VaultError(reason: .conflict("an account pseudonym")) }
                    let hash = SubjectVault.lookupHash(.account, name, g)
                    if let old = try txn.get(g.lookup, key: hash) {
                        // only an erased subject's account may be replaced by a registration
                        let previous = try SubjectVault.pseudonym(old)
                        let owner = try SubjectVault.owner(of: previous, txn, g)
                        if try !erasing.contains(owner) && txn.withValue(g.subjects, key: owner.bytes, { $0.isEmpty }) != true {
                            throw VaultError(reason: .conflict("the account name of this batch"))
                        }
                    }
                    let sealed = try SubjectVault.seal(Array(name.utf8), key: keys.key, nonce: nextNonce(),
                                                       context: SubjectVault.accountLabel + a.bytes)
                    try txn.put(g.accounts, key: a.bytes, value: made.owner.bytes + sealed)
                    try txn.put(g.lookup, key: hash, value: a.bytes)
                    try txn.put(g.owned, key: SubjectVault.ownedLookupKey(made.owner, hash), value: [UInt8]())
                    try txn.put(g.owned, key: SubjectVault.ownedAccountKey(made.owner, a), value: [UInt8]())
                }
                for text in texts {
                    let keys = try liveKeys(of: text.subject, txn, g)
                    let sealed = try SubjectVault.seal(text.plain, key: keys.key, nonce: nextNonce(),
                                                       context: SubjectVault.textContext(text.subject, text.commitment))
                    try txn.put(g.texts, key: text.subject.bytes + text.commitment, value: sealed)
                }
            }
        }
        for p in subjectOrder {
            if let made = subjects[p], let email = made.email { committed.subjects.append((email, p)) }
        }
        for a in accountOrder {
            if let made = accounts[a], let name = made.name {
                committed.accounts.append((name, VaultAccount(pseudonym: a, owner: made.owner)))
            }
        }
        // the keys of the subjects made here, as a read of them would cache them (the batch
        // is durable in that generation now)
        vault.keyCache.withLock { cache in
            guard cache.generation == committed.generation else { return }
            for (_, p) in committed.subjects where cache.keys.count < SubjectVault.keyCacheLimit {
                if let keys = subjects[p]?.keys { cache.keys[p] = .some(keys) }
            }
        }
        clear()
        return committed
    }

    /// The keys of a live subject, made by this batch or stored (`unknownSubject` otherwise).
    private func liveKeys(of subject: Pseudonym, _ txn: borrowing WriteTransaction, _ g: SubjectVault.Generation) throws -> SubjectKeys {
        if let new = subjects[subject], new.email != nil { return new.keys }
        guard let stored = try txn.withValue(g.subjects, key: subject.bytes, { try SubjectVault.subjectKeys($0, subject) }), let live = stored else {
            throw VaultError(reason: .unknownSubject(subject))
        }
        return live
    }

    private func clear() {
        subjects = [:]
        subjectOrder = []
        byEmail = [:]
        accounts = [:]
        accountOrder = []
        byName = [:]
        texts = []
    }
}
