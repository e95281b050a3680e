import SegmentCore

/// What a chunk's rows need of the schema: every (table, column, source key) its rows use and
/// every (table, raw event name) its event rows carry, each once, in the order first used, with
/// the record that first uses it. The worker that hands the chunk on finds them (after the
/// copies that lost within the run are dropped), off the writer's thread; the writer's schema
/// step then creates, before the chunk's rows, what the warehouse lacks of what the admitted
/// records use, so the row writer never meets a missing column.
package struct SchemaNeeds: Sendable {
    package enum Origin: UInt8, Sendable {
        /// A column every row of the call type has (id, user_id, timestamp, ...).
        case common
        case context
        /// A property (or, for identify and group calls, a trait).
        case payload
        /// A source key that lost to another key of the same message for one column: noted in
        /// the catalog with the column's keys when the column exists, never a reason to create it.
        case discard
    }

    package struct Use: Sendable {
        package var table: Int32
        package var column: Int32
        package var key: Int32
        /// The first record of the chunk that uses it.
        package var record: Int32
        package var origin: Origin
        /// The type of that first value (a column the run's plan has no type for takes it).
        package var type: ColumnType?
        /// The call type of the record (the kind of table a new table is).
        package var callType: CallType
    }

    package struct Event: Sendable {
        package var table: Int32
        package var name: String
        package var record: Int32
    }

    package private(set) var uses: [Use] = []
    package private(set) var events: [Event] = []

    private struct UseKey: Hashable {
        var table: Int32
        var column: Int32
        var key: Int32
    }

    /// What one table's rows of the chunk used so far: per column id, the first source key
    /// seen (-1: none), and the last event name. The finder runs on every field of every row,
    /// off the writer's thread but on the same 2 cores, so the common case (a column seen
    /// before with the same key) is an array read, not a hash.
    private final class TableUses {
        var firstKey: [Int32] = []
        var lastEvent: [UInt8] = []
        var events = Set<String>()

        /// True when `column` was not seen with `key` before (and now is).
        @inline(__always) func note(_ column: Int32, _ key: Int32, others: inout Set<UseKey>, table: Int32) -> Bool {
            let c = Int(column)
            if c >= firstKey.count { firstKey.append(contentsOf: repeatElement(-1, count: c + 64 - firstKey.count)) }
            let first = firstKey[c]
            if first == key { return false }
            if first < 0 {
                firstKey[c] = key
                return true
            }
            // A second key for one column (a name collision): rare, hashed.
            return others.insert(UseKey(table: table, column: column, key: key)).inserted
        }
    }

    /// The needs of the records in `raw`, every record of them counted.
    package static func of(_ headers: [RecordCursor.Header], in raw: UnsafeRawBufferPointer) -> SchemaNeeds {
        var needs = SchemaNeeds()
        var tables: [Int32: TableUses] = [:]
        var others = Set<UseKey>()
        for (r, header) in headers.enumerated() {
            let record = Int32(r)
            Splitter.forEachRow(header) { plan in
                let uses: TableUses
                if let known = tables[plan.table] { uses = known } else {
                    uses = TableUses()
                    tables[plan.table] = uses
                }
                var cursor = RecordCursor(raw)
                cursor.offset = header.fieldsOffset
                let fields = header.common + header.context + (plan.withPayload ? header.payload : 0)
                for i in 0..<fields {
                    var (column, key, value) = cursor.field()
                    if case .null = value { continue }
                    let origin: Origin = i < header.common ? .common : i < header.common + header.context ? .context : .payload
                    // An event past the event table limit keeps its properties in the tracks
                    // row's `_extra`: they need that column, never one of their own.
                    if header.pastLimit && origin == .payload { (column, key) = (NameTable.extra, NameTable.extra) }
                    guard uses.note(column, key, others: &others, table: plan.table) else { continue }
                    needs.uses.append(Use(table: plan.table, column: column, key: key, record: record, origin: origin,
                                          type: value.columnType, callType: header.type))
                }
                guard plan.withPayload && !header.pastLimit else { return }
                if let event = header.event, !event.equals(uses.lastEvent) {
                    uses.lastEvent = Array(event)
                    let name = event.string
                    if uses.events.insert(name).inserted {
                        needs.events.append(Event(table: plan.table, name: name, record: record))
                    }
                }
                for _ in 0..<header.discards {
                    let discard = cursor.discard()
                    guard let key = discard.key, uses.note(discard.column, key, others: &others, table: plan.table) else { continue }
                    needs.uses.append(Use(table: plan.table, column: discard.column, key: key, record: record, origin: .discard,
                                          type: nil, callType: header.type))
                }
            }
        }
        return needs
    }

    /// Whether an admitted record uses `use`: its first record, or (rarely: that record was
    /// already in the warehouse) a later one.
    package static func isUsed(_ use: Use, headers: [RecordCursor.Header], admitted: [Bool], in raw: UnsafeRawBufferPointer) -> Bool {
        if admitted[Int(use.record)] { return true }
        for r in (Int(use.record) + 1)..<headers.count where admitted[r] {
            let header = headers[r]
            var found = false
            Splitter.forEachRow(header) { plan in
                guard plan.table == use.table, !found else { return }
                var cursor = RecordCursor(raw)
                cursor.offset = header.fieldsOffset
                let fields = header.common + header.context + (plan.withPayload ? header.payload : 0)
                for i in 0..<fields {
                    var (column, key, value) = cursor.field()
                    if header.pastLimit && i >= header.common + header.context { (column, key) = (NameTable.extra, NameTable.extra) }
                    if column == use.column, key == use.key, !value.isNull { found = true; return }
                }
                guard plan.withPayload && !header.pastLimit else { return }
                for _ in 0..<header.discards {
                    let discard = cursor.discard()
                    if discard.column == use.column, discard.key == use.key { found = true; return }
                }
            }
            if found { return true }
        }
        return false
    }

    /// Whether an admitted record carries `event` for its table.
    package static func isUsed(_ event: Event, headers: [RecordCursor.Header], admitted: [Bool]) -> Bool {
        if admitted[Int(event.record)] { return true }
        let name = Array(event.name.utf8)
        for r in (Int(event.record) + 1)..<headers.count where admitted[r] {
            if headers[r].table == event.table, !headers[r].pastLimit, let other = headers[r].event, other.equals(name) { return true }
        }
        return false
    }
}

extension FieldView {
    package var isNull: Bool { if case .null = self { return true } else { return false } }
}
