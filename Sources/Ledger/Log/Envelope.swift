import Crypto
import Foundation

/// An event to append: the envelope fields a caller chooses. The log assigns `seq` and
/// `hash`.
///
/// The payload is opaque at this layer: `kind` names its type (a code the layer above
/// defines) and `payload` is that type's encoded fields.
public struct NewEvent: Sendable, Equatable {
    /// Unique id; re-appending a known id is a no-op that returns the original seq.
    public var id: UUID
    /// The payload's type code.
    public var kind: UInt16
    /// When it happened (never earlier than the event before it).
    public var at: Timestamp
    /// The encoded payload.
    public var payload: [UInt8]

    /// Creates an event to append.
    public init(id: UUID = UUID(), kind: UInt16, at: Timestamp, payload: [UInt8]) {
        self.id = id
        self.kind = kind
        self.at = at
        self.payload = payload
    }
}

/// An event as stored: the envelope of DOMAIN.md §5 with an opaque payload.
public struct StoredEvent: Sendable, Equatable {
    /// Position in the log: 1, 2, 3 … with no gaps.
    public var seq: UInt64
    /// Unique id.
    public var id: UUID
    /// The payload's type code.
    public var kind: UInt16
    /// When it happened.
    public var at: Timestamp
    /// The encoded payload.
    public var payload: [UInt8]
    /// SHA-256 over the previous event's hash and this event's canonical bytes.
    public var hash: [UInt8]

    /// Creates a stored event from its fields (e.g. one read from a shared log).
    public init(seq: UInt64, id: UUID, kind: UInt16, at: Timestamp, payload: [UInt8], hash: [UInt8]) {
        self.seq = seq
        self.id = id
        self.kind = kind
        self.at = at
        self.payload = payload
        self.hash = hash
    }

    /// The stored value: the canonical bytes followed by the hash.
    public var storedBytes: [UInt8] {
        Envelope.canonicalBytes(seq: seq, id: id, kind: kind, at: at, payload: payload) + hash
    }
}

/// The canonical bytes of an event, which the hash chain covers and which are stored.
///
/// Layout (all integers big-endian), format version 1:
///
/// | bytes | field |
/// |---|---|
/// | 1 | format version (`1`) |
/// | 8 | seq |
/// | 16 | id (UUID bytes in RFC 4122 order) |
/// | 2 | kind (payload type code) |
/// | 8 | at (seconds since the Unix epoch, signed) |
/// | varint + n | payload length (unsigned LEB128) and payload bytes |
///
/// The stored value is the canonical bytes followed by the 32-byte hash.
/// `hash(n) = SHA-256(hash(n−1) ‖ canonical(n))` with `hash(0)` = 32 zero bytes.
public enum Envelope {
    /// The format version written in byte 0.
    public static let formatVersion: UInt8 = 1
    /// The hash the first event chains from.
    public static let genesisHash = [UInt8](repeating: 0, count: 32)

    /// The canonical bytes of an event at `seq`.
    public static func canonicalBytes(seq: UInt64, id: UUID, kind: UInt16, at: Timestamp, payload: [UInt8]) -> [UInt8] {
        var w = BinaryWriter(capacity: 40 + payload.count)
        w.write(formatVersion)
        w.write(seq)
        w.write(id)
        w.write(kind)
        w.write(at.seconds)
        w.writeBytes(payload)
        return w.bytes
    }

    /// `SHA-256(previous ‖ canonical)`.
    public static func chainHash(previous: [UInt8], canonical: some ContiguousBytes) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: previous)
        canonical.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return Array(hasher.finalize())
    }

    /// Splits a stored value into its canonical part and its hash, and decodes the fields.
    public static func decode(stored value: UnsafeRawBufferPointer) throws -> StoredEvent {
        guard value.count >= 32 + 36 else { throw LedgerDecodingError("stored event of \(value.count) bytes is too short", offset: 0) }
        let canonical = UnsafeRawBufferPointer(rebasing: value[0 ..< value.count - 32])
        var r = BinaryReader(canonical)
        let version = try r.readUInt8()
        guard version == formatVersion else { throw LedgerDecodingError("unknown format version \(version)", offset: 0) }
        let seq = try r.readUInt64()
        let id = try r.readUUID()
        let kind = try r.readUInt16()
        let at = Timestamp(seconds: try r.readInt64())
        let payload = try r.readBytes()
        try r.expectEnd()
        return StoredEvent(seq: seq, id: id, kind: kind, at: at, payload: payload,
                           hash: Array(value[(value.count - 32)...]))
    }
}

/// A zero-copy view of a stored event, valid only inside the closure that receives it.
public struct EventView {
    /// Position in the log.
    public let seq: UInt64
    /// Unique id.
    public let id: UUID
    /// The payload's type code.
    public let kind: UInt16
    /// When it happened.
    public let at: Timestamp
    /// The payload bytes, pointing into the map.
    public let payload: UnsafeRawBufferPointer
    /// The chain hash, pointing into the map.
    public let hash: UnsafeRawBufferPointer

    /// Decodes the envelope of a stored value without copying the payload.
    static func decode(_ value: UnsafeRawBufferPointer) throws -> EventView {
        guard value.count >= 32 + 36 else { throw LedgerDecodingError("stored event of \(value.count) bytes is too short", offset: 0) }
        let canonical = UnsafeRawBufferPointer(rebasing: value[0 ..< value.count - 32])
        var r = BinaryReader(canonical)
        let version = try r.readUInt8()
        guard version == Envelope.formatVersion else { throw LedgerDecodingError("unknown format version \(version)", offset: 0) }
        let seq = try r.readUInt64()
        let id = try r.readUUID()
        let kind = try r.readUInt16()
        let at = Timestamp(seconds: try r.readInt64())
        let n = try r.readLength("payload length")
        let start = r.offset
        guard start + n == canonical.count else { throw LedgerDecodingError("\(canonical.count - start - n) trailing bytes", offset: start + n) }
        return EventView(seq: seq, id: id, kind: kind, at: at,
                         payload: UnsafeRawBufferPointer(rebasing: canonical[start ..< start + n]),
                         hash: UnsafeRawBufferPointer(rebasing: value[(value.count - 32)...]))
    }

    /// A copy that outlives the closure.
    public func copy() -> StoredEvent {
        StoredEvent(seq: seq, id: id, kind: kind, at: at, payload: Array(payload), hash: Array(hash))
    }
}
