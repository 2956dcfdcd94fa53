import Ledger
import Projections

/// A person the erasure tests plant in a history: one personal field of each kind (email,
/// account, first and last name, a request's comment, a denial's reason), administrator of
/// E-PLANT for a while. Its values are searched for everywhere after an erasure.
public struct PlantedPerson: Sendable {
    public let email: String, account: String, first: String, last: String, comment: String, reason: String

    public init(email: String, account: String, first: String = "Zeldarina", last: String = "Quartermainova",
                comment: String = "for the Nightjar rollout, urgently", reason: String = "Nightjar staff only, sorry") {
        self.email = email
        self.account = account
        self.first = first
        self.last = last
        self.comment = comment
        self.reason = reason
    }

    /// Every personal value of the person.
    public var values: [String] { [email, account, first, last, comment, reason] }

    /// The story: E-PLANT recorded (boss its primary contact), the person registered,
    /// validated and named, made administrator by boss; asker's request denied by the person
    /// (the reason), the person's own request (the comment); with `revoked`, boss revokes the
    /// role at the end, so that the person holds no access. The first 7 commands make the
    /// person an administrator.
    public func story(revoked: Bool) -> [Command] {
        var out: [Command] = [
            .recordAgreement(.init(licensingId: "E-PLANT", program: .enterpriseAgreement, contacts: [(.primaryContact, "boss@nightjar.example")])),
            .registerUser(account: "boss", businessEmail: "boss@nightjar.example"), .validateEmail(account: "boss"),
            .registerUser(account: account, businessEmail: email), .validateEmail(account: account),
            .completeProfile(account: account, firstName: first, lastName: last),
            .grantRoles(by: "boss", email: email, licensingId: "E-PLANT", roles: [.administrator], saBenefits: []),
            .registerUser(account: "asker", businessEmail: "asker@nightjar.example"), .validateEmail(account: "asker"),
            .requestPermissions(requestId: "plant-r1", account: "asker", licensingId: "E-PLANT", roles: [.download], saBenefits: [], comment: "asking"),
            .denyRequest(by: account, requestId: "plant-r1", reason: reason),
            .requestPermissions(requestId: "plant-r2", account: account, licensingId: "E-PLANT", roles: [.download], saBenefits: [], comment: comment),
        ]
        if revoked { out.append(.revokeRoles(by: "boss", email: email, licensingId: "E-PLANT", roles: [.administrator])) }
        return out
    }
}
