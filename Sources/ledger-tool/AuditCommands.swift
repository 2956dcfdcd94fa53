import ArgumentParser
import Foundation
import Ledger
import Projections

// The auditor's questions (DOMAIN.md §4.1): access, history, diff, what-if, watch.

struct Access: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Access review: everyone holding any role on a Licensing ID at a point (default: the head).",
        discussion: """
        Each principal with its roles, SA benefits, the sources behind them (contact, grant, openLicense, reseller, inherited) and the account whose validated business email it is at that point. A Licensing ID not recorded at the point is refused with unknownLicensingId (exit 1).

        Example:
          ledger-tool access ./ledger --licensing-id EN-CONTOSO-2 --as-of 2026-03-01T00:00:00Z
        """)

    @OptionGroup var location: LedgerLocation
    @Option(name: .customLong("licensing-id"), help: "The Licensing ID.") var licensingId: String
    @OptionGroup var asOf: PointOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let point = try asOf.point()
        let ledger = try location.open()
        let review: AccessReview
        switch try ledger.access(licensingId: licensingId, asOf: point) {
        case let .success(r): review = r
        case let .failure(e): try refuse(e, json: json)
        }
        let out = Output()
        if json {
            out.line(review.json.text)
        } else {
            out.line("Access to \(licensingId) as of seq \(review.asOfSeq): \(review.principals.count) principal\(review.principals.count == 1 ? "" : "s")")
            printTable(["email", "account", "roles", "saBenefits", "sources"], review.principals.map { p in
                [safe(p.email), p.account.map(safe) ?? "-", list(p.permissions.roles.map(\.rawValue)),
                 list(p.permissions.saBenefits.map(\.rawValue)), list(p.sources.map(\.rawValue))]
            }, to: out)
        }
        out.flush()
    }
}

/// `--from-seq N | --from TIME` and `--to-seq M | --to TIME`.
struct RangeOptions: ParsableArguments {
    @Option(name: .customLong("from-seq"), help: ArgumentHelp("From the state after event N (exclusive).", valueName: "n")) var fromSeq: UInt64?
    @Option(help: ArgumentHelp("From the state at this time (its events excluded).", valueName: "time")) var from: String?
    @Option(name: .customLong("to-seq"), help: ArgumentHelp("Up to the state after event M (inclusive; default: the head).", valueName: "n")) var toSeq: UInt64?
    @Option(help: ArgumentHelp("Up to the state at this time (its events included).", valueName: "time")) var to: String?

    func validate() throws {
        if fromSeq != nil && from != nil { throw ValidationError("give at most one of --from-seq or --from") }
        if toSeq != nil && to != nil { throw ValidationError("give at most one of --to-seq or --to") }
    }

    func fromPoint() throws -> AsOf? {
        if let fromSeq { return .seq(fromSeq) }
        return try from.map { .time(try parseTime($0, flag: "--from")) }
    }

    func toPoint() throws -> AsOf? {
        if let toSeq { return .seq(toSeq) }
        return try to.map { .time(try parseTime($0, flag: "--to")) }
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every effective change of an email's permissions between two points, as a timeline.",
        discussion: """
        Each change names the event that made it (seq, time, type), the Licensing ID, and the roles and SA benefits just before and after — cascades included (an administrator grant on a parent agreement, an opt-out, a contact on an ancestor). From is exclusive (default: the empty state), to inclusive (default: the head). With --licensing-id, the ID must be recorded at the later point (exit 1, unknownLicensingId).

        Example:
          ledger-tool history ./ledger --email jon@contoso.com --from 2026-01-01T00:00:00Z
        """)

    @OptionGroup var location: LedgerLocation
    @Option(help: "The business email.") var email: String
    @Option(name: .customLong("licensing-id"), help: "Only changes on this Licensing ID.") var licensingId: String?
    @OptionGroup var range: RangeOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let (from, to) = (try range.fromPoint(), try range.toPoint())
        let ledger = try location.open()
        let history: PermissionHistory
        switch try ledger.history(email: email, licensingId: licensingId, from: from, to: to) {
        case let .success(h): history = h
        case let .failure(e): try refuse(e, json: json)
        }
        let out = Output()
        if json {
            out.line(history.json.text)
        } else {
            out.line("History of \(safe(history.email)) after seq \(history.fromSeq) through seq \(history.toSeq): \(history.changes.count) change\(history.changes.count == 1 ? "" : "s")")
            printTable(["at", "seq", "event", "licensingId", "gained", "lost", "saBenefits"], history.changes.map { c in
                [c.at.iso8601, String(c.seq), c.type, c.licensingId, list(c.rolesGained.map(\.rawValue)), list(c.rolesLost.map(\.rawValue)),
                 c.before.saBenefits == c.after.saBenefits ? "-" : "\(list(c.before.saBenefits.map(\.rawValue))) → \(list(c.after.saBenefits.map(\.rawValue)))"]
            }, to: out)
        }
        out.flush()
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every (email, Licensing ID) whose effective permissions differ between two points.",
        discussion: """
        Both values are given; a change made and undone between the points is in the history, not in the diff. To defaults to the head; from after to keeps before = the state at from. Sorted by email, then Licensing ID.

        Example:
          ledger-tool diff ./ledger --from 2026-01-01T00:00:00Z --to 2026-04-01T00:00:00Z
        """)

    @OptionGroup var location: LedgerLocation
    @OptionGroup var range: RangeOptions
    @Option(help: "Only this email's pairs.") var email: String?
    @Option(name: .customLong("licensing-id"), help: "Only pairs on this Licensing ID.") var licensingId: String?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if range.fromSeq == nil && range.from == nil { throw ValidationError("give --from-seq N or --from TIME") }
    }

    func run() throws {
        guard let from = try range.fromPoint() else { return }
        let to = try range.toPoint()
        let ledger = try location.open()
        let diff: PermissionDiff
        switch try ledger.diff(from: from, to: to, email: email, licensingId: licensingId) {
        case let .success(d): diff = d
        case let .failure(e): try refuse(e, json: json)
        }
        let out = Output()
        if json {
            out.line(diff.json.text)
        } else {
            out.line("Differences between seq \(diff.fromSeq) and seq \(diff.toSeq): \(diff.changes.count)")
            printDifferences(diff.changes, to: out)
        }
        out.flush()
    }
}

