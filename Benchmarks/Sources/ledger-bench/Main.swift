import Foundation
import GRDB
import Ledger
@_spi(Benchmarks) @_spi(LedgerInternals) import Projections
import _LedgerTestSupport
import Synchronization

/// ledger-bench: one workload (the Fixtures generator's histories), three implementations of
/// the same work, measured in one process, interleaved batch by batch.
/// A bad command line, named (printed with the usage).
struct BenchArgumentError: Error, CustomStringConvertible {
    let description: String
    init(_ problem: String) { description = problem + "\n" + Main.usage }
}

@main
struct Main {
    static func main() async {
        do {
            try await run()
        } catch {
            FileHandle.standardError.write(Data("ledger-bench: \(error)\n".utf8))
            exit(1)
        }
    }

    static func argument(_ name: String) -> String? {
        let args = CommandLine.arguments
        guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
        return args[i + 1]
    }

    /// The flags that take a value: a whole number, except the directories'.
    static let valueFlags: Set<String> = [
        "--events", "--batch", "--seed", "--event-format", "--commands", "--rounds", "--hot-entries", "--pollute",
        "--profile-checks", "--profile-commands", "--profile-durable", "--profile-floor", "--changelog-ratio",
        "--vault-erase", "--make-ledger", "--rebuild-only", "--open-only",
    ]
    static let directoryFlags: Set<String> = ["--make-ledger", "--rebuild-only", "--open-only"]
    static let switches: Set<String> = ["--json", "--keep", "--print", "--rebuild-first", "--without-changelog"]

    static let usage = """
        usage: ledger-bench [--events N] [--batch N] [--seed N] [--event-format 1|2] [--json] [--keep]
          the side-by-side run (Benchmarks/run passes its arguments here)
        modes for profiling one figure (see BENCHMARKS.md):
          --make-ledger DIR [--commands N] [--without-changelog]
          --rebuild-only DIR [--print]        --open-only DIR
          --profile-checks N [--rounds R] [--hot-entries E] [--rebuild-first] [--pollute BYTES]
          --profile-commands N    --profile-durable N [--commands N]    --profile-floor N
          --changelog-ratio N     --vault-erase N
        """

    /// Refuses an unknown flag, a missing value and a number that isn't one, naming it (a
    /// typo must not run the whole benchmark with its defaults).
    static func checkArguments() throws {
        var args = CommandLine.arguments.dropFirst()
        while let flag = args.popFirst() {
            if flag == "--help" || flag == "-h" { print(usage); exit(0) }
            if switches.contains(flag) { continue }
            guard valueFlags.contains(flag) else { throw BenchArgumentError("unknown argument '\(flag)'") }
            guard let value = args.popFirst() else { throw BenchArgumentError("\(flag) needs a value") }
            if !directoryFlags.contains(flag) && (Int(value).map { $0 < 0 } ?? true) {
                throw BenchArgumentError("\(flag) takes a non-negative whole number, not '\(value)'")
            }
        }
    }

