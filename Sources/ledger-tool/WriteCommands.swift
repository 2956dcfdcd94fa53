import ArgumentParser
import Foundation
import Ledger
import Projections

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create an empty ledger.",
        discussion: """
        Creates DIR (and parents), the LMDB data file and an HMAC key file
        (authorization.key, owner-only) that authorization numbers are hashed with.
        The key is not part of any export: keep a copy to check Add Open License attempts
        on a ledger restored elsewhere.

        Example: ledger-tool init ./ledger
        """)

    @Argument(help: "The ledger directory to create.")
    var db: String

    func run() throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: db + "/data.mdb") {
            printError("error: '\(db)' already holds a ledger")
            throw Failure(code: Exit.badInput)
        }
        do {
            try fm.createDirectory(atPath: db, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let keyPath = db + "/" + LedgerLocation.keyFile
            if !fm.fileExists(atPath: keyPath) {
                let (_, bytes) = AuthorizationKey.generate()
                guard fm.createFile(atPath: keyPath, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
                    printError("error: can't write the key file \(keyPath)")
                    throw Failure(code: Exit.denied)
                }
            }
            _ = try PermissionLedger(directory: db)
        } catch let f as Failure {
            throw f
        } catch {
            printError("error: can't create a ledger at '\(db)': \(error)")
            throw Failure(code: Exit.denied)
        }
        print("created an empty ledger at \(db)")
    }
}

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run commands (JSON Lines) against the ledger.",
        discussion: """
        Each line is {"command": NAME, "at": TIME, …fields}. The whole input is parsed first:
        any malformed line exits 2 naming every bad line, and nothing is appended. Then each
        line is decided and committed on its own, printing one result line:
        {"line":N,"ok":true,"seq":[…]} or {"line":N,"ok":false,"error":CODE,"message":…,"seq":[…]}.

        Example: ledger-tool exec ./ledger Fixtures/contoso.jsonl
        """)

    @OptionGroup var location: LedgerLocation
    @Argument(help: "The commands file (default: standard input).")
    var file: String?

    func run() throws {
        _ = try location.validated()
        let lines = try readLines(file)
        var commands: [(Int, TimedCommand)] = []
        var bad = 0
        let source = file ?? "stdin"
        for (number, bytes) in lines {
            do {
                let json = try JSONParser.parse(bytes)
                commands.append((number, try TimedCommand(json: json)))
            } catch {
                bad += 1
                printError("\(source):\(number): \(error)")
            }
        }
        if bad > 0 {
            printError("error: \(bad) malformed line\(bad == 1 ? "" : "s"); nothing was appended")
            throw Failure(code: Exit.badInput)
        }
        if commands.isEmpty {
            printError("note: the input holds no commands; nothing was appended")
            return
        }
        let ledger = try location.open(withKey: true)
        let out = Output()
        var accepted = 0, refused = 0
        for (number, command) in commands {
            let result: ExecutionResult
            do {
                result = try ledger.execute(command)
            } catch {
                out.flush()
                printError("\(source):\(number): the ledger failed: \(error); lines before it are committed, this one and later ones are not")
                throw Failure(code: Exit.denied)
            }
            var fields: [(key: String, value: JSONValue)] = [("line", .int(Int64(number))), ("ok", .bool(result.accepted))]
            if let refusal = result.refusal {
                refused += 1
                fields.append(("error", .string(refusal.code.rawValue)))
                fields.append(("message", .string(refusal.message)))
                if let until = refusal.until { fields.append(("until", .string(until.iso8601))) }
            } else {
                accepted += 1
            }
            fields.append(("seq", .array(result.seqs.map { .uint($0) })))
            if result.wasDuplicate { fields.append(("duplicate", .bool(true))) }
            out.line(JSONValue.object(fields).text)
        }
        out.flush()
        if commands.count > 1 { printError("\(commands.count) commands: \(accepted) accepted, \(refused) refused") }
    }
}

struct Append: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import raw events (JSON Lines in the export form), all or nothing.",
        discussion: """
        `seq` and `hash` are optional and, when present, must match where the event lands.
        Each event must apply cleanly to the state before it; otherwise nothing is appended
        and the tool exits 2 naming the line.

        Example: ledger-tool append ./copy export.jsonl
        """)

    @OptionGroup var location: LedgerLocation
    @Argument(help: "The events file (default: standard input).")
    var file: String?

    func run() throws {
        _ = try location.validated()
        let lines = try readLines(file)
        let source = file ?? "stdin"
        var events: [ImportedEvent] = []
        var numbers: [Int] = []
        var bad = 0
        for (number, bytes) in lines {
            do {
                events.append(try ImportedEvent(json: try JSONParser.parse(bytes)))
                numbers.append(number)
            } catch {
                bad += 1
                printError("\(source):\(number): \(error)")
            }
        }
        if bad > 0 {
            printError("error: \(bad) malformed line\(bad == 1 ? "" : "s"); nothing was appended")
            throw Failure(code: Exit.badInput)
        }
        if events.isEmpty {
            printError("note: the input holds no events; nothing was appended")
            return
        }
        let ledger = try location.open(withKey: true)
        do {
            let seqs = try ledger.importEvents(events)
            print("appended \(seqs.count) events (seq \(seqs.first ?? 0)–\(seqs.last ?? 0))")
        } catch let e as ImportError {
            let line = e.index - 1 < numbers.count ? numbers[e.index - 1] : e.index
            printError("\(source):\(line): \(e.message); nothing was appended")
            throw Failure(code: Exit.badInput)
        } catch let e as LogError {
            printError("\(source): \(e); nothing was appended")
            throw Failure(code: Exit.badInput)
        }
    }
}

struct Rebuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop and rebuild every projection from the log.",
        discussion: "Example: ledger-tool rebuild ./ledger")

    @OptionGroup var location: LedgerLocation
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let ledger = try location.open()
        let report = try ledger.rebuild()
        if json {
            print(JSONValue.object([("events", .uint(report.events)), ("seconds", .number(text: String(format: "%.3f", report.seconds), int: nil)),
                                    ("eventsPerSecond", .int(Int64(report.eventsPerSecond)))]).text)
        } else {
            print("rebuilt projections from \(report.events) events in \(String(format: "%.3f", report.seconds)) s (\(Int(report.eventsPerSecond)) events/s)")
        }
    }
}
