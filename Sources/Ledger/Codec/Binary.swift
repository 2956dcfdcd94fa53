import Foundation

/// An error decoding bytes: what was expected and at which offset.
public struct LedgerDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What the decoder was reading when it failed.
    public let reason: String
    /// The byte offset where it failed.
    public let offset: Int
    /// Creates an error.
    public init(_ reason: String, offset: Int) {
        self.reason = reason
        self.offset = offset
    }
    public var description: String { "undecodable bytes at offset \(offset): \(reason)" }
}

/// Appends values in this library's compact binary form: big-endian fixed-width
/// integers, LEB128 lengths, UTF-8 strings prefixed by their length.
public struct BinaryWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// Creates an empty writer with room for `capacity` bytes.
    public init(capacity: Int = 128) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Forgets what was written, keeping the room (to reuse one writer for many values).
    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    /// Writes one byte.
    @inline(__always) public mutating func write(_ value: UInt8) { bytes.append(value) }

    /// Writes a big-endian `UInt16`.
    @inline(__always) public mutating func write(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    /// Writes a big-endian `UInt32`.
    @inline(__always) public mutating func write(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Writes a big-endian `UInt64`.
    @inline(__always) public mutating func write(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Writes a big-endian two's-complement `Int64`.
    @inline(__always) public mutating func write(_ value: Int64) { write(UInt64(bitPattern: value)) }

    /// Writes an unsigned LEB128 varint.
    @inline(__always) public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Writes a length-prefixed UTF-8 string.
    @inline(__always) public mutating func write(_ value: String) {
        var s = value
        s.withUTF8 { utf8 in
            writeVarint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// Writes a presence byte and, when present, the string.
    public mutating func write(_ value: String?) {
        if let value { write(UInt8(1)); write(value) } else { write(UInt8(0)) }
    }

    /// Writes raw bytes as they are (no length).
    @inline(__always) public mutating func writeRaw(_ value: some Collection<UInt8>) { bytes.append(contentsOf: value) }

    /// Writes length-prefixed bytes.
    public mutating func writeBytes(_ value: some Collection<UInt8>) {
        writeVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// Writes a count followed by each string.
    public mutating func write(_ values: [String]) {
        writeVarint(UInt64(values.count))
        for v in values { write(v) }
    }

    /// Writes a UUID's 16 bytes.
    public mutating func write(_ value: UUID) {
        withUnsafeBytes(of: value.uuid) { bytes.append(contentsOf: $0) }
    }
}

/// Reads the form `BinaryWriter` writes, with bounds checks: malformed input throws a
/// `LedgerDecodingError`, never traps. A reader must not outlive the buffer it reads.
public struct BinaryReader {
    private let base: UnsafeRawBufferPointer
    /// The current read offset.
    public private(set) var offset: Int

    /// Reads from `bytes`, which must stay valid while the reader is used.
    public init(_ bytes: UnsafeRawBufferPointer) {
        base = bytes
        offset = 0
    }

    /// True when every byte was read.
    public var isAtEnd: Bool { offset == base.count }

    /// The number of bytes not read yet.
    public var remaining: Int { base.count - offset }

    @inline(__always) private mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        if n < 0 || base.count - offset < n { throw LedgerDecodingError("truncated \(what())", offset: offset) }
    }

    /// Reads one byte.
    @inline(__always) public mutating func readUInt8() throws -> UInt8 {
        try need(1, "byte")
        defer { offset += 1 }
        return base[offset]
    }

    /// Reads a big-endian `UInt16`.
    @inline(__always) public mutating func readUInt16() throws -> UInt16 {
        try need(2, "UInt16")
        defer { offset += 2 }
        return UInt16(base[offset]) << 8 | UInt16(base[offset + 1])
    }

    /// Reads a big-endian `UInt32`.
    @inline(__always) public mutating func readUInt32() throws -> UInt32 {
        try need(4, "UInt32")
        defer { offset += 4 }
        return UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// Reads a big-endian `UInt64`.
    @inline(__always) public mutating func readUInt64() throws -> UInt64 {
        try need(8, "UInt64")
        defer { offset += 8 }
        return UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// Reads a big-endian `Int64`.
    @inline(__always) public mutating func readInt64() throws -> Int64 { Int64(bitPattern: try readUInt64()) }

    /// Reads an unsigned LEB128 varint (at most 10 bytes).
    @inline(__always) public mutating func readVarint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readUInt8()
            if shift == 63 && byte > 1 { throw LedgerDecodingError("varint overflow", offset: offset) }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                // Only the shortest form is canonical: a final zero byte after others is not.
                if byte == 0 && shift > 0 { throw LedgerDecodingError("non-minimal varint", offset: offset - 1) }
                return result
            }
            shift += 7
            if shift > 63 { throw LedgerDecodingError("varint too long", offset: offset) }
        }
    }

    /// Reads a length that must fit in the bytes left.
    @inline(__always) public mutating func readLength(_ what: String = "length") throws -> Int {
        let n = try readVarint()
        guard n <= UInt64(remaining) else { throw LedgerDecodingError("\(what) \(n) exceeds the \(remaining) bytes left", offset: offset) }
        return Int(n)
    }

    /// Reads a length-prefixed UTF-8 string (invalid UTF-8 throws).
    public mutating func readString() throws -> String {
        let n = try readLength("string length")
        let slice = UnsafeRawBufferPointer(rebasing: base[offset ..< offset + n])
        guard let s = String(validating: slice.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw LedgerDecodingError("invalid UTF-8", offset: offset)
        }
        offset += n
        return s
    }

    /// Reads a presence byte: 0 (absent) or 1 (present); anything else is not canonical.
    public mutating func readPresence() throws -> Bool {
        switch try readUInt8() {
        case 0: return false
        case 1: return true
        case let b: throw LedgerDecodingError("presence byte \(b)", offset: offset - 1)
        }
    }

    /// Reads an optional string written by `BinaryWriter.write(_: String?)`.
    public mutating func readOptionalString() throws -> String? {
        switch try readUInt8() {
        case 0: return nil
        case 1: return try readString()
        case let b: throw LedgerDecodingError("presence byte \(b)", offset: offset - 1)
        }
    }

    /// Reads a count-prefixed list of strings.
    public mutating func readStrings() throws -> [String] {
        let n = try readLength("list count")
        var out: [String] = []
        out.reserveCapacity(n)
        for _ in 0 ..< n { out.append(try readString()) }
        return out
    }

    /// Reads `count` raw bytes.
    public mutating func readRaw(_ count: Int) throws -> [UInt8] {
        try need(count, "\(count) bytes")
        defer { offset += count }
        return Array(base[offset ..< offset + count])
    }

    /// The next `count` bytes, without copying (valid as long as the reader's bytes are).
    public mutating func readSlice(_ count: Int) throws -> UnsafeRawBufferPointer {
        try need(count, "\(count) bytes")
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: base[offset ..< offset + count])
    }

    /// Reads length-prefixed bytes.
    public mutating func readBytes() throws -> [UInt8] {
        try readRaw(try readLength("byte length"))
    }

    /// Reads a UUID's 16 bytes.
    public mutating func readUUID() throws -> UUID {
        try need(16, "UUID")
        var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &uuid) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: base[offset ..< offset + 16]))
        }
        offset += 16
        return UUID(uuid: uuid)
    }

    /// Throws unless every byte was read.
    public func expectEnd() throws {
        if !isAtEnd { throw LedgerDecodingError("\(remaining) trailing bytes", offset: offset) }
    }
}

/// LMDB's default key order (bytes compared unsigned, a prefix first), fast.
public enum KeyOrder {
    /// Whether `a` sorts before `b` as LMDB orders keys.
    @inline(__always)
    public static func precedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in precedes(x, y) } }
    }

    /// Whether `a` sorts before `b` (a stored key) as LMDB orders keys.
    @inline(__always)
    public static func precedes(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        a.withUnsafeBytes { x in precedes(x, b) }
    }

    /// Whether `a` sorts before `b` as LMDB orders keys.
    @inline(__always)
    public static func precedes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        let n = min(a.count, b.count)
        if n > 0, let p = a.baseAddress, let q = b.baseAddress {
            let c = memcmp(p, q, n)
            if c != 0 { return c < 0 }
        }
        return a.count < b.count
    }
}
