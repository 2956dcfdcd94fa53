import Foundation
@testable import Ledger

final class TempDir: @unchecked Sendable {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "pl-ledger-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

let t0 = Timestamp(seconds: 1_800_000_000)

func event(_ n: Int, at: Timestamp = t0, id: UUID = UUID()) -> NewEvent {
    NewEvent(id: id, kind: UInt16(1 + n % 5), at: at, payload: Array("payload-\(n)".utf8))
}
