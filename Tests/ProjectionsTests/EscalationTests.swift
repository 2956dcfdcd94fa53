import Ledger
@_spi(LedgerInternals) @testable import Projections
import _LedgerTestSupport
import Testing

/// Privilege escalation: exhaustively, only what DOMAIN.md allows succeeds.
@Suite("Privilege escalation")
struct EscalationTests {
    enum Move: String, CaseIterable, CustomTestStringConvertible {
        case grant, revoke, approve, deny, denyReseller, denyOpenLicense, optOut
        var testDescription: String { rawValue }
    }

    /// The actor's standing on the Licensing ID: no role, one direct role, or administrator
    /// inherited from the parent.
    enum Standing: Hashable, CustomTestStringConvertible {
        case none, direct(Role), inherited
        static var all: [Standing] { [.none, .inherited] + Role.allCases.map { .direct($0) } }
        var testDescription: String {
            switch self {
            case .none: return "no role"
            case .inherited: return "inherited administrator"
            case let .direct(r): return r.rawValue
            }
        }
        var isAdministrator: Bool { self == .inherited || self == .direct(.administrator) }
    }

    @Test("(actor's standing × command × target role): only administrators manage users", arguments: Standing.all, Move.allCases)
    func exhaustive(standing: Standing, move: Move) throws {
        for target in Role.allCases {
            let h = try Harness(.memory)
            try h.agreement("MB-1", .mbsa, contacts: [(.primaryContact, "owner@t.com")])
            try h.agreement("OL-1", .openLicense, parent: "MB-1", contacts: [(.primaryContact, "owner@t.com")], auth: "N1", reseller: "victim@t.com")
            try h.user("owner", "owner@t.com")
            try h.user("actor", "actor@t.com", profile: true)
            try h.user("victim", "victim@t.com", profile: true)
            switch standing {
            case .none: break
            case .inherited:
                try h.ok(.grantRoles(by: "owner", email: "actor@t.com", licensingId: "MB-1", roles: [.administrator], saBenefits: []))
            case let .direct(role):
                try h.ok(.grantRoles(by: "owner", email: "actor@t.com", licensingId: "OL-1", roles: [role],
                                     saBenefits: role == .softwareAssuranceManager ? SABenefit.allCases : []))
            }
            // the victim holds every role directly, and the Open License through Add Open License
            try h.ok(.grantRoles(by: "owner", email: "victim@t.com", licensingId: "OL-1", roles: Role.allCases, saBenefits: [.techNet]))
            try h.ok(.addOpenLicense(account: "victim", licenseNumber: "OL-1", authorizationNumber: "N1", acknowledged: true))
            try h.ok(.requestPermissions(requestId: "r", account: "victim", licensingId: "OL-1", roles: [target],
                                         saBenefits: target == .softwareAssuranceManager ? [.software] : [], comment: nil))
            let command: Command
            switch move {
            case .grant: command = .grantRoles(by: "actor", email: "actor@t.com", licensingId: "OL-1", roles: [target], saBenefits: [.eLearning])
            case .revoke: command = .revokeRoles(by: "actor", email: "victim@t.com", licensingId: "OL-1", roles: [target])
            case .approve: command = .approveRequest(by: "actor", requestId: "r")
            case .deny: command = .denyRequest(by: "actor", requestId: "r", reason: nil)
            case .denyReseller: command = .denyResellerAccess(by: .account("actor"), email: "victim@t.com", licensingId: "OL-1", via: .manageUsers)
            case .denyOpenLicense: command = .denyOpenLicenseAccess(by: "actor", email: "victim@t.com", licensingId: "OL-1")
            case .optOut: command = .optOutAdminInheritance(account: "actor", parentId: "OL-1")
            }
            let result = try h.run(command)
            if standing.isAdministrator {
                #expect(result.refusal == nil, "\(standing) could not \(move) \(target): \(String(describing: result.refusal))")
            } else {
                #expect(result.refusal?.code == .forbidden, "\(standing) was allowed to \(move) \(target)")
                #expect(try !h.allowed("actor", .manageUsers, "OL-1"))
            }
            // Whatever happened, the actor can't have become an administrator unless it was one.
            #expect(try h.allowed("actor", .manageUsers, "OL-1") == standing.isAdministrator)
        }
    }

    @Test("Add Open License, reseller grants and one's own requests never give administrator")
    func noBackDoors() throws {
        let h = try Harness(.memory)
        try h.agreement("OL-1", .openLicense, contacts: [(.primaryContact, "owner@t.com")], auth: "N1", reseller: "res@t.com")
        try h.agreement("OL-2", .openLicense, contacts: [(.primaryContact, "owner@t.com")], auth: "N2")
        try h.user("owner", "owner@t.com")
        try h.user("res", "res@t.com", profile: true)
        try h.ok(.addOpenLicense(account: "res", licenseNumber: "OL-2", authorizationNumber: "N2", acknowledged: true))
        #expect(try h.roles("res@t.com", "OL-1").contains(.administrator) == false)
        #expect(try h.roles("res@t.com", "OL-2").contains(.administrator) == false)
        try h.ok(.requestPermissions(requestId: "mine", account: "res", licensingId: "OL-2", roles: [.administrator], saBenefits: [], comment: nil))
        try h.refused(.approveRequest(by: "res", requestId: "mine"), .forbidden)
        try h.refused(.grantRoles(by: "res", email: "res@t.com", licensingId: "OL-1", roles: [.administrator], saBenefits: []), .forbidden)
        try h.refused(.optOutAdminInheritance(account: "res", parentId: "OL-1"), .forbidden)
        #expect(try !h.allowed("res", .manageUsers, "OL-1"))
        #expect(try !h.allowed("res", .manageUsers, "OL-2"))
    }

    @Test("100,000 random commands: a replay validator finds no event invalid at its own position", arguments: [31, 32, 33, 34] as [UInt64])
    func replayValidator(seed: UInt64) throws {
        let h = try Harness(.memory)
        var g = HistoryGenerator(seed: seed, organisations: 400)
        for c in g.commands(25_000) { _ = try h.run(c.command, at: c.at) }
        #expect(h.memoryEvents.count > 20_000)
        let validator = ImportValidator(decider: Decider(authorizationKey: testKey))
        let evolver = Evolver()
        let state = DomainState()
        var previous: DomainEvent?
        var invalid = 0
        for e in h.memoryEvents {
            if let problem = try validator.check(e.event, at: e.at, state: state, previous: previous) {
                invalid += 1
                Issue.record("seq \(e.seq) \(e.event.type) is invalid at its position: \(problem) (seed \(seed))")
                if invalid > 5 { return }
            }
            try evolver.evolve(state, e.event, seq: e.seq, at: e.at)
            previous = e.event
        }
    }
}
