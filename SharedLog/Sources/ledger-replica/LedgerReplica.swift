import ArgumentParser
import Foundation
import Ledger
import Logging
import Projections
import SharedLog

/// `ledger-replica`: keeps a local LMDB ledger as a replica of a PostgreSQL shared log, and
/// writes through that log. `ledger-tool follow` and `ledger-tool verify --postgres` run it.
/// Exit codes as ledger-tool's: 0 done, 1 refused or failed, 2 bad input or usage.
@main
struct LedgerReplica: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-replica",
        abstract: "Replicate a ledger from a PostgreSQL shared log, and write through it.",
        discussion: """
        Each host keeps its ledger directory as a local replica; every query (ledger-tool
        permissions, check, …) reads it. Writes go through the shared log, so the rules hold
        across hosts. The PostgreSQL URL can also be given as $LEDGER_POSTGRES_URL.

        Example: ledger-replica follow ./replica --postgres postgres://ledger@db.internal/ledger
        """,
        version: "1.0.0",
        subcommands: [Follow.self, Exec.self, Erase.self, Verify.self, MakeClusterKey.self, RotateClusterKey.self, Stress.self])

    static func main() async {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)  // stdout carries results
        do {
            var command = try parseAsRoot()
            if var c = command as? AsyncParsableCommand {
                try await c.run()
            } else {
                try command.run()
            }
        } catch let failure as Failure {
            Foundation.exit(failure.code)
        } catch {
            let code = exitCode(for: error)
            if code.rawValue == 0 || code.rawValue == 64 || code.rawValue == 1 && !(error is ExitCode) {
                let message = fullMessage(for: error)
                if !message.isEmpty {
                    FileHandle.standardError.write(Data((message + "\n").utf8))
                }
            }
            if code.rawValue == 64 { Foundation.exit(2) }
            Foundation.exit(code.rawValue)
        }
    }
}

/// Exit with `code` after the message was printed.
struct Failure: Error {
    var code: Int32
}

/// Writes one line to stdout at once (unbuffered: a printed result is an acknowledgement).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// The options every subcommand shares.
struct ReplicaOptions: ParsableArguments {
    @Argument(help: "The local replica's ledger directory (created when missing).")
    var db: String
    @Option(help: "The shared log: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (default: $LEDGER_POSTGRES_URL).")
    var postgres: String?
    @Option(help: "The ledger's name in PostgreSQL (table prefix). Default: ledger.")
    var name: String = "ledger"
    @Option(help: "The authorization key file, the same on every host (default: DB/authorization.key).")
    var keyFile: String?
    @Option(help: "The cluster key file (32 bytes, the same on every host; make one with cluster-key FILE) that personal data is sealed under in PostgreSQL (default: DB/cluster.key).")
    var clusterKeyFile: String?
    @Option(help: "A retired cluster key file (repeatable): items still sealed under it are opened, never sealed under it. During a rotation (rotate-cluster-key).")
    var retiredClusterKeyFile: [String] = []
    @Flag(help: "Log what the replica does on stderr.")
    var verbose = false
    @Option(help: "With --verbose: trace, debug, info (default), notice, warning, error.")
    var logLevel: String = "info"

