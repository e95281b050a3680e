import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SegmentCore
import SegmentStages

/// What a run may keep on disk beside the warehouse (spills and id runs), checked before the
/// run starts and counted as it goes.
final class TemporaryBudget: Sendable {
    /// Bytes the run may write (nil: as many as the disk takes).
    let limit: Int64?
    private let used = Locked<Int64>(0)

    init(limit: Int64?) {
        self.limit = limit
    }

    var bytesUsed: Int64 { used.withLock { $0 } }

    /// Counts `bytes` about to be written; throws as a full disk would when past the limit.
    func take(_ bytes: Int, path: String) throws {
        let total = used.withLock { value -> Int64 in value += Int64(bytes); return value }
        if let limit, total > limit {
            throw TemporaryStorageError(path: path, message: "cannot write the run's spill file (No space left on device: the run's limit of \(limit) bytes is reached); is the disk full?")
        }
    }

    /// About what pass 1 spills for these archives: the spill holds every message once, packed,
    /// about the size of the NDJSON it came from, which Segment's gzip archives hold in about a
    /// tenth of its size. Measured on the benchmark corpus: 540 MB of spill for 518 MB of
    /// NDJSON in 81 MB of gzip.
    static func estimate(for archives: [Archive]) -> Int64 {
        archives.reduce(Int64(0)) { total, archive in
            total + (archive.format == .gzip ? archive.size * 10 : archive.size + archive.size / 10)
        }
    }

    /// Refuses a run whose spill would not fit on the warehouse's disk, before anything is
    /// written. `available` replaces the file system's answer in tests.
    static func check(folder: String, needed: Int64, available: Int64? = nil) throws {
        guard let free = available ?? freeBytes(in: folder) else { return }
        if free < needed {
            throw TemporaryStorageError(path: folder, message: "the run needs about \(needed >> 20) MB of temporary space beside the warehouse "
                + "for its parsed archives and message ids, and \(free >> 20) MB are free. Nothing was loaded; free space, or load fewer archives per run.")
        }
    }
}

/// Pass 1's output for one archive: its chunks (what the writer will be handed, in the file's
/// order) written to a file in the run's folder beside the warehouse, so that pass 2 writes
/// what pass 1 parsed instead of reading, inflating and parsing the archive again.
///
/// The file starts with the 8 bytes `SLSPILL` + NUL and a u32 format version. Then chunks,
/// each: u32 length of its body, u64 checksum of its body (`SpillFormat.checksum`), and the body: u64 archive bytes, u32 item count, the items
/// (tag u8: 0 message, 1 filtered, 2 reject with line i32, item i32 (-1: none), kind u8,
/// redacted u8 (`RejectRaw.redactedCode`), reason and raw as u32 length + bytes), u32 copy count and one copy per message
/// (key a u64, key b u64, received_at i64, line i32, item i32), then the records' count (u32),
/// byte length (u32) and bytes. The file ends with a trailer: u32 0xFFFFFFFF and u64 the number
/// of chunks, so a file cut short between two chunks is not taken for a whole one. Integers
/// are little-endian. A reader meets a damaged file
/// (a disk error, another program writing beside the warehouse) as a wrong header or
/// checksum and stops the run with a `TemporaryStorageError`, never by trapping.
enum SpillFormat {
    static let magic: [UInt8] = Array("SLSPILL".utf8) + [0]
    static let version: UInt32 = 1
    static var header: [UInt8] {
        withUnsafeBytes(of: version.littleEndian) { magic + $0 }
    }

    /// A checksum against accidental damage, at a fraction of a CRC's cost (the spill is
    /// written and read once per message, on the same 2 cores as the writer): four lanes of
    /// 64-bit words, each step `lane = (lane ^ word) * odd constant`, which is one-to-one in
    /// both the lane and the word, so any change confined to one word always changes the
    /// result; the lanes, the tail and the length are mixed at the end.
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let k: UInt64 = 0x9E37_79B9_7F4A_7C15
        var lanes: (UInt64, UInt64, UInt64, UInt64) = (1, 2, 3, 4)
        let blocks = bytes.count / 32
        var offset = 0
        for _ in 0..<blocks {
            lanes.0 = (lanes.0 ^ bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) &* k
            lanes.1 = (lanes.1 ^ bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)) &* k
            lanes.2 = (lanes.2 ^ bytes.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self)) &* k
            lanes.3 = (lanes.3 ^ bytes.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self)) &* k
            offset += 32
        }
        var tail: UInt64 = 5
        while offset < bytes.count {
            tail = (tail ^ UInt64(bytes[offset])) &* k
            offset += 1
        }
        var h = UInt64(bytes.count)
        for lane in [lanes.0, lanes.1, lanes.2, lanes.3, tail] {
            h = (h ^ (lane ^ (lane >> 29))) &* k
            h ^= h >> 32
        }
        return h
    }
}

struct SpillWriter {
    let path: String
    let budget: TemporaryBudget?
    private let fd: Int32
    private var buffer: [UInt8] = []

