import Foundation
import Ledger

/// What `upgrade(to:)` did: the heads of both ledgers, so that an auditor can carry a
/// checkpoint of the old chain across to the new one.
public struct UpgradeReport: Sendable, Equatable {
    /// Events written.
    public var events: UInt64
    /// The old ledger's head (format 1).
    public var oldHead: Head
    /// The new ledger's head (format 2): every hash differs, since the hashed bytes now hold
    /// commitments where they held values.
    public var newHead: Head
}

/// A ledger of event format 1 — its personal values inside the hashed bytes, where they can't
/// be erased — opened without `Options.eventFormat = 1`. Such a ledger is read to be upgraded:
/// `ledger-tool upgrade OLD NEW`, or `upgrade(to:options:)` on it opened with
/// `Options.eventFormat = 1`.
public struct EventFormatError: LedgerError, Equatable {
    /// The ledger's directory.
    public var path: String
    /// `upgradeRequired`.
    public var errorCode: LedgerErrorCode { .upgradeRequired }
    /// What is wrong and what to do, naming the directory.
    public var message: String {
        "the ledger at '\(path)' is of event format 1, which keeps personal values inside its hash chain where they can't be erased; write a format-2 ledger from it with `ledger-tool upgrade \(path) NEW` (the library: open it with Options.eventFormat = 1 and call upgrade(to:))"
    }
    public var description: String { message }
}

extension PermissionLedger {
    /// Writes a format-2 ledger in `directory` (new, or empty) from this format-1 one: every
    /// event with its id, time and facts, in order, each personal value sealed into the new
    /// ledger's vault (fresh pseudonyms, secrets and commitments), under this ledger's
    /// policy and with the authorization keys in `keys` (copy the key files first, as
    /// `ledger-tool upgrade` does). The new chain's hashes all differ from the old one's; the
    /// report gives both heads. This ledger is only read (open it with
    /// `Options.eventFormat = 1`). `options.eventFormat` is ignored: the new ledger is of
    /// format 2.
    public func upgrade(to directory: String, options: Options = .init()) throws -> UpgradeReport {
        guard eventFormat == 1 else {
            throw InputError(field: "eventFormat", "the ledger is of event format \(eventFormat) already")
        }
        var options = options
        options.eventFormat = 2
        options.policy = policy
        if FileManager.default.fileExists(atPath: directory + "/data.mdb") {
            throw InputError(field: "directory", "\(directory) holds a ledger already: upgrade into a new directory")
        }
        let target = try PermissionLedger(directory: directory, options: options)
        let oldHead = try log.head()
        var events: [LedgerEvent] = []
        var next: UInt64 = 1
        // in chunks: one import transaction each, so memory stays bounded
        while next <= oldHead.seq {
            events.removeAll(keepingCapacity: true)
            try forEachEvent(from: next, to: min(oldHead.seq, next + 9_999)) { events.append($0); return true }
            guard !events.isEmpty else { break }
            let imported = events.map { e in ImportedEvent(seq: e.seq, id: e.id, at: e.at, event: e.event) }
            try target.importEvents(imported)
            next = (events.last?.seq ?? oldHead.seq) + 1
        }
        return UpgradeReport(events: oldHead.seq, oldHead: oldHead, newHead: try target.log.head())
    }
}
