import ArgumentParser
import Foundation
import Ledger
import Projections

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create an empty ledger.",
        discussion: """
        Creates DIR (and its parents), the LMDB data file and an HMAC key file (authorization.key, owner-only) that authorization numbers are hashed with. The key is not part of any export: keep a copy to check Add Open License attempts on a ledger restored elsewhere.

        Example:
          ledger-tool init ./ledger
        """)

    @Argument(help: "The ledger directory to create.")
    var db: String
    @Option(help: "The event format: 2, the default (personal values beside the log, erasable with `erase`), or 1, the legacy format (values inside the hashed bytes), which only `upgrade` and `verify` read — to test an upgrade.")
    var eventFormat: UInt8 = 2

    func validate() throws {
        if eventFormat != 1 && eventFormat != 2 { throw ValidationError("--event-format must be 1 or 2") }
    }

    func run() throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: db + "/data.mdb") {
            printError("error: '\(db)' already holds a ledger")
            throw Failure(code: Exit.badInput)
        }
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: db, isDirectory: &isDir), !isDir.boolValue {
            printError("error: can't create a ledger at '\(db)': it is a file, not a directory")
            throw Failure(code: Exit.badInput)
        }
        do {
            // the directory (and its parents, owner-only) and the key file, as the library makes them
            _ = try AuthorizationKey.readOrCreate(inLedger: db)
        } catch {
            printError("error: can't create a ledger at '\(db)': \(error)")
            throw Failure(code: Exit.badInput)
        }
        do {
            var options = PermissionLedger.Options()
            options.eventFormat = eventFormat
            _ = try PermissionLedger(directory: db, options: options)
        } catch {
            printError("error: can't create a ledger at '\(db)': \(error)")
            throw Failure(code: Exit.denied)
        }
        print("created an empty ledger at \(db)")
    }
}

struct Upgrade: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a ledger of event format 2 from one of format 1.",
        discussion: """
        Copies OLD's events, in order, with their ids and times, into NEW (a new directory), each personal value moved out of the hashed bytes into NEW's subject vault (a pseudonym and a commitment stay in its place), so that NEW's subjects can be erased (`erase`). OLD's authorization key files and policy are carried over; OLD is only read.

        Every hash of NEW differs from OLD's: the command prints both heads. An auditor keeping a checkpoint of OLD verifies it against OLD, then keeps the printed pair (old head, new head) — and a new checkpoint of NEW — to carry the chain of custody across.

        Prints {"events":N,"oldHead":{"seq","hash"},"newHead":{"seq","hash"}} with --json.

        Example:
          ledger-tool upgrade ./ledger ./ledger-v2 --json
        """)

    @OptionGroup var location: LedgerLocation
    @Argument(help: "The new ledger directory (must not hold a ledger).") var new: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let old = try location.open(withKey: true, readsFormat1: true)
        guard old.eventFormat == 1 else {
            printError("error: the ledger at '\(location.db)' is of event format \(old.eventFormat) already")
            throw Failure(code: Exit.badInput)
        }
        if FileManager.default.fileExists(atPath: new + "/data.mdb") {
            printError("error: '\(new)' holds a ledger already: upgrade into a new directory")
            throw Failure(code: Exit.badInput)
        }
        var options = PermissionLedger.Options()
        do {
            // the key files first (the directory owner-only, as init makes it), then the ledger
            try FileManager.default.createDirectory(atPath: new, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            for name in try FileManager.default.contentsOfDirectory(atPath: location.db)
            where name == AuthorizationKey.fileName || name.hasPrefix(AuthorizationKey.fileName + ".") {
                if !FileManager.default.fileExists(atPath: new + "/" + name) {
                    try FileManager.default.copyItem(atPath: location.db + "/" + name, toPath: new + "/" + name)
                }
            }
            try options.useKeys(ofLedger: new)
        } catch {
            printError("error: can't prepare '\(new)': \(error)")
            throw Failure(code: Exit.badInput)
        }
        let report: UpgradeReport
        do {
            report = try old.upgrade(to: new, options: options)
        } catch {
            printError("error: the upgrade failed: \(error); remove '\(new)' before trying again")
            throw Failure(code: Exit.denied)
        }
        func head(_ h: Head) -> JSONValue { .object([("seq", .uint(h.seq)), ("hash", .string(Hex.encode(h.hash)))]) }
        if json {
            print(JSONValue.object([("events", .uint(report.events)), ("oldHead", head(report.oldHead)), ("newHead", head(report.newHead))]).text)
        } else {
            print("upgraded \(report.events) events to event format 2 in \(new)")
            print("old head: seq \(report.oldHead.seq) hash \(Hex.encode(report.oldHead.hash))")
            print("new head: seq \(report.newHead.seq) hash \(Hex.encode(report.newHead.hash))")
        }
    }
}

