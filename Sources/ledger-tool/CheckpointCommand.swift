import ArgumentParser
import Foundation
import Ledger
import Projections

/// Checkpoint JSON: `{"seq","headHash","at"?,"signature"?}`.
extension Checkpoint {
    var json: JSONValue {
        var f: [(key: String, value: JSONValue)] = [("seq", .uint(seq)), ("headHash", .string(Hex.encode(headHash)))]
        if let at { f.append(("at", .string(at.iso8601))) }
        if let signature { f.append(("signature", .string(Hex.encode(signature)))) }
        return .object(f)
    }

    init(json: JSONValue) throws {
        guard case let .number(_, seqValue?)? = json["seq"], seqValue >= 0,
              case let .string(hashText)? = json["headHash"], let hash = Hex.decode(hashText), hash.count == 32 else {
            throw ValidationError("a checkpoint needs \"seq\" (an integer) and \"headHash\" (64 hex digits)")
        }
        var signature: [UInt8]?
        if case let .string(s)? = json["signature"] {
            guard let bytes = Hex.decode(s), bytes.count == 32 else { throw ValidationError("\"signature\" must be 64 hex digits") }
            signature = bytes
        }
        var at: Timestamp?
        if case let .string(s)? = json["at"] { at = Timestamp(iso8601: s) }
        self.init(seq: UInt64(seqValue), headHash: hash, at: at, signature: signature)
    }
}

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

struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Print the log's head (seq, hash) for an auditor to keep outside the ledger.",
        discussion: """
        With --key, the checkpoint is HMAC-SHA-256 signed with that key (keep the key outside the ledger too). Later, `ledger-tool verify DB --against FILE [--key KEY]` proves the history up to the checkpoint is unchanged — which a bare hash chain can't show after a truncation or a full rewrite.

        Example:
          ledger-tool checkpoint ./ledger --key auditor.key > \\
              checkpoint-2026-11-29.json
        """)

    @OptionGroup var location: LedgerLocation
    @Option(help: "Sign with this key file (raw bytes, at least 16).") var key: String?

    func run() throws {
        let ledger = try location.open()
        let keyBytes = try key.map { try readKey($0, flag: "--key") }
        print(try Checkpoint.make(ledger.log, key: keyBytes).json.text)
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