    static func run() async throws {
        try checkArguments()
        if let dir = argument("--rebuild-only") {
            // child mode: rebuild a ledger so the parent can read this process's peak RSS
            let ledger = try PermissionLedger(directory: dir, options: .legacyAllowed)
            let report = try ledger.rebuild()
            // this process's own peak: VmHWM of its memory map. (getrusage's ru_maxrss, for
            // RUSAGE_CHILDREN in the parent or RUSAGE_SELF here, also counts the memory map the
            // spawn shared with the parent before exec — the parent's peak, not the rebuild's.)
            let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
            let hwm = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
                .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
            // --print: the rebuild's own figures, for a person
            if CommandLine.arguments.contains("--print") { print(report.events, "events,", Int(report.eventsPerSecond), "events/s,", hwm / 1024, "MB peak") }
            else { print(hwm) }
            return
        }
        if let dir = argument("--open-only") {
            // child mode: open a ledger no other instance in this process holds, 7 times
            var times: [Double] = []
            for _ in 0 ..< 7 {
                times.append(try seconds {
                    let l = try PermissionLedger(directory: dir, options: .legacyAllowed)
                    _ = try l.log.head()
                    _ = try l.check(account: "nobody", action: .viewLicensingInfo, licensingId: "X")
                } * 1_000)
            }
            print(percentile(times, 0.5))
            return
        }
        if let count = argument("--changelog-ratio").flatMap(Int.init) {
            // append with the changelog / without it, alone (for profiling that figure)
            print(String(format: "append_changelog_ratio %.3f", try changelogAppendRatio(commands: count, batch: 1_000, seed: 7)))
            return
        }
        if let count = argument("--vault-erase").flatMap(Int.init) {
            // the subject vault alone (issue 18): `count` subjects, each with an account and a
            // text, written in batches of 1,000 (one durable transaction each); commitments
            // made and values read; then 20 erasures, each deleting and writing the compacted
            // next generation
            let root = NSTemporaryDirectory() + "ledger-bench-vault-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: root) }
            let vault = try SubjectVault(directory: root)
            var subjects: [Pseudonym] = [], accounts: [Pseudonym] = [], texts: [[UInt8]] = []
            let event = UUID()
            let tAssign = try seconds {
                for start in stride(from: 0, to: count, by: 1_000) {
                    let batch = vault.batch()
                    for i in start ..< min(count, start + 1_000) {
                        let p = try batch.subject(email: "subject\(i)@bench.example").subject
                        subjects.append(p)
                        accounts.append(try batch.registerAccount(named: "account\(i)", owner: p))
                        texts.append(try batch.storeText("Given\(i)", field: "firstName", event: event, subject: p))
                    }
                    try batch.commit()
                }
            }
            guard !subjects.isEmpty else { print("vault: no subjects (give --vault-erase N with N ≥ 1)"); return }
            // what each personal field of an appended event costs: its commitment (the
            // subject's secret cached), and what an output costs: reading a value back
            let fields = 20_000
            let tCommit = try seconds {
                let batch = vault.batch()
                for i in 0 ..< fields {
                    _ = try batch.commitment(value: "subject\(i)@bench.example", field: "email", event: event, subject: subjects[i % subjects.count])
                }
            }
            var opened = 0
            let tEmail = try seconds {
                for i in 0 ..< fields { if case .value = try vault.email(of: subjects[i % subjects.count]) { opened += 1 } }
            }
            let tText = try seconds {
                for i in 0 ..< fields {
                    if case .value = try vault.text(subject: subjects[i % subjects.count], commitment: texts[i % texts.count]) { opened += 1 }
                }
            }
            let tLookup = try seconds {
                for i in 0 ..< fields { if try vault.account(named: "account\(i % subjects.count)") != nil { opened += 1 } }
            }
            print(String(format: "vault commitment %.2f µs/field  read email %.2f µs  read text %.2f µs  look up account %.2f µs  (%d of %d read)",
                         tCommit / Double(fields) * 1e6, tEmail / Double(fields) * 1e6, tText / Double(fields) * 1e6,
                         tLookup / Double(fields) * 1e6, opened, fields * 3))
            var rng = SeededRandom(seed: 7)
            var times: [Double] = []
            for _ in 0 ..< 20 {
                guard let p = subjects.randomElement(using: &rng) else { break }
                times.append(try seconds { try vault.erase(p) } * 1_000)
            }
            let files = (FileManager.default.subpaths(atPath: root) ?? []).filter { $0.hasSuffix("data.mdb") }
            let bytes = files.compactMap { try? FileManager.default.attributesOfItem(atPath: root + "/" + $0)[.size] as? Int }.reduce(0, +)
            print(String(format: "vault subjects %d  file %.1f MB  write %.1f µs/subject with its account and a text (batches of 1,000, durable)  erase p50 %.1f ms  max %.1f ms",
                         count, Double(bytes) / 1_048_576, tAssign / Double(max(count, 1)) * 1e6, percentile(times, 0.5), times.max() ?? 0))
            return
        }
        if let dir = argument("--make-ledger") {
            // a ledger of `--commands N` generated commands in DIR (for profiling a rebuild or
            // appending; `--without-changelog`: folded without the changelog)
            let count = Int(argument("--commands") ?? "") ?? 200_000
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var options = PermissionLedger.Options(durability: .noSync)
            options.foldsChangelog = !CommandLine.arguments.contains("--without-changelog")
            options.eventFormat = runFormat
            let ledger = try PermissionLedger(directory: dir, options: options)
            var g = HistoryGenerator(seed: 7, organisations: max(50, count / 150))
            for _ in 0 ..< count / 1_000 { _ = try blocking { try ledger.executeBatch(g.commands(1_000)) } }
            try ledger.environment.sync()
            return
        }
        if let size = argument("--profile-durable").flatMap(Int.init) {
            // durable commits on a ledger of `size` generated commands: serial, then 32
            // concurrent callers (group commit); for strace/perf of the commit path alone
            let count = Int(argument("--commands") ?? "") ?? 4_000
            let key = try AuthorizationKey(bytes: Array("benchmark-authorization-key-32by".utf8))
            var g = HistoryGenerator(seed: 7, organisations: max(50, size / 150))
            var (dir, building): (String, PermissionLedger?) = try scratchLedger("durable")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            for _ in 0 ..< size / 1_000 { _ = try blocking { try building?.executeBatch(g.commands(1_000)) } }
            try building?.environment.sync()
            building = nil
            let ledger = try PermissionLedger(directory: dir, options: Options(authorizationKey: key).inRunFormat)
            let at = try ledger.log.head().at ?? Timestamp(seconds: 0)
            let serial = g.commands(count).map { TimedCommand(at: at, $0.command) }
            let concurrent = g.commands(count).map { TimedCommand(at: at, $0.command) }
            let (tSerial, tConcurrent) = try await durableCommits(ledger, serial: serial, concurrent: concurrent)
            print("durable serial", Int(Double(count) / tSerial), "concurrent", Int(Double(count) / tConcurrent),
                  "ratio", String(format: "%.2f", tSerial / tConcurrent),
                  "commands per transaction", String(format: "%.1f", ledger.groupCommitStatistics.averageBatch))
            return
        }
        if let count = argument("--profile-checks").flatMap(Int.init) {
            // a loop of random checks on a ledger of `count` commands, for a profiler (perf record)
            let hotEntries = Int(argument("--hot-entries") ?? "") ?? 1_000_000
            let (dir, ledger) = try scratchLedger("checks", hotEntries: hotEntries)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var g = HistoryGenerator(seed: 7, organisations: max(50, count / 150))
            var accounts: [String] = [], lids: [String] = []
            for _ in 0 ..< count / 1_000 {
                let chunk = g.commands(1_000)
                for c in chunk {
                    if case let .registerUser(a, _) = c.command { accounts.append(a) }
                    if case let .recordAgreement(r) = c.command { lids.append(r.licensingId) }
                }
                _ = try blocking { try ledger.executeBatch(chunk) }
            }
            // --rebuild-first: the checks after a rebuild, as the side-by-side run makes them
            if CommandLine.arguments.contains("--rebuild-first") { _ = try ledger.rebuild() }
            var rng = SeededRandom(seed: 1)
            var ns: [Double] = []
            let actions: [Action] = [.downloadSoftware, .viewLicensingInfo, .manageUsers, .viewProductKeys]
            let rounds = Int(argument("--rounds") ?? "") ?? 1_000_000
            // --pollute BYTES: that much memory written between checks (the side-by-side run's
            // SQLite check runs there and evicts the CPU caches)
            var pollution = [UInt8](repeating: 0, count: Int(argument("--pollute") ?? "") ?? 0)
            for round in 0 ..< rounds {
                for i in stride(from: 0, to: pollution.count, by: 64) { pollution[i] = UInt8(truncatingIfNeeded: round) }
                let a = accounts[rng.below(accounts.count)], l = lids[rng.below(lids.count)], act = actions[rng.below(4)]
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try blocking { try ledger.check(account: a, action: act, licensingId: l) }
                ns.append(Double(DispatchTime.now().uptimeNanoseconds - t0))
            }
            print("check p50", percentile(ns, 0.5), "ns; p99", percentile(ns, 0.99), "ns")
            withExtendedLifetime(pollution) {}
            return
        }
        if let count = argument("--profile-floor").flatMap(Int.init) {
            try await profileFloor(commands: count)
            return
        }
        if let count = argument("--profile-commands").flatMap(Int.init) {
            // where the time goes: each command type timed on its own (noSync, batches of 1000)
            let (dir, ledger) = try scratchLedger("profile")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let key = try AuthorizationKey(bytes: Array("benchmark-authorization-key-32by".utf8))
            var g = HistoryGenerator(seed: 7, organisations: max(50, count / 150))
            var total: [String: (Double, Int)] = [:]
            let memory = DomainState()
            let decider = Decider(authorizationKey: key)
            var decideTotal: [String: Double] = [:]
            for _ in 0 ..< count / 1_000 {
                let chunk = g.commands(1_000)
                for c in chunk {
                    let name = (c.json["command"]).flatMap { if case let .string(s) = $0 { return s } else { return nil } } ?? "?"
                    let t = try seconds { _ = try ledger.executeBatch([c]) }
                    total[name, default: (0, 0)].0 += t
                    total[name, default: (0, 0)].1 += 1
                    var decision: Decision?
                    decideTotal[name, default: 0] += try seconds { decision = try decider.decide(c, state: memory) }
                    if case let .accepted(events)? = decision {
                        for e in events { try Evolver().evolve(memory, e, seq: memory.lastSeq + 1, at: c.time(after: memory.lastAt)) }
                    } else if case let .refused(_, recorded)? = decision {
                        for e in recorded { try Evolver().evolve(memory, e, seq: memory.lastSeq + 1, at: c.time(after: memory.lastAt)) }
                    }
                }
            }
            // the parts of a permission check
            let samples = 20_000
            let empty = try seconds { for _ in 0 ..< samples { try ledger.withState { _ in () } } }
            let account = try seconds { for _ in 0 ..< samples { _ = try ledger.withState { try $0.account("u0-org1") } } }
            let agreement = try seconds { for _ in 0 ..< samples { _ = try ledger.withState { try $0.agreement("EN-1-0") } } }
            let report = try seconds { for _ in 0 ..< samples { _ = try ledger.withState { try $0.roleReport("u0-org1@org1.example", "EN-1-0") } } }
            let check = try seconds { for _ in 0 ..< samples { _ = try ledger.check(account: "u0-org1", action: .downloadSoftware, licensingId: "EN-1-0") } }
            for (name, t) in [("read transaction + state", empty), ("  + account", account), ("  + agreement", agreement), ("  + role report", report), ("check", check)] {
                print(name.padding(toLength: 26, withPad: " ", startingAt: 0), String(format: "%6.2f µs", t / Double(samples) * 1e6))
            }
            for (name, (t, n)) in total.sorted(by: { $0.value.0 > $1.value.0 }) {
                print(name.padding(toLength: 26, withPad: " ", startingAt: 0), n, String(format: "%8.1f µs each on disk (one per txn)   %6.2f µs decide in memory", t / Double(n) * 1e6, (decideTotal[name] ?? 0) / Double(n) * 1e6))
            }
            return
        }
        let n = Int(argument("--events") ?? "") ?? 200_000
        let batch = Int(argument("--batch") ?? "") ?? 1_000
        let seed = UInt64(argument("--seed") ?? "") ?? 7
        let json = CommandLine.arguments.contains("--json")
        let bench = try Bench(commands: n, batch: batch, seed: seed)
        let results = try await bench.run()
        print(json ? results.json : results.table)
    }
}

