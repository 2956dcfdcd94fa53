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

/// Opening where the ledger can't be: each failure is its documented error (issue 15).
@Suite("Opening errors")
struct OpeningErrorTests {
    /// Makes `path` (a directory or a file) unwritable for this process: mode 0500, and immutable when running as root
    /// (root ignores modes; `chattr +i` binds root too). Returns the undo.
    static func makeReadOnly(_ path: String) throws -> () -> Void {
        #expect(chmod(path, 0o500) == 0)
        var immutable = false
        if geteuid() == 0 {
            immutable = try Self.chattr("+i", path) == 0
            #expect(immutable, "chattr +i failed: a read-only directory can't be made for root here")
        }
        return {
            if immutable { _ = try? Self.chattr("-i", path) }
            chmod(path, 0o700)
        }
    }

    static func chattr(_ flag: String, _ path: String) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
        p.arguments = [flag, path]
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    static func openError(_ path: String) -> (any LedgerError)? {
        do {
            _ = try PermissionLedger(directory: path, options: .init(authorizationKey: testKey, durability: .noSync))
            return nil
        } catch let error as any LedgerError {
            return error
        } catch {
            Issue.record("not a LedgerError: \(type(of: error)) \(error)")
            return nil
        }
    }

    @Test("a read-only directory, empty or holding a ledger, is accessDenied naming the path; nothing is created in it")
    func readOnly() throws {
        let dir = TempDir()
        let empty = dir.path + "/empty", full = dir.path + "/full"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false)
        do {
            let ledger = try PermissionLedger(directory: full, options: .init(authorizationKey: testKey, durability: .noSync))
            _ = try ledger.execute(TimedCommand(.registerUser(account: "a", businessEmail: "a@t.com")))
        }
        for path in [empty, full] {
            let before = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
            // the directory and the files in it
            let undo = try ([path] + before.map { path + "/" + $0 }).map { try Self.makeReadOnly($0) }
            defer { undo.forEach { $0() } }
            let error = Self.openError(path)
            #expect(error?.errorCode == .accessDenied, "\(String(describing: error))")
            #expect(error?.description.contains(path) == true, "\(String(describing: error))")
            #expect(try FileManager.default.contentsOfDirectory(atPath: path).sorted() == before)
        }
    }

    @Test("a directory holding other files and no ledger is notALedger naming the file; nothing is created in it; the ledger's own key file is not foreign")
    func foreignDirectory() throws {
        let dir = TempDir()
        #expect(FileManager.default.createFile(atPath: dir.path + "/notes.txt", contents: Data("mine".utf8)))
        let error = Self.openError(dir.path)
        #expect(error is LedgerDirectoryError)
        #expect(error?.errorCode == .notALedger)
        #expect(error?.message.contains("notes.txt") == true && error?.message.contains(dir.path) == true, "\(String(describing: error))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["notes.txt"])

        // a key file first (as ledger-tool init and readOrCreate write it) is the ledger's own
        let keyed = TempDir()
        _ = try AuthorizationKey.readOrCreate(inLedger: keyed.path)
        #expect(Self.openError(keyed.path) == nil)
    }

    @Test("a data.mdb that is not LMDB's is notALedger, and is left as it was")
    func notLMDB() throws {
        let dir = TempDir()
        let junk = Data((0 ..< 20_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        #expect(FileManager.default.createFile(atPath: dir.path + "/data.mdb", contents: junk))
        let error = Self.openError(dir.path)
        #expect(error?.errorCode == .notALedger, "\(String(describing: error))")
        #expect(error?.description.contains(dir.path) == true, "\(String(describing: error))")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.path + "/data.mdb")) == junk)
    }

    static func parseError() throws -> JSONParseError {
        do { _ = try JSONParser.parse("{") } catch { return error }
        throw InputError(field: "", "'{' parsed as JSON")
    }

    @Test("every public error follows the convention: a stable code and a message")
    func convention() throws {
        let errors: [any LedgerError] = [
            LMDBError(code: ENOSPC, operation: "write"), LogError.conflict(expected: 1, actual: 2),
            LedgerDecodingError("short", offset: 3), try Self.parseError(),
            DomainError(.forbidden, "no"), InputError(field: "at", "bad"), ImportError(index: 1, message: "m", code: nil),
            PolicyConflict(stored: "a", given: "b", fields: ["x"]), KeyFileError(path: "/k", reason: "missing"),
            CheckpointFormatError(message: "seq"), StateError.outOfStep(projections: 1, log: 2),
            ReplicationError.gap(expected: 1, got: 3), LedgerDirectoryError(path: "/d", errorCode: .notALedger, message: "m"),
        ]
        let codes = errors.map(\.errorCode.rawValue)
        #expect(codes == ["diskFull", "conflict", "malformedRecord", "malformedJSON", "forbidden", "invalidInput", "invalidEvent",
                          "policyConflict", "keyFileMissing", "malformedCheckpoint", "projections", "replicationGap", "notALedger"])
        #expect(errors.allSatisfy { !$0.message.isEmpty })
        // a refusal's code and a check's reason are extensible: unknown names are values too
        #expect(DomainErrorCode(rawValue: "somethingNew") != .forbidden && DomainErrorCode(rawValue: "forbidden") == .forbidden)
        #expect(DomainErrorCode.allCases.count == Set(DomainErrorCode.allCases).count)
        #expect(CheckResult.Reason(rawValue: "noRole") == .noRole)
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
