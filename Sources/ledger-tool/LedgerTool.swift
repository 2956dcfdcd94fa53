import ArgumentParser
import Foundation
import Ledger
import Projections

@main
struct LedgerTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-tool",
        abstract: "Inspect, verify, export/import and rebuild a permission ledger.",
        discussion: """
        Exit codes: 0 success or allowed, 1 denied or integrity failure, 2 bad input or usage. Times are ISO-8601 UTC: YYYY-MM-DDTHH:MM:SSZ. Every query of state takes a point: --as-of-seq N (the state after event N) or --as-of TIME (the events with at ≤ TIME); check and lockout also take --at TIME.
        """,
        version: "0.1.0",
        subcommands: [Init.self, Exec.self, Erase.self, Upgrade.self, Append.self, Export.self, Events.self, Permissions.self, Check.self, Lockout.self,
                      Admins.self, Explain.self, Access.self, History.self, Diff.self, WhatIf.self, Watch.self, Verify.self, Rebuild.self, Stats.self, CheckpointCommand.self, Keygen.self, RotateKey.self, Generate.self, Follow.self])

    /// Runs the tool with DOMAIN.md's exit codes (usage errors exit 2, not 64) and its
    /// usage convention: one line on stderr naming the flag, with the nearest valid name for
    /// a mistyped command or flag.
    static func main() {
        // A file-size limit (ulimit -f) must surface as an error (EFBIG), not kill the tool.
        signal(SIGXFSZ, SIG_IGN)
        let (problem, arguments) = Usage.check(Array(CommandLine.arguments.dropFirst()))
        if let problem {
            printError(problem)
            Foundation.exit(Exit.badInput.rawValue)
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch let failure as Failure {
            Foundation.exit(failure.code.rawValue)
        } catch let code as ExitCode {
            Foundation.exit(code == .validationFailure ? Exit.badInput.rawValue : code.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            // Usage errors (ArgumentParser's validation failures) are bad input: exit 2, one line.
            // Anything else that escaped a command is a failure of the ledger: exit 1.
            let command = arguments.first.flatMap { name in configuration.subcommands.contains { $0._commandName == name } ? name : nil }
            let hint = code == .validationFailure ? " (see 'ledger-tool \(command.map { $0 + " " } ?? "")--help')" : ""
            let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            printError("error: " + lowercasedFirst(message) + hint)
            Foundation.exit(code == .validationFailure ? Exit.badInput.rawValue : Exit.denied.rawValue)
        }
    }

    /// "Missing value…" → "missing value…", so every error line reads alike.
    static func lowercasedFirst(_ text: String) -> String {
        guard let first = text.first, first.isUppercase, text.dropFirst().first?.isLowercase == true else { return text }
        return first.lowercased() + text.dropFirst()
    }
}
