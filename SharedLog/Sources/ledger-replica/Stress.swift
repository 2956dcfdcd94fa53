import ArgumentParser
import Foundation
import Ledger
import Projections
import _LedgerTestSupport
import SharedLog

/// Executes a share of one generated history through the shared log, as one of several
/// hosts: the multi-host tests and the throughput measurement run it in several processes.
struct Stress: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Execute this host's share of a generated history through the shared log.",
        discussion: """
        The history is `ledger-tool generate`'s (seed --seed); this host executes the commands
        i with i mod --hosts = --host, each with an idempotency id derived from (seed, i), so
        a retry after a failure takes effect once. Command times are clamped to the shared
        head (other hosts run ahead). Prints one JSON line per acknowledged command
        ({"i":…,"ok":…,"seq":[…]}) and a summary line; retries while PostgreSQL is down,
        up to --deadline seconds.

        With --batch N, N commands go in one append (SharedLedger.executeBatch).

        Example: ledger-replica stress ./host0 --postgres postgres://ledger@localhost/ledger --host 0 --hosts 3 --commands 3000
        """)
    @OptionGroup var options: ReplicaOptions
    @Option(help: "This host's number, 0 ≤ host < hosts.")
    var host: Int = 0
    @Option(help: "How many hosts share the history.")
    var hosts: Int = 1
    @Option(help: "Commands in the whole history.")
    var commands: Int = 1_000
    @Option(help: "The history's seed.")
    var seed: UInt64 = 7
    @Option(help: "Organisations in the history.")
    var organisations: Int = 50
    @Option(help: "Give up after this many seconds of PostgreSQL being unreachable.")
    var deadline: Int = 120
    @Option(help: "Commands per append (SharedLedger.executeBatch). Default 1.")
    var batch: Int = 1

    func validate() throws {
        if hosts < 1 || hosts > 64 { throw ValidationError("--hosts must be between 1 and 64") }
        if host < 0 || host >= hosts { throw ValidationError("--host must be between 0 and --hosts - 1") }
        if commands < 0 || commands > 10_000_000 { throw ValidationError("--commands must be between 0 and 10000000") }
        if organisations < 1 { throw ValidationError("--organisations must be at least 1") }
        if batch < 1 || batch > 10_000 { throw ValidationError("--batch must be between 1 and 10000") }
    }

    func run() async throws {
        var generator = HistoryGenerator(seed: seed, organisations: organisations)
        let all = generator.commands(commands)
        let shared = try options.open(needsKey: true, clampTime: true)
        let start = ContinuousClock.now
        var executed = 0, accepted = 0, retries = 0
        do {
            _ = try await retrying(&retries) { try await shared.start() }
            let mine = Array(stride(from: host, to: all.count, by: hosts))
            var next = 0
            while next < mine.count {
                let indices = Array(mine[next ..< min(next + batch, mine.count)])
                next += indices.count
                let group = indices.map { i in
                    var command = all[i]
                    command.id = HostWorkload.commandID(seed: seed, index: i)
                    return command
                }
                let results = try await retrying(&retries) { try await shared.executeBatch(group) }
                for (i, result) in zip(indices, results) {
                    executed += 1
                    if result.accepted { accepted += 1 }
                    var fields: [(key: String, value: JSONValue)] = [("i", .int(Int64(i))), ("ok", .bool(result.accepted))]
                    if let refusal = result.refusal { fields.append(("error", .string(refusal.code.rawValue))) }
                    fields.append(("seq", .array(result.seqs.map { .uint($0) })))
                    if result.wasDuplicate { fields.append(("duplicate", .bool(true))) }
                    emit(JSONValue.object(fields).text)
                }
            }
        } catch {
            printError("error: \(error)")
            await shared.close()
            throw Failure(code: 1)
        }
        let elapsed = (ContinuousClock.now - start).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        let head = try shared.local.inspector.head()
        emit(JSONValue.object([("done", .bool(true)), ("host", .int(Int64(host))), ("executed", .int(Int64(executed))),
                                ("accepted", .int(Int64(accepted))), ("retries", .int(Int64(retries))),
                                ("head", .uint(head.seq)), ("seconds", .number(text: String(format: "%.3f", seconds), int: nil))]).text)
        await shared.close()
    }

    /// Runs `body`, retrying while PostgreSQL is unreachable (up to `deadline` seconds).
    private func retrying<R: Sendable>(_ retries: inout Int, _ body: () async throws -> R) async throws -> R {
        let giveUp = ContinuousClock.now + .seconds(deadline)
        while true {
            do {
                return try await body()
            } catch let error as SharedLogError {
                guard case .unavailable = error, ContinuousClock.now < giveUp else { throw error }
                retries += 1
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