/// A table of differences (diff and what-if).
func printDifferences(_ changes: [PermissionDifference], to out: Output) {
    printTable(["email", "licensingId", "before", "after", "saBenefits"], changes.map { c in
        [safe(c.email), c.licensingId, list(c.before.roles.map(\.rawValue)), list(c.after.roles.map(\.rawValue)),
         c.before.saBenefits == c.after.saBenefits ? "-" : "\(list(c.before.saBenefits.map(\.rawValue))) → \(list(c.after.saBenefits.map(\.rawValue)))"]
    }, to: out)
}

/// A comma-separated list, `-` when empty.
private func list(_ items: [String]) -> String { items.isEmpty ? "-" : items.joined(separator: ",") }

struct WhatIf: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "what-if",
        abstract: "Decide commands on a copy of the head and show what they would change; nothing is appended.",
        discussion: """
        The input is as for exec (JSON Lines; any malformed line exits 2 naming every bad line). Each command is decided on the state the ones before it leave, as exec would, and its result shows the seqs its events would get; then the differences from the head to the state they would leave. The ledger is left exactly as it was.

        Example:
          ledger-tool what-if ./ledger grants.jsonl
        """)

    @OptionGroup var location: LedgerLocation
    @Argument(help: "The commands file; - or none for standard input.") var file: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        _ = try location.validated()
        let input = try InputFile(file)
        defer { input.remove() }
        _ = try input.parseAll(what: "commands") { _ = try TimedCommand(json: try JSONParser.parse($0)) }
        let ledger = try location.open(withKey: true)
        var commands: [TimedCommand] = [], lines: [Int] = []
        let reader = try input.reader()
        while let (number, bytes) = reader.next() {
            guard let command = try? TimedCommand(json: try JSONParser.parse(bytes)) else { continue }
            commands.append(command)
            lines.append(number)
        }
        let result = try ledger.whatIf(commands)
        let out = Output()
        if json {
            out.line(result.json(lines: lines).text)
        } else {
            for (line, r) in zip(lines, result.results) { out.line(r.json(line: line).text) }
            out.line("Would change from seq \(result.fromSeq) to seq \(result.toSeq) (nothing was appended): \(result.changes.count) difference\(result.changes.count == 1 ? "" : "s")")
            printDifferences(result.changes, to: out)
        }
        out.flush()
    }
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow the effective changes as JSON Lines: those after a seq, then each new one as it commits.",
        discussion: """
        One change a line, in history's form with "email". The default start is the head (only new changes); --from-seq N is a cursor (the seq of the last change a follower has seen), so a restarted follower misses none and repeats none. Commits made by any process on the ledger are seen. --once stops at the head.

        Example:
          ledger-tool watch ./ledger --from-seq 0 --licensing-id EN-CONTOSO-2 --once
        """)

    @OptionGroup var location: LedgerLocation
    @Option(name: .customLong("from-seq"), help: ArgumentHelp("The changes after this seq (default: the head).", valueName: "n")) var fromSeq: UInt64?
    @Option(help: "Only this email's changes.") var email: String?
    @Option(name: .customLong("licensing-id"), help: "Only changes on this Licensing ID (it need not exist yet).") var licensingId: String?
    @Flag(help: "Stop at the head instead of waiting for new changes.") var once = false

    func run() throws {
        let ledger = try location.open()
        var cursor = try fromSeq ?? ledger.inspector.head().seq
        let out = Output()
        while true {
            let (changes, through) = try ledger.changes(after: cursor, email: email, licensingId: licensingId)
            for c in changes { out.line(c.json(withEmail: true).text) }
            out.flush()
            let moved = through > cursor
            cursor = through
            if !moved {
                if once { return }
                usleep(1_000)
            }
        }
    }
}
