import Foundation
import Ledger
import Projections
import _LedgerTestSupport
import SharedLog
import Testing

/// The shared log against a real PostgreSQL server (never a mock): hosts in one process,
/// hosts as separate processes, a host killed, the server restarted.
@Suite("shared log on PostgreSQL", .serialized)
struct SharedLogTests {
    @Test("two hosts in one process append concurrently: identical logs and projections, ids idempotent across hosts")
    func twoHostsInProcess() async throws {
        let dir = TempDir()
        let name = Env.freshName("two")
        let a = try host(dir.sub("a"), name: name, clamp: true)
        let b = try host(dir.sub("b"), name: name, clamp: true)
        try await a.start()
        try await b.start()
        var generator = HistoryGenerator(seed: 3, organisations: 20)
        let commands = generator.commands(400).enumerated().map { i, c in
            TimedCommand(at: c.time(after: nil), c.command, id: HostWorkload.commandID(seed: 3, index: i))
        }
        let results = try await withThrowingTaskGroup(of: [(Int, ExecutionResult)].self) { group in
            for (k, h) in [a, b].enumerated() {
                group.addTask {
                    var out: [(Int, ExecutionResult)] = []
                    for i in stride(from: k, to: commands.count, by: 2) { out.append((i, try await h.execute(commands[i]))) }
                    return out
                }
            }
            var all: [Int: ExecutionResult] = [:]
            for try await part in group { for (i, r) in part { all[i] = r } }
            return all
        }
        #expect(results.count == 400)
        try await a.catchUp()
        try await b.catchUp()
        let chainA = try chain(a.local), chainB = try chain(b.local)
        #expect(chainA.count > 100)
        #expect(chainA == chainB)
        #expect(try a.local.verify().ok)
        #expect(try b.local.verify().ok)
        #expect(try await a.compare().inStep)
        #expect(try await b.store.head().seq == UInt64(chainA.count))
        // every acknowledged command's events are where it was told they are
        for (i, r) in results where !r.seqs.isEmpty {
            #expect(try a.local.inspector.seq(forEventID: HostWorkload.commandID(seed: 3, index: i)) == r.seqs[0])
        }
        // the same command id on the other host is a duplicate with the same seqs
        guard let (i, first) = results.first(where: { $0.key % 2 == 0 && !$0.value.seqs.isEmpty }) else {
            Issue.record("no accepted command on host a")
            return
        }
        let again = try await b.execute(commands[i])
        #expect(again.wasDuplicate)
        #expect(again.seqs == first.seqs)
        #expect(try chain(b.local).count == chainA.count)
        await a.close()
        await b.close()
    }

    @Test("follow() is woken by NOTIFY: a replica polling only every 60 s still sees another host's appends at once")
    func followByNotify() async throws {
        let dir = TempDir()
        let name = Env.freshName("notify")
        let writer = try host(dir.sub("w"), name: name, clamp: true)
        try await writer.start()
        let local = try host(dir.sub("r"), name: name).local
        let follower = try SharedLedger(local: local, location: try Env.location(),
                                        options: .init(name: name, pollInterval: .seconds(60),
                                                       clusterKey: try ClusterKey(bytes: Env.clusterKeyBytes)))
        let heads = HeadBox()
        let task = Task { try await follower.follow { heads.set($0.seq) } }
        // the first catch-up happens once LISTEN is in place
        let ready = ContinuousClock.now + .seconds(10)
        while heads.get() == nil, ContinuousClock.now < ready { try await Task.sleep(for: .milliseconds(10)) }
        #expect(heads.get() == 0)
        var g = HistoryGenerator(seed: 21, organisations: 5)
        var last: UInt64 = 0
        for c in g.commands(60) { last = max(last, try await writer.execute(c).seqs.last ?? 0) }
        let deadline = ContinuousClock.now + .seconds(10)
        while (heads.get() ?? 0) < last, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(heads.get() == last, "the follower did not catch up within 10 s without polling")
        task.cancel()
        _ = try? await task.value
        #expect(try chain(local) == chain(writer.local))
        #expect(try local.verify().ok)
        await writer.close()
        await follower.close()
    }

