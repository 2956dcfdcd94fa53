import Foundation
import Ledger
@testable import Projections
import Testing

/// Opening a ledger where nothing is yet, or where something else is (issue 15).
@Suite("Opening a ledger")
struct OpeningTests {
    @Test("a missing directory, parents included, is created owner-only and the ledger works there")
    func createsMissingDirectory() throws {
        let dir = TempDir()
        let path = dir.path + "/not/yet/here"
        #expect(!FileManager.default.fileExists(atPath: path))
        let ledger = try PermissionLedger(directory: path, options: .init(authorizationKey: testKey, durability: .noSync))
        #expect(try ledger.execute(TimedCommand(.registerUser(account: "a", businessEmail: "a@t.com"))).refusal == nil)
        let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o700)
        #expect(FileManager.default.fileExists(atPath: path + "/data.mdb"))
    }

    @Test("a path that is a file, or lies under one, is a thrown error naming the path and the cause")
    func refusesFiles() throws {
        let dir = TempDir()
        let file = dir.path + "/plain"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        for path in [file, file + "/below"] {
            do {
                _ = try PermissionLedger(directory: path, options: .init(authorizationKey: testKey, durability: .noSync))
                Issue.record("\(path) opened")
            } catch let error as LMDBError {
                #expect(error.code == ENOTDIR, "\(error)")
                #expect(error.description.contains(path), "\(error)")
            }
        }
        // the file is left as it was
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == Data("x".utf8))
    }
}
