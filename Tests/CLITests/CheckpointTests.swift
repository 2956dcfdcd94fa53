import Foundation
import Testing

/// Ed25519 checkpoints (issue 16): keygen, sign, verify with the public key, verify an
/// export offline; HMAC checkpoints keep verifying.
@Suite("Public-key checkpoints")
struct CheckpointTests {
    typealias T = CLITests

    func signedLedger() throws -> (CLITests.Dir, String) {
        let d = CLITests.Dir()
        #expect(try T.run(["init", d.path]).status == 0)
        #expect(try T.run(["exec", d.path], stdin: T.story).status == 0)
        try FileManager.default.createDirectory(atPath: d.path + "/keys", withIntermediateDirectories: true)
        let prefix = d.path + "/keys/auditor"
        let made = try T.run(["keygen", "--out", prefix])
        #expect(made.status == 0)
        let attrs = try FileManager.default.attributesOfItem(atPath: prefix + ".key")
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        #expect(try T.run(["keygen", "--out", prefix]).status == 2, "keygen never overwrites a key")
        let checkpoint = try T.run(["checkpoint", d.path, "--sign-key", prefix + ".key"])
        #expect(checkpoint.status == 0 && checkpoint.out.contains("\"scheme\":\"ed25519\""))
        try checkpoint.out.write(toFile: d.path + "/keys/cp.json", atomically: true, encoding: .utf8)
        return (d, prefix)
    }

    @Test("a checkpoint signed with the private key verifies with the public key alone; tampering and other keys are found")
    func signAndVerify() throws {
        let (d, prefix) = try signedLedger()
        let cp = d.path + "/keys/cp.json"
        let ok = try T.run(["verify", d.path, "--against", cp, "--public-key", prefix + ".pub", "--json"])
        #expect(ok.status == 0 && ok.out.contains("\"checkpointSigned\":true"))
        #expect(try T.run(["verify", d.path, "--against", cp]).out.contains("give --public-key"))
        // another key pair: named by key id
        #expect(try T.run(["keygen", "--out", d.path + "/keys/other"]).status == 0)
        let other = try T.run(["verify", d.path, "--against", cp, "--public-key", d.path + "/keys/other.pub"])
        #expect(other.status == 1 && other.out.contains("signed by key"))
        // the signature covers the seq and the time: change either and it no longer verifies
        let text = try String(contentsOfFile: cp, encoding: .utf8)
        for (from, to) in [("\"seq\":7", "\"seq\":6"), ("2026-08-04T11:00:00Z", "2026-08-04T11:00:01Z")] {
            #expect(text.contains(from))
            try text.replacingOccurrences(of: from, with: to).write(toFile: cp + ".bad", atomically: true, encoding: .utf8)
            let bad = try T.run(["verify", d.path, "--against", cp + ".bad", "--public-key", prefix + ".pub"])
            #expect(bad.status == 1 && bad.out.contains("does not match the public key"), "\(from)")
        }
        // an unsigned checkpoint checked with a key says it is unsigned
        let unsigned = try T.run(["checkpoint", d.path])
        try unsigned.out.write(toFile: d.path + "/keys/un.json", atomically: true, encoding: .utf8)
        let un = try T.run(["verify", d.path, "--against", d.path + "/keys/un.json", "--public-key", prefix + ".pub"])
        #expect(un.status == 1 && un.out.contains("unsigned"))
        // HMAC checkpoints keep verifying with --key, and a public key can't check them
        let secret = d.path + "/keys/hmac.key"
        try Data(repeating: 9, count: 32).write(to: URL(fileURLWithPath: secret))
        let hmac = try T.run(["checkpoint", d.path, "--key", secret])
        try hmac.out.write(toFile: d.path + "/keys/hmac.json", atomically: true, encoding: .utf8)
        #expect(try T.run(["verify", d.path, "--against", d.path + "/keys/hmac.json", "--key", secret]).status == 0)
        #expect(try T.run(["verify", d.path, "--against", d.path + "/keys/hmac.json", "--public-key", prefix + ".pub"]).out.contains("HMAC-signed"))
    }

    @Test("verify --export checks an export offline against a signed checkpoint: altered, cut or reordered histories fail")
    func verifyExport() throws {
        let (d, prefix) = try signedLedger()
        let cp = d.path + "/keys/cp.json", pub = prefix + ".pub"
        let export = try T.run(["export", d.path])
        #expect(export.status == 0)
        let file = d.path + "/keys/events.jsonl"
        try export.out.write(toFile: file, atomically: true, encoding: .utf8)
        let ok = try T.run(["verify", "--export", file, "--against", cp, "--public-key", pub])
        #expect(ok.status == 0 && ok.out.hasPrefix("ok: 7 exported events"))
        var lines = export.out.split(separator: "\n").map(String.init)
        func check(_ changed: [String], _ expected: String) throws {
            try (changed.joined(separator: "\n") + "\n").write(toFile: file + ".bad", atomically: true, encoding: .utf8)
            let r = try T.run(["verify", "--export", file + ".bad", "--against", cp, "--public-key", pub])
            #expect(r.status == 1 && r.out.contains(expected), "\(r.out)")
        }
        try check(Array(lines.prefix(5)), "ends at seq 5")
        try check(lines.map { $0.replacingOccurrences(of: "joe@contoso.com", with: "eve@contoso.com") }, "altered at seq 4")
        lines.swapAt(1, 2)
        try check(lines, "seq 3 where 2 was expected")
        #expect(try T.run(["verify", "--export", file, d.path]).status == 2)
    }
}
