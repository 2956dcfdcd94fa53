import CLMDB
import Foundation

// The Ledger module's errors under the one convention (LedgerError).

extension LMDBError: LedgerError {
    /// `mapFull`, `notALedger` (not an LMDB file), `accessDenied`, `notADirectory`,
    /// `diskFull`, `ioError`, else `storage` (``name`` says which LMDB or system error).
    public var errorCode: LedgerErrorCode {
        switch code {
        case MDB_MAP_FULL: return .mapFull
        case MDB_INVALID, MDB_VERSION_MISMATCH: return .notALedger
        case EACCES, EPERM, EROFS: return .accessDenied
        case ENOTDIR: return .notADirectory
        case ENOSPC: return .diskFull
        case EIO: return .ioError
        default: return .storage
        }
    }
}

extension LogError: LedgerError {
    /// `conflict`, `timeWentBackwards`, `corrupt` or `duplicateID`.
    public var errorCode: LedgerErrorCode { LedgerErrorCode(code) }
    /// The description.
    public var message: String { description }
}

extension LedgerDecodingError: LedgerError {
    /// `malformedRecord`.
    public var errorCode: LedgerErrorCode { .malformedRecord }
    /// The description.
    public var message: String { description }
}

extension JSONParseError: LedgerError {
    /// `malformedJSON`.
    public var errorCode: LedgerErrorCode { .malformedJSON }
}
