import CLMDB
import Foundation
@testable import Ledger
import Synchronization
import Testing

@Suite("Event log on LMDB")
struct EventLogTests {
    @Test("a write begun inside a read or write closure is refused, not a self-deadlock when the map must grow (issue 16, item 5)")
    func nestedWriteIsRefused() throws {
        let dir = TempDir()
        let env = try LMDBEnvironment.open(path: dir.path, options: EnvironmentOptions(initialMapSize: 1 << 20, durability: .noSync))
        guard let db = try env.openDatabases(["blobs"]).first else { Issue.record("no database"); return }
        // 4 MiB into a 1 MiB map: the write must grow the map, which waits for every open
        // transaction of this process, the enclosing read included (before: it hung here)
        let big = [UInt8](repeating: 0xAB, count: 1 << 22)
        func fill(_ txn: inout WriteTransaction) throws { try txn.withWriter { try $0.put(db, key: [UInt8(1)], value: big) } }
        var refused: LMDBError?
        do { try env.read { _ in try env.write { try fill(&$0) } } } catch let e as LMDBError { refused = e }
        #expect(refused?.code == EDEADLK)
        #expect(refused?.description.contains("not reentrant") == true)
        refused = nil
        do { try env.write { _ in try env.write { try fill(&$0) } } } catch let e as LMDBError { refused = e }
        #expect(refused?.code == EDEADLK)
        // outside any closure the same write grows the map and commits
        try env.write { try fill(&$0) }
        #expect(env.mapSize >= 1 << 22)
        // a read inside a read, and a write after a read on the same thread, still work
        let n = try env.read { _ in try env.read { txn in try txn.withReader { try $0.count(db) } } }
        #expect(n == 1)
    }

    #if os(Linux)
    @Test("releasing the mapped pages gives back what a scan mapped; the data reads the same after")
    func releasedPagesReadBack() throws {
        let dir = TempDir()
        let env = try LMDBEnvironment.open(path: dir.path, options: EnvironmentOptions(initialMapSize: 64 << 20, durability: .noSync))
        guard let db = try env.openDatabases(["rows"]).first else { Issue.record("no database"); return }
        // 24 MiB in 1,536 rows of 16 KiB
        let rows = 1_536
        try env.write { txn in
            try txn.withWriter { w in
                for i in 0 ..< rows { try w.put(db, key: BigEndianKey.bytes(UInt64(i)), value: [UInt8](repeating: UInt8(i & 0xFF), count: 16 << 10)) }
            }
        }
        guard let mappedKiB = Self.mappedKiB(of: dir.path + "/data.mdb") else { Issue.record("no data file"); return }
        try env.read { txn in
            try txn.withReader { reader in
                var sum = 0
                try reader.scan(db) { _, value in sum += Int(value[0]); return true }
                let scanned = mappedKiB()
                #expect(scanned >= 20 << 10, "a scan of 24 MiB mapped \(scanned) KiB")
                // under a budget larger than what is mapped: nothing given back
                try reader.releaseMappedPages(above: 1 << 40)
                #expect(mappedKiB() >= 20 << 10)
                try reader.releaseMappedPages()
                let released = mappedKiB()
                #expect(released < 1 << 10, "\(released) KiB still mapped")
                // the same bytes read again, from the page cache
                var again = 0
                try reader.scan(db) { _, value in again += Int(value[0]); return true }
                #expect(again == sum && sum == (0 ..< rows).reduce(0) { $0 + $1 & 0xFF })
            }
        }
    }

