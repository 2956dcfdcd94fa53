import CZlib

/// zlib (RFC 1950) compression of whole buffers, for stored blobs that are large and
/// redundant (as-of snapshots: sorted keys and records that repeat emails and IDs).
///
/// Decompression is safe on hostile input: the expected size is checked against what the
/// compressed bytes can possibly expand to before anything is allocated, and a stream that
/// is corrupt, truncated, or of another size throws ``DecodingError``.
public enum Deflate {
    /// zlib's largest expansion of a stream (a run of one byte repeated), rounded up.
    public static let maximumRatio = 1_100

    /// `bytes` compressed at `level` (1 = fastest … 9 = smallest).
    public static func compress(_ bytes: [UInt8], level: Int32 = 1) -> [UInt8] {
        var bound = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(bound))
        let rc = out.withUnsafeMutableBufferPointer { dst in
            bytes.withUnsafeBufferPointer { src in
                compress2(dst.baseAddress, &bound, src.baseAddress, uLong(src.count), level)
            }
        }
        // compress2 fails only when the output is smaller than compressBound or memory runs out
        precondition(rc == Z_OK, "compress2 returned \(rc)")
        out.removeSubrange(Int(bound)...)
        return out
    }

    /// The `count` bytes that `compressed` expands to.
    public static func decompress(_ compressed: UnsafeRawBufferPointer, count: Int) throws -> [UInt8] {
        guard count >= 0, count <= compressed.count * maximumRatio + 64 else {
            throw DecodingError("a compressed blob of \(compressed.count) bytes can't expand to \(count) bytes", offset: 0)
        }
        var out = [UInt8](repeating: 0, count: max(count, 1))
        var length = uLong(count)
        let rc = out.withUnsafeMutableBufferPointer { dst in
            uncompress(dst.baseAddress, &length, compressed.baseAddress?.assumingMemoryBound(to: Bytef.self), uLong(compressed.count))
        }
        guard rc == Z_OK, length == uLong(count) else {
            let what = rc == Z_OK ? "it expanded to \(length) bytes, not \(count)"
                : rc == Z_BUF_ERROR ? "it is truncated or expands to more than \(count) bytes" : "zlib error \(rc)"
            throw DecodingError("corrupt compressed blob: \(what)", offset: 0)
        }
        out.removeSubrange(count...)
        return out
    }
}
