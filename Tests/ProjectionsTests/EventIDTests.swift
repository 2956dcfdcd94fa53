import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import Testing

@Suite("Event ids")
struct EventIDTests {
    @Test("generated ids are version-7 UUIDs, unique and strictly increasing in byte order")
    func timeOrdered() {
        let ids = EventIDs()
        let made = (0 ..< 200_000).map { _ in ids.next() }
        let bytes = made.map { id in withUnsafeBytes(of: id.uuid) { Array($0) } }
        var increasing = true
        for i in 1 ..< bytes.count where !bytes[i - 1].lexicographicallyPrecedes(bytes[i]) { increasing = false }
        #expect(increasing, "ids are not strictly increasing")
        #expect(Set(made).count == made.count)
        #expect(bytes.allSatisfy { $0[6] >> 4 == 7 && $0[8] >> 6 == 0b10 }, "version or variant bits wrong")
        // the first 48 bits are the Unix time in milliseconds
        let first = bytes[0].prefix(6).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let now = UInt64(Date().timeIntervalSince1970 * 1_000)
        #expect(first <= now && now - first < 60_000)
    }

    @Test("a command's derived event ids can't collide with a neighbouring id a caller picks")
    func derivedIDs() throws {
        let dir = TempDir()
        let key = try AuthorizationKey(bytes: Array(repeating: 7, count: 32))
        let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: key, durability: .noSync))
        let at = try #require(Timestamp(iso8601: "2026-01-01T00:00:00Z"))
        let x = try #require(UUID(uuidString: "0190A3B2-0000-7000-8000-000000000010"))
        // an Open License with a reseller appends two events: the second gets a derived id
        let a = try ledger.execute(TimedCommand(at: at, .recordAgreement(.init(
            licensingId: "OL-1", program: .openLicense, parent: nil, status: .active, contacts: [], availableRoles: nil,
            authorizationNumber: "AUTH-1", resellerEmail: "r@partner.example")), id: x))
        #expect(a.seqs == [1, 2])
        // the id the old derivation gave that second event: the caller's id with two bytes flipped
        var near = withUnsafeBytes(of: x.uuid) { Array($0) }
        near[15] ^= 1
        near[14] ^= 0xA5
        let y = near.withUnsafeBytes { UUID(uuid: $0.loadUnaligned(as: uuid_t.self)) }
        let b = try ledger.execute(TimedCommand(at: at, .registerUser(account: "u", businessEmail: "u@t.com"), id: y))
        #expect(!b.wasDuplicate, "a fresh command was taken for a retry of another one and skipped")
        #expect(b.seqs == [3])
        let derived = PermissionLedger.eventID(x, 1)
        let derivedBytes = withUnsafeBytes(of: derived.uuid) { Array($0) }
        #expect(derivedBytes[6] >> 4 == 8 && derivedBytes[8] >> 6 == 0b10, "not a version-8 RFC 9562 UUID")
        #expect(derived != x && derived != y && derived != PermissionLedger.eventID(x, 2))
        // a retry of the first command is still recognised, with both its seqs
        let retry = try ledger.execute(TimedCommand(at: at, .recordAgreement(.init(
            licensingId: "OL-1", program: .openLicense, parent: nil, status: .active, contacts: [], availableRoles: nil,
            authorizationNumber: "AUTH-1", resellerEmail: "r@partner.example")), id: x))
        #expect(retry.wasDuplicate && retry.seqs == [1, 2])
    }
}
