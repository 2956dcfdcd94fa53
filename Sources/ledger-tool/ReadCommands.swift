import ArgumentParser
import Foundation
import Ledger
import Projections

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write every event as JSON Lines in seq order (the export form).",
        discussion: """
        Example:
          ledger-tool export ./ledger --to export.jsonl
        """)

    @OptionGroup var location: LedgerLocation
    @Option(help: "Write to this file instead of standard output.") var to: String?

    func run() throws {
        let ledger = try location.open()
        let handle = try outputHandle(to: to)
        let out = Output(handle: handle)
        let progress = ProgressLine("export", total: try ledger.inspector.head().seq)
        var n: UInt64 = 0
        try ledger.forEachEvent { e in
            out.line(e.json.text)
            n += 1
            if n & 0x3FFF == 0 { progress.advance(to: n) }
            return true
        }
        out.flush()
        progress.finish()
        if let to { print("exported \(n) events to \(to)") } else { printError("exported \(n) events") }
    }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List events, optionally filtered.",
        discussion: """
        Seq and time bounds are inclusive and combine: an event is listed when it is inside all of them.

        Example:
          ledger-tool events ./ledger --email joe@contoso.com --type rolesGranted
        """)

    @OptionGroup var location: LedgerLocation
    @Option(help: ArgumentHelp("First seq (default: 1).", valueName: "n")) var from: UInt64?
    @Option(help: ArgumentHelp("Last seq (default: the head).", valueName: "n")) var to: UInt64?
    @Option(name: .customLong("from-time"), help: ArgumentHelp("Only events with at ≥ TIME.", valueName: "time")) var fromTime: String?
    @Option(name: .customLong("to-time"), help: ArgumentHelp("Only events with at ≤ TIME.", valueName: "time")) var toTime: String?
    @Option(help: "Only events concerning this email.") var email: String?
    @Option(name: .customLong("licensing-id"), help: "Only events concerning this Licensing ID.") var licensingId: String?
    @Option(help: "Only events of this type.") var type: String?
    @Flag(help: "Print {\"events\":[…]}.") var json = false

    func run() throws {
        if let type, DomainEvent.kind(typeName: type) == nil {
            let near = Spelling.nearest(type, among: DomainEvent.typeNames).map { " (did you mean '\($0)'?)" } ?? ""
            printError("error: --type '\(type)' is not an event type\(near); expected one of: \(DomainEvent.typeNames.joined(separator: ", "))")
            throw Failure(code: Exit.badInput)
        }
        let earliest = try fromTime.map { try parseTime($0, flag: "--from-time") }
        let latest = try toTime.map { try parseTime($0, flag: "--to-time") }
        let ledger = try location.open()
        let wantEmail = email.map { Normalize.email($0) ?? $0.lowercased() }
        let events = try ledger.events(from: from ?? 1, to: to ?? .max, fromTime: earliest, toTime: latest) { e in
            (type == nil || e.type == type) && (licensingId == nil || e.event.licensingId == licensingId)
                && (wantEmail == nil || e.event.emails.contains(wantEmail ?? ""))
        }
        let out = Output()
        if json {
            out.line(JSONValue.object([("events", .array(events.map(\.json)))]).text)
        } else {
            printTable(["seq", "at", "type", "details"], events.map { e in
                [String(e.seq), e.at.iso8601, e.type, e.event.jsonFields.map { "\($0.key)=\(render($0.value))" }.joined(separator: " ")]
            }, to: out)
            out.line("\(events.count) event\(events.count == 1 ? "" : "s")")
        }
        out.flush()
    }
}

/// A JSON value shown compactly for people (strings without quotes).
func render(_ v: JSONValue) -> String {
    switch v {
    case let .string(s): return s
    case let .array(items): return "[" + items.map(render).joined(separator: ",") + "]"
    default: return v.text
    }
}

