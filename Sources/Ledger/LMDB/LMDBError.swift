import CLMDB

/// An error reported by LMDB, or by this library's use of it.
///
/// `code` is LMDB's return code: negative `MDB_*` values are LMDB's own errors,
/// positive values are operating-system `errno` values. Both are described by
/// `mdb_strerror`, which `message` uses.
public struct LMDBError: Error, Equatable, Sendable, CustomStringConvertible {
    /// LMDB's return code (`MDB_*` when negative, `errno` when positive).
    public let code: Int32
    /// The LMDB call that failed, e.g. `mdb_put`.
    public let operation: String

    /// Creates an error for `code` returned by `operation`.
    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    /// The human-readable description LMDB gives for `code`.
    public var message: String {
        guard let text = mdb_strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }

    /// A stable, short name for the code, e.g. `mapFull`, `notFound`, `errno(28)`.
    public var name: String {
        switch code {
        case MDB_KEYEXIST: return "keyExists"
        case MDB_NOTFOUND: return "notFound"
        case MDB_MAP_FULL: return "mapFull"
        case MDB_MAP_RESIZED: return "mapResized"
        case MDB_READERS_FULL: return "readersFull"
        case MDB_TXN_FULL: return "transactionFull"
        case MDB_BAD_TXN: return "badTransaction"
        case MDB_CORRUPTED: return "corrupted"
        case MDB_INVALID: return "invalidFile"
        case MDB_VERSION_MISMATCH: return "versionMismatch"
        default: return code > 0 ? "errno(\(code))" : "lmdb(\(code))"
        }
    }

    public var description: String { "\(operation): \(message) [\(name)]" }

    /// The key is already stored (`MDB_KEYEXIST`).
    public var isKeyExists: Bool { code == MDB_KEYEXIST }

    /// The map is full; the environment grows it and retries on its own.
    public var isMapFull: Bool { code == MDB_MAP_FULL }

    /// Throws an `LMDBError` when `rc` is not `MDB_SUCCESS`.
    @inline(__always)
    static func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws {
        if rc != MDB_SUCCESS { throw LMDBError(code: rc, operation: operation()) }
    }
}
