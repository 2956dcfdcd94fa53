import Foundation
import Ledger

/// Why a personal value could not be sealed or read back.
struct PersonalDataError: LedgerError {
    let code: String
    let message: String
    var errorCode: LedgerErrorCode { LedgerErrorCode(code) }
    var description: String { message }

    static func erasedSubject(_ field: String, _ p: Pseudonym) -> PersonalDataError {
        PersonalDataError(code: "erasedSubject", message: "field \(field) names subject \(p), which is erased: an event can't name it again")
    }
    static func unknownAccount(_ field: String, _ name: String) -> PersonalDataError {
        PersonalDataError(code: "notRegistered", message: "field \(field) names account '\(name)', which is not registered")
    }
    static func notAText(_ field: String) -> PersonalDataError {
        PersonalDataError(code: "invalidInput", message: "field \(field) holds a token where a free text must be")
    }
}

/// Turns the events of one write batch into format-2 payloads (``SealedPayload``): each
/// personal value becomes its pseudonym and a commitment, and what the vault must keep — the
/// subjects and accounts first seen, the free texts — goes into one ``VaultBatch``, which
/// ``commit()`` writes before the log's transaction commits (so the log never names what the
/// vault lacks; a crash between the two leaves only unnamed vault records).
///
/// An event given to ``seal(_:id:)`` may hold, in each email or account field, its token (as
/// the decisions produce, from the tokenised command and the state) or the value itself (as
/// an import gives it); free texts are values. Tokens for values a command names are made
/// by ``emailToken(_:)``, ``accountToken(_:)`` and ``newAccountToken(_:owner:)``.
final class PersonalSealer {
    let vault: SubjectVault
    let batch: VaultBatch
    /// The value of every token this batch made or read (what outputs of its commands show).
    private(set) var values: [String: String] = [:]
    /// The new subjects and accounts the sealed events name: what ``commit()`` writes.
    private var named = Set<Pseudonym>()

    /// The ledger's cache of look-ups and values (nil: every read goes to the vault).
    let cached: CachedVault?
    /// The owner of each account this batch named.
    private var owners: [Pseudonym: Pseudonym] = [:]

    /// Subjects whose erasure the log records and the vault has not made yet.
    let erasing: Set<Pseudonym>

    /// A sealer for one batch; `erasing`: the subjects an erasure the log records is still
    /// deleting (their names resolve to new subjects and accounts, as after the deletion).
    init(vault: SubjectVault, cache: PersonalCache? = nil, erasing: Set<Pseudonym> = []) throws {
        self.vault = vault
        self.erasing = erasing
        batch = vault.batch()
        batch.erasing = erasing
        cached = try cache.map { try CachedVault(vault: vault, cache: $0) }
    }

    /// The token of `email` (a normalised email): its subject's, a new one when never seen.
    func emailToken(_ email: String) throws -> String {
        try emailSubject(email).1
    }

    /// The subject of `email` and its token.
    private func emailSubject(_ email: String) throws -> (Pseudonym, String) {
        // a stored subject is never also made by the batch: the cache's answer is the batch's
        let stored = try cached?.subject(email: email).flatMap { erasing.contains($0) ? nil : $0 }
        // (the batch does not look the email up in the vault again when the cache just did)
        let subject = try stored ?? batch.subject(email: email, storedLookedUp: cached != nil).subject
        let token = PersonalToken.email(subject).string
        values[token] = email
        return (subject, token)
    }

    /// The token of the account `name` names, nil when none does.
    func accountToken(_ name: String) throws -> String? {
        let stored = try cached?.account(named: name).flatMap { erasing.contains($0.owner) ? nil : $0 }
        guard let account = try stored ?? batch.account(named: name, storedLookedUp: cached != nil) else { return nil }
        owners[account.pseudonym] = account.owner
        let token = PersonalToken.account(account.pseudonym).string
        values[token] = name
        return token
    }

    /// The token of a new account `name` registered with the email whose token is `owner`.
    func newAccountToken(_ name: String, owner: String) throws -> String {
        guard case let .email(subject)? = PersonalToken(owner) else {
            throw PersonalDataError(code: "invalidInput", message: "an account is registered with an email's token, not \(owner.debugDescription)")
        }
        let account = try batch.registerAccount(named: name, owner: subject)
        owners[account] = subject
        let token = PersonalToken.account(account).string
        values[token] = name
        return token
    }