struct Erase: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Erase a person's personal data (R15), keeping every hash and every fact.",
        discussion: """
        Appends subjectErased{subject, legalBasis} at the current time, then deletes the subject's email, account names, names, comments and reasons, with the secret their commitments are under and the key that sealed them, and compacts the subject vault so that no file of DB still holds them. Every hash stays as it was: verify passes and checkpoints taken before still verify; outputs show erased:PSEUDONYM in place of each value.

        Refused (exit 1) with unknownEmail, alreadyErased or subjectHoldsAccess (revoke the person's roles and remove them from legal forms first; a contact on a legal form is kept).

        Prints {"ok":true,"seq":[…],"subject":PSEUDONYM,"fieldsErased":N} or {"ok":false,"error":CODE,"message":…,"seq":[]}.

        Example:
          ledger-tool erase ./ledger --email zelda@contoso.example --legal-basis consentWithdrawn --json
        """)

    @OptionGroup var location: LedgerLocation
    @Option(help: "The email whose subject is erased.") var email: String
    @Option(help: "consentWithdrawn, noLongerNecessary, objection, unlawful or legalObligation.") var legalBasis: LegalBasis
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let ledger = try location.open()
        guard ledger.eventFormat == 2 else {
            printError("error: the ledger at '\(location.db)' is of event format 1 (`ledger-tool upgrade OLD NEW` writes a format-2 ledger from it): its personal values are inside the hash chain and can't be erased")
            throw Failure(code: Exit.badInput)
        }
        let result: ErasureResult
        do {
            result = try ledger.erase(email: email, legalBasis: legalBasis)
        } catch let error as InputError {
            // a replica of the shared log erases through it (ledger-replica erase)
            printError("error: the ledger at '\(location.db)': \(error.message)")
            throw Failure(code: Exit.badInput)
        }
        if json {
            print(result.json.text)
        } else if let refusal = result.refusal {
            print("refused: \(refusal.code.rawValue): \(refusal.message)")
        } else {
            print("erased subject \(result.subject ?? ""): \(result.fieldsErased) personal fields (seq \(result.seqs.map(String.init).joined(separator: ", ")))")
        }
        if !result.accepted { throw Failure(code: Exit.denied) }
    }
}

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run commands (JSON Lines) against the ledger.",
        discussion: """
        Each line is {"command": NAME, "at": TIME, …fields}. The whole input is parsed first: any malformed line exits 2 naming every bad line, and nothing is appended. Then each line is decided and committed on its own, printing one result line: {"line":N,"ok":true,"seq":[…]} or {"line":N,"ok":false,"error":CODE,"message":…,"seq":[…]}.

        A refused command is a result, not a failure: exec exits 0 unless --strict is given (then 1 when any command was refused).

        Running a file again is safe when its lines carry an "id" (a UUID): the events a command appended are never appended twice (the repeat prints "duplicate":true with the outcome the command had: a recorded failed Add Open License attempt is still refused with its code), and a command that appended nothing is decided again. Lines without an id are always decided again.

        FILE - (or no FILE) reads standard input. A UTF-8 byte-order mark and CRLF line ends are accepted. The input is streamed (memory does not grow with it); progress is shown on stderr when it is a terminal.

        Example:
          ledger-tool exec ./ledger Fixtures/contoso.jsonl --strict
        """)

    @OptionGroup var location: LedgerLocation
    @Argument(help: "The commands file; - or none for standard input.")
    var file: String?
    @Option(help: "Commit this many commands per transaction (one fsync each); each is still decided on its own.")
    var batch: Int = 1
    @Flag(help: "Exit 1 when any command was refused (default: refusals are results, exit 0).")
    var strict = false

    func validate() throws {
        if batch < 1 || batch > 100_000 { throw ValidationError("--batch must be between 1 and 100000") }
    }

    func run() throws {
        _ = try location.validated()
        let input = try InputFile(file)
        defer { input.remove() }
        // Pass 1: parse everything, name every bad line.
        let count = try input.parseAll(what: "commands") { _ = try TimedCommand(json: try JSONParser.parse($0)) }
        if count == 0 { return }
        // Pass 2: decide and commit.
        let ledger = try location.open(withKey: true)
        let out = Output()
        let progress = ProgressLine("exec", total: UInt64(count))
        var accepted = 0, refused = 0
        let reader = try input.reader()
        var pending: [(Int, TimedCommand)] = []
        func flush() throws {
            guard !pending.isEmpty else { return }
            let results: [ExecutionResult]
            do {
                results = try ledger.executeBatch(pending.map(\.1))
            } catch {
                out.flush()
                progress.finish()
                let lines = pending.count == 1 ? "line \(pending[0].0)" : "lines \(pending[0].0)–\(pending[pending.count - 1].0)"
                printError("\(input.label):\(pending[0].0): the ledger failed: \(error); lines before it are committed, \(lines) and later ones are not")
                throw Failure(code: Exit.denied)
            }
            for ((number, _), result) in zip(pending, results) {
                if result.accepted { accepted += 1 } else { refused += 1 }
                out.line(result.json(line: number).text)
            }
            // a result line is an acknowledgement: it leaves only after the commit
            out.flush()
            progress.advance(to: progress.done + UInt64(pending.count))
            pending.removeAll(keepingCapacity: true)
        }
        while let (number, bytes) = reader.next() {
            guard let command = try? TimedCommand(json: try JSONParser.parse(bytes)) else { continue }
            pending.append((number, command))
            if pending.count >= batch { try flush() }
        }
        try flush()
        progress.finish()
        if count > 1 {
            printError("\(count) commands: \(accepted) accepted, \(refused) refused (\(String(format: "%.1f", progress.seconds)) s, \(Int(progress.rate)) commands/s)")
        }
        if strict && refused > 0 { throw Failure(code: Exit.denied) }
    }
}