    @Test("ledger-tool follow and verify --postgres run the replica program")
    func ledgerToolFollow() async throws {
        let dir = TempDir()
        let name = Env.freshName("tool")
        let writer = try host(dir.sub("w"), name: name, clamp: true)
        try await writer.start()
        var g = HistoryGenerator(seed: 22, organisations: 5)
        for c in g.commands(100) { _ = try await writer.execute(c) }
        await writer.close()
        let tool = Env.packageRoot + "/../.build/debug/ledger-tool"
        let follow = try Child(["follow", dir.sub("replica"), "--postgres", try Env.url(), "--name", name, "--once",
                                "--cluster-key-file", Env.clusterKeyFile],
                               dir: dir, label: "tool-follow", executable: tool)
        #expect(follow.wait() == 0, "\(follow.stderr)")
        #expect(follow.lines.first?.hasPrefix("caught up: seq \(try writer.local.inspector.head().seq) ") == true)
        let verify = try Child(["verify", dir.sub("replica"), "--postgres", try Env.url(), "--name", name, "--cluster-key-file", Env.clusterKeyFile],
                               dir: dir, label: "tool-verify", executable: tool)
        #expect(verify.wait() == 0, "\(verify.stderr)")
        #expect(verify.lines.contains("in step"))
        // a replica that moved away from the shared log fails verify
        var options = PermissionLedger.Options()
        options.authorizationKey = try AuthorizationKey(bytes: Env.keyBytes)
        let rogue = try PermissionLedger(directory: dir.sub("replica"), options: options)
        var h = HistoryGenerator(seed: 23, organisations: 5, start: Timestamp(seconds: 1_900_000_000), namespace: "x")
        _ = try await rogue.executeBatch(h.commands(20))
        let bad = try Child(["verify", dir.sub("replica"), "--postgres", try Env.url(), "--name", name, "--cluster-key-file", Env.clusterKeyFile],
                            dir: dir, label: "tool-verify-bad", executable: tool)
        #expect(bad.wait() == 1)
        #expect(bad.lines.contains { $0.hasPrefix("MISMATCH") })
    }

