import Foundation
import PostgresNIO

/// Where the shared log lives: a PostgreSQL server and database, parsed from a URL of the
/// form `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (`postgresql://` too). TLS is not
/// used: the deployment this package targets keeps PostgreSQL on a private network.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    /// Host name or address.
    public var host: String
    /// TCP port (5432 when the URL has none).
    public var port: Int
    /// User name.
    public var username: String
    /// Password, if any.
    public var password: String?
    /// Database name.
    public var database: String

    /// Creates a location from its parts.
    public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `url`; throws `SharedLogError.invalidURL` naming what is wrong.
    public init(url: String) throws {
        guard let c = URLComponents(string: url), let scheme = c.scheme else {
            throw SharedLogError.invalidURL(url: Self.redacted(url), problem: "not a URL")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw SharedLogError.invalidURL(url: Self.redacted(url), problem: "the scheme must be postgres:// or postgresql://, not \(scheme)://")
        }
        guard let host = c.host, !host.isEmpty else {
            throw SharedLogError.invalidURL(url: Self.redacted(url), problem: "no host")
        }
        guard let user = c.user, !user.isEmpty else {
            throw SharedLogError.invalidURL(url: Self.redacted(url), problem: "no user (postgres://USER@HOST/DATABASE)")
        }
        let db = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        guard !db.isEmpty, !db.contains("/") else {
            throw SharedLogError.invalidURL(url: Self.redacted(url), problem: "no database name (postgres://USER@HOST/DATABASE)")
        }
        if let port = c.port, !(1...65535).contains(port) {
            throw SharedLogError.invalidURL(url: Self.redacted(url), problem: "port \(port) is out of range")
        }
        self.init(host: host, port: c.port ?? 5432, username: user, password: c.password, database: db)
    }

    /// The URL with any password replaced by `***` (safe to print and log).
    public var description: String {
        "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
    }

    static func redacted(_ url: String) -> String {
        guard var c = URLComponents(string: url), c.password != nil else { return url }
        c.password = "***"
        return c.string ?? "(unprintable URL)"
    }

    var configuration: PostgresConnection.Configuration {
        PostgresConnection.Configuration(host: host, port: port, username: username, password: password,
                                         database: database, tls: .disable)
    }
}
