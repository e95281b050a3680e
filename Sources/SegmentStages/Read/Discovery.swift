import Foundation
import SegmentCore
import SegmentS3

/// An input file found under the paths of a run.
public struct Archive: Sendable, Hashable {
    /// Absolute, standardised path: the archive's identity and its rank among duplicates.
    public var path: String
    public var format: ArchiveFormat
    public var size: Int64
    /// From Segment's S3 layout `segment-logs/<source-id>/<received-day>/<name>`.
    public var sourceId: String?
    /// `YYYY-MM-DD` (UTC) of the layout's epoch-milliseconds day folder.
    public var day: String?
    /// An S3 object's ETag (its path is then its `s3://` URL): with the key and size, what
    /// tells a run that the object is loaded already without reading it.
    public var etag: String?
    /// Where its bytes are.
    public var source: ArchiveSource = .file
}

/// Where an archive's bytes are: a local file, or an S3 object (whose path is its `s3://` URL).
public enum ArchiveSource: Sendable, Hashable {
    case file
    case s3Object

    /// The source of an archive known only by its path (a `_rejects.file`, a fuzz input).
    public init(path: String) { self = S3Location.isURL(path) ? .s3Object : .file }
}

/// A file that is not an archive, and why (skipped and reported, not an error).
public struct SkippedFile: Sendable, Hashable {
    public var path: String
    public var reason: String

    package init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// Finds archives under files and directories (recursively), decides gzip or NDJSON from the
/// first bytes, and recognises Segment's S3 layout.
public enum Discovery {
    public struct Result: Sendable {
        public var archives: [Archive]
        public var skipped: [SkippedFile]

        public init(archives: [Archive] = [], skipped: [SkippedFile] = []) {
            self.archives = archives
            self.skipped = skipped
        }
    }

    /// Archives under local paths and `s3://` URLs (listed with `objects`, which is needed
    /// only when there is such a URL).
    public static func find(_ paths: [String], objects: S3Client? = nil, keepDay: ((String) -> Bool)? = nil) throws -> Result {
        let fm = FileManager.default
        var archives: [Archive] = []
        var skipped: [SkippedFile] = []
        var seen = Set<String>()
        for given in paths {
            if let location = S3Location(given) {
                guard let objects else { throw ReadError(path: given, message: "an s3:// source, and no S3 access was set up") }
                let found = try find(location, objects: objects, keepDay: keepDay)
                for archive in found.archives where seen.insert(archive.path).inserted { archives.append(archive) }
                for file in found.skipped where seen.insert(file.path).inserted { skipped.append(file) }
                continue
            } else if S3Location.isURL(given) {
                throw ReadError(path: given, message: "not an S3 location: write s3://BUCKET/PREFIX")
            }
            let absolute = URL(fileURLWithPath: given).standardizedFileURL.path
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: absolute, isDirectory: &isDirectory) else {
                throw ReadError(path: given, message: "no such file or directory" + (S3Location.misspelling(given).map { "; \($0)" } ?? ""))
            }
            var files: [String] = []
            if isDirectory.boolValue {
                guard let walker = fm.enumerator(atPath: absolute) else {
                    throw ReadError(path: given, message: "cannot list the directory")
                }
                while let relative = walker.nextObject() as? String {
                    let full = absolute + "/" + relative
                    let name = (relative as NSString).lastPathComponent
                    var dir: ObjCBool = false
                    guard fm.fileExists(atPath: full, isDirectory: &dir) else { continue }
                    if dir.boolValue {
                        // Hidden folders (.git, and the collector's .incoming/ with the archives
                        // it is still writing) are not searched, as path globs do not.
                        if name.hasPrefix(".") { walker.skipDescendants() }
                    } else if !name.hasPrefix(".") {  // .DS_Store, editor files
                        files.append(full)
                    }
                }
            } else {
                files.append(absolute)
            }
            for file in files where seen.insert(file).inserted { classify(file, into: &archives, skipped: &skipped) }
        }
        archives.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        skipped.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        return Result(archives: archives, skipped: skipped)
    }

