import Foundation

/// The multi-host workload of `ledger-replica stress`: host `k` of `n` executes commands
/// `i` with `i mod n == k` of one generated history, each with the idempotency id
/// `commandID(seed:index:)`, so a retried or restarted host takes effect once and a test
/// can find each acknowledged command in the log.
public enum HostWorkload {
    /// The idempotency id of command `index` of the history with `seed` (a UUID shaped as
    /// version 4, built from the two numbers).
    public static func commandID(seed: UInt64, index: Int) -> UUID {
        var bytes = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: seed.bigEndian) { for (i, b) in $0.enumerated() { bytes[i] = b } }
        withUnsafeBytes(of: UInt64(index).bigEndian) { for (i, b) in $0.enumerated() { bytes[8 + i] = b } }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return bytes.withUnsafeBytes { UUID(uuid: $0.loadUnaligned(as: uuid_t.self)) }
    }
}
