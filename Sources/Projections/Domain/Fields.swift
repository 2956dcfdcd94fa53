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
        // Messages quote the offending value shortened (`quote`); this cap is a last guard.
        self.message = message.count > 2_000 ? String(message.prefix(2_000)) + "… (truncated)" : message
    }
    public var description: String { field.isEmpty ? message : "field '\(field)': \(message)" }

    /// A time outside the range the ledger accepts (`Timestamp.earliest` … `latest`).
    static func outOfRange(_ t: Timestamp) -> InputError {
        InputError(field: "at", "\(t.seconds) seconds since 1970 is outside the times the ledger accepts (\(Timestamp.earliest) … \(Timestamp.latest))")
    }

    /// `'value'`, shortened to 60 characters: a hostile value must not flood the output,
    /// and the rest of the message (what is expected) must still be read.
    static func quote(_ value: String) -> String {
        "'" + (value.count > 60 ? String(value.prefix(60)) + "…" : value) + "'"
    }

    /// "unknown NOUN 'x' (did you mean 'y'?); expected one of: …" for a name not in `known`.
    static func unknown(_ noun: String, _ value: String, known: [String]) -> String {
        var text = "unknown \(noun) \(quote(value))"
        if let near = Spelling.nearest(value, among: known) { text += " (did you mean '\(near)'?)" }
        return text + "; expected one of: " + known.joined(separator: ", ")
    }
}

/// Suggestions for mistyped names (commands, flags, values).
package enum Spelling {
    /// The name of `candidates` nearest to `word` (case-insensitive edit distance, or a
    /// prefix), when it is near enough to be what was meant; nil otherwise.
    package static func nearest(_ word: String, among candidates: [String]) -> String? {
        let w = Array(word.lowercased().unicodeScalars.prefix(64))
        guard !w.isEmpty else { return nil }
        var best: (name: String, distance: Int)?
        for candidate in candidates {
            let c = Array(candidate.lowercased().unicodeScalars)
            var d = distance(w, c)
            if c.starts(with: w) && w.count >= 3 { d = min(d, 1) }
            if best == nil || d < best?.distance ?? .max { best = (candidate, d) }
        }
        guard let best else { return nil }
        let allowed = max(1, min(3, w.count / 3))
        return best.distance <= allowed ? best.name : nil
    }

    /// Levenshtein distance, with a transposition of neighbours counting as one edit.
    static func distance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var before = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0 ... b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1 ... a.count {
            current[0] = i
            for j in 1 ... b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var d = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] { d = min(d, before[j - 2] + 1) }
                current[j] = d
            }
            (before, previous, current) = (previous, current, before)
        }
        return previous[b.count]
    }
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
        guard let t = Timestamp(iso8601: s) else { throw InputError(field: name, "\(InputError.quote(s)) is not a time of the form YYYY-MM-DDTHH:MM:SSZ") }
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
            throw InputError(field: field, InputError.unknown("value", s, known: E.allCases.map(\.rawValue)))
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
