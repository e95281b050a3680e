#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SegmentCore
import SegmentS3

/// What kind of file an archive is, decided from its first bytes, never its name.
public enum ArchiveFormat: String, Sendable {
    case gzip
    case ndjson
}

/// An object whose first bytes are neither gzip nor JSON: skipped and reported, as such a
/// local file is by `Discovery`.
public struct NotAnArchive: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// A file-level problem: the file cannot be read at all.
public struct ReadError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String

    package init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }
}

/// What reading a whole archive found, besides its lines.
public struct ReadOutcome: Sendable {
    public var sha256: String
    public var size: Int64
    /// Newline-delimited lines, blank ones included.
    public var physicalLines: Int
    /// Set when the data stopped early (corrupt or truncated gzip): lines before it were read.
    public var streamError: String?
    /// Bytes of (inflated) NDJSON read.
    public var inflatedBytes: Int64 = 0
    /// Time spent inflating, in nanoseconds.
    public var inflateNanoseconds: UInt64 = 0
    /// With corrupt gzip data: the first line of the member that failed. Its lines (and a line
    /// that started in the member before) hold bytes zlib produced from corrupt input.
    public var corruptFromLine: Int?
}

/// Lines that must not be loaded as they read: from `fromLine` on (a corrupt gzip member
/// found by an earlier read of the same bytes), each comes with `reason` as its problem.
public struct Distrust: Sendable, Equatable {
    public var fromLine: Int
    public var reason: String
    public var kind: RejectKind = .corruptMember

    package init(fromLine: Int, reason: String, kind: RejectKind = .corruptMember) {
        self.fromLine = fromLine
        self.reason = reason
        self.kind = kind
    }
}

/// One line handed to the caller: its 1-based number and bytes (CR, LF and a leading BOM
/// removed). `problem` is set for a line that cannot be used as it stands.
public struct LineProblem: Sendable, Equatable {
    public var kind: RejectKind
    public var reason: String

    package init(kind: RejectKind, reason: String) {
        self.kind = kind
        self.reason = reason
    }
}

/// Streams the lines of an archive: reads the file in large blocks, inflates gzip members as
/// they come, splits on LF, and hashes the raw bytes on the way (SHA-256 for `_files`).
public struct ArchiveReader: Sendable {
    public var maxLineBytes: Int
    public var blockSize: Int

    /// A gzip file that inflates to more than this many times its compressed size (once past
    /// `bombFloor` bytes) is refused as a likely gzip bomb. Segment's NDJSON compresses about
    /// 10:1; every line has a random messageId, which keeps any real file far below 200:1,
    /// while a bomb reaches 1000:1.
    public var maxInflateRatio: Int64 = 200
    public var bombFloor: Int64 = 64 << 20
    /// Reads archives whose paths are `s3://` URLs.
    public var objects: S3Client?

    public init(maxLineBytes: Int = 1 << 20, blockSize: Int = 1 << 20) {
        self.maxLineBytes = maxLineBytes
        self.blockSize = blockSize
    }