struct Permissions: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the My Permissions view of an email or an account.",
        discussion: """
        An account sees the permissions of its validated business email: an account not registered, or not validated, at the point asked is refused (exit 1). An email never seen simply has no permissions.

        Example:
          ledger-tool permissions ./ledger --email joe@contoso.com --as-of \\
              2026-08-04T12:00:00Z
        """)

    @OptionGroup var location: LedgerLocation
    @Option(help: "The business email.") var email: String?
    @Option(help: "The account (sees its validated business email's permissions).") var account: String?
    @OptionGroup var asOf: PointOptions
    @Flag(name: .customLong("include-inactive"), help: "List inactive Licensing IDs too.") var includeInactive = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if (email == nil) == (account == nil) { throw ValidationError("give exactly one of --email or --account") }
    }

    func run() throws {
        let point = try asOf.point()
        let ledger = try location.open()
        let view: PermissionsView
        if let email {
            view = try ledger.permissions(email: email, asOf: point, includeInactive: includeInactive)
        } else {
            switch try ledger.permissions(account: account ?? "", asOf: point, includeInactive: includeInactive) {
            case let .success(v): view = v
            case let .failure(e): try refuse(e, json: json)
            }
        }
        let out = Output()
        if json {
            out.line(view.json.text)
        } else {
            out.line("My Permissions of \(safe(view.email)) (as of seq \(view.asOfSeq))")
            printTable(["licensingId", "program", "status", "parent", "mbsa", "roles", "saBenefits"], view.rows.map { r in
                [r.licensingId, r.program.rawValue, r.status.rawValue, r.parent ?? "-", r.mbsa ?? "-",
                 r.roles.map(\.rawValue).joined(separator: ","), r.saBenefits.isEmpty ? "-" : r.saBenefits.map(\.rawValue).joined(separator: ",")]
            }, to: out)
        }
        out.flush()
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "May this account do this action on this Licensing ID? Exit 0 allowed, 1 denied.",
        discussion: """
        A denial names its reason: notRegistered, emailNotValidated, unknownLicensingId (an unknown account is reported before an unknown ID), noRole or benefitNotHeld.

        Example:
          ledger-tool check ./ledger --account joe-msa --licensing-id E-800 \\
              --action downloadSoftware --at 2026-08-04T12:00:00Z
        """)

    @OptionGroup var location: LedgerLocation
    @Option(help: "The signed-in account.") var account: String
    @Option(name: .customLong("licensing-id"), help: "The Licensing ID.") var licensingId: String
    @Option(help: "The action.") var action: Action
    @Option(help: "For manageSoftwareAssurance: one SA benefit.") var benefit: SABenefit?
    @OptionGroup var asOf: TimedPointOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let point = try asOf.point()
        let ledger = try location.open()
        let result = try ledger.check(account: account, action: action, licensingId: licensingId, benefit: benefit, asOf: point)
        if json {
            print(result.json.text)
        } else {
            print("\(result.allowed ? "allowed" : "denied") (\(result.reason)): \(safe(result.message))")
        }
        if !result.allowed { throw Failure(code: Exit.denied) }
    }
}

struct Lockout: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show an account's Add Open License lockout at a point (default: now).",
        discussion: """
        R9 is evaluated at the point's time: the time given, or for --as-of-seq N the time of event N; without a point, at the current time over every event. An account never registered is not an error: it is not locked and has no failures.

        Example:
          ledger-tool lockout ./ledger --account rita-msa --at 2026-04-01T15:00:00Z
        """)

    @OptionGroup var location: LedgerLocation
    @Option(help: "The account.") var account: String
    @OptionGroup var asOf: TimedPointOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let point = try asOf.point()
        let ledger = try location.open()
        let status = try ledger.lockout(account: account, asOf: point, now: Timestamp(seconds: Int64(Date().timeIntervalSince1970)))
        if json {
            print(status.json.text)
        } else if let until = status.lockedUntil {
            print("\(safe(status.account)): locked until \(until) (\(status.recentFailures) failed attempts counting at \(status.at))")
        } else {
            print("\(safe(status.account)): not locked (\(status.recentFailures) failed attempts counting at \(status.at))")
        }
    }
}

