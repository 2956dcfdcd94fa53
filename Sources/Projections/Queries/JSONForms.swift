import Ledger

// The JSON shapes of DOMAIN.md §6, shared by `ledger-tool` and services that expose the
// same answers.

extension PermissionsView {
    /// `{"email","asOfSeq","licensingIds":[{"licensingId","program","status","parent"?,"mbsa"?,"roles","saBenefits"}]}`
    public var json: JSONValue {
        .object([
            ("email", .string(email)), ("asOfSeq", .uint(asOfSeq)),
            ("licensingIds", .array(rows.map { row in
                var f: [(key: String, value: JSONValue)] = [
                    ("licensingId", .string(row.licensingId)), ("program", .string(row.program.rawValue)), ("status", .string(row.status.rawValue)),
                ]
                if let p = row.parent { f.append(("parent", .string(p))) }
                if let m = row.mbsa { f.append(("mbsa", .string(m))) }
                f.append(("roles", .strings(row.roles.map(\.rawValue))))
                f.append(("saBenefits", .strings(row.saBenefits.map(\.rawValue))))
                return .object(f)
            })),
        ])
    }
}

extension CheckResult {
    /// `{"allowed","reason","message","roles","asOfSeq"}`
    public var json: JSONValue {
        .object([("allowed", .bool(allowed)), ("reason", .string(reason)), ("message", .string(message)),
                 ("roles", .strings(roles.map(\.rawValue))), ("asOfSeq", .uint(asOfSeq))])
    }
}

extension LockoutStatus {
    /// `{"account","locked","lockedUntil"?,"recentFailures","at"}`
    public var json: JSONValue {
        var f: [(key: String, value: JSONValue)] = [("account", .string(account)), ("locked", .bool(locked))]
        if let until = lockedUntil { f.append(("lockedUntil", .string(until.iso8601))) }
        f.append(("recentFailures", .int(Int64(recentFailures))))
        f.append(("at", .string(at.iso8601)))
        return .object(f)
    }
}

extension AdminSource {
    /// `{"source"}` or `{"source":"inherited","via"}`
    public var json: JSONValue {
        var f: [(key: String, value: JSONValue)] = [("source", .string(source.rawValue))]
        if let via { f.append(("via", .string(via))) }
        return .object(f)
    }
}

extension Explanation {
    /// `{"email","licensingId","asOfSeq","roles":[{"role","sources":[{"source","seq","type"} | {"source":"inherited","via"}]}],"saBenefits"}`
    public var json: JSONValue {
        .object([
            ("email", .string(email)), ("licensingId", .string(licensingId)), ("asOfSeq", .uint(asOfSeq)),
            ("roles", .array(roles.map { entry in
                .object([("role", .string(entry.role.rawValue)), ("sources", .array(entry.reasons.map { r in
                    var f: [(key: String, value: JSONValue)] = [("source", .string(r.source.rawValue))]
                    if let seq = r.seq { f.append(("seq", .uint(seq))) }
                    if let type = r.type { f.append(("type", .string(type))) }
                    if let via = r.via { f.append(("via", .string(via))) }
                    return .object(f)
                }))])
            })),
            ("saBenefits", .strings(saBenefits.map(\.rawValue))),
        ])
    }
}

extension LedgerVerifyReport {
    /// `{"ok","events","headHash","firstBadSeq"?,"problem"?}`
    public var json: JSONValue {
        var f: [(key: String, value: JSONValue)] = [("ok", .bool(ok)), ("events", .uint(log.events)), ("headHash", .string(Hex.encode(log.headHash)))]
        if let bad = log.firstBadSeq { f.append(("firstBadSeq", .uint(bad))) }
        if let problem = log.problem ?? projectionProblem { f.append(("problem", .string(problem))) }
        return .object(f)
    }
}

extension LedgerStats {
    /// `{"events","byType","headSeq","headHash","fileBytes"}`
    public var json: JSONValue {
        .object([("events", .uint(events)), ("byType", .object(byType.keys.sorted().map { ($0, .uint(byType[$0] ?? 0)) })),
                 ("headSeq", .uint(head.seq)), ("headHash", .string(Hex.encode(head.hash))), ("fileBytes", .int(Int64(fileBytes)))])
    }
}
