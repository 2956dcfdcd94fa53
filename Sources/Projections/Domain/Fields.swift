import Ledger

/// Malformed input: which field is wrong and why. Not a refusal by a rule but bad input
/// (exit 2 in `ledger-tool`).
public struct InputError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The field (or `command`/`type`) at fault; empty when the whole value is wrong.
    public let field: String
    /// What is wrong and what is expected.
    public let message: String
    /// Creates an input error.
    public init(field: String, _ message: String) {
        self.field = field
        // Messages quote the offending value; a hostile value must not flood the output.
        self.message = message.count > 300 ? String(message.prefix(300)) + "… (truncated)" : message
    }
    public var description: String { field.isEmpty ? message : "field '\(field)': \(message)" }
}

/// Reads typed fields out of a JSON object, collecting precise errors and refusing fields
/// it was never asked about.
struct Fields {
    let object: [(key: String, value: JSONValue)]
    private var used: Set<String> = []

    init(_ value: JSONValue, what: String) throws {
        guard case let .object(fields) = value else { throw InputError(field: "", "expected a JSON object for \(what), got \(value.typeName)") }
        object = fields
    }

    mutating func raw(_ name: String) -> JSONValue? {
        used.insert(name)
        guard let v = object.first(where: { $0.key == name })?.value else { return nil }
        if case .null = v { return nil }
        return v
    }

    mutating func string(_ name: String) throws -> String {
        guard let v = try optionalString(name) else { throw InputError(field: name, "is required") }
        return v
    }

    mutating func optionalString(_ name: String) throws -> String? {
        guard let v = raw(name) else { return nil }
        guard case let .string(s) = v else { throw InputError(field: name, "must be a string, got \(v.typeName)") }
        return s
    }

    mutating func bool(_ name: String) throws -> Bool {
        guard let v = raw(name) else { throw InputError(field: name, "is required") }
        guard case let .bool(b) = v else { throw InputError(field: name, "must be true or false, got \(v.typeName)") }
        return b
    }

    mutating func uint(_ name: String) throws -> UInt64? {
        guard let v = raw(name) else { return nil }
        guard case let .number(_, int) = v, let int, int >= 0 else {
            throw InputError(field: name, "must be a non-negative integer no larger than 2^53")
        }
        return UInt64(int)
    }

    mutating func time(_ name: String) throws -> Timestamp {
        let s = try string(name)
        guard let t = Timestamp(iso8601: s) else { throw InputError(field: name, "'\(s)' is not a time of the form YYYY-MM-DDTHH:MM:SSZ") }
        return t
    }

    mutating func value<E: RawRepresentable & CaseIterable>(_ name: String, _ type: E.Type) throws -> E where E.RawValue == String {
        let s = try string(name)
        return try Self.parse(s, E.self, field: name)
    }

    mutating func optionalValue<E: RawRepresentable & CaseIterable>(_ name: String, _ type: E.Type) throws -> E? where E.RawValue == String {
        guard let s = try optionalString(name) else { return nil }
        return try Self.parse(s, E.self, field: name)
    }

    static func parse<E: RawRepresentable & CaseIterable>(_ s: String, _: E.Type, field: String) throws -> E where E.RawValue == String {
        guard let v = E(rawValue: s) else {
            let known = E.allCases.map(\.rawValue).joined(separator: ", ")
            throw InputError(field: field, "unknown value '\(s)'; expected one of: \(known)")
        }
        return v
    }

    mutating func strings(_ name: String, required: Bool = true) throws -> [String]? {
        guard let v = raw(name) else {
            if required { throw InputError(field: name, "is required") }
            return nil
        }
        guard case let .array(items) = v else { throw InputError(field: name, "must be an array of strings, got \(v.typeName)") }
        return try items.map { item in
            guard case let .string(s) = item else { throw InputError(field: name, "must contain strings only, found \(item.typeName)") }
            return s
        }
    }

    mutating func values<E: RawRepresentable & CaseIterable>(_ name: String, _ type: E.Type, required: Bool = true, nonEmpty: Bool = false) throws -> [E]? where E.RawValue == String {
        guard let list = try strings(name, required: required) else { return nil }
        if nonEmpty && list.isEmpty { throw InputError(field: name, "must not be empty") }
        return try list.map { try Self.parse($0, E.self, field: name) }
    }

    /// A required list of `{type, email}` contacts; errors name the element (`contacts[2].type`).
    /// Emails are returned as given.
    mutating func contacts(_ name: String = "contacts") throws -> [(type: ContactType, email: String)] {
        guard let value = raw(name) else { throw InputError(field: name, "is required (an array of {type, email}; may be empty)") }
        guard case let .array(items) = value else { throw InputError(field: name, "must be an array of {type, email}") }
        return try items.enumerated().map { i, item in
            var cf: Fields
            do { cf = try Fields(item, what: "a contact") } catch { throw InputError(field: "\(name)[\(i)]", "must be an object {type, email}") }
            do {
                let c = (type: try cf.value("type", ContactType.self), email: try cf.string("email"))
                try cf.finish("a contact")
                return c
            } catch let e as InputError {
                throw InputError(field: "\(name)[\(i)].\(e.field)", e.message)
            }
        }
    }

    /// Refuses any field not read so far.
    func finish(_ what: String) throws {
        for (key, _) in object where !used.contains(key) {
            throw InputError(field: key, "is not a field of \(what)")
        }
    }
}
