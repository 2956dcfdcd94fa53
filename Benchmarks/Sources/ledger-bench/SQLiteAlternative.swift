import Foundation
import GRDB
import Ledger
import Projections

/// The usual alternative a Swift team would build: SQLite through GRDB, an events table with
/// JSON payloads (Codable) and a permissions table upserted in the same transaction.
/// WAL with `synchronous = FULL` for parity with the ledger's durable commits (GRDB's pool
/// would set NORMAL). Prepared (cached) statements, the same batches.
final class SQLiteAlternative {
    let queue: DatabaseQueue
    let path: String
    private let encoder = JSONEncoder()
    private let decoder = JSONDecoder()

    init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        queue = try DatabaseQueue(path: path, configuration: config)
        try queue.write { db in
            try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, at INTEGER NOT NULL, payload TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS accounts(account TEXT PRIMARY KEY, email TEXT NOT NULL, validated INTEGER NOT NULL) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS permissions(email TEXT NOT NULL, licensingId TEXT NOT NULL, roles INTEGER NOT NULL, PRIMARY KEY(email, licensingId)) WITHOUT ROWID;
            """)
        }
    }

    /// Appends one batch of events with their permission upserts in one transaction.
    func append(_ events: [LedgerEvent]) throws {
        try queue.write { db in
            let insert = try db.cachedStatement(sql: "INSERT INTO events(seq, id, type, at, payload) VALUES (?, ?, ?, ?, ?)")
            let grant = try db.cachedStatement(sql: """
                INSERT INTO permissions(email, licensingId, roles) VALUES (?, ?, ?)
                ON CONFLICT(email, licensingId) DO UPDATE SET roles = roles | excluded.roles
                """)
            let revoke = try db.cachedStatement(sql: "UPDATE permissions SET roles = roles & ~? WHERE email = ? AND licensingId = ?")
            let remove = try db.cachedStatement(sql: "DELETE FROM permissions WHERE email = ? AND licensingId = ?")
            let account = try db.cachedStatement(sql: """
                INSERT INTO accounts(account, email, validated) VALUES (?, ?, ?)
                ON CONFLICT(account) DO UPDATE SET validated = excluded.validated
                """)
            for e in events {
                let payload = String(decoding: try encoder.encode(Payload(e.event)), as: UTF8.self)
                try insert.execute(arguments: [Int64(e.seq), e.id.uuidString, e.type, e.at.seconds, payload])
                switch e.event {
                case let .userRegistered(a, email): try account.execute(arguments: [a, email, 0])
                case let .businessEmailValidated(a, email): try account.execute(arguments: [a, email, 1])
                case let .rolesGranted(_, email, lid, roles, _), let .permissionRequestApproved(_, _, email, lid, roles, _),
                     let .legacyPermissionMigrated(_, _, email, lid, roles, _), let .resellerAutoGranted(email, lid, roles),
                     let .openLicenseAdded(_, email, lid, roles, _):
                    try grant.execute(arguments: [email, lid, Int64(mask(roles))])
                case let .rolesRevoked(_, email, lid, roles): try revoke.execute(arguments: [Int64(mask(roles)), email, lid])
                case let .licensingIdRemovedByUser(_, email, lid): try remove.execute(arguments: [email, lid])
                case let .agreementRecorded(r):
                    for c in r.contacts where c.type.isLegalContact { try grant.execute(arguments: [c.email, r.licensingId, Int64(mask([.administrator]))]) }
                default: break
                }
            }
        }
    }

    /// Replay: read every event, JSON-decode it, fold permissions in memory. Returns events read.
    func replay() throws -> Int {
        var permissions: [String: UInt8] = [:]
        var accounts: [String: (String, Bool)] = [:]
        var n = 0
        try queue.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT type, payload FROM events ORDER BY seq")
            while let row = try rows.next() {
                let type: String = row[0]
                let text: String = row[1]
                let p = try decoder.decode(Payload.self, from: Data(text.utf8))
                n += 1
                let key = (p.email ?? "") + "\u{0}" + (p.licensingId ?? "")
                switch type {
                case "userRegistered": accounts[p.account ?? ""] = (p.businessEmail ?? "", false)
                case "businessEmailValidated": accounts[p.account ?? ""] = (p.email ?? "", true)
                case "rolesGranted", "permissionRequestApproved", "legacyPermissionMigrated", "resellerAutoGranted", "openLicenseAdded":
                    permissions[key, default: 0] |= mask((p.roles ?? []).compactMap(Role.init(rawValue:)))
                case "rolesRevoked": permissions[key, default: 0] &= ~mask((p.roles ?? []).compactMap(Role.init(rawValue:)))
                case "licensingIdRemovedByUser": permissions[key] = nil
                default: break
                }
            }
        }
        withExtendedLifetime((permissions, accounts)) {}
        return n
    }

    /// A permission check: the account's validated email, then its roles on the ID.
    func check(account: String, licensingId: String, role: Role) throws -> Bool {
        try queue.read { db in
            let a = try db.cachedStatement(sql: "SELECT email, validated FROM accounts WHERE account = ?")
            guard let row = try Row.fetchOne(a, arguments: [account]), (row[1] as Int64) == 1 else { return false }
            let email: String = row[0]
            let p = try db.cachedStatement(sql: "SELECT roles FROM permissions WHERE email = ? AND licensingId = ?")
            guard let roles = try Int64.fetchOne(p, arguments: [email, licensingId]) else { return false }
            return roles & Int64(mask([.administrator, role])) != 0
        }
    }

    /// The database's bytes on disk (main file and WAL, after a checkpoint).
    func bytesOnDisk() throws -> Int {
        try queue.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
        let fm = FileManager.default
        return [path, path + "-wal"].reduce(0) { $0 + ((try? fm.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0) }
    }
}

func mask(_ roles: [Role]) -> UInt8 {
    roles.reduce(0) { $0 | (1 << UInt8($1.order)) }
}

/// The JSON payload a team would write with Codable: every field of every event type, optional.
struct Payload: Codable {
    struct ContactField: Codable { var type: String; var email: String }
    var account, businessEmail, email, licensingId, program, parent, status, by, byEmail, requestId, reason, comment: String?
    var licenseNumber, source, legacyRole, via, parentId, firstName, lastName, keyId, authorizationHash, resellerEmail: String?
    var roles, saBenefits, routedTo, notified, availableRoles: [String]?
    var contacts: [ContactField]?

    init(_ event: DomainEvent) {
        for (key, value) in event.jsonFields {
            switch value {
            case let .string(s):
                switch key {
                case "account": account = s
                case "businessEmail": businessEmail = s
                case "email": email = s
                case "licensingId": licensingId = s
                case "program": program = s
                case "parent": parent = s
                case "status": status = s
                case "by": by = s
                case "byEmail": byEmail = s
                case "requestId": requestId = s
                case "reason": reason = s
                case "comment": comment = s
                case "licenseNumber": licenseNumber = s
                case "source": source = s
                case "legacyRole": legacyRole = s
                case "via": via = s
                case "parentId": parentId = s
                case "firstName": firstName = s
                case "lastName": lastName = s
                case "keyId": keyId = s
                case "authorizationHash": authorizationHash = s
                case "resellerEmail": resellerEmail = s
                default: break
                }
            case let .array(items):
                let strings = items.compactMap { item -> String? in if case let .string(s) = item { return s } else { return nil } }
                switch key {
                case "roles": roles = strings
                case "saBenefits": saBenefits = strings
                case "routedTo": routedTo = strings
                case "notified": notified = strings
                case "availableRoles": availableRoles = strings
                case "contacts":
                    contacts = items.compactMap { item in
                        guard case let .string(t)? = item["type"], case let .string(e)? = item["email"] else { return nil }
                        return ContactField(type: t, email: e)
                    }
                default: break
                }
            default: break
            }
        }
    }
}
