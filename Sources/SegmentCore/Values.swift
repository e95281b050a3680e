/// The column types of the warehouse (docs/warehouse.md, Types).
public enum ColumnType: String, Sendable, Hashable, CaseIterable {
    case boolean = "BOOLEAN"
    case integer = "INTEGER"
    case real = "REAL"
    case timestamp = "TIMESTAMP"
    case text = "TEXT"

    /// The narrowest type that holds values of both types:
    /// boolean < integer < real < text, timestamp < text.
    public func widened(with other: ColumnType) -> ColumnType {
        if self == other { return self }
        switch (self, other) {
        case (.boolean, .integer), (.integer, .boolean): return .integer
        case (.boolean, .real), (.real, .boolean), (.integer, .real), (.real, .integer): return .real
        default: return .text
        }
    }
}

/// One scalar of a message, typed as the warehouse sees it, before it meets a column.
public enum FieldValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case real(Double)
    /// A JSON number that neither `Int64` nor `Double` holds exactly: its text.
    case bigNumber(String)
    case text(String)
    /// A string that parses as a full date-time: its normalised UTC form and the original.
    case timestamp(normalized: String, raw: String)
    /// An array, kept as JSON text.
    case json(String)

    /// The type a new column gets from this value, or nil for null.
    public var columnType: ColumnType? { tag.columnType }

    /// The kind of value, as records encode it.
    package var tag: MessageRecords.Tag {
        switch self {
        case .null: return .null
        case .bool: return .bool
        case .int: return .int
        case .real: return .real
        case .text: return .text
        case .timestamp: return .timestamp
        case .json: return .json
        case .bigNumber: return .bigNumber
        }
    }

    /// The value as JSON text, for `_discards` and `_extra`.
    public var jsonText: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .real(let d): return JSONWriter.formatDouble(d)
        case .bigNumber(let s): return s
        case .text(let s): return JSONWriter.string(.string(s))
        case .timestamp(_, let raw): return JSONWriter.string(.string(raw))
        case .json(let s): return s
        }
    }

    package var jsonValue: JSONValue {
        switch self {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .real(let d): return .double(d)
        case .bigNumber(let s): return .bigNumber(s)
        case .text(let s): return .string(s)
        case .timestamp(_, let raw): return .string(raw)
        case .json(let s): return (try? JSONParser.parse(s)) ?? .string(s)
        }
    }

    /// Classifies one JSON scalar; arrays become JSON text. Objects are flattened by the caller.
    package static func from(_ json: JSONValue) -> FieldValue {
        switch json {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .real(d)
        case .bigNumber(let s): return .bigNumber(s)
        case .string(let s):
            if looksLikeDateTime(s), let instant = Timestamp.parse(s) {
                return .timestamp(normalized: Timestamp.format(instant), raw: s)
            }
            return .text(s)
        case .array, .object: return .json(JSONWriter.string(json))
        }
    }

    /// A cheap test before the full parse: `dddd-d` at the start and long enough for a time.
    @inline(__always) package static func looksLikeDateTime(_ s: String) -> Bool {
        let u = s.utf8
        guard u.count >= 15, u.count <= 64 else { return false }
        var it = u.makeIterator()
        for k in 0..<5 {
            guard let c = it.next() else { return false }
            if k < 4 { if c < 0x30 || c > 0x39 { return false } } else if c != 0x2d { return false }
        }
        return true
    }
}

/// A value bound for one column of one row. Column and source key are ids in the run's
/// `NameTable`.
public struct Field: Sendable {
    /// The column's warehouse name.
    public var column: Int32
    /// The dotted path of the key in the message (`properties.orderId`), for the schema catalog.
    public var key: Int32
    public var value: FieldValue

    public init(column: Int32, key: Int32, value: FieldValue) {
        self.column = column
        self.key = key
        self.value = value
    }
}

/// A value kept out of its column before the row is written (two keys of one message on
/// one column); it goes to `_discards` with the row's id.
public struct PendingDiscard: Sendable, Equatable {
    public var column: Int32
    /// The source key of the value, when it is a key of the message that lost to another.
    public var key: Int32?
    public var value: String
    public var reason: String

    public init(column: Int32, key: Int32? = nil, value: String, reason: String) {
        self.column = column
        self.key = key
        self.value = value
        self.reason = reason
    }
}
