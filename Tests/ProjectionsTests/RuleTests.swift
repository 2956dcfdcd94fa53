import Ledger
@_spi(LedgerInternals) @testable import Projections
import Testing

/// One test per rule of DOMAIN.md §3, each run twice: on the pure decide/evolve fold in
/// memory and on a real ledger on disk.
@Suite("Rules R1–R14")
struct RuleTests {
    @Test("R1 register: invalidEmail, alreadyRegistered, emailInUse; normalisation", arguments: BackendKind.allCases)
    func r1(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.ok(.registerUser(account: "Alice-MSA ", businessEmail: " Alice@Contoso.com "))
        try h.state { (s: DomainState) throws in
            let a = try s.account("alice-msa")
            #expect(a?.email == "alice@contoso.com")
            #expect(a?.validated == false)
        }
        try h.refused(.registerUser(account: "bob", businessEmail: "not-an-email"), .invalidEmail)
        try h.refused(.registerUser(account: "bob", businessEmail: "bob@localhost"), .invalidEmail)
        try h.refused(.registerUser(account: "alice-msa", businessEmail: "other@contoso.com"), .alreadyRegistered)
        // invalidEmail is reported before alreadyRegistered
        try h.refused(.registerUser(account: "alice-msa", businessEmail: "nope"), .invalidEmail)
        // Registering with an email nobody validated yet is fine (twice, even).
        try h.ok(.registerUser(account: "mallory", businessEmail: "alice@contoso.com"))
        try h.ok(.validateEmail(account: "alice-msa"))
        try h.refused(.registerUser(account: "eve", businessEmail: "ALICE@contoso.com"), .emailInUse)
    }

    @Test("R2 validate: notRegistered, alreadyValidated, emailInUse", arguments: BackendKind.allCases)
    func r2(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.agreement("E-1", .enterpriseEnrollment, contacts: [(.primaryContact, "alice@contoso.com")])
        try h.refused(.validateEmail(account: "ghost"), .notRegistered)
        try h.ok(.registerUser(account: "alice-msa", businessEmail: "alice@contoso.com"))
        try h.ok(.registerUser(account: "mallory", businessEmail: "alice@contoso.com"))
        // nothing is visible before validation
        #expect(try h.allowed("alice-msa", .viewLicensingInfo, "E-1") == false)
        #expect(try h.state { try $0.check(account: "alice-msa", licensingId: "E-1", action: .viewLicensingInfo, benefit: nil).reason } == CheckResult.Reason.emailNotValidated)
        try h.ok(.validateEmail(account: "alice-msa"))
        #expect(try h.allowed("alice-msa", .manageUsers, "E-1"))
        try h.refused(.validateEmail(account: "alice-msa"), .alreadyValidated)
        try h.refused(.validateEmail(account: "mallory"), .emailInUse)
        #expect(try h.allowed("mallory", .viewLicensingInfo, "E-1") == false)
    }

    @Test("R3 profile: actor checks, invalidName", arguments: BackendKind.allCases)
    func r3(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.refused(.completeProfile(account: "nobody", firstName: "A", lastName: "B"), .notRegistered)
        try h.ok(.registerUser(account: "a", businessEmail: "a@contoso.com"))
        try h.refused(.completeProfile(account: "a", firstName: "A", lastName: "B"), .emailNotValidated)
        try h.ok(.validateEmail(account: "a"))
        try h.refused(.completeProfile(account: "a", firstName: "   ", lastName: "B"), .invalidName)
        try h.refused(.completeProfile(account: "a", firstName: String(repeating: "x", count: 101), lastName: "B"), .invalidName)
        try h.refused(.completeProfile(account: "a", firstName: "A", lastName: String(repeating: "y", count: 2_000)), .invalidName)
        try h.ok(.completeProfile(account: "a", firstName: "  Ann ", lastName: String(repeating: "z", count: 100)))
        try h.state { (s: DomainState) throws in
            #expect(try s.account("a")?.firstName == "Ann")
            #expect(try s.account("a")?.profileComplete == true)
        }
    }

