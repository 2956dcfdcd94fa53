import ArgumentParser
import Projections

/// Reads the command line before swift-argument-parser does, so that a mistyped command or
/// flag is the first thing reported, with the nearest valid name (DOMAIN.md §6: "did you
/// mean …"). Without this, `permissions DB --acount A` is reported as "give exactly one of
/// --email or --account" and `check --acount …` as a missing `--account`.
///
/// The flags of each command are read from its own help screen, so there is no second list
/// to keep in step with the commands.
enum Usage {
    /// A usage problem found in `arguments` (the words after the tool's name): an unknown
    /// command or flag. Also returns the arguments to parse: an option's value that starts
    /// with `-` (`--from -1`) is joined to its flag (`--from=-1`), so the parser reports the
    /// value as invalid instead of as missing.
    static func check(_ arguments: [String]) -> (problem: String?, arguments: [String]) {
        guard let name = arguments.first, !name.hasPrefix("-"), name != "help" else { return (nil, arguments) }
        let commands = LedgerTool.configuration.subcommands
        let names = commands.map { $0._commandName }
        guard let command = commands.first(where: { $0._commandName == name }) else {
            var text = "error: unknown command '\(name)'"
            if let near = Spelling.nearest(name, among: names) { text += "; did you mean '\(near)'?" }
            return (text + (text.hasSuffix("?") ? " " : "; ") + "the commands: " + names.joined(separator: ", "), arguments)
        }
        let options = self.options(of: command)
        var out = [name]
        var i = 1
        while i < arguments.count {
            let word = arguments[i]
            out.append(word)
            i += 1
            if word == "--" {
                out.append(contentsOf: arguments[i...])
                break
            }
            guard word.hasPrefix("--") else { continue }
            let flag = String(word.dropFirst(2).prefix { $0 != "=" })
            guard let takesValue = options[flag] else {
                var text = "error: unknown option '--\(flag)' for '\(name)'"
                if let near = Spelling.nearest(flag, among: Array(options.keys)) {
                    text += "; did you mean '--\(near)'?"
                } else {
                    text += "; its options: " + options.keys.sorted().map { "--" + $0 }.joined(separator: ", ")
                }
                return (text + " (see 'ledger-tool \(name) --help')", arguments)
            }
            if takesValue && !word.contains("="), i < arguments.count {
                let value = arguments[i]
                if value.hasPrefix("-") && value != "-" && !isFlag(value, of: options) {
                    out[out.count - 1] = word + "=" + value
                } else {
                    out.append(value)
                }
                i += 1
            }
        }
        return (nil, out)
    }

    /// Whether `word` names one of `options` (or `-h`).
    static func isFlag(_ word: String, of options: [String: Bool]) -> Bool {
        if word == "-h" { return true }
        guard word.hasPrefix("--") else { return false }
        return options[String(word.dropFirst(2).prefix { $0 != "=" })] != nil
    }

    /// The long flags of `command` and whether each takes a value, read from the OPTIONS
    /// section of its help screen (one option a line at a wide width: `  --from <n>   …`).
    static func options(of command: ParsableCommand.Type) -> [String: Bool] {
        let help = LedgerTool.helpMessage(for: command, includeHidden: true, columns: 10_000)
        var options: [String: Bool] = [:]
        var inOptions = false
        for line in help.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix(" ") {
                inOptions = line.hasSuffix("OPTIONS:")
                continue
            }
            guard inOptions else { continue }
            // the flags come first, then two spaces, then the description
            let trimmed = line.drop { $0 == " " }
            let spec = trimmed.range(of: "  ").map { trimmed[..<$0.lowerBound] } ?? trimmed
            for part in spec.split(separator: ",") {
                let words = part.split(separator: " ")
                guard let first = words.first, first.hasPrefix("--") else { continue }
                options[String(first.dropFirst(2))] = words.count > 1
            }
        }
        return options
    }
}
