import ArgumentParser
import Foundation
import Ledger
import Projections
import _LedgerTestSupport

/// Child processes for the reliability suites (crash, concurrency, stale readers). Not an
/// operator tool: tests start it, kill it, and check what it acknowledged.
@main
struct LedgerHarness: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-harness",
        abstract: "Child processes for the reliability test suites.",
        subcommands: [CrashChild.self, Stress.self, HoldRead.self, VaultEraser.self, VaultAssigner.self, LedgerEraser.self, LegacyLedger.self])
}

/// Prints a line and flushes at once, so an acknowledgement reaches the parent before the
/// next commit starts.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

let harnessKey: AuthorizationKey = {
    (try? AuthorizationKey(bytes: Array("reliability-suite-fixed-key-32by".utf8))) ?? AuthorizationKey.generate().key
}()

struct CrashChild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crash-child",
        abstract: "Execute generated commands with durable commits, printing `ack SEQ HASH` after each commit.")

    @Argument var db: String
    @Option var seed: UInt64
    @Option var commands: Int = 1_000_000
    @Option(name: .customLong("initial-map-size")) var initialMapSize: Int = 64 << 20
    @Flag(name: .customLong("keep-going"), help: "Print `fail ERROR` for a command that throws and go on (fault injection).") var keepGoing = false
    @Flag(name: .customLong("no-sync"), help: "Commit without flushing and acknowledge anyway (the power-loss suite's control: it must see losses).") var noSync = false

    func run() throws {
        let ledger = try PermissionLedger(directory: db, options: .init(authorizationKey: harnessKey, durability: noSync ? .noSync : .durable,
                                                                        initialMapSize: initialMapSize))
        let head = try ledger.inspector.head()
        var generator = HistoryGenerator(seed: seed, organisations: 50, start: head.at ?? Timestamp(seconds: 1_767_225_600), namespace: "s\(seed)x")
        say("ready \(head.seq)")
        for _ in 0 ..< commands {
            let result: ExecutionResult
            do {
                result = try ledger.execute(generator.next())
            } catch where keepGoing {
                // a failed command is reported, never acknowledged; the next one is tried
                say("fail \(String(describing: error).replacingOccurrences(of: "\n", with: " "))")
                continue
            }
            for seq in result.seqs {
                let hash = try ledger.inspector.event(seq).map { Hex.encode($0.hash) } ?? "?"
                say("ack \(seq) \(hash)")
            }
        }
    }
}

struct Stress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Threads executing commands with ids (and retries reusing them), printing `ack ID SEQ…`.")

    @Argument var db: String
    @Option var threads: Int = 4
    @Option var commands: Int = 100
    @Option var seed: UInt64
    @Option var at: String
    @Option(help: "Instead of random commands, attempt Add Open License with a wrong number for this account.") var burstAccount: String?
    @Option(name: .customLong("license")) var license: String = "OL-BURST"

    func run() throws {
        guard let time = Timestamp(iso8601: at) else { throw ValidationError("--at") }
        let ledger = try PermissionLedger(directory: db, options: .init(authorizationKey: harnessKey, durability: .durable))
        let lock = NSLock()
        let failures = Box()
        let seed = self.seed, commands = self.commands, burst = burstAccount, license = self.license
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            var rng = SeededRandom(seed: seed &* 1_000_003 &+ UInt64(thread))
            var generator = HistoryGenerator(seed: seed &+ UInt64(thread) &* 7_919, organisations: 3, start: time, namespace: "p\(seed)t\(thread)x")
            for _ in 0 ..< commands {
                var bytes = [UInt8](repeating: 0, count: 16)
                for i in 0 ..< 16 { bytes[i] = UInt8(truncatingIfNeeded: rng.next()) }
                bytes[6] = (bytes[6] & 0x0F) | 0x40
                bytes[8] = (bytes[8] & 0x3F) | 0x80
                let id = bytes.withUnsafeBytes { UUID(uuid: $0.loadUnaligned(as: uuid_t.self)) }
                let command: Command = burst.map {
                    .addOpenLicense(account: $0, licenseNumber: license, authorizationNumber: "WRONG-\(thread)", acknowledged: true)
                } ?? generator.next().command
                let timed = TimedCommand(at: time, command, id: id)
                do {
                    let first = try ledger.execute(timed)
                    if rng.chance(0.25) {
                        // a retry reusing the ids: must append nothing and answer the same seqs
                        let again = try ledger.execute(timed)
                        if !first.seqs.isEmpty && again.seqs != first.seqs { failures.add("retry of \(id) answered \(again.seqs) not \(first.seqs)") }
                    }
                    lock.lock()
                    say("ack \(id.uuidString.lowercased()) \(first.seqs.map(String.init).joined(separator: ","))")
                    lock.unlock()
                } catch {
                    failures.add("\(error)")
                }
            }
        }
        if let problem = failures.first {
            FileHandle.standardError.write(Data("stress failed: \(problem)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct HoldRead: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hold-read", abstract: "Open a read transaction, say `ready`, and hold it until killed.")

    @Argument var db: String

    func run() throws {
        let env = try LMDBEnvironment.open(path: db)
        let log = try EventLog(environment: env)
        try env.read { txn in
            let head = try log.head(in: txn)
            say("ready \(head.seq)")
            while true { sleep(60) }
        }
    }
}

/// The vault and the emails `PREFIX0@contoso.example` … `PREFIX(N-1)@contoso.example` a vault
/// child works on.
struct VaultSubjects: ParsableArguments {
    @Argument var vault: String
    @Option var count: Int
    @Option var prefix: String

    func email(_ i: Int) -> String { "\(prefix)\(i)@contoso.example" }

    /// Opens the vault and tells the parent.
    func open() throws -> SubjectVault {
        let store = try SubjectVault(directory: vault)
        say("ready")
        return store
    }
}

struct VaultEraser: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vault-erase",
        abstract: "Erase the subjects of PREFIX0@… to PREFIX(N-1)@… from a subject vault, one by one, printing `erasing I` and `erased I` around each.")

    @OptionGroup var subjects: VaultSubjects

    func run() throws {
        let store = try subjects.open()
        for i in 0 ..< subjects.count {
            guard let subject = try store.subject(email: subjects.email(i)) else { continue }
            say("erasing \(i)")
            try store.erase(subject)
            say("erased \(i)")
        }
    }
}

