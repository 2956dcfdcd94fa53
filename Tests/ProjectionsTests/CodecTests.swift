import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import _LedgerTestSupport
import Testing

/// Every event type: binary and JSON round trips, and canonical bytes that do not change.
@Suite("Event codecs")
struct CodecTests {
    static let samples: [DomainEvent] = [
        .userRegistered(account: "a", businessEmail: "a@t.com"),
        .businessEmailValidated(account: "a", email: "a@t.com"),
        .profileCompleted(account: "a", firstName: "Zoë \u{0}\u{1B}[31m\u{202E}", lastName: "Ø"),
        .agreementRecorded(.init(licensingId: "OL-1", program: .openLicense, parent: "MB-1", status: .inactive,
                                 contacts: [Contact(type: .primaryContact, email: "p@t.com"), Contact(type: .subscriptionsManager, email: "s@t.com")],
                                 availableRoles: [.administrator, .download], authorizationHash: Array(repeating: 9, count: 32), keyId: "abcd",
                                 resellerEmail: "r@t.com")),
        .agreementRecorded(.init(licensingId: "E-1", program: .enterpriseEnrollment, parent: nil, status: .active, contacts: [],
                                 availableRoles: Role.allCases, authorizationHash: nil, keyId: nil, resellerEmail: nil)),
        .resellerAutoGranted(email: "r@t.com", licensingId: "OL-1", roles: [.licensingInfo, .download]),
        .licensingIdStatusChanged(licensingId: "E-1", status: .inactive),
        .rolesGranted(by: "a", email: "b@t.com", licensingId: "E-1", roles: [.softwareAssuranceManager], saBenefits: [.techNet, .software]),
        .rolesRevoked(by: "a", email: "b@t.com", licensingId: "E-1", roles: [.download, .productKeys]),
        .permissionsRequested(.init(requestId: "r1", account: "q", email: "q@t.com", licensingId: "E-1", roles: [.licensingInfo],
                                    saBenefits: [], comment: "why", routedTo: ["a@t.com", "b@t.com"])),
        .permissionRequestApproved(by: "a", requestId: "r1", email: "q@t.com", licensingId: "E-1", roles: [.licensingInfo], saBenefits: []),
        .permissionRequestDenied(by: "a", requestId: "r1", reason: nil),
        .openLicenseAttemptFailed(account: "r", licenseNumber: "OL-9", reason: .unknownLicense),
        .openLicenseAdded(account: "r", email: "r@t.com", licensingId: "OL-1", roles: [.download], notified: ["p@t.com"]),
        .licensingIdRemovedByUser(account: "a", email: "a@t.com", licensingId: "E-1"),
        .adminInheritanceOptedOut(account: "a", email: "a@t.com", parentId: "MB-1"),
        .adminInheritanceOptedIn(account: "a", email: "a@t.com", parentId: "MB-1"),
        .resellerAccessDenied(by: nil, byEmail: "p@t.com", email: "r@t.com", licensingId: "OL-1", via: .emailLink),
        .resellerAccessDenied(by: "pa", byEmail: "p@t.com", email: "r@t.com", licensingId: "OL-1", via: .manageUsers),
        .openLicenseAccessDenied(by: "pa", email: "r@t.com", licensingId: "OL-1"),
        .legacyPermissionMigrated(source: "mvls", legacyRole: "saBenefitAdministrator", email: "m@t.com", licensingId: "S-1",
                                  roles: [.softwareAssuranceManager], saBenefits: SABenefit.allCases),
        .subjectErased(subject: "0123456789abcdef0123456789abcdef", legalBasis: .legalObligation),
    ]

    @Test("every event type is sampled")
    func coverage() {
        #expect(Set(Self.samples.map(\.kind)).count == DomainEvent.typeNames.count)
    }

    @Test("binary round trip re-encodes to identical canonical bytes", arguments: samples)
    func binary(event: DomainEvent) throws {
        let bytes = event.encodedPayload()
        let decoded = try DomainEvent.decode(kind: event.kind, payload: bytes)
        #expect(decoded == event)
        #expect(decoded.encodedPayload() == bytes)
    }

    @Test("JSON export form round trip", arguments: samples)
    func json(event: DomainEvent) throws {
        let stored = LedgerEvent(seq: 7, id: UUID(), at: Timestamp(seconds: 1_800_000_000), event: event, hash: Array(repeating: 1, count: 32))
        let text = stored.json.text
        let back = try ImportedEvent(json: try JSONParser.parse(text))
        #expect(back.event == event)
        #expect(back.seq == 7)
        #expect(back.id == stored.id)
        #expect(back.hash == stored.hash)
        #expect(back.at == stored.at)
    }

    @Test("truncated or altered payloads throw, never trap", arguments: samples)
    func truncated(event: DomainEvent) {
        let bytes = event.encodedPayload()
        for cut in 0 ..< bytes.count {
            #expect(throws: (any Error).self) { try DomainEvent.decode(kind: event.kind, payload: Array(bytes[0 ..< cut])) }
        }
        #expect(throws: (any Error).self) { try DomainEvent.decode(kind: event.kind, payload: bytes + [0]) }
        #expect(throws: (any Error).self) { try DomainEvent.decode(kind: 999, payload: bytes) }
    }

    @Test("command JSON lines parse back to the same command")
    func commandJSON() throws {
        var generator = HistoryGenerator(seed: 11, organisations: 20)
        for command in generator.commands(2_000) {
            let parsed = try TimedCommand(json: try JSONParser.parse(command.json.text))
            #expect(parsed == command)
        }
    }

