import Foundation
import Ledger

/// Reads a file line by line in 1 MiB chunks, so memory does not grow with the file.
final class LineReader {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    private(set) var lineNumber = 0

    init?(path: String) {
        guard let h = FileHandle(forReadingAtPath: path) else { return nil }
        handle = h
        // a UTF-8 byte-order mark (as some editors write) is not part of the first line
        let head = handle.readData(ofLength: 1 << 20)
        buffer.append(contentsOf: head)
        if buffer.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }
        if head.isEmpty { eof = true }
    }

    deinit { try? handle.close() }

    /// The next non-blank line and its 1-based number, or nil at the end.
    func next() -> (number: Int, bytes: ArraySlice<UInt8>)? {
        while true {
            if let nl = buffer[start...].firstIndex(of: 10) {
                var end = nl
                if end > start && buffer[end - 1] == 13 { end -= 1 }
                let line = buffer[start ..< end]
                start = nl + 1
                lineNumber += 1
                if line.allSatisfy({ $0 == 32 || $0 == 9 }) { continue }
                return (lineNumber, line)
            }
            if eof {
                guard start < buffer.count else { return nil }
                let line = buffer[start...]
                start = buffer.count
                lineNumber += 1
                if line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { return nil }
                return (lineNumber, line)
            }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { eof = true } else { buffer.append(contentsOf: chunk) }
        }
    }
}

/// The input of `exec`/`append`: FILE, or standard input spooled to a temporary file so it
/// can be read twice (parse everything first, then apply) without holding it in memory.
struct InputFile {
    let path: String
    let label: String
    private let temporary: Bool

    /// `file`, or standard input when it is nil or `-`.
    init(_ file: String?) throws {
        if let file, file != "-" {
            if let problem = fileProblem(file) {
                printError("error: can't read input file '\(file)': \(problem)")
                throw Failure(code: Exit.badInput)
            }
            path = file
            label = file
            temporary = false
        } else {
            path = NSTemporaryDirectory() + "ledger-tool-stdin-" + UUID().uuidString
            label = "stdin"
            temporary = true
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
                  let out = FileHandle(forWritingAtPath: path) else {
                printError("error: can't spool standard input to \(path)")
                throw Failure(code: Exit.denied)
            }
            while true {
                let chunk = FileHandle.standardInput.readData(ofLength: 1 << 20)
                if chunk.isEmpty { break }
                out.write(chunk)
            }
            try? out.close()
        }
    }

    func reader() throws -> LineReader {
        guard let r = LineReader(path: path) else {
            printError("error: can't read \(label)")
            throw Failure(code: Exit.badInput)
        }
        return r
    }

    /// The first pass: parses every line with `parse`, naming each bad one on stderr (the
    /// first 1,000); exits 2 when any is bad. Returns the number of lines, saying so when none.
    func parseAll(what: String, _ parse: (ArraySlice<UInt8>) throws -> Void) throws -> Int {
        var count = 0, bad = 0
        let lines = try reader()
        while let (number, bytes) = lines.next() {
            do {
                try parse(bytes)
                count += 1
            } catch {
                bad += 1
                if bad <= 1_000 { printError("\(label):\(number): \(error)") }
            }
        }
        if bad > 0 {
            printError("error: \(bad) malformed line\(bad == 1 ? "" : "s")\(bad > 1_000 ? " (the first 1000 shown)" : ""); nothing was appended")
            throw Failure(code: Exit.badInput)
        }
        if count == 0 { printError("note: the input holds no \(what); nothing was appended") }
        return count
    }

    func remove() {
        if temporary { try? FileManager.default.removeItem(atPath: path) }
    }
}

/// Progress on stderr for long work — only when stderr is a terminal: done, rate and ETA,
/// redrawn at most twice a second.
final class ProgressLine {
    private let total: UInt64?
    private let what: String
    private let start = DispatchTime.now().uptimeNanoseconds
    private var last: UInt64 = 0
    private let enabled = isatty(STDERR_FILENO) == 1
    private(set) var done: UInt64 = 0

    init(_ what: String, total: UInt64?) {
        self.what = what
        self.total = total
    }

    var seconds: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
    var rate: Double { seconds > 0 ? Double(done) / seconds : 0 }

    func advance(to value: UInt64) {
        done = value
        guard enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        if now - last < 500_000_000 { return }
        last = now
        var text = "\r\(what): \(done)"
        if let total, total > 0 {
            let eta = rate > 0 ? Double(total - min(done, total)) / rate : 0
            text += "/\(total) (\(Int(Double(done) * 100 / Double(total)))%), \(Int(rate)) /s, ETA \(Int(eta)) s   "
        } else {
            text += ", \(Int(rate)) /s   "
        }
        FileHandle.standardError.write(Data(text.utf8))
    }

    func advance() { advance(to: done + 1) }

    /// Clears the progress line.
    func finish() {
        if enabled && last > 0 { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