    /// Calls `body` for every non-blank line (its number, its bytes, and a problem when the line
    /// is too long or torn by the end of a damaged gzip stream; such a line's bytes are what
    /// could be read of it, cut to `maxLineBytes`).
    /// With `hashing: false` the outcome's `sha256` is empty (for a caller that hashed already).
    public func read(
        path: String, format: ArchiveFormat, source: ArchiveSource? = nil, hashing: Bool = true, onBlock: (Int) -> Void = { _ in },
        distrust: Distrust? = nil, onMemberStart: (Int) -> Void = { _ in },
        body: (Int, UnsafeBufferPointer<UInt8>, LineProblem?) throws -> Void
    ) throws -> ReadOutcome {
        var splitter = LineSplitter(maxLineBytes: maxLineBytes)
        splitter.distrust = distrust
        // An object's kind is known only from its first bytes, which come with its first block.
        let source = source ?? ArchiveSource(path: path)
        var sniffing = source == .s3Object
        var inflater = format == .gzip && !sniffing ? Inflater() : nil
        var memberFirstLine = 1
        var corruptFromLine: Int?
        var streamError: String?
        var compressed: Int64 = 0
        var refusedAsBomb = false
        let (ratio, floor) = (maxInflateRatio, bombFloor)
        let (sha256, size) = try blocks(path: path, source: source, hashing: hashing) { bytes in
            if sniffing {
                sniffing = false
                switch Discovery.sniff(head: bytes, whole: false) {
                case .archive(.gzip, _): inflater = Inflater()
                case .archive(.ndjson, _): break
                case .notArchive(let reason): throw NotAnArchive(path: path, reason: reason)
                }
            }
            onBlock(bytes.count)
            compressed += Int64(bytes.count)
            if streamError != nil { return }
            if let inflater {
                do {
                    try inflater.inflate(bytes, onMemberStart: {
                        memberFirstLine = splitter.lineNumber + 1
                        onMemberStart(memberFirstLine)
                    }) { out in
                        try splitter.feed(out, body: body)
                        if splitter.bytes > floor && splitter.bytes > ratio * compressed {
                            refusedAsBomb = true
                            throw InflateError(
                                message: "refused as a likely gzip bomb: \(splitter.bytes >> 20) MiB inflated from \(compressed >> 10) KiB, more than \(ratio) times; the rest of the file is not read",
                                compressedOffset: compressed)
                        }
                    }
                } catch let error as InflateError {
                    streamError = error.description
                    if error.corrupt { corruptFromLine = memberFirstLine }
                }
            } else {
                try splitter.feed(bytes.assumingMemoryBound(to: UInt8.self), body: body)
            }
        }
        if streamError == nil, let inflater {
            do { try inflater.finish() } catch let error as InflateError { streamError = error.description }
        }
        let torn = refusedAsBomb
            ? LineProblem(kind: .bomb, reason: "cut where the file was refused as a likely gzip bomb")
            : LineProblem(kind: .torn, reason: "torn line: the gzip stream stopped in the middle of it")
        try splitter.finish(tornBy: streamError != nil ? torn : nil, body: body)
        return ReadOutcome(sha256: sha256, size: size, physicalLines: splitter.lineNumber, streamError: streamError,
                           inflatedBytes: splitter.bytes, inflateNanoseconds: inflater?.nanoseconds ?? 0,
                           corruptFromLine: corruptFromLine)
    }

    /// SHA-256 of a file's bytes as hex, and its size.
    public static func sha256(path: String) throws -> (String, Int64) {
        try hashBlocks(path: path, blockSize: 1 << 20) { _ in }
    }