    init(path: String, budget: TemporaryBudget? = nil) throws {
        self.path = path
        self.budget = budget
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        if fd < 0 {
            throw TemporaryStorageError(path: path, message: "cannot create the run's spill file (\(String(cString: strerror(errno)))); the warehouse's folder must be writable")
        }
        buffer = SpillFormat.header
        try flush()
    }

    private var chunks: UInt64 = 0

    /// Writes the trailer after the last chunk.
    mutating func finish() throws {
        buffer.removeAll(keepingCapacity: true)
        put(UInt32.max)
        put(chunks)
        try budget?.take(buffer.count, path: path)
        try flush()
    }

    /// Closes the file (it stays for pass 2).
    func close() {
        _ = Glibc.close(fd)
    }

    mutating func write(_ chunk: Chunk) throws {
        buffer.removeAll(keepingCapacity: true)
        put(UInt32(0))  // length, set below
        put(UInt64(0))  // checksum, set below
        put(UInt64(bitPattern: chunk.archiveBytes))
        put(UInt32(chunk.items.count))
        for item in chunk.items {
            switch item {
            case .message: buffer.append(0)
            case .filtered: buffer.append(1)
            case .suppressed: buffer.append(3)
            case .duplicateInRun: preconditionFailure("pass 1 does not know duplicates yet")
            case .reject(let line, let item, let kind, let reason, let raw):
                buffer.append(2)
                put(UInt32(bitPattern: Int32(clamping: line)))
                put(UInt32(bitPattern: Int32(clamping: item ?? -1)))
                buffer.append(UInt8(RejectKind.allCases.firstIndex(of: kind)!))
                buffer.append(UInt8(raw.redactedCode))
                put(Array(reason.utf8))
                put(raw.bytes)
            }
        }
        put(UInt32(chunk.copies.count))
        for copy in chunk.copies {
            put(copy.key.a)
            put(copy.key.b)
            put(UInt64(bitPattern: copy.position.receivedAt))
            put(UInt32(bitPattern: copy.position.line))
            put(UInt32(bitPattern: copy.position.item))
        }
        put(UInt32(chunk.records.count))
        put(chunk.records.bytes)
        let length = UInt32(buffer.count - 12)
        let checksum = buffer.withUnsafeBytes { SpillFormat.checksum(UnsafeRawBufferPointer(rebasing: $0[12...])) }
        withUnsafeBytes(of: length.littleEndian) { for i in 0..<4 { buffer[i] = $0[i] } }
        withUnsafeBytes(of: checksum.littleEndian) { for i in 0..<8 { buffer[4 + i] = $0[i] } }
        try budget?.take(buffer.count, path: path)
        try flush()
        chunks += 1
    }

