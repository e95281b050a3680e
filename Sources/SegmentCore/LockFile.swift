import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One run per warehouse: an exclusive `flock` on `<warehouse>.lock`, held until the process
/// ends. The kernel drops the lock when its holder dies, however it dies, so a lock left by a
/// killed run never blocks the next one. The file says who holds it (pid, start time, command),
/// for the message the second run prints.
public final class WarehouseLock: Sendable {
    public struct Held: Error, Sendable, CustomStringConvertible {
        public var lockPath: String
        /// What the holder wrote into the lock file: `pid=... started=... command=...`.
        public var holder: String
        public var pid: Int32?
        /// `holder` as read from the lock file (empty: it said nothing).
        package init(lockPath: String, holder: String) {
            self.lockPath = lockPath
            self.holder = holder.isEmpty ? "no details" : holder
            pid = holder.split(separator: " ").first { $0.hasPrefix("pid=") }.flatMap { Int32($0.dropFirst(4)) }
        }

        public var description: String {
            let who = pid.map { "process \($0)" } ?? "another process"
            return "another run holds the lock on this warehouse: \(who) (\(holder)); lock file \(lockPath). Wait for it to finish, or stop it."
        }
    }

    public let path: String
    private let fd: Int32

    /// Takes the lock or throws `Held` at once (never waits).
    public init(database: String, command: String = CommandLine.arguments.joined(separator: " ")) throws {
        path = database + ".lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw WarehouseError(message: "cannot create the lock file \(path): \(String(cString: strerror(errno))); the warehouse's folder must be writable", storage: true)
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let busy = errno == EWOULDBLOCK
            let holder = Self.read(fd)
            close(fd)
            guard busy else { throw WarehouseError(message: "cannot lock \(path): \(String(cString: strerror(errno)))") }
            throw Held(lockPath: path, holder: holder)
        }
        self.fd = fd
        let started = Timestamp.format(Instant(date: Date()))
        let text = "pid=\(getpid()) started=\(started) command=\(command)\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// Throws `Held` when a run holds the lock, without creating a lock file where there is
    /// none (for a command that will refuse a warehouse that does not exist yet).
    public static func throwIfHeld(database: String) throws {
        let fd = open(database + ".lock", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) != 0 else {
            flock(fd, LOCK_UN)
            return
        }
        guard errno == EWOULDBLOCK else { return }
        throw Held(lockPath: database + ".lock", holder: read(fd))
    }

    private static func read(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return "" }
        return String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    deinit {
        // The file stays (removing it would race with a run that just opened it); the lock goes.
        flock(fd, LOCK_UN)
        close(fd)
    }
}
