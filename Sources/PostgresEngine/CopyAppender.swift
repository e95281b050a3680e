import CLibPQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SegmentCore
import SegmentWarehouse

/// PostgreSQL: rows appended with COPY, sent when the buffer passes a megabyte and at
/// `finish`; the COPY's result is read by the connection's next statement.
///
/// In COPY's binary format when every column's type is one the values can be written in
/// (text, integers, booleans, doubles, timestamps, bytea): the server then parses no text,
/// which was most of its work for the models' sessions (415,611 rows in the bench). A value
/// that does not fit its column that way (never seen: the models write what their columns
/// hold) sends what is buffered and turns the rest into COPY's text form, where the server
/// judges it as it always did.
final class CopyAppender: SQLAppender {
    let connection: PostgresConnection
    private let table: String
    private let columns: String
    /// Each column's type, or nil: the rows go as text.
    private var types: [CopyBinary.FieldType]?
    private var binary: [UInt8] = []
    private var text = CopyText()

    init(connection: PostgresConnection, table: String, columns: [String]) throws {
        self.connection = connection
        self.table = table
        self.columns = columns.map(quoteIdentifier).joined(separator: ", ")
        types = try Self.types(of: table, columns: columns, on: connection)
    }

    /// Whether the rows go in COPY's binary format (until a value does not fit).
    var isBinary: Bool { types != nil }

    /// The columns' types, when every one is a type the encoder writes.
    private static func types(of table: String, columns: [String], on connection: PostgresConnection) throws -> [CopyBinary.FieldType]? {
        let rows = try connection.query("""
            SELECT attname, atttypid FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
            """, [table])
        var byName: [String: Oid] = [:]
        for row in rows {
            if let name = row[0], let type = row[1].flatMap({ Oid($0) }) { byName[name] = type }
        }
        let types = columns.compactMap { byName[$0].flatMap(CopyBinary.FieldType.init(oid:)) }
        return types.count == columns.count ? types : nil
    }

    func append(_ values: [SQLValue]) throws {
        if let types {
            let start = binary.count
            CopyBinary.append(Int16(values.count), to: &binary)
            if zip(values, types).allSatisfy({ Self.put($0, as: $1, into: &binary) }) {
                if binary.count >= 1 << 20 { try finish() }
                return
            }
            binary.removeSubrange(start...)
            try finish()
            self.types = nil
        }
        for value in values { try text.value(value) }
        text.endRow()
        if text.bytes.count >= 1 << 20 { try finish() }
    }

    /// Writes `value` as column type `type` keeps it (false: it cannot be written so).
    private static func put(_ value: SQLValue, as type: CopyBinary.FieldType, into bytes: inout [UInt8]) -> Bool {
        switch value {
        case .null:
            CopyBinary.appendNull(to: &bytes)
            return true
        case .text(var s): return s.withUTF8 { CopyBinary.appendField(text: UnsafeRawBufferPointer($0), as: type, to: &bytes) }
        case .integer(let i): return CopyBinary.appendField(integer: i, as: type, to: &bytes)
        case .real(let d): return CopyBinary.appendField(real: d, as: type, to: &bytes)
        case .blob(let b): return CopyBinary.appendField(bytes: b, as: type, to: &bytes)
        }
    }

    func finish() throws {
        let sql = "COPY \(table) (\(columns)) FROM STDIN"
        if !binary.isEmpty {
            let bytes = binary
            binary.removeAll(keepingCapacity: true)
            // The server takes the rows in while the caller builds the next ones.
            try connection.copy(sql + " (FORMAT binary)", deferred: true) { send in
                try send(CopyBinary.header)
                try send(bytes)
                try send(CopyBinary.trailer)
            }
        }
        if !text.bytes.isEmpty {
            let bytes = text.take()
            try connection.copy(sql, deferred: true) { send in try send(bytes) }
        }
    }
}