    @Test("R4 record agreement: every refusal in order, contacts, reseller auto-grant", arguments: BackendKind.allCases)
    func r4(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.agreement("MB-1", .mbsa, contacts: [(.primaryContact, "pc@t.com")])
        try h.agreement("EN-0", .enterpriseEnrollment, contacts: [])
        func form(_ lid: String, _ program: Program, parent: String? = nil, contacts: [(ContactType, String)] = [], auth: String? = nil,
                  reseller: String? = nil) -> Command {
            .recordAgreement(.init(licensingId: lid, program: program, parent: parent, contacts: contacts.map { (type: $0.0, email: $0.1) },
                                   authorizationNumber: auth, resellerEmail: reseller))
        }
        try h.refused(form("MB-1", .mbsa), .duplicateLicensingId)
        try h.refused(form("MB-1", .mbsa, parent: "nope"), .duplicateLicensingId)
        try h.refused(form("EN-1", .enterpriseEnrollment, parent: "EA-404"), .unknownParent)
        try h.refused(form("EN-1", .enterpriseEnrollment, parent: "EN-1"), .unknownParent)
        try h.refused(form("EN-1", .enterpriseEnrollment, parent: "EN-0"), .invalidParentKind)
        try h.refused(form("EN-1", .enterpriseEnrollment, parent: "EN-0", contacts: [(.primaryContact, "bad")]), .invalidParentKind)
        try h.refused(form("EN-1", .enterpriseEnrollment, contacts: [(.primaryContact, "bad")]), .invalidEmail)
        try h.refused(form("OL-1", .openLicense, contacts: [(.primaryContact, "bad")]), .invalidEmail)
        try h.refused(form("OL-1", .openLicense), .missingAuthorizationNumber)
        try h.refused(form("OL-1", .openLicense, reseller: "bad"), .missingAuthorizationNumber)
        try h.refused(form("OL-1", .openLicense, auth: "A-1", reseller: "bad"), .invalidEmail)
        try h.ok(form("OL-1", .openLicense, contacts: [(.primaryContact, "Owner@Adatum.com")], auth: "A-1", reseller: "Rita@Reseller.example"))
        #expect(try h.roles("owner@adatum.com", "OL-1") == [.administrator])
        #expect(try h.roles("rita@reseller.example", "OL-1") == [.licensingInfo, .download, .productKeys, .subscriptionsManager])
        try h.state { (s: DomainState) throws in #expect(try s.cell("rita@reseller.example", "OL-1")?.entries.allSatisfy { $0.source == .reseller } == true) }
        // contact table, and SA benefits of a softwareAssuranceManager contact
        try h.agreement("EN-2", .enterpriseEnrollment, parent: "MB-1", contacts: [
            (.noticesCorrespondent, "nc@t.com"), (.onlineAccessContact, "oac@t.com"), (.softwareAssuranceManager, "sam@t.com"),
            (.onlineServicesManager, "osm@t.com"), (.subscriptionsManager, "sm@t.com"),
        ])
        #expect(try h.roles("nc@t.com", "EN-2") == [.administrator])
        #expect(try h.roles("oac@t.com", "EN-2") == [.administrator])
        #expect(try h.roles("sam@t.com", "EN-2") == [.licensingInfo, .softwareAssuranceManager])
        #expect(try h.state { try $0.roleReport("sam@t.com", "EN-2").saBenefits } == SABenefit.allCases)
        #expect(try h.roles("osm@t.com", "EN-2") == [.licensingInfo, .onlineServicesManager])
        #expect(try h.roles("sm@t.com", "EN-2") == [.licensingInfo, .subscriptionsManager])
        // a chain MBSA -> EA -> enrollment, and availableRoles limiting a reseller's set
        try h.agreement("EA-1", .enterpriseAgreement, parent: "MB-1")
        try h.agreement("EN-3", .enterpriseEnrollment, parent: "EA-1")
        #expect(try h.state { try $0.ancestors(of: "EN-3") } == ["EA-1", "MB-1"])
        try h.ok(.recordAgreement(.init(licensingId: "OL-2", program: .openLicense, contacts: [], availableRoles: [.administrator, .download],
                                        authorizationNumber: "A-2", resellerEmail: "rita@reseller.example")))
        #expect(try h.roles("rita@reseller.example", "OL-2") == [.download])
    }

    @Test("R5 status: unknownLicensingId; inactive IDs listed only on request", arguments: BackendKind.allCases)
    func r5(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.refused(.setLicensingIdStatus(licensingId: "X-1", status: .inactive), .unknownLicensingId)
        try h.agreement("E-1", .enterpriseEnrollment, contacts: [(.primaryContact, "a@t.com")])
        try h.user("a", "a@t.com")
        try h.ok(.setLicensingIdStatus(licensingId: "E-1", status: .inactive))
        try h.state { (s: DomainState) throws in
            #expect(try s.permissionsView(email: "a@t.com", includeInactive: false).rows.isEmpty)
            #expect(try s.permissionsView(email: "a@t.com", includeInactive: true).rows.map(\.status) == [.inactive])
        }
        // status does not change a check
        #expect(try h.allowed("a", .manageUsers, "E-1"))
    }

    @Test("R6 grant and revoke: every refusal in order", arguments: BackendKind.allCases)
    func r6(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.agreement("MB-1", .mbsa, contacts: [(.primaryContact, "boss@t.com")])
        try h.agreement("E-1", .enterpriseEnrollment, parent: nil, contacts: [(.primaryContact, "ann@t.com")],
                        available: [.administrator, .licensingInfo, .download, .softwareAssuranceManager])
        try h.agreement("EN-C", .enterpriseEnrollment, parent: "MB-1")
        try h.user("ann", "ann@t.com")
        try h.user("dan", "dan@t.com")
        try h.user("boss", "boss@t.com")
        try h.ok(.registerUser(account: "unval", businessEmail: "u@t.com"))
        let grant = { (by: String, email: String, lid: String, roles: [Role], sa: [SABenefit]) -> Command in
            .grantRoles(by: by, email: email, licensingId: lid, roles: roles, saBenefits: sa)
        }
        try h.refused(grant("ghost", "dan@t.com", "E-1", [.download], []), .notRegistered)
        try h.refused(grant("unval", "dan@t.com", "E-1", [.download], []), .emailNotValidated)
        try h.refused(grant("ann", "dan@t.com", "E-404", [.download], []), .unknownLicensingId)
        try h.refused(grant("ann", "not-email", "E-1", [.download], []), .invalidEmail)
        try h.refused(grant("dan", "dan@t.com", "E-1", [.download], []), .forbidden)
        try h.refused(grant("ann", "dan@t.com", "E-1", [.productKeys], []), .roleNotAvailable)
        try h.refused(grant("ann", "dan@t.com", "E-1", [.productKeys, .softwareAssuranceManager], []), .roleNotAvailable)
        try h.refused(grant("ann", "dan@t.com", "E-1", [.softwareAssuranceManager], []), .missingSABenefits)
        try h.ok(grant("ann", "Dan@T.com", "E-1", [.download, .softwareAssuranceManager], [.techNet, .eLearning]))
        #expect(try h.roles("dan@t.com", "E-1") == [.download, .softwareAssuranceManager])
        #expect(try h.allowed("dan", .manageSoftwareAssurance, "E-1", benefit: .techNet))
        #expect(try h.allowed("dan", .manageSoftwareAssurance, "E-1", benefit: .homeUseProgram) == false)
        #expect(try h.allowed("dan", .manageSoftwareAssurance, "E-1"))
        #expect(try h.allowed("dan", .downloadSoftware, "E-1"))
        #expect(try h.allowed("dan", .viewProductKeys, "E-1") == false)
        #expect(try h.allowed("dan", .manageUsers, "E-1") == false)
        // revoke
        let revoke = { (by: String, email: String, lid: String, roles: [Role]) -> Command in
            .revokeRoles(by: by, email: email, licensingId: lid, roles: roles)
        }
        try h.refused(revoke("dan", "dan@t.com", "E-1", [.download]), .forbidden)
        try h.refused(revoke("ann", "dan@t.com", "E-1", [.licensingInfo]), .roleNotHeld)
        try h.ok(revoke("ann", "dan@t.com", "E-1", [.download]))
        #expect(try h.allowed("dan", .downloadSoftware, "E-1") == false)
        try h.refused(revoke("ann", "ann@t.com", "E-1", [.administrator]), .lastAdministrator)
        // inherited roles can't be revoked on the child
        try h.refused(revoke("boss", "boss@t.com", "EN-C", [.administrator]), .inheritedAccess)
        // a revocation removes the role from every direct source, contact included
        try h.ok(grant("ann", "dan@t.com", "E-1", [.administrator], []))
        try h.ok(revoke("dan", "ann@t.com", "E-1", [.administrator]))
        #expect(try h.roles("ann@t.com", "E-1").isEmpty)
        try h.refused(revoke("dan", "dan@t.com", "E-1", [.administrator]), .lastAdministrator)
        // an administrator also holding it by inheritance may lose the direct grant
        try h.ok(grant("boss", "dan@t.com", "MB-1", [.administrator], []))
        try h.ok(grant("boss", "boss@t.com", "EN-C", [.administrator], []))
        try h.ok(revoke("boss", "boss@t.com", "EN-C", [.administrator]))
        #expect(try h.allowed("boss", .manageUsers, "EN-C"))
    }

    @Test("R7 request: every refusal in order, routing to effective administrators", arguments: BackendKind.allCases)
    func r7(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.agreement("MB-1", .mbsa, contacts: [(.primaryContact, "pc@t.com")])
        try h.agreement("E-1", .enterpriseEnrollment, parent: "MB-1", contacts: [(.primaryContact, "z@t.com")], available: [.administrator, .licensingInfo, .softwareAssuranceManager])
        try h.agreement("E-2", .enterpriseEnrollment)
        try h.user("q", "q@t.com")
        let req = { (id: String, lid: String, roles: [Role], sa: [SABenefit]) -> Command in
            .requestPermissions(requestId: id, account: "q", licensingId: lid, roles: roles, saBenefits: sa, comment: "please")
        }
        try h.refused(.requestPermissions(requestId: "r0", account: "ghost", licensingId: "E-1", roles: [.licensingInfo], saBenefits: [], comment: nil), .notRegistered)
        try h.refused(req("r1", "E-404", [.licensingInfo], []), .unknownLicensingId)
        try h.refused(req("r1", "E-1", [.download], []), .roleNotAvailable)
        try h.refused(req("r1", "E-1", [.softwareAssuranceManager], []), .missingSABenefits)
        try h.refused(req("r1", "E-2", [.licensingInfo], []), .noAdministrator)
        let seqs = try h.ok(req("r1", "E-1", [.licensingInfo, .softwareAssuranceManager], [.software]))
        try h.refused(req("r1", "E-404", [.licensingInfo], []), .duplicateRequestId)
        try h.state { (s: DomainState) throws in
            let r = try s.request("r1")
            #expect(r?.routedTo == ["pc@t.com", "z@t.com"])
            #expect(r?.status == .pending)
            #expect(r?.requestedSeq == seqs.first)
        }
    }

    @Test("R8 approve and deny: unknownRequest, forbidden, requestNotPending", arguments: BackendKind.allCases)
    func r8(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.agreement("E-1", .enterpriseEnrollment, contacts: [(.primaryContact, "pat@t.com")])
        try h.user("pat", "pat@t.com")
        try h.user("q", "q@t.com")
        try h.ok(.requestPermissions(requestId: "r1", account: "q", licensingId: "E-1", roles: [.administrator], saBenefits: [], comment: nil))
        try h.ok(.requestPermissions(requestId: "r2", account: "q", licensingId: "E-1", roles: [.productKeys], saBenefits: [], comment: nil))
        try h.refused(.approveRequest(by: "pat", requestId: "r404"), .unknownRequest)
        try h.refused(.approveRequest(by: "ghost", requestId: "r404"), .notRegistered)
        // a requester can't approve their own request
        try h.refused(.approveRequest(by: "q", requestId: "r1"), .forbidden)
        try h.refused(.denyRequest(by: "q", requestId: "r1", reason: nil), .forbidden)
        try h.ok(.approveRequest(by: "pat", requestId: "r1"))
        #expect(try h.allowed("q", .manageUsers, "E-1"))
        try h.refused(.approveRequest(by: "pat", requestId: "r1"), .requestNotPending)
        try h.refused(.denyRequest(by: "pat", requestId: "r1", reason: "late"), .requestNotPending)
        try h.ok(.denyRequest(by: "q", requestId: "r2", reason: "no"))
        #expect(try h.allowed("q", .viewProductKeys, "E-1") == true)  // administrator allows every action
        try h.state { (s: DomainState) throws in
            #expect(try s.request("r2")?.status == .denied)
            #expect(try s.request("r1")?.status == .approved)
            #expect(try s.roleReport("q@t.com", "E-1").direct.map(\.source) == [.grant])
        }
    }

    @Test("R9 Add Open License: checks in order, recorded failures, lockout, success", arguments: BackendKind.allCases)
    func r9(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.agreement("OL-1", .openLicense, contacts: [(.primaryContact, "own@t.com")], auth: "AUTH-1", reseller: "r@res.example")
        try h.agreement("OL-2", .openLicense, contacts: [(.primaryContact, "own@t.com")], auth: "AUTH-2")
        try h.agreement("E-1", .enterpriseEnrollment, contacts: [(.primaryContact, "own@t.com")], auth: nil)
        try h.user("own", "own@t.com")
        try h.user("r", "r@res.example")
        try h.user("v", "v@t.com", profile: true)
        let add = { (account: String, n: String, a: String, ack: Bool) -> Command in
            .addOpenLicense(account: account, licenseNumber: n, authorizationNumber: a, acknowledged: ack)
        }
        try h.refused(add("ghost", "OL-2", "AUTH-2", true), .notRegistered)
        try h.refused(add("r", "OL-2", "AUTH-2", false), .notAcknowledged)
        try h.refused(add("r", "OL-2", "AUTH-2", true), .profileIncomplete)
        try h.refused(add("v", "OL-2", "AUTH-2", true), .noOpenLicenseOnProfile)
        try h.ok(.completeProfile(account: "r", firstName: "Rita", lastName: "R"))
        var recorded = try h.refused(add("r", "OL-2", "WRONG", true), .invalidLicenseAuthorization)
        #expect(recorded.count == 1)
        h.advance(seconds: 60)
        recorded = try h.refused(add("r", "E-1", "AUTH-2", true), .invalidLicenseAuthorization)  // not an Open License
        #expect(recorded.count == 1)
        h.advance(seconds: 60)
        recorded = try h.refused(add("r", "OL-404", "AUTH-2", true), .suspended)  // the third failure starts the lockout
        #expect(recorded.count == 1)
        h.advance(seconds: 60)
        recorded = try h.refused(add("r", "OL-2", "AUTH-2", true), .suspended)  // not evaluated, not recorded
        #expect(recorded.isEmpty)
        try h.state { (s: DomainState) throws in
            let reasons = try s.lockout("r")?.failures.count
            #expect(reasons == 3)
        }
        h.advance(seconds: 86_400)
        try h.ok(add("r", "OL-2", "AUTH-2", true))
        #expect(try h.roles("r@res.example", "OL-2") == [.licensingInfo, .download, .productKeys, .subscriptionsManager])
        #expect(try h.allowed("r", .manageUsers, "OL-2") == false)
        try h.state { (s: DomainState) throws in #expect(try s.cell("r@res.example", "OL-2")?.entries.allSatisfy { $0.source == .openLicense } == true) }
        if kind == .memory {
            let failures = h.memoryEvents.compactMap { e -> AttemptFailure? in
                if case let .openLicenseAttemptFailed(_, _, reason) = e.event { return reason }
                return nil
            }
            #expect(failures == [.authorizationMismatch, .unknownLicense, .unknownLicense])
            let added = h.memoryEvents.last?.event
            #expect(added == .openLicenseAdded(account: "r", email: "r@res.example", licensingId: "OL-2",
                                               roles: [.licensingInfo, .download, .productKeys, .subscriptionsManager], notified: ["own@t.com"]))
        }
    }