struct VaultAssigner: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vault-assign",
        abstract: "Assign subjects to PREFIX0@… to PREFIX(N-1)@… in a subject vault, ten per transaction, printing `ack I` for each once its transaction committed.")

    @OptionGroup var subjects: VaultSubjects

    func run() throws {
        let store = try subjects.open()
        for start in stride(from: 0, to: subjects.count, by: 10) {
            let range = start ..< min(subjects.count, start + 10)
            let batch = store.batch()
            for i in range { _ = try batch.subject(email: subjects.email(i)) }
            try batch.commit()
            for i in range { say("ack \(i)") }
        }
    }
}

struct LedgerEraser: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-erase",
        abstract: "Erase PREFIX0@contoso.example … PREFIX(N-1)@… from a format-2 ledger (R15), one by one, printing `erasing I` and `erased I SEQ` around each.")

    @Argument var db: String
    @Option var count: Int
    @Option var prefix: String

    func run() throws {
        var options = PermissionLedger.Options(authorizationKey: harnessKey)
        options.eventFormat = 2
        let ledger = try PermissionLedger(directory: db, options: options)
        say("ready")
        var at = try ledger.inspector.head().at ?? Timestamp(seconds: 1_767_225_600)
        for i in 0 ..< count {
            at = at.adding(seconds: 1)
            say("erasing \(i)")
            let result = try ledger.erase(email: "\(prefix)\(i)@contoso.example", legalBasis: .consentWithdrawn, at: at)
            say(result.accepted ? "erased \(i) \(result.seqs.first ?? 0)" : "refused \(i) \(result.refusal?.code.rawValue ?? "")")
        }
    }
}

struct LegacyLedger: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "legacy-ledger",
        abstract: "Write a ledger of the legacy event format 1 in DB (as earlier releases did; `ledger-tool` refuses to write one) from the exec lines of FILE, with an authorization key file, to test `ledger-tool upgrade`.")

    @Argument var db: String
    @Argument var file: String

    func run() throws {
        let key = try AuthorizationKey.readOrCreate(inLedger: db)
        var options = PermissionLedger.Options(authorizationKey: key)
        options.eventFormat = 1
        let ledger = try PermissionLedger(directory: db, options: options)
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let commands = try text.split(separator: "\n").filter { !$0.allSatisfy(\.isWhitespace) }.map { line in
            try TimedCommand(json: JSONParser.parse(Array(line.utf8)))
        }
        let results = try ledger.executeBatch(commands)
        say("executed \(results.count) commands, \(results.filter(\.accepted).count) accepted")
    }
}

final class Box: @unchecked Sendable {
    private let lock = NSLock()
    private var problems: [String] = []
    func add(_ p: String) { lock.lock(); problems.append(p); lock.unlock() }
    var first: String? { lock.lock(); defer { lock.unlock() }; return problems.first }
}
