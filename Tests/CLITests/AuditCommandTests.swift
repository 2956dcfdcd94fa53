import Foundation
import Testing

/// The auditor's commands end to end (DOMAIN.md §4.1, §6): access, history, diff, what-if
/// and watch, human and JSON.
@Suite("ledger-tool auditor's commands")
struct AuditCommandTests {
    typealias Dir = CLITests.Dir

    static func run(_ args: [String], stdin: String? = nil) throws -> CLITests.Run { try CLITests.run(args, stdin: stdin) }

    /// CLITests.story: joe gets download on E-800 at seq 6, then administrator at seq 7 (a
    /// grant he is not allowed to make: refused), E-800 inactive at seq 7.
    func story() throws -> Dir {
        let d = Dir()
        #expect(try Self.run(["init", d.path]).status == 0)
        #expect(try Self.run(["exec", d.path], stdin: CLITests.story).status == 0)
        return d
    }

    @Test("access, history and diff print JSON as DOMAIN.md gives it and tables for people")
    func accessHistoryDiff() throws {
        let d = try story()
        let access = try Self.run(["access", d.path, "--licensing-id", "E-800", "--json"])
        #expect(access.status == 0)
        #expect(access.out == #"{"licensingId":"E-800","asOfSeq":7,"principals":[{"email":"ida@contoso.com","account":"ida-msa","roles":["administrator"],"saBenefits":[],"sources":["contact"]},{"email":"joe@contoso.com","account":"joe-msa","roles":["download"],"saBenefits":[],"sources":["grant"]}]}"# + "\n")
        let before = try Self.run(["access", d.path, "--licensing-id", "E-800", "--as-of-seq", "5", "--json"])
        #expect(before.out.contains(#""asOfSeq":5,"principals":[{"email":"ida@contoso.com""#) && !before.out.contains("joe"))
        let table = try Self.run(["access", d.path, "--licensing-id", "E-800"])
        #expect(table.out.hasPrefix("Access to E-800 as of seq 7: 2 principals\n"))
        #expect(table.out.contains("joe@contoso.com") && table.out.contains("grant"))
        let unknown = try Self.run(["access", d.path, "--licensing-id", "E-999", "--json"])
        #expect(unknown.status == 1 && unknown.out.hasPrefix(#"{"error":"unknownLicensingId""#))

        let history = try Self.run(["history", d.path, "--email", "joe@contoso.com", "--json"])
        #expect(history.out == #"{"email":"joe@contoso.com","fromSeq":0,"toSeq":7,"changes":[{"seq":6,"at":"2026-08-03T11:00:00Z","type":"rolesGranted","licensingId":"E-800","before":[],"after":["download"],"saBenefitsBefore":[],"saBenefitsAfter":[]}]}"# + "\n")
        let timeline = try Self.run(["history", d.path, "--email", "joe@contoso.com"])
        #expect(timeline.out.contains("2026-08-03T11:00:00Z") && timeline.out.contains("rolesGranted") && timeline.out.contains("download"))
        let empty = try Self.run(["history", d.path, "--email", "joe@contoso.com", "--from-seq", "6", "--json"])
        #expect(empty.out.contains(#""fromSeq":6,"toSeq":7,"changes":[]"#))
        #expect(try Self.run(["history", d.path, "--email", "joe@contoso.com", "--licensing-id", "NOPE", "--json"]).status == 1)

        let diff = try Self.run(["diff", d.path, "--from-seq", "0", "--json"])
        #expect(diff.out.contains(#"{"fromSeq":0,"toSeq":7,"changes":[{"email":"ida@contoso.com","licensingId":"E-800","before":[],"after":["administrator"]"#))
        let reversed = try Self.run(["diff", d.path, "--from", "2026-08-04T00:00:00Z", "--to-seq", "5", "--email", "joe@contoso.com", "--json"])
        #expect(reversed.out == #"{"fromSeq":6,"toSeq":5,"changes":[{"email":"joe@contoso.com","licensingId":"E-800","before":["download"],"after":[],"saBenefitsBefore":[],"saBenefitsAfter":[]}]}"# + "\n")
        let usage = try Self.run(["diff", d.path, "--json"])
        #expect(usage.status == 2 && usage.err.contains("--from"))
    }

    @Test("what-if prints the results and the changes and leaves the ledger as it was; bad input exits 2")
    func whatIf() throws {
        let d = try story()
        let stats = try Self.run(["stats", d.path, "--json"]).out
        let input = """
        {"command":"grantRoles","at":"2026-08-05T00:00:00Z","by":"ida-msa","email":"joe@contoso.com","licensingId":"E-800","roles":["productKeys"]}
        {"command":"grantRoles","at":"2026-08-05T00:00:00Z","by":"joe-msa","email":"joe@contoso.com","licensingId":"E-800","roles":["administrator"]}
        """
        let r = try Self.run(["what-if", d.path, "--json"], stdin: input)
        #expect(r.status == 0)
        #expect(r.out.hasPrefix(#"{"results":[{"line":1,"ok":true,"seq":[8]},{"line":2,"ok":false,"error":"forbidden""#))
        #expect(r.out.contains(#""fromSeq":7,"toSeq":8,"changes":[{"email":"joe@contoso.com","licensingId":"E-800","before":["download"],"after":["download","productKeys"]"#))
        #expect(try Self.run(["stats", d.path, "--json"]).out == stats)
        let human = try Self.run(["what-if", d.path], stdin: input)
        #expect(human.out.contains("nothing was appended") && human.out.contains("productKeys"))
        let bad = try Self.run(["what-if", d.path], stdin: "{\"command\":\"grantRoles\"}\n")
        #expect(bad.status == 2 && bad.err.contains("1"))
        #expect(try Self.run(["verify", d.path]).status == 0)
    }

