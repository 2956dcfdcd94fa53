import Foundation
/// A UTC instant with one-second precision, as seconds since 1970-01-01T00:00:00Z.
///
/// Its text form is exactly `YYYY-MM-DDTHH:MM:SSZ` (ISO-8601, UTC); anything else is
/// refused by `init?(iso8601:)`.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Seconds since the Unix epoch.
    public var seconds: Int64

    /// Creates a timestamp `seconds` after the epoch.
    public init(seconds: Int64) { self.seconds = seconds }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.seconds < b.seconds }

    /// The earliest time the ledger accepts: 0001-01-01T00:00:00Z.
    public static let earliest = Timestamp(seconds: -62_135_596_800)
    /// The latest time the ledger accepts: 9999-12-31T23:59:59Z.
    public static let latest = Timestamp(seconds: 253_402_300_799)

    /// The current time, to the second (the system clock).
    public static var now: Timestamp { Timestamp(seconds: Int64(Date().timeIntervalSince1970.rounded(.down))) }

    /// Whether this instant is one the ledger accepts (`earliest` … `latest`, the times the
    /// text form can write); commands and imported events outside are refused as bad input.
    public var isInLedgerRange: Bool { self >= Self.earliest && self <= Self.latest }

    /// This instant moved by `delta` seconds, saturating at the ends of `Int64` (never traps).
    public func adding(seconds delta: Int64) -> Timestamp {
        let (sum, overflow) = seconds.addingReportingOverflow(delta)
        return Timestamp(seconds: overflow ? (delta > 0 ? .max : .min) : sum)
    }

    /// This instant moved back by `delta` seconds, saturating at the ends of `Int64`.
    public func subtracting(seconds delta: Int64) -> Timestamp {
        let (difference, overflow) = seconds.subtractingReportingOverflow(delta)
        return Timestamp(seconds: overflow ? (delta > 0 ? .min : .max) : difference)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SSZ` strictly (years 0001–9999, real calendar dates).
    public init?(iso8601 text: String) {
        let u = Array(text.utf8)
        guard u.count == 20, u[4] == 0x2D, u[7] == 0x2D, u[10] == 0x54, u[13] == 0x3A, u[16] == 0x3A, u[19] == 0x5A
        else { return nil }
        func num(_ range: Range<Int>) -> Int? {
            var v = 0
            for i in range {
                let d = Int(u[i]) - 48
                guard d >= 0, d <= 9 else { return nil }
                v = v * 10 + d
            }
            return v
        }
        guard let y = num(0 ..< 4), let mo = num(5 ..< 7), let d = num(8 ..< 10),
              let h = num(11 ..< 13), let mi = num(14 ..< 16), let s = num(17 ..< 19)
        else { return nil }
        guard y >= 1, (1 ... 12).contains(mo), d >= 1, d <= Self.daysIn(month: mo, year: y),
              h < 24, mi < 60, s < 60 else { return nil }
        let days = Self.daysFromCivil(y, mo, d)
        seconds = Int64(days) * 86400 + Int64(h * 3600 + mi * 60 + s)
    }

    /// The `YYYY-MM-DDTHH:MM:SSZ` form (outside `earliest` … `latest` the year has other
    /// than four digits, or a sign; never a trap).
    public var iso8601: String {
        var (q, r) = seconds.quotientAndRemainder(dividingBy: 86400)
        if r < 0 {
            q -= 1
            r += 86400
        }
        let days = Int(q), rem = Int(r)
        let (y, m, d) = Self.civilFromDays(days)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var year = String(y)
        while year.count < 4 { year = "0" + year }
        return "\(year)-\(two(m))-\(two(d))T\(two(rem / 3600)):\(two(rem % 3600 / 60)):\(two(rem % 60))Z"
    }

    public var description: String { iso8601 }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysIn(month m: Int, year y: Int) -> Int {
        switch m {
        case 2: return isLeap(y) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days.
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
