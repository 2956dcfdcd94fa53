import Foundation
import Ledger

/// A stored domain event: the envelope of DOMAIN.md §5 with its decoded payload.
public struct LedgerEvent: Sendable, Equatable {
    /// Position in the log.
    public var seq: UInt64
    /// Unique id.
    public var id: UUID
    /// When it happened.
    public var at: Timestamp
    /// The payload.
    public var event: DomainEvent
    /// The chain hash (32 bytes).
    public var hash: [UInt8]
    /// How the chain holds each personal field (format 2), in payload order; nil for a
    /// format-1 event, whose values are in its hashed bytes.
    public var sealed: [ChainField]?

    /// Creates a stored event.
    public init(seq: UInt64, id: UUID, at: Timestamp, event: DomainEvent, hash: [UInt8], sealed: [ChainField]? = nil) {
        self.seq = seq
        self.id = id
        self.at = at
        self.event = event
        self.hash = hash
        self.sealed = sealed
    }

    /// Decodes a stored record.
    public init(_ stored: StoredEvent) throws {
        self.init(seq: stored.seq, id: stored.id, at: stored.at,
                  event: try DomainEvent.decode(kind: stored.kind, payload: stored.payload), hash: stored.hash)
    }

    /// The type name.
    public var type: String { event.type }

    /// The export form: `seq`, `id`, `type`, `at`, the type's fields, `hash`.
    public var json: JSONValue {
        var fields: [(key: String, value: JSONValue)] = [
            ("seq", .uint(seq)), ("id", .string(id.uuidString.lowercased())), ("type", .string(type)), ("at", .string(at.iso8601)),
        ]
        fields.append(contentsOf: event.jsonFields)
        if let sealed { fields.append(("sealed", .array(sealed.map(\.json)))) }
        fields.append(("hash", .string(Hex.encode(hash))))
        return .object(fields)
    }
}


extension DomainEvent {
    /// The type's fields in the export form.
    public var jsonFields: [(key: String, value: JSONValue)] {
        func roles(_ r: [Role]) -> JSONValue { .strings(r.map(\.rawValue)) }
        func benefits(_ b: [SABenefit]) -> [(key: String, value: JSONValue)] { b.isEmpty ? [] : [("saBenefits", .strings(b.map(\.rawValue)))] }
        func opt(_ key: String, _ v: String?) -> [(key: String, value: JSONValue)] { v.map { [(key, .string($0))] } ?? [] }
        switch self {
        case let .userRegistered(a, e): return [("account", .string(a)), ("businessEmail", .string(e))]
        case let .businessEmailValidated(a, e): return [("account", .string(a)), ("email", .string(e))]
        case let .profileCompleted(a, f, l): return [("account", .string(a)), ("firstName", .string(f)), ("lastName", .string(l))]
        case let .agreementRecorded(r):
            var f: [(key: String, value: JSONValue)] = [("licensingId", .string(r.licensingId)), ("program", .string(r.program.rawValue))]
            f += opt("parent", r.parent)
            f.append(("status", .string(r.status.rawValue)))
            f.append(("contacts", .array(r.contacts.map { .object([("type", .string($0.type.rawValue)), ("email", .string($0.email))]) })))
            f.append(("availableRoles", roles(r.availableRoles)))
            f += opt("authorizationHash", r.authorizationHash.map { Hex.encode($0) })
            f += opt("keyId", r.keyId)
            f += opt("resellerEmail", r.resellerEmail)
            return f
        case let .resellerAutoGranted(e, l, r): return [("email", .string(e)), ("licensingId", .string(l)), ("roles", roles(r))]
        case let .licensingIdStatusChanged(l, s): return [("licensingId", .string(l)), ("status", .string(s.rawValue))]
        case let .rolesGranted(b, e, l, r, sa):
            return [("by", .string(b)), ("email", .string(e)), ("licensingId", .string(l)), ("roles", roles(r))] + benefits(sa)
        case let .rolesRevoked(b, e, l, r): return [("by", .string(b)), ("email", .string(e)), ("licensingId", .string(l)), ("roles", roles(r))]
        case let .permissionsRequested(r):
            return [("requestId", .string(r.requestId)), ("account", .string(r.account)), ("email", .string(r.email)),
                    ("licensingId", .string(r.licensingId)), ("roles", roles(r.roles))] + benefits(r.saBenefits)
                + opt("comment", r.comment) + [("routedTo", .strings(r.routedTo))]
        case let .permissionRequestApproved(b, id, e, l, r, sa):
            return [("by", .string(b)), ("requestId", .string(id)), ("email", .string(e)), ("licensingId", .string(l)), ("roles", roles(r))] + benefits(sa)
        case let .permissionRequestDenied(b, id, reason): return [("by", .string(b)), ("requestId", .string(id))] + opt("reason", reason)
        case let .openLicenseAttemptFailed(a, n, reason):
            return [("account", .string(a)), ("licenseNumber", .string(n)), ("reason", .string(reason.rawValue))]
        case let .openLicenseAdded(a, e, l, r, n):
            return [("account", .string(a)), ("email", .string(e)), ("licensingId", .string(l)), ("roles", roles(r)), ("notified", .strings(n))]
        case let .licensingIdRemovedByUser(a, e, l): return [("account", .string(a)), ("email", .string(e)), ("licensingId", .string(l))]
        case let .adminInheritanceOptedOut(a, e, p), let .adminInheritanceOptedIn(a, e, p):
            return [("account", .string(a)), ("email", .string(e)), ("parentId", .string(p))]
        case let .resellerAccessDenied(b, be, e, l, via):
            return opt("by", b) + [("byEmail", .string(be)), ("email", .string(e)), ("licensingId", .string(l)), ("via", .string(via.rawValue))]
        case let .openLicenseAccessDenied(b, e, l): return [("by", .string(b)), ("email", .string(e)), ("licensingId", .string(l))]
        case let .legacyPermissionMigrated(s, lr, e, l, r, sa):
            return [("source", .string(s)), ("legacyRole", .string(lr)), ("email", .string(e)), ("licensingId", .string(l)), ("roles", roles(r))] + benefits(sa)
        case let .subjectErased(subject, basis): return [("subject", .string(subject)), ("legalBasis", .string(basis.rawValue))]
        }
    }
}