    @Test("R10 remove: every refusal in order; contact source does not come back", arguments: BackendKind.allCases)
    func r10(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.agreement("MB-1", .mbsa, contacts: [(.noticesCorrespondent, "nc@t.com")])
        try h.agreement("EA-1", .enterpriseAgreement, parent: "MB-1", contacts: [(.primaryContact, "pc@t.com")])
        try h.agreement("EN-1", .enterpriseEnrollment, parent: "EA-1", contacts: [(.onlineAccessContact, "oac@t.com"), (.primaryContact, "enpc@t.com")])
        for (a, e) in [("nc", "nc@t.com"), ("pc", "pc@t.com"), ("oac", "oac@t.com"), ("enpc", "enpc@t.com"), ("u", "u@t.com"), ("g", "g@t.com")] {
            try h.user(a, e)
        }
        try h.refused(.removeLicensingId(account: "oac", licensingId: "EN-404"), .unknownLicensingId)
        try h.refused(.removeLicensingId(account: "enpc", licensingId: "EN-1"), .cannotRemoveContact)
        try h.refused(.removeLicensingId(account: "pc", licensingId: "EA-1"), .cannotRemoveContact)
        try h.refused(.removeLicensingId(account: "nc", licensingId: "EN-1"), .retainedByParentContact)
        try h.refused(.removeLicensingId(account: "pc", licensingId: "EN-1"), .retainedByParentContact)
        try h.ok(.grantRoles(by: "pc", email: "g@t.com", licensingId: "EA-1", roles: [.administrator], saBenefits: []))
        try h.refused(.removeLicensingId(account: "g", licensingId: "EN-1"), .inheritedAccess)
        try h.refused(.removeLicensingId(account: "u", licensingId: "EN-1"), .nothingToRemove)
        try h.ok(.grantRoles(by: "pc", email: "oac@t.com", licensingId: "EN-1", roles: [.download], saBenefits: []))
        try h.ok(.removeLicensingId(account: "oac", licensingId: "EN-1"))
        #expect(try h.roles("oac@t.com", "EN-1").isEmpty)
        #expect(try h.state { try $0.permissionsView(email: "oac@t.com", includeInactive: true).rows.isEmpty })
        // only a later grant restores access; the contact source stays gone
        try h.ok(.grantRoles(by: "pc", email: "oac@t.com", licensingId: "EN-1", roles: [.licensingInfo], saBenefits: []))
        #expect(try h.roles("oac@t.com", "EN-1") == [.licensingInfo])
    }

