import Foundation
import Synchronization
import SegmentCore
import SegmentStages
import SegmentWarehouse

/// PostgreSQL: a row's values encoded into a scratch buffer as they come (in the record's
/// order), then appended to its table's COPY data in the table's column order. COPY's binary
/// format: each value in its column's type as the server keeps it (8-byte integers and
/// floats, timestamps as microseconds since 2000), so the server parses no text. A file's rows
/// wait until it ends (or the derivation of users and accounts reads them, or 8 MB are
/// waiting): then `flush` sends each table's with one COPY, so a table costs a round trip per
/// file, not per chunk. Text with a NUL character, which PostgreSQL's text cannot hold, is
/// refused: NULL in the row, the value in `_discards`.
final class CopyRows: RowTarget {
    struct Sink: ValueSink {
        let rows: CopyRows
        let index: Int
        func null() { rows.ranges[index] = nil }
        func integer(_ value: Int64) {
            switch rows.types[index] {
            case .boolean: rows.put(index, byte: value != 0 ? 1 : 0)
            case .integer: rows.put(index, bits: UInt64(bitPattern: value))
            case .real: rows.put(index, bits: Double(value).bitPattern)
            case .text: rows.put(index, text: String(value))
            case .timestamp: rows.refuse(index, String(value), as: .timestamp)
            }
        }
        func real(_ value: Double) {
            switch rows.types[index] {
            case .real: rows.put(index, bits: value.bitPattern)
            case .integer where value == value.rounded() && abs(value) < 9.2e18: rows.put(index, bits: UInt64(bitPattern: Int64(value)))
            case .text: rows.put(index, text: CopyText.float(value))
            default: rows.refuse(index, CopyText.float(value), as: rows.types[index])
            }
        }
        func text(_ bytes: UnsafeRawBufferPointer) {
            rows.put(index, textBytes: bytes)
        }
        func text(_ string: String) {
            var string = string
            string.withUTF8 { text(UnsafeRawBufferPointer($0)) }
        }
    }

    static let nulReason = "PostgreSQL text cannot hold the NUL character (\\u0000)"

    /// One table's rows waiting for the next COPY.
    final class Buffer {
        let table: TableState
        let columns: Int
        var bytes: [UInt8] = []
        init(table: TableState, columns: Int) { (self.table, self.columns) = (table, columns) }
    }

    let connection: PostgresConnection
    /// What may wait before everything is sent.
    static let flushBytes = 8 << 20
    private var waiting = 0

    init(connection: PostgresConnection) {
        self.connection = connection
    }

    var rowBudget: Int? { RowSize.postgresBudget }
    /// The row's values, encoded, and where each column's is (nil: NULL).
    private var scratch: [UInt8] = []
    fileprivate var ranges: [Range<Int>?] = []
    fileprivate var types: [ColumnType] = []
    private var refused: [(column: Int, value: String, reason: String)] = []
    private var current: Buffer?
    private var buffers: [Int32: Buffer] = [:]
    private var order: [Int32] = []

    func begin(_ state: TableState) throws {
        if let buffer = buffers[state.id], buffer.columns == state.order.count {
            current = buffer
        } else {
            // The table gained columns since its rows began waiting: those go first.
            if let old = buffers[state.id] { try send(old) } else { order.append(state.id) }
            let buffer = Buffer(table: state, columns: state.order.count)
            buffers[state.id] = buffer
            current = buffer
        }
        scratch.removeAll(keepingCapacity: true)
        ranges = Array(repeating: nil, count: state.order.count)
        types = state.types
        refused.removeAll(keepingCapacity: true)
    }

    func sink(at index: Int) -> Sink { Sink(rows: self, index: index) }

    func staticText(_ bytes: UnsafeRawBufferPointer, at index: Int) {
        put(index, textBytes: bytes)
    }

    fileprivate func put(_ index: Int, byte: UInt8) {
        ranges[index] = scratch.count..<scratch.count + 1
        scratch.append(byte)
    }

    fileprivate func put(_ index: Int, bits: UInt64) {
        let start = scratch.count
        CopyBinary.append(bits, to: &scratch)
        ranges[index] = start..<scratch.count
    }

