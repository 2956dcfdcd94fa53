import Ledger
import Projections

/// The decoders that take untrusted bytes, as one entry point for fuzzing and for the
/// regression test that replays the fuzz corpus. Decoding errors are expected; a trap,
/// a hang or unbounded memory is a bug.
public enum FuzzTargets {
    /// Runs one input through the decoder `selector % 3` names (see `problem`) and traps on
    /// a problem, as a fuzzer needs.
    public static func run(selector: UInt8, input: [UInt8]) {
        if let problem = problem(selector: selector, input: input) { preconditionFailure(problem) }
    }

    /// Runs one input through the decoder `selector % 3` names: 0 the JSON command decoder,
    /// 1 the JSON event decoder, 2 the binary envelope and event decoder. Whatever decodes
    /// must re-encode and decode to the same value; returns what went wrong, nil when the
    /// input was decoded soundly or refused.
    public static func problem(selector: UInt8, input: [UInt8]) -> String? {
        switch selector % 3 {
        case 0:
            guard let json = try? JSONParser.parse(input), let command = try? TimedCommand(json: json) else { return nil }
            let again = try? TimedCommand(json: try JSONParser.parse(command.json.text))
            return again == command ? nil : "a decoded command did not survive its own JSON form"
        case 1:
            guard let json = try? JSONParser.parse(input), let event = try? ImportedEvent(json: json) else { return nil }
            let payload = event.event.encodedPayload()
            let decoded = try? DomainEvent.decode(kind: event.event.kind, payload: payload)
            return decoded == event.event ? nil : "an imported event did not survive its binary form"
        default:
            guard let stored = try? input.withUnsafeBytes({ try Envelope.decode(stored: $0) }) else {
                if input.count > 2 {
                    let kind = UInt16(input[0]) << 8 | UInt16(input[1])
                    if let event = try? DomainEvent.decode(kind: kind, payload: Array(input.dropFirst(2))),
                       event.encodedPayload() != Array(input.dropFirst(2)) {
                        return "a decoded payload did not re-encode to its bytes"
                    }
                }
                return nil
            }
            if let event = try? DomainEvent.decode(kind: stored.kind, payload: stored.payload), event.encodedPayload() != stored.payload {
                return "a decoded stored payload did not re-encode to its bytes"
            }
            return nil
        }
    }
}
