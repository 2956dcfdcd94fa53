import ArgumentParser
import Foundation

/// The PostgreSQL shared log is an optional part (the `SharedLog/` package, so the core
/// build never compiles postgres-nio). ledger-tool's `follow` and `verify --postgres` run
/// its `ledger-replica` program, found as: $LEDGER_REPLICA, next to ledger-tool, on PATH,
/// or in this checkout's SharedLog/.build.
enum SharedLogPart {
    static func replicaPath() -> String? {
        let fm = FileManager.default
        if let explicit = ProcessInfo.processInfo.environment["LEDGER_REPLICA"], !explicit.isEmpty {
            return fm.isExecutableFile(atPath: explicit) ? explicit : nil
        }
        let exe = URL(fileURLWithPath: (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        let dir = exe.deletingLastPathComponent()
        var candidates = [dir.appendingPathComponent("ledger-replica").path]
        for p in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            candidates.append(String(p) + "/ledger-replica")
        }
        // a checkout: REPO/.build/CONFIG/ledger-tool → REPO/SharedLog/.build/CONFIG/ledger-replica
        let config = dir.lastPathComponent
        let repo = dir.deletingLastPathComponent().deletingLastPathComponent()
        for c in [config, "release", "debug"] {
            candidates.append(repo.appendingPathComponent("SharedLog/.build/\(c)/ledger-replica").path)
        }
        return candidates.first { fm.isExecutableFile(atPath: $0) }
    }

    /// Replaces this process with `ledger-replica ARGS` (its output and exit code are the
    /// command's); exits 2 with a clear message when the optional part is not built.
    static func run(_ args: [String]) throws -> Never {
        guard let path = replicaPath() else {
            printError("""
                error: sharedLogNotBuilt: the PostgreSQL shared log is an optional part; build it with
                  swift build --package-path SharedLog --product ledger-replica
                or set LEDGER_REPLICA to its ledger-replica program
                """)
            throw Failure(code: Exit.badInput)
        }
        let argv = ([path] + args).map { strdup($0) } + [nil]
        execv(path, argv)
        printError("error: can't run \(path): \(String(cString: strerror(errno)))")
        throw Failure(code: Exit.denied)
    }
}

struct Follow: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replicate this ledger from a PostgreSQL shared log (keeps following).",
        discussion: """
        The directory becomes (or stays) a local replica of the shared log: every event is pulled in order, checked and applied with the same projections, so every other command here reads it locally. Woken by LISTEN/NOTIFY with polling as a fallback; --once catches up and exits. Runs ledger-replica from the optional SharedLog package.

        Example:
          ledger-tool follow ./replica --postgres \\
              postgres://ledger@db.internal/ledger --once
        """)

    @Argument(help: "The replica's ledger directory (created when missing).")
    var db: String
    @Option(help: "The shared log: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE.")
    var postgres: String
    @Option(help: "The ledger's name in PostgreSQL (table prefix). Default: ledger.")
    var name: String?
    @Flag(help: "Catch up once and exit.")
    var once = false
    @Option(help: "Poll interval in milliseconds when no notification arrives.")
    var pollMs: Int?
    @Option(help: "The cluster key file personal data is sealed under in PostgreSQL, the same on every host. Default: DB/cluster.key.")
    var clusterKeyFile: String?
    @Option(help: "A retired cluster key (repeatable): items still sealed under it are opened, never sealed under it (during a rotation).")
    var retiredClusterKeyFile: [String] = []

    func run() throws {
        var args = ["follow", db, "--postgres", postgres]
        if let name { args += ["--name", name] }
        if let clusterKeyFile { args += ["--cluster-key-file", clusterKeyFile] }
        for file in retiredClusterKeyFile { args += ["--retired-cluster-key-file", file] }
        if once { args.append("--once") }
        if let pollMs { args += ["--poll-ms", String(pollMs)] }
        try SharedLogPart.run(args)
    }
}
