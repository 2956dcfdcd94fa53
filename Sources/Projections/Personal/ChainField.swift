import Foundation
import Ledger

/// How a format-2 event's personal field is held in the hash chain, as the export form
/// carries it (`"sealed"`, in the order of the event's canonical payload): the pseudonym and
/// the commitment the chain holds, and, while the subject lives, the secret the commitment
/// was made under — so that anyone holding the export can check each value against the
/// chain, and an import reproduces every hash. After an erasure the value reads
/// `erased:PSEUDONYM` and no secret is given: nothing left can confirm a guess.
public struct ChainField: Sendable, Equatable {
    /// The field's place: `email`, `contacts[1].email`, `routedTo[0]` (payload order), ….
    public var field: String
    /// The pseudonym the chain holds: the subject's for an email or a free text, the
    /// account's for an account name (32 hex digits).
    public var pseudonym: String
    /// The commitment the chain holds.
    public var commitment: [UInt8]
    /// For an account name: the subject it belongs to.
    public var subject: String?
    /// The subject's commitment secret; nil once erased.
    public var secret: [UInt8]?

    /// A field as the chain holds it.
    public init(field: String, pseudonym: String, commitment: [UInt8], subject: String? = nil, secret: [UInt8]? = nil) {
        self.field = field
        self.pseudonym = pseudonym
        self.commitment = commitment
        self.subject = subject
        self.secret = secret
    }

    /// The subject whose field it is.
    var owner: String { subject ?? pseudonym }

    /// `{"field","pseudonym","commitment","subject"?,"secret"?}`
    var json: JSONValue {
        var f: [(key: String, value: JSONValue)] = [("field", .string(field)), ("pseudonym", .string(pseudonym)),
                                                    ("commitment", .string(Hex.encode(commitment)))]
        if let subject { f.append(("subject", .string(subject))) }
        if let secret { f.append(("secret", .string(Hex.encode(secret)))) }
        return .object(f)
    }

    /// Parses one element of `"sealed"`; errors name it (`sealed[2].commitment`).
    static func parse(_ value: JSONValue, index: Int) throws -> ChainField {
        func named(_ e: InputError) -> InputError { InputError(field: "sealed[\(index)].\(e.field)", e.message) }
        do {
            var f = try Fields(value, what: "a sealed field")
            func pseudonym(_ name: String, required: Bool) throws -> String? {
                guard let text = required ? try f.string(name) : try f.optionalString(name) else { return nil }
                guard let p = Pseudonym(hex: text) else { throw InputError(field: name, "must be 32 hex digits") }
                return p.description
            }
            func bytes(_ name: String, required: Bool) throws -> [UInt8]? {
                guard let text = required ? try f.string(name) : try f.optionalString(name) else { return nil }
                guard let b = Hex.decode(text), b.count == 32 else { throw InputError(field: name, "must be 64 hex digits") }
                return b
            }
            let field = try f.string("field")
            let out = ChainField(field: field, pseudonym: try pseudonym("pseudonym", required: true) ?? "",
                                 commitment: try bytes("commitment", required: true) ?? [],
                                 subject: try pseudonym("subject", required: false), secret: try bytes("secret", required: false))
            try f.finish("a sealed field")
            return out
        } catch let e as InputError {
            throw named(e)
        }
    }
}

extension ImportedEvent {
    /// The format-2 payload the export's event stands for: the event with its lists in the
    /// payload's order (the export shows `routedTo` and `notified` sorted by value; each
    /// sealed field names its place, and its value is found by its commitment, or for an
    /// erased one by its pseudonym), and each sealed field checked against its value.
    /// Throws `InputError` naming the field.
    func sealedPayload(_ sealed: [ChainField]) throws -> (payload: [UInt8], event: DomainEvent) {
        func matches(_ value: String, _ c: ChainField, as name: String) -> Bool {
            if let secret = c.secret { return SubjectVault.commitment(value: value, field: name, event: id, secret: secret) == c.commitment }
            return value == "erased:\(c.owner)"
        }
        func ordered(_ list: [String], _ name: String) throws -> [String] {
            var left = list
            var out: [String] = []
            for i in list.indices {
                let fieldName = "\(name)[\(i)]"
                guard let c = sealed.first(where: { $0.field == fieldName }) else { throw InputError(field: "sealed", "no sealed field \(fieldName)") }
                guard let k = left.firstIndex(where: { matches($0, c, as: fieldName) }) else {
                    throw InputError(field: fieldName, "no value of \(name) matches its sealed commitment")
                }
                out.append(left.remove(at: k))
            }
            return out
        }
        let event = try self.event.mappingDerivedLists(ordered)
        let fields = event.personalFields
        guard fields.count == sealed.count else {
            throw InputError(field: "sealed", "\(sealed.count) sealed fields for an event of \(fields.count) personal fields")
        }
        var out: [SealedPayload.Field] = []
        for (f, c) in zip(fields, sealed) {
            guard f.name == c.field else { throw InputError(field: "sealed", "\(c.field) where \(f.name) comes in the payload") }
            guard (f.kind == .account) == (c.subject != nil) else {
                throw InputError(field: f.name, f.kind == .account ? "an account's sealed field names its subject" : "only an account's sealed field names a subject")
            }
            guard matches(f.value, c, as: f.name) else {
                throw InputError(field: f.name, c.secret == nil ? "an erased field reads erased:\(c.owner)" : "the value does not match its commitment")
            }
            guard let ref = Pseudonym(hex: c.pseudonym) else { throw InputError(field: f.name, "the pseudonym is not 32 hex digits") }
            out.append(SealedPayload.Field(ref: ref, commitment: c.commitment))
        }
        return (SealedPayload.encode(event, fields: out), event)
    }
}
