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
        .object([("allowed", .bool(allowed)), ("reason", .string(reason.rawValue)), ("message", .string(message)),
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
    /// `{"email","licensingId","asOfSeq","roles":[{"role","sources":[{"source","seq","type","at"?,"by"?} | {"source":"inherited","via","origin"?}]}],"saBenefits","actions"}`
    public var json: JSONValue {
        .object([
            ("email", .string(email)), ("licensingId", .string(licensingId)), ("asOfSeq", .uint(asOfSeq)),
            ("roles", .array(roles.map { entry in
                .object([("role", .string(entry.role.rawValue)), ("sources", .array(entry.reasons.map(\.json)))])
            })),
            ("saBenefits", .strings(saBenefits.map(\.rawValue))),
            ("actions", .strings(actions.map(\.rawValue))),
        ])
    }
}

extension RoleReason {
    /// `{"source","seq","type","at"?,"by"?}` for a direct source,
    /// `{"source":"inherited","via","origin"?:{"licensingId","sources":[…]}}` for inheritance.
    public var json: JSONValue {
        var f: [(key: String, value: JSONValue)] = [("source", .string(source.rawValue))]
        if let seq { f.append(("seq", .uint(seq))) }
        if let type { f.append(("type", .string(type))) }
        if let at { f.append(("at", .string(at.iso8601))) }
        if let by { f.append(("by", .string(by))) }
        if let via { f.append(("via", .string(via))) }
        if let origin {
            f.append(("origin", .object([("licensingId", .string(origin.licensingId)), ("sources", .array(origin.sources.map(\.json)))])))
        }
        return .object(f)
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

extension ExecutionResult {
    /// `exec`'s result line: `{"line","ok":true,"seq":[…]}` or
    /// `{"line","ok":false,"error","message","until"?,"seq":[…]}`, with `"duplicate":true`
    /// for a repeated command id.
    public func json(line: Int) -> JSONValue {
        var fields: [(key: String, value: JSONValue)] = [("line", .int(Int64(line))), ("ok", .bool(accepted))]
        if let refusal {
            fields.append(("error", .string(refusal.code.rawValue)))
            fields.append(("message", .string(refusal.message)))
            if let until = refusal.until { fields.append(("until", .string(until.iso8601))) }
        }
        fields.append(("seq", .array(seqs.map { .uint($0) })))
        if wasDuplicate { fields.append(("duplicate", .bool(true))) }
        return .object(fields)
    }
}

extension PermissionChange {
    /// `{"email"?,"seq","at","type","licensingId","before","after","saBenefitsBefore","saBenefitsAfter"}`
    /// (`email` for a feed line, where the changes of many emails mix).
    public func json(withEmail: Bool) -> JSONValue {
        var f: [(key: String, value: JSONValue)] = withEmail ? [("email", .string(email))] : []
        f += [("seq", .uint(seq)), ("at", .string(at.iso8601)), ("type", .string(type)), ("licensingId", .string(licensingId))]
        f += beforeAfter(before, after)
        return .object(f)
    }
}

extension PermissionHistory {
    /// `{"email","fromSeq","toSeq","changes":[…]}`
    public var json: JSONValue {
        .object([("email", .string(email)), ("fromSeq", .uint(fromSeq)), ("toSeq", .uint(toSeq)),
                 ("changes", .array(changes.map { $0.json(withEmail: false) }))])
    }
}

extension PermissionDifference {
    /// `{"email","licensingId","before","after","saBenefitsBefore","saBenefitsAfter"}`
    public var json: JSONValue {
        .object([("email", .string(email)), ("licensingId", .string(licensingId))] + beforeAfter(before, after))
    }
}

extension PermissionDiff {
    /// `{"fromSeq","toSeq","changes":[…]}`
    public var json: JSONValue {
        .object([("fromSeq", .uint(fromSeq)), ("toSeq", .uint(toSeq)), ("changes", .array(changes.map(\.json)))])
    }
}

extension AccessReview {
    /// `{"licensingId","asOfSeq","principals":[{"email","account"?,"roles","saBenefits","sources"}]}`
    public var json: JSONValue {
        .object([("licensingId", .string(licensingId)), ("asOfSeq", .uint(asOfSeq)), ("principals", .array(principals.map { p in
            var f: [(key: String, value: JSONValue)] = [("email", .string(p.email))]
            if let account = p.account { f.append(("account", .string(account))) }
            f.append(("roles", .strings(p.permissions.roles.map(\.rawValue))))
            f.append(("saBenefits", .strings(p.permissions.saBenefits.map(\.rawValue))))
            f.append(("sources", .strings(p.sources.map(\.rawValue))))
            return .object(f)
        }))])
    }
}

extension WhatIfResult {
    /// `{"results":[…exec result lines…],"fromSeq","toSeq","changes":[…as diff…]}`; `lines`:
    /// the input line number of each command (default 1, 2, 3, …).
    public func json(lines: [Int]? = nil) -> JSONValue {
        .object([("results", .array(results.enumerated().map { i, r in r.json(line: lines?[i] ?? i + 1) })),
                 ("fromSeq", .uint(fromSeq)), ("toSeq", .uint(toSeq)), ("changes", .array(changes.map(\.json)))])
    }
}

/// `before`, `after`, `saBenefitsBefore`, `saBenefitsAfter`.
private func beforeAfter(_ before: EffectivePermissions, _ after: EffectivePermissions) -> [(key: String, value: JSONValue)] {
    [("before", .strings(before.roles.map(\.rawValue))), ("after", .strings(after.roles.map(\.rawValue))),
     ("saBenefitsBefore", .strings(before.saBenefits.map(\.rawValue))), ("saBenefitsAfter", .strings(after.saBenefits.map(\.rawValue)))]
}
