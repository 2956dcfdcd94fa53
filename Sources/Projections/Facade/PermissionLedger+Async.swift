import Dispatch
import Foundation
import Ledger

// The async forms (issue 15): every command and query, for callers in Swift concurrency.
// None of them blocks a thread of the cooperative pool on disk or on `fsync`: commands go
// through group commit, whose writer and flusher are the ledger's own queues; queries and
// batches run on `PermissionLedger.blockingWork`, a concurrent dispatch queue. The sync
// forms stay, for scripts, tests and code outside Swift concurrency; in an async context
// the compiler picks these.

extension PermissionLedger {
    /// Where the async forms run their blocking work (LMDB reads, a batch's transaction):
    /// threads of Dispatch, not of the cooperative pool.
    static let blockingWork = DispatchQueue(label: "permission-ledger.blocking", qos: .userInitiated, attributes: .concurrent)

    /// Runs `body` on `blockingWork` and resumes with what it returns or throws.
    func offPool<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
        try await withCheckedThrowingContinuation { continuation in
            Self.blockingWork.async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// `execute(_:)` through group commit (`submit`): concurrent callers' commands share
    /// transactions and flushes; resumes when the command is durable (with the durable
    /// default).
    public func execute(_ command: TimedCommand) async throws -> ExecutionResult {
        try await submit(command)
    }

    /// `executeBatch(_:)`: the commands in order in one transaction of their own.
    public func executeBatch(_ commands: [TimedCommand]) async throws -> [ExecutionResult] {
        try await offPool { try self.executeBatch(commands) }
    }

    /// `check(account:action:licensingId:benefit:asOf:)`.
    public func check(account: String, action: Action, licensingId: String, benefit: SABenefit? = nil,
                      asOf: AsOf? = nil) async throws -> CheckResult {
        try await offPool { try self.check(account: account, action: action, licensingId: licensingId, benefit: benefit, asOf: asOf) }
    }

    /// `permissions(email:asOf:includeInactive:)`.
    public func permissions(email: String, asOf: AsOf? = nil, includeInactive: Bool = false) async throws -> PermissionsView {
        try await offPool { try self.permissions(email: email, asOf: asOf, includeInactive: includeInactive) }
    }

    /// `permissions(account:asOf:includeInactive:)`.
    public func permissions(account: String, asOf: AsOf? = nil, includeInactive: Bool = false) async throws
        -> Result<PermissionsView, DomainError> {
        try await offPool { try self.permissions(account: account, asOf: asOf, includeInactive: includeInactive) }
    }

    /// `explain(email:licensingId:asOf:)`.
    public func explain(email: String, licensingId: String, asOf: AsOf? = nil) async throws -> Result<Explanation, DomainError> {
        try await offPool { try self.explain(email: email, licensingId: licensingId, asOf: asOf) }
    }

    /// `administrators(of:askedBy:)`.
    public func administrators(of licensingId: String, askedBy account: String) async throws -> Result<[AdministratorEntry], DomainError> {
        try await offPool { try self.administrators(of: licensingId, askedBy: account) }
    }

    /// `administrators(of:asOf:)`.
    public func administrators(of licensingId: String, asOf: AsOf? = nil) async throws -> Result<[AdministratorEntry], DomainError> {
        try await offPool { try self.administrators(of: licensingId, asOf: asOf) }
    }

    /// `lockout(account:at:)`.
    public func lockout(account: String, at: Timestamp) async throws -> LockoutStatus {
        try await offPool { try self.lockout(account: account, at: at) }
    }

    /// `access(licensingId:asOf:)`.
    public func access(licensingId: String, asOf: AsOf? = nil) async throws -> Result<AccessReview, DomainError> {
        try await offPool { try self.access(licensingId: licensingId, asOf: asOf) }
    }

    /// `history(email:licensingId:from:to:)`.
    public func history(email: String, licensingId: String? = nil, from: AsOf? = nil, to: AsOf? = nil) async throws
        -> Result<PermissionHistory, DomainError> {
        try await offPool { try self.history(email: email, licensingId: licensingId, from: from, to: to) }
    }

    /// `diff(from:to:email:licensingId:)`.
    public func diff(from: AsOf, to: AsOf? = nil, email: String? = nil, licensingId: String? = nil) async throws
        -> Result<PermissionDiff, DomainError> {
        try await offPool { try self.diff(from: from, to: to, email: email, licensingId: licensingId) }
    }

    /// `whatIf(_:)`.
    public func whatIf(_ commands: [TimedCommand]) async throws -> WhatIfResult {
        try await offPool { try self.whatIf(commands) }
    }

    /// `changes(after:email:licensingId:limit:)`.
    public func changes(after seq: UInt64, email: String? = nil, licensingId: String? = nil, limit: Int = 4_096) async throws
        -> (changes: [PermissionChange], through: UInt64) {
        try await offPool { try self.changes(after: seq, email: email, licensingId: licensingId, limit: limit) }
    }
}
