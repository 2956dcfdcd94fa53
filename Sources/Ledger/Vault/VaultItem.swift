import Crypto
import Foundation

/// One record of the subject vault in the form a **shared log** carries between hosts: what
/// a host that did not decide an event needs to show its values — a subject's email and the
/// secret its commitments are under, an account's name and owner, a free text. The local
/// keys that seal a host's vault never travel; the carrier seals an item under a key of its
/// own (the shared log's cluster key) before it leaves the host.
public struct VaultItem: Sendable, Equatable {
    /// What the item is.
    public enum Kind: UInt8, Sendable, CaseIterable {
        /// A subject: `ref` is its pseudonym; `plain` its secret (32 bytes) and its email.
        case subject = 0
        /// An account: `ref` is the account's pseudonym, `subject` its owner; `plain` its name.
        case account = 1
        /// A free text: `ref` is its commitment, `subject` its writer; `plain` the event, the
        /// field and the text (the vault's stored form).
        case text = 2
    }

    /// What the item is.
    public var kind: Kind
    /// The record's own key (see ``Kind``).
    public var ref: [UInt8]
    /// The subject the record belongs to (for a subject, itself): what an erasure deletes.
    public var subject: Pseudonym
    /// The personal bytes; nil once the subject was erased (the pseudonyms stay).
    public var plain: [UInt8]?

    /// An item from its parts (as the carrier read it back).
    public init(kind: Kind, ref: [UInt8], subject: Pseudonym, plain: [UInt8]?) {
        self.kind = kind
        self.ref = ref
        self.subject = subject
        self.plain = plain
    }
}

extension VaultBatch {
    /// What this batch would write, as items (new live subjects and accounts, with `keeping`
    /// those it names only; every text): what a shared-log host appends beside the events,
    /// instead of committing the batch itself.
    public func items(keeping: Set<Pseudonym>) -> [VaultItem] {
        var out: [VaultItem] = []
        for p in subjectOrder where keeping.contains(p) {
            guard let made = subjects[p], let email = made.email else { continue }
            out.append(VaultItem(kind: .subject, ref: p.bytes, subject: p, plain: made.keys.secret + Array(email.utf8)))
        }
        for a in accountOrder where keeping.contains(a) {
            guard let made = accounts[a], let name = made.name else { continue }
            out.append(VaultItem(kind: .account, ref: a.bytes, subject: made.owner, plain: Array(name.utf8)))
        }
        for t in texts {
            out.append(VaultItem(kind: .text, ref: t.commitment, subject: t.subject, plain: t.plain))
        }
        return out
    }

    /// Takes `item` from a shared log into this batch. A record the vault (or the batch)
    /// already holds is left as it is — a replica that applied it before, or whose erasure
    /// of the subject is on its way — and an erased one (no `plain`) is adopted as erased.
    /// A text is checked against its commitment under its subject's secret. Returns the
    /// pseudonyms the batch must keep (``commit(keeping:)``).
    public func adopt(_ item: VaultItem) throws -> [Pseudonym] {
        let g = try vault.current()
        switch item.kind {
        case .subject:
            guard let p = Pseudonym(bytes: item.ref), p == item.subject else { throw VaultError(reason: .damaged("a subject item whose pseudonym is not its subject's")) }
            if subjects[p] != nil { return [p] }
            if try g.environment.read({ txn in try txn.get(g.subjects, key: p.bytes) }) != nil { return [] }
            guard let plain = item.plain else {
                try adoptSubject(p, email: nil, secret: nil)
                return [p]
            }
            guard plain.count > 32 else { throw VaultError(reason: .damaged("the item of subject \(p) is \(plain.count) bytes")) }
            try adoptSubject(p, email: try SubjectVault.utf8(plain[32...], "the email of subject \(p)"), secret: Array(plain[0..<32]))
            return [p]
        case .account:
            guard let a = Pseudonym(bytes: item.ref) else { throw VaultError(reason: .damaged("an account item whose pseudonym is \(item.ref.count) bytes")) }
            if accounts[a] != nil { return [a, item.subject] }
            if try g.environment.read({ txn in try txn.get(g.accounts, key: a.bytes) }) != nil { return [] }
            guard let plain = item.plain else {
                let ownerStored = try g.environment.read { txn in try txn.get(g.subjects, key: item.subject.bytes) } != nil
                if subjects[item.subject] == nil, !ownerStored { try adoptSubject(item.subject, email: nil, secret: nil) }
                try adoptAccount(a, owner: item.subject, name: nil)
                return [a, item.subject]
            }
            try adoptAccount(a, owner: item.subject, name: try SubjectVault.utf8(plain, "the name of account \(a)"))
            return [a, item.subject]
        case .text:
            guard let plain = item.plain else { return [] }
            let p = item.subject
            if try g.environment.read({ txn in try txn.get(g.texts, key: p.bytes + item.ref) }) != nil { return [] }
            let keys: SubjectKeys?
            if let made = subjects[p] {
                keys = made.email == nil ? nil : made.keys
            } else {
                keys = try vault.keys(of: p, in: g)
            }
            // a subject erased here already: its texts are not kept
            guard let keys else { return [] }
            let what = "a text item of subject \(p)"
            guard plain.count > 16, let zero = plain[16...].firstIndex(of: 0) else { throw VaultError(reason: .damaged("\(what) is not in the stored form")) }
            let field = try SubjectVault.utf8(plain[16..<zero], what), text = try SubjectVault.utf8(plain[(zero + 1)...], what)
            guard SubjectVault.commitment(value: text, field: field, event: SubjectVault.uuid(plain[0..<16]), secret: keys.secret) == item.ref else {
                throw VaultError(reason: .commitmentMismatch(field: field))
            }
            appendText(subject: p, commitment: item.ref, plain: plain)
            return [p]
        }
    }

    /// Whether the vault or this batch holds `subject` (live or erased).
    public func holds(subject: Pseudonym) throws -> Bool {
        if subjects[subject] != nil { return true }
        let g = try vault.current()
        return try g.environment.read { txn in try txn.get(g.subjects, key: subject.bytes) } != nil
    }

    /// Whether the vault or this batch holds account `account`.
    public func holds(account: Pseudonym) throws -> Bool {
        if accounts[account] != nil { return true }
        let g = try vault.current()
        return try g.environment.read { txn in try txn.get(g.accounts, key: account.bytes) } != nil
    }
}
