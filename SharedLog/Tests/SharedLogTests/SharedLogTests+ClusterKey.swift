import Foundation
import Ledger
import Projections
import _LedgerTestSupport
import SharedLog
import Testing

/// A cluster-key rotation (docs/SCALE-OUT.md): every item sealed again under the new key
/// while hosts keep appending, after which the old key opens nothing PostgreSQL holds live.
extension SharedLogTests {
    @Test("a cluster-key rotation (ledger-replica rotate-cluster-key): every live item sealed again under the new key; replicas with the new key alone catch up, with the old alone apply nothing")
    func clusterKeyRotation() async throws {
        let dir = TempDir()
        let name = Env.freshName("rotate")
        let oldKey = Env.clusterKeyBytes, newKey: [UInt8] = (0..<32).map { UInt8(($0 * 29 + 7) & 0xFF) }
        let newFile = dir.sub("new.key")
        _ = FileManager.default.createFile(atPath: newFile, contents: Data(newKey))
        let oldID = try ClusterKey(bytes: oldKey).idHex, newID = try ClusterKey(bytes: newKey).idHex
        #expect(oldID != newID && newID.count == 16)
        var generator = HistoryGenerator(seed: 17, organisations: 12)
        let commands = generator.commands(300).map { TimedCommand(at: $0.time(after: nil), $0.command) }

        // A seals under the old key; B, rolled over, seals under the new one and still opens the old
        let a = try host(dir.sub("a"), name: name, clamp: true)
        try await a.start()
        _ = try await a.executeBatch(Array(commands.prefix(150)))
        let b = try host(dir.sub("b"), name: name, clamp: true, clusterKey: newKey, retired: [oldKey])
        try await b.start()
        _ = try await b.executeBatch(Array(commands.dropFirst(150)))
        let mixed = Dictionary(uniqueKeysWithValues: try await b.store.personalKeys().map { (Hex.encode($0.keyID), $0.rows) })
        #expect(mixed.keys.sorted() == [oldID, newID].sorted() && mixed.values.allSatisfy { $0 > 0 }, "both keys seal items before: \(mixed)")
        // a host holding the old key alone can't apply B's appends (it was not rolled over)
        await #expect(throws: SharedLogError.self) { try await a.catchUp() }
        await a.close()

        // the rotation, from a third directory, through the CLI
        func rotate(_ label: String) throws -> (Int32, JSONValue) {
            let c = try Child(["rotate-cluster-key", dir.sub("r"), "--postgres", try Env.url(), "--name", name,
                               "--cluster-key-file", newFile, "--retired-cluster-key-file", Env.clusterKeyFile], dir: dir, label: label)
            let code = c.wait()
            return (code, try JSONParser.parse(c.lines.first ?? "null"))
        }
        let (code, out) = try rotate("rotate")
        #expect(code == 0 && out["ok"] == .bool(true) && out["keyID"] == .string(newID), "\(out)")
        #expect(out["resealed"] == .int(Int64(mixed[oldID] ?? -1)), "every item under the old key sealed again: \(out)")
        let after = try await b.store.personalKeys()
        #expect(after.count == 1 && after.first.map { Hex.encode($0.keyID) } == newID && after.first?.rows == mixed.values.reduce(0, +), "\(after)")
        let (again, second) = try rotate("rotate-again")
        #expect(again == 0 && second["resealed"] == .int(0), "a second run has nothing to do: \(second)")
        // a stale rotation (the row read before it changed) leaves the row as it is
        let row = try #require(try await b.store.personal(at: 1...UInt64.max).first { $0.sealed != nil })
        var stale = row
        stale.keyID = try ClusterKey(bytes: oldKey).id
        #expect(try await b.store.reseal([(old: stale, sealed: [1, 2, 3], keyID: stale.keyID)]) == 0)
        #expect(try await b.store.personal(at: 1...UInt64.max).contains(row))

        // a new replica holding the new key alone catches up and shows what B shows; one
        // holding the old key alone applies nothing; A restarted with the new key catches up
        let d = try host(dir.sub("d"), name: name, clusterKey: newKey)
        try await d.start()
        #expect(try chain(d.local) == chain(b.local))
        #expect(try d.local.verify().ok)
        #expect(try d.local.events().map(\.json.text) == b.local.events().map(\.json.text), "D shows the values B shows")
        let e = try host(dir.sub("e"), name: name)
        await #expect(throws: SharedLogError.self) { try await e.start() }
        #expect(try e.local.inspector.head().seq == 0)
        let a2 = try host(dir.sub("a"), name: name, clusterKey: newKey)
        try await a2.start()
        #expect(try chain(a2.local) == chain(b.local))
        await b.close()
        await d.close()
        await e.close()
        await a2.close()
    }
}
