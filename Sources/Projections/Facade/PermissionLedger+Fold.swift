import Foundation
import Ledger

// Folding the log into a state, on one core or two.

extension PermissionLedger {
    /// Folds events after the state's last seq, up to `target`, into a memory state;
    /// `progress` is told the seq reached every 16,384 events.
    func fold(into state: DomainState, upTo target: UInt64 = .max, progress: ((UInt64) -> Void)? = nil) throws {
        guard state.lastSeq < target else { return }
        if state.isMemory { return try foldOnTwoCores(into: state, upTo: target, progress: progress) }
        try environment.read { txn in
            try log.forEach(from: state.lastSeq + 1, in: txn) { view in
                if view.seq > target { return false }
                let event = try foldEvent(kind: view.kind, payload: view.payload)
                try evolver.evolve(state, event, seq: view.seq, at: view.at)
                if view.seq & 0x3FFF == 0 { progress?(view.seq) }
                return true
            }
        }
    }

    /// Events per step of a parallel fold.
    static let foldChunk = 4_096

    /// `fold` for a memory state, on two threads, in chunks of `foldChunk` events: while
    /// chunk k is folded — into the grants, agreements and changelog on one thread and into
    /// the people and the position on the other, which never read each other — the first thread also
    /// decodes chunk k + 1 and the second reads chunk k + 2 from the log (views into the
    /// map, valid while the read transaction lasts). Each table sees the same changes in the
    /// same order as in a single fold, so the state is the same.
    private func foldOnTwoCores(into state: DomainState, upTo target: UInt64, progress: ((UInt64) -> Void)?) throws {
        state.openAllTables()
        let shared = UncheckedBox(state)
        let evolver = evolver, log = log, format = eventFormat
        try environment.read { txn in
            try txn.withReader { reader in
                let source = UncheckedBox(reader)
                var raw = try Self.readChunk(log, source.value, from: state.lastSeq + 1, upTo: target)
                var ready = try Self.decodeChunk(raw, format: format)
                var next = (raw.last?.seq ?? state.lastSeq) + 1
                raw = try Self.readChunk(log, source.value, from: next, upTo: target)
                while let last = ready.last?.seq {
                    if let l = raw.last?.seq { next = l + 1 }
                    // the chunk's names get their stable ids here, before both threads fold it
                    // (the fold then only reads the dictionary)
                    for e in ready { try shared.value.ids.register(e.event) }
                    let toFold = UncheckedBox(ready), toDecode = UncheckedBox(raw), from = next
                    let decoded = ConcurrentResults<[(event: DomainEvent, seq: UInt64, at: Timestamp)]>(count: 1)
                    let read = ConcurrentResults<[(seq: UInt64, kind: UInt16, at: Timestamp, payload: UnsafeRawBufferPointer)]>(count: 1)
                    let failures = ConcurrentResults<any Error>(count: 2)
                    DispatchQueue.concurrentPerform(iterations: 2) { i in
                        do {
                            if i == 0 {
                                for e in toFold.value { try evolver.evolve(shared.value, e.event, seq: e.seq, at: e.at, parts: [.people, .position]) }
                                decoded.set(0, try Self.decodeChunk(toDecode.value, format: format))
                            } else {
                                for e in toFold.value { try evolver.evolve(shared.value, e.event, seq: e.seq, at: e.at, parts: [.grants, .agreements, .changelog]) }
                                read.set(0, try Self.readChunk(log, source.value, from: from, upTo: target))
                            }
                        } catch {
                            failures.set(i, error)
                        }
                    }
                    for i in 0 ..< 2 { if let failure = failures.get(i) { throw failure } }
                    progress?(last)
                    ready = decoded.get(0) ?? []
                    raw = read.get(0) ?? []
                }
            }
        }
    }

    /// Up to `foldChunk` stored events from seq `from`, none past `target`, as views into the
    /// map (valid while `reader`'s transaction lasts).
    private static func readChunk(_ log: EventLog, _ reader: TransactionReader, from: UInt64, upTo target: UInt64) throws
        -> [(seq: UInt64, kind: UInt16, at: Timestamp, payload: UnsafeRawBufferPointer)] {
        var raw: [(seq: UInt64, kind: UInt16, at: Timestamp, payload: UnsafeRawBufferPointer)] = []
        guard from <= target else { return raw }
        raw.reserveCapacity(foldChunk)
        try log.forEach(from: from, reader: reader) { view in
            if view.seq > target { return false }
            raw.append((view.seq, view.kind, view.at, view.payload))
            return raw.count < foldChunk
        }
        return raw
    }

    /// The domain events of a chunk read by `readChunk`.
    private static func decodeChunk(_ raw: [(seq: UInt64, kind: UInt16, at: Timestamp, payload: UnsafeRawBufferPointer)], format: UInt8) throws
        -> [(event: DomainEvent, seq: UInt64, at: Timestamp)] {
        var out: [(event: DomainEvent, seq: UInt64, at: Timestamp)] = []
        out.reserveCapacity(raw.count)
        for v in raw { out.append((try foldEvent(kind: v.kind, payload: v.payload, format: format), v.seq, v.at)) }
        return out
    }
}
