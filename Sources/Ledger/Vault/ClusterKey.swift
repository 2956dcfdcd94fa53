import Crypto
import Foundation

/// The key a **shared log** seals vault items under (``VaultItem``), the same on every host
/// (as the authorization key): 32 random bytes in a file each host is given. The shared log
/// holds items only sealed (AES-GCM, bound to the ledger's name and to the item's kind,
/// record and subject), so its server, its WAL and its backups hold ciphertext; an erasure
/// deletes the subject's items there. Rotating the key — every live item sealed again under
/// a new one, the old key destroyed — makes what the server's dead rows and old backups kept
/// unreadable.
public struct ClusterKey: Sendable {
    let key: SymmetricKey
    /// The key's identifier: the first 8 bytes of a SHA-256 of the key under a label of its
    /// own. The shared log stores it beside each sealed item, so that a host holding several
    /// keys during a rotation opens each item with the key that sealed it; it reveals nothing
    /// of the key.
    public let id: [UInt8]
    static let label = Array("permission-ledger shared vault item 1\u{0}".utf8)
    static let idLabel = Array("permission-ledger cluster key id 1\u{0}".utf8)

    /// A key from its 32 bytes (a file's contents).
    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else {
            throw VaultError(reason: .clusterKey("a cluster key is 32 bytes, not \(bytes.count)"))
        }
        key = SymmetricKey(data: bytes)
        id = Array(SHA256.hash(data: Self.idLabel + bytes).prefix(8))
    }

    /// The key's identifier in hex (16 digits), as operators see it.
    public var idHex: String { Hex.encode(id) }

    /// 32 fresh random bytes for a new cluster key (from the kernel's CSPRNG).
    public static func generate() throws -> [UInt8] { try SubjectVault.randomBytes(32) }

    static func context(_ ledger: String, _ kind: UInt8, _ ref: [UInt8], _ subject: Pseudonym) -> [UInt8] {
        label + Array(ledger.utf8) + [0, kind] + BigEndianKey.bytes(UInt64(ref.count)) + ref + subject.bytes
    }

    /// `item`'s personal bytes sealed for shared log `ledger`; nil for an erased item.
    public func seal(_ item: VaultItem, ledger: String) throws -> [UInt8]? {
        guard let plain = item.plain else { return nil }
        let box = try AES.GCM.seal(plain, using: key, authenticating: Self.context(ledger, item.kind.rawValue, item.ref, item.subject))
        guard let combined = box.combined else { throw VaultError(reason: .damaged("AES-GCM gave no combined form")) }
        return Array(combined)
    }

    /// The item of an erased row (no sealed bytes: it opens without a key).
    public static func openErased(kind: UInt8, ref: [UInt8], subject: [UInt8]) throws -> VaultItem {
        guard let k = VaultItem.Kind(rawValue: kind) else { throw VaultError(reason: .damaged("a shared vault item of kind \(kind)")) }
        guard let p = Pseudonym(bytes: subject) else { throw VaultError(reason: .damaged("a shared vault item whose subject is \(subject.count) bytes")) }
        return VaultItem(kind: k, ref: ref, subject: p, plain: nil)
    }

    /// The item a shared log's row holds, opened and checked against its kind, record and
    /// subject (a row moved to another subject, or altered, does not open).
    public func open(kind: UInt8, ref: [UInt8], subject: [UInt8], sealed: [UInt8]?, ledger: String) throws -> VaultItem {
        // (the kind and the subject checked)
        var item = try Self.openErased(kind: kind, ref: ref, subject: subject)
        guard let sealed else { return item }
        let p = item.subject
        let plain: [UInt8]
        do {
            plain = Array(try AES.GCM.open(try AES.GCM.SealedBox(combined: sealed), using: key,
                                           authenticating: Self.context(ledger, kind, ref, p)))
        } catch {
            throw VaultError(reason: .clusterKey("a shared vault item of subject \(p) does not open under this cluster key: another host's key, or an altered row"))
        }
        item.plain = plain
        return item
    }
}