    @Test("R11 inheritance: opt-out stops the flow to every descendant; forbidden; unknown", arguments: BackendKind.allCases)
    func r11(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.agreement("MB-1", .mbsa, contacts: [(.primaryContact, "pc@t.com")])
        try h.agreement("EA-1", .enterpriseAgreement, parent: "MB-1")
        try h.agreement("EN-1", .enterpriseEnrollment, parent: "EA-1")
        try h.user("pc", "pc@t.com")
        try h.user("u", "u@t.com")
        #expect(try h.allowed("pc", .manageUsers, "EN-1"))
        #expect(try h.roles("pc@t.com", "EN-1") == [.administrator, .licensingInfo])
        try h.refused(.optOutAdminInheritance(account: "pc", parentId: "X"), .unknownLicensingId)
        try h.refused(.optOutAdminInheritance(account: "u", parentId: "MB-1"), .forbidden)
        try h.refused(.optOutAdminInheritance(account: "ghost", parentId: "MB-1"), .notRegistered)
        try h.ok(.optOutAdminInheritance(account: "pc", parentId: "MB-1"))
        #expect(try h.allowed("pc", .manageUsers, "EA-1") == false)
        #expect(try h.allowed("pc", .manageUsers, "EN-1") == false)
        #expect(try h.allowed("pc", .manageUsers, "MB-1"))
        // licensingInfo from a parent's primary contact stays whatever was opted
        #expect(try h.allowed("pc", .viewLicensingInfo, "EN-1"))
        #expect(try h.state { try $0.administrators(of: "EN-1").isEmpty })
        try h.ok(.optInAdminInheritance(account: "pc", parentId: "MB-1"))
        #expect(try h.allowed("pc", .manageUsers, "EN-1"))
        try h.state { (s: DomainState) throws in
            let admins = try s.administrators(of: "EN-1")
            #expect(admins.map(\.email) == ["pc@t.com"])
            #expect(admins.first?.sources == [AdminSource(source: .inherited, via: "EA-1")])
        }
    }

