/// Normalized messages packed into one byte buffer per chunk: how workers hand messages to the
/// writer. The writer binds text straight from these bytes (SQLITE_STATIC), so writing a row
/// allocates nothing, and freeing a chunk is one deallocation instead of thousands.
///
/// A record: type u8 (its high bit set: a track call whose event is past the event table limit,
/// see `markPastLimit`), table i32, received_at ms i64, messageId, userId?, groupId?, event?
/// (strings are u32 length + bytes; an absent one has length 0xFFFF_FFFF), then the counts of
/// common, context and payload fields and of discards (u32 each), the fields
/// (column i32, key i32, tag u8, payload) and the discards (column i32, value, reason).
package struct MessageRecords: Sendable {
    package private(set) var bytes: [UInt8] = []
    package private(set) var count = 0

    package init(capacity: Int = 1 << 20) {
        bytes.reserveCapacity(capacity)
    }

    /// Records already packed (read back from a spill).
    package init(count: Int, bytes: [UInt8]) {
        self.count = count
        self.bytes = bytes
    }

    /// The records whose `keep` flag is set, in order (their bytes copied as they are).
    package func filtered(_ keep: [Bool]) -> MessageRecords {
        precondition(keep.count == count)
        var out = MessageRecords(capacity: bytes.count)
        bytes.withUnsafeBytes { raw in
            RecordCursor.forEachRecord(count, in: raw) { i, range, _ in
                guard keep[i] else { return }
                out.bytes.append(contentsOf: raw[range])
                out.count += 1
            }
        }
        return out
    }

    /// The type byte's bit that says a track call's event is past the event table limit.
    package static let pastLimitBit: UInt8 = 0x80

    /// Marks the track calls whose event table is in `tables` as past the event table limit:
    /// their full row goes to `tracks` (see `Splitter`). The record's table stays the event's,
    /// so the catalog can say which table it would have had.
    package mutating func markPastLimit(_ tables: Set<Int32>) {
        guard !tables.isEmpty else { return }
        var starts: [Int] = []
        bytes.withUnsafeBytes { raw in
            RecordCursor.forEachRecord(count, in: raw) { _, range, header in
                if header.type == .track && tables.contains(header.table) { starts.append(range.lowerBound) }
            }
        }
        for start in starts { bytes[start] |= Self.pastLimitBit }
    }

    package enum Tag: UInt8 {
        case null, bool, int, real, text, timestamp, json, bigNumber

        /// The type a new column gets from a value of this kind (docs/warehouse.md, Types).
        package var columnType: ColumnType? {
            switch self {
            case .null: return nil
            case .bool: return .boolean
            case .int: return .integer
            case .real: return .real
            case .timestamp: return .timestamp
            case .text, .json, .bigNumber: return .text
            }
        }
    }

    package mutating func append(_ message: Message) {
        count += 1
        bytes.append(UInt8(CallType.allCases.firstIndex(of: message.type)!))
        put(message.table)
        put(message.receivedAt.milliseconds)
        put(message.id)
        putOptional(message.userId)
        putOptional(message.groupId)
        putOptional(message.event)
        put(UInt32(message.common.count))
        put(UInt32(message.context.count))
        put(UInt32(message.payload.count))
        put(UInt32(message.discards.count))
        for list in [message.common, message.context, message.payload] {
            for field in list { put(field) }
        }
        for discard in message.discards {
            put(discard.column)
            put(discard.key ?? -1)
            put(discard.value)
            put(discard.reason)
        }
    }

    private mutating func put(_ field: Field) {
        put(field.column)
        put(field.key)
        bytes.append(field.value.tag.rawValue)
        switch field.value {
        case .null: break
        case .bool(let b): bytes.append(b ? 1 : 0)
        case .int(let i): put(i)
        case .real(let d): put(d.bitPattern)
        case .text(let s), .json(let s), .bigNumber(let s): put(s)
        case .timestamp(let normalized, let raw): put(normalized); put(raw)
        }
    }

    private mutating func put(_ value: UInt32) {
        bytes.append(UInt8(truncatingIfNeeded: value))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value >> 16))
        bytes.append(UInt8(truncatingIfNeeded: value >> 24))
    }

    private mutating func put(_ value: Int32) { put(UInt32(bitPattern: value)) }

    private mutating func put(_ value: UInt64) {
        put(UInt32(truncatingIfNeeded: value))
        put(UInt32(truncatingIfNeeded: value >> 32))
    }

    private mutating func put(_ value: Int64) { put(UInt64(bitPattern: value)) }

    private mutating func put(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            put(UInt32(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    private mutating func putOptional(_ string: String?) {
        if let string { put(string) } else { put(UInt32.max) }
    }
}

/// A field as the writer reads it: text stays in the chunk's bytes.
package enum FieldView {
    case null
    case bool(Bool)
    case int(Int64)
    case real(Double)
    case text(UnsafeRawBufferPointer)
    case timestamp(normalized: UnsafeRawBufferPointer, raw: UnsafeRawBufferPointer)
    case json(UnsafeRawBufferPointer)
    case bigNumber(UnsafeRawBufferPointer)

    package var columnType: ColumnType? {
        switch self {
        case .null: return MessageRecords.Tag.null.columnType
        case .bool: return MessageRecords.Tag.bool.columnType
        case .int: return MessageRecords.Tag.int.columnType
        case .real: return MessageRecords.Tag.real.columnType
        case .timestamp: return MessageRecords.Tag.timestamp.columnType
        case .text: return MessageRecords.Tag.text.columnType
        case .json: return MessageRecords.Tag.json.columnType
        case .bigNumber: return MessageRecords.Tag.bigNumber.columnType
        }
    }

    /// The value as an owned `FieldValue`, for the rare paths (conversions, discards, `_extra`).
    package var value: FieldValue {
        switch self {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .real(let d): return .real(d)
        case .text(let t): return .text(String(decoding: t, as: UTF8.self))
        case .timestamp(let n, let r): return .timestamp(normalized: String(decoding: n, as: UTF8.self), raw: String(decoding: r, as: UTF8.self))
        case .json(let t): return .json(String(decoding: t, as: UTF8.self))
        case .bigNumber(let t): return .bigNumber(String(decoding: t, as: UTF8.self))
        }
    }
}

/// Reads records from the bytes of a `MessageRecords`, in order.
package struct RecordCursor {
    package let base: UnsafeRawBufferPointer
    package var offset = 0

    package init(_ base: UnsafeRawBufferPointer) {
        self.base = base
    }

    /// The header of the next record; the cursor then stands at its first field.
    package struct Header {
        package var type: CallType
        /// The table of the record's full row (for a track call, its event's table).
        package var table: Int32
        /// A track call whose event is past the event table limit: its one row is in `tracks`,
        /// properties in `_extra` (`table` is the table the event would have had).
        package var pastLimit: Bool
        package var receivedAtMilliseconds: Int64
        package var id: UnsafeRawBufferPointer
        package var userId: UnsafeRawBufferPointer?
        package var groupId: UnsafeRawBufferPointer?
        package var event: UnsafeRawBufferPointer?
        package var common: Int
        package var context: Int
        package var payload: Int
        package var discards: Int
        /// Where the fields start, for reading them again.
        package var fieldsOffset: Int
    }

    /// The headers of the `count` records in `raw`, each with where its fields start.
    package static func headers(of count: Int, in raw: UnsafeRawBufferPointer) -> [Header] {
        var headers: [Header] = []
        headers.reserveCapacity(count)
        forEachRecord(count, in: raw) { _, _, header in headers.append(header) }
        return headers
    }

    /// Calls `body` with each of the `count` records in `raw`: its number, its bytes' range
    /// and its header.
    @inline(__always)
    package static func forEachRecord(_ count: Int, in raw: UnsafeRawBufferPointer, _ body: (Int, Range<Int>, Header) -> Void) {
        var cursor = RecordCursor(raw)
        for i in 0..<count {
            let start = cursor.offset
            let header = cursor.header()
            cursor.skipFields(header.common + header.context + header.payload)
            cursor.skipDiscards(header.discards)
            body(i, start..<cursor.offset, header)
        }
    }

    package mutating func header() -> Header {
        let type = CallType.allCases[Int(base[offset] & ~MessageRecords.pastLimitBit)]
        let pastLimit = base[offset] & MessageRecords.pastLimitBit != 0
        offset += 1
        let table: Int32 = read()
        let received: Int64 = read()
        let id = string()!
        let userId = string()
        let groupId = string()
        let event = string()
        let common = Int(read() as UInt32)
        let context = Int(read() as UInt32)
        let payload = Int(read() as UInt32)
        let discards = Int(read() as UInt32)
        return Header(type: type, table: table, pastLimit: pastLimit, receivedAtMilliseconds: received, id: id, userId: userId, groupId: groupId,
                      event: event, common: common, context: context, payload: payload, discards: discards, fieldsOffset: offset)
    }

    package mutating func field() -> (column: Int32, key: Int32, value: FieldView) {
        let column: Int32 = read()
        let key: Int32 = read()
        let tag = MessageRecords.Tag(rawValue: base[offset])!
        offset += 1
        let value: FieldView
        switch tag {
        case .null: value = .null
        case .bool: value = .bool(base[offset] != 0); offset += 1
        case .int: value = .int(read())
        case .real: value = .real(Double(bitPattern: read()))
        case .text: value = .text(string()!)
        case .timestamp:
            let normalized = string()!
            value = .timestamp(normalized: normalized, raw: string()!)
        case .json: value = .json(string()!)
        case .bigNumber: value = .bigNumber(string()!)
        }
        return (column, key, value)
    }

    package mutating func discard() -> PendingDiscard {
        let column: Int32 = read()
        let key: Int32 = read()
        let value = String(decoding: string()!, as: UTF8.self)
        let reason = String(decoding: string()!, as: UTF8.self)
        return PendingDiscard(column: column, key: key < 0 ? nil : key, value: value, reason: reason)
    }

    /// Skips `count` discards without decoding their text.
    package mutating func skipDiscards(_ count: Int) {
        for _ in 0..<count {
            offset += 8  // column, key
            _ = string()
            _ = string()
        }
    }

    /// Skips `count` fields.
    package mutating func skipFields(_ count: Int) {
        for _ in 0..<count { _ = field() }
    }

    @inline(__always) private mutating func read<T: FixedWidthInteger>() -> T {
        let value = base.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: value)
    }

    @inline(__always) private mutating func string() -> UnsafeRawBufferPointer? {
        let length: UInt32 = read()
        if length == UInt32.max { return nil }
        let slice = UnsafeRawBufferPointer(rebasing: base[offset..<(offset + Int(length))])
        offset += Int(length)
        return slice
    }
}

extension UnsafeRawBufferPointer {
    /// The bytes as a String (copied).
    package var string: String { String(decoding: self, as: UTF8.self) }

    package func equals(_ bytes: [UInt8]) -> Bool {
        count == bytes.count && elementsEqual(bytes)
    }
}
