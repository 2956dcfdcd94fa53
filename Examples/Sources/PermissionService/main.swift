import Foundation
import Ledger
import Projections

/// The service's work: in an async function, so the async forms are the ones called.
func runService() async throws {
    // A ledger of its own in a new temporary directory (PermissionLedger creates a missing
    // directory, owner-only), with the HMAC key for authorization numbers in the ledger's key
    // file, as `ledger-tool init` makes it (read when it exists).
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("permissions-\(UUID().uuidString)").path
    let key = try AuthorizationKey.readOrCreate(inLedger: directory)
    let ledger = try PermissionLedger(directory: directory, options: .init(authorizationKey: key))

    // Follow the effective changes of permissions as they are committed.
    let follower = Task {
        var seen = 0
        for try await change in ledger.permissionChanges(after: 0) {
            print("change at seq \(change.seq): \(change.email) on \(change.licensingId) now holds \(change.after.roles.map(\.rawValue))")
            seen += 1
            if seen == 5 { break }
        }
    }

    // An Enterprise Agreement whose primary contact registers and validates her email: she is its
    // administrator (R4). Commands without a time are stamped by the ledger when it decides them.
    for command: Command in [
        .recordAgreement(.init(licensingId: "EA-CONTOSO", program: .enterpriseAgreement,
                               contacts: [(type: .primaryContact, email: "olivia@contoso.com")])),
        .registerUser(account: "olivia-msa", businessEmail: "olivia@contoso.com"),
        .validateEmail(account: "olivia-msa"),
    ] {
        let result = try await ledger.execute(TimedCommand(command))
        if let refusal = result.refusal { print("refused:", refusal.code, refusal.message) }
    }

    // Five users at once: each registers, validates and is granted Download by Olivia. The async
    // `execute` goes through group commit: concurrent commands share transactions and flushes,
    // and each returns once its command is durable.
    try await withThrowingTaskGroup(of: Void.self) { group in
        for i in 1 ... 5 {
            group.addTask {
                for command: Command in [
                    .registerUser(account: "user\(i)-msa", businessEmail: "user\(i)@contoso.com"),
                    .validateEmail(account: "user\(i)-msa"),
                    .grantRoles(by: "olivia-msa", email: "user\(i)@contoso.com", licensingId: "EA-CONTOSO",
                                roles: [.download], saBenefits: []),
                ] {
                    let result = try await ledger.execute(TimedCommand(command))
                    if let refusal = result.refusal { print("refused:", refusal.code, refusal.message) }
                }
            }
        }
        try await group.waitForAll()
    }

    // A refusal is an answer, not an error: user1 administers nothing.
    let refused = try await ledger.execute(TimedCommand(.grantRoles(
        by: "user1-msa", email: "user2@contoso.com", licensingId: "EA-CONTOSO", roles: [.productKeys], saBenefits: [])))
    print("user1 granting:", refused.refusal.map { "\($0.code.rawValue): \($0.message)" } ?? "accepted")

    // The questions: may user3 download, why, and who administers the agreement.
    let answer = try await ledger.check(account: "user3-msa", action: .downloadSoftware, licensingId: "EA-CONTOSO")
    print("user3 may download software:", answer.allowed, "-", answer.message)
    let why = try await ledger.explain(email: "user3@contoso.com", licensingId: "EA-CONTOSO").get()
    print("because:", why.roles.map { "\($0.role.rawValue) from \($0.reasons.map(\.source.rawValue))" })
    let admins = try await ledger.administrators(of: "EA-CONTOSO").get()
    print("administrators:", admins.map(\.email))

    // The same question at an earlier point of the history: before user3 was granted anything.
    let before = try await ledger.check(account: "user3-msa", action: .downloadSoftware, licensingId: "EA-CONTOSO", asOf: .seq(3))
    print("at seq 3 user3 could download:", before.allowed, "(\(before.reason))")

    try await follower.value
    // What an auditor keeps to check this history later (`ledger-tool verify DIR --against FILE`).
    print("checkpoint:", try ledger.inspector.checkpoint().json.text)
    try? FileManager.default.removeItem(atPath: directory)
}

try await runService()
