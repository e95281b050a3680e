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
            rows.put(index, String(value)) { CopyBinary.appendField(integer: value, as: $0, to: &$1) }
        }
        func real(_ value: Double) {
            rows.put(index, CopyText.float(value)) { CopyBinary.appendField(real: value, as: $0, to: &$1) }
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
        /// Where the rows' person key comes from (Citus): the anonymous id's column, else the user id's.
        let personKey: (column: String, anonymousId: Int, userId: Int)?
        var bytes: [UInt8] = []
        init(table: TableState, columns: Int, personKey: String?) {
            (self.table, self.columns) = (table, columns)
            if let personKey, table.callType != nil, let anon = table.order.firstIndex(of: "anonymous_id"), let user = table.order.firstIndex(of: "user_id") {
                self.personKey = (personKey, anon, user)
            } else {
                self.personKey = nil
            }
        }
    }

    let connection: PostgresConnection
    /// What may wait before everything is sent.
    static let flushBytes = 8 << 20
    private var waiting = 0

    /// The column call tables carry for Citus to place their rows by (nil: plain PostgreSQL).
    private let personKey: String?

    init(connection: PostgresConnection) {
        self.connection = connection
        personKey = connection.dialect.personKeyColumn
    }

    var rowBudget: Int? { RowSize.postgresBudget }
    /// The row's values, encoded, and where each column's is (nil: NULL).
    private var scratch: [UInt8] = []
    fileprivate var ranges: [Range<Int>?] = []
    fileprivate var types: [CopyBinary.FieldType] = []
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
            let buffer = Buffer(table: state, columns: state.order.count, personKey: personKey)
            buffers[state.id] = buffer
            current = buffer
        }
        scratch.removeAll(keepingCapacity: true)
        ranges = Array(repeating: nil, count: state.order.count)
        types = state.types.map(CopyBinary.FieldType.init)
        refused.removeAll(keepingCapacity: true)
    }

    func sink(at index: Int) -> Sink { Sink(rows: self, index: index) }

    func staticText(_ bytes: UnsafeRawBufferPointer, at index: Int) {
        put(index, textBytes: bytes)
    }

    /// One field through the encoder; a value it cannot write in the column's type is refused.
    @inline(__always)
    fileprivate func put(_ index: Int, _ shown: @autoclosure () -> String,
                         _ encode: (CopyBinary.FieldType, inout [UInt8]) -> Bool) {
        let start = scratch.count
        if encode(types[index], &scratch) {
            ranges[index] = start..<scratch.count
        } else {
            refuse(index, shown(), as: current!.table.types[index])
        }
    }

    /// Text as its column's type wants it (see `CopyBinary.appendField(text:)`).
    fileprivate func put(_ index: Int, textBytes bytes: UnsafeRawBufferPointer) {
        let start = scratch.count
        if CopyBinary.appendField(text: bytes, as: types[index], to: &scratch) {
            ranges[index] = start..<scratch.count
        } else if types[index] == .text {
            refuse(index, bytes.string, reason: Self.nulReason)
        } else {
            refuse(index, bytes.string, as: current!.table.types[index])
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
        CopyBinary.append(Int16(ranges.count + (buffer.personKey == nil ? 0 : 1)), to: &buffer.bytes)
        let before = buffer.bytes.count
        for range in ranges {
            if let range { buffer.bytes.append(contentsOf: scratch[range]) } else { CopyBinary.appendNull(to: &buffer.bytes) }
        }
        // The same field again: a text column's bytes are the same in any text column.
        if let key = buffer.personKey {
            if let range = ranges[key.anonymousId] ?? ranges[key.userId] { buffer.bytes.append(contentsOf: scratch[range]) } else { CopyBinary.appendNull(to: &buffer.bytes) }
        }
        waiting += buffer.bytes.count - before + 2
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
        let columns = (buffer.table.order.prefix(buffer.columns).map(quoteIdentifier) + (buffer.personKey.map { [$0.column] } ?? [])).joined(separator: ", ")
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
