import CLMDB
import Foundation

extension LMDBEnvironment {
    /// Writes a compacted copy of the environment into the new, empty directory `directory`
    /// (`mdb_env_copy2` with `MDB_CP_COMPACT`: live pages only, renumbered, so no freed page
    /// of this file — and none of the bytes it still holds — reaches the copy) and flushes it
    /// to disk. The copy is a consistent snapshot of the last commit; writers may go on
    /// meanwhile (exclude them to copy a particular state).
    public func copyCompacted(toDirectory directory: String) throws {
        try gate.withReadLock {
            try LMDBError.check(mdb_env_copy2(env, directory, UInt32(MDB_CP_COMPACT)), "mdb_env_copy2(\(directory), compact)")
        }
        try Self.flush(file: directory + "/data.mdb")
        try Self.flush(directory: directory)
    }

    /// `fsync` of a file by path.
    static func flush(file path: String) throws {
        let fd = Foundation.open(path, O_RDONLY)
        guard fd >= 0 else { throw LMDBError(code: errno, operation: "open(\(path))") }
        defer { close(fd) }
        if fsync(fd) != 0 { throw LMDBError(code: errno, operation: "fsync(\(path))") }
    }

    /// `fsync` of a directory, so that names made or removed in it survive a power cut.
    public static func flush(directory path: String) throws {
        let fd = Foundation.open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw LMDBError(code: errno, operation: "open(\(path))") }
        defer { close(fd) }
        if fsync(fd) != 0 { throw LMDBError(code: errno, operation: "fsync(\(path))") }
    }
}
