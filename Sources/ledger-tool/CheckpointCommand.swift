import ArgumentParser
import Foundation
import Ledger
import Projections

/// Reads a key file (raw bytes, at least 16).
func readKey(_ path: String, flag: String) throws -> [UInt8] {
    if let problem = fileProblem(path) {
        printError("error: \(flag) '\(path)' can't be read: \(problem)")
        throw Failure(code: Exit.badInput)
    }
    guard let data = FileManager.default.contents(atPath: path), data.count >= 16 else {
        printError("error: \(flag) '\(path)' is shorter than 16 bytes: a key file holds at least 16 raw bytes")
        throw Failure(code: Exit.badInput)
    }
    return Array(data)
}

/// Reads a key file written by `keygen`: 64 hex digits (32 bytes), surrounding whitespace ignored.
func readHexKey(_ path: String, flag: String) throws -> [UInt8] {
    if let problem = fileProblem(path) {
        printError("error: \(flag) '\(path)' can't be read: \(problem)")
        throw Failure(code: Exit.badInput)
    }
    let text = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard let bytes = Hex.decode(text), bytes.count == 32 else {
        printError("error: \(flag) '\(path)' is not a key from `ledger-tool keygen` (64 hex digits)")
        throw Failure(code: Exit.badInput)
    }
    return bytes
}

/// Reads an Ed25519 key file written by `keygen` and makes the key with `make`; `what`
/// names the kind of key in the error.
func readEd25519Key<K>(_ path: String, flag: String, what: String, _ make: ([UInt8]) throws -> K) throws -> K {
    let bytes = try readHexKey(path, flag: flag)
    guard let key = try? make(bytes) else {
        printError("error: \(flag) '\(path)' is not an Ed25519 \(what) key")
        throw Failure(code: Exit.badInput)
    }
    return key
}

/// Reads an Ed25519 private key file (`keygen`'s PREFIX.key).
func readSigningKey(_ path: String, flag: String) throws -> CheckpointSigningKey {
    try readEd25519Key(path, flag: flag, what: "private") { try CheckpointSigningKey(rawRepresentation: $0) }
}

/// Reads an Ed25519 public key file (`keygen`'s PREFIX.pub).
func readPublicKey(_ path: String, flag: String) throws -> CheckpointPublicKey {
    try readEd25519Key(path, flag: flag, what: "public") { try CheckpointPublicKey(rawRepresentation: $0) }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an Ed25519 key pair for signing checkpoints: PREFIX.key (private, owner-only) and PREFIX.pub (public).",
        discussion: """
        Sign with `ledger-tool checkpoint DB --sign-key PREFIX.key`; an auditor checks with `ledger-tool verify DB --against FILE --public-key PREFIX.pub`, and can't forge a checkpoint with the public key (unlike an HMAC --key, which signs and checks alike). Existing files are never overwritten. Both files hold 64 hex digits.

        Example:
          ledger-tool keygen --out auditor
        """)

    @Option(help: "Where to write: PREFIX.key and PREFIX.pub.") var out: String

    func run() throws {
        let fm = FileManager.default
        let privatePath = out + ".key", publicPath = out + ".pub"
        for path in [privatePath, publicPath] where fm.fileExists(atPath: path) {
            printError("error: --out: '\(path)' exists; keygen never overwrites a key (nothing was written)")
            throw Failure(code: Exit.badInput)
        }
        let key = CheckpointSigningKey.generate()
        guard fm.createFile(atPath: privatePath, contents: Data((Hex.encode(key.rawRepresentation) + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            printError("error: --out: can't write '\(privatePath)': \(fileProblem((privatePath as NSString).deletingLastPathComponent.isEmpty ? "." : (privatePath as NSString).deletingLastPathComponent) ?? "permission denied")")
            throw Failure(code: Exit.badInput)
        }
        guard fm.createFile(atPath: publicPath, contents: Data((Hex.encode(key.publicKey.rawRepresentation) + "\n").utf8), attributes: [.posixPermissions: 0o644]) else {
            try? fm.removeItem(atPath: privatePath)
            printError("error: --out: can't write '\(publicPath)' (nothing was kept)")
            throw Failure(code: Exit.badInput)
        }
        print("wrote \(privatePath) (private, owner-only) and \(publicPath) (public); key id \(key.publicKey.keyId)")
    }
}

struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Print the log's head (seq, hash) for an auditor to keep outside the ledger.",
        discussion: """
        With --sign-key, the checkpoint is signed with an Ed25519 private key from `ledger-tool keygen`: the signature covers seq, head hash, time and key id, and an auditor checks it with the public key alone. With --key, it is HMAC-SHA-256 signed with a shared secret (whoever can check it can forge it). Later, `ledger-tool verify DB --against FILE [--public-key PUB | --key KEY]` proves the history up to the checkpoint is unchanged — which a bare hash chain can't show after a truncation or a full rewrite.

        Example:
          ledger-tool checkpoint ./ledger --sign-key auditor.key > \\
              checkpoint-2026-11-29.json
        """)

    @OptionGroup var location: LedgerLocation
    @Option(name: .customLong("sign-key"), help: "Sign with this Ed25519 private key (PREFIX.key from keygen).") var signKey: String?
    @Option(help: "Sign with HMAC-SHA-256 under this key file (raw bytes, at least 16).") var key: String?

    func run() throws {
        if signKey != nil && key != nil {
            printError("error: give --sign-key or --key, not both")
            throw Failure(code: Exit.badInput)
        }
        let signing = try signKey.map { try readSigningKey($0, flag: "--sign-key") }
        let keyBytes = try key.map { try readKey($0, flag: "--key") }
        let ledger = try location.open()
        if let signing {
            print(try ledger.inspector.checkpoint(signingKey: signing).json.text)
        } else {
            print(try ledger.inspector.checkpoint(key: keyBytes).json.text)
        }
    }
}

struct RotateKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-key",
        abstract: "Start hashing new authorization numbers with a new HMAC key; keep the old one for old agreements.",
        discussion: """
        The current key file (authorization.key) is kept as authorization.key.KEYID and still used to check Add Open License attempts on agreements recorded under it (each stored hash names its key id); a new random key becomes current. Both files are owner-only.

        Example:
          ledger-tool rotate-key ./ledger
        """)

    @OptionGroup var location: LedgerLocation

    func run() throws {
        let path = try location.validated()
        let keyPath = path + "/" + LedgerLocation.keyFile
        let fm = FileManager.default
        guard let data = fm.contents(atPath: keyPath), let old = try? AuthorizationKey(bytes: Array(data)) else {
            printError("error: \(keyPath) is missing or not a key; nothing was changed")
            throw Failure(code: Exit.badInput)
        }
        let retired = keyPath + "." + old.keyId
        let (new, bytes) = AuthorizationKey.generate()
        let staging = keyPath + ".new"
        guard fm.createFile(atPath: staging, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
            printError("error: can't write \(staging); nothing was changed")
            throw Failure(code: Exit.denied)
        }
        do {
            if !fm.fileExists(atPath: retired) { try fm.copyItem(atPath: keyPath, toPath: retired) }
            guard rename(staging, keyPath) == 0 else { throw CocoaError(.fileWriteUnknown) }
        } catch {
            printError("error: rotating the key failed: \(error)")
            throw Failure(code: Exit.denied)
        }
        print("new authorization key \(new.keyId); the previous key \(old.keyId) is kept as \(retired) to check agreements recorded under it")
    }
}
