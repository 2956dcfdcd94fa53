import Foundation
import Ledger

// Personal data in a format-2 ledger (DESIGN.md, "Personal data"): the fold's view of an
// event, the state's form of what a query names, and what its answer shows.

extension PermissionLedger {
    /// The event as the fold sees it: format 1's payload as it is; format 2's with each
    /// personal field its token (no vault read).
    func foldEvent(kind: UInt16, payload: UnsafeRawBufferPointer) throws -> DomainEvent {
        try Self.foldEvent(kind: kind, payload: payload, format: eventFormat)
    }

    static func foldEvent(kind: UInt16, payload: UnsafeRawBufferPointer, format: UInt8) throws -> DomainEvent {
        format == 2 ? try SealedPayload.view(kind: kind, payload: payload) : try DomainEvent.decode(kind: kind, payload: payload)
    }

    /// `foldEvent` of a payload held in an array.
    func foldEvent(kind: UInt16, payload: [UInt8]) throws -> DomainEvent {
        try payload.withUnsafeBytes { try foldEvent(kind: kind, payload: $0) }
    }

    /// What an answer shows for the state's strings (format 1: the strings themselves).
    func resolver(known: [String: String] = [:]) -> PersonalResolver {
        PersonalResolver(vault: vault, known: known, cache: personalCache)
    }

    /// The state's form of an email a query names (normalised first): its subject's token
    /// when the vault knows it, else the email itself — which a format-2 state never holds,
    /// so it is found nowhere, as an email never seen.
    func stateEmail(_ email: String) throws -> String {
        let e = Normalize.email(email) ?? email.lowercased()
        guard let vault, let p = try CachedVault(vault: vault, cache: personalCache).subject(email: e) else { return e }
        return PersonalToken.email(p).string
    }

    /// The state's form of an account a query names (normalised first), as `stateEmail`.
    func stateAccount(_ account: String) throws -> String {
        let a = Normalize.account(account) ?? account
        guard let vault else { return a }
        return try CachedVault(vault: vault, cache: personalCache).stateAccount(a)
    }
}

/// The owners and secrets an export reads from the vault, each once.
struct ChainKeys {
    var owners: [Pseudonym: Pseudonym] = [:]
    var secrets: [Pseudonym: [UInt8]?] = [:]
}

extension PermissionLedger {
    /// How the chain holds each personal field of a format-2 payload (the export form's
    /// `"sealed"`), with the secret of each subject that still has one.
    func chainFields(kind: UInt16, payload: UnsafeRawBufferPointer, keys: inout ChainKeys) throws -> [ChainField] {
        guard let vault else { return [] }
        let (event, fields) = try SealedPayload.decode(kind: kind, payload: payload)
        var out: [ChainField] = []
        out.reserveCapacity(fields.count)
        for (f, sealed) in zip(event.personalFields, fields) {
            var owner = sealed.ref
            if f.kind == .account {
                if let known = keys.owners[sealed.ref] {
                    owner = known
                } else {
                    owner = try vault.owner(ofAccount: sealed.ref)
                    keys.owners[sealed.ref] = owner
                }
            }
            let secret: [UInt8]?
            if let known = keys.secrets[owner] {
                secret = known
            } else {
                secret = try vault.secret(of: owner)
                keys.secrets[owner] = .some(secret)
            }
            out.append(ChainField(field: f.name, pseudonym: sealed.ref.description, commitment: sealed.commitment,
                                  subject: f.kind == .account ? owner.description : nil, secret: secret))
        }
        return out
    }
}
