import Foundation
#if canImport(Glibc)
import Glibc
#endif

// What the erasure tests search with: every file under a directory, and every form a
// personal value could be found in (issue 18's "no plaintext" tests).

/// Every regular file under `directory` (recursively), with its bytes.
public func filesUnder(_ directory: String) -> [(String, [UInt8])] {
    (FileManager.default.subpaths(atPath: directory) ?? []).compactMap { name in
        var isDirectory: ObjCBool = false
        let path = directory + "/" + name
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
              let data = FileManager.default.contents(atPath: path) else { return nil }
        return (name, [UInt8](data))
    }
}

/// Whether `bytes` hold `needle` anywhere (the C library's `memchr` for the first byte, then
/// `memcmp`: the shared-log tests search a PostgreSQL data directory of some hundred
/// megabytes; glibc's `memmem` is not in Swift's Glibc module).
public func holds(_ bytes: [UInt8], _ needle: [UInt8]) -> Bool {
    guard let first = needle.first, bytes.count >= needle.count else { return false }
    return bytes.withUnsafeBytes { b in
        needle.withUnsafeBytes { n in
            guard let base = b.baseAddress, let nb = n.baseAddress else { return false }
            var at = 0
            let last = b.count - n.count
            while at <= last {
                guard let hit = memchr(base + at, Int32(first), last - at + 1) else { return false }
                let offset = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + offset, nb, n.count) == 0 { return true }
                at = offset + 1
            }
            return false
        }
    }
}

/// Whether `bytes` hold `text`'s UTF-8.
public func holds(_ bytes: [UInt8], _ text: String) -> Bool { holds(bytes, Array(text.utf8)) }

/// Every form a file or an output could hold `value` in: as given, lower and upper case and
/// with `@` JSON-escaped, each in UTF-8 and in UTF-16 of both byte orders.
public func plaintextForms(_ value: String) -> [[UInt8]] {
    var out: [[UInt8]] = []
    for v in Set([value, value.lowercased(), value.uppercased(), value.replacingOccurrences(of: "@", with: "\\u0040")]) {
        out.append(Array(v.utf8))
        out.append(Array(v.utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
        out.append(Array(v.utf16).flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] })
    }
    return out
}
