import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import Testing

/// A temporary directory removed when the value is released.
final class TempDir: @unchecked Sendable {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "pl-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

extension PermissionLedger.Options {
    /// These options, asking for the legacy event format 1: the projections then hold the
    /// values themselves, which the tests that compare a ledger's stored state with a fold
    /// in memory, or two ledgers' bytes, need (format 2's tokens are random per ledger; its
    /// answers are compared with format 1's in FormatTwoTests).
    var legacy: Self { var o = self; o.eventFormat = 1; return o }
}

/// Every projection database's entries of `ledger`, as bytes.
func projectionDump(_ ledger: PermissionLedger) throws -> [String: [[UInt8]]] {
    var out: [String: [[UInt8]]] = [:]
    let dbs = try ledger.environment.openDatabases(ProjectionTable.allCases.map(\.rawValue))
    try ledger.environment.read { txn in
        for db in dbs {
            var rows: [[UInt8]] = []
            try txn.scan(db) { k, v in
                rows.append(Array(k) + [0xFF] + Array(v))
                return true
            }
            out[db.name] = rows
        }
    }
    return out
}

/// Where a rule test runs: the pure decide/evolve fold in memory, or a real ledger on disk.
enum BackendKind: String, CaseIterable, CustomTestStringConvertible {
    case memory, disk
    var testDescription: String { rawValue }
}

let testKey: AuthorizationKey = {
    // 32 fixed bytes: always valid.
    (try? AuthorizationKey(bytes: Array(repeating: 7, count: 32))) ?? AuthorizationKey.generate().key
}()

/// Runs commands against one backend and answers questions on its state.
final class Harness {
    let kind: BackendKind
    let policy: Policy
    private var clock: Int64
    // memory
    private let decider: Decider
    private let evolver: Evolver
    private var memoryState = DomainState()
    private(set) var memoryEvents: [(seq: UInt64, at: Timestamp, event: DomainEvent)] = []
    // disk
    private var dir: TempDir?
    private(set) var ledger: PermissionLedger?

    init(_ kind: BackendKind, policy: Policy = .default, start: String = "2026-01-01T00:00:00Z") throws {
        self.kind = kind
        self.policy = policy
        clock = Timestamp(iso8601: start)?.seconds ?? 0
        decider = Decider(policy: policy, authorizationKey: testKey)
        evolver = Evolver(policy: policy)
        if kind == .disk {
            let d = TempDir()
            dir = d
            // the stored state is compared with the fold in memory, keyed by values: format 1
            ledger = try PermissionLedger(directory: d.path, options: PermissionLedger.Options(policy: policy, authorizationKey: testKey, durability: .noSync,
                                                                                               initialMapSize: 1 << 20).legacy)
        }
    }

    /// The current command time.
    var now: Timestamp { Timestamp(seconds: clock) }

    /// Moves the clock on.
    func advance(seconds: Int64) { clock += seconds }

    /// Sets the clock (never backwards, unless a test means it).
    func set(_ iso: String) { clock = Timestamp(iso8601: iso)?.seconds ?? clock }

    /// Executes `command` at the current time.
    @discardableResult
    func run(_ command: Command, at: Timestamp? = nil) throws -> ExecutionResult {
        let timed = TimedCommand(at: at ?? now, command)
        switch kind {
        case .disk:
            guard let ledger else { throw StateError.readOnly }
            return try ledger.execute(timed)
        case .memory:
            var events: [DomainEvent] = []
            var refusal: DomainError?
            switch try decider.decide(timed, state: memoryState) {
            case let .accepted(e): events = e
            case let .refused(error, recorded): events = recorded; refusal = error
            }
            var seqs: [UInt64] = []
            for e in events {
                let seq = memoryState.lastSeq + 1
                try evolver.evolve(memoryState, e, seq: seq, at: at ?? now)
                memoryEvents.append((seq, at ?? now, e))
                seqs.append(seq)
            }
            return ExecutionResult(seqs: seqs, refusal: refusal, wasDuplicate: false)
        }
    }

    /// Executes and expects acceptance.
    @discardableResult
    func ok(_ command: Command, sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt64] {
        let r = try run(command)
        #expect(r.refusal == nil, "expected \(command) to be accepted, got \(String(describing: r.refusal))", sourceLocation: sourceLocation)
        return r.seqs
    }

    /// Executes and expects the refusal `code`; returns what was recorded anyway.
    @discardableResult
    func refused(_ command: Command, _ code: DomainErrorCode, sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt64] {
        let before = try headSeq()
        let r = try run(command)
        #expect(r.refusal?.code == code, "expected \(code) for \(command), got \(String(describing: r.refusal?.code))", sourceLocation: sourceLocation)
        if code != .invalidLicenseAuthorization && code != .suspended {
            #expect(try headSeq() == before, "a refusal appended something", sourceLocation: sourceLocation)
        }
        return r.seqs
    }

    func headSeq() throws -> UInt64 {
        try state { $0.lastSeq }
    }

    /// Runs `body` on the current state.
    func state<R>(_ body: (DomainState) throws -> R) throws -> R {
        switch kind {
        case .disk:
            guard let ledger else { throw StateError.readOnly }
            return try ledger.withState(body)
        case .memory:
            return try body(memoryState)
        }
    }

    /// The roles of `email` on `lid`.
    func roles(_ email: String, _ lid: String) throws -> [Role] {
        try state { try $0.roleReport(email, lid).roles }
    }

    /// `check` for an account.
    func allowed(_ account: String, _ action: Action, _ lid: String, benefit: SABenefit? = nil) throws -> Bool {
        try state { try $0.check(account: account, licensingId: lid, action: action, benefit: benefit).allowed }
    }

    /// Registers and validates `account` with `email`.
    func user(_ account: String, _ email: String, profile: Bool = false) throws {
        try ok(.registerUser(account: account, businessEmail: email))
        try ok(.validateEmail(account: account))
        if profile { try ok(.completeProfile(account: account, firstName: "First", lastName: "Last")) }
    }

    /// Records an agreement.
    func agreement(_ lid: String, _ program: Program, parent: String? = nil, contacts: [(ContactType, String)] = [],
                   available: [Role]? = nil, auth: String? = nil, reseller: String? = nil) throws {
        try ok(.recordAgreement(.init(licensingId: lid, program: program, parent: parent,
                                      contacts: contacts.map { (type: $0.0, email: $0.1) }, availableRoles: available,
                                      authorizationNumber: auth, resellerEmail: reseller)))
    }
}
