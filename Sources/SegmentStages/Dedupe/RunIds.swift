import Foundation
import SegmentCore

/// A messageId as 128 bits (two differently salted SipHash values, keyed per process): 16
/// bytes in place of a heap string. Two different ids collide with probability about
/// n²/2¹²⁹, under 10⁻²⁰ for a billion messages.
package struct MessageKey: Hashable, Comparable, Sendable {
    package let a: UInt64
    package let b: UInt64

    package init(_ id: String) {
        var first = Hasher()
        first.combine(UInt8(1))
        first.combine(id)
        var second = Hasher()
        second.combine(UInt8(2))
        second.combine(id)
        a = UInt64(bitPattern: Int64(first.finalize()))
        b = UInt64(bitPattern: Int64(second.finalize()))
    }

    package init(a: UInt64, b: UInt64) {
        self.a = a
        self.b = b
    }

    package static func < (x: MessageKey, y: MessageKey) -> Bool { (x.a, x.b) < (y.a, y.b) }
}

/// Where a copy of a message sits; the smallest wins within a run (docs/warehouse.md, Duplicates):
/// earliest received_at, then archive path (files are sorted by path), then line, then item.
package struct Position: Sendable, Comparable, Hashable {
    package var receivedAt: Int64
    package var file: Int32
    package var line: Int32
    package var item: Int32

    package init(receivedAt: Int64, file: Int32, line: Int32, item: Int32) {
        self.receivedAt = receivedAt
        self.file = file
        self.line = line
        self.item = item
    }

    package static func < (a: Position, b: Position) -> Bool {
        (a.receivedAt, a.file, a.line, a.item) < (b.receivedAt, b.file, b.line, b.item)
    }
}

