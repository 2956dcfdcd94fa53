import ArgumentParser
import Foundation
import Ledger
import Projections

/// Exit codes of DOMAIN.md §6.
enum Exit {
    static let denied = ExitCode(1)
    static let badInput = ExitCode(2)
}

/// A failure already explained on stderr, with the exit code to leave with.
struct Failure: Error {
    let code: ExitCode
}

/// Prints to stderr.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Writes to stdout through a buffer (fast for millions of lines).
final class Output {
    private var buffer: [UInt8] = []
    private let handle: FileHandle

    init(handle: FileHandle = .standardOutput) { self.handle = handle }

    func line(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        buffer.append(10)
        if buffer.count >= 1 << 16 { flush() }
    }

    func flush() {
        if !buffer.isEmpty {
            handle.write(Data(buffer))
            buffer.removeAll(keepingCapacity: true)
        }
    }

    deinit { flush() }
}

/// Standard output, or the file `--to` names (created or truncated).
func outputHandle(to path: String?) throws -> FileHandle {
    guard let path else { return .standardOutput }
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else {
        printError("error: can't write --to '\(path)': \(describeErrno(errno))")
        throw Failure(code: Exit.badInput)
    }
    return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
}

/// `POINT` of DOMAIN.md §6: `--as-of-seq N` or `--as-of TIME`, taken by every query of
/// state. Without one the answer is at the head.
struct PointOptions: ParsableArguments {
    @Option(name: .customLong("as-of-seq"), help: ArgumentHelp("Answer as of this seq (the state after event N; 0 is the empty state).", valueName: "n"))
    var asOfSeq: UInt64?
    @Option(name: .customLong("as-of"), help: ArgumentHelp("Answer as of this time (the events with at ≤ TIME).", valueName: "time"))
    var asOf: String?

    func validate() throws {
        if asOfSeq != nil && asOf != nil { throw ValidationError("give at most one of --as-of-seq or --as-of") }
    }

    /// The point asked for, nil for the head.
    func point() throws -> AsOf? {
        if let asOfSeq { return .seq(asOfSeq) }
        return try asOf.map { .time(try parseTime($0, flag: "--as-of")) }
    }
}

/// `POINT` or `--at TIME` (the same as `--as-of TIME`), for `check` and `lockout`.
struct TimedPointOptions: ParsableArguments {
    @OptionGroup var asOf: PointOptions
    @Option(help: ArgumentHelp("The same as --as-of TIME.", valueName: "time"))
    var at: String?

    func validate() throws {
        if at != nil && (asOf.asOfSeq != nil || asOf.asOf != nil) {
            throw ValidationError("give at most one of --at, --as-of or --as-of-seq")
        }
    }

    /// The point asked for, nil for the head.
    func point() throws -> AsOf? {
        if let at { return .time(try parseTime(at, flag: "--at")) }
        return try asOf.point()
    }
}

/// Reports a question the ledger can't answer at that point (an unknown Licensing ID or
/// account): with `--json` the document `{"error":CODE,"message":…}` on stdout, a line on
/// stderr either way, exit 1 (DOMAIN.md §6 conventions).
func refuse(_ error: DomainError, json: Bool) throws -> Never {
    if json { print(JSONValue.object([("error", .string(error.code.rawValue)), ("message", .string(error.message))]).text) }
    printError("denied: \(error.code.rawValue): \(error.message)")
    throw Failure(code: Exit.denied)
}

/// The reason a file can't be opened, from the operating system (e.g. "no such file").
func fileProblem(_ path: String) -> String? {
    var info = stat()
    guard stat(path, &info) == 0 else { return describeErrno(errno) }
    if (info.st_mode & S_IFMT) == S_IFDIR { return "it is a directory" }
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return describeErrno(errno) }
    close(fd)
    return nil
}

/// `strerror` in lower case ("no such file or directory").
func describeErrno(_ code: Int32) -> String {
    let text = String(cString: strerror(code))
    return text.prefix(1).lowercased() + text.dropFirst()
}

