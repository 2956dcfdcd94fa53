import Ledger

// The Projections module's errors under the one convention (LedgerError): a stable code and
// a message. DomainError's conformance is beside it (DomainError.swift).

extension LedgerErrorCode {
    /// Malformed input: a command's or an option's field (InputError).
    public static let invalidInput = LedgerErrorCode("invalidInput")
    /// An imported event that does not apply, when no rule's code says why (ImportError).
    public static let invalidEvent = LedgerErrorCode("invalidEvent")
    /// The ledger was opened with a policy other than its stored one (PolicyConflict).
    public static let policyConflict = LedgerErrorCode("policyConflict")
    /// A key file is missing (KeyFileError).
    public static let keyFileMissing = LedgerErrorCode("keyFileMissing")
    /// A key file can't be read, written or used (KeyFileError).
    public static let keyFileUnusable = LedgerErrorCode("keyFileUnusable")
    /// A checkpoint's JSON is not one (CheckpointFormatError).
    public static let malformedCheckpoint = LedgerErrorCode("malformedCheckpoint")
    /// The stored projections are not usable as they are (StateError): behind or ahead of
    /// the log, of an unknown format, or missing a table — `message` says which and what to do.
    public static let projections = LedgerErrorCode("projections")
    /// A write through a read-only view of the projections (StateError).
    public static let readOnly = LedgerErrorCode("readOnly")
    /// A ledger of event format 1 opened without asking for that format (EventFormatError):
    /// write a format-2 ledger from it with `ledger-tool upgrade OLD NEW`.
    public static let upgradeRequired = LedgerErrorCode("upgradeRequired")
}

extension InputError: LedgerError {
    /// `invalidInput`; ``field`` names what was wrong.
    public var errorCode: LedgerErrorCode { .invalidInput }
}

extension ImportError: LedgerError {
    /// The rule's code when an event breaks one, else `invalidEvent`.
    public var errorCode: LedgerErrorCode { code.map { LedgerErrorCode(rawValue: $0) } ?? .invalidEvent }
}

extension PolicyConflict: LedgerError {
    /// `policyConflict`.
    public var errorCode: LedgerErrorCode { .policyConflict }
    /// The description.
    public var message: String { description }
}

extension KeyFileError: LedgerError {
    /// `keyFileMissing` or `keyFileUnusable`.
    public var errorCode: LedgerErrorCode { reason == "missing" ? .keyFileMissing : .keyFileUnusable }
    /// The description.
    public var message: String { description }
}

extension CheckpointFormatError: LedgerError {
    /// `malformedCheckpoint`.
    public var errorCode: LedgerErrorCode { .malformedCheckpoint }
}

extension StateError: LedgerError {
    /// `readOnly`, else `projections`.
    public var errorCode: LedgerErrorCode {
        if case .readOnly = self { return .readOnly }
        return .projections
    }
    /// The description.
    public var message: String { description }
}

extension ReplicationError: LedgerError {
    /// `replicaDiverged`, `replicationGap`, `hashMismatch` or `invalidReplicatedEvent`.
    public var errorCode: LedgerErrorCode { LedgerErrorCode(code) }
    /// The description.
    public var message: String { description }
}
