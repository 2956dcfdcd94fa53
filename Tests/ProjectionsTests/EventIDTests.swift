import Foundation
@testable import Projections
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
}