    /// The bytes of a file, or of an S3 object (`path` is then its `s3://` URL), block by block,
    /// hashed on the way.
    private func blocks(path: String, source: ArchiveSource, hashing: Bool, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> (String, Int64) {
        guard source == .s3Object else { return try Self.hashBlocks(path: path, blockSize: blockSize, hashing: hashing, body) }
        guard let objects else { throw ReadError(path: path, message: "an s3:// archive, and the run has no S3 access set up") }
        var hasher = SHA256Hasher()
        do {
            let read = try objects.read(path) { bytes in
                if hashing { hasher.update(bytes) }
                try body(bytes)
            }
            return (hashing ? hexString(hasher.finalize()) : "", read.size)
        } catch let error as S3Error where error.kind != .permission {
            throw ReadError(path: path, message: error.message)
        }
    }

    /// Reads a file block by block, handing each block to `body` and hashing it on the way.
    private static func hashBlocks(path: String, blockSize: Int, hashing: Bool = true,
                                   _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> (String, Int64) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ReadError(path: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var hasher = SHA256Hasher()
        var block = [UInt8](repeating: 0, count: blockSize)
        var size: Int64 = 0
        while true {
            let n = block.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadError(path: path, message: "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            size += Int64(n)
            try block.withUnsafeBytes { raw in
                let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                if hashing { hasher.update(bytes) }
                try body(bytes)
            }
        }
        guard hashing else { return ("", size) }
        let hex = hexString(hasher.finalize())
        return (hex, size)
    }
}

/// Splits a byte stream into lines, tolerating CRLF, a UTF-8 BOM on the first line and blank
/// lines; a line longer than the limit is reported once, cut, and skipped to its end.
package struct LineSplitter {
    package let maxLineBytes: Int
    package var distrust: Distrust?
    package private(set) var lineNumber = 0
    package private(set) var bytes: Int64 = 0
    private var pending: [UInt8] = []
    private var overlong = false

    package init(maxLineBytes: Int) {
        self.maxLineBytes = maxLineBytes
    }

    private var overlongProblem: LineProblem {
        LineProblem(kind: .tooLong, reason: "line longer than the limit of \(maxLineBytes) bytes (the raw line is cut to the limit)")
    }

    package mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>, body: (Int, UnsafeBufferPointer<UInt8>, LineProblem?) throws -> Void) throws {
        guard let base = bytes.baseAddress else { return }
        self.bytes += Int64(bytes.count)
        var start = 0
        let count = bytes.count
        while start < count {
            guard let hit = memchr(base + start, 0x0a, count - start) else {
                append(UnsafeBufferPointer(start: base + start, count: count - start))
                return
            }
            let end = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            if pending.isEmpty && !overlong {
                try emit(UnsafeBufferPointer(start: base + start, count: end - start), body: body, problem: nil)
            } else {
                append(UnsafeBufferPointer(start: base + start, count: end - start))
                try flushPending(body: body, problem: nil)
            }
            start = end + 1
        }
    }

    /// The end of the stream: a last line without LF is complete unless the stream stopped
    /// early (`tornBy` says why).
    package mutating func finish(tornBy problem: LineProblem?, body: (Int, UnsafeBufferPointer<UInt8>, LineProblem?) throws -> Void) throws {
        if pending.isEmpty && !overlong { return }
        try flushPending(body: body, problem: problem)
    }

    private mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        if overlong { return }
        if pending.count + bytes.count > maxLineBytes {
            let room = max(0, maxLineBytes - pending.count)
            pending.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[0..<room]))
            overlong = true
        } else {
            pending.append(contentsOf: bytes)
        }
    }

    private mutating func flushPending(body: (Int, UnsafeBufferPointer<UInt8>, LineProblem?) throws -> Void, problem: LineProblem?) throws {
        var problem = problem
        if overlong {
            problem = overlongProblem
        }
        let line = pending
        pending.removeAll(keepingCapacity: pending.capacity <= 4 << 20)
        overlong = false
        try line.withUnsafeBufferPointer { try emit($0, body: body, problem: problem) }
    }

    private mutating func emit(_ line: UnsafeBufferPointer<UInt8>, body: (Int, UnsafeBufferPointer<UInt8>, LineProblem?) throws -> Void, problem: LineProblem?) throws {
        lineNumber += 1
        var problem = problem
        if let distrust, lineNumber >= distrust.fromLine, problem == nil { problem = LineProblem(kind: distrust.kind, reason: distrust.reason) }
        if line.count > maxLineBytes {
            // Never more than the limit, whatever else is wrong with the line (found by fuzzing:
            // a distrusted long line was handed on whole).
            try body(lineNumber, UnsafeBufferPointer(rebasing: line[0..<maxLineBytes]), problem ?? overlongProblem)
            return
        }
        var slice = line[...]
        if lineNumber == 1, slice.count >= 3, slice[0] == 0xEF, slice[1] == 0xBB, slice[2] == 0xBF {
            slice = slice.dropFirst(3)
        }
        if let last = slice.last, last == 0x0d { slice = slice.dropLast() }
        if problem == nil {
            // Blank lines (only white space) are tolerated and not counted as messages.
            var blank = true
            for b in slice where !(b == 0x20 || b == 0x09 || b == 0x0d) { blank = false; break }
            if blank { return }
        }
        try body(lineNumber, UnsafeBufferPointer(rebasing: slice), problem)
    }
}