    fileprivate func put(_ index: Int, text: String) {
        var text = text
        text.withUTF8 { put(index, textBytes: UnsafeRawBufferPointer($0)) }
    }

    /// Text as its column's type wants it: as it is for text, a timestamp as microseconds.
    fileprivate func put(_ index: Int, textBytes bytes: UnsafeRawBufferPointer) {
        switch types[index] {
        case .text:
            if let base = bytes.baseAddress, memchr(base, 0, bytes.count) != nil {
                return refuse(index, bytes.string, reason: Self.nulReason)
            }
            let start = scratch.count
            scratch.append(contentsOf: bytes)
            ranges[index] = start..<scratch.count
        case .timestamp:
            guard let instant = bytes.withMemoryRebound(to: UInt8.self, { Timestamp.parse(bytes: $0) }) else {
                return refuse(index, bytes.string, as: .timestamp)
            }
            put(index, bits: UInt64(bitPattern: CopyBinary.microseconds(instant)))
        default:
            refuse(index, bytes.string, as: types[index])
        }
    }

    /// A value the row writer's conversion rule let through but this column's type cannot take
    /// (never seen; kept in `_discards` rather than lost if it ever is).
    fileprivate func refuse(_ index: Int, _ text: String, as type: ColumnType) {
        refuse(index, text, reason: "\(text.prefix(100)) cannot be written to a PostgreSQL \(type.rawValue) column")
    }

    /// NULL in the row, the value in `_discards`.
    private func refuse(_ index: Int, _ text: String, reason: String) {
        ranges[index] = nil
        refused.append((index, JSONWriter.string(.string(text)), reason))
    }

    func end() throws -> (rowId: Int64?, refused: [(column: Int, value: String, reason: String)]) {
        let buffer = current!
        CopyBinary.append(Int16(ranges.count), to: &buffer.bytes)
        for range in ranges {
            if let range {
                CopyBinary.append(Int32(range.count), to: &buffer.bytes)
                buffer.bytes.append(contentsOf: scratch[range])
            } else {
                CopyBinary.append(Int32(-1), to: &buffer.bytes)
            }
        }
        waiting += 2 + 4 * ranges.count + scratch.count
        if waiting > Self.flushBytes { try flush() }
        return (nil, refused)
    }

    /// Sends what is waiting, one COPY per table.
    func flush() throws {
        defer { discard() }
        for id in order {
            if let buffer = buffers[id] { try send(buffer) }
        }
    }

    private func send(_ buffer: Buffer) throws {
        guard !buffer.bytes.isEmpty else { return }
        let columns = buffer.table.order.prefix(buffer.columns).map(quoteIdentifier).joined(separator: ", ")
        try connection.copy("COPY \(quoteIdentifier(buffer.table.name)) (\(columns)) FROM STDIN (FORMAT binary)", deferred: true) { send in
            try send(CopyBinary.header)
            try send(buffer.bytes)
            try send(CopyBinary.trailer)
        }
        buffer.bytes.removeAll(keepingCapacity: true)
    }

    func discard() {
        buffers.removeAll(keepingCapacity: true)
        order.removeAll(keepingCapacity: true)
        current = nil
        waiting = 0
    }
}

/// COPY's binary format (PostgreSQL's "COPY" reference page, "Binary Format"): a signature
/// and two zero words, then per row a 16-bit field count and per field a 32-bit length (-1 for
/// NULL) and the value in the type's binary form, all big-endian; a count of -1 ends the data.
enum CopyBinary {
    static let header: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00] + [0, 0, 0, 0] + [0, 0, 0, 0]
    static let trailer: [UInt8] = [0xFF, 0xFF]
    /// 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch, in Unix seconds.
    static let epoch: Int64 = 946_684_800

    static func microseconds(_ instant: Instant) -> Int64 {
        (instant.seconds - epoch) * 1_000_000 + instant.nanos / 1000
    }

    /// An integer big-endian, as every number of the format is.
    @inline(__always) static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
}