/// Every copy of every messageId a run reads, kept on disk in sorted runs so that memory stays
/// flat however many messages a run holds; merged after the scan into the winning copy of each
/// id that occurs more than once. An id that occurs once needs no entry: its only copy wins.
package final class RunIds: Sendable {
    package let directory: URL
    private let runs = Locked<[URL]>([])
    private let sequence = Locked<Int>(0)

    /// Entries a collector holds before it writes a sorted run (40 bytes each).
    package let runLength: Int

    package init(directory: URL, runLength: Int = 262_144) throws {
        self.directory = directory
        self.runLength = runLength
        // A folder left by a run that was killed is stale: its run is over.
        try? FileManager.default.removeItem(at: directory)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw TemporaryStorageError(path: directory.path, message: "cannot create the folder for the run's message ids beside the warehouse (\(error.localizedDescription)); the warehouse's folder must be writable")
        }
    }

    /// Removes the folder and everything in it (spills too).
    package func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Removes the sorted runs once their winners are known.
    package func removeRuns() {
        for url in runs.withLock({ $0 }) { try? FileManager.default.removeItem(at: url) }
    }

    /// Where pass 1 spills archive `index` of the run.
    package func spillPath(_ index: Int) -> String {
        directory.appendingPathComponent("spill-\(index).bin").path
    }

    package struct Entry {
        package var key: MessageKey
        package var position: Position
    }

    /// Collects one worker's copies and writes them out as sorted runs.
    package struct Collector {
        package let owner: RunIds
        package var entries: [Entry] = []

        package mutating func add(_ id: String, at position: Position) throws {
            try add(MessageKey(id), at: position)
        }

        package mutating func add(_ key: MessageKey, at position: Position) throws {
            entries.append(Entry(key: key, position: position))
            if entries.count >= owner.runLength { try flush() }
        }

        package mutating func flush() throws {
            if entries.isEmpty { return }
            try owner.writeRun(&entries)
            entries.removeAll(keepingCapacity: true)
        }
    }

    package func collector() -> Collector { Collector(owner: self) }

    fileprivate func writeRun(_ entries: inout [Entry]) throws {
        entries.sort { $0.key < $1.key || ($0.key == $1.key && $0.position < $1.position) }
        let number = sequence.withLock { n -> Int in n += 1; return n }
        let url = directory.appendingPathComponent("run-\(number).bin")
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.count * 40)
        for entry in entries {
            for word in [entry.key.a, entry.key.b, UInt64(bitPattern: entry.position.receivedAt)] {
                withUnsafeBytes(of: word.littleEndian) { bytes.append(contentsOf: $0) }
            }
            for word in [entry.position.file, entry.position.line, entry.position.item, 0] {
                withUnsafeBytes(of: word.littleEndian) { bytes.append(contentsOf: $0) }
            }
        }
        do {
            try Data(bytes).write(to: url)
        } catch {
            throw TemporaryStorageError(path: url.path, message: "cannot write the run's message ids (\(error.localizedDescription)); is the disk full?")
        }
        runs.withLock { $0.append(url) }
    }

    /// The winning position of every id that occurs more than once across all runs.
    /// `excluding`: per file index, the first line whose copies do not count (lines of a gzip
    /// member that failed its integrity check: they are rejected, so they cannot win).
    package func duplicateWinners(excluding: [Int32: Int32] = [:]) throws -> [MessageKey: Position] {
        let files = runs.withLock { $0 }
        var readers = try files.map { try RunReader(url: $0) }
        // A binary heap of reader indices ordered by their current entry.
        var heap: [Int] = readers.indices.filter { readers[$0].current != nil }
        func less(_ x: Int, _ y: Int) -> Bool {
            let p = readers[x].current!, q = readers[y].current!
            return p.key < q.key || (p.key == q.key && p.position < q.position)
        }
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && less(heap[l], heap[m]) { m = l }
                if r < heap.count && less(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        var winners: [MessageKey: Position] = [:]
        var last: Entry?
        var repeated = false
        while let top = heap.first {
            let entry = readers[top].current!
            if let from = excluding[entry.position.file], entry.position.line >= from {
                try readers[top].advance()
                if readers[top].current == nil {
                    heap[0] = heap[heap.count - 1]
                    heap.removeLast()
                }
                if !heap.isEmpty { siftDown(0) }
                continue
            }
            if let previous = last, previous.key == entry.key {
                // Entries come in (key, position) order: the first of a key is its smallest.
                if !repeated { winners[previous.key] = previous.position }
                repeated = true
            } else {
                last = entry
                repeated = false
            }
            try readers[top].advance()
            if readers[top].current == nil {
                heap[0] = heap[heap.count - 1]
                heap.removeLast()
            }
            if !heap.isEmpty { siftDown(0) }
        }
        return winners
    }
}

/// Reads one sorted run in blocks.
private struct RunReader {
    let handle: FileHandle
    var buffer: [UInt8] = []
    var offset = 0
    var current: RunIds.Entry?

    init(url: URL) throws {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw TemporaryStorageError(path: url.path, message: "cannot read the run's message ids")
        }
        self.handle = handle
        try advance()
    }

    mutating func advance() throws {
        if offset + 40 > buffer.count {
            let data = try handle.read(upToCount: 40 * 1024) ?? Data()
            buffer = Array(buffer[offset...]) + [UInt8](data)
            offset = 0
            if buffer.count < 40 {
                current = nil
                try? handle.close()
                return
            }
        }
        let entry = buffer.withUnsafeBytes { raw -> RunIds.Entry in
            func word<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
                T(littleEndian: raw.loadUnaligned(fromByteOffset: offset + at, as: T.self))
            }
            return RunIds.Entry(
                key: MessageKey(a: word(0, UInt64.self), b: word(8, UInt64.self)),
                position: Position(receivedAt: Int64(bitPattern: word(16, UInt64.self)), file: word(24, Int32.self),
                                   line: word(28, Int32.self), item: word(32, Int32.self)))
        }
        offset += 40
        current = entry
    }
}
