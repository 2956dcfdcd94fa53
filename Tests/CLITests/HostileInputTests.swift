import Foundation
import Testing

/// Hostile input through `exec` and `append`: malformed input is refused whole with exit 2
/// naming the line; odd but well-formed values meet the rules or are stored faithfully.
@Suite("Hostile input")
struct HostileInputTests {
    typealias Run = CLITests.Run
    static let at = "2026-09-01T00:00:00Z"

    func ledger() throws -> CLITests.Dir {
        let d = CLITests.Dir()
        #expect(try CLITests.run(["init", d.path]).status == 0)
        return d
    }

    func run(_ args: [String], bytes: [UInt8]) throws -> Run { try CLITests.run(args, bytes: bytes) }

    static let valid = #"{"command":"registerUser","at":"2026-09-01T00:00:00Z","account":"ok","businessEmail":"ok@t.com"}"#

    static let malformedCommands: [(String, [UInt8])] = [
        ("invalid UTF-8", Array(#"{"command":"registerUser","at":"2026-09-01T00:00:00Z","account":"a"#.utf8) + [0xC3, 0x28] + Array(#"","businessEmail":"a@t.com"}"#.utf8)),
        ("lone surrogate", Array(#"{"command":"registerUser","at":"2026-09-01T00:00:00Z","account":"\ud800","businessEmail":"a@t.com"}"#.utf8)),
        ("duplicate keys", Array(#"{"command":"registerUser","at":"2026-09-01T00:00:00Z","account":"a","account":"b","businessEmail":"a@t.com"}"#.utf8)),
        ("nesting depth 1,000", Array((#"{"command":"registerUser","at":"2026-09-01T00:00:00Z","account":"a","businessEmail":"a@t.com","x":"# + String(repeating: "[", count: 1_000) + String(repeating: "]", count: 1_000) + "}").utf8)),
        ("a number beyond 2^53 where a string belongs", Array(#"{"command":"validateEmail","at":"2026-09-01T00:00:00Z","account":9007199254740993}"#.utf8)),
        ("a 10 MiB line of garbage", Array(repeating: UInt8(ascii: "x"), count: 10 << 20)),
        ("a 10 MiB unknown field", Array((#"{"command":"validateEmail","at":"2026-09-01T00:00:00Z","account":"a","junk":""# + String(repeating: "y", count: 10 << 20) + "\"}").utf8)),
        ("a time with a fraction", Array(#"{"command":"validateEmail","at":"2026-09-01T00:00:00.000Z","account":"a"}"#.utf8)),
        ("a time with an offset", Array(#"{"command":"validateEmail","at":"2026-09-01T00:00:00+00:00","account":"a"}"#.utf8)),
        ("a date only", Array(#"{"command":"validateEmail","at":"2026-09-01","account":"a"}"#.utf8)),
        ("not an object", Array(#"["validateEmail"]"#.utf8)),
        ("an unknown command", Array(#"{"command":"becomeAdmin","at":"2026-09-01T00:00:00Z"}"#.utf8)),
    ]

    @Test("malformed exec input: exit 2 naming the line, nothing written", arguments: malformedCommands.map(\.0))
    func malformedExec(name: String) throws {
        let bytes = Self.malformedCommands.first { $0.0 == name }?.1 ?? []
        let d = try ledger()
        let r = try run(["exec", d.path], bytes: Array(Self.valid.utf8) + [10] + bytes + [10])
        #expect(r.status == 2, "\(name): exit \(r.status)")
        #expect(r.err.contains("stdin:2: "), "\(name): \(r.err.prefix(300))")
        #expect(!r.err.contains("stdin:1:"))
        #expect(r.err.utf8.count < 4_000, "the message should not echo a huge line")
        #expect(try CLITests.run(["stats", d.path, "--json"]).out.hasPrefix(#"{"events":0,"#))
    }

    static let malformedEvents: [(String, String)] = [
        ("unknown event type", #"{"type":"adminGranted","at":"2026-09-01T00:00:00Z","email":"a@t.com"}"#),
        ("seq beyond 2^53", #"{"seq":9007199254740993,"type":"userRegistered","at":"2026-09-01T00:00:00Z","account":"a","businessEmail":"a@t.com"}"#),
        ("a bad time", #"{"type":"userRegistered","at":"2026-09-01T25:00:00Z","account":"a","businessEmail":"a@t.com"}"#),
        ("a bad id", #"{"id":"not-a-uuid","type":"userRegistered","at":"2026-09-01T00:00:00Z","account":"a","businessEmail":"a@t.com"}"#),
        ("a bad hash", #"{"type":"userRegistered","at":"2026-09-01T00:00:00Z","account":"a","businessEmail":"a@t.com","hash":"xyz"}"#),
        ("a field of another type", #"{"type":"userRegistered","at":"2026-09-01T00:00:00Z","account":"a","businessEmail":"a@t.com","roles":["administrator"]}"#),
        ("an unknown role", #"{"type":"rolesGranted","at":"2026-09-01T00:00:00Z","by":"a","email":"a@t.com","licensingId":"E","roles":["root"]}"#),
    ]

    @Test("malformed append input: exit 2 naming the line, nothing written", arguments: malformedEvents.map(\.0))
    func malformedAppend(name: String) throws {
        let line = Self.malformedEvents.first { $0.0 == name }?.1 ?? ""
        let d = try ledger()
        let ok = #"{"type":"userRegistered","at":"2026-09-01T00:00:00Z","account":"ok","businessEmail":"ok@t.com"}"#
        let r = try CLITests.run(["append", d.path], stdin: ok + "\n" + line + "\n")
        #expect(r.status == 2, "\(name)")
        #expect(r.err.contains("stdin:2: "), "\(name): \(r.err)")
        #expect(try CLITests.run(["stats", d.path, "--json"]).out.hasPrefix(#"{"events":0,"#))
        let empty = try CLITests.run(["append", d.path], stdin: "")
        #expect(empty.status == 0)
        #expect(empty.err == "note: the input holds no events; nothing was appended\n")
    }

    @Test("odd but well-formed values: the rule's refusal, or stored byte for byte and escaped for people")
    func oddValues() throws {
        let d = try ledger()
        let weird = "Zoë\u{0}\u{1B}[2J\u{202E}evil"
        var lines = [Self.valid, #"{"command":"validateEmail","at":"2026-09-01T00:00:00Z","account":"ok"}"#]
        lines.append(JSONLine.profile(account: "ok", first: String(repeating: "n", count: 2_000), last: "L"))
        lines.append(JSONLine.profile(account: "ok", first: weird, last: "L"))
        lines.append(JSONLine.profile(account: "ok", first: String(repeating: "m", count: 10 << 20), last: "L"))
        let r = try CLITests.run(["exec", d.path], stdin: lines.joined(separator: "\n"))
        #expect(r.status == 0)
        let results = r.out.split(separator: "\n")
        #expect(results.count == 5)
        #expect(results[2].contains(#""error":"invalidName""#))
        #expect(results[3].contains(#""ok":true"#))
        #expect(results[4].contains(#""error":"invalidName""#))
        // stored faithfully: the export parses back to the same string
        let export = try CLITests.run(["export", d.path]).out
        #expect(export.contains(#"Zo\#u{eb}\u0000\u001b[2J\u202eevil"#))
        // escaped for people
        let human = try CLITests.run(["events", d.path, "--type", "profileCompleted"]).out
        #expect(!human.contains("\u{1B}") && !human.contains("\u{202E}") && !human.contains("\u{0}"))
        #expect(human.contains(#"firstName=Zoë\u{0}\u{1b}[2J\u{202e}evil"#))
    }
}

enum JSONLine {
    static func profile(account: String, first: String, last: String) -> String {
        var s = ""
        for scalar in first.unicodeScalars {
            switch scalar.value {
            case 0x22: s += "\\\""
            case 0x5C: s += "\\\\"
            case 0 ..< 0x20, 0x202E: s += String(format: "\\u%04x", scalar.value)
            default: s.unicodeScalars.append(scalar)
            }
        }
        return #"{"command":"completeProfile","at":"2026-09-01T00:00:00Z","account":"\#(account)","firstName":"\#(s)","lastName":"\#(last)"}"#
    }
}

@Suite("Secrets through the CLI")
struct CLISecretTests {
    @Test("1,000 authorization numbers appear in no CLI output, export or ledger file")
    func noAuthorizationNumbersInOutput() throws {
        let d = CLITests.Dir()
        #expect(try CLITests.run(["init", d.path]).status == 0)
        var lines = [
            #"{"command":"registerUser","at":"2026-09-01T00:00:00Z","account":"u","businessEmail":"u@t.com"}"#,
            #"{"command":"validateEmail","at":"2026-09-01T00:00:00Z","account":"u"}"#,
            #"{"command":"completeProfile","at":"2026-09-01T00:00:00Z","account":"u","firstName":"U","lastName":"U"}"#,
        ]
        let numbers = (0 ..< 1_000).map { "AUTHZ-\($0)-\(UUID().uuidString.prefix(6))" }
        for (i, n) in numbers.enumerated() {
            lines.append(#"{"command":"recordAgreement","at":"2026-09-01T00:00:00Z","licensingId":"OL-\#(i)","program":"openLicense","contacts":[{"type":"primaryContact","email":"u@t.com"}],"authorizationNumber":"\#(n)"}"#)
        }
        for i in 0 ..< 5 {  // right and wrong numbers, a lockout
            lines.append(#"{"command":"addOpenLicense","at":"2026-09-01T00:00:00Z","account":"u","licenseNumber":"OL-\#(i)","authorizationNumber":"\#(numbers[i + (i % 2)])","acknowledged":true}"#)
        }
        var output = ""
        for args in [["exec", d.path], ["events", d.path], ["events", d.path, "--json"], ["export", d.path], ["stats", d.path],
                     ["permissions", d.path, "--account", "u", "--json"], ["explain", d.path, "--email", "u@t.com", "--licensing-id", "OL-1"],
                     ["lockout", d.path, "--account", "u", "--at", "2026-09-01T00:00:00Z"], ["verify", d.path]] {
            let r = try CLITests.run(args, stdin: args[0] == "exec" ? lines.joined(separator: "\n") : nil)
            #expect(r.status == 0, "\(args[0]): \(r.err)")
            output += r.out + r.err
        }
        var files = Data()
        for name in try FileManager.default.contentsOfDirectory(atPath: d.path) {
            files.append(FileManager.default.contents(atPath: d.path + "/" + name) ?? Data())
        }
        #expect(output.contains("openLicenseAttemptFailed"))
        let outputBytes = Data(output.utf8)
        for n in numbers {
            let needle = Data(n.utf8)
            #expect(outputBytes.range(of: needle) == nil, "\(n) printed")
            #expect(files.range(of: needle) == nil, "\(n) stored")
        }
    }
}