    @Test("R12 deny reseller / Add Open License access: unknownLicensingId, forbidden, nothingToDeny", arguments: BackendKind.allCases)
    func r12(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.agreement("OL-1", .openLicense, contacts: [(.primaryContact, "carol@t.com")], auth: "A1", reseller: "ron@p.example")
        try h.agreement("OL-2", .openLicense, contacts: [(.primaryContact, "carol@t.com")], auth: "A2", reseller: "ron@p.example")
        try h.user("carol", "carol@t.com")
        try h.user("ron", "ron@p.example", profile: true)
        let viaLink = { (by: String, lid: String) -> Command in
            .denyResellerAccess(by: .email(by), email: "ron@p.example", licensingId: lid, via: .emailLink)
        }
        try h.refused(viaLink("carol@t.com", "OL-9"), .unknownLicensingId)
        try h.refused(viaLink("someone@t.com", "OL-1"), .forbidden)
        try h.refused(.denyResellerAccess(by: .account("ron"), email: "ron@p.example", licensingId: "OL-1", via: .manageUsers), .forbidden)
        try h.refused(.denyResellerAccess(by: .account("ghost"), email: "ron@p.example", licensingId: "OL-1", via: .manageUsers), .notRegistered)
        try h.ok(viaLink("Carol@T.com", "OL-1"))
        try h.refused(viaLink("carol@t.com", "OL-1"), .nothingToDeny)
        #expect(try h.roles("ron@p.example", "OL-1").isEmpty)
        // a reseller also granted administrator keeps the grant
        try h.ok(.grantRoles(by: "carol", email: "ron@p.example", licensingId: "OL-2", roles: [.administrator], saBenefits: []))
        try h.ok(.denyResellerAccess(by: .account("carol"), email: "ron@p.example", licensingId: "OL-2", via: .manageUsers))
        #expect(try h.roles("ron@p.example", "OL-2") == [.administrator])
        // Add Open License access, then its denial
        try h.ok(.addOpenLicense(account: "ron", licenseNumber: "OL-1", authorizationNumber: "A1", acknowledged: true))
        try h.refused(.denyOpenLicenseAccess(by: "carol", email: "ron@p.example", licensingId: "OL-404"), .unknownLicensingId)
        try h.refused(.denyOpenLicenseAccess(by: "ghost", email: "ron@p.example", licensingId: "OL-1"), .notRegistered)
        try h.ok(.registerUser(account: "x", businessEmail: "x@t.com"))
        try h.ok(.validateEmail(account: "x"))
        try h.refused(.denyOpenLicenseAccess(by: "x", email: "ron@p.example", licensingId: "OL-1"), .forbidden)
        try h.refused(.denyOpenLicenseAccess(by: "carol", email: "ron@p.example", licensingId: "OL-2"), .nothingToDeny)
        try h.ok(.denyOpenLicenseAccess(by: "carol", email: "ron@p.example", licensingId: "OL-1"))
        #expect(try h.roles("ron@p.example", "OL-1").isEmpty)
    }

