import Foundation
import Ledger
@_spi(LedgerInternals) import Projections
import _LedgerTestSupport
import Testing

/// Whoever can write the LMDB file can't alter history unnoticed.
@Suite("Tamper evidence", .serialized)
struct TamperTests {
    enum Mutation: String, CaseIterable { case flipByte, delete, swap, truncateTail, splice }

    func makeLedger(_ dir: TempDir, seed: UInt64, commands: Int) throws -> PermissionLedger {
        let ledger = try PermissionLedger(directory: dir.path, options: .init(durability: .noSync))
        var g = HistoryGenerator(seed: seed, organisations: 30)
        for c in g.commands(commands) { _ = try ledger.execute(c) }
        return ledger
    }

    @Test("100 random events × flip, delete, swap, truncate, splice: verify names the first bad seq")
    func mutations() throws {
        let seed = suiteSeed()
        var rng = SeededRandom(seed: seed)
        let dir = TempDir(), otherDir = TempDir()
        let ledger = try makeLedger(dir, seed: 1, commands: 800)
        let other = try makeLedger(otherDir, seed: 2, commands: 800)
        let env = ledger.environment
        let events = try env.openDatabases(["events"])[0]
        let ids = try env.openDatabases(["eventIds"])[0]
        let otherEvents = try other.environment.openDatabases(["events"])[0]
        let head = try ledger.log.head().seq
        let checkpoint = try Checkpoint.make(ledger.log, key: Array("auditor-key-kept-elsewhere-32by!".utf8))
        #expect(head > 300)
        var snapshot: [UInt64: [UInt8]] = [:]
        try env.read { txn in
            try txn.scan(events) { k, v in
                if let seq = BigEndianKey.value(k) { snapshot[seq] = Array(v) }
                return true
            }
        }
        func put(_ seq: UInt64, _ bytes: [UInt8]?) throws {
            try env.write { txn in
                if let bytes { try txn.put(events, key: BigEndianKey.bytes(seq), value: bytes) } else { _ = try txn.delete(events, key: BigEndianKey.bytes(seq)) }
            }
        }
        func restore(from k: UInt64) throws {
            try env.write { txn in
                for seq in k ... head {
                    try txn.put(events, key: BigEndianKey.bytes(seq), value: snapshot[seq] ?? [])
                    if let id = try snapshot[seq]?.withUnsafeBytes({ try Envelope.decode(stored: $0).id }) {
                        try txn.put(ids, key: withUnsafeBytes(of: id.uuid) { Array($0) }, value: BigEndianKey.bytes(seq))
                    }
                }
            }
        }
        var detected = 0
        for trial in 0 ..< 100 {
            let k = 1 + UInt64(rng.below(Int(head) - 1))  // never the head itself: removing it is a truncation
            for mutation in Mutation.allCases {
                let original = snapshot[k] ?? []
                switch mutation {
                case .flipByte:
                    var bytes = original
                    bytes[rng.below(bytes.count)] ^= UInt8(1 << rng.below(8))
                    try put(k, bytes)
                case .delete:
                    try put(k, nil)
                case .swap:
                    let j = k + 1 + UInt64(rng.below(Int(head - k)))
                    try put(k, snapshot[j])
                    try put(j, original)
                case .truncateTail:
                    // a careful forger removes the id index entries too
                    try env.write { txn in
                        for seq in k ... head {
                            _ = try txn.delete(events, key: BigEndianKey.bytes(seq))
                            if let id = try snapshot[seq]?.withUnsafeBytes({ try Envelope.decode(stored: $0).id }) {
                                _ = try txn.delete(ids, key: withUnsafeBytes(of: id.uuid) { Array($0) })
                            }
                        }
                    }
                case .splice:
                    let foreign = try other.environment.read { txn in try txn.get(otherEvents, key: BigEndianKey.bytes(k)) } ?? []
                    try put(k, foreign)
                }
                let report = try ledger.log.verify()
                let againstCheckpoint = try checkpoint.problem(in: ledger.log)
                // A record spliced in at seq 1 chains from the same 32 zero bytes in both ledgers,
                // so it is self-consistent: the first link that fails is the next one.
                let expected = mutation == .splice && k == 1 ? UInt64(2) : k
                if mutation == .truncateTail {
                    // a bare chain can't see a truncated tail; the kept checkpoint can
                    #expect(report.ok, "trial \(trial) (seed \(seed))")
                } else {
                    #expect(!report.ok && report.firstBadSeq == expected,
                            "\(mutation) at seq \(k): verify said \(report.firstBadSeq.map(String.init) ?? "ok") — \(report.problem ?? "") (seed \(seed), trial \(trial))")
                }
                #expect(againstCheckpoint?.seq == expected, "\(mutation) at seq \(k) not found against the checkpoint (seed \(seed))")
                if againstCheckpoint?.seq == expected && (mutation == .truncateTail || report.firstBadSeq == expected) { detected += 1 }
                try restore(from: k)
                #expect(try ledger.log.verify().ok, "restore failed (seed \(seed))")
            }
        }
        #expect(detected == 100 * Mutation.allCases.count)
    }

    @Test("a full rewrite passes a bare verify but not a kept, signed checkpoint (CLI)")
    func rewriteAndCheckpointCLI() throws {
        #expect(binariesBuilt(), "build first: swift build")
        let dir = TempDir()
        let db = dir.path + "/ledger", forged = dir.path + "/forged"
        func tool(_ args: [String]) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: toolPath)
            p.arguments = args
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return (p.terminationStatus, text)
        }
        #expect(try tool(["init", db]).0 == 0)
        #expect(try tool(["exec", db, packageRoot + "/Fixtures/contoso.jsonl"]).0 == 0)
        let key = dir.path + "/auditor.key"
        try Data((0 ..< 32).map { UInt8($0) }).write(to: URL(fileURLWithPath: key))
        let (status, checkpointText) = try tool(["checkpoint", db, "--key", key])
        #expect(status == 0)
        let checkpointFile = dir.path + "/checkpoint.json"
        try checkpointText.write(toFile: checkpointFile, atomically: true, encoding: .utf8)
        #expect(try tool(["verify", db, "--against", checkpointFile, "--key", key]).0 == 0)
        // Rewrite history: change one old grant and rebuild a fully consistent chain.
        let export = try tool(["export", db]).1
        let rewritten = export.replacingOccurrences(of: #""roles":["productKeys"]"#, with: #""roles":["download"]"#)
            .split(separator: "\n").map { line -> String in
                // drop seq and hash so the forger's import recomputes a valid chain
                guard var json = try? JSONParser.parse(String(line)), case let .object(fields) = json else { return String(line) }
                json = .object(fields.filter { $0.key != "hash" && $0.key != "seq" })
                return json.text
            }.joined(separator: "\n")
        #expect(rewritten != export)
        let input = dir.path + "/rewritten.jsonl"
        try rewritten.write(toFile: input, atomically: true, encoding: .utf8)
        #expect(try tool(["init", forged]).0 == 0)
        #expect(try tool(["append", forged, input]).0 == 0)
        #expect(try tool(["verify", forged]).0 == 0)  // internally consistent
        let (forgedStatus, forgedOut) = try tool(["verify", forged, "--against", checkpointFile, "--key", key, "--json"])
        #expect(forgedStatus == 1)
        #expect(forgedOut.contains("rewritten") || forgedOut.contains("firstBadSeq"))
        // a forged checkpoint (a signature not made with the key) is refused
        guard case let .object(fields) = try JSONParser.parse(checkpointText) else { Issue.record("checkpoint is not an object"); return }
        let fake = JSONValue.object(fields.map { $0.key == "signature" ? ($0.key, .string(String(repeating: "0", count: 64))) : $0 }).text
        let fakeFile = dir.path + "/fake.json"
        try fake.write(toFile: fakeFile, atomically: true, encoding: .utf8)
        #expect(try tool(["verify", db, "--against", fakeFile, "--key", key]).0 != 0)
    }
}
