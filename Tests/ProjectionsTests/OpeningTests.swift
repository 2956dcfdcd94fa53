import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
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

/// The key files a service and `ledger-tool` share (issue 15).
@Suite("Key files")
struct KeyFileTests {
    @Test("readOrCreate makes one owner-only key and reads it back after; read finds it and the retired keys; Options take both")
    func keyFilesRoundTrip() throws {
        let dir = TempDir()
        let path = dir.path + "/ledger"
        let made = try AuthorizationKey.readOrCreate(inLedger: path)
        let file = path + "/" + AuthorizationKey.fileName
        #expect((try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try AuthorizationKey.readOrCreate(inLedger: path).keyId == made.keyId)
        // a retired key beside it
        let (old, oldBytes) = AuthorizationKey.generate()
        #expect(FileManager.default.createFile(atPath: file + "." + old.keyId, contents: Data(oldBytes)))
        let keys = try AuthorizationKey.read(fromLedger: path)
        #expect(keys.current.keyId == made.keyId && keys.previous.map(\.keyId) == [old.keyId])

        var options = PermissionLedger.Options(durability: .noSync)
        try options.useKeys(ofLedger: path)
        #expect(options.authorizationKey?.keyId == made.keyId)
        #expect(options.previousAuthorizationKeys.map(\.keyId) == [old.keyId])
    }

    @Test("a missing or short key file is an error naming the file and the cause")
    func badKeyFiles() throws {
        let dir = TempDir()
        #expect(throws: KeyFileError(path: dir.path + "/authorization.key", reason: "missing")) {
            try AuthorizationKey.read(fromLedger: dir.path)
        }
        #expect(FileManager.default.createFile(atPath: dir.path + "/authorization.key", contents: Data("short".utf8)))
        do {
            _ = try AuthorizationKey.readOrCreate(inLedger: dir.path)
            Issue.record("a 5-byte key was accepted")
        } catch let error as KeyFileError {
            #expect(error.path == dir.path + "/authorization.key" && error.reason.contains("16 bytes"), "\(error)")
        }
        // the short file is left as it was
        #expect(FileManager.default.contents(atPath: dir.path + "/authorization.key") == Data("short".utf8))
    }
}