struct Append: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import raw events (JSON Lines in the export form), all or nothing.",
        discussion: """
        `seq` and `hash` are optional and, when present, must match where the event lands. Each event must apply cleanly to the state before it; otherwise nothing is appended and the tool exits 2 naming the line. FILE - (or no FILE) reads standard input. The input is streamed; progress is shown on stderr when it is a terminal.

        Example:
          ledger-tool append ./copy export.jsonl
        """)

    @OptionGroup var location: LedgerLocation
    @Argument(help: "The events file; - or none for standard input.")
    var file: String?

    func run() throws {
        _ = try location.validated()
        let input = try InputFile(file)
        defer { input.remove() }
        let count = try input.parseAll(what: "events") { _ = try ImportedEvent(json: try JSONParser.parse($0)) }
        if count == 0 { return }
        let ledger = try location.open(withKey: true)
        let progress = ProgressLine("append", total: UInt64(count))
        var first: UInt64?, last: UInt64 = 0, currentLine = 0, added = 0
        do {
            try ledger.importEvents(from: {
                first = nil
                added = 0
                progress.advance(to: 0)
                let reader = try? input.reader()
                return {
                    guard let (number, bytes) = reader?.next() else { return nil }
                    currentLine = number
                    return try ImportedEvent(json: try JSONParser.parse(bytes))
                }
            }, appended: { seq, isNew in
                if isNew {
                    if first == nil { first = seq }
                    last = seq
                    added += 1
                }
                progress.advance()
            })
        } catch let e as ImportError {
            progress.finish()
            printError("\(input.label):\(currentLine): \(e.message); nothing was appended")
            throw Failure(code: Exit.badInput)
        } catch let e as LogError {
            progress.finish()
            printError("\(input.label):\(currentLine): \(e); nothing was appended")
            throw Failure(code: Exit.badInput)
        }
        progress.finish()
        let skipped = count - added
        let range = added > 0 ? " (seq \(first ?? 0)–\(last))" : ""
        print("appended \(added) events\(range)" + (skipped > 0 ? "; \(skipped) already stored (known ids) skipped" : "") + " in \(String(format: "%.1f", progress.seconds)) s")
    }
}

struct Rebuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop and rebuild every projection from the log.",
        discussion: """
        Example:
          ledger-tool rebuild ./ledger
        """)

    @OptionGroup var location: LedgerLocation
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let ledger = try location.open()
        let progress = ProgressLine("rebuild", total: try ledger.inspector.head().seq)
        let report = try ledger.rebuild { progress.advance(to: $0) }
        progress.finish()
        if json {
            print(JSONValue.object([("events", .uint(report.events)), ("seconds", .number(text: String(format: "%.3f", report.seconds), int: nil)),
                                    ("eventsPerSecond", .int(Int64(report.eventsPerSecond)))]).text)
        } else {
            print("rebuilt projections from \(report.events) events in \(String(format: "%.3f", report.seconds)) s (\(Int(report.eventsPerSecond)) events/s)")
        }
    }
}