    @Test("R13 migrate: the MVLS/eOpen table; unknownLicensingId, invalidEmail, unknownLegacyRole, roleNotAvailable", arguments: BackendKind.allCases)
    func r13(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.agreement("S-1", .selectPlusCustomer)
        try h.agreement("S-2", .selectPlusCustomer, available: [.administrator, .licensingInfo, .download])
        let m = { (source: String, role: String, email: String, lid: String) -> Command in
            .migrateLegacyPermission(source: source, legacyRole: role, email: email, licensingId: lid)
        }
        try h.refused(m("mvls", "user", "a@t.com", "S-404"), .unknownLicensingId)
        try h.refused(m("mvls", "user", "bad", "S-1"), .invalidEmail)
        try h.refused(m("mvls", "superuser", "a@t.com", "S-1"), .unknownLegacyRole)
        try h.refused(m("eopen", "administrator", "a@t.com", "S-1"), .unknownLegacyRole)
        try h.refused(m("mvls", "msdnBenefitAdministrator", "a@t.com", "S-2"), .roleNotAvailable)
        let table: [(String, String, [Role])] = [
            ("mvls", "user", [.licensingInfo]), ("mvls", "userVLK", [.licensingInfo, .download, .productKeys]),
            ("mvls", "saBenefitAdministrator", [.softwareAssuranceManager]), ("mvls", "onlineServicesBenefitAdministrator", [.onlineServicesManager]),
            ("mvls", "msdnBenefitAdministrator", [.subscriptionsManager]), ("mvls", "administrator", [.administrator]), ("eopen", "none", [.administrator]),
        ]
        for (i, (source, legacy, roles)) in table.enumerated() {
            try h.ok(m(source, legacy, "m\(i)@t.com", "S-1"))
            #expect(try h.roles("m\(i)@t.com", "S-1") == roles)
        }
        #expect(try h.state { try $0.roleReport("m2@t.com", "S-1").saBenefits } == SABenefit.allCases)
    }

