import SegmentCore
import SegmentStages

/// Where `RowWriter` puts a row's values: SQLite's prepared INSERT (`SQLiteRows`) or a
/// PostgreSQL COPY buffer (`CopyRows`). A row is begun, its values set by column position,
/// then ended.
package protocol RowTarget: AnyObject {
    associatedtype Sink: ValueSink
    /// Bytes a row's values may take where the database keeps a row within a page (PostgreSQL):
    /// the values past it go to the row's `_extra` JSON (see `RowSize`); nil: no such limit.
    var rowBudget: Int? { get }
    /// Starts a row of `state`'s table.
    func begin(_ state: TableState) throws
    /// Where the value of column `index` goes.
    func sink(at index: Int) -> Sink
    /// Bytes that stay alive and unchanged until the row ends.
    func staticText(_ bytes: UnsafeRawBufferPointer, at index: Int)
    /// Ends the row: returns its rowid where the database has one, and the values it cannot
    /// hold (their columns, JSON text and reason), which go to `_discards`.
    func end() throws -> (rowId: Int64?, refused: [(column: Int, value: String, reason: String)])
}

/// Writes the rows the Split stage made of a chunk's admitted messages, each value converted
/// to its column's type by `ValueConversion` (what cannot be stored without loss goes to
/// `_discards`), into a `RowTarget`. The catalog has created every column the rows use before
/// they come here: a value without a column is past its table's column limit (or is a
/// property of a track call past the event table limit) and goes to the row's `_extra` JSON.
package final class RowWriter<Target: RowTarget> {
    package let target: Target
    package let catalog: Catalog
    package let names: NameTable
    private let bookkeeping: Bookkeeping
    /// The load's `uuid_ts` as bytes owned by the writer (freed in deinit), set without copying.
    private let uuidTs: UnsafeMutableRawBufferPointer
    private let uuidTsText: String
    /// Values that went to `_extra` because their table was at its column limit.
    package var overflowValues: Int64 = 0

    package init(target: Target, catalog: Catalog, bookkeeping: Bookkeeping, uuidTs: String) {
        self.target = target
        self.catalog = catalog
        self.names = catalog.names
        self.bookkeeping = bookkeeping
        uuidTsText = uuidTs
        self.uuidTs = UnsafeMutableRawBufferPointer.allocate(byteCount: uuidTs.utf8.count, alignment: 1)
        self.uuidTs.copyBytes(from: uuidTs.utf8)
    }

    deinit {
        uuidTs.deallocate()
    }

    package func write(_ rows: [SplitRow], of headers: [RecordCursor.Header], in raw: UnsafeRawBufferPointer) throws {
        for row in rows {
            try insert(headers[row.record], in: raw, table: row.plan.table, withPayload: row.plan.withPayload)
        }
    }

    /// Writes one row of a record: common and context fields, and the properties or traits
    /// (with the record's discards) when `withPayload`.
    private func insert(_ header: RecordCursor.Header, in raw: UnsafeRawBufferPointer, table: Int32, withPayload: Bool) throws {
        guard let state = catalog[table] else {
            throw WarehouseError(message: "internal error: no table \(names.name(table)) for message \(header.id.string); the schema step did not create it")
        }
        try target.begin(state)
        var discards: [PendingDiscard] = []
        var overflow: [(key: String, value: JSONValue)] = []
        var extraText: String?
        var cursor = RecordCursor(raw)
        cursor.offset = header.fieldsOffset
        let fieldCount = header.common + header.context + (withPayload ? header.payload : 0)
        // Past the budget (PostgreSQL's page), values go to `_extra`, where the table has one.
        let budget = state.index(of: NameTable.extra) != nil ? target.rowBudget : nil
        var size = 0
        for _ in 0..<fieldCount {
            let (column, key, value) = cursor.field()
            if case .null = value { continue }
            if let budget, column != NameTable.extra {
                size += RowSize.inline(value)
                if size > budget {
                    overflow.append((names.keyName(key).droppingScope(), value.value.jsonValue))
                    continue
                }
            }
            guard let index = state.index(of: column) else {
                guard column != NameTable.extra, state.index(of: NameTable.extra) != nil else {
                    throw WarehouseError(message: "internal error: no column \(names.name(column)) in \(state.name) for message \(header.id.string); the schema step did not create it")
                }
                // Past the table's column limit: the value goes to the row's `_extra` JSON.
                overflow.append((names.keyName(key).droppingScope(), value.value.jsonValue))
                continue
            }
            if column == NameTable.extra, case .json(let text) = value {
                extraText = text.string
                continue
            }
            var sink = target.sink(at: index)
            if let reason = ValueConversion.store(value, as: state.types[index], into: &sink) {
                discards.append(PendingDiscard(column: column, value: value.value.jsonText, reason: reason))
            }
        }
        if withPayload {
            for _ in 0..<header.discards { discards.append(cursor.discard()) }
        }
        if !overflow.isEmpty {
            var members: [(key: String, value: JSONValue)] = []
            if let extraText, case .object(let existing)? = try? JSONParser.parse(extraText) { members = existing }
            extraText = JSONWriter.string(.object(members + overflow))
            // A call past the event table limit has all its properties here by design; only a
            // table at its column limit counts values kept out of their columns.
            if !header.pastLimit { overflowValues += Int64(overflow.count) }
        }
        if let extraText, let index = state.index(of: NameTable.extra) {
            var sink = target.sink(at: index)
            sink.text(extraText)
        }
        if let index = state.index(of: NameTable.uuidTs) {
            target.staticText(UnsafeRawBufferPointer(uuidTs), at: index)
        }
        let (rowId, refused) = try target.end()
        state.rowsWritten += 1
        for value in refused {
            discards.append(PendingDiscard(column: state.columnIds[value.column], value: value.value, reason: value.reason))
        }
        if !discards.isEmpty {
            try bookkeeping.discards(discards, table: state.name, rowId: rowId, messageId: header.id.string,
                                     receivedAtMilliseconds: header.receivedAtMilliseconds)
        }
    }

}