    /// The resident size of `path`'s mapping in this process, in KiB, from the kernel's own
    /// account of it (`/proc/self/smaps`); nil when the file does not exist.
    static func mappedKiB(of path: String) -> (() -> Int)? {
        guard let resolved = realpath(path, nil) else { return nil }
        let file = String(cString: resolved)
        free(resolved)
        return {
            var total = 0, inFile = false
            for line in (procText("/proc/self/smaps") ?? "").split(separator: "\n") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if fields.first?.contains("-") == true, fields.count >= 5 { inFile = line.hasSuffix(" " + file) }
                else if inFile, fields.first == "Rss:", fields.count > 1 { total += Int(fields[1]) ?? 0 }
            }
            return total
        }
    }

    @Test("a reader's scan budget gives the mapping back during a long scan; every entry reads the same")
    func scanBudget() throws {
        let dir = TempDir()
        let env = try LMDBEnvironment.open(path: dir.path, options: EnvironmentOptions(initialMapSize: 128 << 20, durability: .noSync))
        guard let db = try env.openDatabases(["rows"]).first else { Issue.record("no database"); return }
        // about 13 MiB in 10,000 rows of 1 KiB (three a page)
        let rows = 10_000
        try env.write { txn in
            try txn.withWriter { w in
                for i in 0 ..< rows { try w.put(db, key: BigEndianKey.bytes(UInt64(i)), value: [UInt8](repeating: UInt8(i & 0xFF), count: 1 << 10)) }
            }
        }
        guard let mappedKiB = Self.mappedKiB(of: dir.path + "/data.mdb") else { Issue.record("no data file"); return }
        let expected = (0 ..< rows).reduce(0) { $0 + $1 & 0xFF }
        try env.read { txn in
            try txn.withReader { reader in
                var plain = 0
                try reader.scan(db) { _, value in plain += Int(value[0]) + Int(value[value.count - 1]); return true }
                let unbudgeted = mappedKiB()
                #expect(plain == 2 * expected && unbudgeted >= 10 << 10, "a scan of 13 MiB mapped \(unbudgeted) KiB")
                try reader.releaseMappedPages()
                // a budget of one byte: given back every 4,096 entries, so only the last
                // 1,808 entries' pages (about 2.4 MiB, and what the kernel maps around them) stay
                reader.scanMappedBudget = 1
                var budgeted = 0
                try reader.scan(db) { _, value in budgeted += Int(value[0]) + Int(value[value.count - 1]); return true }
                let mapped = mappedKiB()
                #expect(budgeted == plain, "the entries read the same under the budget")
                #expect(mapped < 5 << 10, "\(mapped) KiB still mapped after a budgeted scan")
            }
        }
    }
    #endif

    @Test("round trip: what is appended reads back, chained from 32 zero bytes")
    func roundTrip() throws {
        let dir = TempDir()
        let log = try EventLog(environment: try LMDBEnvironment.open(path: dir.path))
        let input = (0 ..< 10).map { event($0) }
        let seqs = try log.append(input)
        #expect(seqs == Array(1 ... 10))
        let stored = try log.events()
        #expect(stored.map(\.id) == input.map(\.id))
        #expect(stored.map(\.payload) == input.map(\.payload))
        #expect(stored.map(\.kind) == input.map(\.kind))
        var previous = Envelope.genesisHash
        for e in stored {
            let canonical = Envelope.canonicalBytes(seq: e.seq, id: e.id, kind: e.kind, at: e.at, payload: e.payload)
            #expect(e.hash == Envelope.chainHash(previous: previous, canonical: canonical))
            previous = e.hash
        }
        #expect(try log.head() == Head(seq: 10, hash: previous, at: t0))
        #expect(try log.verify().ok)
    }

    @Test("a second open of a path already open in the process shares it only with the same options")
    func conflictingOpen() throws {
        let dir = TempDir()
        let first = try LMDBEnvironment.open(path: dir.path, options: EnvironmentOptions(durability: .noSync))
        // a durable open after a noSync one would silently stay noSync: refused, naming the option
        do {
            _ = try LMDBEnvironment.open(path: dir.path, options: EnvironmentOptions(durability: .durable))
            Issue.record("a durable open of a noSync environment was accepted")
        } catch let e as LMDBError {
            #expect(e.code == EINVAL)
            #expect(e.operation.contains("durability noSync, not durable"))
        }
        #expect(throws: LMDBError.self) { try LMDBEnvironment.open(path: dir.path, options: EnvironmentOptions(durability: .noSync, readOnly: true)) }
        #expect(throws: LMDBError.self) { try LMDBEnvironment.open(path: dir.path, options: EnvironmentOptions(maxDatabases: 64, durability: .noSync)) }
        // the same options (a different initial map size is no conflict: the map grows anyway)
        let again = try LMDBEnvironment.open(path: dir.path, options: EnvironmentOptions(initialMapSize: 1 << 20, durability: .noSync))
        #expect(again === first)
    }

    @Test("seqs stay gap-free across closing and reopening")
    func reopen() throws {
        let dir = TempDir()
        do {
            let log = try EventLog(environment: try LMDBEnvironment.open(path: dir.path))
            try log.append((0 ..< 5).map { event($0) })
        }
        let log = try EventLog(environment: try LMDBEnvironment.open(path: dir.path))
        #expect(try log.head().seq == 5)
        #expect(try log.append([event(6)]) == [6])
        #expect(try log.verify() == VerifyReport(ok: true, events: 6, headHash: try log.head().hash, firstBadSeq: nil, problem: nil))
    }

    @Test("a failing batch leaves nothing")
    func atomicBatch() throws {
        let dir = TempDir()
        let log = try EventLog(environment: try LMDBEnvironment.open(path: dir.path))
        try log.append([event(0)])
        let batch = [event(1, at: t0), event(2, at: t0.adding(seconds: 5)), event(3, at: t0.adding(seconds: 4))]
        #expect(throws: LogError.timeWentBackwards(at: t0.adding(seconds: 4), previous: t0.adding(seconds: 5))) { try log.append(batch) }
        #expect(try log.head().seq == 1)
        #expect(try log.seq(forID: batch[0].id) == nil)
        // and an error thrown by the caller's own work in the transaction aborts it too
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try log.environment.write { txn in
                _ = try log.append([event(9)], expectedHead: nil, in: &txn)
                throw Boom()
            }
        }
        #expect(try log.head().seq == 1)
    }

    @Test("re-appending a known id is a no-op returning the original seq")
    func idempotent() throws {
        let dir = TempDir()
        let log = try EventLog(environment: try LMDBEnvironment.open(path: dir.path))
        let e = event(0)
        #expect(try log.append([e]) == [1])
        #expect(try log.append([e], expectedHead: 0) == [1])  // known: no conflict check, nothing written
        #expect(try log.append([event(1), e]) == [2, 1])
        let twice = event(2)
        #expect(try log.append([twice, twice]) == [3, 3])
        #expect(try log.head().seq == 3)
        #expect(try log.verify().ok)
    }

    @Test("an expected head that moved is a conflict")
    func conflict() throws {
        let dir = TempDir()
        let log = try EventLog(environment: try LMDBEnvironment.open(path: dir.path))
        try log.append([event(0)], expectedHead: 0)
        #expect(throws: LogError.conflict(expected: 0, actual: 1)) { try log.append([event(1)], expectedHead: 0) }
        #expect(try log.append([event(1)], expectedHead: 1) == [2])
    }

    @Test("time going backwards is refused; equal times are fine")
    func timeBackwards() throws {
        let dir = TempDir()
        let log = try EventLog(environment: try LMDBEnvironment.open(path: dir.path))
        try log.append([event(0, at: t0), event(1, at: t0)])
        #expect(throws: LogError.self) { try log.append([event(2, at: t0.adding(seconds: -1))]) }
        #expect(try log.head().seq == 2)
    }

    @Test("a ledger opened with a 1 MiB map accepts 100,000 events (the map grows on its own)")
    func mapGrowth() throws {
        let dir = TempDir()
        let env = try LMDBEnvironment.open(path: dir.path, options: EnvironmentOptions(initialMapSize: 1 << 20, durability: .noSync))
        let log = try EventLog(environment: env)
        #expect(env.mapSize == 1 << 20)
        var n = 0
        for _ in 0 ..< 100 {
            try log.append((0 ..< 1_000).map { _ in n += 1; return event(n) })
        }
        #expect(try log.count() == 100_000)
        #expect(env.mapSize > 1 << 20)
        let report = try log.verify()
        #expect(report.ok && report.events == 100_000)
    }

    @Test("8 threads appending while 8 threads read consistent snapshots")
    func concurrentReadersAndWriters() throws {
        let dir = TempDir()
        let env = try LMDBEnvironment.open(path: dir.path, options: EnvironmentOptions(initialMapSize: 1 << 20, durability: .noSync))
        let log = try EventLog(environment: env)
        let failures = Counter()
        DispatchQueue.concurrentPerform(iterations: 16) { worker in
            do {
                if worker < 8 {
                    for i in 0 ..< 100 { try log.append((0 ..< 5).map { event(worker * 1000 + i * 5 + $0) }) }
                } else {
                    for _ in 0 ..< 200 {
                        try env.read { txn in
                            let head = try log.head(in: txn)
                            var count: UInt64 = 0
                            var last: UInt64 = 0
                            try log.forEach(from: 1, in: txn) { view in
                                count += 1
                                if view.seq != last + 1 { failures.add() }
                                last = view.seq
                                return true
                            }
                            if count != head.seq || count % 5 != 0 { failures.add() }
                        }
                    }
                }
            } catch {
                failures.add()
            }
        }
        #expect(failures.value == 0)
        #expect(try log.count() == 4_000)
        #expect(try log.verify().ok)
    }

    @Test("a flipped byte in one stored event is found by verify, which names that seq")
    func tamper() throws {
        let dir = TempDir()
        let env = try LMDBEnvironment.open(path: dir.path)
        let log = try EventLog(environment: env)
        try log.append((0 ..< 20).map { event($0) })
        #expect(try log.verify().ok)
        for (target, offset) in [(UInt64(7), 30), (UInt64(13), -1), (UInt64(1), 0)] {
            let db = try env.openDatabases(["events"])[0]
            let original = try env.read { txn in try txn.get(db, key: BigEndianKey.bytes(target)) } ?? []
            var bytes = original
            let i = offset >= 0 ? offset : bytes.count + offset
            bytes[i] ^= 0x01
            try env.write { txn in try txn.put(db, key: BigEndianKey.bytes(target), value: bytes) }
            let report = try log.verify()
            #expect(!report.ok)
            #expect(report.firstBadSeq == target)
            #expect(report.events == target - 1)
            try env.write { txn in try txn.put(db, key: BigEndianKey.bytes(target), value: original) }
        }
        // a deleted event is a gap
        let db = try env.openDatabases(["events"])[0]
        _ = try env.write { txn in try txn.delete(db, key: BigEndianKey.bytes(5)) }
        let gap = try log.verify()
        #expect(gap.firstBadSeq == 5)
        #expect(gap.problem?.contains("gap") == true)
    }

    @Test("follow delivers stored events, then new ones as they commit")
    func follow() async throws {
        let dir = TempDir()
        let log = try EventLog(environment: try LMDBEnvironment.open(path: dir.path))
        try log.append((0 ..< 3).map { event($0) })
        var seen: [UInt64] = []
        let writer = Task {
            try await Task.sleep(nanoseconds: 20_000_000)
            try log.append((3 ..< 6).map { event($0) })
        }
        for try await e in log.follow(from: 2) {
            seen.append(e.seq)
            if seen.count == 5 { break }
        }
        try await writer.value
        #expect(seen == [2, 3, 4, 5, 6])
    }

    @Test("one environment per path per process")
    func registry() throws {
        let dir = TempDir()
        let a = try LMDBEnvironment.open(path: dir.path)
        let b = try LMDBEnvironment.open(path: dir.path + "/.")
        #expect(a === b)
    }

    @Test("LMDB errors carry stable names and mdb_strerror messages")
    func errors() {
        let e = LMDBError(code: MDB_MAP_FULL, operation: "mdb_put")
        #expect(e.name == "mapFull")
        #expect(e.isMapFull)
        #expect(e.message.contains("MDB_MAP_FULL"))
        #expect(LMDBError(code: 28, operation: "write").name == "errno(28)")
    }
}