    /// The value of an email or account token (this batch's, else the vault's); throws for
    /// an erased subject's.
    private func value(of token: PersonalToken, _ string: String, field: String) throws -> String {
        if let v = values[string] { return v }
        func open() throws -> OpenedField {
            switch token {
            case .email(let p): return try vault.email(of: p)
            case .account(let a): return try vault.name(ofAccount: a)
            case .text: throw PersonalDataError.notAText(field)
            }
        }
        let opened = try cached?.shown(string, open) ?? open()
        switch opened {
        case .value(let v):
            values[string] = v
            return v
        case .erased(let p): throw PersonalDataError.erasedSubject(field, p)
        }
    }

    /// The owner subject of an account token.
    private func owner(ofAccount a: Pseudonym, field: String) throws -> Pseudonym {
        if let known = owners[a] { return known }
        let owner = try cached?.owner(ofAccount: a) ?? vault.owner(ofAccount: a)
        owners[a] = owner
        return owner
    }

    /// The token of a field's value: itself when it is one; else the value's (an email's
    /// subject; an account's, registered with `owner` when new).
    private func token(of value: String, kind: PersonalField.Kind, field: String, registeringWith owner: String? = nil) throws -> (PersonalToken, String) {
        if let t = PersonalToken(value) { return (t, value) }
        switch kind {
        case .email:
            guard Normalize.email(value) == value else {
                throw PersonalDataError(code: "invalidEmail", message: "field \(field): '\(value)' is not a normalised business email")
            }
            let (subject, s) = try emailSubject(value)
            return (.email(subject), s)
        case .account:
            if let s = try accountToken(value), let t = PersonalToken(s) { return (t, s) }
            guard let owner else { throw PersonalDataError.unknownAccount(field, value) }
            let ownerToken = try self.token(of: owner, kind: .email, field: field).1
            let s = try newAccountToken(value, owner: ownerToken)
            guard let t = PersonalToken(s) else { throw PersonalDataError.unknownAccount(field, value) }
            return (t, s)
        case .text: throw PersonalDataError.notAText(field)
        }
    }

    /// The subject a field's owner names.
    private func subject(of owner: PersonalField.Owner, field: String) throws -> Pseudonym {
        switch owner {
        case .email(let e):
            return try token(of: e, kind: .email, field: field).0.pseudonym
        case .account(let a):
            let (t, _) = try token(of: a, kind: .account, field: field)
            return try self.owner(ofAccount: t.pseudonym, field: field)
        }
    }

    /// The format-2 payload of `event` (id `id`), and the event as the fold sees it (each
    /// personal field its token).
    func seal(_ event: DomainEvent, id: UUID) throws -> (payload: [UInt8], view: DomainEvent) {
        // the lists a rule derives from the state are in the state's order, which in a
        // format-2 state is the tokens' (values given in another order, by an import, are put in it)
        func inTokenOrder(_ list: [String], _ name: String) throws -> [String] {
            let keyed = try list.enumerated().map { i, v in (try token(of: v, kind: .email, field: "\(name)[\(i)]").1, v) }
            return keyed.sorted { $0.0 < $1.0 }.map(\.1)
        }
        let event = try event.mappingDerivedLists(inTokenOrder)
        var fields: [SealedPayload.Field] = []
        let registrationEmail: String?
        if case let .userRegistered(_, e) = event { registrationEmail = e } else { registrationEmail = nil }
        let view = try event.mappingPersonalFields { f in
            switch f.kind {
            case .email, .account:
                let (token, string) = try token(of: f.value, kind: f.kind, field: f.name,
                                                registeringWith: f.kind == .account ? registrationEmail : nil)
                let value = try value(of: token, string, field: f.name)
                let subject = f.kind == .email ? token.pseudonym : try owner(ofAccount: token.pseudonym, field: f.name)
                named.insert(token.pseudonym)
                named.insert(subject)
                fields.append(SealedPayload.Field(ref: token.pseudonym,
                                                  commitment: try batch.commitment(value: value, field: f.name, event: id, subject: subject)))
                return string
            case .text:
                if PersonalToken(f.value) != nil { throw PersonalDataError.notAText(f.name) }
                let subject = try subject(of: f.owner, field: f.name)
                let commitment = try batch.storeText(f.value, field: f.name, event: id, subject: subject)
                named.insert(subject)
                fields.append(SealedPayload.Field(ref: subject, commitment: commitment))
                let token = PersonalToken.text(subject, commitment: commitment).string
                values[token] = f.value
                return token
            }
        }
        return (SealedPayload.encode(event, fields: fields), view)
    }

