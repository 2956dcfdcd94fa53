import Foundation
import Ledger

// The JSON form of a checkpoint, as `ledger-tool checkpoint` prints it and `verify --against`
// reads it: `{"seq","headHash","at"?,"signature"?,"scheme"?,"keyId"?}` (hex for bytes), so
// a service keeps and checks checkpoints in the same form as the CLI.

/// A checkpoint's JSON that is not one: what is wrong.
public struct CheckpointFormatError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What is wrong, naming the field.
    public var message: String
    public var description: String { message }
}

extension Checkpoint {
    /// The JSON form.
    public var json: JSONValue {
        var f: [(key: String, value: JSONValue)] = [("seq", .uint(seq)), ("headHash", .string(Hex.encode(headHash)))]
        if let at { f.append(("at", .string(at.iso8601))) }
        if let signature {
            f.append(("signature", .string(Hex.encode(signature))))
            if let scheme { f.append(("scheme", .string(scheme.rawValue))) }
        }
        if let keyId { f.append(("keyId", .string(keyId))) }
        return .object(f)
    }

    /// Reads the JSON form; throws `CheckpointFormatError` naming the field at fault.
    public init(json: JSONValue) throws {
        guard case let .number(_, seqValue?)? = json["seq"], seqValue >= 0,
              case let .string(hashText)? = json["headHash"], let hash = Hex.decode(hashText), hash.count == 32 else {
            throw CheckpointFormatError(message: "a checkpoint needs \"seq\" (an integer) and \"headHash\" (64 hex digits)")
        }
        var signature: [UInt8]?
        var keyId: String?
        if case let .string(k)? = json["keyId"] { keyId = k }
        if case let .string(s)? = json["signature"] {
            let length = keyId == nil ? 32 : 64
            guard let bytes = Hex.decode(s), bytes.count == length else {
                throw CheckpointFormatError(message: "\"signature\" must be \(length * 2) hex digits\(keyId == nil ? " (HMAC)" : " (Ed25519, with \"keyId\")")")
            }
            signature = bytes
        }
        var at: Timestamp?
        if case let .string(s)? = json["at"] {
            guard let t = Timestamp(iso8601: s) else { throw CheckpointFormatError(message: "\"at\" must be a time of the form YYYY-MM-DDTHH:MM:SSZ") }
            at = t
        }
        self.init(seq: UInt64(seqValue), headHash: hash, at: at, signature: signature, keyId: keyId)
    }
}
