import Foundation
@_spi(LedgerInternals) import Ledger
@_spi(LedgerInternals) import Projections
import _LedgerTestSupport
import SharedLog
import Testing

/// Issue 18 on the shared log: PostgreSQL holds only commitments, pseudonyms and ciphertext,
/// and every replica erases a subject when it applies its `subjectErased`.
extension SharedLogTests {
    static let planted = PlantedPerson(email: "zelda.quartermain@nightjar-shared.example", account: "zq-nightjar-shared")

    @Test("an erasure through PostgreSQL (ledger-replica erase): replicas online, restarted and new erase it; PostgreSQL never holds a value, and the subject's rows are emptied")
    func erasureAcrossHosts() async throws {
        let dir = TempDir()
        let name = Env.freshName("erase")
        let p = Self.planted
        let a = try host(dir.sub("a"), name: name, clamp: true)
        let b = try host(dir.sub("b"), name: name, clamp: true)
        try await a.start()
        try await b.start()
        var t = Timestamp(seconds: 1_767_225_600)
        func at() -> Timestamp { t = t.adding(seconds: 60); return t }
        let story = p.story(revoked: true)
        // the subject is made on host A (one append) and used on host B (one command an append)
        let first = try await a.executeBatch(story.prefix(7).map { TimedCommand(at: at(), $0) })
        let refused = first.filter { !$0.accepted }
        #expect(refused.isEmpty, "\(refused)")
        for c in story.dropFirst(7) { #expect(try await b.execute(TimedCommand(at: at(), c)).accepted) }
        try await a.catchUp()
        #expect(try await a.local.permissions(account: p.account).get().email == p.email, "A shows the values B's appends need")
        let subject = try #require(try a.local.vault?.subject(email: p.email))
        let values = p.values
        let rowsBefore = try await a.store.personal(of: subject)
        #expect(rowsBefore.count >= 4 && rowsBefore.allSatisfy { $0.sealed != nil }, "the subject's items are in PostgreSQL, sealed")

        // B goes offline; the erasure is made by a third host through the CLI
        await b.close()
        let erase = try Child(["erase", dir.sub("c"), "--postgres", try Env.url(), "--name", name, "--key-file", Env.keyFile,
                               "--cluster-key-file", Env.clusterKeyFile, "--email", p.email, "--legal-basis", "objection"],
                              dir: dir, label: "erase")
        #expect(erase.wait() == 0, "\(erase.stderr)")
        let out = try JSONParser.parse(erase.lines.first ?? "")
        #expect(out["ok"] == .bool(true), "\(erase.lines)")
        #expect(out["subject"] == .string(subject.description))
        let again = try Child(["erase", dir.sub("c"), "--postgres", try Env.url(), "--name", name, "--key-file", Env.keyFile,
                               "--cluster-key-file", Env.clusterKeyFile, "--email", p.email, "--legal-basis", "objection"],
                              dir: dir, label: "erase-again")
        #expect(again.wait() == 1)
        #expect(try JSONParser.parse(again.lines.first ?? "")["error"] == .string("alreadyErased"), "\(again.lines)")
        let rowsAfter = try await a.store.personal(of: subject)
        #expect(rowsAfter.count == rowsBefore.count && rowsAfter.allSatisfy { $0.sealed == nil }, "the subject's rows are emptied in PostgreSQL")

        // the same email registers again on A while B is offline: a new subject
        #expect(try await a.execute(TimedCommand(at: at(), .registerUser(account: "zq-again", businessEmail: p.email))).accepted)
        // A was online; B restarts and catches up; D is a new replica
        try await a.catchUp()
        let b2 = try host(dir.sub("b"), name: name)
        try await b2.start()
        let d = try host(dir.sub("d"), name: name)
        try await d.start()
        try followOnce(dir.sub("c"), name: name, dir: dir)
        let shown = try a.local.events().map(\.json.text)
        #expect(shown.contains { $0.contains("erased:\(subject.description)") })
        for (label, ledger) in [("A", a.local), ("B", b2.local), ("D", d.local)] {
            #expect(try ledger.events().map(\.json.text) == shown, "replica \(label) shows other events")
            #expect(try ledger.verify().ok, "\(label)")
            #expect(try ledger.vault?.subject(email: p.email) != subject, "\(label): the email names a new subject")
            let gone = try await ledger.permissions(account: p.account)
            guard case let .failure(refusal) = gone else { Issue.record("\(label): the erased account still resolves: \(gone)"); continue }
            #expect(refusal.code == .notRegistered, "\(label): \(refusal)")
        }
        await a.close()
        await b2.close()
        await d.close()

        // a replica's own `ledger-tool erase` would diverge from the shared log: refused (exit 2)
        let tool = Env.packageRoot + "/../.build/debug/ledger-tool"
        let local = try Child(["erase", dir.sub("c"), "--email", "boss@nightjar.example", "--legal-basis", "objection"],
                              dir: dir, label: "tool-erase", executable: tool)
        #expect(local.wait() == 2 && local.stderr.contains("ledger-replica erase"), "\(local.stderr)")
        // a new replica without the cluster key, or with another one, applies nothing
        let noKey = try Child(["follow", dir.sub("e"), "--postgres", try Env.url(), "--name", name, "--once"], dir: dir, label: "follow-no-key")
        #expect(noKey.wait() == 2 && noKey.stderr.contains("cluster key"), "\(noKey.stderr)")
        let otherKey = dir.sub("other.key")
        _ = FileManager.default.createFile(atPath: otherKey, contents: Data(Env.clusterKeyBytes.map { $0 ^ 1 }))
        let wrong = try Child(["follow", dir.sub("e"), "--postgres", try Env.url(), "--name", name, "--once", "--cluster-key-file", otherKey],
                              dir: dir, label: "follow-other-key")
        #expect(wrong.wait() != 0 && wrong.stderr.contains("invalidClusterKey"), "\(wrong.stderr)")

        // no file of any replica (A, B, the CLI's C, D) holds an erased value in any form —
        // the new registration's email aside
        for r in ["a", "b", "c", "d", "e"] {
            let files = filesUnder(dir.sub(r))
            #expect(files.contains { $0.0.hasSuffix("data.mdb") }, "control: replica \(r)'s files are searched")
            for v in values.dropFirst() {
                for form in plaintextForms(v) {
                    let holders = files.filter { holds($0.1, form) }.map(\.0)
                    #expect(holders.isEmpty, "replica \(r): \(v) in \(holders)")
                }
            }
        }
        // and no file of PostgreSQL ever held one (not even the email, not even before the
        // erasure: its tables, WAL and dead tuples hold pseudonyms and ciphertext), while the
        // subject's pseudonym is found there
        guard let pgDir = ProcessInfo.processInfo.environment["LEDGER_PG_DIR"] else {
            Issue.record("LEDGER_PG_DIR is not set: run the shared-log tests with SharedLog/run, which starts PostgreSQL")
            return
        }
        let pgFiles = filesUnder(pgDir)
        #expect(pgFiles.contains { holds($0.1, subject.bytes) }, "control: the pseudonym's bytes are in PostgreSQL's files")
        for v in values {
            for form in plaintextForms(v) {
                let holders = pgFiles.filter { holds($0.1, form) }.map(\.0)
                #expect(holders.isEmpty, "PostgreSQL: \(v) in \(holders)")
            }
        }
    }
}
