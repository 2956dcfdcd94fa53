import Ledger

/// Checks an exported history offline, without a ledger: each event's hash is recomputed
/// from its canonical bytes and chained from the genesis hash, seqs must run 1, 2, 3 …, and
/// a checkpoint's seq must carry its head hash. Feed it the export's events in order with
/// `add`, then ask `problem(against:)`.
public struct ExportChain: Sendable {
    /// Events read so far.
    public private(set) var events: UInt64 = 0
    /// The chain hash of the last event read (the genesis hash before any).
    public private(set) var headHash: [UInt8] = Envelope.genesisHash
    /// The first problem found, with the seq it concerns.
    public private(set) var firstProblem: (seq: UInt64, message: String)?
    private var atCheckpoint: [UInt8]?
    private let checkpointSeq: UInt64

    /// A walk that will compare the hash at `checkpointSeq` (0: none).
    public init(checkpointSeq: UInt64 = 0) { self.checkpointSeq = checkpointSeq }

    /// Adds the next event. Returns false once a problem is found (the rest can't chain).
    public mutating func add(_ event: ImportedEvent) -> Bool {
        guard firstProblem == nil else { return false }
        let seq = events + 1
        if let claimed = event.seq, claimed != seq {
            firstProblem = (seq, "seq \(claimed) where \(seq) was expected: events are missing, repeated or out of order")
            return false
        }
        let payload: [UInt8]
        if let sealed = event.sealed {
            // format 2: the pseudonyms and commitments, each checked against its value
            do { payload = try event.sealedPayload(sealed).payload } catch {
                firstProblem = (seq, "\(error): the history was altered at seq \(seq)")
                return false
            }
        } else {
            payload = event.event.encodedPayload()
        }
        let canonical = Envelope.canonicalBytes(seq: seq, id: event.id, kind: event.event.kind, at: event.at, payload: payload)
        let hash = Envelope.chainHash(previous: headHash, canonical: canonical)
        guard let claimed = event.hash else {
            firstProblem = (seq, "the event has no \"hash\": an export to verify carries every event's hash")
            return false
        }
        guard claimed == hash else {
            firstProblem = (seq, "the hash does not match the event's contents and the chain before it: the history was altered at seq \(seq)")
            return false
        }
        headHash = hash
        events = seq
        if seq == checkpointSeq { atCheckpoint = hash }
        return true
    }

    /// The first problem of the history read, or against `checkpoint`: the chain, then
    /// whether it reaches the checkpoint's seq with the checkpoint's hash.
    public func problem(against checkpoint: Checkpoint?) -> (seq: UInt64?, message: String)? {
        if let firstProblem, checkpoint.map({ firstProblem.seq <= $0.seq }) ?? true { return firstProblem }
        guard let checkpoint, checkpoint.seq > 0 else { return firstProblem }
        guard let atCheckpoint, checkpoint.seq == checkpointSeq else {
            return (events + 1, "the history ends at seq \(events), before the checkpoint's seq \(checkpoint.seq): events were removed")
        }
        if atCheckpoint != checkpoint.headHash {
            return (checkpoint.seq, "the event at seq \(checkpoint.seq) does not have the checkpoint's hash: the history up to it was rewritten")
        }
        return firstProblem
    }
}