/// A thread-safe counter for tests.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

@Suite("Typed databases")
struct TypedDatabaseTests {
    @Test("codecs round-trip through LMDB and refuse malformed bytes")
    func typed() throws {
        let dir = TempDir()
        let env = try LMDBEnvironment.open(path: dir.path)
        let db = TypedDatabase<UTF8StringCodec, BigEndianUInt64Codec>(try env.openDatabases(["typed"])[0])
        try env.write { txn in
            try db.put("b", 2, in: &txn)
            try db.put("a", 1, in: &txn)
            try db.put("c", .max, in: &txn)
        }
        try env.read { txn in
            #expect(try db.get("a", in: txn) == 1)
            #expect(try db.get("zz", in: txn) == nil)
            var seen: [String] = []
            try db.scan(in: txn, from: "b") { k, v in seen.append("\(k)=\(v)"); return true }
            #expect(seen == ["b=2", "c=\(UInt64.max)"])
        }
        // a value of the wrong width is refused, not misread
        try env.write { txn in try txn.put(db.database, key: Array("bad".utf8), value: [1, 2, 3]) }
        #expect(throws: LedgerDecodingError.self) { try env.read { txn in try db.get("bad", in: txn) } }
        #expect(throws: LedgerDecodingError.self) { try [UInt8](repeating: 0, count: 15).withUnsafeBytes { try UUIDCodec.decode($0) } }
    }
}

