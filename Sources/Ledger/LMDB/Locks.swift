#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A process-local reader-writer lock (pthread), used to gate LMDB transactions so the
/// map can be resized only while no transaction of this process is open.
///
/// `@unchecked Sendable`: the pthread lock is heap-allocated once, never moved, and
/// pthread locks are designed to be shared between threads.
final class ReadWriteLock: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        pthread_rwlock_init(lock, nil)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func withReadLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    func withWriteLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}

/// A plain mutex (pthread) usable from synchronous code on any thread.
///
/// `@unchecked Sendable` for the same reason as `ReadWriteLock`.
final class PlainMutex: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// The transactions the current thread holds open, per environment: LMDB transactions of
/// one environment are not reentrant here (a write begun inside a read or write closure of
/// the same environment on the same thread would wait for the gate it holds when the map
/// must grow, or for the writer lock it holds), so such a write is refused with an error
/// instead, as GRDB refuses a reentrant `write`.
enum ThreadTransactions {
    /// Per-thread counts of open transactions, keyed by environment.
    final class Counts {
        var open: [ObjectIdentifier: Int] = [:]
    }

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { pointer in
            guard let pointer else { return }
            Unmanaged<Counts>.fromOpaque(pointer).release()
        }
        return k
    }()

    private static var counts: Counts {
        if let p = pthread_getspecific(key) { return Unmanaged<Counts>.fromOpaque(p).takeUnretainedValue() }
        let made = Counts()
        pthread_setspecific(key, Unmanaged.passRetained(made).toOpaque())
        return made
    }

    /// Whether this thread holds a transaction of `environment` open.
    static func holds(_ environment: ObjectIdentifier) -> Bool { (counts.open[environment] ?? 0) > 0 }

    /// Runs `body` counted as a transaction of `environment` open on this thread.
    static func within<R>(_ environment: ObjectIdentifier, _ body: () throws -> R) rethrows -> R {
        let c = counts
        c.open[environment, default: 0] += 1
        defer {
            if let n = c.open[environment], n > 1 { c.open[environment] = n - 1 } else { c.open[environment] = nil }
        }
        return try body()
    }
}