    @Test("R14 privacy: only an administrator of the ID or an ancestor may ask who administers it")
    func r14() throws {
        let h = try Harness(.disk)
        try h.agreement("MB-1", .mbsa, contacts: [(.primaryContact, "pc@t.com")])
        try h.agreement("EA-1", .enterpriseAgreement, parent: "MB-1")
        try h.agreement("EN-1", .enterpriseEnrollment, parent: "EA-1", contacts: [(.onlineAccessContact, "oac@t.com")])
        try h.user("pc", "pc@t.com")
        try h.user("oac", "oac@t.com")
        try h.user("u", "u@t.com")
        guard let ledger = h.ledger else { return }
        let asked = try ledger.administrators(of: "EN-1", askedBy: "oac")
        #expect((try? asked.get())?.map(\.email) == ["oac@t.com", "pc@t.com"])
        // pc opts out: no longer an administrator of EN-1, still of its ancestor MB-1
        try h.ok(.optOutAdminInheritance(account: "pc", parentId: "MB-1"))
        #expect((try? ledger.administrators(of: "EN-1", askedBy: "pc").get())?.map(\.email) == ["oac@t.com"])
        if case let .failure(e) = try ledger.administrators(of: "EN-1", askedBy: "u") { #expect(e.code == .forbidden) } else { Issue.record("u was answered") }
        if case let .failure(e) = try ledger.administrators(of: "EN-1", askedBy: "ghost") { #expect(e.code == .notRegistered) } else { Issue.record("ghost was answered") }
        if case let .failure(e) = try ledger.administrators(of: "X", askedBy: "pc") { #expect(e.code == .unknownLicensingId) } else { Issue.record("unknown ID was answered") }
        // the operator's question needs no asker
        #expect(try ledger.administrators(of: "EN-1").get().map(\.email) == ["oac@t.com"])
        // and can be asked at a point: just before the opt-out, pc administered EN-1 by inheritance
        let optOut = try ledger.log.head().seq
        #expect(try ledger.administrators(of: "EN-1", asOf: .seq(optOut - 1)).get().map(\.email) == ["oac@t.com", "pc@t.com"])
        if case let .failure(e) = try ledger.administrators(of: "X") { #expect(e.code == .unknownLicensingId) } else { Issue.record("unknown ID was answered") }
        if case let .failure(e) = try ledger.administrators(of: "EN-1", asOf: .seq(0)) { #expect(e.code == .unknownLicensingId) } else { Issue.record("an ID not yet recorded was answered") }
    }

    @Test("an unsound policy or option set through its setters is refused on open, naming the field")
    func unsoundOptions() throws {
        let dir = TempDir()
        func refusal(_ change: (inout PermissionLedger.Options) -> Void) -> String? {
            var options = PermissionLedger.Options(policy: .default, durability: .noSync)
            change(&options)
            do {
                _ = try PermissionLedger(directory: dir.path, options: options)
                return nil
            } catch let e as InputError {
                return e.field
            } catch {
                return "\(error)"
            }
        }
        #expect(refusal { $0.policy?.limitedOpenLicenseRoles.append(.administrator) } == "policy.limitedOpenLicenseRoles")
        #expect(refusal { $0.policy?.lockoutThreshold = 0 } == "policy.lockoutThreshold")
        #expect(refusal { $0.policy?.lockoutWindow = 0 } == "policy.lockoutWindow")
        #expect(refusal { $0.policy?.lockoutDuration = .max } == "policy.lockoutDuration")
        #expect(refusal { $0.hotCacheEntries = -1 } == "hotCacheEntries")
        #expect(refusal { _ in } == nil)
    }

    @Test("a time outside 0001–9999 is bad input from the Swift API: thrown, nothing of the batch appended; queries at such times never trap")
    func timeOutOfRange() throws {
        let h = try Harness(.disk)
        try h.user("u", "u@t.com")
        guard let ledger = h.ledger else { return }
        let head = try ledger.log.head().seq
        for seconds in [Int64.min, Int64.max, Timestamp.latest.seconds + 1] {
            let ok = TimedCommand(at: h.now, .registerUser(account: "v\(seconds)", businessEmail: "v@t.com"))
            let bad = TimedCommand(at: Timestamp(seconds: seconds), .registerUser(account: "w", businessEmail: "w@t.com"))
            #expect(throws: InputError.self) { try ledger.executeBatch([ok, bad]) }
            #expect(try ledger.log.head().seq == head, "nothing of the batch may be appended")
            var imported = try ImportedEvent(json: try JSONParser.parse(#"{"type":"userRegistered","id":"5D2B7C8E-7F30-4E0A-9F7B-1C6B7E0D9A11","at":"2026-01-01T00:00:00Z","account":"x","businessEmail":"x@t.com"}"#))
            imported.at = Timestamp(seconds: seconds)
            #expect(throws: InputError.self) { try ledger.importEvents([imported]) }
            // asking about such a time is fine: before the first event, or after the last
            let status = try ledger.lockout(account: "u", at: Timestamp(seconds: seconds))
            #expect(!status.locked)
            _ = try ledger.permissions(email: "u@t.com", asOf: .time(Timestamp(seconds: seconds)))
        }
        #expect(try ledger.verify().ok)
    }

    @Test("timeWentBackwards is checked before everything else", arguments: BackendKind.allCases)
    func timeOrder(kind: BackendKind) throws {
        let h = try Harness(kind)
        try h.agreement("E-1", .enterpriseEnrollment)
        let r = try h.run(.registerUser(account: "a", businessEmail: "bad"), at: Timestamp(seconds: h.now.seconds - 1))
        #expect(r.refusal?.code == .timeWentBackwards)
        #expect(r.seqs.isEmpty)
        // the same time as the last event is fine
        try h.ok(.registerUser(account: "a", businessEmail: "a@t.com"))
    }
}

@Suite("Requests projection")
struct RequestsProjectionTests {
    @Test("requests by status and by the administrator they were routed to")
    func listing() throws {
        let h = try Harness(.disk)
        try h.agreement("E-1", .enterpriseEnrollment, contacts: [(.primaryContact, "pat@t.com")])
        try h.agreement("E-2", .enterpriseEnrollment, contacts: [(.primaryContact, "kim@t.com")])
        try h.user("pat", "pat@t.com")
        try h.user("q", "q@t.com")
        for (id, lid) in [("a", "E-1"), ("b", "E-1"), ("c", "E-2")] {
            try h.ok(.requestPermissions(requestId: id, account: "q", licensingId: lid, roles: [.download], saBenefits: [], comment: nil))
        }
        try h.ok(.approveRequest(by: "pat", requestId: "a"))
        guard let ledger = h.ledger else { return }
        #expect(try ledger.requests().map(\.requestId) == ["a", "b", "c"])
        #expect(try ledger.requests(status: .pending).map(\.requestId) == ["b", "c"])
        #expect(try ledger.requests(status: .pending, routedTo: "PAT@t.com").map(\.requestId) == ["b"])
        #expect(try ledger.requests(status: .approved).first?.record.decidedBy == "pat")
    }
}

@Suite("Group commit")
struct GroupCommitTests {
    @Test("concurrent submits share transactions; every caller gets its own result; a refusal affects no one else")
    func concurrentSubmits() async throws {
        let dir = TempDir()
        let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey))
        let t = Timestamp(seconds: 1_800_000_000)
        _ = try await ledger.execute(TimedCommand(at: t, .recordAgreement(.init(licensingId: "E-1", program: .enterpriseEnrollment,
                                                                           contacts: [(type: .primaryContact, email: "boss@t.com")]))))
        let results = try await withThrowingTaskGroup(of: (Int, ExecutionResult).self) { group in
            for i in 0 ..< 64 {
                group.addTask {
                    // every 8th command is refused (an invalid email)
                    let email = i % 8 == 0 ? "not-an-email" : "u\(i)@t.com"
                    return (i, try await ledger.submit(TimedCommand(at: t, .registerUser(account: "u\(i)", businessEmail: email))))
                }
            }
            var out: [Int: ExecutionResult] = [:]
            for try await (i, r) in group { out[i] = r }
            return out
        }
        #expect(results.count == 64)
        for (i, r) in results {
            if i % 8 == 0 {
                #expect(r.refusal?.code == .invalidEmail && r.seqs.isEmpty)
            } else {
                #expect(r.accepted && r.seqs.count == 1)
            }
        }
        let seqs = results.values.flatMap(\.seqs)
        #expect(Set(seqs).count == 56)
        #expect(try ledger.log.head().seq == 57)
        #expect(try ledger.verify().ok)
        // the 64 commands went in fewer transactions than commands, and all are counted (with
        // the setup's: `execute` from async code is group commit too)
        let stats = ledger.groupCommitStatistics
        #expect(stats.commands == 65)
        #expect(stats.batches >= 2 && stats.batches < 65)
        #expect(ledger.environment.durableThrough == ledger.environment.lastCommitID)
    }

    @Test("one caller at a time: one transaction each, no waiting for company")
    func loneCaller() async throws {
        let dir = TempDir()
        let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey))
        let t = Timestamp(seconds: 1_800_000_000)
        for i in 0 ..< 5 {
            let r = try await ledger.submit(TimedCommand(at: t, .registerUser(account: "u\(i)", businessEmail: "u\(i)@t.com")))
            #expect(r.seqs == [UInt64(i + 1)])
            #expect(ledger.environment.durableThrough >= ledger.environment.lastCommitID)
        }
        #expect(ledger.groupCommitStatistics == GroupCommitStatistics(batches: 5, commands: 5))
    }
}