@Suite("Durable commits")
struct DurableCommitTests {
    @Test("write returns durable; writeDeferringSync leaves the flush to makeDurable")
    func deferredFlush() throws {
        let dir = TempDir()
        let env = try LMDBEnvironment.open(path: dir.path)
        let db = try env.openDatabases(["d"])[0]
        try env.write { txn in try txn.put(db, key: [1], value: [1]) }
        #expect(env.durableThrough == env.lastCommitID)
        let (_, id) = try env.writeDeferringSync { txn in try txn.put(db, key: [2], value: [2]) }
        #expect(id == env.lastCommitID)
        #expect(env.durableThrough < id)
        try env.makeDurable(through: id)
        #expect(env.durableThrough == id)
        // already covered: no second flush
        let flushes = env.durableFlushes
        try env.makeDurable(through: id)
        #expect(env.durableFlushes == flushes)
        // one flush covers every commit before it
        var ids: [UInt64] = []
        for k in UInt8(3) ... 5 { ids.append(try env.writeDeferringSync { txn in try txn.put(db, key: [k], value: [k]) }.1) }
        try env.makeDurable(through: ids[2])
        try env.makeDurable(through: ids[0])
        #expect(env.durableFlushes == flushes + 1)
        #expect(env.durableThrough == ids[2])
        // a transaction that wrote nothing depends on the commit it read
        let (_, unchanged) = try env.writeDeferringSync { _ in () }
        #expect(unchanged == ids[2])
    }

