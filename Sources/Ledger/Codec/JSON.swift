/// A JSON value with object keys kept in their order.
///
/// This library reads and writes JSON itself rather than through Foundation so that it
/// can be strict where it matters for a ledger: duplicate keys, lone surrogates, invalid
/// UTF-8, excessive nesting and integers beyond 2^53 are all refused with a message that
/// says where.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// A number: `text` is its literal form; `int` is set when it is an integer within ±2^53.
    case number(text: String, int: Int64?)
    case string(String)
    case array([JSONValue])
    /// An object with keys in document order.
    case object([(key: String, value: JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x, _), .number(y, _)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// An integer value.
    public static func int(_ v: Int64) -> JSONValue { .number(text: String(v), int: v) }
    /// An unsigned integer value.
    public static func uint(_ v: UInt64) -> JSONValue { .number(text: String(v), int: v <= UInt64(Int64.max) ? Int64(v) : nil) }
    /// An array of strings.
    public static func strings(_ v: [String]) -> JSONValue { .array(v.map { .string($0) }) }

    /// The value under `key` of an object, nil otherwise.
    public subscript(key: String) -> JSONValue? {
        if case let .object(fields) = self { return fields.first { $0.key == key }?.value }
        return nil
    }

    /// A short description of the value's type, for error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Compact JSON text.
    public var text: String {
        var out = ""
        write(to: &out)
        return out
    }

    /// Appends compact JSON text to `out`.
    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let text, _): out += text
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (i, field) in fields.enumerated() {
                if i > 0 { out += "," }
                JSONValue.writeString(field.key, to: &out)
                out += ":"
                field.value.write(to: &out)
            }
            out += "}"
        }
    }

    /// Indented JSON text (two spaces), for people.
    public func pretty(indent: String = "") -> String {
        switch self {
        case .array(let items) where !items.isEmpty:
            let inner = indent + "  "
            return "[\n" + items.map { inner + $0.pretty(indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let fields) where !fields.isEmpty:
            let inner = indent + "  "
            return "{\n" + fields.map { inner + JSONValue.string($0.key).text + ": " + $0.value.pretty(indent: inner) }
                .joined(separator: ",\n") + "\n\(indent)}"
        default:
            return text
        }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                let v = scalar.value
                // Control characters, line separators and bidirectional overrides are
                // written escaped: equivalent JSON that can't reorder or hide text on a terminal.
                if v < 0x20 || v == 0x7F || (0x80 ... 0x9F).contains(v) || (0x2028 ... 0x2029).contains(v) || (0x202A ... 0x202E).contains(v)
                    || (0x2066 ... 0x2069).contains(v) || v == 0x200E || v == 0x200F || v == 0x061C {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

/// Why a JSON text was refused, and where.
public struct JSONParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong.
    public let message: String
    /// The byte offset (0-based) where it was found.
    public let offset: Int
    public var description: String { "invalid JSON at byte \(offset + 1): \(message)" }
}

/// A strict JSON parser (RFC 8259) with limits.
public struct JSONParser {
    /// The deepest nesting accepted.
    public static let maxDepth = 64

    private let bytes: [UInt8]
    private var i = 0

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Parses exactly one JSON value (surrounding whitespace allowed).
    public static func parse(_ text: some Collection<UInt8>) throws(JSONParseError) -> JSONValue {
        var p = JSONParser(Array(text))
        p.skipSpace()
        let value = try p.parseValue(depth: 0)
        p.skipSpace()
        if p.i != p.bytes.count { throw p.fail("unexpected text after the value") }
        return value
    }

    /// Parses exactly one JSON value from a string.
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8))
    }

    private func fail(_ message: String) -> JSONParseError { JSONParseError(message: message, offset: i) }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard i < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0") ... UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected character '\(Self.show(bytes[i]))'")
        }
    }

    private static func show(_ b: UInt8) -> String {
        b >= 0x20 && b < 0x7F ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
    }

    private mutating func literal(_ word: String) throws(JSONParseError) {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i ..< i + w.count]) == w else { throw fail("invalid literal") }
        i += w.count
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > Self.maxDepth { throw fail("nesting deeper than \(Self.maxDepth)") }
        i += 1
        var fields: [(key: String, value: JSONValue)] = []
        var seen = Set<String>()
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a key string") }
            let keyAt = i
            let key = try parseString()
            if !seen.insert(key).inserted { throw JSONParseError(message: "duplicate key \"\(key)\"", offset: keyAt) }
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            i += 1
            skipSpace()
            let value = try parseValue(depth: depth)
            fields.append((key, value))
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of input in an object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > Self.maxDepth { throw fail("nesting deeper than \(Self.maxDepth)") }
        i += 1
        var items: [JSONValue] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try parseValue(depth: depth))
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of input in an array") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0 ..< 4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0") ... UInt8(ascii: "9"): d = UInt32(c - 48)
            case UInt8(ascii: "a") ... UInt8(ascii: "f"): d = UInt32(c - 87)
            case UInt8(ascii: "A") ... UInt8(ascii: "F"): d = UInt32(c - 55)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        i += 1
        var scalars = String.UnicodeScalarView()
        var runStart = i
        func flushRun(_ p: inout JSONParser, _ scalars: inout String.UnicodeScalarView, upTo end: Int) throws(JSONParseError) {
            if end > runStart {
                guard let s = String(validating: p.bytes[runStart ..< end], as: UTF8.self) else {
                    throw JSONParseError(message: "invalid UTF-8 in a string", offset: runStart)
                }
                scalars.append(contentsOf: s.unicodeScalars)
            }
        }
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                try flushRun(&self, &scalars, upTo: i)
                i += 1
                return String(scalars)
            }
            if c < 0x20 { throw fail("control character in a string (escape it)") }
            if c == UInt8(ascii: "\\") {
                try flushRun(&self, &scalars, upTo: i)
                i += 1
                guard i < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    let u = try hex4()
                    if (0xD800 ... 0xDBFF).contains(u) {
                        guard i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail("lone surrogate \\u\(String(u, radix: 16))")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00 ... 0xDFFF).contains(low) else { throw fail("lone surrogate \\u\(String(u, radix: 16))") }
                        let scalar = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00)
                        guard let us = Unicode.Scalar(scalar) else { throw fail("invalid code point") }
                        scalars.append(us)
                    } else if (0xDC00 ... 0xDFFF).contains(u) {
                        throw fail("lone surrogate \\u\(String(u, radix: 16))")
                    } else {
                        guard let us = Unicode.Scalar(u) else { throw fail("invalid code point") }
                        scalars.append(us)
                    }
                default: throw fail("invalid escape '\\\(Self.show(e))'")
                }
                runStart = i
                continue
            }
            i += 1
        }
    }

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.i
            while p.i < p.bytes.count, p.bytes[p.i] >= 48, p.bytes[p.i] <= 57 { p.i += 1 }
            return p.i - s
        }
        guard i < bytes.count else { throw fail("truncated number") }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else if digits(&self) == 0 {
            throw fail("invalid number")
        }
        var isInteger = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            if digits(&self) == 0 { throw fail("invalid number fraction") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            if digits(&self) == 0 { throw fail("invalid number exponent") }
        }
        let text = String(decoding: bytes[start ..< i], as: UTF8.self)
        var int: Int64?
        if isInteger, let v = Int64(text), v >= -(1 << 53), v <= (1 << 53) { int = v }
        return .number(text: text, int: int)
    }
}
