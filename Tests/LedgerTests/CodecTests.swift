import Foundation
@testable import Ledger
import Testing

@Suite("Timestamps")
struct TimestampTests {
    @Test("ISO-8601 round trip", arguments: ["1970-01-01T00:00:00Z", "2026-02-28T23:59:59Z", "2024-02-29T12:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
    func roundTrip(text: String) throws {
        let t = try #require(Timestamp(iso8601: text))
        #expect(t.iso8601 == text)
    }

    @Test("only YYYY-MM-DDTHH:MM:SSZ is accepted", arguments: ["yesterday", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z", "2026-01-01 00:00:00Z",
                                                               "2026-01-01T00:00:00", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00+01:00",
                                                               "2026-01-01T00:00:00.5Z", "", "２０２６-01-01T00:00:00Z", "2026-13-01T00:00:00Z"])
    func rejects(text: String) {
        #expect(Timestamp(iso8601: text) == nil)
    }

    @Test("seconds since the epoch")
    func epoch() {
        #expect(Timestamp(iso8601: "2026-01-01T00:00:00Z")?.seconds == 1_767_225_600)
        #expect(Timestamp(seconds: -1).iso8601 == "1969-12-31T23:59:59Z")
    }

    @Test("the accepted range is what the text form can write; arithmetic and the text form never trap at Int64's ends")
    func range() {
        #expect(Timestamp.earliest == Timestamp(iso8601: "0001-01-01T00:00:00Z"))
        #expect(Timestamp.latest == Timestamp(iso8601: "9999-12-31T23:59:59Z"))
        #expect(Timestamp.earliest.isInLedgerRange && Timestamp.latest.isInLedgerRange)
        #expect(!Timestamp.earliest.subtracting(seconds: 1).isInLedgerRange)
        #expect(!Timestamp.latest.adding(seconds: 1).isInLedgerRange)
        // these trapped before (seconds - 86399 near Int64.min; a wrapping add)
        let ends = [Timestamp(seconds: .min), Timestamp(seconds: .max), Timestamp(seconds: .min + 1)]
        for t in ends { #expect(!t.iso8601.isEmpty && !t.isInLedgerRange) }
        #expect(Timestamp(seconds: .max).adding(seconds: 86_400) == Timestamp(seconds: .max))
        #expect(Timestamp(seconds: .min).adding(seconds: -1) == Timestamp(seconds: .min))
        #expect(Timestamp(seconds: .min).subtracting(seconds: 86_400) == Timestamp(seconds: .min))
        #expect(Timestamp(seconds: .max).subtracting(seconds: -1) == Timestamp(seconds: .max))
        #expect(Timestamp(seconds: 10).subtracting(seconds: 3) == Timestamp(seconds: 7))
    }
}

@Suite("Strict JSON")
struct JSONTests {
    @Test("refusals", arguments: [
        #"{"a":1,"a":2}"#, #"{"a":"\ud800"}"#, #"{"a":"\udc00x"}"#, String(repeating: "[", count: 1_000) + String(repeating: "]", count: 1_000),
        "{not json}", #"{"a":01}"#, #"{"a":1,}"#, "{\"a\":\"tab\there\"}", "[1 2]", #""abc"#, "tru", "{}x",
    ])
    func refuses(text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test("invalid UTF-8 is refused")
    func invalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
    }

    @Test("values, escapes and big numbers")
    func values() throws {
        let v = try JSONParser.parse(#"{"s":"a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00","n":-12,"big":9007199254740993,"f":1.5e3,"b":true,"z":null,"a":[1,"x"]}"#)
        #expect(v["s"] == .string("a\"\\/\u{08}\u{0C}\n\r\té😀"))
        #expect(v["n"] == .int(-12))
        if case let .number(text, int)? = v["big"] { #expect(text == "9007199254740993" && int == nil) } else { Issue.record("big") }
        if case let .number(_, int)? = v["f"] { #expect(int == nil) } else { Issue.record("f") }
        #expect(v["b"] == .bool(true))
        #expect(v["z"] == .null)
        // writing escapes control characters and round-trips
        let s = JSONValue.string("nul\u{0}esc\u{1B}[31m\u{2028}")
        #expect(try JSONParser.parse(s.text) == s)
        #expect(!s.text.contains("\u{1B}"))
    }
}

@Suite("Binary codec")
struct BinaryCodecTests {
    @Test("varints, strings and bounds")
    func roundTrip() throws {
        var w = BinaryWriter()
        let values: [UInt64] = [0, 1, 127, 128, 300, 1 << 35, .max]
        for v in values { w.writeVarint(v) }
        w.write("héllo")
        w.write(nil as String?)
        w.write(UUID(uuidString: "6BA7B810-9DAD-11D1-80B4-00C04FD430C8") ?? UUID())
        let bytes = w.bytes
        try bytes.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) throws in
            var r = BinaryReader(buffer)
            for v in values { #expect(try r.readVarint() == v) }
            #expect(try r.readString() == "héllo")
            #expect(try r.readOptionalString() == nil)
            #expect(try r.readUUID().uuidString == "6BA7B810-9DAD-11D1-80B4-00C04FD430C8")
            #expect(r.isAtEnd)
            #expect(throws: LedgerDecodingError.self) { try r.readUInt8() }
        }
        // a length claiming more than is left is refused
        [UInt8(0x05), 0x61].withUnsafeBytes { buffer in
            var r = BinaryReader(buffer)
            #expect(throws: LedgerDecodingError.self) { try r.readString() }
        }
        // an overlong varint is refused
        [UInt8](repeating: 0xFF, count: 11).withUnsafeBytes { buffer in
            var r = BinaryReader(buffer)
            #expect(throws: LedgerDecodingError.self) { try r.readVarint() }
        }
    }
}

@Suite("Key order")
struct KeyOrderTests {
    @Test("KeyOrder.precedes orders bytes as LMDB does: unsigned, a prefix first")
    func matchesLexicographic() {
        var rng = SystemRandomNumberGenerator()
        var disagreements = 0
        for _ in 0 ..< 20_000 {
            // short keys over few symbols, so equal prefixes and prefixes of each other are common
            let a = (0 ..< Int.random(in: 0 ... 4, using: &rng)).map { _ in [0, 1, 0x7F, 0x80, 0xFF][Int.random(in: 0 ..< 5, using: &rng)] as UInt8 }
            let b = (0 ..< Int.random(in: 0 ... 4, using: &rng)).map { _ in [0, 1, 0x7F, 0x80, 0xFF][Int.random(in: 0 ..< 5, using: &rng)] as UInt8 }
            if KeyOrder.precedes(a, b) != a.lexicographicallyPrecedes(b) { disagreements += 1 }
        }
        #expect(disagreements == 0)
        #expect(KeyOrder.precedes([0x7F], [0x80]) && !KeyOrder.precedes([0x80], [0x7F]))
        #expect(KeyOrder.precedes([1], [1, 0]) && !KeyOrder.precedes([1, 0], [1]) && !KeyOrder.precedes([], []))
    }
}
