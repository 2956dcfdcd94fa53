import Foundation
import Testing

/// DOMAIN.md §6's conventions for every command, end to end on the built `ledger-tool`:
/// a point on every query of state, one answer for unknown IDs and accounts, usage errors
/// that name the mistake (with the nearest valid name), and input files as operators have
/// them (`-`, a byte-order mark, CRLF).
@Suite("ledger-tool conventions")
struct ConventionTests {
    typealias Dir = CLITests.Dir

    static func run(_ args: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> CLITests.Run {
        try CLITests.run(args, stdin: stdin, environment: environment)
    }

    /// A ledger holding CLITests.story: joe gets download on E-800 at seq 6 (2026-08-03T11:00:00Z),
    /// E-800 goes inactive at seq 7 (2026-08-04T11:00:00Z).
    func story() throws -> Dir {
        let d = Dir()
        #expect(try Self.run(["init", d.path]).status == 0)
        #expect(try Self.run(["exec", d.path], stdin: CLITests.story).status == 0)
        return d
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test("every query of state takes --as-of-seq and --as-of; check and lockout also --at")
    func pointOnEveryQuery() throws {
        let d = try story()
        // before seq 6 joe holds nothing on E-800; from it on, download
        let before = ["--as-of-seq", "5"], beforeTime = ["--as-of", "2026-08-03T10:30:00Z"]
        for point in [before, beforeTime] {
            let p = try Self.run(["permissions", d.path, "--email", "joe@contoso.com", "--include-inactive", "--json"] + point)
            #expect(p.status == 0, "\(p.err)")
            #expect(p.out == #"{"email":"joe@contoso.com","asOfSeq":5,"licensingIds":[]}"# + "\n")
            let e = try Self.run(["explain", d.path, "--email", "joe@contoso.com", "--licensing-id", "E-800", "--json"] + point)
            #expect(e.out == #"{"email":"joe@contoso.com","licensingId":"E-800","asOfSeq":5,"roles":[],"saBenefits":[],"actions":[]}"# + "\n")
            let c = try Self.run(["check", d.path, "--account", "joe-msa", "--licensing-id", "E-800", "--action", "downloadSoftware", "--json"] + point)
            #expect(c.status == 1)
            #expect(try Self.json(c.out)["reason"] as? String == "noRole")
            let a = try Self.run(["admins", d.path, "--licensing-id", "E-800", "--json"] + point)
            #expect(a.out == #"{"licensingId":"E-800","administrators":[{"email":"ida@contoso.com","sources":[{"source":"contact"}]}]}"# + "\n")
            let l = try Self.run(["lockout", d.path, "--account", "joe-msa", "--json"] + point)
            #expect(l.status == 0)
            #expect(try Self.json(l.out)["locked"] as? Bool == false)
        }
        // at the head and through --at, joe may download
        let head = try Self.run(["check", d.path, "--account", "joe-msa", "--licensing-id", "E-800", "--action", "downloadSoftware"])
        #expect(head.status == 0)
        let at = try Self.run(["check", d.path, "--account", "joe-msa", "--licensing-id", "E-800", "--action", "downloadSoftware", "--at", "2026-08-03T11:00:00Z"])
        #expect(at.status == 0, "an event at exactly T is part of the state at T")
        let early = try Self.run(["check", d.path, "--account", "joe-msa", "--licensing-id", "E-800", "--action", "downloadSoftware", "--at", "2026-08-03T10:59:59Z"])
        #expect(early.status == 1)
        // lockout --as-of-seq N is evaluated at the time of event N
        let l = try Self.run(["lockout", d.path, "--account", "joe-msa", "--as-of-seq", "6", "--json"])
        #expect(l.out == #"{"account":"joe-msa","locked":false,"recentFailures":0,"at":"2026-08-03T11:00:00Z"}"# + "\n")
        // a seq past the head means the head
        let past = try Self.run(["permissions", d.path, "--email", "joe@contoso.com", "--include-inactive", "--as-of-seq", "999", "--json"])
        #expect(try Self.json(past.out)["asOfSeq"] as? Int == 7)
        // two points at once are a usage error naming the flags
        let both = try Self.run(["check", d.path, "--account", "joe-msa", "--licensing-id", "E-800", "--action", "downloadSoftware", "--at", "2026-08-03T11:00:00Z", "--as-of-seq", "3"])
        #expect(both.status == 2)
        #expect(both.err == "error: give at most one of --at, --as-of or --as-of-seq (see 'ledger-tool check --help')\n")
        let badTime = try Self.run(["admins", d.path, "--licensing-id", "E-800", "--as-of", "2026-08-03"])
        #expect(badTime.status == 2)
        #expect(badTime.err.contains("--as-of '2026-08-03' is not a time of the form YYYY-MM-DDTHH:MM:SSZ"))
    }

    @Test("an unknown Licensing ID or account: exit 1 and a JSON error document; a never-seen email is not an error")
    func unknownThings() throws {
        let d = try story()
        for args in [["explain", d.path, "--email", "joe@contoso.com", "--licensing-id", "NOPE"],
                     ["admins", d.path, "--licensing-id", "NOPE"],
                     // E-800 does not exist yet at seq 0: "at the point asked"
                     ["explain", d.path, "--email", "joe@contoso.com", "--licensing-id", "E-800", "--as-of-seq", "0"],
                     ["admins", d.path, "--licensing-id", "E-800", "--as-of-seq", "0"]] {
            let human = try Self.run(args)
            #expect(human.status == 1, "\(args)")
            #expect(human.out.isEmpty)
            #expect(human.err.hasPrefix("denied: unknownLicensingId: Licensing ID "))
            let json = try Self.run(args + ["--json"])
            #expect(json.status == 1)
            #expect(try Self.json(json.out)["error"] as? String == "unknownLicensingId", "\(args): \(json.out)")
            #expect(try Self.json(json.out)["message"] is String)
        }
        let ghost = try Self.run(["permissions", d.path, "--account", "ghost-msa", "--json"])
        #expect(ghost.status == 1)
        #expect(try Self.json(ghost.out)["error"] as? String == "notRegistered")
        // joe registers at seq 4 and validates at seq 5
        let unvalidated = try Self.run(["permissions", d.path, "--account", "joe-msa", "--as-of-seq", "4", "--json"])
        #expect(unvalidated.status == 1)
        #expect(try Self.json(unvalidated.out)["error"] as? String == "emailNotValidated")
        // check keeps its own form; an unknown account is reported before an unknown ID
        let check = try Self.run(["check", d.path, "--account", "ghost-msa", "--licensing-id", "NOPE", "--action", "downloadSoftware", "--json"])
        #expect(check.status == 1)
        #expect(try Self.json(check.out)["allowed"] as? Bool == false)
        #expect(try Self.json(check.out)["reason"] as? String == "notRegistered")
        let checkID = try Self.run(["check", d.path, "--account", "joe-msa", "--licensing-id", "NOPE", "--action", "downloadSoftware", "--json"])
        #expect(try Self.json(checkID.out)["reason"] as? String == "unknownLicensingId")
        // an email never seen simply has no permissions
        let nobody = try Self.run(["permissions", d.path, "--email", "nobody@contoso.com", "--json"])
        #expect(nobody.status == 0)
        #expect(nobody.out == #"{"email":"nobody@contoso.com","asOfSeq":7,"licensingIds":[]}"# + "\n")
        let nobodyExplain = try Self.run(["explain", d.path, "--email", "nobody@contoso.com", "--licensing-id", "E-800", "--json"])
        #expect(nobodyExplain.status == 0)
        // lockout of an account never registered is not an error
        let lockout = try Self.run(["lockout", d.path, "--account", "ghost-msa", "--at", "2026-08-05T00:00:00Z", "--json"])
        #expect(lockout.status == 0)
        #expect(lockout.out == #"{"account":"ghost-msa","locked":false,"recentFailures":0,"at":"2026-08-05T00:00:00Z"}"# + "\n")
    }

    @Test("a mistyped command or flag is reported first, on one line, with the nearest valid name")
    func suggestions() throws {
        let d = try story()
        let cases: [([String], String)] = [
            (["permisions", d.path], "error: unknown command 'permisions'; did you mean 'permissions'? the commands: "),
            // reported before "give exactly one of --email or --account"
            (["permissions", d.path, "--acount", "joe-msa"], "error: unknown option '--acount' for 'permissions'; did you mean '--account'? (see 'ledger-tool permissions --help')\n"),
            // reported before the missing --account
            (["check", d.path, "--acount", "joe-msa", "--licensing-id", "E-800", "--action", "downloadSoftware"],
             "error: unknown option '--acount' for 'check'; did you mean '--account'? (see 'ledger-tool check --help')\n"),
            (["events", d.path, "--licensing", "E-800"], "error: unknown option '--licensing' for 'events'; did you mean '--licensing-id'?"),
            (["admins", d.path, "--licensing-id", "E-800", "--at", "2026-08-05T00:00:00Z"], "error: unknown option '--at' for 'admins'; its options: "),
            (["events", d.path, "--from", "-1"], "error: the value '-1' is invalid for '--from <n>' (see 'ledger-tool events --help')\n"),
            (["events", d.path, "--from"], "error: missing value for '--from <n>' (see 'ledger-tool events --help')\n"),
            (["events", d.path, "--type", "rolesGrant"], "error: --type 'rolesGrant' is not an event type (did you mean 'rolesGranted'?); expected one of: "),
        ]
        for (args, message) in cases {
            let r = try Self.run(args)
            #expect(r.status == 2, "\(args)")
            #expect(r.out.isEmpty)
            #expect(r.err.hasPrefix(message), "\(args): \(r.err)")
            #expect(r.err.split(separator: "\n").count == 1, "\(args): more than one line: \(r.err)")
        }
        // every command is listed, none cut off
        let unknown = try Self.run(["frobnicate"])
        for name in ["init", "exec", "append", "export", "events", "permissions", "check", "lockout", "admins", "explain", "verify", "rebuild", "stats", "checkpoint", "rotate-key", "generate", "follow"] {
            #expect(unknown.err.contains(name))
        }
        // a value that merely looks like a flag is still a value
        let email = try Self.run(["permissions", d.path, "--email", "-joe@contoso.com", "--json"])
        #expect(email.status == 0, "\(email.err)")
        // an unknown command name inside exec input: a suggestion and every valid name, not cut off
        let r = try Self.run(["exec", d.path], stdin: #"{"command":"grantRole","at":"2026-08-05T00:00:00Z"}"#)
        #expect(r.status == 2)
        #expect(r.err.contains("unknown command 'grantRole' (did you mean 'grantRoles'?); expected one of: registerUser,"))
        #expect(r.err.contains("denyOpenLicenseAccess, migrateLegacyPermission\n"))
    }

    @Test("paths: a file given as the ledger, a directory that can't be made, an input file that can't be read")
    func paths() throws {
        let d = try story()
        let file = try Self.run(["stats", d.path + "/data.mdb"])
        #expect(file.status == 2)
        #expect(file.err == "error: '\(d.path)/data.mdb' is a file, not a ledger directory; give the directory that holds it: \(d.path)\n")
        let proc = try Self.run(["init", "/proc/pl-ledger-test"])
        #expect(proc.status == 2)
        #expect(proc.err.hasPrefix("error: can't create a ledger at '/proc/pl-ledger-test': "))
        #expect(!proc.err.contains("NSCocoaErrorDomain"))
        let overFile = try Self.run(["init", d.path + "/authorization.key/sub"])
        #expect(overFile.status == 2)
        #expect(overFile.err.contains("is a file, not a directory"))
        let missing = try Self.run(["exec", d.path, d.path + "/nofile.jsonl"])
        #expect(missing.status == 2)
        #expect(missing.err == "error: can't read input file '\(d.path)/nofile.jsonl': no such file or directory\n")
        let directory = try Self.run(["append", d.path, d.path])
        #expect(directory.err == "error: can't read input file '\(d.path)': it is a directory\n")
        let export = try Self.run(["export", d.path, "--to", d.path + "/no/such/dir/export.jsonl"])
        #expect(export.status == 2)
        #expect(export.err == "error: can't write --to '\(d.path)/no/such/dir/export.jsonl': no such file or directory\n")
        let key = try Self.run(["checkpoint", d.path, "--key", d.path + "/nokey"])
        #expect(key.status == 2)
        #expect(key.err == "error: --key '\(d.path)/nokey' can't be read: no such file or directory\n")
        let nested = Dir()
        let created = try Self.run(["init", nested.path + "/a/b"])
        #expect(created.status == 0, "\(created.err)")
    }

    @Test("exec input: - is standard input; a byte-order mark and CRLF line ends are accepted; --strict")
    func execInput() throws {
        let d = Dir()
        #expect(try Self.run(["init", d.path]).status == 0)
        let lines = CLITests.story.split(separator: "\n").filter { !$0.isEmpty }
        let crlf = "\u{FEFF}" + lines.prefix(3).joined(separator: "\r\n") + "\r\n"
        let r = try Self.run(["exec", d.path, "-"], stdin: crlf)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == "{\"line\":1,\"ok\":true,\"seq\":[1]}\n{\"line\":2,\"ok\":true,\"seq\":[2]}\n{\"line\":3,\"ok\":true,\"seq\":[3]}\n")
        // a file with a BOM
        let path = d.path + "-input.jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(("\u{FEFF}" + lines[3] + "\n").utf8).write(to: URL(fileURLWithPath: path))
        let fromFile = try Self.run(["exec", d.path, path])
        #expect(fromFile.out == "{\"line\":1,\"ok\":true,\"seq\":[4]}\n", "\(fromFile.err)")
        // a BOM anywhere else is not skipped
        let inner = try Self.run(["exec", d.path], stdin: String(lines[4]) + "\n\u{FEFF}" + lines[5] + "\n")
        #expect(inner.status == 2)
        #expect(inner.err.contains("stdin:2: "))
        // refusals are results: exit 0, or 1 with --strict; the results are printed either way
        let refused = #"{"command":"validateEmail","at":"2026-08-05T00:00:00Z","account":"ghost-msa"}"#
        let plain = try Self.run(["exec", d.path], stdin: refused)
        #expect(plain.status == 0)
        let strict = try Self.run(["exec", d.path, "--strict"], stdin: refused)
        #expect(strict.status == 1)
        #expect(strict.out.contains(#""ok":false,"error":"notRegistered""#))
        let strictOK = try Self.run(["exec", d.path, "--strict"], stdin: String(lines[4]))
        #expect(strictOK.status == 0, "\(strictOK.out)")
    }

    @Test("events --from-time/--to-time: inclusive bounds on at, the same as filtering the export")
    func eventsByTime() throws {
        let d = try story()
        let all = try Self.run(["events", d.path, "--json"]).out
        let every = try #require(try Self.json(all)["events"] as? [[String: Any]])
        for (from, to) in [("2026-08-03T10:00:00Z", "2026-08-03T10:00:00Z"), ("2026-08-03T10:00:01Z", "2026-08-04T11:00:00Z"),
                           ("2026-08-01T00:00:00Z", "2026-08-03T11:00:00Z"), ("2026-08-05T00:00:00Z", "2026-09-01T00:00:00Z"),
                           ("2026-08-04T00:00:00Z", "2026-08-03T00:00:00Z")] {
            let r = try Self.run(["events", d.path, "--from-time", from, "--to-time", to, "--json"])
            #expect(r.status == 0)
            let got = try #require(try Self.json(r.out)["events"] as? [[String: Any]]).compactMap { $0["seq"] as? Int }
            let want = every.filter { e in
                guard let at = e["at"] as? String else { return false }
                return at >= from && at <= to
            }.compactMap { $0["seq"] as? Int }
            #expect(got == want, "\(from)…\(to)")
        }
        let both = try Self.run(["events", d.path, "--from", "3", "--to-time", "2026-08-03T10:00:00Z", "--json"])
        #expect(try #require(try Self.json(both.out)["events"] as? [[String: Any]]).compactMap { $0["seq"] as? Int } == [3, 4, 5])
    }

    /// Help screens at 80 columns: every paragraph line filled (a hard-wrapped source line
    /// re-wrapped by the parser leaves a short line followed by a word that would have fit).
    @Test("--help of every command: no ragged lines, nothing wider than the terminal, each option's values listed once")
    func helpLayout() throws {
        for command in ["init", "exec", "append", "export", "events", "permissions", "check", "lockout", "admins", "explain", "verify", "rebuild",
                        "stats", "checkpoint", "rotate-key", "generate", "follow"] {
            let r = try Self.run([command, "--help"], environment: ["COLUMNS": "80"])
            #expect(r.status == 0)
            let lines = r.out.components(separatedBy: "\n")
            guard let usage = lines.firstIndex(where: { $0.hasPrefix("USAGE:") }) else {
                Issue.record("\(command) --help has no USAGE")
                continue
            }
            // the text above USAGE: the overview and the discussion
            let text = lines[..<usage]
            for (line, next) in zip(text, text.dropFirst()) where !line.isEmpty && !next.isEmpty && !next.hasPrefix(" ") && !line.hasSuffix("\\") {
                let word = next.split(separator: " ").first.map(String.init) ?? ""
                // the parser fills a line to at most 79 columns when more text follows
                #expect(line.count + 1 + word.count >= 80, "\(command) --help: ragged line '\(line)' before '\(word)'")
            }
            for line in lines where !line.hasPrefix("USAGE:") {
                #expect(line.count <= 80, "\(command) --help: '\(line)' is wider than 80 columns")
            }
            #expect(r.out.components(separatedBy: "(values:").count <= 3, "\(command)")
        }
    }

    @Test("--help of events and check, whole")
    func helpWhole() throws {
        let events = try Self.run(["events", "--help"], environment: ["COLUMNS": "80"])
        #expect(events.out == """
        OVERVIEW: List events, optionally filtered.

        Seq and time bounds are inclusive and combine: an event is listed when it is
        inside all of them.

        Example:
          ledger-tool events ./ledger --email joe@contoso.com --type rolesGranted

        USAGE: ledger-tool events <db> [--from <n>] [--to <n>] [--from-time <time>] [--to-time <time>] [--email <email>] [--licensing-id <licensing-id>] [--type <type>] [--json]

        ARGUMENTS:
          <db>                    The ledger directory (made by `ledger-tool init`).

        OPTIONS:
          --from <n>              First seq (default: 1).
          --to <n>                Last seq (default: the head).
          --from-time <time>      Only events with at ≥ TIME.
          --to-time <time>        Only events with at ≤ TIME.
          --email <email>         Only events concerning this email.
          --licensing-id <licensing-id>
                                  Only events concerning this Licensing ID.
          --type <type>           Only events of this type.
          --json                  Print {"events":[…]}.
          --version               Show the version.
          -h, --help              Show help information.


        """)
        let check = try Self.run(["check", "--help"], environment: ["COLUMNS": "80"])
        #expect(check.out == """
        OVERVIEW: May this account do this action on this Licensing ID? Exit 0 allowed,
        1 denied.

        A denial names its reason: notRegistered, emailNotValidated, unknownLicensingId
        (an unknown account is reported before an unknown ID), noRole or
        benefitNotHeld.

        Example:
          ledger-tool check ./ledger --account joe-msa --licensing-id E-800 \\
              --action downloadSoftware --at 2026-08-04T12:00:00Z

        USAGE: ledger-tool check <db> --account <account> --licensing-id <licensing-id> --action <action> [--benefit <benefit>] [--as-of-seq <n>] [--as-of <time>] [--at <time>] [--json]

        ARGUMENTS:
          <db>                    The ledger directory (made by `ledger-tool init`).

        OPTIONS:
          --account <account>     The signed-in account.
          --licensing-id <licensing-id>
                                  The Licensing ID.
          --action <action>       The action. (values: manageUsers, viewLicensingInfo,
                                  viewSoftwareAssuranceSummary, downloadSoftware,
                                  viewProductKeys, manageSoftwareAssurance,
                                  manageOnlineServices, manageSubscriptions)
          --benefit <benefit>     For manageSoftwareAssurance: one SA benefit. (values:
                                  planningServices, trainingVouchers, eLearning,
                                  employeePurchaseProgram, homeUseProgram, techNet,
                                  problemResolutionSupport, software)
          --as-of-seq <n>         Answer as of this seq (the state after event N; 0 is
                                  the empty state).
          --as-of <time>          Answer as of this time (the events with at ≤ TIME).
          --at <time>             The same as --as-of TIME.
          --json                  Print JSON.
          --version               Show the version.
          -h, --help              Show help information.


        """)
    }
}