    @Test("malformed commands name the field", arguments: [
        (#"{"command":"teleport","at":"2026-01-01T00:00:00Z"}"#, "command"),
        (#"{"command":"registerUser","at":"yesterday","account":"a","businessEmail":"a@t.com"}"#, "at"),
        (#"{"command":"registerUser","at":"2026-01-01T00:00:00Z","account":"a"}"#, "businessEmail"),
        (#"{"command":"grantRoles","at":"2026-01-01T00:00:00Z","by":"a","email":"b@t.com","licensingId":"E","roles":[]}"#, "roles"),
        (#"{"command":"grantRoles","at":"2026-01-01T00:00:00Z","by":"a","email":"b@t.com","licensingId":"E","roles":["superuser"]}"#, "roles"),
        (#"{"command":"grantRoles","at":"2026-01-01T00:00:00Z","by":"a","email":"b@t.com","licensingId":"E","roles":["download"],"saBenefits":["gold"]}"#, "saBenefits"),
        (#"{"command":"recordAgreement","at":"2026-01-01T00:00:00Z","licensingId":"E","program":"nope","contacts":[]}"#, "program"),
        (#"{"command":"recordAgreement","at":"2026-01-01T00:00:00Z","licensingId":"E","program":"mbsa","contacts":[{"type":"boss","email":"a@t.com"}]}"#, "contacts[0].type"),
        (#"{"command":"recordAgreement","at":"2026-01-01T00:00:00Z","licensingId":"E!","program":"mbsa","contacts":[]}"#, "licensingId"),
        (#"{"command":"recordAgreement","at":"2026-01-01T00:00:00Z","licensingId":"E","program":"mbsa","contacts":[],"authorizationNumber":"x"}"#, "authorizationNumber"),
        (#"{"command":"denyResellerAccess","at":"2026-01-01T00:00:00Z","byEmail":"a@t.com","email":"b@t.com","licensingId":"E","via":"fax"}"#, "via"),
        (#"{"command":"denyResellerAccess","at":"2026-01-01T00:00:00Z","by":"a","email":"b@t.com","licensingId":"E","via":"emailLink"}"#, "by"),
        (#"{"command":"validateEmail","at":"2026-01-01T00:00:00Z","account":"a","extra":1}"#, "extra"),
        (#"{"command":"addOpenLicense","at":"2026-01-01T00:00:00Z","account":"a","licenseNumber":"x","authorizationNumber":"y","acknowledged":"yes"}"#, "acknowledged"),
        (#"{"command":"validateEmail","at":"2026-01-01T00:00:00Z","account":"   "}"#, "account"),
    ])
    func malformed(line: String, field: String) throws {
        let json = try JSONParser.parse(line)
        #expect {
            _ = try TimedCommand(json: json)
        } throws: { error in
            (error as? InputError)?.field == field
        }
    }
}

@Suite("Normalisation")
struct NormalizationTests {
    @Test("the ASCII fast path of email and account normalisation agrees with the general one")
    func fastPathAgrees() {
        var rng = SeededRandom(seed: 99)
        let alphabet = Array("aZ09.-_@+ \t\n\r\u{0B}\u{0C}!#..@@x-.com".utf8) + Array("ab.example".utf8)
        var valid = 0
        for i in 0 ..< 60_000 {
            var bytes: [UInt8] = []
            if i % 3 == 0 {
                bytes = Array(" User\(i % 97).Name@Sub-\(i % 13).Example.COM ".utf8)
                if i % 2 == 0 { bytes[rng.below(bytes.count)] = alphabet[rng.below(alphabet.count)] }
            } else {
                for _ in 0 ..< rng.below(24) { bytes.append(alphabet[rng.below(alphabet.count)]) }
            }
            let raw = String(decoding: bytes, as: UTF8.self)
            let fast = Normalize.email(raw), slow = Normalize.unicodeEmail(raw)
            #expect(fast == slow, "email \(raw.debugDescription): \(String(describing: fast)) vs \(String(describing: slow))")
            let account = Normalize.account(raw)
            let general = raw.trimmingWhitespace().lowercased()
            #expect(account == ((1 ... 254).contains(general.count) ? general : nil), "account \(raw.debugDescription)")
            if fast != nil { valid += 1 }
        }
        #expect(valid > 1_000)
        #expect(Normalize.email(" Zoë@t.com") == nil)
        #expect(Normalize.email("\u{00A0}a@t.com\u{2003}") == "a@t.com")
        #expect(Normalize.account(" ÀB ") == "àb")
    }
}

@Suite("Canonical orders")
struct CanonicalOrderTests {
    @Test("Role.order and SABenefit.order are the positions in DOMAIN.md's canonical order")
    func orders() {
        #expect(Role.allCases.enumerated().allSatisfy { $0.offset == $0.element.order })
        #expect(SABenefit.allCases.enumerated().allSatisfy { $0.offset == $0.element.order })
        #expect(Role.canonical == Role.allCases)
        let report = RoleReport(direct: [GrantEntry(role: .download, source: .grant, seq: 1, kind: 0, benefits: []),
                                         GrantEntry(role: .administrator, source: .contact, seq: 2, kind: 0, benefits: [])],
                                inheritedAdminVia: "P", inheritedInfoVia: ["Q"])
        #expect(report.roles == [.administrator, .licensingInfo, .download])
    }
}
