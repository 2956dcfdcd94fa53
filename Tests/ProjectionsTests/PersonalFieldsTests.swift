import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import _LedgerTestSupport
import Testing

/// DOMAIN.md §5.1's list of personal fields, checked against the canonical bytes of every
/// event type: with each listed value replaced, no personal string is left in the payload
/// and every other string still is.
@Suite("Personal fields of every event type (issue 18)")
struct PersonalFieldsTests {
    /// One event of each type, every string distinct; with the strings that are personal
    /// and those that are not.
    static let samples: [(event: DomainEvent, personal: [String], other: [String])] = [
        (.userRegistered(account: "acct-reg", businessEmail: "reg@personal.example"), ["acct-reg", "reg@personal.example"], []),
        (.businessEmailValidated(account: "acct-val", email: "val@personal.example"), ["acct-val", "val@personal.example"], []),
        (.profileCompleted(account: "acct-prof", firstName: "Zelda", lastName: "Quartermain"), ["acct-prof", "Zelda", "Quartermain"], []),
        (.agreementRecorded(.init(licensingId: "LID-AGREE", program: .enterpriseAgreement, parent: "LID-PARENT", status: .active,
                                  contacts: [Contact(type: .primaryContact, email: "primary@personal.example"),
                                             Contact(type: .noticesCorrespondent, email: "notices@personal.example")],
                                  availableRoles: [.administrator], authorizationHash: Array(repeating: 7, count: 32), keyId: "KEY-ID-1",
                                  resellerEmail: "reseller@personal.example")),
         ["primary@personal.example", "notices@personal.example", "reseller@personal.example"], ["LID-AGREE", "LID-PARENT", "KEY-ID-1"]),
        (.resellerAutoGranted(email: "auto@personal.example", licensingId: "LID-AUTO", roles: [.administrator]), ["auto@personal.example"], ["LID-AUTO"]),
        (.licensingIdStatusChanged(licensingId: "LID-STATUS", status: .inactive), [], ["LID-STATUS"]),
        (.rolesGranted(by: "acct-granter", email: "grantee@personal.example", licensingId: "LID-GRANT", roles: [.download], saBenefits: []),
         ["acct-granter", "grantee@personal.example"], ["LID-GRANT"]),
        (.rolesRevoked(by: "acct-revoker", email: "revokee@personal.example", licensingId: "LID-REVOKE", roles: [.download]),
         ["acct-revoker", "revokee@personal.example"], ["LID-REVOKE"]),
        (.permissionsRequested(.init(requestId: "REQ-ONE", account: "acct-asker", email: "asker@personal.example", licensingId: "LID-ASK",
                                     roles: [.download], saBenefits: [], comment: "please, for my project Nightjar",
                                     routedTo: ["admin1@personal.example", "admin2@personal.example"])),
         ["acct-asker", "asker@personal.example", "please, for my project Nightjar", "admin1@personal.example", "admin2@personal.example"],
         ["REQ-ONE", "LID-ASK"]),
        (.permissionRequestApproved(by: "acct-approver", requestId: "REQ-TWO", email: "approved@personal.example", licensingId: "LID-APPROVE",
                                    roles: [.download], saBenefits: []),
         ["acct-approver", "approved@personal.example"], ["REQ-TWO", "LID-APPROVE"]),
        (.permissionRequestDenied(by: "acct-denier", requestId: "REQ-THREE", reason: "not on the Falcon team"),
         ["acct-denier", "not on the Falcon team"], ["REQ-THREE"]),
        (.openLicenseAttemptFailed(account: "acct-attempt", licenseNumber: "LICNUM-999", reason: .unknownLicense), ["acct-attempt"], ["LICNUM-999"]),
        (.openLicenseAdded(account: "acct-adder", email: "adder@personal.example", licensingId: "LID-OPEN", roles: [.administrator],
                           notified: ["notified1@personal.example"]),
         ["acct-adder", "adder@personal.example", "notified1@personal.example"], ["LID-OPEN"]),
        (.licensingIdRemovedByUser(account: "acct-remover", email: "remover@personal.example", licensingId: "LID-REMOVE"),
         ["acct-remover", "remover@personal.example"], ["LID-REMOVE"]),
        (.adminInheritanceOptedOut(account: "acct-out", email: "out@personal.example", parentId: "LID-OUTPARENT"),
         ["acct-out", "out@personal.example"], ["LID-OUTPARENT"]),
        (.adminInheritanceOptedIn(account: "acct-in", email: "in@personal.example", parentId: "LID-INPARENT"),
         ["acct-in", "in@personal.example"], ["LID-INPARENT"]),
        (.resellerAccessDenied(by: "acct-customer", byEmail: "customer@personal.example", email: "resold@personal.example",
                               licensingId: "LID-DENY", via: .manageUsers),
         ["acct-customer", "customer@personal.example", "resold@personal.example"], ["LID-DENY"]),
        (.openLicenseAccessDenied(by: "acct-oldenier", email: "oldenied@personal.example", licensingId: "LID-OLDENY"),
         ["acct-oldenier", "oldenied@personal.example"], ["LID-OLDENY"]),
        (.legacyPermissionMigrated(source: "LEGACY-SRC", legacyRole: "LEGACY-ROLE", email: "migrated@personal.example",
                                   licensingId: "LID-MIGRATE", roles: [.download], saBenefits: []),
         ["migrated@personal.example"], ["LEGACY-SRC", "LEGACY-ROLE", "LID-MIGRATE"]),
        (.subjectErased(subject: "00112233445566778899aabbccddeeff", legalBasis: .consentWithdrawn), [], ["00112233445566778899aabbccddeeff"]),
    ]