struct Admins: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the effective administrators of a Licensing ID and where each comes from (operators only).",
        discussion: """
        Example:
          ledger-tool admins ./ledger --licensing-id EN-1 --as-of \\
              2026-08-04T12:00:00Z
        """)

    @OptionGroup var location: LedgerLocation
    @Option(name: .customLong("licensing-id"), help: "The Licensing ID.") var licensingId: String
    @OptionGroup var asOf: PointOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let point = try asOf.point()
        let ledger = try location.open()
        let admins: [AdministratorEntry]
        switch try ledger.administrators(of: licensingId, asOf: point) {
        case let .success(a): admins = a
        case let .failure(e): try refuse(e, json: json)
        }
        if json {
            print(JSONValue.object([("licensingId", .string(licensingId)), ("administrators", .array(admins.map { a in
                .object([("email", .string(a.email)), ("sources", .array(a.sources.map(\.json)))])
            }))]).text)
        } else {
            let out = Output()
            out.line("Administrators of \(licensingId)")
            printTable(["email", "sources"], admins.map { a in
                [a.email, a.sources.map { $0.via.map { v in "inherited via \(v)" } ?? $0.source.rawValue }.joined(separator: ", ")]
            }, to: out)
            out.flush()
        }
    }
}

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain every role of an email on a Licensing ID with the events behind it.",
        discussion: """
        A Licensing ID not recorded at the point asked is refused with unknownLicensingId (exit 1); an email never seen has no role.

        Example:
          ledger-tool explain ./ledger --email joe@contoso.com --licensing-id E-800
        """)

    @OptionGroup var location: LedgerLocation
    @Option(help: "The business email.") var email: String
    @Option(name: .customLong("licensing-id"), help: "The Licensing ID.") var licensingId: String
    @OptionGroup var asOf: PointOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let point = try asOf.point()
        let ledger = try location.open()
        let explanation: Explanation
        switch try ledger.explain(email: email, licensingId: licensingId, asOf: point) {
        case let .success(e): explanation = e
        case let .failure(e): try refuse(e, json: json)
        }
        if json {
            print(explanation.json.text)
            return
        }
        let out = Output()
        out.line("\(safe(explanation.email)) on \(licensingId) (as of seq \(explanation.asOfSeq))")
        if explanation.roles.isEmpty { out.line("  no role") }
        for (role, reasons) in explanation.roles {
            out.line("  \(role.rawValue)")
            for r in reasons {
                if let via = r.via {
                    var line = "    inherited via \(via)"
                    if let o = r.origin, o.licensingId != via || !o.sources.isEmpty {
                        line += ", from \(o.licensingId)" + (o.sources.isEmpty ? "" : " (" + o.sources.map(Self.describe).joined(separator: "; ") + ")")
                    }
                    out.line(line)
                } else {
                    out.line("    " + Self.describe(r))
                }
            }
        }
        out.flush()
    }
}

extension Explain {
    /// "grant: seq 6 rolesGranted at 2026-08-03T11:00:00Z by ida-msa"
    static func describe(_ r: RoleReason) -> String {
        "\(r.source.rawValue): seq \(r.seq ?? 0) \(r.type ?? "")" + (r.at.map { " at \($0.iso8601)" } ?? "") + (r.by.map { " by \(safe($0))" } ?? "")
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the hash chain, seq continuity and that stored projections equal a fresh replay.",
        discussion: """
        With --against, also prove the history up to a kept checkpoint is unchanged (catches a truncated tail or a rewrite); an Ed25519-signed checkpoint is checked with --public-key (from `ledger-tool keygen`), an HMAC-signed one with --key. With --export FILE instead of a ledger directory, an auditor checks an export offline: every hash recomputed and chained, seqs continuous, and with --against the checkpoint's seq carrying its hash. With --postgres URL, compare a replica with its PostgreSQL shared log event by event (seq, id, hash) as well (runs ledger-replica from the optional SharedLog package; --name picks the shared ledger). Exit 1 when anything is wrong.

        Example:
          ledger-tool verify ./ledger --against checkpoint.json --public-key auditor.pub
          ledger-tool verify --export events.jsonl --against checkpoint.json --public-key auditor.pub
        """)