extension String {
    /// `properties.a.b` → `a.b`, `traits.x` → `x`; context keys keep their `context.` prefix.
    public func droppingScope() -> String {
        for scope in ["properties.", "traits."] where hasPrefix(scope) {
            return String(dropFirst(scope.count))
        }
        return self
    }
}

/// How many bytes a value takes at most inside a PostgreSQL row: 8 for a number, a timestamp
/// or a boolean (with alignment), a text's length and a byte up to 18 (longer text can be
/// moved out of the row, leaving an 18-byte pointer). A row must fit in an 8 KB page.
package enum RowSize {
    /// What a PostgreSQL row's values may take before the rest go to `_extra`.
    package static let postgresBudget = 7_000

    @inline(__always)
    package static func inline(_ value: FieldView) -> Int {
        switch value {
        case .null: return 0
        case .bool, .int, .real, .timestamp: return 8
        case .text(let bytes), .json(let bytes), .bigNumber(let bytes): return min(bytes.count + 1, 18)
        }
    }

    /// What a record's row takes at most.
    package static func of(_ header: RecordCursor.Header, withPayload: Bool, in raw: UnsafeRawBufferPointer) -> Int {
        var cursor = RecordCursor(raw)
        cursor.offset = header.fieldsOffset
        var size = 0
        for _ in 0..<(header.common + header.context + (withPayload ? header.payload : 0)) {
            size += inline(cursor.field().value)
        }
        return size
    }
}

/// Writes `users` and `accounts` rows one by one, each replacing the old one (SQLite; a
/// PostgreSQL file upserts its rows at once, with the same assignments).
package final class ProfileWriter {
    package let session: any SQLSession
    package let catalog: Catalog
    package let uuidTs: String
    private var upserts: [Int32: (columns: Int, statement: any SQLPrepared)] = [:]

    package init(session: any SQLSession, catalog: Catalog, uuidTs: String) {
        self.session = session
        self.catalog = catalog
        self.uuidTs = uuidTs
    }

    /// `ON CONFLICT (id) DO UPDATE SET` of every column but the id.
    package static func assignments(_ columns: [String]) -> String {
        columns.dropFirst().map(quoteIdentifier).map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
    }

    /// Writes one row; `traits` in the order of the table's `traitColumns`.
    package func write(_ profile: Profile, id: String, receivedAt: SQLValue, traits: [SQLValue]) throws {
        guard let table = catalog[profile.table] else { return }
        let columns = ["id", "received_at", "uuid_ts"] + table.traitColumns
        let upsert: any SQLPrepared
        if let cached = upserts[profile.table], cached.columns == columns.count {
            upsert = cached.statement
        } else {
            let quoted = columns.map(quoteIdentifier)
            upsert = try session.prepared("""
                INSERT INTO \(quoteIdentifier(table.name)) (\(quoted.joined(separator: ", ")))
                VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", ")))
                ON CONFLICT (id) DO UPDATE SET \(Self.assignments(columns))
                """)
            upserts[profile.table] = (columns.count, upsert)
        }
        try upsert.perform([.text(id), receivedAt, .text(uuidTs)] + traits)
    }
}