    /// Takes into the vault what an exported format-2 event's fields need — its subjects and
    /// accounts with their pseudonyms and secrets, its texts — as the export gives them
    /// (`event` in payload order, `sealed` checked against it by
    /// `ImportedEvent.sealedPayload`). Erased ones stay erased.
    func adopt(_ event: DomainEvent, _ sealed: [ChainField], id: UUID) throws {
        for (f, c) in zip(event.personalFields, sealed) {
            guard let ref = Pseudonym(hex: c.pseudonym), let owner = Pseudonym(hex: c.owner) else {
                throw PersonalDataError(code: "invalidInput", message: "field \(f.name): a pseudonym is not 32 hex digits")
            }
            let erased = c.secret == nil
            switch f.kind {
            case .email:
                try batch.adoptSubject(ref, email: erased ? nil : f.value, secret: c.secret)
                values[PersonalToken.email(ref).string] = f.value
            case .account:
                if erased { try batch.adoptSubject(owner, email: nil, secret: nil) }
                try batch.adoptAccount(ref, owner: owner, name: erased ? nil : f.value)
                values[PersonalToken.account(ref).string] = f.value
            case .text:
                if erased {
                    try batch.adoptSubject(ref, email: nil, secret: nil)
                } else {
                    guard try batch.storeText(f.value, field: f.name, event: id, subject: ref) == c.commitment else {
                        throw PersonalDataError(code: "invalidInput", message: "field \(f.name): the commitment is not under its subject's secret")
                    }
                }
                values[PersonalToken.text(ref, commitment: c.commitment).string] = f.value
            }
            named.insert(ref)
            named.insert(owner)
        }
    }

    /// What ``commit()`` would write, as items a shared log carries (``VaultBatch/items(keeping:)``).
    var items: [VaultItem] { batch.items(keeping: named) }

    /// Takes items read from a shared log into the batch, subjects first (an account or a
    /// text needs its subject); ``commit()`` writes them.
    func adopt(_ items: [VaultItem]) throws {
        for kind in VaultItem.Kind.allCases {
            for item in items where item.kind == kind { named.formUnion(try batch.adopt(item)) }
        }
    }

    /// Whether the vault or this batch holds what the personal field `field` of a sealed
    /// event refers to (`ref`: its subject, or its account).
    func holds(_ kind: PersonalField.Kind, _ ref: Pseudonym) throws -> Bool {
        kind == .account ? try batch.holds(account: ref) : try batch.holds(subject: ref)
    }

    /// Whether this batch gives `subject` a live record (it is new here, with its email).
    func isLive(_ subject: Pseudonym) -> Bool { batch.isLive(subject) }

    /// Writes what the sealed events need into the vault (one durable transaction), and
    /// gives the ledger's cache the subjects and accounts it made, with their values, as a
    /// later read of them would (not while an erasure is pending: its names are moving).
    func commit() throws {
        let committed = try batch.commit(keeping: named)
        named = []
        guard let cached, erasing.isEmpty, committed.generation == cached.generation,
              !committed.subjects.isEmpty || !committed.accounts.isEmpty else { return }
        cached.cache.with(cached.generation) { s in
            for (email, p) in committed.subjects {
                s.subjects[email] = p
                s.values[PersonalToken.email(p).string] = email
            }
            for (name, a) in committed.accounts {
                s.accounts[name] = a
                s.owners[a.pseudonym] = a.owner
                s.values[PersonalToken.account(a.pseudonym).string] = name
            }
        }
    }
}
