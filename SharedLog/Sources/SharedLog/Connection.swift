import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// A FIFO lock for async code: holders run one at a time, across suspension points.
actor AsyncLock {
    private var locked = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func lock() async {
        if !locked {
            locked = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func unlock() {
        if waiters.isEmpty { locked = false } else { waiters.removeFirst().resume() }
    }

    nonisolated func withLock<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        await lock()
        do {
            let r = try await body()
            await unlock()
            return r
        } catch {
            await unlock()
            throw error
        }
    }
}

/// One PostgreSQL connection used by one task at a time (a transaction's statements must
/// not interleave with another caller's), opened lazily and reopened after it breaks.
final class SerialConnection: Sendable {
    private let location: PostgresLocation
    private let logger: Logger
    private let lock = AsyncLock()
    private let state = Mutex<PostgresConnection?>(nil)
    private static let ids = Mutex<Int>(0)

    init(location: PostgresLocation, logger: Logger) {
        self.location = location
        self.logger = logger
    }

    /// Runs `body` with the connection, holding it exclusively. A connection-level failure
    /// (refused, reset, closed) becomes `SharedLogError.unavailable` and drops the
    /// connection so the next call reconnects; a server error becomes `.server`.
    func run<R: Sendable>(_ body: (PostgresConnection) async throws -> R) async throws -> R {
        try await lock.withLock {
            let connection = try await connected()
            do {
                return try await body(connection)
            } catch let error as SharedLogError {
                throw error
            } catch {
                if connection.isClosed || !Self.isServerError(error) {
                    state.withLock { $0 = nil }
                    try? await connection.close()
                    throw SharedLogError.unavailable(Self.describe(error))
                }
                throw SharedLogError.server(Self.describe(error))
            }
        }
    }

    deinit {
        // Dropped without `close()`: close the connection in the background (the task keeps
        // it alive until it is closed, as PostgresNIO requires).
        if let c = state.withLock({ $0 }) {
            Task { try? await c.close() }
        }
    }

    /// Closes the connection (the next `run` reconnects).
    func close() async {
        let c = state.withLock { c in
            defer { c = nil }
            return c
        }
        try? await c?.close()
    }

    private func connected() async throws -> PostgresConnection {
        if let c = state.withLock({ $0 }), !c.isClosed { return c }
        let id = Self.ids.withLock { n in
            n += 1
            return n
        }
        do {
            let configuration = location.configuration
            let logger = logger
            let c = try await withDeadline(.seconds(10), {
                try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger)
            }, late: { c in try? await c.close() })
            state.withLock { $0 = c }
            return c
        } catch {
            throw SharedLogError.unavailable("can't connect to \(location): \(Self.describe(error))")
        }
    }

    /// True when PostgreSQL answered with an error and the session goes on: not a FATAL
    /// or PANIC one, nor SQLSTATE class 08 (connection exception), 53 (insufficient
    /// resources) or 57 (operator intervention, e.g. a shutdown) — those mean unavailable.
    static func isServerError(_ error: any Error) -> Bool {
        guard let e = error as? PSQLError, let info = e.serverInfo else { return false }
        if let severity = info[.severity], severity == "FATAL" || severity == "PANIC" { return false }
        if let state = info[.sqlState], ["08", "53", "57"].contains(String(state.prefix(2))) { return false }
        return true
    }

    /// The server's SQLSTATE, when PostgreSQL answered with an error.
    static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }

    /// A one-line description (PSQLError's default one hides the server's message).
    static func describe(_ error: any Error) -> String {
        if let e = error as? PSQLError {
            if let info = e.serverInfo {
                return "\(info[.sqlState] ?? "?"): \(info[.message] ?? "\(e.code)")"
            }
            if let underlying = e.underlying { return "\(e.code): \(underlying)" }
            return "\(e.code)"
        }
        return "\(error)"
    }
}

/// Runs `operation` in its own task and returns its result, or throws
/// `SharedLogError.unavailable` when it has not finished within `timeout`. Unlike a task
/// group, it does not wait for an operation that never finishes: PostgresNIO can lose a
/// query written just as its connection closes (its promise is never completed), and a
/// connection attempt the server abandons mid-handshake can hang the same way. A result
/// that arrives too late is handed to `late` (to close a connection, say).
func withDeadline<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T,
                               late: @escaping @Sendable (T) async -> Void = { _ in }) async throws -> T {
    let once = Once<T>()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        once.set(continuation)
        let work = Task {
            do {
                let value = try await operation()
                if let k = once.take() { k.resume(returning: value) } else { await late(value) }
            } catch {
                once.take()?.resume(throwing: error)
            }
        }
        Task {
            try? await Task.sleep(for: timeout)
            if let k = once.take() {
                work.cancel()
                k.resume(throwing: SharedLogError.unavailable("PostgreSQL gave no answer within \(timeout)"))
            }
        }
    }
}

/// A continuation resumed at most once, by whoever takes it first.
private final class Once<T: Sendable>: Sendable {
    private let slot = Mutex<CheckedContinuation<T, any Error>?>(nil)
    func set(_ k: CheckedContinuation<T, any Error>) { slot.withLock { $0 = k } }
    func take() -> CheckedContinuation<T, any Error>? {
        slot.withLock { k in
            defer { k = nil }
            return k
        }
    }
}

extension PostgresConnection {
    /// Runs `query` and collects its rows, failing with `SharedLogError.unavailable` if no
    /// answer comes within `timeout` (see `withDeadline`). Every statement of the shared
    /// log goes through here.
    func rows(_ query: PostgresQuery, logger: Logger, timeout: Duration = .seconds(15)) async throws -> [PostgresRow] {
        if isClosed { throw SharedLogError.unavailable("the connection to PostgreSQL is closed") }
        return try await withDeadline(timeout) { [self] in
            try await self.query(query, logger: logger).collect()
        }
    }
}
