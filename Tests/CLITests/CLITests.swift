import Foundation
import Testing

/// End-to-end tests of the built `ledger-tool` binary (as swift-argument-parser tests its
/// own tools): exact output, exit codes, files.
@Suite("ledger-tool end to end")
struct CLITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let tool: String = ProcessInfo.processInfo.environment["LEDGER_TOOL"] ?? root + "/.build/debug/ledger-tool"

    struct Run {
        var status: Int32
        var out: String
        var err: String
    }

    @discardableResult
    static func run(_ args: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> Run {
        try run(args, bytes: Array((stdin ?? "").utf8), environment: environment)
    }

    /// Runs the tool with raw bytes on stdin (written from another thread, so a child that
    /// exits early can't block or kill the test); `environment` is added to this process's.
    @discardableResult
    static func run(_ args: [String], bytes: [UInt8], environment: [String: String] = [:]) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        signal(SIGPIPE, SIG_IGN)  // a child that exits early must not kill the test process
        try p.run()
        let input = Data(bytes)
        let writer = Thread {
            try? inp.fileHandleForWriting.write(contentsOf: input)
            try? inp.fileHandleForWriting.close()
        }
        writer.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
    }

    final class Dir: @unchecked Sendable {
        let path = NSTemporaryDirectory() + "pl-cli-" + UUID().uuidString
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    static let story = """
    {"command":"recordAgreement","at":"2026-08-03T10:00:00Z","licensingId":"E-800","program":"enterpriseEnrollment","contacts":[{"type":"primaryContact","email":"ida@contoso.com"}]}
    {"command":"registerUser","at":"2026-08-03T10:00:00Z","account":"ida-msa","businessEmail":"ida@contoso.com"}
    {"command":"validateEmail","at":"2026-08-03T10:00:00Z","account":"ida-msa"}
    {"command":"registerUser","at":"2026-08-03T10:00:00Z","account":"joe-msa","businessEmail":"joe@contoso.com"}
    {"command":"validateEmail","at":"2026-08-03T10:00:00Z","account":"joe-msa"}
    {"command":"grantRoles","at":"2026-08-03T11:00:00Z","by":"ida-msa","email":"joe@contoso.com","licensingId":"E-800","roles":["download"]}

    {"command":"grantRoles","at":"2026-08-04T11:00:00Z","by":"joe-msa","email":"joe@contoso.com","licensingId":"E-800","roles":["administrator"]}
    {"command":"setLicensingIdStatus","at":"2026-08-04T11:00:00Z","licensingId":"E-800","status":"inactive"}
    """

    func ledger() throws -> Dir {
        #expect(FileManager.default.isExecutableFile(atPath: Self.tool), "build ledger-tool first (swift build); looked for \(Self.tool)")
        let d = Dir()
        let r = try Self.run(["init", d.path])
        #expect(r.status == 0)
        #expect(r.out == "created an empty ledger at \(d.path)\n")
        let attrs = try FileManager.default.attributesOfItem(atPath: d.path + "/authorization.key")
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        return d
    }

    @Test("exec prints one result line per command, numbered by input line")
    func exec() throws {
        let d = try ledger()
        let r = try Self.run(["exec", d.path], stdin: Self.story)
        #expect(r.status == 0)
        #expect(r.out == """
        {"line":1,"ok":true,"seq":[1]}
        {"line":2,"ok":true,"seq":[2]}
        {"line":3,"ok":true,"seq":[3]}
        {"line":4,"ok":true,"seq":[4]}
        {"line":5,"ok":true,"seq":[5]}
        {"line":6,"ok":true,"seq":[6]}
        {"line":8,"ok":false,"error":"forbidden","message":"joe@contoso.com is not an administrator of E-800 and may not grant roles on it","seq":[]}
        {"line":9,"ok":true,"seq":[7]}

        """)
        #expect(r.err.hasPrefix("8 commands: 7 accepted, 1 refused ("))
    }

    @Test("exec run again reports a retried refused attempt as refused, with its code (issue 16, item 1)")
    func retriedRefusalStaysRefused() throws {
        let d = try ledger()
        let setup = """
        {"command":"recordAgreement","at":"2026-08-03T10:00:00Z","licensingId":"OL-1","program":"openLicense","contacts":[{"type":"primaryContact","email":"ida@contoso.com"}],"authorizationNumber":"GOOD-1"}
        {"command":"recordAgreement","at":"2026-08-03T10:00:00Z","licensingId":"OL-2","program":"openLicense","contacts":[{"type":"primaryContact","email":"ida@contoso.com"}],"authorizationNumber":"GOOD-2"}
        {"command":"registerUser","at":"2026-08-03T10:00:00Z","account":"ida-msa","businessEmail":"ida@contoso.com"}
        {"command":"validateEmail","at":"2026-08-03T10:00:00Z","account":"ida-msa"}
        {"command":"registerUser","at":"2026-08-03T10:00:00Z","account":"joe-msa","businessEmail":"joe@contoso.com"}
        {"command":"validateEmail","at":"2026-08-03T10:00:00Z","account":"joe-msa"}
        {"command":"completeProfile","at":"2026-08-03T10:00:00Z","account":"joe-msa","firstName":"Joe","lastName":"Doe"}
        {"command":"grantRoles","at":"2026-08-03T11:00:00Z","by":"ida-msa","email":"joe@contoso.com","licensingId":"OL-1","roles":["licensingInfo"]}
        """
        #expect(try Self.run(["exec", d.path], stdin: setup).status == 0)
        let attempt = """
        {"command":"addOpenLicense","id":"6f1c2d3e-0000-4000-8000-000000000001","at":"2026-08-03T12:00:00Z","account":"joe-msa","licenseNumber":"OL-2","authorizationNumber":"BAD","acknowledged":true}
        """
        let message = "invalid Authorization/License number combination"
        let first = try Self.run(["exec", d.path], stdin: attempt)
        #expect(first.out == "{\"line\":1,\"ok\":false,\"error\":\"invalidLicenseAuthorization\",\"message\":\"\(message)\",\"seq\":[9]}\n")
        let again = try Self.run(["exec", d.path], stdin: attempt)
        #expect(again.out == "{\"line\":1,\"ok\":false,\"error\":\"invalidLicenseAuthorization\",\"message\":\"\(message)\",\"seq\":[9],\"duplicate\":true}\n")
    }

    @Test("exec --batch commits many commands per transaction with the same results, line by line")
    func batch() throws {
        let a = try ledger(), b = try ledger()
        let input = try Self.run(["generate", "--commands", "1500", "--seed", "12", "--organisations", "20"]).out
        let one = try Self.run(["exec", a.path], stdin: input)
        let many = try Self.run(["exec", b.path, "--batch", "400"], stdin: input)
        #expect(one.status == 0 && many.status == 0)
        #expect(one.out == many.out)
        #expect(one.out.split(separator: "\n").count == 1_500)
        #expect(try Self.run(["verify", b.path]).status == 0)
        #expect(try Self.run(["exec", b.path, "--batch", "0"], stdin: input).status == 2)
    }

    @Test("permissions, human and JSON, whole output")
    func permissions() throws {
        let d = try ledger()
        try Self.run(["exec", d.path], stdin: Self.story)
        let human = try Self.run(["permissions", d.path, "--account", "JOE-msa", "--include-inactive"])
        #expect(human.status == 0)
        #expect(human.out == """
        My Permissions of joe@contoso.com (as of seq 7)
        licensingId  program               status    parent  mbsa  roles     saBenefits
        -----------  --------------------  --------  ------  ----  --------  ----------
        E-800        enterpriseEnrollment  inactive  -       -     download  -

        """)
        let active = try Self.run(["permissions", d.path, "--email", "joe@contoso.com", "--json"])
        #expect(active.out == #"{"email":"joe@contoso.com","asOfSeq":7,"licensingIds":[]}"# + "\n")
        let asOf = try Self.run(["permissions", d.path, "--email", "joe@contoso.com", "--as-of-seq", "6", "--json"])
        #expect(asOf.out == #"{"email":"joe@contoso.com","asOfSeq":6,"licensingIds":[{"licensingId":"E-800","program":"enterpriseEnrollment","status":"active","roles":["download"],"saBenefits":[]}]}"# + "\n")
        let unknown = try Self.run(["permissions", d.path, "--account", "nobody"])
        #expect(unknown.status == 1)
        #expect(unknown.err == "denied: notRegistered: account 'nobody' is not registered\n")
        #expect(try Self.run(["permissions", d.path]).status == 2)
        #expect(try Self.run(["permissions", d.path, "--email", "a@b.co", "--account", "x"]).status == 2)
        #expect(try Self.run(["permissions", d.path, "--email", "a@b.co", "--as-of", "yesterday"]).status == 2)
    }

    @Test("check: exit 0 allowed, 1 denied, 2 bad flag")
    func check() throws {
        let d = try ledger()
        try Self.run(["exec", d.path], stdin: Self.story)
        let yes = try Self.run(["check", d.path, "--account", "joe-msa", "--licensing-id", "E-800", "--action", "downloadSoftware", "--json"])
        #expect(yes.status == 0)
        #expect(yes.out == #"{"allowed":true,"reason":"allowed","message":"joe@contoso.com holds download on E-800","roles":["download"],"asOfSeq":7}"# + "\n")
        let no = try Self.run(["check", d.path, "--account", "joe-msa", "--licensing-id", "E-800", "--action", "viewProductKeys"])
        #expect(no.status == 1)
        #expect(no.out == "denied (noRole): viewProductKeys needs productKeys or administrator on E-800; joe@contoso.com holds download\n")
        let before = try Self.run(["check", d.path, "--account", "joe-msa", "--licensing-id", "E-800", "--action", "downloadSoftware", "--at", "2026-08-03T10:30:00Z"])
        #expect(before.status == 1)
        let bad = try Self.run(["check", d.path, "--account", "joe-msa", "--licensing-id", "E-800", "--action", "fly"])
        #expect(bad.status == 2)
        #expect(bad.err.contains("fly"))
    }

    @Test("malformed exec input: exit 2, every bad line named, nothing appended")
    func badInput() throws {
        let d = try ledger()
        let input = """
        {"command":"registerUser","at":"2026-09-01T00:00:00Z","account":"k","businessEmail":"k@contoso.com"}
        {not json}
        {"command":"teleport","at":"2026-09-01T00:00:00Z"}
        {"command":"registerUser","at":"yesterday","account":"k","businessEmail":"k@contoso.com"}
        """
        let r = try Self.run(["exec", d.path], stdin: input)
        #expect(r.status == 2)
        #expect(r.out == "")
        #expect(r.err.contains("stdin:2: invalid JSON"))
        #expect(r.err.contains("stdin:3: field 'command': unknown command 'teleport'"))
        #expect(r.err.contains("stdin:4: field 'at': 'yesterday' is not a time"))
        #expect(r.err.contains("error: 3 malformed lines; nothing was appended"))
        let stats = try Self.run(["stats", d.path, "--json"])
        #expect(stats.out.hasPrefix(#"{"events":0,"#))
        let empty = try Self.run(["exec", d.path], stdin: "\n\n")
        #expect(empty.status == 0)
        #expect(empty.err == "note: the input holds no commands; nothing was appended\n")
    }

    @Test("a missing or non-ledger directory is refused, not created")
    func notALedger() throws {
        let d = Dir()
        let r = try Self.run(["stats", d.path])
        #expect(r.status == 2)
        #expect(r.err.contains("does not exist"))
        #expect(!FileManager.default.fileExists(atPath: d.path))
        try FileManager.default.createDirectory(atPath: d.path, withIntermediateDirectories: true)
        let r2 = try Self.run(["exec", d.path], stdin: "")
        #expect(r2.status == 2)
        #expect(r2.err.contains("is not a ledger directory"))
        #expect(try Self.run(["init", d.path]).status == 0)
        #expect(try Self.run(["init", d.path]).status == 2)
    }

    @Test("export, then append into an empty ledger, reproduces every seq and hash")
    func exportImport() throws {
        let a = try ledger(), b = try ledger()
        let fixture = try String(contentsOfFile: Self.root + "/Fixtures/contoso.jsonl", encoding: .utf8)
        #expect(try Self.run(["exec", a.path], stdin: fixture).status == 0)
        let export = try Self.run(["export", a.path])
        #expect(export.status == 0)
        let imported = try Self.run(["append", b.path], stdin: export.out)
        #expect(imported.status == 0, "\(imported.err)")
        #expect(try Self.run(["export", b.path]).out == export.out)
        let verify = try Self.run(["verify", b.path, "--json"])
        #expect(verify.status == 0)
        #expect(verify.out.hasPrefix(#"{"ok":true,"events":269,"#))
        // a second import of the same export is a no-op (known ids)
        #expect(try Self.run(["append", b.path], stdin: export.out).status == 0)
        #expect(try Self.run(["stats", b.path, "--json"]).out.hasPrefix(#"{"events":269,"#))
        // an altered hash is refused whole
        let c = try ledger()
        let lines = export.out.split(separator: "\n").map(String.init)
        var altered = lines
        altered[3] = altered[3].replacingOccurrences(of: "\"hash\":\"", with: "\"hash\":\"0")
        altered[3] = String(altered[3].dropLast(2)) + "\"}"
        let refused = try Self.run(["append", c.path], stdin: altered.joined(separator: "\n"))
        #expect(refused.status == 2)
        #expect(refused.err.contains("stdin:4:"))
        #expect(try Self.run(["stats", c.path, "--json"]).out.hasPrefix(#"{"events":0,"#))
        // an event that does not apply cleanly is refused whole
        let wrong = lines[0] + "\n" + #"{"type":"rolesGranted","at":"2026-12-01T00:00:00Z","by":"ghost","email":"x@contoso.com","licensingId":"MB-CONTOSO","roles":["administrator"]}"#
        let r = try Self.run(["append", c.path], stdin: wrong)
        #expect(r.status == 2)
        #expect(r.err.contains("stdin:2: rolesGranted does not apply: notRegistered"))
    }

    @Test("two processes executing at once: every command lands, seqs gap-free, chain verifies")
    func twoProcesses() throws {
        let d = try ledger()
        var processes: [(Process, Pipe)] = []
        for who in ["a", "b"] {
            let file = d.path + "/\(who).jsonl"
            let lines = (0 ..< 150).map { i in
                #"{"command":"registerUser","at":"2026-09-01T00:00:00Z","account":"\#(who)-\#(i)","businessEmail":"\#(who)\#(i)@contoso.com"}"#
            }
            try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Self.tool)
            p.arguments = ["exec", d.path, file]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            processes.append((p, out))
        }
        for (p, out) in processes {
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            #expect(text.split(separator: "\n").filter { $0.contains(#""ok":true"#) }.count == 150)
        }
        let stats = try Self.run(["stats", d.path, "--json"])
        #expect(stats.out.hasPrefix(#"{"events":300,"byType":{"userRegistered":300},"headSeq":300,"#))
        #expect(try Self.run(["verify", d.path]).status == 0)
    }

    @Test("human output escapes control, escape and bidi characters; JSON keeps them exactly")
    func escaping() throws {
        let d = try ledger()
        let input = #"{"command":"registerUser","at":"2026-09-01T00:00:00Z","account":"x\u001b[31m\u202e","businessEmail":"x@contoso.com"}"#
        #expect(try Self.run(["exec", d.path], stdin: input).status == 0)
        let human = try Self.run(["events", d.path])
        #expect(!human.out.contains("\u{1B}"))
        #expect(human.out.contains(#"account=x\u{1b}[31m\u{202e}"#))
        let json = try Self.run(["events", d.path, "--json"])
        #expect(json.out.contains(#""account":"x\u001b[31m\u202e""#))
    }

    @Test("--help of every command shows an example; --version")
    func help() throws {
        for command in ["init", "exec", "append", "export", "events", "permissions", "check", "lockout", "admins", "explain", "verify", "rebuild", "stats", "checkpoint", "keygen", "rotate-key", "generate"] {
            let r = try Self.run([command, "--help"])
            #expect(r.status == 0)
            #expect(r.out.contains("Example:\n  ledger-tool \(command)"), "\(command) --help has no example")
        }
        #expect(try Self.run(["--version"]).out == "0.1.0\n")
        #expect(try Self.run(["frobnicate"]).status == 2)
    }

    @Test("rotate-key: old agreements are still checked, new ones use the new key")
    func rotateKey() throws {
        let d = try ledger()
        let setup = """
        {"command":"registerUser","at":"2026-09-01T00:00:00Z","account":"u","businessEmail":"u@t.com"}
        {"command":"validateEmail","at":"2026-09-01T00:00:00Z","account":"u"}
        {"command":"completeProfile","at":"2026-09-01T00:00:00Z","account":"u","firstName":"U","lastName":"U"}
        {"command":"recordAgreement","at":"2026-09-01T00:00:00Z","licensingId":"OL-1","program":"openLicense","contacts":[{"type":"primaryContact","email":"u@t.com"}],"authorizationNumber":"OLD-1"}
        """
        #expect(try Self.run(["exec", d.path], stdin: setup).status == 0)
        let rotated = try Self.run(["rotate-key", d.path])
        #expect(rotated.status == 0, "\(rotated.err)")
        #expect(rotated.out.hasPrefix("new authorization key "))
        let files = try FileManager.default.contentsOfDirectory(atPath: d.path).filter { $0.hasPrefix("authorization.key") }
        #expect(files.count == 2)
        let after = """
        {"command":"recordAgreement","at":"2026-09-01T00:00:00Z","licensingId":"OL-2","program":"openLicense","contacts":[],"authorizationNumber":"NEW-2"}
        {"command":"addOpenLicense","at":"2026-09-01T00:00:00Z","account":"u","licenseNumber":"OL-1","authorizationNumber":"OLD-1","acknowledged":true}
        {"command":"addOpenLicense","at":"2026-09-01T00:00:00Z","account":"u","licenseNumber":"OL-2","authorizationNumber":"NEW-2","acknowledged":true}
        """
        let r = try Self.run(["exec", d.path], stdin: after)
        #expect(r.out.split(separator: "\n").allSatisfy { $0.contains(#""ok":true"#) }, "\(r.out)")
        let events = try Self.run(["events", d.path, "--type", "agreementRecorded", "--json"]).out
        #expect(Set(events.components(separatedBy: #""keyId":""#).dropFirst().map { $0.prefix(16) }).count == 2)
    }

    @Test("generate is deterministic for a seed")
    func generate() throws {
        let a = try Self.run(["generate", "--commands", "300", "--seed", "4"])
        let b = try Self.run(["generate", "--commands", "300", "--seed", "4"])
        let c = try Self.run(["generate", "--commands", "300", "--seed", "5"])
        #expect(a.out == b.out)
        #expect(a.out != c.out)
        #expect(a.out.split(separator: "\n").count == 300)
    }

    @Test("verify names the first bad seq after tampering; rebuild restores projections")
    func verifyAndRebuild() throws {
        let d = try ledger()
        try Self.run(["exec", d.path], stdin: Self.story)
        let rebuild = try Self.run(["rebuild", d.path])
        #expect(rebuild.status == 0)
        #expect(rebuild.out.hasPrefix("rebuilt projections from 7 events in "))
        let explain = try Self.run(["explain", d.path, "--email", "joe@contoso.com", "--licensing-id", "E-800", "--json"])
        #expect(explain.out == #"{"email":"joe@contoso.com","licensingId":"E-800","asOfSeq":7,"roles":[{"role":"download","sources":[{"source":"grant","seq":6,"type":"rolesGranted","at":"2026-08-03T11:00:00Z","by":"ida-msa"}]}],"saBenefits":[],"actions":["downloadSoftware"]}"# + "\n")
        let admins = try Self.run(["admins", d.path, "--licensing-id", "E-800", "--json"])
        #expect(admins.out == #"{"licensingId":"E-800","administrators":[{"email":"ida@contoso.com","sources":[{"source":"contact"}]}]}"# + "\n")
        let lockout = try Self.run(["lockout", d.path, "--account", "joe-msa", "--at", "2026-08-05T00:00:00Z", "--json"])
        #expect(lockout.out == #"{"account":"joe-msa","locked":false,"recentFailures":0,"at":"2026-08-05T00:00:00Z"}"# + "\n")
    }

    @Test("follow and verify --postgres explain how to get the optional shared-log part when it is missing")
    func sharedLogPartMissing() throws {
        setenv("LEDGER_REPLICA", "/nonexistent/ledger-replica", 1)
        defer { unsetenv("LEDGER_REPLICA") }
        let d = Dir()
        #expect(try Self.run(["init", d.path]).status == 0)
        let follow = try Self.run(["follow", d.path + "/replica", "--postgres", "postgres://ledger@127.0.0.1/ledger", "--once"])
        #expect(follow.status == 2)
        #expect(follow.err.contains("sharedLogNotBuilt"))
        #expect(follow.err.contains("swift build --package-path SharedLog"))
        let verify = try Self.run(["verify", d.path, "--postgres", "postgres://ledger@127.0.0.1/ledger"])
        #expect(verify.status == 2)
        #expect(verify.err.contains("sharedLogNotBuilt"))
        let both = try Self.run(["verify", d.path, "--postgres", "postgres://x@y/z", "--json"])
        #expect(both.status == 2)
        #expect(both.err.contains("--postgres can't be combined"))
        let missingURL = try Self.run(["follow", d.path])
        #expect(missingURL.status == 2)
    }
}