    private func flush() throws {
        try buffer.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw TemporaryStorageError(path: path, message: "cannot write the run's spill file (\(String(cString: strerror(errno)))); is the disk full?")
                }
                offset += n
            }
        }
    }

    private mutating func put(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    private mutating func put(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    private mutating func put(_ bytes: [UInt8]) {
        put(UInt32(bytes.count))
        buffer.append(contentsOf: bytes)
    }
}

/// Reads a spill file back, one chunk at a time.
struct SpillReader {
    let path: String
    /// The archive's index in the run (positions carry it).
    let file: Int32
    private let fd: Int32

    init(path: String, file: Int32) throws {
        self.path = path
        self.file = file
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            throw TemporaryStorageError(path: path, message: "cannot open the run's spill file (\(String(cString: strerror(errno))))")
        }
    }

    func close() {
        _ = Glibc.close(fd)
    }

    private var headerRead = false
    private var chunksRead: UInt64 = 0
    private var ended = false

    /// The next chunk, or nil at the end of the file.
    mutating func next() throws -> Chunk? {
        if !headerRead {
            var header = [UInt8](repeating: 0, count: SpillFormat.header.count)
            guard try read(into: &header, allowEnd: false), header == SpillFormat.header else {
                throw damaged("it does not start with the spill header of this version")
            }
            headerRead = true
        }
        guard !ended else { return nil }
        var header = [UInt8](repeating: 0, count: 12)
        guard try read(into: &header, allowEnd: true) else { throw damaged("it ends before its trailer") }
        let (marker, checksum) = header.withUnsafeBytes {
            (UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)),
             UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt64.self)))
        }
        if marker == UInt32.max {
            var rest = [UInt8](repeating: 0, count: 1)
            guard checksum == chunksRead, try !read(into: &rest, allowEnd: true) else {
                throw damaged("its trailer does not close its \(chunksRead) chunks")
            }
            ended = true
            return nil
        }
        let length = Int(marker)
        // A chunk is at most a few MB; a length past this is damage, not a chunk to allocate.
        guard length <= 1 << 30 else { throw damaged("a chunk claims \(length) bytes") }
        var body = [UInt8](repeating: 0, count: length)
        _ = try read(into: &body, allowEnd: false)
        guard body.withUnsafeBytes(SpillFormat.checksum) == checksum else {
            throw damaged("a chunk's checksum does not match its bytes")
        }
        do {
            let chunk = try body.withUnsafeBytes { try decode(SpillCursor(raw: $0)) }
            chunksRead += 1
            return chunk
        } catch let error as SpillCursor.OutOfBounds {
            throw damaged("a chunk's \(error.what) runs past its end")
        }
    }

    private func damaged(_ what: String) -> TemporaryStorageError {
        TemporaryStorageError(path: path, message: "the run's spill file is damaged (\(what)): was it changed while the run was going, or is the disk failing? "
            + "Every file committed before is kept; run again to resume.")
    }

    private func decode(_ cursor: SpillCursor) throws -> Chunk {
        var cursor = cursor
        var chunk = Chunk()
        chunk.archiveBytes = Int64(bitPattern: try cursor.u64("archive size"))
        let itemCount = Int(try cursor.u32("item count"))
        guard itemCount <= cursor.remaining else { throw SpillCursor.OutOfBounds(what: "item list") }
        chunk.items.reserveCapacity(itemCount)
        for _ in 0..<itemCount {
            switch try cursor.u8("item tag") {
            case 0: chunk.items.append(.message)
            case 1: chunk.items.append(.filtered)
            case 3: chunk.items.append(.suppressed)
            case 2:
                let line = Int(Int32(bitPattern: try cursor.u32("reject line")))
                let item = Int32(bitPattern: try cursor.u32("reject item"))
                let kindIndex = Int(try cursor.u8("reject kind"))
                guard kindIndex < RejectKind.allCases.count else { throw SpillCursor.OutOfBounds(what: "reject kind") }
                let redaction = Int64(try cursor.u8("reject redaction"))
                let reason = String(decoding: try cursor.bytes("reject reason"), as: UTF8.self)
                chunk.items.append(.reject(line: line, item: item < 0 ? nil : Int(item), kind: RejectKind.allCases[kindIndex],
                                           reason: reason, raw: RejectRaw(code: redaction, bytes: try cursor.bytes("rejected line"))))
            default:
                throw SpillCursor.OutOfBounds(what: "item tag")
            }
        }
        let copyCount = Int(try cursor.u32("copy count"))
        guard copyCount <= cursor.remaining / 32 else { throw SpillCursor.OutOfBounds(what: "copy list") }
        chunk.copies.reserveCapacity(copyCount)
        for _ in 0..<copyCount {
            let key = MessageKey(a: try cursor.u64("copy key"), b: try cursor.u64("copy key"))
            let receivedAt = Int64(bitPattern: try cursor.u64("copy time"))
            let line = Int32(bitPattern: try cursor.u32("copy line"))
            let item = Int32(bitPattern: try cursor.u32("copy item"))
            chunk.copies.append(Copy(key: key, position: Position(receivedAt: receivedAt, file: file, line: line, item: item)))
        }
        let recordCount = Int(try cursor.u32("record count"))
        chunk.records = MessageRecords(count: recordCount, bytes: try cursor.bytes("records"))
        return chunk
    }

    /// Fills `buffer`; false at a clean end of file when `allowEnd`.
    private func read(into buffer: inout [UInt8], allowEnd: Bool) throws -> Bool {
        let wanted = buffer.count
        var offset = 0
        try buffer.withUnsafeMutableBytes { raw in
            while offset < wanted {
                let n = Glibc.read(fd, raw.baseAddress! + offset, wanted - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw TemporaryStorageError(path: path, message: "cannot read the run's spill file (\(String(cString: strerror(errno))))")
                }
                if n == 0 { break }
                offset += n
            }
        }
        if offset == 0 && allowEnd { return false }
        if offset < wanted {
            throw TemporaryStorageError(path: path, message: "the run's spill file ends early (\(offset) of \(wanted) bytes): was it changed while the run was going?")
        }
        return true
    }
}

/// Reads a chunk's body with every read checked against its end.
struct SpillCursor {
    struct OutOfBounds: Error { var what: String }
    let raw: UnsafeRawBufferPointer
    var offset = 0
    var remaining: Int { raw.count - offset }

    mutating func u8(_ what: String) throws -> UInt8 {
        guard remaining >= 1 else { throw OutOfBounds(what: what) }
        defer { offset += 1 }
        return raw[offset]
    }

    mutating func u32(_ what: String) throws -> UInt32 {
        guard remaining >= 4 else { throw OutOfBounds(what: what) }
        defer { offset += 4 }
        return UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    mutating func u64(_ what: String) throws -> UInt64 {
        guard remaining >= 8 else { throw OutOfBounds(what: what) }
        defer { offset += 8 }
        return UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A u32 length and that many bytes.
    mutating func bytes(_ what: String) throws -> [UInt8] {
        let n = Int(try u32(what))
        guard remaining >= n else { throw OutOfBounds(what: what) }
        defer { offset += n }
        return Array(raw[offset..<(offset + n)])
    }
}

/// One message's copy as pass 1 saw it: its id's key and position, for the winner check.
struct Copy: Sendable {
    var key: MessageKey
    var position: Position
}
