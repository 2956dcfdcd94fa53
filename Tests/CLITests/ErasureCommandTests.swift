import Foundation
import _LedgerTestSupport
import Testing

/// `erase` and `upgrade` through the built `ledger-tool` (issue 18): what an operator types and
/// sees, and that no file, export, output or log line holds an erased person's values.
@Suite("ledger-tool erase and upgrade")
struct ErasureCommandTests {
    typealias Dir = CLITests.Dir
    static func run(_ args: [String], stdin: String? = nil) throws -> CLITests.Run { try CLITests.run(args, stdin: stdin) }

    /// Runs the test-support `ledger-harness` built beside `ledger-tool`.
    static func harness(_ args: [String]) throws -> CLITests.Run {
        let p = Process(), out = Pipe(), err = Pipe()
        p.executableURL = URL(fileURLWithPath: (CLITests.tool as NSString).deletingLastPathComponent + "/ledger-harness")
        p.arguments = args
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return CLITests.Run(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
    }

    static let planted = (email: "yolanda.wexford@kestrel-erasure.example", account: "yw-kestrel-account",
                          first: "Yolandrine", last: "Wexfordshire", comment: "for the Kestrel pilot, this week",
                          reason: "Kestrel staff only, sorry")

    /// A story in which the planted person writes one of each kind of personal field and
    /// administers E-KES, until `revoke` is given.
    static func story(revoke: Bool) -> String {
        let p = planted
        var lines = [
            #"{"command":"recordAgreement","at":"2026-09-01T09:00:00Z","licensingId":"E-KES","program":"enterpriseAgreement","contacts":[{"type":"primaryContact","email":"boss@kestrel.example"}]}"#,
            #"{"command":"registerUser","at":"2026-09-01T09:00:00Z","account":"boss","businessEmail":"boss@kestrel.example"}"#,
            #"{"command":"validateEmail","at":"2026-09-01T09:00:00Z","account":"boss"}"#,
            #"{"command":"registerUser","at":"2026-09-01T09:01:00Z","account":"\#(p.account)","businessEmail":"\#(p.email)"}"#,
            #"{"command":"validateEmail","at":"2026-09-01T09:01:00Z","account":"\#(p.account)"}"#,
            #"{"command":"completeProfile","at":"2026-09-01T09:02:00Z","account":"\#(p.account)","firstName":"\#(p.first)","lastName":"\#(p.last)"}"#,
            #"{"command":"grantRoles","at":"2026-09-01T09:03:00Z","by":"boss","email":"\#(p.email)","licensingId":"E-KES","roles":["administrator"]}"#,
            #"{"command":"registerUser","at":"2026-09-01T09:04:00Z","account":"asker","businessEmail":"asker@kestrel.example"}"#,
            #"{"command":"validateEmail","at":"2026-09-01T09:04:00Z","account":"asker"}"#,
            #"{"command":"requestPermissions","at":"2026-09-01T09:05:00Z","requestId":"k-r1","account":"asker","licensingId":"E-KES","roles":["download"],"comment":"asking"}"#,
            #"{"command":"denyRequest","at":"2026-09-01T09:06:00Z","by":"\#(p.account)","requestId":"k-r1","reason":"\#(p.reason)"}"#,
            #"{"command":"requestPermissions","at":"2026-09-01T09:07:00Z","requestId":"k-r2","account":"\#(p.account)","licensingId":"E-KES","roles":["download"],"comment":"\#(p.comment)"}"#,
        ]
        if revoke {
            lines.append(#"{"command":"revokeRoles","at":"2026-09-01T09:08:00Z","by":"boss","email":"\#(p.email)","licensingId":"E-KES","roles":["administrator"]}"#)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// How many string values of the exported events (their facts, not the sealed entries)
    /// are one of `values`.
    static func occurrences(of values: Set<String>, inExport bytes: [UInt8]) -> Int {
        func count(_ value: Any) -> Int {
            switch value {
            case let s as String: return values.contains(s) ? 1 : 0
            case let a as [Any]: return a.reduce(0) { $0 + count($1) }
            case let o as [String: Any]: return o.filter { $0.key != "sealed" }.reduce(0) { $0 + count($1.value) }
            default: return 0
            }
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").reduce(0) { total, line in
            total + count((try? JSONSerialization.jsonObject(with: Data(line.utf8))) ?? [:])
        }
    }

    @Test("erase through the CLI: refusals exit 1 as exec prints them; afterwards no file, export, output or log line holds any form of the values, every hash and checkpoint verifies, and facts show erased:PSEUDONYM")
    func eraseEndToEnd() throws {
        let d = Dir(), work = Dir()
        try FileManager.default.createDirectory(atPath: work.path, withIntermediateDirectories: true)
        #expect(try Self.run(["init", d.path]).status == 0)
        let p = Self.planted
        let values = [p.email, p.account, p.first, p.last, p.comment, p.reason]
        #expect(try Self.run(["exec", d.path], stdin: Self.story(revoke: false)).status == 0)

        // refusals, in DOMAIN's words; nothing appended
        let holding = try Self.run(["erase", d.path, "--email", p.email, "--legal-basis", "consentWithdrawn", "--json"])
        #expect(holding.status == 1)
        #expect(holding.out.hasPrefix(#"{"ok":false,"error":"subjectHoldsAccess","message":"#) && holding.out.hasSuffix(#","seq":[]}"# + "\n"), "\(holding.out)")
        let unknown = try Self.run(["erase", d.path, "--email", "never@seen.example", "--legal-basis", "objection", "--json"])
        #expect(unknown.status == 1 && unknown.out.contains(#""error":"unknownEmail""#), "\(unknown.out)")
        let badBasis = try Self.run(["erase", d.path, "--email", p.email, "--legal-basis", "whim"])
        #expect(badBasis.status == 2 && badBasis.err.contains("legal-basis"), "\(badBasis.err)")
        #expect(try Self.run(["exec", d.path], stdin: Self.story(revoke: true).split(separator: "\n").last.map { $0 + "\n" } ?? "").status == 0)

        // control: before the erasure the export and the outputs hold the values
        let checkpoint = try Self.run(["checkpoint", d.path])
        #expect(checkpoint.status == 0)
        try checkpoint.out.write(toFile: work.path + "/cp.json", atomically: true, encoding: .utf8)
        #expect(try Self.run(["export", d.path, "--to", work.path + "/before.jsonl"]).status == 0)
        let before = try Array(Data(contentsOf: URL(fileURLWithPath: work.path + "/before.jsonl")))
        for v in values { #expect(holds(before, Array(v.utf8)), "control: \(v) in the export before") }
        let eventsBefore = try Self.run(["events", d.path])
        #expect(eventsBefore.out.contains(p.email) && eventsBefore.out.contains(p.reason))

        let erased = try Self.run(["erase", d.path, "--email", p.email.uppercased(), "--legal-basis", "consentWithdrawn", "--json"])
        #expect(erased.status == 0, "\(erased.out)\(erased.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(erased.out.utf8)) as? [String: Any])
        let pseudonym = try #require(json["subject"] as? String)
        #expect(json["ok"] as? Bool == true && (json["seq"] as? [Int])?.count == 1 && pseudonym.count == 32)
        // each occurrence of the person's values in the events before, counted once
        #expect(json["fieldsErased"] as? Int == Self.occurrences(of: Set(values), inExport: before), "\(erased.out)")
        let again = try Self.run(["erase", d.path, "--email", p.email, "--legal-basis", "consentWithdrawn", "--json"])
        #expect(again.status == 1 && again.out.contains(#""error":"alreadyErased""#), "\(again.out)")

        // every question an operator or auditor asks afterwards; their outputs and logs (stderr)
        var outputs: [UInt8] = []
        func ask(_ args: [String], expect status: Int32 = 0) throws -> CLITests.Run {
            let r = try Self.run(args)
            #expect(r.status == status, "\(args): \(r.err)")
            outputs += Array((r.out + r.err).utf8)
            return r
        }
        let events = try ask(["events", d.path])
        #expect(events.out.contains("erased:" + pseudonym) && events.out.contains("subjectErased") && events.out.contains("subject=" + pseudonym + " legalBasis=consentWithdrawn"))
        let access = try ask(["access", d.path, "--licensing-id", "E-KES", "--as-of", "2026-09-01T09:05:00Z", "--json"])
        #expect(access.out.contains("erased:" + pseudonym), "\(access.out)")
        _ = try ask(["history", d.path, "--email", "boss@kestrel.example", "--json"])
        _ = try ask(["diff", d.path, "--from-seq", "1", "--json"])
        _ = try ask(["admins", d.path, "--licensing-id", "E-KES", "--as-of-seq", "7", "--json"])
        _ = try ask(["explain", d.path, "--email", "boss@kestrel.example", "--licensing-id", "E-KES", "--json"])
        // the account no longer resolves (its refusal echoes the name given, so it is not searched)
        let gone = try Self.run(["permissions", d.path, "--account", p.account, "--json"])
        #expect(gone.status == 1 && gone.out.contains("notRegistered"), "\(gone.out)")
        _ = try ask(["watch", d.path, "--once"])
        _ = try ask(["stats", d.path])
        _ = try ask(["verify", d.path])
        _ = try ask(["verify", d.path, "--against", work.path + "/cp.json"])
        _ = try ask(["export", d.path, "--to", work.path + "/after.jsonl"])
        _ = try ask(["verify", "--export", work.path + "/after.jsonl", "--against", work.path + "/cp.json"])
        _ = try ask(["rebuild", d.path])
        // an import of the export reproduces every hash, the erasure included
        let copy = Dir()
        #expect(try Self.run(["init", copy.path]).status == 0)
        _ = try ask(["append", copy.path, work.path + "/after.jsonl"])
        let heads = try [d.path, copy.path].map { path -> [String: Any] in
            let out = try Self.run(["checkpoint", path]).out
            return try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        }
        #expect(heads[0]["seq"] as? Int == heads[1]["seq"] as? Int && heads[0]["headHash"] as? String == heads[1]["headHash"] as? String, "\(heads)")
        #expect(try Self.run(["verify", copy.path, "--against", work.path + "/cp.json"]).status == 0)

        let after = try Array(Data(contentsOf: URL(fileURLWithPath: work.path + "/after.jsonl")))
        let ledgerFiles = filesUnder(d.path) + filesUnder(copy.path)
        #expect(ledgerFiles.contains { $0.0.contains("vault") })
        for v in values {
            for form in plaintextForms(v) {
                let holders = ledgerFiles.filter { holds($0.1, form) }.map(\.0)
                #expect(holders.isEmpty, "\(v) in \(holders)")
                #expect(!holds(after, form), "\(v) in the export after")
                #expect(!holds(outputs, form), "\(v) in an output or a log line")
            }
        }
    }

    @Test("a format-1 ledger is refused by every command but upgrade and verify (exit 2, naming `ledger-tool upgrade`); upgrade writes a format-2 ledger with the same answers and prints both heads")
    func upgradeEndToEnd() throws {
        let old = Dir(), new = Dir(), reference = Dir(), work = Dir()
        // a format-1 ledger as an earlier release wrote it (ledger-tool writes none)
        try FileManager.default.createDirectory(atPath: work.path, withIntermediateDirectories: true)
        try Self.story(revoke: true).write(toFile: work.path + "/story.jsonl", atomically: true, encoding: .utf8)
        let legacy = try Self.harness(["legacy-ledger", old.path, work.path + "/story.jsonl"])
        #expect(legacy.status == 0 && legacy.out.contains("13 accepted"), "\(legacy.out)\(legacy.err)")
        let empty = Dir()
        #expect(try Self.run(["init", empty.path, "--event-format", "1"]).status == 0)
        #expect(try Self.run(["exec", empty.path], stdin: Self.story(revoke: true)).status == 2, "exec refuses a format-1 ledger")
        let line = #"{"command":"validateEmail","at":"2026-09-02T09:00:00Z","account":"boss"}"# + "\n"
        for args in [["permissions", old.path, "--email", "boss@kestrel.example"], ["exec", old.path], ["erase", old.path, "--email", "boss@kestrel.example", "--legal-basis", "objection"],
                     ["events", old.path], ["export", old.path, "--to", old.path + "/x.jsonl"], ["rebuild", old.path], ["checkpoint", old.path]] {
            let r = try Self.run(args, stdin: line)
            #expect(r.status == 2, "\(args): \(r.status) \(r.err)")
            #expect(r.err.contains("upgradeRequired") && r.err.contains("ledger-tool upgrade \(old.path) NEW"), "\(args): \(r.err)")
        }
        #expect(try Self.run(["verify", old.path]).status == 0, "verify reads a format-1 ledger, to check a checkpoint before the upgrade")

        let upgraded = try Self.run(["upgrade", old.path, new.path, "--json"])
        #expect(upgraded.status == 0, "\(upgraded.err)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(upgraded.out.utf8)) as? [String: Any])
        let oldHead = try #require(report["oldHead"] as? [String: Any]), newHead = try #require(report["newHead"] as? [String: Any])
        let count = try #require(report["events"] as? Int)
        #expect(count > 12 && oldHead["seq"] as? Int == count && newHead["seq"] as? Int == count)
        #expect((oldHead["hash"] as? String) != (newHead["hash"] as? String))
        #expect(try Self.run(["verify", new.path]).status == 0)
        // the same story in a new ledger answers as the upgraded one does
        #expect(try Self.run(["init", reference.path]).status == 0)
        #expect(try Self.run(["exec", reference.path], stdin: Self.story(revoke: true)).status == 0)
        for args in [["permissions", "--email", Self.planted.email, "--include-inactive", "--json"], ["access", "--licensing-id", "E-KES", "--json"],
                     ["history", "--email", Self.planted.email, "--json"], ["explain", "--email", "boss@kestrel.example", "--licensing-id", "E-KES", "--json"]] {
            let a = try Self.run([args[0], new.path] + args.dropFirst()), b = try Self.run([args[0], reference.path] + args.dropFirst())
            #expect(a.status == b.status && a.out == b.out && !a.out.isEmpty, "\(args): \(a.out) vs \(b.out)")
        }
        let twice = try Self.run(["upgrade", new.path, Dir().path])
        #expect(twice.status == 2 && twice.err.contains("event format 2 already"), "\(twice.err)")
        let occupied = try Self.run(["upgrade", old.path, reference.path])
        #expect(occupied.status == 2 && occupied.err.contains("holds a ledger already"), "\(occupied.err)")
    }
}