    /// Opens the replica and the shared log; exits 2 naming what is wrong.
    func open(needsKey: Bool, clampTime: Bool = false) throws -> SharedLedger {
        guard let url = postgres ?? ProcessInfo.processInfo.environment["LEDGER_POSTGRES_URL"], !url.isEmpty else {
            printError("error: --postgres URL is required (or set LEDGER_POSTGRES_URL)")
            throw Failure(code: 2)
        }
        let location: PostgresLocation
        do {
            location = try PostgresLocation(url: url)
        } catch {
            printError("error: --postgres: \(error)")
            throw Failure(code: 2)
        }
        do {
            try FileManager.default.createDirectory(atPath: db, withIntermediateDirectories: true)
        } catch {
            printError("error: can't create the replica directory '\(db)': \(error.localizedDescription)")
            throw Failure(code: 2)
        }
        var options = PermissionLedger.Options()
        var logger = Logger(label: "ledger-replica")
        logger.logLevel = verbose ? (Logger.Level(rawValue: logLevel) ?? .info) : .error
        options.logger = logger
        let keyPath = keyFile ?? db + "/authorization.key"
        if let data = FileManager.default.contents(atPath: keyPath) {
            do {
                options.authorizationKey = try AuthorizationKey(bytes: Array(data))
            } catch {
                printError("error: \(keyPath) is not an authorization key: \(error)")
                throw Failure(code: 2)
            }
        } else if needsKey || keyFile != nil {
            printError("error: the authorization key \(keyPath) is missing: give --key-file (the same key on every host), or copy it into the replica")
            throw Failure(code: 2)
        }
        let clusterPath = clusterKeyFile ?? db + "/cluster.key"
        var clusterKey: ClusterKey?
        if let clusterBytes = FileManager.default.contents(atPath: clusterPath) {
            do {
                clusterKey = try ClusterKey(bytes: Array(clusterBytes))
            } catch {
                printError("error: \(clusterPath): \(error)")
                throw Failure(code: 2)
            }
        } else if clusterKeyFile != nil {
            printError("error: the cluster key \(clusterPath) can't be read")
            throw Failure(code: 2)
        }
        let ledger: PermissionLedger
        do {
            ledger = try PermissionLedger(directory: db, options: options)
        } catch let error as EventFormatError {
            printError("error: \(error)")
            throw Failure(code: 2)
        } catch {
            printError("error: can't open the ledger at '\(db)': \(error)")
            throw Failure(code: 1)
        }
        var retired: [ClusterKey] = []
        for file in retiredClusterKeyFile {
            guard let bytes = FileManager.default.contents(atPath: file) else {
                printError("error: --retired-cluster-key-file \(file) can't be read")
                throw Failure(code: 2)
            }
            do {
                retired.append(try ClusterKey(bytes: Array(bytes)))
            } catch {
                printError("error: \(file): \(error)")
                throw Failure(code: 2)
            }
        }
        if ledger.eventFormat == 2, clusterKey == nil {
            // (a replica made while the shared log carried event format 1 needs none)
            printError("error: the cluster key \(clusterPath) is missing: give --cluster-key-file (the same 32-byte key on every host; make one with `ledger-replica cluster-key FILE`), or copy it into the replica")
            throw Failure(code: 2)
        }
        do {
            return try SharedLedger(local: ledger, location: location,
                                    options: .init(name: name, logger: logger, clampTimeToHead: clampTime, clusterKey: clusterKey,
                                                   retiredClusterKeys: retired))
        } catch {
            printError("error: \(error)")
            throw Failure(code: 2)
        }
    }
}

struct Follow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Catch the replica up with the shared log and keep following it.",
        discussion: """
        Woken by LISTEN/NOTIFY, polling as a fallback; keeps retrying while PostgreSQL is
        down. With --once it catches up and exits, printing the head.

        Example: ledger-replica follow ./replica --postgres postgres://ledger@localhost/ledger --once
        """)
    @OptionGroup var options: ReplicaOptions
    @Flag(help: "Catch up once and exit.")
    var once = false
    @Option(help: "Poll interval in milliseconds when no notification arrives. Default 1000.")
    var pollMs: Int = 1_000

    func validate() throws {
        if pollMs < 10 || pollMs > 3_600_000 { throw ValidationError("--poll-ms must be between 10 and 3600000") }
    }

    func run() async throws {
        let shared = try options.open(needsKey: false)
        do {
            let head = try await shared.start()
            emit("caught up: seq \(head.seq) hash \(Hex.encode(head.hash))")
            if once {
                await shared.close()
                return
            }
            let last = LastHead(head.seq)
            try await shared.follow { head in
                // one line per change of head, not one per poll
                if last.exchange(head.seq) != head.seq { emit("head \(head.seq)") }
            }
        } catch let error as SharedLogError {
            printError("error: \(error)")
            await shared.close()
            throw Failure(code: 1)
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare the replica with the shared log, event by event, and verify it.",
        discussion: """
        Exit 0 when every event the replica has is the shared log's (same seq, id and hash),
        the replica is not ahead, and its own chain and projections verify; a replica that is
        merely behind is reported and still exits 0. Exit 1 otherwise.

        Example: ledger-replica verify ./replica --postgres postgres://ledger@localhost/ledger
        """)
    @OptionGroup var options: ReplicaOptions

    func run() async throws {
        let shared = try options.open(needsKey: false)
        defer { Task { await shared.close() } }
        let comparison: ReplicaComparison
        do {
            try await shared.store.ensureSchema()
            comparison = try await shared.compare()
        } catch {
            printError("error: \(error)")
            throw Failure(code: 1)
        }
        let local = try shared.local.verify()
        emit("replica head \(comparison.localHead), shared head \(comparison.sharedHead), \(comparison.checked) events compared")
        if let bad = comparison.firstMismatch {
            emit("MISMATCH at seq \(bad): the replica's event differs from the shared log's")
        } else if comparison.localHead > comparison.sharedHead {
            emit("MISMATCH: the replica is ahead of the shared log (written outside it)")
        } else if comparison.localHead < comparison.sharedHead {
            emit("behind by \(comparison.sharedHead - comparison.localHead) events (run follow to catch up)")
        } else {
            emit("in step")
        }
        emit(local.ok ? "local chain and projections: ok" : "local: \(local.log.problem ?? local.projectionProblem ?? "bad")")
        if !comparison.consistent || !local.ok { throw Failure(code: 1) }
    }
}

struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Execute commands (JSON Lines, as ledger-tool exec) through the shared log.",
        discussion: """
        One result line per command, printed once the events are in PostgreSQL and applied
        locally: {"line":N,"ok":true,"seq":[…]} or {"line":N,"ok":false,"error":CODE,…}.
        Commands with an "id" take effect exactly once however often they are retried.

        Example: ledger-replica exec ./replica commands.jsonl --postgres postgres://ledger@localhost/ledger
        """)
    @OptionGroup var options: ReplicaOptions
    @Argument(help: "The commands file (default: standard input).")
    var file: String?
    @Option(help: "Append this many commands at once (one PostgreSQL transaction); each is still decided on its own. Default 1.")
    var batch: Int = 1

    func validate() throws {
        if batch < 1 || batch > 10_000 { throw ValidationError("--batch must be between 1 and 10000") }
    }

    func run() async throws {
        let data: Data
        if let file {
            guard let d = FileManager.default.contents(atPath: file) else {
                printError("error: can't read \(file)")
                throw Failure(code: 2)
            }
            data = d
        } else {
            data = FileHandle.standardInput.readDataToEndOfFile()
        }
        var commands: [(Int, TimedCommand)] = []
        for (i, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            do {
                commands.append((i + 1, try TimedCommand(json: try JSONParser.parse(line))))
            } catch {
                printError("\(file ?? "stdin"):\(i + 1): \(error)")
                throw Failure(code: 2)
            }
        }
        let shared = try options.open(needsKey: true)
        do {
            try await shared.start()
            var next = 0
            while next < commands.count {
                let group = Array(commands[next ..< min(next + batch, commands.count)])
                next += group.count
                let results = try await shared.executeBatch(group.map(\.1))
                for ((number, _), result) in zip(group, results) { emit(resultLine(number, result)) }
            }
        } catch let error as SharedLogError {
            printError("error: \(error)")
            await shared.close()
            throw Failure(code: 1)
        }
        await shared.close()
    }
}

struct Erase: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Erase a person's personal data (R15) through the shared log.",
        discussion: """
        Decided at the shared head as ledger-tool erase decides it; subjectErased is appended
        to PostgreSQL in the transaction that empties the subject's sealed items there, then
        applied here, which erases this replica's vault. Every other replica erases when it
        applies the event (online, or when it next catches up). Refused (exit 1) with
        unknownEmail, alreadyErased or subjectHoldsAccess.

        Prints {"ok":true,"seq":[…],"subject":PSEUDONYM,"fieldsErased":N} or {"ok":false,"error":CODE,"message":…,"seq":[]}.

        Example: ledger-replica erase ./replica --email zelda@contoso.example --legal-basis objection --postgres postgres://ledger@localhost/ledger
        """)
    @OptionGroup var options: ReplicaOptions
    @Option(help: "The email whose subject is erased.") var email: String
    @Option(help: "consentWithdrawn, noLongerNecessary, objection, unlawful or legalObligation.") var legalBasis: String

    func run() async throws {
        guard let basis = LegalBasis(rawValue: legalBasis) else {
            printError("error: --legal-basis '\(legalBasis)' is not one of \(LegalBasis.allCases.map(\.rawValue).joined(separator: ", "))")
            throw Failure(code: 2)
        }
        let shared = try options.open(needsKey: false)
        let result: ErasureResult
        do {
            try await shared.start()
            result = try await shared.erase(email: email, legalBasis: basis)
        } catch let error as SharedLogError {
            printError("error: \(error)")
            await shared.close()
            throw Failure(code: 1)
        }
        await shared.close()
        emit(result.json.text)
        if !result.accepted { throw Failure(code: 1) }
    }
}

