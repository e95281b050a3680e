import SegmentCore

/// Where a stored value goes: a statement's parameter (`ParameterSink`), or a value a caller
/// looks at (`convert`). Text comes as bytes that live for the call.
package protocol ValueSink {
    mutating func null()
    mutating func integer(_ value: Int64)
    mutating func real(_ value: Double)
    mutating func text(_ bytes: UnsafeRawBufferPointer)
    mutating func text(_ string: String)
}

/// A value in a column of a given type (docs/warehouse.md, Types): lossless conversions are made,
/// anything that would lose information is a discard with a reason. One rule, used for every
/// row the loader writes.
enum ValueConversion {
    enum Conversion: Equatable {
        case value(SQLValue)
        case discard(String)
    }

    /// Stores `value` into `sink` as a column of `type` holds it; returns why it cannot be
    /// stored without losing information instead (and stores nothing).
    @inline(__always)
    static func store<Sink: ValueSink>(_ value: FieldView, as type: ColumnType, into sink: inout Sink) -> String? {
        switch (type, value) {
        case (_, .null): sink.null()
        case (.text, .text(let t)), (.text, .json(let t)), (.text, .bigNumber(let t)): sink.text(t)
        case (.text, .timestamp(_, let raw)): sink.text(raw)
        case (.timestamp, .timestamp(let normalized, _)): sink.text(normalized)
        case (.text, .bool), (.text, .int), (.text, .real): sink.text(jsonText(value))
        case (.boolean, .bool(let b)), (.integer, .bool(let b)): sink.integer(b ? 1 : 0)
        case (.integer, .int(let i)): sink.integer(i)
        case (.integer, .real(let d)) where d == d.rounded() && abs(d) < 9.2e18: sink.integer(Int64(d))
        case (.real, .real(let d)): sink.real(d)
        case (.real, .int(let i)) where abs(i) <= 1 << 53: sink.real(Double(i))
        case (.real, .bool(let b)): sink.real(b ? 1 : 0)
        default:
            return lossReason(value, type)
        }
        return nil
    }

    /// Kept out of `store`, so that `store` stays small enough to inline into the row writer.
    @inline(never)
    private static func lossReason(_ value: FieldView, _ type: ColumnType) -> String {
        let owned = value.value
        return "\(owned.jsonText.prefix(100)) (\(owned.columnType?.rawValue.lowercased() ?? "null")) does not fit a \(type.rawValue) column without losing information"
    }

    @inline(never)
    private static func jsonText(_ value: FieldView) -> String { value.value.jsonText }

    /// The same rule on an owned value: what the column would hold, or why it cannot.
    static func convert(_ value: FieldValue, to type: ColumnType) -> Conversion {
        value.withView { view in
            var capture = Capture()
            if let reason = store(view, as: type, into: &capture) { return .discard(reason) }
            return .value(capture.value)
        }
    }

    private struct Capture: ValueSink {
        var value = SQLValue.null
        mutating func null() { value = .null }
        mutating func integer(_ i: Int64) { value = .integer(i) }
        mutating func real(_ d: Double) { value = .real(d) }
        mutating func text(_ bytes: UnsafeRawBufferPointer) { value = .text(bytes.string) }
        mutating func text(_ string: String) { value = .text(string) }
    }
}

extension FieldValue {
    /// Calls `body` with the value as the records' borrowed form.
    package func withView<R>(_ body: (FieldView) -> R) -> R {
        switch self {
        case .null: return body(.null)
        case .bool(let b): return body(.bool(b))
        case .int(let i): return body(.int(i))
        case .real(let d): return body(.real(d))
        case .text(var s): return s.withUTF8 { body(.text(UnsafeRawBufferPointer($0))) }
        case .json(var s): return s.withUTF8 { body(.json(UnsafeRawBufferPointer($0))) }
        case .bigNumber(var s): return s.withUTF8 { body(.bigNumber(UnsafeRawBufferPointer($0))) }
        case .timestamp(var normalized, var raw):
            return normalized.withUTF8 { n in raw.withUTF8 { r in body(.timestamp(normalized: UnsafeRawBufferPointer(n), raw: UnsafeRawBufferPointer(r))) } }
        }
    }
}
