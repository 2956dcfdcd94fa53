import CLMDB
import Foundation

extension LMDBEnvironment {
    /// `fsync` of a directory, so that names made or removed in it survive a power cut.
    public static func flush(directory path: String) throws {
        let fd = Foundation.open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw LMDBError(code: errno, operation: "open(\(path))") }
        defer { close(fd) }
        if fsync(fd) != 0 { throw LMDBError(code: errno, operation: "fsync(\(path))") }
    }
}
