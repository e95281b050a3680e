import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The run's own files beside the warehouse (message-id runs, spills) could not be written or
/// read: the disk, not the data. The run stops (exit 74); the next run removes what is left.
struct TemporaryStorageError: Error, Sendable, CustomStringConvertible {
    var path: String
    var message: String
    var description: String { "\(path): \(message)" }
}

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

/// Bytes an unprivileged writer may still use on the file system of `folder` (nil if unknown).
func freeBytes(in folder: String) -> Int64? {
    var stats = statvfs()
    guard statvfs(folder.isEmpty ? "." : folder, &stats) == 0 else { return nil }
    return Int64(stats.f_bavail) * Int64(stats.f_frsize)
}

/// Pass 1's output for one archive: its chunks (what the writer will be handed, in the file's
/// order) written to a file in the run's folder beside the warehouse, so that pass 2 writes
/// what pass 1 parsed instead of reading, inflating and parsing the archive again.
///
/// A chunk on disk: u32 length of the rest, u64 archive bytes, u32 item count, the items
/// (tag u8: 0 message, 1 filtered, 2 reject with line i32, item i32 (-1: none), kind u8,
/// redacted u8, reason and raw as u32 length + bytes), u32 copy count and one copy per message
/// (key a u64, key b u64, received_at i64, line i32, item i32), then the records' count (u32),
/// byte length (u32) and bytes.
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
    }

    /// Closes the file (it stays for pass 2).
    func close() {
        _ = Glibc.close(fd)
    }

    mutating func write(_ chunk: Chunk) throws {
        buffer.removeAll(keepingCapacity: true)
        put(UInt32(0))  // length, set below
        put(UInt64(bitPattern: chunk.archiveBytes))
        put(UInt32(chunk.items.count))
        for item in chunk.items {
            switch item {
            case .message: buffer.append(0)
            case .filtered: buffer.append(1)
            case .duplicateInRun: preconditionFailure("pass 1 does not know duplicates yet")
            case .reject(let line, let item, let kind, let reason, let raw, let redacted):
                buffer.append(2)
                put(UInt32(bitPattern: Int32(clamping: line)))
                put(UInt32(bitPattern: Int32(clamping: item ?? -1)))
                buffer.append(UInt8(RejectKind.allCases.firstIndex(of: kind)!))
                buffer.append(redacted ? 1 : 0)
                put(Array(reason.utf8))
                put(raw)
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
        let length = UInt32(buffer.count - 4)
        withUnsafeBytes(of: length.littleEndian) { for i in 0..<4 { buffer[i] = $0[i] } }
        try budget?.take(buffer.count, path: path)
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

    /// The next chunk, or nil at the end of the file.
    mutating func next() throws -> Chunk? {
        var header = [UInt8](repeating: 0, count: 4)
        guard try read(into: &header, allowEnd: true) else { return nil }
        let length = Int(UInt32(littleEndian: header.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        var body = [UInt8](repeating: 0, count: length)
        _ = try read(into: &body, allowEnd: false)
        return body.withUnsafeBytes { raw in
            var offset = 0
            func u32() -> UInt32 {
                defer { offset += 4 }
                return UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            }
            func u64() -> UInt64 {
                defer { offset += 8 }
                return UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            }
            func u8() -> UInt8 {
                defer { offset += 1 }
                return raw[offset]
            }
            func bytes() -> [UInt8] {
                let n = Int(u32())
                defer { offset += n }
                return Array(raw[offset..<(offset + n)])
            }
            var chunk = Chunk()
            chunk.archiveBytes = Int64(bitPattern: u64())
            let itemCount = Int(u32())
            chunk.items.reserveCapacity(itemCount)
            for _ in 0..<itemCount {
                switch u8() {
                case 0: chunk.items.append(.message)
                case 1: chunk.items.append(.filtered)
                default:
                    let line = Int(Int32(bitPattern: u32()))
                    let item = Int32(bitPattern: u32())
                    let kind = RejectKind.allCases[Int(u8())]
                    let redacted = u8() == 1
                    let reason = String(decoding: bytes(), as: UTF8.self)
                    chunk.items.append(.reject(line: line, item: item < 0 ? nil : Int(item), kind: kind, reason: reason,
                                               raw: bytes(), redacted: redacted))
                }
            }
            let copyCount = Int(u32())
            chunk.copies.reserveCapacity(copyCount)
            for _ in 0..<copyCount {
                let key = MessageKey(a: u64(), b: u64())
                let receivedAt = Int64(bitPattern: u64())
                let line = Int32(bitPattern: u32())
                let item = Int32(bitPattern: u32())
                chunk.copies.append(Copy(key: key, position: Position(receivedAt: receivedAt, file: file, line: line, item: item)))
            }
            let recordCount = Int(u32())
            let recordBytes = Int(u32())
            chunk.records = MessageRecords(count: recordCount, bytes: Array(raw[offset..<(offset + recordBytes)]))
            return chunk
        }
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

/// One message's copy as pass 1 saw it: its id's key and position, for the winner check.
struct Copy: Sendable {
    var key: MessageKey
    var position: Position
}