    @Test("a no-sync environment never flushes on its own")
    func noSync() throws {
        let dir = TempDir()
        let env = try LMDBEnvironment.open(path: dir.path, options: .init(durability: .noSync))
        let db = try env.openDatabases(["d"])[0]
        try env.write { txn in try txn.put(db, key: [1], value: [1]) }
        #expect(env.durableThrough == 0)
        #expect(env.durableFlushes == 0)
    }

    @Test("writers on several threads: each returns durable, and flushes are shared")
    func concurrentWriters() throws {
        let dir = TempDir()
        let env = try LMDBEnvironment.open(path: dir.path)
        let db = try env.openDatabases(["d"])[0]
        let threads = 4, perThread = 50
        let failures = Mutex<[String]>([])
        let group = DispatchGroup()
        for t in 0 ..< threads {
            group.enter()
            Thread {
                defer { group.leave() }
                for i in 0 ..< perThread {
                    do {
                        let (_, id) = try env.writeDeferringSync { txn in try txn.put(db, key: [UInt8(t), UInt8(i)], value: [1]) }
                        try env.makeDurable(through: id)
                        if env.durableThrough < id { failures.withLock { $0.append("thread \(t) write \(i): \(env.durableThrough) < \(id)") } }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
            }.start()
        }
        group.wait()
        let failed = failures.withLock { $0 }
        #expect(failed.isEmpty, "\(failed.count) writes not durable on return, first: \(failed.first ?? "")")
        #expect(env.durableThrough == env.lastCommitID)
        #expect(env.durableFlushes <= threads * perThread)
        #expect(try env.read { try $0.count(db) } == threads * perThread)
    }
}

@Suite("LMDB environment facts while the map grows")
struct MapGrowthTests {
    @Test("lastCommitID, mapSize and usedBytes read on other threads while the map doubles ten times")
    func factsDuringGrowth() throws {
        let dir = TempDir()
        let env = try LMDBEnvironment.open(path: dir.path, options: .init(initialMapSize: 1 << 16, durability: .noSync))
        let db = try env.openDatabases(["big"])[0]
        let writing = Atomic<Bool>(true)
        let reads = Atomic<Int>(0)
        let group = DispatchGroup()
        for _ in 0 ..< 3 {
            group.enter()
            Thread {
                defer { group.leave() }
                var last: UInt64 = 0
                while writing.load(ordering: .acquiring) {
                    // without the gate these read meta pages a resize may be unmapping
                    let id = env.lastCommitID
                    precondition(id >= last, "commit ids went backwards")
                    last = id
                    _ = env.mapSize
                    _ = env.usedBytes
                    reads.add(1, ordering: .relaxed)
                }
            }.start()
        }
        let value = [UInt8](repeating: 7, count: 3_000)
        for i in 0 ..< 20_000 {
            try env.write { txn in try txn.put(db, key: BigEndianKey.bytes(UInt64(i)), value: value) }
        }
        writing.store(false, ordering: .releasing)
        group.wait()
        #expect(env.mapSize >= 1 << 26, "the map did not grow as the test needs")
        #expect(reads.load(ordering: .relaxed) > 1_000)
        #expect(env.lastCommitID > 20_000)
    }
}