/// An event read from the export form, before it is appended.
public struct ImportedEvent: Sendable, Equatable {
    /// The seq it claims, when given (must match where it lands).
    public var seq: UInt64?
    /// Its id (a new one when the input had none).
    public var id: UUID
    /// When it happened.
    public var at: Timestamp
    /// The payload.
    public var event: DomainEvent
    /// The hash it claims, when given (must match what the chain computes).
    public var hash: [UInt8]?
    /// How the chain holds its personal fields, when the export is of a format-2 ledger.
    public var sealed: [ChainField]?

    /// An event to import: `seq` and `hash`, when given, must match where it lands.
    public init(seq: UInt64? = nil, id: UUID, at: Timestamp, event: DomainEvent, hash: [UInt8]? = nil, sealed: [ChainField]? = nil) {
        self.seq = seq
        self.id = id
        self.at = at
        self.event = event
        self.hash = hash
        self.sealed = sealed
    }

    /// Parses one export-form object; throws `InputError` naming the field.
    public init(json: JSONValue) throws {
        var f = try Fields(json, what: "an event")
        seq = try f.uint("seq")
        if let idText = try f.optionalString("id") {
            guard let id = UUID(uuidString: idText) else { throw InputError(field: "id", "\(InputError.quote(idText)) is not a UUID") }
            self.id = id
        } else {
            id = UUID()
        }
        let type = try f.string("type")
        at = try f.time("at")
        if let h = try f.optionalString("hash") {
            guard let bytes = Hex.decode(h), bytes.count == 32 else { throw InputError(field: "hash", "must be 64 hex digits") }
            hash = bytes
        }
        if let value = f.raw("sealed") {
            guard case let .array(items) = value else { throw InputError(field: "sealed", "must be an array of sealed fields") }
            sealed = try items.enumerated().map { try ChainField.parse($1, index: $0) }
        }
        event = try DomainEvent.parse(type: type, fields: &f, erasedAllowed: sealed != nil)
        try f.finish("a \(type) event")
    }
}

