#if canImport(Glibc)
import Glibc
#endif

/// Why a database cannot be used as a warehouse.
public struct WarehouseError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// The warehouse or its lock file cannot be written (permissions, read-only file system,
    /// full disk), as opposed to a database that is refused.
    public var storage = false
    public var description: String { message }

    public init(message: String, storage: Bool = false) {
        self.message = message
        self.storage = storage
    }
}

/// The run's own files beside the warehouse (message-id runs, spills) could not be written or
/// read: the disk, not the data. The run stops (exit 74); the next run removes what is left.
package struct TemporaryStorageError: Error, Sendable, CustomStringConvertible {
    package var path: String
    package var message: String
    package var description: String { "\(path): \(message)" }

    package init(path: String, message: String) {
        self.path = path
        self.message = message
    }
}

/// Bytes an unprivileged writer may still use on the file system of `folder` (nil if unknown).
package func freeBytes(in folder: String) -> Int64? {
    var stats = statvfs()
    guard statvfs(folder.isEmpty ? "." : folder, &stats) == 0 else { return nil }
    return Int64(stats.f_bavail) * Int64(stats.f_frsize)
}
