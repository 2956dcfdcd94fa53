/// The convention every error the `Ledger` and `Projections` libraries throw follows: a
/// stable ``errorCode`` to compare, count and log, and a ``message`` for people that names
/// what was wrong (the field, the path, the seq) and, where there is one, what to do.
///
/// ```swift
/// do { try ledger.execute(command) }
/// catch let error as any LedgerError where error.errorCode == .mapFull { … }
/// ```
public protocol LedgerError: Error, CustomStringConvertible, Sendable {
    /// The stable code.
    var errorCode: LedgerErrorCode { get }
    /// What went wrong, for people.
    var message: String { get }
}

/// A stable, machine-readable error code: a short camelCase name that does not change
/// between releases. An extensible struct rather than an enum (as postgres-nio's
/// `PSQLError.Code`): later releases may add codes, so a `switch` over codes needs a
/// `default`. The refusals of the rules keep their own codes (`DomainErrorCode` in
/// `Projections`), which a thrown `DomainError` reports here under the same names.
public struct LedgerErrorCode: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// The code's name, e.g. `mapFull`.
    public let rawValue: String
    /// A code by its name.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// A code by its name.
    public init(_ name: String) { rawValue = name }
    public var description: String { rawValue }

    // LMDB (LMDBError)
    /// The LMDB map is full and could not grow.
    public static let mapFull = LedgerErrorCode("mapFull")
    /// Another LMDB failure; `LMDBError.name` says which (`readersFull`, `corrupted`, `errno(28)` …).
    public static let storage = LedgerErrorCode("storage")
    // the event log (LogError)
    /// The log's head moved since the caller read it.
    public static let conflict = LedgerErrorCode("conflict")
    /// An event's time is before the previous event's.
    public static let timeWentBackwards = LedgerErrorCode("timeWentBackwards")
    /// A stored record could not be decoded or does not match its chain.
    public static let corrupt = LedgerErrorCode("corrupt")
    /// An event id is already stored.
    public static let duplicateID = LedgerErrorCode("duplicateID")
    // decoding untrusted bytes
    /// A binary record that does not decode (LedgerDecodingError).
    public static let malformedRecord = LedgerErrorCode("malformedRecord")
    /// Text that is not JSON (JSONParseError).
    public static let malformedJSON = LedgerErrorCode("malformedJSON")
}

extension LedgerErrorCode {
    // opening
    /// The operating system refused access (a read-only or foreign directory: `EACCES`,
    /// `EPERM`, `EROFS`).
    public static let accessDenied = LedgerErrorCode("accessDenied")
    /// A path is not a directory, or lies under a file (`ENOTDIR`).
    public static let notADirectory = LedgerErrorCode("notADirectory")
    /// The directory holds something that is not a ledger (other files, or a `data.mdb` that
    /// is not LMDB's).
    public static let notALedger = LedgerErrorCode("notALedger")
    /// No space is left on the device (`ENOSPC`).
    public static let diskFull = LedgerErrorCode("diskFull")
    /// The device failed a read, write or flush (`EIO`).
    public static let ioError = LedgerErrorCode("ioError")
}