    @Test("watch follows the commits of another process: every change once, in order; a restart from a seq misses none and repeats none")
    func watchAcrossProcesses() throws {
        let d = try story()
        let follower = Process()
        follower.executableURL = URL(fileURLWithPath: CLITests.tool)
        follower.arguments = ["watch", d.path, "--from-seq", "0"]
        // the follower writes to a file (a pipe nobody reads while the writer runs would fill)
        let outPath = d.path + "/watch.out"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        let outFile = try #require(FileHandle(forWritingAtPath: outPath))
        follower.standardOutput = outFile
        try follower.run()
        // another process commits 1,000 commands, each one effective change
        let lines = (0 ..< 1_000).map { i in
            #"{"command":"recordAgreement","at":"2026-09-01T00:00:00Z","licensingId":"W-\#(i)","program":"enterpriseEnrollment","contacts":[{"type":"primaryContact","email":"w\#(i)@contoso.com"}]}"#
        }
        let writer = try Self.run(["exec", d.path], stdin: lines.joined(separator: "\n"))
        #expect(writer.status == 0)
        let stored = try Self.run(["watch", d.path, "--from-seq", "0", "--once"]).out.split(separator: "\n")
        #expect(stored.count == 1_002)  // the story's 2, then 1,000
        // wait until the follower printed every change (or 60 s)
        var received = Data()
        let deadline = Date().addingTimeInterval(60)
        repeat {
            usleep(20_000)
            received = FileManager.default.contents(atPath: outPath) ?? Data()
        } while received.split(separator: UInt8(ascii: "\n")).count < stored.count && Date() < deadline
        usleep(100_000)  // anything more it would print (it must not)
        received = FileManager.default.contents(atPath: outPath) ?? Data()
        // SIGKILL: a child of the test process may inherit a mask that blocks SIGTERM
        kill(follower.processIdentifier, SIGKILL)
        follower.waitUntilExit()
        let followed = String(decoding: received, as: UTF8.self).split(separator: "\n")
        #expect(followed == stored)
        // a follower restarted after seq 500 gets exactly the changes after it
        let resumed = try Self.run(["watch", d.path, "--from-seq", "500", "--once"]).out.split(separator: "\n")
        #expect(resumed == stored.filter { line in
            guard let range = line.range(of: #""seq":"#) else { return false }
            return (Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0) > 500
        })
        #expect(resumed.count == 507)  // seqs 501 … 1,007
    }
}

extension AuditCommandTests {
    @Test("explain gives each direct source's time and actor, where an inheritance starts, and the actions the roles allow")
    func explainForAuditors() throws {
        let d = Dir()
        #expect(try Self.run(["init", d.path]).status == 0)
        let story = """
        {"command":"recordAgreement","at":"2026-08-01T00:00:00Z","licensingId":"EA-1","program":"enterpriseAgreement","contacts":[{"type":"primaryContact","email":"ida@contoso.com"}]}
        {"command":"recordAgreement","at":"2026-08-01T00:00:00Z","licensingId":"EN-1","program":"enterpriseEnrollment","parent":"EA-1","contacts":[]}
        {"command":"registerUser","at":"2026-08-01T00:00:00Z","account":"ida-msa","businessEmail":"ida@contoso.com"}
        {"command":"validateEmail","at":"2026-08-01T00:00:00Z","account":"ida-msa"}
        {"command":"grantRoles","at":"2026-08-02T09:30:00Z","by":"ida-msa","email":"max@contoso.com","licensingId":"EA-1","roles":["administrator"]}
        """
        #expect(try Self.run(["exec", d.path], stdin: story).status == 0)
        let r = try Self.run(["explain", d.path, "--email", "max@contoso.com", "--licensing-id", "EN-1", "--json"])
        #expect(r.out == #"{"email":"max@contoso.com","licensingId":"EN-1","asOfSeq":5,"roles":[{"role":"administrator","sources":[{"source":"inherited","via":"EA-1","origin":{"licensingId":"EA-1","sources":[{"source":"grant","seq":5,"type":"rolesGranted","at":"2026-08-02T09:30:00Z","by":"ida-msa"}]}}]}],"saBenefits":[],"actions":["manageUsers","viewLicensingInfo","viewSoftwareAssuranceSummary","downloadSoftware","viewProductKeys","manageSoftwareAssurance","manageOnlineServices","manageSubscriptions"]}"# + "\n")
        let info = try Self.run(["explain", d.path, "--email", "ida@contoso.com", "--licensing-id", "EN-1", "--json"])
        #expect(info.out.contains(#"{"source":"inherited","via":"EA-1","origin":{"licensingId":"EA-1","sources":[{"source":"contact","seq":1,"type":"agreementRecorded","at":"2026-08-01T00:00:00Z"}]}}"#))
        let human = try Self.run(["explain", d.path, "--email", "max@contoso.com", "--licensing-id", "EN-1"])
        #expect(human.out.contains("inherited via EA-1, from EA-1 (grant: seq 5 rolesGranted at 2026-08-02T09:30:00Z by ida-msa)"))
    }
}
