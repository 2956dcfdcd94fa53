import CLMDB
import Foundation

extension LMDBEnvironment {
    /// Makes `directory/data.mdb` appear whole or not at all.
    ///
    /// LMDB creates a new data file by writing its two meta pages without a flush; a power
    /// cut before the first flush can leave a file whose first sector was lost and the rest
    /// kept, which no later open accepts ("File is not an LMDB file"), though nothing in it was
    /// ever acknowledged (found by the power-loss suite). So a new data file is made beside
    /// the target under a temporary name, flushed, and linked into place: `link` is atomic and
    /// never replaces a data file another process created meanwhile (then that one is used).
    /// The directory is flushed so the name survives a power cut too. A process killed
    /// midway leaves at most a hidden `.…creating.data.mdb` file, which nothing reads.
    static func createDataFileAtomically(in directory: String) throws {
        let target = directory + "/data.mdb"
        // an existing file, or no directory (mdb_env_open then says so, naming the path)
        if access(target, F_OK) == 0 || access(directory, F_OK) != 0 { return }
        let temporary = directory + "/.\(UUID().uuidString.lowercased()).creating.data.mdb"
        defer {
            unlink(temporary)
            unlink(temporary + "-lock")
        }
        var handle: OpaquePointer?
        try LMDBError.check(mdb_env_create(&handle), "mdb_env_create")
        guard let env = handle else { throw LMDBError(code: ENOMEM, operation: "mdb_env_create") }
        defer { mdb_env_close(env) }
        try LMDBError.check(mdb_env_open(env, temporary, UInt32(MDB_NOSUBDIR), 0o600), "mdb_env_open(\(temporary))")
        try LMDBError.check(mdb_env_sync(env, 1), "fdatasync(\(temporary))")
        if link(temporary, target) != 0 && errno != EEXIST {
            throw LMDBError(code: errno, operation: "link(\(temporary), \(target))")
        }
        try flush(directory: directory)
    }
}