/// Seconds for `serial` executed one after another (each its own durable commit), then for
/// `concurrent` submitted by 32 tasks each awaiting its own durable commit (group commit).
func durableCommits(_ ledger: PermissionLedger, serial: [TimedCommand], concurrent: [TimedCommand]) async throws -> (Double, Double) {
    let tSerial = try seconds { for c in serial { _ = try ledger.execute(c) } }
    let start = DispatchTime.now().uptimeNanoseconds
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0 ..< 32 {
            group.addTask {
                for i in stride(from: w, to: concurrent.count, by: 32) { _ = try await ledger.submit(concurrent[i]) }
            }
        }
        try await group.waitForAll()
    }
    return (tSerial, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
}

typealias Options = PermissionLedger.Options

/// The event format of the ledgers this run makes: `--event-format N`, else the library's
/// default (2); `--event-format 1` measures the legacy format.
let runFormat: UInt8 = UInt8(Main.argument("--event-format") ?? "") ?? Options().eventFormat

extension PermissionLedger.Options {
    /// These options with the run's event format.
    var inRunFormat: Self { var o = self; o.eventFormat = runFormat; return o }
    /// Options that open a ledger of either format (a child process opening the parent's).
    static var legacyAllowed: Self { var o = Self(); o.eventFormat = 1; return o }
}