/// Makes text safe to print for people: control, escape and bidi-override characters are
/// shown escaped, so a name can't rewrite the terminal.
func safe(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        let v = scalar.value
        if v < 0x20 || v == 0x7F || (0x80 ... 0x9F).contains(v) || (0x202A ... 0x202E).contains(v) || (0x2066 ... 0x2069).contains(v)
            || v == 0x200E || v == 0x200F || v == 0x061C {
            out += "\\u{" + String(v, radix: 16) + "}"
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}

/// Prints rows as an aligned table with a header.
func printTable(_ header: [String], _ rows: [[String]], to out: Output) {
    let cells = ([header] + rows).map { $0.map(safe) }
    var widths = [Int](repeating: 0, count: header.count)
    for row in cells { for (i, c) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    for (n, row) in cells.enumerated() {
        let line = row.enumerated().map { i, c in i == row.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
        out.line(line)
        if n == 0 { out.line(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
    }
}

/// The ledger directory argument and how to open it.
struct LedgerLocation: ParsableArguments {
    @Argument(help: "The ledger directory (made by `ledger-tool init`).")
    var db: String

    static let keyFile = AuthorizationKey.fileName

    /// The location of a ledger directory given by a command's own argument.
    static func at(_ path: String) -> LedgerLocation {
        var location = LedgerLocation()
        location.db = path
        return location
    }

    /// Refuses a missing or non-ledger directory with exit 2, saying what is there instead.
    func validated() throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: db, isDirectory: &isDir) else {
            printError("error: no ledger at '\(db)': the directory does not exist; create one with `ledger-tool init \(db)`")
            throw Failure(code: Exit.badInput)
        }
        guard isDir.boolValue else {
            let parent = (db as NSString).deletingLastPathComponent
            let hint = (db as NSString).lastPathComponent == "data.mdb" ? "; give the directory that holds it: \(parent.isEmpty ? "." : parent)" : ""
            printError("error: '\(db)' is a file, not a ledger directory\(hint)")
            throw Failure(code: Exit.badInput)
        }
        guard FileManager.default.fileExists(atPath: db + "/data.mdb") else {
            printError("error: '\(db)' is not a ledger directory (no data.mdb); create one with `ledger-tool init DIR`")
            throw Failure(code: Exit.badInput)
        }
        return db
    }

    /// Opens the ledger, with its authorization key when `withKey`. A ledger of the legacy
    /// event format 1 is refused with exit 2 naming `upgrade`, unless `readsFormat1`.
    func open(withKey: Bool = false, readsFormat1: Bool = false) throws -> PermissionLedger {
        let path = try validated()
        var options = PermissionLedger.Options()
        if readsFormat1 { options.eventFormat = 1 }
        if withKey {
            // the current key and those `rotate-key` retired (authorization.key.KEYID)
            do {
                try options.useKeys(ofLedger: path)
            } catch let error as KeyFileError {
                if error.errorCode == .keyFileMissing, error.path == path + "/" + Self.keyFile {
                    printError("error: the ledger's authorization key \(error.path) is missing; Open License numbers can't be checked without it")
                } else {
                    printError("error: \(error)")
                }
                throw Failure(code: Exit.badInput)
            }
        }
        do {
            return try PermissionLedger(directory: path, options: options)
        } catch let error as EventFormatError {
            printError("error: \(error.errorCode): \(error.message)")
            throw Failure(code: Exit.badInput)
        } catch {
            printError("error: can't open the ledger at '\(path)': \(error)")
            throw Failure(code: Exit.denied)
        }
    }
}

/// Parses a time flag strictly.
func parseTime(_ text: String, flag: String) throws -> Timestamp {
    guard let t = Timestamp(iso8601: text) else {
        printError("error: \(flag) '\(text)' is not a time of the form YYYY-MM-DDTHH:MM:SSZ")
        throw Failure(code: Exit.badInput)
    }
    return t
}

extension Role: ExpressibleByArgument {}
extension Action: ExpressibleByArgument {}
extension SABenefit: ExpressibleByArgument {}
extension LegalBasis: ExpressibleByArgument {}