    /// The objects under an S3 location: the prefix names a "folder" (`s3://b/segment-logs`
    /// holds `segment-logs/...`, not `segment-logs-old/...`) or one object. Keys with a hidden
    /// segment (`.incoming/`, `.DS_Store`) and folder markers (keys ending in `/`) are left out,
    /// as hidden files and folders are on disk. The format is decided from an object's first
    /// bytes when it is read; until then it is guessed from the name. A location with no
    /// object is an error, as a folder that does not exist is (one whose objects are all in day
    /// folders `keepDay` leaves out is a quiet night, not an error).
    public static func find(_ location: S3Location, objects: S3Client, keepDay: ((String) -> Bool)? = nil) throws -> Result {
        let (listed, skippedFolders) = try objects.list(location, keepDay: keepDay)
        let prefix = location.prefix
        let folder = prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
        var archives: [Archive] = []
        var skipped: [SkippedFile] = []
        var inLocation = 0
        for object in listed {
            guard object.key == prefix || object.key.hasPrefix(folder) else { continue }
            inLocation += 1
            if object.key.hasSuffix("/") { continue }
            let relative = object.key == prefix ? String(object.key.split(separator: "/").last ?? "") : String(object.key.dropFirst(folder.count))
            if relative.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
            let path = "s3://\(location.bucket)/\(object.key)"
            if object.size == 0 {
                skipped.append(SkippedFile(path: path, reason: "empty file"))
                continue
            }
            let layout = s3Layout(path)
            archives.append(Archive(path: path, format: object.key.hasSuffix(".gz") ? .gzip : .ndjson, size: object.size,
                                    sourceId: layout?.source, day: layout?.day, etag: object.etag, source: .s3Object))
        }
        if inLocation == 0 && skippedFolders == 0 {
            throw S3Error(kind: .missing, message: "\(location): no such prefix: bucket \(location.bucket) has no object under \(prefix.isEmpty ? "it" : prefix)")
        }
        archives.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        return Result(archives: archives, skipped: skipped)
    }

    /// Files that match a path glob (`*` within a folder, `**` across folders), found under
    /// the glob's literal leading folders; hidden files are left out.
    public static func find(glob: Glob) throws -> Result {
        let fm = FileManager.default
        var base = glob.literalPrefix
        if base.isEmpty { base = "/" }
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: base, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ReadError(path: base, message: "no such directory (it starts the pattern \(glob.pattern))")
        }
        guard let walker = fm.enumerator(atPath: base) else { throw ReadError(path: base, message: "cannot list the directory") }
        var archives: [Archive] = []
        var skipped: [SkippedFile] = []
        let prefix = base.hasSuffix("/") ? base : base + "/"
        while let relative = walker.nextObject() as? String {
            let full = prefix + relative
            if relative.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
            guard glob.matches(full) else { continue }
            var dir: ObjCBool = false
            if fm.fileExists(atPath: full, isDirectory: &dir), !dir.boolValue {
                classify(full, into: &archives, skipped: &skipped)
            }
        }
        archives.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        skipped.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        return Result(archives: archives, skipped: skipped)
    }

    package static func classify(_ file: String, into archives: inout [Archive], skipped: inout [SkippedFile]) {
        switch sniff(file) {
        case .archive(let format, let size):
            let layout = s3Layout(file)
            archives.append(Archive(path: file, format: format, size: size, sourceId: layout?.source, day: layout?.day))
        case .notArchive(let reason):
            skipped.append(SkippedFile(path: file, reason: reason))
        }
    }

    package enum Sniffed {
        case archive(ArchiveFormat, Int64)
        case notArchive(String)
    }

    /// gzip when the file starts with 0x1f 0x8b; NDJSON when its first non-blank byte (after
    /// an optional BOM) is `{`; anything else is not an archive.
    package static func sniff(_ path: String) -> Sniffed {
        // Only regular files (or links to them) are opened: open() on a FIFO waits for a
        // writer forever, and a device or socket is no archive.
        var info = stat()
        guard stat(path, &info) == 0 else { return .notArchive("cannot be read (\(String(cString: strerror(errno))))") }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFIFO: return .notArchive("a FIFO (named pipe), not a regular file")
        case S_IFSOCK: return .notArchive("a socket, not a regular file")
        case S_IFCHR, S_IFBLK: return .notArchive("a device, not a regular file")
        default: return .notArchive("not a regular file")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { return .notArchive("cannot be opened") }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 4096)) ?? Data()
        let size = (try? handle.seekToEnd()).map { Int64($0) } ?? Int64(head.count)
        return [UInt8](head).withUnsafeBytes { bytes in
            switch sniff(head: bytes, whole: head.count < 4096) {
            case .archive(let format, _): return .archive(format, size)
            case .notArchive(let reason): return .notArchive(reason)
            }
        }
    }

    /// The decision from a file's first bytes (`whole`: they are all of it). The size in an
    /// `.archive` answer is the head's.
    package static func sniff(head bytes: UnsafeRawBufferPointer, whole: Bool) -> Sniffed {
        if bytes.isEmpty { return .notArchive("empty file") }
        if bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b { return .archive(.gzip, Int64(bytes.count)) }
        var i = 0
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { i = 3 }
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0a || bytes[i] == 0x0d { i += 1 }
        if i < bytes.count && bytes[i] == UInt8(ascii: "{") { return .archive(.ndjson, Int64(bytes.count)) }
        if i == bytes.count && whole { return .notArchive("blank file") }
        return .notArchive("neither gzip nor newline-delimited JSON")
    }

    /// `<...>/<source-id>/<day>/<name>` where `<day>` is a UTC midnight in epoch milliseconds.
    public static func s3Layout(_ path: String) -> (source: String, day: String)? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count >= 3, let day = DayFolder.day(of: parts[parts.count - 2]) else { return nil }
        return (String(parts[parts.count - 3]), day)
    }
}