/// A fresh `noSync` ledger in a new temporary directory (the caller removes it).
func scratchLedger(_ name: String, hotEntries: Int = 1_000_000) throws -> (String, PermissionLedger) {
    let dir = NSTemporaryDirectory() + "ledger-bench-\(name)-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let key = try AuthorizationKey(bytes: Array("benchmark-authorization-key-32by".utf8))
    return (dir, try PermissionLedger(directory: dir, options: Options(authorizationKey: key, durability: .noSync, hotCacheEntries: hotEntries).inRunFormat))
}

/// The stored bytes of the events `results` appended, in seq order.
func storedEvents(of results: [ExecutionResult], in ledger: PermissionLedger, events: Ledger.LMDBDatabase) throws -> [(UInt64, [UInt8])] {
    let seqs = results.flatMap(\.seqs)
    guard let first = seqs.min(), let last = seqs.max() else { return [] }
    return try ledger.environment.read { txn in
        var stored: [(UInt64, [UInt8])] = []
        for s in first ... last { if let v = try txn.get(events, key: BigEndianKey.bytes(s)) { stored.append((s, v)) } }
        return stored
    }
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func log(_ text: String) {
    FileHandle.standardError.write(Data("· \(text)\n".utf8))
}

final class Bench {
    let commands: Int
    let batch: Int
    let seed: UInt64
    let base = NSTemporaryDirectory() + "ledger-bench-" + UUID().uuidString
    var figures: [(String, Double)] = []

    init(commands: Int, batch: Int, seed: UInt64) throws {
        self.commands = commands
        self.batch = batch
        self.seed = seed
        for d in ["ours", "raw", "sqlite", "small", "asof-small"] {
            try FileManager.default.createDirectory(atPath: base + "/" + d, withIntermediateDirectories: true)
        }
    }

    deinit {
        // --keep: leave the ledgers for inspection (mdb_stat, ledger-tool stats)
        if CommandLine.arguments.contains("--keep") {
            FileHandle.standardError.write(Data("· kept \(base)\n".utf8))
        } else {
            try? FileManager.default.removeItem(atPath: base)
        }
    }

    func record(_ name: String, _ value: Double) { figures.append((name, value)) }

    func run() async throws -> Results {
        let key = try AuthorizationKey(bytes: Array("benchmark-authorization-key-32by".utf8))
        // `--event-format 1`: ours keeps personal values inside the hashed bytes (the legacy format)
        let oursOptions = Options(authorizationKey: key).inRunFormat
        var ours: PermissionLedger? = try PermissionLedger(directory: base + "/ours", options: oursOptions)
        guard let ledger = ours else { throw StateError.readOnly }
        let rawEnv = try LMDBEnvironment.open(path: base + "/raw")
        let rawDB = try rawEnv.openDatabases(["events"])[0]
        let sqlite = try SQLiteAlternative(path: base + "/sqlite/ledger.sqlite")
        var generator = HistoryGenerator(seed: seed, organisations: max(50, commands / 150))
        let oursEvents = try ledger.environment.openDatabases(["events"])[0]

        // 1. Append, interleaved batch by batch: ours (decide + append + projections), raw LMDB
        //    (the same bytes, MDB_APPEND), SQLite (JSON payloads + permission upserts).
        log("append \(commands) commands in batches of \(batch)")
        var tOurs = 0.0, tRaw = 0.0, tSQL = 0.0, events = 0
        var accounts: [String] = [], lids: [String] = [], emails: [String] = []
        var done = 0
        while done < commands {
            let chunk = generator.commands(min(batch, commands - done))
            done += chunk.count
            var results: [ExecutionResult] = []
            tOurs += try seconds { results = try ledger.executeBatch(chunk) }
            let stored = try storedEvents(of: results, in: ledger, events: oursEvents)
            if stored.isEmpty { continue }
            // the events as values (format 2's read back from the vault: not timed)
            let decoded = ledger.eventFormat == 2
                ? try ledger.events(from: stored[0].0, to: stored[stored.count - 1].0)
                : try stored.map { try LedgerEvent(try $0.1.withUnsafeBytes { try Envelope.decode(stored: $0) }) }
            for e in decoded {
                switch e.event {
                case let .userRegistered(a, email): accounts.append(a); emails.append(email)
                case let .agreementRecorded(r): lids.append(r.licensingId)
                default: break
                }
            }
            events += stored.count
            tRaw += try seconds {
                try rawEnv.write { txn in
                    for (s, v) in stored { try txn.put(rawDB, key: BigEndianKey.bytes(s), value: v, flags: .append) }
                }
            }
            tSQL += try seconds { try sqlite.append(decoded) }
        }
        record("events", Double(events))
        record("append_eps", Double(events) / tOurs)
        record("raw_append_eps", Double(events) / tRaw)
        record("sqlite_append_eps", Double(events) / tSQL)

        // 2. Replay: rebuild vs raw cursor scan vs SQLite read + JSON decode + fold (best of 2).
        log("replay")
        var rebuild = 0.0, scan = 0.0, replay = 0.0
        for _ in 0 ..< 2 {
            let r = try ledger.rebuild()
            rebuild = max(rebuild, r.eventsPerSecond)
            var count = 0
            var checksum: UInt8 = 0
            let ts = try seconds {
                try rawEnv.read { txn in
                    try txn.scan(rawDB) { _, v in
                        count += 1
                        checksum ^= v[v.count - 1]
                        return true
                    }
                }
            }
            scan = max(scan, Double(count) / ts)
            var replayed = 0
            let tr = try seconds { replayed = try sqlite.replay() }
            replay = max(replay, Double(replayed) / tr)
            withExtendedLifetime(checksum) {}
        }
        record("rebuild_eps", rebuild)
        record("raw_scan_eps", scan)
        record("sqlite_replay_eps", replay)

        // 3. Permission checks, interleaved.
        log("checks")
        var rng = SeededRandom(seed: seed)
        var ourNs: [Double] = [], sqlNs: [Double] = []
        let roles: [(Action, Role)] = [(.downloadSoftware, .download), (.viewLicensingInfo, .licensingInfo), (.manageUsers, .administrator), (.viewProductKeys, .productKeys)]
        for _ in 0 ..< 20_000 {
            guard let account = accounts.randomElement(using: &rng), let lid = lids.randomElement(using: &rng),
                  let (action, role) = roles.randomElement(using: &rng) else { break }
            let a = DispatchTime.now().uptimeNanoseconds
            _ = try blocking { try ledger.check(account: account, action: action, licensingId: lid) }
            let b = DispatchTime.now().uptimeNanoseconds
            _ = try sqlite.check(account: account, licensingId: lid, role: role)
            let c = DispatchTime.now().uptimeNanoseconds
            ourNs.append(Double(b - a))
            sqlNs.append(Double(c - b))
        }
        record("check_p50_ns", percentile(ourNs, 0.5))
        record("check_p99_ns", percentile(ourNs, 0.99))
        record("sqlite_check_p50_ns", percentile(sqlNs, 0.5))

        // 4. Durable commits: one caller at a time vs 32 concurrent callers (group commit).
        log("durable commits")
        let m = max(640, min(4_000, commands / 50))
        let at = try ledger.log.head().at ?? Timestamp(seconds: 0)
        let serialCommands = generator.commands(m).map { TimedCommand(at: at, $0.command) }
        let concurrentCommands = generator.commands(m).map { TimedCommand(at: at, $0.command) }
        let (tSerial, tConcurrent) = try await durableCommits(ledger, serial: serialCommands, concurrent: concurrentCommands)
        record("durable_serial_eps", Double(m) / tSerial)
        record("durable_concurrent_eps", Double(m) / tConcurrent)
        record("durable_batch_avg", ledger.groupCommitStatistics.averageBatch)

        // 5. As-of questions at random past points: a check, a My Permissions view and an
        //    explain each; then the same on a 100k-event ledger built here (growth).
        log("as-of")
        let asOf = try asOfQuestions(ledger, accounts: accounts, emails: emails, lids: lids, seed: seed)
        record("asof_p50_us", percentile(asOf.all, 0.5))
        record("asof_p99_us", percentile(asOf.all, 0.99))
        record("asof_check_p50_ns", percentile(asOf.checks, 0.5))
        do {
            log("as-of on a 100k-event ledger")
            let small = try PermissionLedger(directory: base + "/asof-small", options: Options(authorizationKey: key, durability: .noSync).inRunFormat)
            var g = HistoryGenerator(seed: seed &+ 2, organisations: max(50, 100_000 / 150))
            var sa: [String] = [], se: [String] = [], sl: [String] = []
            while try small.log.head().seq < 100_000 {
                let chunk = g.commands(1_000)
                for c in chunk {
                    if case let .registerUser(a, email) = c.command { sa.append(a); se.append(email) }
                    if case let .recordAgreement(r) = c.command { sl.append(r.licensingId) }
                }
                _ = try blocking { try small.executeBatch(chunk) }
            }
            let smallAsOf = try asOfQuestions(small, accounts: sa, emails: se, lids: sl, seed: seed)
            record("asof_p50_us_small", percentile(smallAsOf.all, 0.5))
        }

        // 5b. The auditor's questions on the large ledger (issue 14).
        log("audit questions")
        let audit = try auditQuestions(ledger, emails: emails, lids: lids, seed: seed)
        for (name, v) in audit { record(name, v) }
        log("watch latency")
        record("watch_p50_ms", try await watchLatency(ledger))
        log("append with and without the changelog")
        record("append_changelog_ratio", try changelogAppendRatio(commands: min(commands, 60_000), batch: batch, seed: seed))

        // 6. Bytes per event.
        try ledger.environment.sync()
        let fm = FileManager.default
        // format 2: the subject vault beside the log counts too
        let vaultBytes = ((fm.subpaths(atPath: base + "/ours/vault") ?? []).filter { $0.hasSuffix("data.mdb") }
            .compactMap { try? fm.attributesOfItem(atPath: base + "/ours/vault/" + $0)[.size] as? Int }).reduce(0, +)
        let oursBytes = ((try? fm.attributesOfItem(atPath: base + "/ours/data.mdb")[.size] as? Int) ?? 0) + vaultBytes
        let totalEvents = Double(try ledger.log.head().seq)
        record("bytes_per_event", Double(oursBytes) / totalEvents)
        record("sqlite_bytes_per_event", Double(try sqlite.bytesOnDisk()) / Double(events))

        // 6b. Format 2: erasing a subject named by 1,000 events (its roles granted and revoked
        //     in turn, so that it holds none at the end), compaction of the vault included.
        if ledger.eventFormat == 2 {
            log("erase a subject with 1,000 events")
            var at = (try ledger.log.head().at ?? .now).adding(seconds: 60)
            func next(_ c: Command) -> TimedCommand {
                at = at.adding(seconds: 1)
                return TimedCommand(at: at, c)
            }
            let person = "erase-person@bench-erasure.example", lid = "E-ERASE-BENCH"
            var setup: [TimedCommand] = [
                next(.recordAgreement(.init(licensingId: lid, program: .enterpriseAgreement, contacts: [(.primaryContact, "erase-admin@bench-erasure.example")]))),
                next(.registerUser(account: "erase-admin", businessEmail: "erase-admin@bench-erasure.example")), next(.validateEmail(account: "erase-admin")),
                next(.registerUser(account: "erase-person", businessEmail: person)), next(.validateEmail(account: "erase-person")),
            ]
            for _ in 0 ..< 498 {
                setup.append(next(.grantRoles(by: "erase-admin", email: person, licensingId: lid, roles: [.download], saBenefits: [])))
                setup.append(next(.revokeRoles(by: "erase-admin", email: person, licensingId: lid, roles: [.download])))
            }
            let results = try blocking { try ledger.executeBatch(setup) }
            guard results.allSatisfy(\.accepted) else { throw StateError.readOnly }
            var erased: ErasureResult?
            let t = try seconds { erased = try ledger.erase(email: person, legalBasis: .objection, at: at.adding(seconds: 60)) }
            guard let erased, erased.accepted else { throw StateError.readOnly }
            record("erase_s", t)
            record("erase_fields", Double(erased.fieldsErased))
        }

        // 7. Opening: a 10k-event ledger vs the large one, each in a fresh process.
        log("open")
        do {
            let small = try PermissionLedger(directory: base + "/small", options: Options(authorizationKey: key, durability: .noSync).inRunFormat)
            var g = HistoryGenerator(seed: seed &+ 1, organisations: 60)
            while try small.log.head().seq < 10_000 { _ = try blocking { try small.executeBatch(g.commands(1_000)) } }
            try small.environment.sync()
        }
        ours = nil
        func openMs(_ dir: String) throws -> Double {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            child.arguments = ["--open-only", dir]
            let out = Pipe()
            child.standardOutput = out
            try child.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            child.waitUntilExit()
            return Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? .nan
        }
        record("open_ms_small", try openMs(base + "/small"))
        record("open_ms_large", try openMs(base + "/ours"))

        // 8. Peak memory of a rebuild, in a child process.
        log("rebuild memory")
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["--rebuild-only", base + "/ours"]
        let peak = Pipe()
        child.standardOutput = peak
        try child.run()
        let peakText = String(decoding: peak.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        record("rebuild_rss_mb", (Double(peakText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? .nan) / 1024)
        return Results(figures: figures, commands: commands, batch: batch)
    }
}

/// A check, a My Permissions view and an explain, each at 600 random past points of
/// `ledger` after 100 unmeasured rounds (the map's pages warm, as for the head checks):
/// every answer's time in µs, and the checks' in ns.
func asOfQuestions(_ ledger: PermissionLedger, accounts: [String], emails: [String], lids: [String], seed: UInt64) throws -> (all: [Double], checks: [Double]) {
    var rng = SeededRandom(seed: seed ^ 0xA50F)
    let head = try ledger.log.head().seq
    var all: [Double] = [], checks: [Double] = []
    let actions: [Action] = [.downloadSoftware, .viewLicensingInfo, .manageUsers, .viewProductKeys]
    for round in 0 ..< 700 {
        guard head > 2, let account = accounts.randomElement(using: &rng), let email = emails.randomElement(using: &rng),
              let lid = lids.randomElement(using: &rng), let action = actions.randomElement(using: &rng) else { break }
        let point = AsOf.seq(UInt64(1 + rng.below(Int(head) - 2)))
        let a = DispatchTime.now().uptimeNanoseconds
        _ = try ledger.check(account: account, action: action, licensingId: lid, asOf: point)
        let b = DispatchTime.now().uptimeNanoseconds
        _ = try ledger.permissions(email: email, asOf: point)
        let c = DispatchTime.now().uptimeNanoseconds
        _ = try ledger.explain(email: email, licensingId: lid, asOf: point)
        let d = DispatchTime.now().uptimeNanoseconds
        if round < 100 { continue }
        checks.append(Double(b - a))
        all += [Double(b - a) / 1_000, Double(c - b) / 1_000, Double(d - c) / 1_000]
    }
    return (all, checks)
}

struct Results {
    let figures: [(String, Double)]
    let commands: Int
    let batch: Int

    func value(_ name: String) -> Double { figures.first { $0.0 == name }?.1 ?? 0 }

    /// (name, value, target, higher is better)
    var ratios: [(String, Double, Double, Bool)] {
        [
            ("append_vs_sqlite", value("append_eps") / value("sqlite_append_eps"), 5, true),
            ("append_vs_raw", value("append_eps") / value("raw_append_eps"), 0.25, true),
            ("rebuild_vs_sqlite_replay", value("rebuild_eps") / value("sqlite_replay_eps"), 10, true),
            ("rebuild_vs_raw_scan", value("rebuild_eps") / value("raw_scan_eps"), 0.05, true),
            ("durable_concurrent_vs_serial", value("durable_concurrent_eps") / value("durable_serial_eps"), 10, true),
            ("sqlite_check_vs_check", value("sqlite_check_p50_ns") / value("check_p50_ns"), 10, true),
            ("open_large_vs_small", value("open_ms_large") / value("open_ms_small"), 2, false),
            ("bytes_vs_sqlite_bytes", value("bytes_per_event") / value("sqlite_bytes_per_event"), 1, false),
            ("asof_p50_us", value("asof_p50_us"), 1_000, false),
            ("asof_growth", value("asof_p50_us") / value("asof_p50_us_small"), 2, false),
            ("asof_check_vs_check", value("asof_check_p50_ns") / value("check_p50_ns"), 10, false),
            ("rebuild_rss_mb", value("rebuild_rss_mb"), 400, false),
            ("history_p50_us", value("history_p50_us"), 5_000, false),
            ("access_p50_us", value("access_p50_us"), 5_000, false),
            ("diff_us", value("diff_us"), 100_000, false),
            ("append_changelog_ratio", value("append_changelog_ratio"), 0.8, true),
            ("watch_p50_ms", value("watch_p50_ms"), 5, false),
            ("bytes_vs_sqlite_bytes_with_changelog", value("bytes_per_event") / value("sqlite_bytes_per_event"), 2, false),
        ] + (figures.contains { $0.0 == "erase_s" } ? [
            // issue 18, with `--event-format 2`: commitments and sealing cost little; an erasure is quick
            ("format2_append_vs_sqlite", value("append_eps") / value("sqlite_append_eps"), 0.7, true),
            ("erase_s", value("erase_s"), 10, false),
        ] : [])
    }

    func passes(_ r: (String, Double, Double, Bool)) -> Bool { r.3 ? r.1 >= r.2 : r.1 <= r.2 }

    var json: String {
        var fields: [(key: String, value: JSONValue)] = [("commands", .int(Int64(commands))), ("batch", .int(Int64(batch)))]
        for (name, v) in figures { fields.append((name, number(v))) }
        for r in ratios {
            fields.append((r.0, number(r.1)))
            fields.append((r.0 + "_target", number(r.2)))
            fields.append((r.0 + "_pass", .bool(passes(r))))
        }
        return JSONValue.object(fields).text
    }

    func number(_ v: Double) -> JSONValue {
        v.isFinite ? .number(text: v >= 100 ? String(Int(v.rounded())) : String(format: "%.3f", v), int: nil) : .null
    }

    var table: String {
        var out = "ledger-bench: \(commands) commands, batches of \(batch)\n\n"
        let width = figures.map(\.0.count).max() ?? 10
        for (name, v) in figures {
            out += name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + (v >= 100 ? String(Int(v.rounded())) : String(format: "%.3f", v)) + "\n"
        }
        out += "\nratio                          value     target   result\n"
        for r in ratios {
            out += r.0.padding(toLength: 30, withPad: " ", startingAt: 0) + " "
                + String(format: "%8.3f", r.1) + "   " + (r.3 ? "≥ " : "≤ ") + String(format: "%-6g", r.2) + " " + (passes(r) ? "pass" : "short") + "\n"
        }
        return out
    }
}

/// The auditor's questions: the whole history of 300 random emails, the access review of
/// 300 random Licensing IDs at random past points, and diffs between points 10,000 and
/// 1,000 events apart (all emails), after unmeasured warm-up rounds.
func auditQuestions(_ ledger: PermissionLedger, emails: [String], lids: [String], seed: UInt64) throws -> [(String, Double)] {
    var rng = SeededRandom(seed: seed ^ 0x14)
    let head = try ledger.log.head().seq
    var history: [Double] = [], access: [Double] = [], historyChanges = 0
    for round in 0 ..< 350 {
        guard let email = emails.randomElement(using: &rng), let lid = lids.randomElement(using: &rng), head > 2 else { break }
        let point = AsOf.seq(UInt64(1 + rng.below(Int(head) - 1)))
        var n = 0
        let h = try seconds { n = try ledger.history(email: email).get().changes.count }
        let a = try seconds { _ = try ledger.access(licensingId: lid, asOf: point) }
        if round < 50 { continue }
        history.append(h * 1e6)
        access.append(a * 1e6)
        historyChanges += n
    }
    var out: [(String, Double)] = [("history_p50_us", percentile(history, 0.5)), ("history_changes_avg", Double(historyChanges) / Double(max(history.count, 1))),
                                   ("access_p50_us", percentile(access, 0.5))]
    for (name, span) in [("diff", UInt64(10_000)), ("diff_1k", UInt64(1_000))] {
        var times: [Double] = [], changes = 0
        for round in 0 ..< 12 {
            guard head > span + 1 else { break }
            let from = UInt64(rng.below(Int(head - span)))
            var n = 0
            let t = try seconds { n = try ledger.diff(from: .seq(from), to: .seq(from + span)).get().changes.count }
            if round < 2 { continue }
            times.append(t * 1e6)
            changes += n
        }
        out.append(("\(name)_us", percentile(times, 0.5)))
        out.append(("\(name)_changes", Double(changes) / Double(max(times.count, 1))))
    }
    return out
}

/// Commit to delivery through `permissionChanges`: 60 durable commits, each recording a new
/// enrollment with a primary contact (one effective change each), 5 ms apart; the p50 of the
/// time from the commit's return to the feed's delivery (0 when the feed saw it first).
func watchLatency(_ ledger: PermissionLedger) async throws -> Double {
    let head = try ledger.log.head()
    let at = head.at ?? Timestamp(seconds: 0)
    let n = 60
    let delivered = Mutex<[UInt64]>([])
    let follower = Task {
        for try await _ in ledger.permissionChanges(after: head.seq) {
            let count = delivered.withLock { d in
                d.append(DispatchTime.now().uptimeNanoseconds)
                return d.count
            }
            if count >= n { break }
        }
    }
    var committed: [UInt64] = []
    for i in 0 ..< n {
        let command = TimedCommand(at: at, .recordAgreement(.init(licensingId: "WATCH-\(i)-\(head.seq)", program: .enterpriseEnrollment,
                                                                   contacts: [(.primaryContact, "watch-\(i)@bench.example")])))
        _ = try blocking { try ledger.executeBatch([command]) }
        committed.append(DispatchTime.now().uptimeNanoseconds)
        try await Task.sleep(for: .milliseconds(5))
    }
    try await follower.value
    let times = delivered.withLock { $0 }
    return percentile(zip(times, committed).map { Double($0 > $1 ? $0 - $1 : 0) / 1e6 }, 0.5)
}

/// Appends of the same generated commands into two fresh ledgers, interleaved batch by
/// batch, one folding the changelog and one not: events/s with it over events/s without.
func changelogAppendRatio(commands: Int, batch: Int, seed: UInt64) throws -> Double {
    let key = try AuthorizationKey(bytes: Array("benchmark-authorization-key-32by".utf8))
    var dirs: [String] = []
    defer { for d in dirs { try? FileManager.default.removeItem(atPath: d) } }
    func make(_ changelog: Bool) throws -> PermissionLedger {
        let dir = NSTemporaryDirectory() + "ledger-bench-changelog-\(changelog)-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        dirs.append(dir)
        var options = Options(authorizationKey: key, durability: .noSync).inRunFormat
        options.foldsChangelog = changelog
        return try PermissionLedger(directory: dir, options: options)
    }
    let with = try make(true), without = try make(false)
    var g = HistoryGenerator(seed: seed &+ 3, organisations: max(50, commands / 150))
    var tWith = 0.0, tWithout = 0.0, done = 0
    while done < commands {
        let chunk = g.commands(min(batch, commands - done))
        done += chunk.count
        tWithout += try seconds { _ = try without.executeBatch(chunk) }
        tWith += try seconds { _ = try with.executeBatch(chunk) }
    }
    return tWithout / tWith
}

/// Runs `body` as it is: in an async function, a call inside a closure that is not async
/// picks the ledger's sync forms (what the benchmark measures), not their async forms.
func blocking<R>(_ body: () throws -> R) rethrows -> R { try body() }
