import Foundation
import Projections

/// What can go wrong with the shared log. Each case has a stable `code`.
public enum SharedLogError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The PostgreSQL URL can't be used.
    case invalidURL(url: String, problem: String)
    /// The shared log's name is not a plain lower-case identifier.
    case invalidName(String)
    /// PostgreSQL can't be reached (or the connection broke). Reads of the local replica
    /// still work; writes can be retried later (with the same command id, exactly once).
    case unavailable(String)
    /// Other hosts kept appending first: the command was decided again `attempts` times and
    /// every append met a newer head.
    case tooManyConflicts(attempts: Int)
    /// The replica and the shared log disagree about an event at or below the replica's
    /// head (the replica was written outside the shared log, or one of them was altered).
    case diverged(seq: UInt64, problem: String)
    /// A row of the shared log is not a well-formed event.
    case corruptRow(seq: Int64, problem: String)
    /// PostgreSQL refused a statement.
    case server(String)
    /// A format-2 replica was opened without the cluster key its vault items are sealed under.
    case clusterKeyMissing
    /// A vault item of the shared log does not open under this host's cluster key.
    case personalData(String)

    /// A stable code.
    public var code: String {
        switch self {
        case .invalidURL: return "invalidPostgresURL"
        case .invalidName: return "invalidSharedLogName"
        case .unavailable: return "sharedLogUnavailable"
        case .tooManyConflicts: return "tooManyConflicts"
        case .diverged: return "replicaDiverged"
        case .corruptRow: return "corruptSharedLogRow"
        case .server: return "sharedLogServerError"
        case .clusterKeyMissing: return "clusterKeyMissing"
        case .personalData: return "invalidClusterKey"
        }
    }

    public var description: String {
        switch self {
        case let .invalidURL(url, problem): return "\(code): '\(url)': \(problem)"
        case let .invalidName(name): return "\(code): '\(name)' must be 1–40 characters of a–z, 0–9 and _, starting with a letter"
        case let .unavailable(why): return "\(code): PostgreSQL is unreachable (\(why)); local reads still work, retry the write later"
        case let .tooManyConflicts(n): return "\(code): the shared log moved on \(n) times in a row while this command was decided; retry"
        case let .diverged(seq, problem): return "\(code): at seq \(seq): \(problem)"
        case let .corruptRow(seq, problem): return "\(code): row seq \(seq): \(problem)"
        case let .server(message): return "\(code): \(message)"
        case .clusterKeyMissing: return "\(code): a format-2 replica needs the cluster key its personal data is sealed under in PostgreSQL (the same 32-byte file on every host: --cluster-key-file, or DB/cluster.key)"
        case let .personalData(message): return "\(code): \(message)"
        }
    }
}
