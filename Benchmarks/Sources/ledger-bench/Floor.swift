import Foundation
import Ledger
@_spi(LedgerInternals) import Projections
import _LedgerTestSupport

/// `ledger-bench --profile-floor N`: what appending costs at the least, whoever implements it.
///
/// The ledger appends N generated commands in durable batches of 1,000. After each batch the
/// bench reads what that batch stored — the new events, their id-index entries, and every
/// projection entry that changed or went (found by comparing each projection database with
/// its state before the batch; untimed) — and then times, in the same process and the same
/// batches:
/// - **storage**: exactly those puts and deletes into a second LMDB environment with the same
///   databases, one durable commit per batch (events with `MDB_APPEND`): the floor of storing
///   what this data model stores, with no deciding, encoding or hashing at all;
/// - **hash**: the SHA-256 chain over the events' canonical bytes;
/// - **decide**: the decisions alone, against a state in memory (no disk).
/// The sum is an upper bound on `append_eps` for this data model on this machine.
func profileFloor(commands: Int) async throws {
    let base = NSTemporaryDirectory() + "ledger-bench-floor-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: base) }
    for d in ["ours", "floor", "floor-nosync", "raw", "sqlite"] { try FileManager.default.createDirectory(atPath: base + "/" + d, withIntermediateDirectories: true) }
    let key = try AuthorizationKey(bytes: Array("benchmark-authorization-key-32by".utf8))
    let ledger = try PermissionLedger(directory: base + "/ours", options: Options(authorizationKey: key).inRunFormat)
    let floorEnv = try LMDBEnvironment.open(path: base + "/floor")
    let rawEnv = try LMDBEnvironment.open(path: base + "/raw")
    let raw = try rawEnv.openDatabases(["events"])[0]
    let sqlite = try SQLiteAlternative(path: base + "/sqlite/ledger.sqlite")
    let names = ["events", "eventIds", "p.accounts", "p.agreements", "p.cells", "p.emailLids", "p.emailOwners", "p.legalContactLids",
                 "p.lidAdmins", "p.lockouts", "p.meta", "p.optOuts", "p.requests"]
    let ours = try ledger.environment.openDatabases(names)
    let floor = try floorEnv.openDatabases(names)
    let noSyncEnv = try LMDBEnvironment.open(path: base + "/floor-nosync", options: .init(durability: .noSync))
    let noSync = try noSyncEnv.openDatabases(names)
    var previous = [[[UInt8]: [UInt8]]](repeating: [:], count: names.count)
    let memory = DomainState()
    let decider = Decider(authorizationKey: key)
    let evolver = Evolver()
    var generator = HistoryGenerator(seed: 7, organisations: max(50, commands / 150))
    var tOurs = 0.0, tRaw = 0.0, tStorage = 0.0, tNoSync = 0.0, tHash = 0.0, tDecide = 0.0, tSQL = 0.0, events = 0, writes = 0
    var chain = Envelope.genesisHash
    var done = 0
    while done < commands {
        let chunk = generator.commands(min(1_000, commands - done))
        done += chunk.count
        var results: [ExecutionResult] = []
        tOurs += try seconds { results = try ledger.executeBatch(chunk) }
        // what the batch stored (untimed)
        let stored = try storedEvents(of: results, in: ledger, events: ours[0])
        if stored.isEmpty { continue }
        var changes: [(db: Int, key: [UInt8], value: [UInt8]?)] = []
        try ledger.environment.read { txn in
            for i in 2 ..< names.count {
                var now: [[UInt8]: [UInt8]] = [:]
                try txn.scan(ours[i]) { k, v in
                    let key = Array(k), value = Array(v)
                    if previous[i][key] != value { changes.append((i, key, value)) }
                    now[key] = value
                    return true
                }
                for k in previous[i].keys where now[k] == nil { changes.append((i, k, nil)) }
                previous[i] = now
            }
        }
        let decoded = try stored.map { try $0.1.withUnsafeBytes { try Envelope.decode(stored: $0) } }
        events += stored.count
        writes += changes.count
        // storage floor: the same puts, one durable commit (and, to split CPU from flushing,
        // the same into an environment that does not flush)
        func store(_ env: LMDBEnvironment, _ dbs: [LMDBDatabase]) throws {
            try env.write { txn in
                for (i, e) in zip(stored.indices, decoded) {
                    try txn.put(dbs[0], key: BigEndianKey.bytes(e.seq), value: stored[i].1, flags: .append)
                    try txn.put(dbs[1], key: withUnsafeBytes(of: e.id.uuid) { Array($0) }, value: BigEndianKey.bytes(e.seq))
                }
                for c in changes {
                    if let v = c.value { try txn.put(dbs[c.db], key: c.key, value: v) } else { _ = try txn.delete(dbs[c.db], key: c.key) }
                }
            }
        }
        tStorage += try seconds { try store(floorEnv, floor) }
        tNoSync += try seconds { try store(noSyncEnv, noSync) }
        // the events alone (the benchmark's raw_append_eps)
        tRaw += try seconds {
            try rawEnv.write { txn in for (s, v) in stored { try txn.put(raw, key: BigEndianKey.bytes(s), value: v, flags: .append) } }
        }
        // hash floor: the chain over the canonical bytes
        tHash += seconds {
            for (_, v) in stored { v.withUnsafeBytes { chain = Envelope.chainHash(previous: chain, canonical: UnsafeRawBufferPointer(rebasing: $0[0 ..< $0.count - 32])) } }
        }
        // decide floor: the decisions against memory (evolving the memory state is untimed)
        for c in chunk {
            var decision: Decision?
            tDecide += try seconds { decision = try decider.decide(c, state: memory) }
            switch decision {
            case let .accepted(es)?: for e in es { try evolver.evolve(memory, e, seq: memory.lastSeq + 1, at: c.time(after: memory.lastAt)) }
            case let .refused(_, recorded)?: for e in recorded { try evolver.evolve(memory, e, seq: memory.lastSeq + 1, at: c.time(after: memory.lastAt)) }
            case nil: break
            }
        }
        let ledgerEvents = try stored.map { try LedgerEvent(try $0.1.withUnsafeBytes { try Envelope.decode(stored: $0) }) }
        tSQL += try seconds { try sqlite.append(ledgerEvents) }
    }
    let n = Double(events)
    func us(_ t: Double) -> String { String(format: "%6.2f µs/event", t / n * 1e6) }
    print("\(events) events from \(commands) commands; \(writes) projection puts and deletes (\(String(format: "%.2f", Double(writes) / n)) per event)")
    print("ledger append (executeBatch)      ", us(tOurs), Int(n / tOurs), "events/s")
    print("storage floor (same puts, raw)    ", us(tStorage), Int(n / tStorage), "events/s")
    print("  of it without flushing          ", us(tNoSync))
    print("hash chain                        ", us(tHash))
    print("decide in memory                  ", us(tDecide))
    let floorTime = tStorage + tHash + tDecide
    print("floor = storage + hash + decide   ", us(floorTime), Int(n / floorTime), "events/s")
    print("sqlite append                     ", us(tSQL), Int(n / tSQL), "events/s")
    print("raw append (events only)          ", us(tRaw), Int(n / tRaw), "events/s")
    func ratio(_ a: Double, _ b: Double) -> String { String(format: "%.2f", a / b) }
    print("vs sqlite (target ≥ 5):   ledger", ratio(tSQL, tOurs), " floor", ratio(tSQL, floorTime), " storage floor alone", ratio(tSQL, tStorage))
    print("vs raw (target ≥ 0.25):   ledger", ratio(tRaw, tOurs), " floor", ratio(tRaw, floorTime), " storage floor alone", ratio(tRaw, tStorage))
    print("ledger / floor", ratio(floorTime, tOurs))
}
