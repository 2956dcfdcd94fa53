import Crypto
import Foundation
import Ledger

/// The secret behind stored authorization numbers: HMAC-SHA-256 under a key kept outside
/// the event log. Events store the keyed hash and the key's id, never the number.
public struct AuthorizationKey: Sendable {
    private let key: SymmetricKey
    /// Identifies the key (16 hex digits derived from it), stored beside each hash so a
    /// ledger knows whether it holds the key an agreement was recorded with.
    public let keyId: String

    /// A key from raw bytes (at least 16).
    public init(bytes: [UInt8]) throws {
        guard bytes.count >= 16 else { throw InputError(field: "key", "an authorization key needs at least 16 bytes, got \(bytes.count)") }
        key = SymmetricKey(data: bytes)
        var h = SHA256()
        h.update(data: Array("permission-ledger authorization key id v1".utf8))
        h.update(data: bytes)
        keyId = Hex.encode(h.finalize().prefix(8))
    }

    /// A new random 32-byte key, and its bytes (to be saved by the caller).
    public static func generate() -> (key: AuthorizationKey, bytes: [UInt8]) {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        // 32 bytes always satisfy the length check.
        return ((try? AuthorizationKey(bytes: bytes)) ?? AuthorizationKey(unchecked: bytes), bytes)
    }

    private init(unchecked bytes: [UInt8]) {
        key = SymmetricKey(data: bytes)
        keyId = "unchecked"
    }

    /// The keyed hash of an authorization number.
    public func hash(_ authorizationNumber: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(authorizationNumber.utf8), using: key))
    }

    /// Whether `authorizationNumber` hashes to `stored`, compared in constant time.
    public func matches(_ authorizationNumber: String, stored: [UInt8]) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(stored, authenticating: Array(authorizationNumber.utf8), using: key)
    }
}
