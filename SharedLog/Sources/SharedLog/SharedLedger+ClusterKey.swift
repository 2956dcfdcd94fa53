import Ledger

/// What a cluster-key rotation did, and what the shared log holds afterwards.
public struct ClusterKeyRotation: Sendable, Equatable {
    /// The key every item is now to be sealed under (`ClusterKey.idHex`).
    public var keyID: String
    /// How many items were sealed again under it.
    public var resealed: Int
    /// How many live items each key seals afterwards, by key id (hex). Done when it names
    /// `keyID` alone: the retired keys can be destroyed.
    public var sealedByKey: [String: Int]

    /// Whether every live item is sealed under `keyID`.
    public var done: Bool { sealedByKey.keys.allSatisfy { $0 == keyID } }
}

extension SharedLedger {
    /// Seals every item of the shared log that a retired key (`Options.retiredClusterKeys`)
    /// seals again under `Options.clusterKey`, in transactions of up to 500 rows; an item
    /// erased or sealed again meanwhile is left as it is. Once it reports `done` — every host
    /// sealing under the new key, no row under another — the retired keys can be destroyed
    /// on every host, and what PostgreSQL's dead tuples, WAL and backups kept of the items
    /// (sealed under those keys) can no longer be read. Idempotent: run it again after an
    /// interruption.
    ///
    /// - Throws: `SharedLogError.clusterKeyMissing` without a cluster key;
    ///   `.personalData` for a row under a key this host does not hold.
    public func rotateClusterKey() async throws -> ClusterKeyRotation {
        guard let key = options.clusterKey else { throw SharedLogError.clusterKeyMissing }
        try await store.ensureSchema()
        var resealed = 0
        var idle = 0
        while true {
            let rows = try await store.personal(sealedOtherThan: key.id, limit: 500)
            if rows.isEmpty { break }
            let items = try opened(rows)
            var changes: [(old: SharedLogStore.PersonalRow, sealed: [UInt8], keyID: [UInt8])] = []
            for (row, item) in zip(rows, items) {
                guard let sealed = try key.seal(item, ledger: store.name) else { continue }
                changes.append((row, sealed, key.id))
            }
            let changed = try await store.reseal(changes)
            resealed += changed
            // rows that changed under us are not read again (erased: no longer sealed;
            // sealed again: under another key); twice nothing changed means another
            // rotation is sealing them under a key of its own
            idle = changed == 0 ? idle + 1 : 0
            if idle >= 2 { break }
        }
        var byKey: [String: Int] = [:]
        for (id, count) in try await store.personalKeys() { byKey[Hex.encode(id)] = count }
        return ClusterKeyRotation(keyID: key.idHex, resealed: resealed, sealedByKey: byKey)
    }
}
