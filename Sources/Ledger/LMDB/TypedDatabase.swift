import Foundation

/// How a key or value type is stored as bytes in LMDB.
public protocol LMDBCodec {
    /// The Swift type stored.
    associatedtype Value
    /// Its bytes.
    static func encode(_ value: Value) -> [UInt8]
    /// Decodes bytes read from the map (valid only during the call); throws on malformed bytes.
    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> Value
}

/// `UInt64` as 8 big-endian bytes, so LMDB's byte order is numeric order.
public enum BigEndianUInt64Codec: LMDBCodec {
    public static func encode(_ value: UInt64) -> [UInt8] { BigEndianKey.bytes(value) }
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> UInt64 {
        guard bytes.count == 8, let v = BigEndianKey.value(bytes) else { throw LedgerDecodingError("expected 8 bytes, got \(bytes.count)", offset: 0) }
        return v
    }
}

/// A UUID as its 16 bytes.
public enum UUIDCodec: LMDBCodec {
    public static func encode(_ value: UUID) -> [UInt8] { withUnsafeBytes(of: value.uuid) { Array($0) } }
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> UUID {
        guard bytes.count == 16 else { throw LedgerDecodingError("expected 16 bytes, got \(bytes.count)", offset: 0) }
        var r = BinaryReader(bytes)
        return try r.readUUID()
    }
}

/// A string as UTF-8 (invalid UTF-8 throws).
public enum UTF8StringCodec: LMDBCodec {
    public static func encode(_ value: String) -> [UInt8] { Array(value.utf8) }
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> String {
        guard let s = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else { throw LedgerDecodingError("invalid UTF-8", offset: 0) }
        return s
    }
}

/// Raw bytes, copied out of the map.
public enum RawBytesCodec: LMDBCodec {
    public static func encode(_ value: [UInt8]) -> [UInt8] { value }
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> [UInt8] { Array(bytes) }
}

/// A stored event (canonical bytes ‖ hash).
public enum StoredEventCodec: LMDBCodec {
    public static func encode(_ value: StoredEvent) -> [UInt8] {
        Envelope.canonicalBytes(seq: value.seq, id: value.id, kind: value.kind, at: value.at, payload: value.payload) + value.hash
    }
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> StoredEvent { try Envelope.decode(stored: bytes) }
}

/// A named database whose keys and values have Swift types, read and written through codecs.
public struct TypedDatabase<Key: LMDBCodec, Value: LMDBCodec>: Sendable {
    /// The untyped handle.
    public let database: LMDBDatabase

    /// Wraps an opened database.
    public init(_ database: LMDBDatabase) { self.database = database }

    /// The value under `key`, decoded, or nil.
    public func get(_ key: Key.Value, in txn: borrowing some TransactionReading & ~Copyable) throws -> Value.Value? {
        try txn.withValue(database, key: Key.encode(key)) { try Value.decode($0) }
    }

    /// The value under `key` through a reader object, decoded, or nil.
    public func get(_ key: Key.Value, reader: TransactionReader) throws -> Value.Value? {
        try reader.withValue(database, key: Key.encode(key)) { try Value.decode($0) }
    }

    /// Stores `value` under `key`.
    public func put(_ key: Key.Value, _ value: Value.Value, in txn: inout WriteTransaction, flags: PutFlags = []) throws {
        try txn.put(database, key: Key.encode(key), value: Value.encode(value), flags: flags)
    }

    /// Stores `value` under `key` through a writer object.
    public func put(_ key: Key.Value, _ value: Value.Value, writer: TransactionWriter, flags: PutFlags = []) throws {
        try writer.put(database, key: Key.encode(key), value: Value.encode(value), flags: flags)
    }

    /// Visits decoded entries in key order from `start` until `body` returns false.
    public func scan(in txn: borrowing some TransactionReading & ~Copyable, from start: Key.Value? = nil,
                     _ body: (Key.Value, Value.Value) throws -> Bool) throws {
        try txn.scan(database, from: start.map(Key.encode)) { k, v in try body(try Key.decode(k), try Value.decode(v)) }
    }
}
