import Foundation
import SegmentCore

/// COPY's binary format (PostgreSQL's "COPY" reference page, "Binary Format"): a signature
/// and two zero words, then per row a 16-bit field count and per field a 32-bit length (-1 for
/// NULL) and the value in the type's binary form, all big-endian; a count of -1 ends the data.
/// The one encoder of fields: the load's rows (`CopyRows`) and the appender (`CopyAppender`)
/// both write through it.
enum CopyBinary {
    static let header: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00] + [0, 0, 0, 0] + [0, 0, 0, 0]
    static let trailer: [UInt8] = [0xFF, 0xFF]
    /// 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch, in Unix seconds.
    static let epoch: Int64 = 946_684_800

    /// The column types a field is written in.
    enum FieldType: Sendable, Equatable {
        case text, bigint, integer, smallint, boolean, double, timestamptz, bytea

        /// The PostgreSQL type a warehouse column has (docs/postgresql.md).
        init(_ type: ColumnType) {
            switch type {
            case .text: self = .text
            case .integer: self = .bigint
            case .real: self = .double
            case .boolean: self = .boolean
            case .timestamp: self = .timestamptz
            }
        }

        /// A type by its OID (pg_type), when it is one of these.
        init?(oid: UInt32) {
            switch oid {
            case 25, 1043: self = .text
            case 20: self = .bigint
            case 23: self = .integer
            case 21: self = .smallint
            case 16: self = .boolean
            case 701: self = .double
            case 1184: self = .timestamptz
            case 17: self = .bytea
            default: return nil
            }
        }
    }

    static func microseconds(_ instant: Instant) -> Int64 {
        (instant.seconds - epoch) * 1_000_000 + instant.nanos / 1000
    }

    /// An integer big-endian, as every number of the format is.
    @inline(__always) static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    // MARK: Fields: each appends a length and a value and returns true, or appends nothing
    // and returns false when the value cannot be written in that type.

    static func appendNull(to bytes: inout [UInt8]) { append(Int32(-1), to: &bytes) }

    @inline(__always) private static func appendFixed<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        append(Int32(MemoryLayout<T>.size), to: &bytes)
        append(value, to: &bytes)
    }

    static func appendField(integer value: Int64, as type: FieldType, to bytes: inout [UInt8]) -> Bool {
        switch type {
        case .bigint: appendFixed(value, to: &bytes)
        case .integer:
            guard let narrow = Int32(exactly: value) else { return false }
            appendFixed(narrow, to: &bytes)
        case .smallint:
            guard let narrow = Int16(exactly: value) else { return false }
            appendFixed(narrow, to: &bytes)
        case .boolean:
            append(Int32(1), to: &bytes)
            bytes.append(value != 0 ? 1 : 0)
        case .double: appendFixed(Double(value).bitPattern, to: &bytes)
        case .text:
            let start = bytes.count
            append(Int32(0), to: &bytes)
            CopyText.digits(value, into: &bytes)
            let length = Int32(bytes.count - start - 4).bigEndian
            withUnsafeBytes(of: length) { bytes.replaceSubrange(start..<start + 4, with: $0) }
        case .timestamptz, .bytea: return false
        }
        return true
    }

    static func appendField(real value: Double, as type: FieldType, to bytes: inout [UInt8]) -> Bool {
        switch type {
        case .double: appendFixed(value.bitPattern, to: &bytes)
        case .bigint, .integer, .smallint:
            // A whole number written as a float (`3.0`) fits an integer column.
            guard value == value.rounded(), abs(value) < 9.2e18 else { return false }
            return appendField(integer: Int64(value), as: type, to: &bytes)
        case .text:
            var digits = CopyText.float(value)
            return digits.withUTF8 { appendField(text: UnsafeRawBufferPointer($0), as: .text, to: &bytes) }
        case .boolean, .timestamptz, .bytea: return false
        }
        return true
    }

    /// Text as its column's type wants it: as it is for text (refused with a NUL, which
    /// PostgreSQL's text cannot hold), a timestamp as microseconds.
    static func appendField(text: UnsafeRawBufferPointer, as type: FieldType, to bytes: inout [UInt8]) -> Bool {
        switch type {
        case .text:
            if let base = text.baseAddress, memchr(base, 0, text.count) != nil { return false }
            append(Int32(text.count), to: &bytes)
            bytes.append(contentsOf: text)
        case .timestamptz:
            guard let instant = text.withMemoryRebound(to: UInt8.self, { Timestamp.parse(bytes: $0) }) else { return false }
            appendFixed(microseconds(instant), to: &bytes)
        default: return false
        }
        return true
    }

    static func appendField(bytes value: [UInt8], as type: FieldType, to bytes: inout [UInt8]) -> Bool {
        guard type == .bytea else { return false }
        append(Int32(value.count), to: &bytes)
        bytes.append(contentsOf: value)
        return true
    }
}
