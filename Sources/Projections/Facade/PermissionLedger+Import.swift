import Foundation
import Ledger

// Importing events from an export, each checked against the state before it.

extension PermissionLedger {
    /// Appends events from outside (an export) all-or-nothing: each must parse, keep its
    /// claimed `seq`/`hash` when given, and apply cleanly to the state before it.
    @discardableResult
    public func importEvents(_ events: [ImportedEvent]) throws -> [UInt64] {
        var seqs: [UInt64] = []
        try importEvents(from: {
            seqs.removeAll()
            var iterator = events.makeIterator()
            return { iterator.next() }
        }, appended: { seq, _ in seqs.append(seq) })
        return seqs
    }

    /// Streaming import, all-or-nothing in one write transaction. `source` makes a fresh
    /// iterator over the events (it is called again if the transaction must be retried after
    /// the map grew); `appended` is told each event's seq and whether it is new (false for a
    /// known id, which is skipped).
    /// Returns the number of events read.
    @discardableResult
    public func importEvents(from source: () -> (() throws -> ImportedEvent?), appended: (UInt64, Bool) -> Void = { _, _ in }) throws -> Int {
        let validator = ImportValidator(decider: decider)
        let count: Int = try environment.write { txn in
            try txn.withWriter { writer in
                let state = try DomainState(databases: projectionDatabases, reader: writer, idCache: idCache)
                let next = source()
                // format 2: each event sealed (its values to the vault, committed before the log)
                // after a failed commit or flush of the vault, the log is not written either
                try vault?.refuseWritesAfterFailure()
                let sealer = try vault.map { try PersonalSealer(vault: $0, cache: personalCache, erasing: Set(try pendingErasures(writer))) }
                var previous: DomainEvent?
                var index = 0
                while let e = try next() {
                    index += 1
                    if let known = try log.seq(forID: e.id, reader: writer) {
                        appended(known, false)
                        continue
                    }
                    let payload: [UInt8], event: DomainEvent
                    if let sealed = e.sealed {
                        // an export of a format-2 ledger: its pseudonyms, commitments and secrets are kept
                        guard let sealer else {
                            throw ImportError(index: index, message: "an event with sealed fields (an export of a format-2 ledger) goes into a format-2 ledger only (init --event-format 2)")
                        }
                        do {
                            let (bytes, ordered) = try e.sealedPayload(sealed)
                            try sealer.adopt(ordered, sealed, id: e.id)
                            payload = bytes
                            event = try bytes.withUnsafeBytes { try SealedPayload.view(kind: e.event.kind, payload: $0) }
                        } catch let error as LedgerError {
                            throw ImportError(index: index, message: "\(e.event.type): \(error.message)", code: error.errorCode.rawValue)
                        }
                    } else if let sealer {
                        do { (payload, event) = try sealer.seal(e.event, id: e.id) } catch let error as PersonalDataError {
                            throw ImportError(index: index, message: "\(e.event.type) does not apply: \(error.code): \(error.message)", code: error.code)
                        }
                    } else {
                        (payload, event) = (e.event.encodedPayload(), e.event)
                    }
                    if let error = try validator.check(event, at: e.at, state: state, previous: previous) {
                        var shown = resolver(known: sealer?.values ?? [:])
                        throw ImportError(index: index, message: "\(e.event.type) does not apply: \(error.code.rawValue): \(shown.resolveWithin(error.message))",
                                          code: error.code.rawValue)
                    }
                    let expected = state.lastSeq + 1
                    if let claimed = e.seq, claimed != expected {
                        throw ImportError(index: index, message: "claims seq \(claimed) but would be stored at seq \(expected)")
                    }
                    let seq = try log.append([NewEvent(id: e.id, kind: e.event.kind, at: e.at, payload: payload)],
                                             expectedHead: state.lastSeq, writer: writer)[0]
                    if let claimed = e.hash, let stored = try log.event(seq, reader: writer), stored.hash != claimed {
                        throw ImportError(index: index, message: "hash \(Hex.encode(claimed)) does not match the chain's \(Hex.encode(stored.hash))")
                    }
                    try evolver.evolve(state, event, seq: seq, at: e.at)
                    // an erasure the vault has not made yet (its subject came in live) is made after the commit
                    if case let .subjectErased(subject, _) = event, let p = Pseudonym(hex: subject), let vault,
                       sealer?.isLive(p) ?? false || (try? vault.secret(of: p)) != nil {
                        try setPendingErasures(try pendingErasures(writer) + [p], writer)
                    }
                    appended(seq, true)
                    previous = event
                }
                try sealer?.commit()
                try state.flush()
                return index
            }
        }
        try finishPendingErasures()
        return count
    }
}