    @Test("the samples cover every event type")
    func everyType() {
        #expect(Self.samples.map(\.event.kind) == (1 ... UInt16(DomainEvent.typeNames.count)).map { $0 })
    }

    @Test("personalFields lists exactly the personal strings, in payload order")
    func listed() {
        for sample in Self.samples {
            #expect(sample.event.personalFields.map(\.value) == sample.personal, "\(sample.event.type)")
        }
    }

    @Test("with every personal value replaced, the canonical payload holds no personal string and every other one")
    func payloadIsCovered() {
        for sample in Self.samples {
            let mapped = sample.event.mappingPersonalFields { _ in "erased:" + String(repeating: "0", count: 32) }
            let payload = mapped.encodedPayload()
            for value in sample.personal {
                #expect(!holds(payload, value), "\(sample.event.type): \(value) left in the payload")
                #expect(holds(sample.event.encodedPayload(), value), "\(sample.event.type): control, \(value) in the original")
            }
            for value in sample.other {
                #expect(holds(payload, value), "\(sample.event.type): \(value) should be kept")
            }
            // mapping with the identity changes nothing
            #expect(sample.event.mappingPersonalFields { $0.value } == sample.event)
        }
    }

    @Test("names and owners: emails are their own subject's; names, comments and reasons their account's; a registration's account its email's")
    func owners() {
        let byType = Dictionary(Self.samples.map { ($0.event.type, $0.event) }, uniquingKeysWith: { a, _ in a })
        func fields(_ type: String) -> [String: PersonalField.Owner] {
            guard let e = byType[type] else { return [:] }
            return Dictionary(e.personalFields.map { ($0.name, $0.owner) }, uniquingKeysWith: { a, _ in a })
        }
        #expect(fields("userRegistered")["account"] == .email("reg@personal.example"))
        #expect(fields("profileCompleted")["firstName"] == .account("acct-prof"))
        #expect(fields("profileCompleted")["lastName"] == .account("acct-prof"))
        #expect(fields("permissionsRequested")["comment"] == .account("acct-asker"))
        #expect(fields("permissionsRequested")["routedTo[1]"] == .email("admin2@personal.example"))
        #expect(fields("permissionRequestDenied")["reason"] == .account("acct-denier"))
        #expect(fields("agreementRecorded")["contacts[1].email"] == .email("notices@personal.example"))
        #expect(fields("resellerAccessDenied")["by"] == .account("acct-customer"))
        #expect(fields("resellerAccessDenied")["byEmail"] == .email("customer@personal.example"))
        // a denial by email link names no account
        let byLink = DomainEvent.resellerAccessDenied(by: nil, byEmail: "c@personal.example", email: "r@personal.example",
                                                      licensingId: "L", via: .emailLink)
        #expect(byLink.personalFields.map(\.name) == ["byEmail", "email"])
    }
}
