import Foundation
import Ledger

/// Stored rows (key, value) packed into one byte buffer, so that a rebuild recording
/// millions of projection versions makes no allocation per row: each row is its key's
/// length (2 bytes), the key, then the value, which ends where the next row begins.
struct RowBuffer {
    /// The rows' bytes; a value is written here directly after `begin`.
    var writer = BinaryWriter(capacity: 1 << 12)
    private(set) var offsets: [Int] = []

    var count: Int { offsets.count }

    /// Starts a row with `key`; its value is what is written to `writer` next.
    mutating func begin(key: some Collection<UInt8>) {
        offsets.append(writer.bytes.count)
        writer.write(UInt16(key.count))
        writer.writeRaw(key)
    }

    /// Starts a row whose key is `ids` as stored in a table of `shape`, then `seq` (a
    /// version's key, written without building it apart).
    mutating func begin(ids: IDKey, _ shape: KeyShape, seq: UInt64) {
        offsets.append(writer.bytes.count)
        switch shape {
        case .plain, .single:
            writer.write(UInt16(8))
        case .one:
            writer.write(UInt16(12))
            writer.write(ids.first)
        case .pair:
            writer.write(UInt16(16))
            writer.write(ids.first)
            writer.write(ids.second)
        }
        writer.write(seq)
    }

    /// Appends a whole row.
    mutating func append(key: some Collection<UInt8>, value: some Collection<UInt8>) {
        begin(key: key)
        writer.writeRaw(value)
    }

    /// The rows' positions in key order, keeping of equal keys the one appended last.
    func sortedLastOfEachKey() -> SortedRows {
        writer.bytes.withUnsafeBytes { buffer in
            let order = offsets.indices.sorted { a, b in
                let c = Self.compare(Self.key(buffer, offsets[a]), Self.key(buffer, offsets[b]))
                return c < 0 || (c == 0 && a < b)
            }
            var kept: [Int] = []
            kept.reserveCapacity(order.count)
            for i in order {
                if let last = kept.last, Self.compare(Self.key(buffer, offsets[last]), Self.key(buffer, offsets[i])) == 0 {
                    kept[kept.count - 1] = i
                } else {
                    kept.append(i)
                }
            }
            return SortedRows(rows: self, order: kept)
        }
    }

    static func key(_ buffer: UnsafeRawBufferPointer, _ offset: Int) -> UnsafeRawBufferPointer {
        let length = Int(buffer[offset]) << 8 | Int(buffer[offset + 1])
        return UnsafeRawBufferPointer(rebasing: buffer[(offset + 2) ..< (offset + 2 + length)])
    }

    /// memcmp order, shorter first on a common prefix (LMDB's default key order).
    static func compare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let n = min(a.count, b.count)
        if n > 0, let pa = a.baseAddress, let pb = b.baseAddress {
            let c = memcmp(pa, pb, n)
            if c != 0 { return Int(c) }
        }
        return a.count - b.count
    }
}

/// The rows of a `RowBuffer` in key order, one per key.
struct SortedRows {
    let rows: RowBuffer
    /// Row numbers in key order.
    let order: [Int]

    var count: Int { order.count }

    /// Sorted rows made from (key, value) pairs already in key order without repeats.
    init(sorted pairs: [(key: [UInt8], value: [UInt8])]) {
        var buffer = RowBuffer()
        for p in pairs { buffer.append(key: p.key, value: p.value) }
        rows = buffer
        order = Array(pairs.indices)
    }

    init(rows: RowBuffer, order: [Int]) {
        self.rows = rows
        self.order = order
    }

    /// Calls `body` with an accessor of the i-th row's key and value (valid inside it).
    func withRows<R>(_ body: ((Int) -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)) throws -> R) rethrows -> R {
        try rows.writer.bytes.withUnsafeBytes { buffer in
            let offsets = rows.offsets
            return try body { i in
                let row = order[i]
                let key = RowBuffer.key(buffer, offsets[row])
                let start = offsets[row] + 2 + key.count
                let end = row + 1 < offsets.count ? offsets[row + 1] : buffer.count
                return (key, UnsafeRawBufferPointer(rebasing: buffer[start ..< end]))
            }
        }
    }
}
