import Foundation
import Ledger

// The key files of a ledger directory, as `ledger-tool init` and `rotate-key` keep them, so
// that a service and the CLI share a ledger without copying code out of the CLI.

/// A key file that can't be read, written or used: the path and why.
public struct KeyFileError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The key file.
    public var path: String
    /// What is wrong with it, e.g. "missing" or the operating system's reason.
    public var reason: String

    public var description: String { "authorization key \(path): \(reason)" }
}

extension AuthorizationKey {
    /// The ledger's current key file in its directory; keys retired by `ledger-tool
    /// rotate-key` sit beside it as `authorization.key.KEYID`.
    public static let fileName = "authorization.key"

    /// The keys of the ledger in `directory`: its current key (`authorization.key`) and the
    /// keys retired beside it, in file-name order — what `PermissionLedger.Options`'
    /// `authorizationKey` and `previousAuthorizationKeys` take.
    public static func read(fromLedger directory: String) throws -> (current: AuthorizationKey, previous: [AuthorizationKey]) {
        let path = directory + "/" + fileName
        let current = try readFile(path)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let previous = try names.filter { $0.hasPrefix(fileName + ".") }.sorted().map { try readFile(directory + "/" + $0) }
        return (current, previous)
    }

    /// The current key of the ledger in `directory`, made first when there is none: a new
    /// random 32-byte key written owner-only (0600), the directory created (0700) when
    /// missing — what `ledger-tool init` does. A directory that can't be made throws the
    /// `LMDBError` `PermissionLedger(directory:)` would.
    public static func readOrCreate(inLedger directory: String) throws -> AuthorizationKey {
        let path = directory + "/" + fileName
        if FileManager.default.fileExists(atPath: path) { return try readFile(path) }
        try PermissionLedger.makeDirectory(directory)
        let (key, bytes) = generate()
        // O_EXCL: a key another process wrote meanwhile is never overwritten
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST { return try readFile(path) }
            throw KeyFileError(path: path, reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else {
            let code = errno
            unlink(path)
            throw KeyFileError(path: path, reason: "can't write it: \(String(cString: strerror(code)))")
        }
        return key
    }

    private static func readFile(_ path: String) throws -> AuthorizationKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KeyFileError(path: path, reason: FileManager.default.fileExists(atPath: path) ? "can't be read" : "missing")
        }
        do {
            return try AuthorizationKey(bytes: Array(data))
        } catch let error as InputError {
            throw KeyFileError(path: path, reason: error.message)
        }
    }
}

extension PermissionLedger.Options {
    /// Uses the keys of the ledger in `directory` (`AuthorizationKey.read(fromLedger:)`).
    public mutating func useKeys(ofLedger directory: String) throws {
        let keys = try AuthorizationKey.read(fromLedger: directory)
        authorizationKey = keys.current
        previousAuthorizationKeys = keys.previous
    }
}
