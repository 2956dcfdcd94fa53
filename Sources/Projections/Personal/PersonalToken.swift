import Ledger

/// What a personal field holds in the state of a format-2 ledger: never the value, but the
/// pseudonym that stands for it (DOMAIN.md §5.1). The fold, the decisions and the
/// projections compare these as they compared the values — an email or an account is the
/// same token in every event — and only outputs turn them back into values (or
/// `erased:PSEUDONYM`) through the subject vault.
///
/// As a string: `~e` and 32 hex digits (an email: its subject's pseudonym), `~a` and 32 (an
/// account: its own pseudonym), `~t`, 32 and 64 (a free text: its subject's pseudonym and
/// its commitment, under which the vault keeps it).
enum PersonalToken: Hashable, Sendable {
    case email(Pseudonym)
    case account(Pseudonym)
    case text(Pseudonym, commitment: [UInt8])

    /// The token of a field of `kind` whose event holds `ref` and `commitment`.
    init(kind: PersonalField.Kind, ref: Pseudonym, commitment: [UInt8]) {
        switch kind {
        case .email: self = .email(ref)
        case .account: self = .account(ref)
        case .text: self = .text(ref, commitment: commitment)
        }
    }

    /// The token a string is, nil for any other string.
    init?(_ string: String) {
        let u = Array(string.utf8)
        guard u.count >= 34, u[0] == UInt8(ascii: "~") else { return nil }
        func pseudonym(_ range: Range<Int>) -> Pseudonym? { Hex.decode(u[range]).flatMap(Pseudonym.init(bytes:)) }
        switch (u[1], u.count) {
        case (UInt8(ascii: "e"), 34): guard let p = pseudonym(2 ..< 34) else { return nil }; self = .email(p)
        case (UInt8(ascii: "a"), 34): guard let p = pseudonym(2 ..< 34) else { return nil }; self = .account(p)
        case (UInt8(ascii: "t"), 98):
            guard let p = pseudonym(2 ..< 34), let c = Hex.decode(u[34 ..< 98]) else { return nil }
            self = .text(p, commitment: c)
        default: return nil
        }
    }

    /// The string the state holds.
    var string: String {
        switch self {
        case .email(let p): return "~e" + p.description
        case .account(let p): return "~a" + p.description
        case .text(let p, let c): return "~t" + p.description + Hex.encode(c)
        }
    }

    /// The pseudonym the token names (the subject's for an email or a text, the account's
    /// for an account).
    var pseudonym: Pseudonym {
        switch self {
        case .email(let p), .account(let p), .text(let p, _): return p
        }
    }
}
