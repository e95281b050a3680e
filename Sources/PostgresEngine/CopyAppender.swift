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
    private var types: [Oid]?
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

    /// The columns' type OIDs, when every one is a type `put` writes.
    private static func types(of table: String, columns: [String], on connection: PostgresConnection) throws -> [Oid]? {
        let rows = try connection.query("""
            SELECT attname, atttypid FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
            """, [table])
        var byName: [String: Oid] = [:]
        for row in rows {
            if let name = row[0], let type = row[1].flatMap({ Oid($0) }) { byName[name] = type }
        }
        let types = columns.compactMap { byName[$0] }
        guard types.count == columns.count, types.allSatisfy(Self.written.contains) else { return nil }
        return types
    }

    /// text, varchar, bigint, integer, smallint, boolean, double precision, timestamptz, bytea.
    private static let written: Set<Oid> = [25, 1043, 20, 23, 21, 16, 701, 1184, 17]

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
    private static func put(_ value: SQLValue, as type: Oid, into bytes: inout [UInt8]) -> Bool {
        switch (value, type) {
        case (.null, _):
            CopyBinary.append(Int32(-1), to: &bytes)
        case (.text(var s), 25), (.text(var s), 1043):
            return s.withUTF8 { utf8 in
                guard utf8.isEmpty || memchr(utf8.baseAddress!, 0, utf8.count) == nil else { return false }
                CopyBinary.append(Int32(utf8.count), to: &bytes)
                bytes.append(contentsOf: utf8)
                return true
            }
        case (.text(var s), 1184):
            guard let instant = s.withUTF8({ Timestamp.parse(bytes: $0) }) else { return false }
            CopyBinary.append(Int32(8), to: &bytes)
            CopyBinary.append(CopyBinary.microseconds(instant), to: &bytes)
        case (.integer(let i), 20):
            CopyBinary.append(Int32(8), to: &bytes)
            CopyBinary.append(i, to: &bytes)
        case (.integer(let i), 23):
            guard let narrow = Int32(exactly: i) else { return false }
            CopyBinary.append(Int32(4), to: &bytes)
            CopyBinary.append(narrow, to: &bytes)
        case (.integer(let i), 21):
            guard let narrow = Int16(exactly: i) else { return false }
            CopyBinary.append(Int32(2), to: &bytes)
            CopyBinary.append(narrow, to: &bytes)
        case (.integer(let i), 16):
            CopyBinary.append(Int32(1), to: &bytes)
            bytes.append(i != 0 ? 1 : 0)
        case (.integer(let i), 701):
            CopyBinary.append(Int32(8), to: &bytes)
            CopyBinary.append(Double(i).bitPattern, to: &bytes)
        case (.real(let d), 701):
            CopyBinary.append(Int32(8), to: &bytes)
            CopyBinary.append(d.bitPattern, to: &bytes)
        case (.integer(let i), 25), (.integer(let i), 1043):
            let start = bytes.count
            CopyBinary.append(Int32(0), to: &bytes)
            CopyText.digits(i, into: &bytes)
            let length = Int32(bytes.count - start - 4).bigEndian
            withUnsafeBytes(of: length) { bytes.replaceSubrange(start..<start + 4, with: $0) }
        case (.real(let d), 25), (.real(let d), 1043):
            var digits = CopyText.float(d)
            digits.withUTF8 { utf8 in
                CopyBinary.append(Int32(utf8.count), to: &bytes)
                bytes.append(contentsOf: utf8)
            }
        case (.blob(let b), 17):
            CopyBinary.append(Int32(b.count), to: &bytes)
            bytes.append(contentsOf: b)
        default:
            return false
        }
        return true
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
