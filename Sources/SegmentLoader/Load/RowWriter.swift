/// Writes the rows the Split stage made of a chunk's admitted messages, one prepared INSERT
/// per table, each value converted to its column's type by `ValueConversion` (what cannot be
/// stored without loss goes to `_discards`). The catalog has created every column the rows use
/// before they come here: a value without a column is past its table's column limit (or is a
/// property of a track call past the event table limit) and goes to the row's `_extra` JSON.
final class RowWriter {
    let db: Database
    let catalog: Catalog
    let names: NameTable
    private let bookkeeping: Bookkeeping
    /// The load's `uuid_ts` as bytes owned by the writer (freed in deinit), bound without copying.
    private let uuidTs: UnsafeMutableRawBufferPointer
    private let uuidTsText: String
    /// Values that went to `_extra` because their table was at its column limit.
    var overflowValues: Int64 = 0

    init(catalog: Catalog, bookkeeping: Bookkeeping, uuidTs: String) {
        self.db = catalog.db
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

    func write(_ rows: [SplitRow], of headers: [RecordCursor.Header], in raw: UnsafeRawBufferPointer) throws {
        for row in rows {
            try insert(headers[row.record], in: raw, table: row.plan.table, withPayload: row.plan.withPayload)
        }
    }

    /// Inserts one row of a record: common and context fields, and the properties or traits
    /// (with the record's discards) when `withPayload`.
    private func insert(_ header: RecordCursor.Header, in raw: UnsafeRawBufferPointer, table: Int32, withPayload: Bool) throws {
        guard let state = catalog[table] else {
            throw WarehouseError(message: "internal error: no table \(names.name(table)) for message \(header.id.string); the schema step did not create it")
        }
        let statement = try insertStatement(for: state)
        defer { statement.reset() }
        var discards: [PendingDiscard] = []
        var overflow: [(key: String, value: JSONValue)] = []
        var extraText: String?
        var cursor = RecordCursor(raw)
        cursor.offset = header.fieldsOffset
        let fieldCount = header.common + header.context + (withPayload ? header.payload : 0)
        for _ in 0..<fieldCount {
            let (column, key, value) = cursor.field()
            if case .null = value { continue }
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
            var parameter = ParameterSink(statement, index: Int32(index + 1))
            if let reason = ValueConversion.store(value, as: state.types[index], into: &parameter) {
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
            statement.bindText(extraText, at: Int32(index + 1))
        }
        if let index = state.index(of: NameTable.uuidTs) {
            statement.bindStaticText(UnsafeRawBufferPointer(uuidTs), at: Int32(index + 1))
        }
        try statement.step()
        state.rowsWritten += 1
        if !discards.isEmpty {
            try bookkeeping.discards(discards, table: state.name, rowId: db.lastInsertRowID, messageId: header.id.string,
                                     receivedAtMilliseconds: header.receivedAtMilliseconds)
        }
    }

    private func insertStatement(for state: TableState) throws -> Statement {
        if let statement = state.insert { return statement }
        let columns = state.order.map(quoteIdentifier).joined(separator: ", ")
        let marks = Array(repeating: "?", count: state.order.count).joined(separator: ", ")
        let statement = try db.prepare("INSERT INTO \(quoteIdentifier(state.name)) (\(columns)) VALUES (\(marks))")
        state.insert = statement
        return statement
    }

    // MARK: Profiles

    private var upserts: [Int32: Statement] = [:]

    /// Writes one `users` or `accounts` row, replacing the old one; `traits` in the order of
    /// the table's `traitColumns`.
    func writeProfile(_ profile: Profile, id: String, receivedAt: SQLValue, traits: [SQLValue]) throws {
        guard let table = catalog[profile.table] else { return }
        let columns = ["id", "received_at", "uuid_ts"] + table.traitColumns
        let upsert: Statement
        if let cached = upserts[profile.table], cached.parameterCount == columns.count {
            upsert = cached
        } else {
            upsert = try db.prepare("""
                INSERT OR REPLACE INTO \(quoteIdentifier(table.name)) (\(columns.map(quoteIdentifier).joined(separator: ", ")))
                VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", ")))
                """)
            upserts[profile.table] = upsert
        }
        try upsert.run([.text(id), receivedAt, .text(uuidTsText)] + traits)
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
