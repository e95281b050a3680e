import CLibPQ
import Foundation
import SegmentCore
import SegmentWarehouse

/// A text value with a NUL character, which PostgreSQL's text type cannot hold.
public struct CopyValueError: Error, CustomStringConvertible {
    public var value: String
    public var description: String { "PostgreSQL text cannot hold the NUL character (\\u0000) in \(JSONWriter.string(.string(value)))" }
}

/// Rows in COPY's text format: columns separated by tabs, rows by newlines, NULL as `\N`, and
/// backslash, tab, newline and carriage return escaped in values.
public struct CopyText {
    public private(set) var bytes: [UInt8] = []
    private var first = true

    public init() {}

    public mutating func null() { separate(); bytes += [0x5c, 0x4e] }

    public mutating func text(_ value: String) {
        separate()
        var value = value
        value.withUTF8 { CopyText.escape(UnsafeRawBufferPointer($0), into: &bytes) }
    }

    /// Appends text as COPY's text format wants it: backslash, tab, newline and carriage
    /// return escaped, the runs between them copied whole.
    @inline(__always)
    static func escape(_ text: UnsafeRawBufferPointer, into bytes: inout [UInt8]) {
        var run = 0
        for (i, byte) in text.enumerated() {
            let escaped: UInt8
            switch byte {
            case 0x5c: escaped = 0x5c
            case 0x09: escaped = 0x74
            case 0x0a: escaped = 0x6e
            case 0x0d: escaped = 0x72
            default: continue
            }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: text[run..<i]))
            bytes.append(0x5c)
            bytes.append(escaped)
            run = i + 1
        }
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: text[run...]))
    }

    /// A warehouse value in its column's type (nil: as it is). SQLite's BOOLEAN is 0 or 1,
    /// PostgreSQL's `t` or `f`; timestamps are SQLite's `YYYY-MM-DD HH:MM:SS.sss` text, which
    /// `timestamptz` reads as UTC (the session's time zone); a BLOB goes as bytea hex. Throws
    /// for text with a NUL character, which PostgreSQL's text cannot hold (the caller keeps the
    /// value elsewhere, by the rule for values a column cannot take, docs/warehouse.md, Types).
    public mutating func value(_ value: SQLValue, as type: ColumnType? = nil) throws {
        switch value {
        case .null: null()
        case .integer(let i):
            if type == .boolean { text(i != 0 ? "t" : "f") } else { separate(); Self.digits(i, into: &bytes) }
        case .real(let d):
            text(Self.float(d))
        case .text(let s):
            var s = s
            let hasNul = s.withUTF8 { memchr($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, 0, $0.count) != nil }
            if hasNul { throw CopyValueError(value: s) }
            text(s)
        case .blob(let b): text("\\x" + hexString(b))
        }
    }

    /// An integer's decimal digits, written without a String in between.
    static func digits(_ i: Int64, into bytes: inout [UInt8]) {
        if i < 0 { bytes.append(0x2d) }
        var v = i.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var at = 20
            repeat {
                at -= 1
                buffer[at] = UInt8(0x30 + v % 10)
                v /= 10
            } while v > 0
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[at...]))
        }
    }

    /// A double as `float8` reads it: `NaN` and the infinities spelled out.
    static func float(_ d: Double) -> String {
        d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : String(d)
    }

    public mutating func endRow() { bytes.append(0x0a); first = true }

    /// Hands back what is buffered and starts again.
    public mutating func take() -> [UInt8] { defer { bytes.removeAll(keepingCapacity: true) }; return bytes }

    private mutating func separate() {
        if !first { bytes.append(0x09) }
        first = false
    }
}