    @Test("a replica written outside the shared log is refused as diverged, not silently merged")
    func divergedReplica() async throws {
        let dir = TempDir()
        let name = Env.freshName("div")
        let a = try host(dir.sub("a"), name: name)
        try await a.start()
        let register = try TimedCommand(json: JSONParser.parse(#"{"command":"registerUser","at":"2026-03-01T10:00:00Z","account":"ada-msa","businessEmail":"ada@contoso.com"}"#))
        #expect(try await a.execute(register).accepted)
        let rogue = try host(dir.sub("rogue"), name: name)
        let other = try TimedCommand(json: JSONParser.parse(#"{"command":"registerUser","at":"2026-03-01T10:00:00Z","account":"bob-msa","businessEmail":"bob@contoso.com"}"#))
        _ = try await rogue.local.execute(other)  // written locally, not through the shared log
        await #expect(throws: SharedLogError.self) { try await rogue.start() }
        let comparison = try await rogue.compare()
        #expect(comparison.firstMismatch == 1)
        #expect(!comparison.consistent)
        await #expect(throws: SharedLogError.self) { try await rogue.execute(register) }
        await a.close()
        await rogue.close()
    }

    @Test("PostgreSQL unreachable: writes fail with sharedLogUnavailable, local reads keep working")
    func unreachable() async throws {
        let dir = TempDir()
        let name = Env.freshName("down")
        let a = try host(dir.sub("a"), name: name)
        try await a.start()
        let register = try TimedCommand(json: JSONParser.parse(#"{"command":"registerUser","at":"2026-03-01T10:00:00Z","account":"ada-msa","businessEmail":"ada@contoso.com"}"#))
        #expect(try await a.execute(register).accepted)
        // the same replica pointed at a port nothing listens on
        let down = try SharedLedger(local: a.local, location: PostgresLocation(host: "127.0.0.1", port: 1, username: "ledger", database: "ledger"),
                                    options: .init(name: name, clusterKey: try ClusterKey(bytes: Env.clusterKeyBytes)))
        let validate = try TimedCommand(json: JSONParser.parse(#"{"command":"validateEmail","at":"2026-03-01T10:05:00Z","account":"ada-msa"}"#))
        do {
            _ = try await down.execute(validate)
            Issue.record("execute succeeded with PostgreSQL unreachable")
        } catch let error as SharedLogError {
            #expect(error.code == "sharedLogUnavailable")
        }
        // reads are local: the projections answer (ada registered, not yet validated)
        let before = try await down.local.permissions(account: "ada-msa")
        guard case let .failure(refusal) = before else {
            Issue.record("expected emailNotValidated, got \(before)")
            await a.close()
            return
        }
        #expect(refusal.code == .emailNotValidated)
        #expect(try down.local.inspector.head().seq == 1)
        // and the write goes through once PostgreSQL is back (here: the right URL)
        #expect(try await a.execute(validate).accepted)
        #expect(try await a.local.permissions(account: "ada-msa").get().email == "ada@contoso.com")
        await a.close()
    }

    @Test("three processes execute through the shared log at once (one command, 4 and 16 per append): identical logs, projections equal to a rebuild, no ack lost")
    func threeProcesses() async throws {
        let dir = TempDir()
        let name = Env.freshName("three")
        let commands = 1_500
        let children = try (0..<3).map { k in
            try Child(try stressArgs(dir.sub("h\(k)"), name: name, host: k, hosts: 3, commands: commands, batch: [1, 4, 16][k]),
                      dir: dir, label: "h\(k)")
        }
        for (k, c) in children.enumerated() { #expect(c.wait() == 0, "host \(k): \(c.stderr)") }
        try checkHosts(dir: dir, name: name, hosts: 3, acks: try children.map { try acknowledged($0.lines) }, seed: 11)
        let total = try children.map { try acknowledged($0.lines).count }.reduce(0, +)
        #expect(total == commands)
    }

    @Test("failed Open License attempts spread over three hosts (1, 2 and 4 per append) lock the account exactly as one host would")
    func lockoutAcrossHosts() async throws {
        let dir = TempDir()
        let name = Env.freshName("lock")
        let setup = try String(contentsOfFile: Env.fixtures, encoding: .utf8).split(separator: "\n").prefix(119)
            .map { try TimedCommand(json: JSONParser.parse(String($0))) }
        let a = try host(dir.sub("setup"), name: name)
        try await a.start()
        for c in setup { _ = try await a.execute(c) }
        let attempt = #"{"command":"addOpenLicense","at":"2026-01-12T14:24:00Z","account":"nico-msa","licenseNumber":"OL-CONTOSO-1","authorizationNumber":"CT1-4471-ZZ","acknowledged":true}"#
        let file = dir.sub("attempts.jsonl")
        try Array(repeating: attempt, count: 4).joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let children = try (0..<3).map { k in
            try Child(["exec", dir.sub("h\(k)"), file, "--postgres", try Env.url(), "--name", name, "--key-file", Env.keyFile, "--cluster-key-file", Env.clusterKeyFile,
                       "--batch", String([1, 2, 4][k])], dir: dir, label: "x\(k)")
        }
        for (k, c) in children.enumerated() { #expect(c.wait() == 0, "host \(k): \(c.stderr)") }
        let lines = children.flatMap(\.lines).map { try? JSONParser.parse($0) }
        #expect(lines.count == 12)
        let recorded = lines.filter { if case let .array(s)? = $0?["seq"] { return !s.isEmpty } else { return false } }
        #expect(recorded.count == 3)
        #expect(lines.allSatisfy { $0?["ok"] == .bool(false) })
        try await a.catchUp()
        func failures(_ ledger: PermissionLedger) throws -> Int {
            try ledger.events { if case .openLicenseAttemptFailed(account: "nico-msa", _, _) = $0.event { return true } else { return false } }.count
        }
        let shared = try failures(a.local)
        // one host, same history, same twelve attempts
        let single = TempDir()
        var options = PermissionLedger.Options()
        options.authorizationKey = try AuthorizationKey(bytes: Env.keyBytes)
        let one = try PermissionLedger(directory: single.path, options: options)
        for c in setup { _ = try await one.execute(c) }
        let baseline = try failures(one)
        for _ in 0..<12 { _ = try await one.execute(try TimedCommand(json: JSONParser.parse(attempt))) }
        #expect(try failures(one) - baseline == 3)
        let oneHost = try failures(one)
        #expect(shared == oneHost)
        let at = Timestamp(iso8601: "2026-01-12T14:25:00Z") ?? Timestamp(seconds: 0)
        let sharedLockout = try await a.local.lockout(account: "nico-msa", at: at)
        let oneLockout = try await one.lockout(account: "nico-msa", at: at)
        #expect(sharedLockout == oneLockout)
        #expect(sharedLockout.locked)
        await a.close()
    }

    @Test("a host killed mid-run and restarted catches up; nothing it acknowledged is lost")
    func killAndRestart() async throws {
        let dir = TempDir()
        let name = Env.freshName("kill")
        let commands = 2_400
        var children = try (0..<3).map { k in
            try Child(try stressArgs(dir.sub("h\(k)"), name: name, host: k, hosts: 3, commands: commands), dir: dir, label: "h\(k)")
        }
        let deadline = Date().addingTimeInterval(60)
        while children[1].lines.count < 100, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        children[1].kill()
        let before = try acknowledged(children[1].lines)
        #expect(before.count >= 100)
        children[1] = try Child(try stressArgs(dir.sub("h1"), name: name, host: 1, hosts: 3, commands: commands), dir: dir, label: "h1-again")
        for (k, c) in children.enumerated() { #expect(c.wait() == 0, "host \(k): \(c.stderr)") }
        let after = try acknowledged(children[1].lines)
        // what was appended before the kill is found again (a refusal records nothing, so
        // the restarted host decides those commands afresh)
        for (i, seqs) in before where !seqs.isEmpty { #expect(after[i] == seqs, "command \(i) acknowledged before the kill") }
        try checkHosts(dir: dir, name: name, hosts: 3, acks: [try acknowledged(children[0].lines), before.merging(after) { b, a in b.isEmpty ? a : b },
                                                              try acknowledged(children[2].lines)], seed: 11)
    }

    @Test("PostgreSQL stopped and restarted mid-run: no acknowledged event lost, no duplicate")
    func postgresRestart() async throws {
        guard let pgDir = ProcessInfo.processInfo.environment["LEDGER_PG_DIR"] else {
            Issue.record("LEDGER_PG_DIR is not set: run the shared-log tests with SharedLog/run, which starts PostgreSQL")
            return
        }
        let dir = TempDir()
        let name = Env.freshName("restart")
        let commands = 2_000
        let children = try (0..<2).map { k in
            try Child(try stressArgs(dir.sub("h\(k)"), name: name, host: k, hosts: 2, commands: commands, batch: [1, 8][k]),
                      dir: dir, label: "h\(k)")
        }
        let deadline = Date().addingTimeInterval(60)
        while children[0].lines.count < 100, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        try control(["stop", pgDir])
        try await Task.sleep(for: .milliseconds(1_500))
        let duringOutage = children.map(\.lines.count)
        try control(["start", pgDir])
        for (k, c) in children.enumerated() { #expect(c.wait() == 0, "host \(k): \(c.stderr)") }
        let summaries = children.compactMap { $0.lines.last.flatMap { try? JSONParser.parse($0) } }
        let retries = summaries.compactMap { if case let .number(_, n?)? = $0["retries"] { return n } else { return nil } }.reduce(0, +)
        #expect(retries > 0, "no host noticed the outage (lines then: \(duringOutage))")
        try checkHosts(dir: dir, name: name, hosts: 2, acks: try children.map { try acknowledged($0.lines) }, seed: 11)
        #expect(try children.map { try acknowledged($0.lines).count }.reduce(0, +) == commands)
    }

    /// Runs SharedLog/postgres with `args` (posix_spawn + waitpid: the server it starts
    /// keeps running, and Foundation's Process can wait on that forever).
    private func control(_ args: [String]) throws {
        let argv = ([Env.packageRoot + "/postgres"] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, Env.packageRoot + "/postgres", nil, nil, argv, environ)
        #expect(spawned == 0, "can't run SharedLog/postgres")
        guard spawned == 0 else { return }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
        #expect(status == 0, "SharedLog/postgres \(args.joined(separator: " ")) exited with status \(status)")
    }

    /// After a multi-host run: every host caught up has the same chain as PostgreSQL, its
    /// projections verify against a replay, every acknowledged command is in the log at the
    /// seqs it was told, and the log holds nothing else (no duplicate).
    private func checkHosts(dir: TempDir, name: String, hosts: Int, acks: [[Int: [UInt64]]], seed: UInt64) throws {
        for k in 0..<hosts { try followOnce(dir.sub("h\(k)"), name: name, dir: dir) }
        var options = PermissionLedger.Options()
        options.authorizationKey = try AuthorizationKey(bytes: Env.keyBytes)
        let ledgers = try (0..<hosts).map { try PermissionLedger(directory: dir.sub("h\($0)"), options: options) }
        let chains = try ledgers.map(chain)
        #expect(chains[0].count > 100)
        for k in 1..<hosts { #expect(chains[k] == chains[0], "host \(k)'s log differs from host 0's") }
        for l in ledgers { #expect(try l.verify().ok) }
        var events = 0
        for hostAcks in acks {
            for (i, seqs) in hostAcks where !seqs.isEmpty {
                events += seqs.count
                #expect(try ledgers[0].inspector.seq(forEventID: HostWorkload.commandID(seed: seed, index: i)) == seqs[0], "command \(i)")
            }
        }
        #expect(events == chains[0].count, "the log holds exactly the acknowledged events")
        let verify = try Child(["verify", dir.sub("h0"), "--postgres", try Env.url(), "--name", name, "--cluster-key-file", Env.clusterKeyFile], dir: dir, label: "verify")
        #expect(verify.wait() == 0)
        #expect(verify.lines.contains("in step"))
    }
}