    @Argument(help: "The ledger directory (made by `ledger-tool init`); omit with --export.") var db: String?
    @Option(help: "A checkpoint file from `ledger-tool checkpoint`.") var against: String?
    @Option(name: .customLong("public-key"), help: "The Ed25519 public key (PREFIX.pub from keygen) that checks the checkpoint.") var publicKey: String?
    @Option(help: "The HMAC key file the checkpoint was signed with.") var key: String?
    @Option(help: "Check this export file (from `ledger-tool export`) instead of a ledger.") var export: String?
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Compare this replica with the shared log at postgres://USER@HOST[:PORT]/DATABASE.") var postgres: String?
    @Option(help: "With --postgres: the ledger's name in PostgreSQL. Default: ledger.") var name: String?
    @Option(help: "With --postgres: the cluster key file (default: DB/cluster.key).") var clusterKeyFile: String?
    @Option(help: "With --postgres: a retired cluster key (repeatable), during a rotation.") var retiredClusterKeyFile: [String] = []

    func run() throws {
        if publicKey != nil && key != nil {
            printError("error: give --public-key or --key, not both")
            throw Failure(code: Exit.badInput)
        }
        if (db == nil) == (export == nil) {
            printError(db == nil ? "error: give a ledger directory or --export FILE" : "error: give a ledger directory or --export FILE, not both")
            throw Failure(code: Exit.badInput)
        }
        if let postgres {
            guard let db, against == nil, !json else {
                printError("error: --postgres can't be combined with --against, --export or --json, and needs a ledger directory")
                throw Failure(code: Exit.badInput)
            }
            _ = try LedgerLocation.at(db).validated()
            try SharedLogPart.run(["verify", db, "--postgres", postgres] + (name.map { ["--name", $0] } ?? [])
                                  + (clusterKeyFile.map { ["--cluster-key-file", $0] } ?? [])
                                  + retiredClusterKeyFile.flatMap { ["--retired-cluster-key-file", $0] })
        }
        let checkpoint = try against.map(readCheckpoint)
        let keyBytes = try key.map { try readKey($0, flag: "--key") }
        let publicKeyValue = try publicKey.map { try readPublicKey($0, flag: "--public-key") }
        var fields: [(key: String, value: JSONValue)] = []
        var signatureProblem: String?
        if let checkpoint {
            switch (checkpoint.scheme, keyBytes, publicKeyValue) {
            case (nil, nil, nil): break
            case (nil, _, _): signatureProblem = "the checkpoint is unsigned: there is no signature to check the key against"
            case (.ed25519?, _, let pub?):
                switch checkpoint.check(publicKey: pub) {
                case .valid: fields.append(("checkpointSigned", .bool(true)))
                case let .otherKey(id): signatureProblem = "the checkpoint was signed by key \(id), not by this public key (\(pub.keyId))"
                default: signatureProblem = "the checkpoint's signature does not match the public key: it was altered"
                }
            case (.ed25519?, _, nil): signatureProblem = "the checkpoint is Ed25519-signed: give --public-key to check it"
            case (.hmacSHA256?, let k?, _):
                if checkpoint.isSigned(by: k) { fields.append(("checkpointSigned", .bool(true))) } else {
                    signatureProblem = "the checkpoint's signature does not match the key: it was not made with this key, or was altered"
                }
            case (.hmacSHA256?, nil, _):
                signatureProblem = publicKeyValue == nil ? "the checkpoint is signed: give --key to check it"
                    : "the checkpoint is HMAC-signed: a public key can't check it; give --key"
            }
            fields.append(("checkpointSeq", .uint(checkpoint.seq)))
        }
        if let export {
            try verifyExport(export, checkpoint: checkpoint, signatureProblem: signatureProblem, fields: fields)
            return
        }
        guard let db else { return }
        // reads a legacy format-1 ledger too: an auditor checks a checkpoint before `upgrade`
        let ledger = try LedgerLocation.at(db).open(readsFormat1: true)
        let progress = ProgressLine("verify", total: try ledger.inspector.head().seq)
        var report = try ledger.verify { progress.advance(to: $0) }
        progress.finish()
        if let checkpoint {
            let problem: (seq: UInt64?, problem: String)? = try signatureProblem.map { (nil, $0) } ?? ledger.inspector.problem(against: checkpoint)
            if let problem, report.log.ok || report.projectionProblem != nil {
                report.log.ok = false
                report.log.firstBadSeq = problem.seq
                report.log.problem = problem.problem
            }
        }
        if json {
            guard case var .object(base) = report.json else { return }
            base.append(contentsOf: fields)
            print(JSONValue.object(base).text)
        } else if report.ok {
            print("ok: \(report.log.events) events, head hash \(Hex.encode(report.log.headHash)); projections equal a replay" + (checkpoint.map { "; history up to seq \($0.seq) matches the checkpoint" } ?? ""))
        } else {
            print("NOT OK: \(report.log.problem ?? report.projectionProblem ?? "?")" + (report.log.firstBadSeq.map { " (first bad seq \($0))" } ?? ""))
        }
        if !report.ok { throw Failure(code: Exit.denied) }
    }

