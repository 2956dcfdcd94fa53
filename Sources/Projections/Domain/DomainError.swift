import Ledger

/// A refusal of a command by a rule of DOMAIN.md §3: its stable code. An extensible struct
/// (as postgres-nio's `PSQLError.Code`): later releases may add codes, so a `switch` over
/// codes needs a `default`; compare with `==` (`refusal.code == .forbidden`).
public struct DomainErrorCode: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// The code's name, as DOMAIN.md writes it.
    public let rawValue: String
    /// A code by its name (any name: unknown ones compare unequal to every known code).
    public init(rawValue: String) { self.rawValue = rawValue }
    init(_ name: String) { rawValue = name }
    public var description: String { rawValue }

    /// `timeWentBackwards`.
    public static let timeWentBackwards = DomainErrorCode("timeWentBackwards")
    /// `unknownEmail` (R15: an email never seen).
    public static let unknownEmail = DomainErrorCode("unknownEmail")
    /// `alreadyErased` (R15).
    public static let alreadyErased = DomainErrorCode("alreadyErased")
    /// `subjectHoldsAccess` (R15: a role, or a contact on a legal form).
    public static let subjectHoldsAccess = DomainErrorCode("subjectHoldsAccess")
    /// `notRegistered`.
    public static let notRegistered = DomainErrorCode("notRegistered")
    /// `emailNotValidated`.
    public static let emailNotValidated = DomainErrorCode("emailNotValidated")
    /// `invalidEmail`.
    public static let invalidEmail = DomainErrorCode("invalidEmail")
    /// `alreadyRegistered` (DOMAIN.md R1).
    public static let alreadyRegistered = DomainErrorCode("alreadyRegistered")
    /// `emailInUse` (DOMAIN.md R1).
    public static let emailInUse = DomainErrorCode("emailInUse")
    /// `alreadyValidated` (DOMAIN.md R2).
    public static let alreadyValidated = DomainErrorCode("alreadyValidated")
    /// `invalidName` (DOMAIN.md R3).
    public static let invalidName = DomainErrorCode("invalidName")
    /// `duplicateLicensingId` (DOMAIN.md R4).
    public static let duplicateLicensingId = DomainErrorCode("duplicateLicensingId")
    /// `unknownParent` (DOMAIN.md R4).
    public static let unknownParent = DomainErrorCode("unknownParent")
    /// `invalidParentKind` (DOMAIN.md R4).
    public static let invalidParentKind = DomainErrorCode("invalidParentKind")
    /// `missingAuthorizationNumber` (DOMAIN.md R4).
    public static let missingAuthorizationNumber = DomainErrorCode("missingAuthorizationNumber")
    /// `unknownLicensingId` (DOMAIN.md R5).
    public static let unknownLicensingId = DomainErrorCode("unknownLicensingId")
    /// `forbidden` (DOMAIN.md R6).
    public static let forbidden = DomainErrorCode("forbidden")
    /// `roleNotAvailable`.
    public static let roleNotAvailable = DomainErrorCode("roleNotAvailable")
    /// `missingSABenefits` (DOMAIN.md R6).
    public static let missingSABenefits = DomainErrorCode("missingSABenefits")
    /// `inheritedAccess` (DOMAIN.md R6).
    public static let inheritedAccess = DomainErrorCode("inheritedAccess")
    /// `roleNotHeld` (DOMAIN.md R6).
    public static let roleNotHeld = DomainErrorCode("roleNotHeld")
    /// `lastAdministrator` (DOMAIN.md R6).
    public static let lastAdministrator = DomainErrorCode("lastAdministrator")
    /// `duplicateRequestId` (DOMAIN.md R7).
    public static let duplicateRequestId = DomainErrorCode("duplicateRequestId")
    /// `noAdministrator` (DOMAIN.md R7).
    public static let noAdministrator = DomainErrorCode("noAdministrator")
    /// `unknownRequest` (DOMAIN.md R8).
    public static let unknownRequest = DomainErrorCode("unknownRequest")
    /// `requestNotPending` (DOMAIN.md R8).
    public static let requestNotPending = DomainErrorCode("requestNotPending")
    /// `notAcknowledged` (DOMAIN.md R9).
    public static let notAcknowledged = DomainErrorCode("notAcknowledged")
    /// `profileIncomplete` (DOMAIN.md R9).
    public static let profileIncomplete = DomainErrorCode("profileIncomplete")
    /// `noOpenLicenseOnProfile` (DOMAIN.md R9).
    public static let noOpenLicenseOnProfile = DomainErrorCode("noOpenLicenseOnProfile")
    /// `suspended` (DOMAIN.md R9).
    public static let suspended = DomainErrorCode("suspended")
    /// `invalidLicenseAuthorization` (DOMAIN.md R9).
    public static let invalidLicenseAuthorization = DomainErrorCode("invalidLicenseAuthorization")
    /// The ledger's HMAC key is not the one the agreement's authorization number was hashed
    /// with (a ledger imported elsewhere without the same key). Not in DOMAIN.md: see
    /// docs; nothing is recorded.
    public static let authorizationKeyUnavailable = DomainErrorCode("authorizationKeyUnavailable")
    /// `cannotRemoveContact` (DOMAIN.md R10).
    public static let cannotRemoveContact = DomainErrorCode("cannotRemoveContact")
    /// `retainedByParentContact` (DOMAIN.md R10).
    public static let retainedByParentContact = DomainErrorCode("retainedByParentContact")
    /// `nothingToRemove` (DOMAIN.md R10).
    public static let nothingToRemove = DomainErrorCode("nothingToRemove")
    /// `nothingToDeny` (DOMAIN.md R12).
    public static let nothingToDeny = DomainErrorCode("nothingToDeny")
    /// `unknownLegacyRole` (DOMAIN.md R13).
    public static let unknownLegacyRole = DomainErrorCode("unknownLegacyRole")
    /// An account empty or over 254 characters after trimming. Not in DOMAIN.md: the JSON
    /// input refuses it as bad input; only the Swift API can reach this refusal.
    public static let invalidAccount = DomainErrorCode("invalidAccount")
    /// A recorded Licensing ID not of the form `[A-Za-z0-9-]{1,32}`. Not in DOMAIN.md: the
    /// JSON input refuses it as bad input; only the Swift API can reach this refusal.
    public static let invalidLicensingId = DomainErrorCode("invalidLicensingId")

    /// Every code this release knows, in DOMAIN.md's order.
    public static let allCases: [DomainErrorCode] = [
        .timeWentBackwards,
        .notRegistered,
        .emailNotValidated,
        .invalidEmail,
        .alreadyRegistered,
        .emailInUse,
        .alreadyValidated,
        .invalidName,
        .duplicateLicensingId,
        .unknownParent,
        .invalidParentKind,
        .missingAuthorizationNumber,
        .unknownLicensingId,
        .forbidden,
        .roleNotAvailable,
        .missingSABenefits,
        .inheritedAccess,
        .roleNotHeld,
        .lastAdministrator,
        .duplicateRequestId,
        .noAdministrator,
        .unknownRequest,
        .requestNotPending,
        .notAcknowledged,
        .profileIncomplete,
        .noOpenLicenseOnProfile,
        .suspended,
        .invalidLicenseAuthorization,
        .authorizationKeyUnavailable,
        .cannotRemoveContact,
        .retainedByParentContact,
        .nothingToRemove,
        .nothingToDeny,
        .unknownLegacyRole,
        .invalidAccount,
        .invalidLicensingId,
    ]
}

/// A refusal: the code and a message saying what to do.
public struct DomainError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stable code.
    public let code: DomainErrorCode
    /// A human-readable explanation.
    public let message: String
    /// For `suspended`: when the suspension ends.
    public let until: Timestamp?

    /// Creates a refusal.
    public init(_ code: DomainErrorCode, _ message: String, until: Timestamp? = nil) {
        self.code = code
        self.message = message
        self.until = until
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

extension DomainError: LedgerError {
    /// The refusal's code under the same name.
    public var errorCode: LedgerErrorCode { LedgerErrorCode(code.rawValue) }
}
