import Ledger

/// The canonical payload of a format-2 event (DOMAIN.md §5.1): for each personal field, in
/// the order of ``DomainEvent/personalFields``, a pseudonym (16 bytes: the subject's for an
/// email or a free text, the account's for an account) and a commitment to the value (32
/// bytes, ``SubjectVault/commitment(value:field:event:secret:)``), then the format-1 payload
/// of the event with every personal value emptied:
///
///     varint n ‖ n × (pseudonym ‖ commitment) ‖ payload with "" in each personal field
///
/// So the hash chain covers every non-personal fact and a commitment to each value, never a
/// value, and the state a fold makes from it is read from these bytes alone (no vault): each
/// field becomes its ``PersonalToken``.
enum SealedPayload {
    /// One personal field as the payload holds it.
    struct Field: Equatable, Sendable {
        var ref: Pseudonym
        var commitment: [UInt8]
    }

    /// The payload of `event` (whose personal values are ignored) with `fields`, one per
    /// personal field in order.
    static func encode(_ event: DomainEvent, fields: [Field]) -> [UInt8] {
        var w = BinaryWriter(capacity: 64 + fields.count * 48)
        w.writeVarint(UInt64(fields.count))
        for f in fields {
            w.writeRaw(f.ref.bytes)
            w.writeRaw(f.commitment)
        }
        w.writeRaw(event.mappingPersonalFields { _ in "" }.encodedPayload())
        return w.bytes
    }

    /// The event with its personal values emptied, and its fields; throws
    /// `LedgerDecodingError` on any malformed byte, or when the count of fields is not the
    /// event's.
    static func decode(kind: UInt16, payload: UnsafeRawBufferPointer) throws -> (event: DomainEvent, fields: [Field]) {
        var r = BinaryReader(payload)
        let n = try r.readVarint()
        guard n <= UInt64(r.remaining / 48) else { throw LedgerDecodingError("\(n) personal fields exceed the \(r.remaining) bytes left", offset: r.offset) }
        var fields: [Field] = []
        fields.reserveCapacity(Int(n))
        for _ in 0 ..< n {
            guard let ref = Pseudonym(bytes: try r.readRaw(16)) else { throw LedgerDecodingError("a pseudonym is not 16 bytes", offset: r.offset) }
            fields.append(Field(ref: ref, commitment: try r.readRaw(32)))
        }
        let start = r.offset
        let rest = UnsafeRawBufferPointer(rebasing: payload[start...])
        let event = try DomainEvent.decode(kind: kind, payload: rest)
        var count = 0
        let emptied = event.mappingPersonalFields { f in count += 1; return f.value }
        guard count == fields.count else {
            throw LedgerDecodingError("\(fields.count) personal fields given for an event of \(count)", offset: 0)
        }
        // a value where the payload must hold "" would be a personal value in the hashed bytes
        guard emptied.personalFields.allSatisfy({ $0.value.isEmpty }) else {
            throw LedgerDecodingError("a personal field holds a value instead of being empty", offset: start)
        }
        return (event, fields)
    }

    /// The event as the fold sees it: each personal field its ``PersonalToken``.
    static func view(kind: UInt16, payload: UnsafeRawBufferPointer) throws -> DomainEvent {
        let (event, fields) = try decode(kind: kind, payload: payload)
        var i = 0
        return event.mappingPersonalFields { f in
            defer { i += 1 }
            return PersonalToken(kind: f.kind, ref: fields[i].ref, commitment: fields[i].commitment).string
        }
    }
}