    private func readCheckpoint(_ path: String) throws -> Checkpoint {
        guard let data = FileManager.default.contents(atPath: path) else {
            printError("error: --against '\(path)' can't be read: \(fileProblem(path) ?? "unreadable")")
            throw Failure(code: Exit.badInput)
        }
        do {
            return try Checkpoint(json: try JSONParser.parse(Array(data)))
        } catch {
            printError("error: --against '\(path)' is not a checkpoint: \(error)")
            throw Failure(code: Exit.badInput)
        }
    }

    /// `verify --export`: the export's chain (and the checkpoint) without a ledger.
    private func verifyExport(_ path: String, checkpoint: Checkpoint?, signatureProblem: String?, fields: [(key: String, value: JSONValue)]) throws {
        let input = try InputFile(path)
        let reader = try input.reader()
        var chain = ExportChain(checkpointSeq: checkpoint?.seq ?? 0)
        while let (number, bytes) = reader.next() {
            let event: ImportedEvent
            do { event = try ImportedEvent(json: try JSONParser.parse(bytes)) } catch {
                printError("error: \(input.label):\(number): not an exported event: \(error)")
                throw Failure(code: Exit.badInput)
            }
            if !chain.add(event) { break }
        }
        let problem = signatureProblem.map { (seq: UInt64?.none, message: $0) } ?? chain.problem(against: checkpoint)
        if json {
            var out: [(key: String, value: JSONValue)] = [("ok", .bool(problem == nil)), ("events", .uint(chain.events)),
                                                         ("headHash", .string(Hex.encode(chain.headHash)))]
            if let problem {
                if let seq = problem.seq { out.append(("firstBadSeq", .uint(seq))) }
                out.append(("problem", .string(problem.message)))
            }
            print(JSONValue.object(out + fields).text)
        } else if let problem {
            print("NOT OK: \(problem.message)" + (problem.seq.map { " (first bad seq \($0))" } ?? ""))
        } else {
            print("ok: \(chain.events) exported events chain to head hash \(Hex.encode(chain.headHash))" + (checkpoint.map { "; history up to seq \($0.seq) matches the checkpoint" } ?? ""))
        }
        if problem != nil { throw Failure(code: Exit.denied) }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Count events by type; show the head and the data file size.",
        discussion: """
        Example:
          ledger-tool stats ./ledger --json
        """)

    @OptionGroup var location: LedgerLocation
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let ledger = try location.open()
        let stats = try ledger.stats()
        if json {
            print(stats.json.text)
            return
        }
        let out = Output()
        out.line("events: \(stats.events)   head seq: \(stats.head.seq)   head hash: \(Hex.encode(stats.head.hash))   file: \(stats.fileBytes) bytes")
        printTable(["type", "count"], stats.byType.keys.sorted().map { [$0, String(stats.byType[$0] ?? 0)] }, to: out)
        out.flush()
    }
}
