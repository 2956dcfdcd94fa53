import ArgumentParser
import Foundation
import Ledger
import Projections
import _LedgerTestSupport

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a large, valid, deterministic history of many organisations as exec commands.",
        discussion: """
        For benchmarks and soak tests. The same --seed always writes the same commands.

        Example:
          ledger-tool generate --commands 1000000 --organisations 5000 --seed 7 \\
              --to big.jsonl
        """)

    @Option(help: "How many commands.") var commands: Int = 10_000
    @Option(help: "How many organisations at most.") var organisations: Int = 500
    @Option(help: "The random seed.") var seed: UInt64 = 1
    @Option(help: "Write to this file instead of standard output.") var to: String?

    func validate() throws {
        if commands < 0 { throw ValidationError("--commands must not be negative") }
        if organisations < 1 { throw ValidationError("--organisations must be at least 1") }
    }

    func run() throws {
        let handle = try outputHandle(to: to)
        var generator = HistoryGenerator(seed: seed, organisations: organisations)
        let out = Output(handle: handle)
        for _ in 0 ..< commands { out.line(generator.next().json.text) }
        out.flush()
    }
}
