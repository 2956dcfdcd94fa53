import Ledger

/// A refusal of a command by a rule of DOMAIN.md §3. Raw values are the stable codes.
public enum DomainErrorCode: String, Sendable, Hashable, CaseIterable, Codable {
    case timeWentBackwards
    case notRegistered, emailNotValidated
    case invalidEmail, alreadyRegistered, emailInUse
    case alreadyValidated
    case invalidName
    case duplicateLicensingId, unknownParent, invalidParentKind, missingAuthorizationNumber
    case unknownLicensingId
    case forbidden, roleNotAvailable, missingSABenefits, inheritedAccess, roleNotHeld, lastAdministrator
    case duplicateRequestId, noAdministrator
    case unknownRequest, requestNotPending
    case notAcknowledged, profileIncomplete, noOpenLicenseOnProfile, suspended, invalidLicenseAuthorization
    /// The ledger's HMAC key is not the one the agreement's authorization number was hashed
    /// with (a ledger imported elsewhere without the same key). Not in DOMAIN.md: see
    /// docs; nothing is recorded.
    case authorizationKeyUnavailable
    case cannotRemoveContact, retainedByParentContact, nothingToRemove
    case nothingToDeny
    case unknownLegacyRole
    /// An account empty or over 254 characters after trimming. Not in DOMAIN.md: the JSON
    /// input refuses it as bad input; only the Swift API can reach this refusal.
    case invalidAccount
    /// A recorded Licensing ID not of the form `[A-Za-z0-9-]{1,32}`. Not in DOMAIN.md: the
    /// JSON input refuses it as bad input; only the Swift API can reach this refusal.
    case invalidLicensingId
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
