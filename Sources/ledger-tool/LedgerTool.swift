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
        Exit codes: 0 success or allowed, 1 denied or integrity failure, 2 bad input or usage.
        Times are ISO-8601 UTC: YYYY-MM-DDTHH:MM:SSZ.
        """,
        version: "0.1.0",
        subcommands: [Init.self, Exec.self, Append.self, Export.self, Events.self, Permissions.self, Check.self, Lockout.self,
                      Admins.self, Explain.self, Verify.self, Rebuild.self, Stats.self, CheckpointCommand.self, RotateKey.self, Generate.self, Follow.self])

    /// Runs the tool with DOMAIN.md's exit codes (usage errors exit 2, not 64).
    static func main() {
        // A file-size limit (ulimit -f) must surface as an error (EFBIG), not kill the tool.
        signal(SIGXFSZ, SIG_IGN)
        do {
            var command = try parseAsRoot()
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
            printError(fullMessage(for: error))
            // Usage errors (ArgumentParser's validation failures) are bad input: exit 2.
            // Anything else that escaped a command is a failure of the ledger: exit 1.
            Foundation.exit(code == .validationFailure ? Exit.badInput.rawValue : Exit.denied.rawValue)
        }
    }
}
