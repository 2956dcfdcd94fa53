import Ledger

/// The decoders that take untrusted bytes, as one entry point for fuzzing and for the
/// regression test that replays the fuzz corpus. Decoding errors are expected; a trap,
/// a hang or unbounded memory is a bug.
public enum FuzzTargets {
    /// Runs one input through the decoder `selector % 3` names: 0 the JSON command decoder,
    /// 1 the JSON event decoder, 2 the binary envelope and event decoder. Whatever decodes
    /// must re-encode and decode to the same value.
    public static func run(selector: UInt8, input: [UInt8]) {
        switch selector % 3 {
        case 0:
            guard let json = try? JSONParser.parse(input), let command = try? TimedCommand(json: json) else { return }
            let again = try? TimedCommand(json: try JSONParser.parse(command.json.text))
            precondition(again == command, "a decoded command did not survive its own JSON form")
        case 1:
            guard let json = try? JSONParser.parse(input), let event = try? ImportedEvent(json: json) else { return }
            let payload = event.event.encodedPayload()
            let decoded = try? DomainEvent.decode(kind: event.event.kind, payload: payload)
            precondition(decoded == event.event, "an imported event did not survive its binary form")
        default:
            guard let stored = try? input.withUnsafeBytes({ try Envelope.decode(stored: $0) }) else {
                if input.count > 2 {
                    let kind = UInt16(input[0]) << 8 | UInt16(input[1])
                    if let event = try? DomainEvent.decode(kind: kind, payload: Array(input.dropFirst(2))) {
                        precondition(event.encodedPayload() == Array(input.dropFirst(2)), "a decoded payload did not re-encode to its bytes")
                    }
                }
                return
            }
            if let event = try? DomainEvent.decode(kind: stored.kind, payload: stored.payload) {
                precondition(event.encodedPayload() == stored.payload, "a decoded payload did not re-encode to its bytes")
            }
        }
    }
}
