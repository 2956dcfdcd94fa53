import Foundation

extension SubjectVault {
    /// What ``erase(_:)`` did.
    public enum Erasure: Sendable, Equatable {
        /// The subject's key, secret, values and look-ups were deleted now.
        case erased
        /// The subject was erased before (the call finished the compaction if it was due).
        case alreadyErased
    }

    /// Erases `subject`: deletes its key and secret, its email, its accounts' names, its
    /// texts and the look-ups of its email and accounts (keeping a keyed hash of the email, so
    /// that ``wasErased(email:)`` answers, an empty record, so that its values read as
    /// `.erased`, and each account's owner, so that an erased account shows its subject's
    /// pseudonym), then writes a compacted copy of the vault as the next generation, switches
    /// `current` to it and removes the previous one, so that no file of the directory still
    /// holds what was deleted. Idempotent; after a crash at any step the next open (or write)
    /// finishes it. Throws `unknownSubject` for a pseudonym the vault never held.
    @discardableResult
    public func erase(_ subject: Pseudonym) throws -> Erasure {
        try writing { g in
            let outcome = try delete(subject, in: g)
            try compactIfDue(g)
            return outcome
        }
    }

    /// The first step of an erasure (under the writer lock): one durable transaction deletes
    /// the subject's records and look-ups and marks the generation's compaction due.
    func delete(_ subject: Pseudonym, in g: Generation) throws -> Erasure {
        try g.environment.write { txn in
            guard let bytes = try txn.get(g.subjects, key: subject.bytes) else {
                throw VaultError(reason: .unknownSubject(subject))
            }
            guard let email = try Self.decodeEmail(bytes, subject) else { return .alreadyErased }
            var owned: [[UInt8]] = []
            try txn.scan(g.owned, from: subject.bytes) { key, _ in
                guard key.count > 17, Array(key[0..<16]) == subject.bytes else { return false }
                owned.append(Array(key))
                return true
            }
            for key in owned {
                let rest = Array(key[17...])
                if key[16] == 0 {
                    if let target = try txn.get(g.lookup, key: rest) {
                        // a look-up still naming this subject, or one of its accounts
                        let names = try Self.pseudonym(target)
                        let ownerOfTarget = names == subject ? subject : (try? Self.owner(of: names, txn, g))
                        if ownerOfTarget == subject { _ = try txn.delete(g.lookup, key: rest) }
                    }
                } else if let account = Pseudonym(bytes: rest) {
                    try txn.put(g.accounts, key: account.bytes, value: subject.bytes)
                }
                _ = try txn.delete(g.owned, key: key)
            }
            var texts: [[UInt8]] = []
            try txn.scan(g.texts, from: subject.bytes) { key, _ in
                guard key.count > 16, Array(key[0..<16]) == subject.bytes else { return false }
                texts.append(Array(key))
                return true
            }
            for key in texts { _ = try txn.delete(g.texts, key: key) }
            try txn.put(g.erased, key: Self.erasedHash(email, g), value: [UInt8]())
            try txn.put(g.subjects, key: subject.bytes, value: [UInt8]())
            try txn.put(g.meta, key: Self.pendingName, value: BigEndianKey.bytes(g.index))
            return .erased
        }
    }

    /// Finishes an erasure whose deletion committed and whose compaction did not.
    func finishPendingErasure() throws {
        try writing { _ in }
    }

    /// When the live generation holds a deletion not yet compacted away: copy it compacted
    /// into the next generation, switch `current`, remove the old one. Under the writer lock.
    @discardableResult
    func compactIfDue(_ g: Generation) throws -> Bool {
        let due = try g.environment.read { txn in try txn.get(g.meta, key: Self.pendingName) }
        guard let due, due.withUnsafeBytes({ BigEndianKey.value($0) }) == g.index else { return false }
        let next = g.index + 1
        let temporary = directory + "/.\(Self.generationName(next)).compacting"
        let target = directory + "/" + Self.generationName(next)
        try? FileManager.default.removeItem(atPath: temporary)
        try? FileManager.default.removeItem(atPath: target)
        do {
            try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw LMDBError(code: EACCES, operation: "create \(temporary): \(error.localizedDescription)")
        }
        try Self.rewrite(g, into: temporary)
        guard rename(temporary, target) == 0 else { throw LMDBError(code: errno, operation: "rename(\(temporary), \(target))") }
        try LMDBEnvironment.flush(directory: directory)
        // mark the old generation before switching, so that every process holding it open
        // moves on at its next call (the copy, made before, holds no mark of its own)
        try g.environment.write { txn in try txn.put(g.meta, key: Self.supersededName, value: BigEndianKey.bytes(next)) }
        try Self.writePointer(directory, index: next)
        let fresh = try Self.openCurrent(directory, creating: false)
        state.withLock { $0 = fresh }
        try Self.removeLeftovers(directory, keeping: next)
        return true
    }

    /// Writes every live entry of generation `g` into a new environment in `directory` and
    /// flushes it. Entry by entry, not `mdb_env_copy2` with `MDB_CP_COMPACT`: the compacting
    /// copy leaves out freed pages but copies live pages whole, and a deletion leaves the
    /// removed node's bytes in its page's unused space (the on-disk test found an erased
    /// account's look-up hash in the copy); pages made by fresh puts hold only what was put.
    static func rewrite(_ g: Generation, into directory: String) throws {
        let sources = [g.meta, g.subjects, g.lookup, g.owned, g.erased, g.accounts, g.texts]
        // read first, then write: the vault holds records, not history (a few MB)
        let entries: [[([UInt8], [UInt8])]] = try g.environment.read { txn in
            try sources.map { db in
                var rows: [([UInt8], [UInt8])] = []
                try txn.scan(db) { key, value in
                    rows.append((Array(key), Array(value)))
                    return true
                }
                return rows
            }
        }
        do {
            let copy = try LMDBEnvironment.open(path: directory, options: EnvironmentOptions(initialMapSize: 1 << 20, durability: .durable))
            let dbs = try copy.openDatabases(databaseNames)
            try copy.write { txn in
                for (db, rows) in zip(dbs, entries) {
                    for (key, value) in rows { try txn.put(db, key: key, value: value, flags: .append) }
                }
            }
        }
        try LMDBEnvironment.flush(directory: directory)
    }
}
