import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SegmentCore

/// The open archive of one source. Each `append` writes one complete gzip member
/// and fsyncs it before returning, so whatever a client was told is on disk, and the file is a
/// valid multi-member gzip after every append. The file grows in `<out>/.incoming/` (the loader
/// skips dot-folders) and `close` moves it into Segment's S3 layout,
/// `<out>/segment-logs/<source>/<received-day epoch ms>/<epoch ms>.<unique>.gz`, with an fsync
/// of the file and of both folders. `recover` finishes what a crashed process left.
public final class ArchiveSink {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public let out: String
    public let source: String
    private var fd: Int32 = -1
    private var incoming: String?
    /// The received day (epoch ms of its midnight, UTC) of the open archive.
    public private(set) var day: Int64 = 0
    /// Bytes in the open archive, and when it opened (epoch ms), for closing on size or age.
    public private(set) var bytes: Int64 = 0
    public private(set) var openedAt: Int64 = 0

    /// Told "write" once a member is written and "fsync" once it is on disk: the test seam
    /// that checks a request is acknowledged only after both.
    public var observe: ((String) -> Void)?
    /// The full-disk test seam (GroupCommitter.failWrites).
    var failWrites: (@Sendable () -> Bool)?

    /// True while an archive is open in `.incoming/`.
    public var isOpen: Bool { fd >= 0 }

    let gzipLevel: Int32

    public init(out: String, source: String, gzipLevel: Int32 = 6) {
        self.out = out
        self.source = source
        self.gzipLevel = gzipLevel
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    static func dayStart(_ ms: Int64) -> Int64 { ms - ((ms % 86_400_000) + 86_400_000) % 86_400_000 }

    /// Appends `lines` (NDJSON lines without their newline) as one gzip member, durably. An
    /// archive opened on an earlier received day is closed first.
    public func append(_ lines: [[UInt8]], nowMilliseconds now: Int64) throws {
        guard !lines.isEmpty else { return }
        if fd >= 0 && Self.dayStart(now) != day { try close() }
        if fd < 0 { try open(now: now) }
        var text: [UInt8] = []
        text.reserveCapacity(lines.reduce(0) { $0 + $1.count + 1 })
        for line in lines {
            text.append(contentsOf: line)
            text.append(0x0a)
        }
        let member = GzipMember.deflate(text, level: gzipLevel)
        do {
            try writeAll(member)
            observe?("write")
            guard fsync(fd) == 0 else { throw Failure(description: "fsync of \(incoming!) failed: \(String(cString: strerror(errno)))") }
            observe?("fsync")
        } catch {
            // A member written in part (a full disk) is cut off again, so the archive stays a
            // valid gzip and later members still read.
            _ = ftruncate(fd, off_t(bytes))
            _ = lseek(fd, off_t(bytes), SEEK_SET)
            throw error
        }
        bytes += Int64(member.count)
    }

    /// Moves the open archive into the S3 layout; returns where it went (nil when none was open).
    @discardableResult
    public func close() throws -> String? {
        guard fd >= 0, let path = incoming else { return nil }
        guard fsync(fd) == 0 else { throw Failure(description: "fsync of \(path) failed: \(String(cString: strerror(errno)))") }
        Glibc.close(fd)
        fd = -1
        incoming = nil
        return try Self.place(path, out: out)
    }

    private func open(now: Int64) throws {
        let folder = out + "/.incoming"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let unique = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        // The name says where the file goes: source, received day, open time, unique part.
        let path = folder + "/\(source)~\(Self.dayStart(now))~\(now)~\(unique).gz"
        fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
        try Self.syncFolder(folder)
        incoming = path
        day = Self.dayStart(now)
        openedAt = now
        bytes = 0
    }

    private func writeAll(_ data: [UInt8]) throws {
        if let failWrites, failWrites() {
            _ = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, data.count / 2) }
            throw Failure(description: "cannot write \(incoming!): No space left on device (the test seam)")
        }
        var written = 0
        while written < data.count {
            let n = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, data.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "cannot write \(incoming!): \(String(cString: strerror(errno)))")
            }
            written += n
        }
    }

    static func syncFolder(_ folder: String) throws {
        let dir = Glibc.open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { throw Failure(description: "cannot open \(folder): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(dir) }
        guard fsync(dir) == 0 else { throw Failure(description: "fsync of \(folder) failed: \(String(cString: strerror(errno)))") }
    }

    /// Moves an incoming file (named `<source>~<day>~<opened>~<unique>.gz`) into place.
    @discardableResult
    static func place(_ path: String, out: String) throws -> String {
        let name = (path as NSString).lastPathComponent
        let parts = name.dropLast(3).split(separator: "~")
        guard parts.count == 4 else { throw Failure(description: "\(path) is not a collector archive name") }
        let folder = out + "/segment-logs/\(parts[0])/\(parts[1])"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let target = folder + "/\(parts[2]).\(parts[3]).gz"
        guard rename(path, target) == 0 else { throw Failure(description: "cannot move \(path) to \(target): \(String(cString: strerror(errno)))") }
        try syncFolder(folder)
        try syncFolder((path as NSString).deletingLastPathComponent)
        return target
    }

    /// After a crash: each file left in `<out>/.incoming/` is cut after its last complete gzip
    /// member (a member cut short was never acknowledged) and moved into place; one with no
    /// complete member is removed. Returns the archives placed.
    @discardableResult
    public static func recover(out: String) throws -> [String] {
        let folder = out + "/.incoming"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        var placed: [String] = []
        for name in names.sorted() where name.hasSuffix(".gz") {
            let path = folder + "/" + name
            let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            let keep = GzipMember.completeLength(of: data)
            if keep == 0 {
                try FileManager.default.removeItem(atPath: path)
                continue
            }
            if keep < data.count {
                guard truncate(path, off_t(keep)) == 0 else { throw Failure(description: "cannot cut \(path): \(String(cString: strerror(errno)))") }
                let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
                if fd >= 0 { fsync(fd); Glibc.close(fd) }
            }
            try place(path, out: out)
            placed.append(name)
        }
        return placed
    }
}