extension DomainEvent {
    /// `erasedAllowed`: an export of a format-2 ledger, where an erased value reads
    /// `erased:PSEUDONYM` in place of an email or an account.
    static func parse(type: String, fields f: inout Fields, erasedAllowed: Bool = false) throws -> DomainEvent {
        func erased(_ raw: String) -> Bool {
            erasedAllowed && raw.hasPrefix("erased:") && Pseudonym(hex: String(raw.dropFirst(7)))?.description == String(raw.dropFirst(7))
        }
        func email(_ name: String) throws -> String {
            let raw = try f.string(name)
            if erased(raw) { return raw }
            guard let e = Normalize.email(raw) else { throw InputError(field: name, "\(InputError.quote(raw)) is not a business email") }
            return e
        }
        func account(_ name: String) throws -> String {
            let raw = try f.string(name)
            if erased(raw) { return raw }
            guard let a = Normalize.account(raw) else { throw InputError(field: name, "must be 1–254 characters") }
            return a
        }
        func roles(_ name: String = "roles") throws -> [Role] { (try f.values(name, Role.self) ?? []).canonical }
        func benefits() throws -> [SABenefit] { (try f.values("saBenefits", SABenefit.self, required: false) ?? []).canonical }
        func emails(_ name: String) throws -> [String] {
            try (f.strings(name) ?? []).map { raw in
                if erased(raw) { return raw }
                guard let e = Normalize.email(raw) else { throw InputError(field: name, "\(InputError.quote(raw)) is not a business email") }
                return e
            }
        }
        switch type {
        case "userRegistered": return .userRegistered(account: try account("account"), businessEmail: try email("businessEmail"))
        case "businessEmailValidated": return .businessEmailValidated(account: try account("account"), email: try email("email"))
        case "profileCompleted":
            return .profileCompleted(account: try account("account"), firstName: try f.string("firstName"), lastName: try f.string("lastName"))
        case "agreementRecorded":
            let lid = try f.string("licensingId")
            let program = try f.value("program", Program.self)
            let parent = try f.optionalString("parent")
            let status = try f.optionalValue("status", Status.self) ?? .active
            let contacts = try f.contacts().map { Contact(type: $0.type, email: $0.email) }
            let available = try roles("availableRoles")
            var hash: [UInt8]?
            if let h = try f.optionalString("authorizationHash") {
                guard let bytes = Hex.decode(h), bytes.count == 32 else { throw InputError(field: "authorizationHash", "must be 64 hex digits") }
                hash = bytes
            }
            return .agreementRecorded(.init(licensingId: lid, program: program, parent: parent, status: status, contacts: contacts,
                                            availableRoles: available, authorizationHash: hash, keyId: try f.optionalString("keyId"),
                                            resellerEmail: try f.optionalString("resellerEmail")))
        case "resellerAutoGranted": return .resellerAutoGranted(email: try email("email"), licensingId: try f.string("licensingId"), roles: try roles())
        case "licensingIdStatusChanged": return .licensingIdStatusChanged(licensingId: try f.string("licensingId"), status: try f.value("status", Status.self))
        case "rolesGranted":
            return .rolesGranted(by: try account("by"), email: try email("email"), licensingId: try f.string("licensingId"),
                                 roles: try roles(), saBenefits: try benefits())
        case "rolesRevoked":
            return .rolesRevoked(by: try account("by"), email: try email("email"), licensingId: try f.string("licensingId"), roles: try roles())
        case "permissionsRequested":
            return .permissionsRequested(.init(requestId: try f.string("requestId"), account: try account("account"), email: try email("email"),
                                               licensingId: try f.string("licensingId"), roles: try roles(), saBenefits: try benefits(),
                                               comment: try f.optionalString("comment"), routedTo: try emails("routedTo")))
        case "permissionRequestApproved":
            return .permissionRequestApproved(by: try account("by"), requestId: try f.string("requestId"), email: try email("email"),
                                              licensingId: try f.string("licensingId"), roles: try roles(), saBenefits: try benefits())
        case "permissionRequestDenied":
            return .permissionRequestDenied(by: try account("by"), requestId: try f.string("requestId"), reason: try f.optionalString("reason"))
        case "openLicenseAttemptFailed":
            return .openLicenseAttemptFailed(account: try account("account"), licenseNumber: try f.string("licenseNumber"),
                                             reason: try f.value("reason", AttemptFailure.self))
        case "openLicenseAdded":
            return .openLicenseAdded(account: try account("account"), email: try email("email"), licensingId: try f.string("licensingId"),
                                     roles: try roles(), notified: try emails("notified"))
        case "licensingIdRemovedByUser":
            return .licensingIdRemovedByUser(account: try account("account"), email: try email("email"), licensingId: try f.string("licensingId"))
        case "adminInheritanceOptedOut":
            return .adminInheritanceOptedOut(account: try account("account"), email: try email("email"), parentId: try f.string("parentId"))
        case "adminInheritanceOptedIn":
            return .adminInheritanceOptedIn(account: try account("account"), email: try email("email"), parentId: try f.string("parentId"))
        case "resellerAccessDenied":
            let by = try f.optionalString("by").map { raw -> String in
                guard let a = Normalize.account(raw) else { throw InputError(field: "by", "must be 1–254 characters") }
                return a
            }
            return .resellerAccessDenied(by: by, byEmail: try email("byEmail"), email: try email("email"),
                                         licensingId: try f.string("licensingId"), via: try f.value("via", DenyVia.self))
        case "openLicenseAccessDenied":
            return .openLicenseAccessDenied(by: try account("by"), email: try email("email"), licensingId: try f.string("licensingId"))
        case "legacyPermissionMigrated":
            return .legacyPermissionMigrated(source: try f.string("source"), legacyRole: try f.string("legacyRole"), email: try email("email"),
                                             licensingId: try f.string("licensingId"), roles: try roles(), saBenefits: try benefits())
        case "subjectErased":
            let subject = try f.string("subject")
            guard let p = Pseudonym(hex: subject) else { throw InputError(field: "subject", "must be a pseudonym of 32 hex digits") }
            return .subjectErased(subject: p.description, legalBasis: try f.value("legalBasis", LegalBasis.self))
        default:
            throw InputError(field: "type", InputError.unknown("event type", type, known: typeNames))
        }
    }
}