struct MakeClusterKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster-key",
        abstract: "Write a new cluster key (32 random bytes) to FILE, readable by its owner only.",
        discussion: """
        Every host of one shared log needs the same cluster key (--cluster-key-file, or
        DB/cluster.key): personal data is sealed under it in PostgreSQL. Refuses to overwrite.

        Example: ledger-replica cluster-key ./replica/cluster.key
        """)
    @Argument(help: "Where to write the key.") var file: String

    func run() throws {
        guard !FileManager.default.fileExists(atPath: file) else {
            printError("error: \(file) exists: a cluster key is never overwritten (every host needs the same one)")
            throw Failure(code: 2)
        }
        let bytes = try ClusterKey.generate()
        guard FileManager.default.createFile(atPath: file, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
            printError("error: can't write \(file)")
            throw Failure(code: 2)
        }
        emit("wrote a cluster key to \(file) (id \(try ClusterKey(bytes: bytes).idHex))")
    }
}

struct RotateClusterKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-cluster-key",
        abstract: "Seal every item of the shared log that a retired key seals again under the cluster key.",
        discussion: """
        The rotation, with no host stopped: make a new key (cluster-key NEW); give every host NEW
        as --retired-cluster-key-file beside its key; then make NEW every host's
        --cluster-key-file and the old key its --retired-cluster-key-file; then run this with the
        same pair. It prints {"ok", "keyID", "resealed", "sealedByKey"}; "ok" is true (exit 0) when
        every live item is under NEW, and the old key can then be destroyed on every host — what
        PostgreSQL's dead tuples, WAL and backups kept, sealed under it, can't be read any more.
        Exit 1 while a host still seals under another key. Safe to run again.

        Example: ledger-replica rotate-cluster-key ./replica --cluster-key-file new.key --retired-cluster-key-file old.key --postgres postgres://ledger@localhost/ledger
        """)
    @OptionGroup var options: ReplicaOptions

    func run() async throws {
        let shared = try options.open(needsKey: false)
        let rotation: ClusterKeyRotation
        do {
            rotation = try await shared.rotateClusterKey()
        } catch let error as SharedLogError {
            printError("error: \(error)")
            await shared.close()
            throw Failure(code: error == .clusterKeyMissing ? 2 : 1)
        }
        await shared.close()
        let byKey = rotation.sealedByKey.sorted { $0.key < $1.key }.map { (key: $0.key, value: JSONValue.int(Int64($0.value))) }
        emit(JSONValue.object([("ok", .bool(rotation.done)), ("keyID", .string(rotation.keyID)),
                               ("resealed", .int(Int64(rotation.resealed))), ("sealedByKey", .object(byKey))]).text)
        if !rotation.done { throw Failure(code: 1) }
    }
}

func resultLine(_ number: Int, _ result: ExecutionResult) -> String {
    var fields: [(key: String, value: JSONValue)] = [("line", .int(Int64(number))), ("ok", .bool(result.accepted))]
    if let refusal = result.refusal {
        fields.append(("error", .string(refusal.code.rawValue)))
        fields.append(("message", .string(refusal.message)))
    }
    fields.append(("seq", .array(result.seqs.map { .uint($0) })))
    if result.wasDuplicate { fields.append(("duplicate", .bool(true))) }
    return JSONValue.object(fields).text
}


/// The last head `follow` printed.
final class LastHead: @unchecked Sendable {
    private let lock = NSLock()
    private var seq: UInt64
    init(_ seq: UInt64) { self.seq = seq }
    func exchange(_ new: UInt64) -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        let old = seq
        seq = new
        return old
    }
}
