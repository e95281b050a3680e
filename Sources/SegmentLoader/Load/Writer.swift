/// The Load stage: the one owner of the warehouse connection during a load. It writes the rows
/// it is handed (growing the schema they need, converting values to their columns' types),
/// the profile rows the Split stage derived, and the bookkeeping, and commits one file per
/// transaction (contract, sections 3, 5 and 7). Which messages are new is the Dedupe stage's
/// decision, and which rows a message makes the Split stage's (`WriteStages` runs them in turn).
final class Writer {
    /// One table as the writer knows it: columns in order with their types and source keys,
    /// a column-id → parameter map, and the prepared INSERT reused until a column is added.
    final class TableState {
        let id: Int32
        let name: String
        let callType: CallType?
        /// For `users` and `accounts`: the call table their rows are derived from.
        let profileOf: Int32?
        var order: [String] = []
        var columnIds: [Int32] = []
        /// Indexed by column id: the column's position, or -1.
        var position: [Int32] = []
        var types: [ColumnType] = []
        var keys: [Set<Int32>] = []
        var lastKey: [Int32] = []
        var eventNames: Set<String> = []
        /// The raw event name of the last row, to skip the set lookup while it repeats.
        var lastEvent: [UInt8] = []
        var insert: Statement?
        /// Rows this run wrote (call and event tables).
        var rowsWritten: Int64 = 0

        init(id: Int32, name: String, callType: CallType?, profileOf: Int32?) {
            self.id = id
            self.name = name
            self.callType = callType
            self.profileOf = profileOf
        }

        @inline(__always) func index(of column: Int32) -> Int? {
            let c = Int(column)
            guard c < position.count else { return nil }
            let p = position[c]
            return p < 0 ? nil : Int(p)
        }

        func add(_ column: String, id: Int32, type: ColumnType, keys: Set<Int32>) {
            let c = Int(id)
            if c >= position.count { position.append(contentsOf: repeatElement(-1, count: c + 256 - position.count)) }
            position[c] = Int32(order.count)
            order.append(column)
            columnIds.append(id)
            types.append(type)
            self.keys.append(keys)
            lastKey.append(-1)
            insert = nil
        }

        /// Columns every row of this table has besides data keys, which the column limit does not count.
        var fixedColumnCount: Int {
            (callType.map { $0.commonColumns.count + $0.specColumns.count } ?? 3) + (index(of: NameTable.extra) == nil ? 0 : 1)
        }
    }

    let warehouse: Warehouse
    let db: Database
    let names: NameTable
    let loadId: Int64
    let uuidTs: String
    /// `uuidTs` as bytes owned by the writer (freed in deinit), bound without copying.
    private let uuidTsBytes: UnsafeMutableRawBufferPointer
    let columnLimit: Int
    /// Planned types of new columns, keyed by `table << 32 | column`.
    var plannedTypes: [Int64: ColumnType] = [:]

    private(set) var tables: [Int32: TableState] = [:]
    /// Rows written per table in this run (for users and accounts: distinct rows inserted or updated).
    var rowsPerTable: [String: Int64] {
        var result = profilesUpdated.mapValues { Int64($0.count) }
        for state in tables.values where state.rowsWritten > 0 { result[state.name] = state.rowsWritten }
        return result
    }
    private(set) var newTables: [String] = []
    private(set) var newColumns = 0
    /// Values that went to `_extra` because their table was at its column limit.
    private(set) var overflowValues: Int64 = 0

    /// Ids whose users or accounts row this run wrote.
    private var profilesUpdated: [String: Set<String>] = [:]
    private let insertReject: Statement
    private let insertDiscard: Statement
    private let insertFile: Statement
    private let updateKeys: Statement
    private let updateEventNames: Statement
    private let insertTable: Statement
    private let insertColumn: Statement
    private var fileDiscards: Int64 = 0

    init(warehouse: Warehouse, names: NameTable, loadId: Int64, uuidTs: String, columnLimit: Int) throws {
        self.warehouse = warehouse
        self.db = warehouse.db
        self.names = names
        self.loadId = loadId
        self.uuidTs = uuidTs
        uuidTsBytes = UnsafeMutableRawBufferPointer.allocate(byteCount: uuidTs.utf8.count, alignment: 1)
        uuidTsBytes.copyBytes(from: uuidTs.utf8)
        self.columnLimit = columnLimit
        insertReject = try db.prepare("INSERT INTO _rejects (file, line, item, reason, raw, load_id, redacted, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        insertDiscard = try db.prepare("""
            INSERT INTO _discards (table_name, column_name, row_id, message_id, value, reason, received_at, load_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        insertFile = try db.prepare("""
            INSERT INTO _files (path, size, sha256, source_id, day, status, lines, loaded, duplicates, rejected,
              filtered, discarded, physical_lines, load_id, error, loaded_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        updateKeys = try db.prepare("UPDATE _schema_columns SET source_keys = ? WHERE table_name = ? AND column_name = ?")
        updateEventNames = try db.prepare("UPDATE _schema_tables SET event_names = ? WHERE table_name = ?")
        insertTable = try db.prepare("INSERT INTO _schema_tables (table_name, call_type, event_names, first_load_id) VALUES (?, ?, ?, ?)")
        insertColumn = try db.prepare("""
            INSERT INTO _schema_columns (table_name, column_name, type, source_keys, first_load_id, origin, note)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """)
        try reloadSchema()
    }

    deinit {
        uuidTsBytes.deallocate()
    }

    /// Reads the schema catalog back (at start, and after a rolled-back file).
    func reloadSchema() throws {
        tables.removeAll()
        for row in try db.query("SELECT table_name, call_type, event_names FROM _schema_tables ORDER BY rowid") {
            guard let name = row[0].text, let kind = row[1].text else { continue }
            let profileOf: Int32? = kind == "profile" ? (name == "users" ? NameTable.table(of: .identify) : NameTable.table(of: .group)) : nil
            let state = TableState(id: names.id(name), name: name, callType: CallType(rawValue: kind), profileOf: profileOf)
            if let text = row[2].text, case .array(let items)? = try? JSONParser.parse(text) {
                state.eventNames = Set(items.compactMap(\.stringValue))
            }
            tables[state.id] = state
        }
        for row in try db.query("SELECT table_name, column_name, type, source_keys FROM _schema_columns ORDER BY rowid") {
            guard let table = row[0].text, let column = row[1].text, let state = tables[names.id(table)] else { continue }
            let type = ColumnType(rawValue: row[2].text ?? "TEXT") ?? .text
            var keys = Set<Int32>()
            if let text = row[3].text, case .array(let items)? = try? JSONParser.parse(text) {
                keys = Set(items.compactMap(\.stringValue).map { names.keyId($0) })
            }
            state.add(column, id: names.id(column), type: type, keys: keys)
        }
    }

    // MARK: Files

    /// What the run has counted before the current file, restored if the file rolls back.
    private var beforeFile: (rows: [String: Int64], tables: [String], columns: Int, overflow: Int64, profiles: [String: Set<String>])?

    func beginFile() throws {
        try db.execute("BEGIN IMMEDIATE")
        beforeFile = (tables.values.reduce(into: [:]) { $0[$1.name] = $1.rowsWritten }, newTables, newColumns, overflowValues, profilesUpdated)
        fileDiscards = 0
    }

    /// Records the file, checks its accounting and commits everything (rows, schema,
    /// bookkeeping, the profiles the Split stage derived) in one transaction.
    func commitFile(_ archive: Archive, sha256: String, physicalLines: Int, status: FileResult.Status,
                    counts: Counts, error: String?) throws {
        guard counts.balances else {
            throw WarehouseError(message: "internal accounting error in \(archive.path): \(counts.lines) messages read but \(counts.loaded) loaded + \(counts.duplicates) duplicates + \(counts.rejected) rejected + \(counts.filtered) filtered; nothing of this file was committed")
        }
        try insertFile.run([
            .text(archive.path), .integer(archive.size), .text(sha256), archive.sourceId.map { .text($0) } ?? .null,
            archive.day.map { .text($0) } ?? .null, .text(status.rawValue), .integer(counts.lines), .integer(counts.loaded),
            .integer(counts.duplicates), .integer(counts.rejected), .integer(counts.filtered), .integer(counts.discarded),
            .integer(Int64(physicalLines)), .integer(loadId), error.map { .text($0) } ?? .null, .text(uuidTs),
        ])
        try db.execute("COMMIT")
    }

    /// Commits with no `_files` row (a retry of rejects updates the rows of the files the lines
    /// came from instead).
    func commitWithoutFile() throws {
        try db.execute("COMMIT")
    }

    /// Undoes the current file: its rows, schema changes and bookkeeping.
    func rollbackFile() throws {
        try? db.execute("ROLLBACK")
        try reloadSchema()
        if let before = beforeFile {
            (_, newTables, newColumns, overflowValues, profilesUpdated) = before
            for state in tables.values { state.rowsWritten = before.rows[state.name] ?? 0 }
        }
    }

    /// Records a file that could not be read at all, in its own transaction.
    func recordFailedFile(_ archive: Archive, sha256: String, error: String) throws {
        try db.execute("BEGIN IMMEDIATE")
        try insertFile.run([
            .text(archive.path), .integer(archive.size), .text(sha256), archive.sourceId.map { .text($0) } ?? .null,
            archive.day.map { .text($0) } ?? .null, .text("failed"), .integer(0), .integer(0), .integer(0), .integer(0),
            .integer(0), .integer(0), .integer(0), .integer(loadId), .text(error), .text(uuidTs),
        ])
        try db.execute("COMMIT")
    }

    var discardsInFile: Int64 { fileDiscards }

    // MARK: Lines and messages

    func reject(file: String, line: Int, item: Int?, kind: RejectKind, reason: String, raw kept: RejectRaw) throws {
        let raw = kept.bytes
        try insertReject.bind(.integer(kept.redactedCode), at: 7)
        try insertReject.bind(.text(kind.rawValue), at: 8)
        try insertReject.bind(.text(file), at: 1)
        try insertReject.bind(.integer(Int64(line)), at: 2)
        try insertReject.bind(item.map { .integer(Int64($0)) } ?? .null, at: 3)
        try insertReject.bind(.text(reason), at: 4)
        if let text = String(validating: raw, as: UTF8.self), !text.utf8.contains(0) {
            try insertReject.bind(.text(text), at: 5)
        } else {
            try insertReject.bind(.blob(raw), at: 5)
        }
        try insertReject.bind(.integer(loadId), at: 6)
        defer { insertReject.reset() }
        try insertReject.step()
    }

    /// Writes the rows the Split stage made of a chunk's admitted messages, in order. The tables
    /// and columns the rows need are created first, together (one CREATE TABLE for a new table
    /// rather than one ALTER per column: every schema change makes SQLite parse the whole
    /// schema again).
    func write(_ rows: [SplitRow], of headers: [RecordCursor.Header], in raw: UnsafeRawBufferPointer) throws {
        for (i, row) in rows.enumerated() {
            let header = headers[row.record]
            do {
                try insert(header, in: raw, table: row.plan.table, withPayload: row.plan.withPayload)
            } catch is NeedsSchema {
                // Create at once what this and the chunk's later rows need, then write the row;
                // a second miss would be a bug in growSchema.
                try growSchema(for: rows[i...], of: headers, in: raw)
                do {
                    try insert(header, in: raw, table: row.plan.table, withPayload: row.plan.withPayload)
                } catch is NeedsSchema {
                    throw WarehouseError(message: "internal error: the schema for table \(names.name(row.plan.table)) could not be grown for message \(header.id.string)")
                }
            }
        }
    }

    /// Thrown by `insert` before it writes anything when its row needs a table or column
    /// that does not exist yet.
    struct NeedsSchema: Error {}

    /// Inserts one row of a record: common and context fields, and the properties or traits
    /// (with the record's discards) when `withPayload`.
    private func insert(_ header: RecordCursor.Header, in raw: UnsafeRawBufferPointer, table: Int32, withPayload: Bool) throws {
        guard let state = tables[table] else { throw NeedsSchema() }
        if withPayload, let event = header.event, !event.equals(state.lastEvent) {
            state.lastEvent = Array(event)
            let name = event.string
            if !state.eventNames.contains(name) {
                state.eventNames.insert(name)
                try updateEventNames.run([.text(JSONWriter.string(.array(state.eventNames.sorted().map { .string($0) }))), .text(state.name)])
            }
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
                if state.order.count - state.fixedColumnCount < columnLimit || column == NameTable.extra
                    || state.index(of: NameTable.extra) == nil {
                    throw NeedsSchema()
                }
                // Past the per-table column limit: the value goes to the row's `_extra` JSON.
                overflow.append((names.keyName(key).droppingScope(), value.value.jsonValue))
                continue
            }
            if state.lastKey[index] != key { try noteKey(column: column, key: key, at: index, in: state) }
            if column == NameTable.extra, case .json(let text) = value {
                extraText = text.string
                continue
            }
            let at = Int32(index + 1)
            switch (state.types[index], value) {
            case (.text, .text(let t)): statement.bindStaticText(t, at: at)
            case (.timestamp, .timestamp(let normalized, _)): statement.bindStaticText(normalized, at: at)
            case (.integer, .int(let i)): statement.bindInt(i, at: at)
            case (.real, .real(let d)): statement.bindDouble(d, at: at)
            case (.boolean, .bool(let b)): statement.bindInt(b ? 1 : 0, at: at)
            case (.text, .json(let t)), (.text, .bigNumber(let t)): statement.bindStaticText(t, at: at)
            case (.text, .timestamp(_, let rawText)): statement.bindStaticText(rawText, at: at)
            case (let type, _):
                let owned = value.value
                switch Self.convert(owned, to: type) {
                case .value(.integer(let i)): statement.bindInt(i, at: at)
                case .value(.real(let d)): statement.bindDouble(d, at: at)
                case .value(.text(let s)): statement.bindText(s, at: at)
                case .value: statement.bindNull(at: at)
                case .discard(let reason): discards.append(PendingDiscard(column: column, value: owned.jsonText, reason: reason))
                }
            }
        }
        if withPayload {
            for _ in 0..<header.discards {
                let discard = cursor.discard()
                // A key that lost to another key of the same message still maps to the column:
                // the catalog lists it with the others.
                if let key = discard.key, let index = state.index(of: discard.column), state.lastKey[index] != key {
                    try noteKey(column: discard.column, key: key, at: index, in: state)
                }
                discards.append(discard)
            }
        }
        if !overflow.isEmpty {
            var members: [(key: String, value: JSONValue)] = []
            if let extraText, case .object(let existing)? = try? JSONParser.parse(extraText) { members = existing }
            extraText = JSONWriter.string(.object(members + overflow))
            overflowValues += Int64(overflow.count)
        }
        if let extraText, let index = state.index(of: NameTable.extra) {
            statement.bindText(extraText, at: Int32(index + 1))
        }
        if let index = state.index(of: NameTable.uuidTs) {
            statement.bindStaticText(UnsafeRawBufferPointer(uuidTsBytes), at: Int32(index + 1))
        }
        try statement.step()
        state.rowsWritten += 1
        if !discards.isEmpty {
            let rowId = db.lastInsertRowID
            let receivedAt = Timestamp.format(Instant(seconds: header.receivedAtMilliseconds / 1000,
                                                      nanos: header.receivedAtMilliseconds % 1000 * 1_000_000))
            for discard in discards {
                try insertDiscard.run([
                    .text(state.name), .text(names.name(discard.column)), .integer(rowId), .text(header.id.string), .text(discard.value),
                    .text(discard.reason), .text(receivedAt), .integer(loadId),
                ])
                fileDiscards += 1
            }
        }
    }

    /// Records a source key seen for the first time on an existing column (a name collision
    /// the schema catalog shows), and on its twin in users or accounts.
    private func noteKey(column: Int32, key: Int32, at index: Int, in state: TableState) throws {
        state.lastKey[index] = key
        guard column != NameTable.extra, !state.keys[index].contains(key) else { return }
        state.keys[index].insert(key)
        try updateKeys.run([.text(keysJSON(state.keys[index])), .text(state.name), .text(state.order[index])])
        if names.keyName(key).hasPrefix("traits."), let twin = profileTwin(of: state), let twinIndex = twin.index(of: column),
           !twin.keys[twinIndex].contains(key) {
            twin.keys[twinIndex].insert(key)
            try updateKeys.run([.text(keysJSON(twin.keys[twinIndex])), .text(twin.name), .text(twin.order[twinIndex])])
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

    enum Conversion: Equatable {
        case value(SQLValue)
        case discard(String)
    }

    /// A value in a column of a given type (contract, section 5): lossless conversions are made,
    /// anything that would lose information is a discard with a reason.
    static func convert(_ value: FieldValue, to type: ColumnType) -> Conversion {
        switch (type, value) {
        case (_, .null): return .value(.null)
        case (.text, .text(let s)): return .value(.text(s))
        case (.text, .timestamp(_, let raw)): return .value(.text(raw))
        case (.text, .json(let s)), (.text, .bigNumber(let s)): return .value(.text(s))
        case (.text, _): return .value(.text(value.jsonText))
        case (.boolean, .bool(let b)): return .value(.integer(b ? 1 : 0))
        case (.integer, .int(let i)): return .value(.integer(i))
        case (.integer, .bool(let b)): return .value(.integer(b ? 1 : 0))
        case (.integer, .real(let d)) where d == d.rounded() && abs(d) < 9.2e18: return .value(.integer(Int64(d)))
        case (.real, .real(let d)): return .value(.real(d))
        case (.real, .int(let i)) where abs(i) <= 1 << 53: return .value(.real(Double(i)))
        case (.real, .bool(let b)): return .value(.real(b ? 1 : 0))
        case (.timestamp, .timestamp(let normalized, _)): return .value(.text(normalized))
        default:
            return .discard("\(value.jsonText.prefix(100)) (\(value.columnType?.rawValue.lowercased() ?? "null")) does not fit a \(type.rawValue) column without losing information")
        }
    }

    // MARK: Schema

    /// A column a batch needs that the warehouse does not have yet.
    struct PendingColumn {
        var name: String
        var id: Int32
        var type: ColumnType
        var keys: Set<Int32>
        var origin: String
        /// One of the Segment Spec's columns a table is created with (not counted as new).
        var spec = false
    }

    /// A table's new columns in the order the batch first needs them.
    struct PendingTable {
        var type: CallType
        var event: String?
        var isNew: Bool
        var columns: [PendingColumn] = []
        var index: [Int32: Int] = [:]
    }

    /// Creates the tables and columns that `batch` needs and the warehouse lacks: a new table
    /// in one CREATE TABLE with all of them, an existing one with one ALTER per new column;
    /// types from the run's plan (the widest among all values of the run).
    private func growSchema(for rows: ArraySlice<SplitRow>, of headers: [RecordCursor.Header], in raw: UnsafeRawBufferPointer) throws {
        var pending: [Int32: PendingTable] = [:]
        var order: [Int32] = []
        func need(_ header: RecordCursor.Header, table: Int32, withPayload: Bool) {
            let state = tables[table]
            var cursor = RecordCursor(raw)
            cursor.offset = header.fieldsOffset
            let payloadOrigin = header.type == .identify || header.type == .group ? "trait" : "property"
            for i in 0..<(header.common + header.context + (withPayload ? header.payload : 0)) {
                let (column, key, value) = cursor.field()
                if case .null = value { continue }
                if state?.index(of: column) != nil { continue }
                let origin: String? = i < header.common ? nil : i < header.common + header.context ? "context" : payloadOrigin
                if pending[table] == nil {
                    pending[table] = PendingTable(type: header.type, event: withPayload ? header.event?.string : nil, isNew: state == nil)
                    order.append(table)
                }
                if let at = pending[table]!.index[column] {
                    if column != NameTable.extra { pending[table]!.columns[at].keys.insert(key) }
                    continue
                }
                if origin == nil && state == nil { continue }  // common columns come with a new table
                let type = plannedTypes[Int64(table) << 32 | Int64(column)] ?? value.columnType ?? .text
                let isExtra = column == NameTable.extra
                pending[table]!.index[column] = pending[table]!.columns.count
                pending[table]!.columns.append(PendingColumn(
                    name: names.name(column), id: column, type: isExtra ? .text : type,
                    keys: isExtra ? [] : [key], origin: isExtra ? "extra" : origin ?? "common"))
            }
        }
        for row in rows { need(headers[row.record], table: row.plan.table, withPayload: row.plan.withPayload) }
        for table in order {
            let want = pending[table]!
            // A new table comes with the Spec's columns, typed by the run's plan where a value
            // decided it, else TEXT; they do not count against the column limit.
            let spec = want.isNew ? want.type.specColumns.map { column -> PendingColumn in
                let id = names.id(column.name)
                let wanted = want.index[id].map { want.columns[$0] }
                return PendingColumn(name: column.name, id: id, type: wanted?.type ?? plannedTypes[Int64(table) << 32 | Int64(id)] ?? .text,
                                     keys: wanted?.keys ?? [], origin: column.isContext ? "context" : "property", spec: true)
            } : []
            let specIds = Set(spec.map(\.id))
            // The column limit counts data columns; what is past it goes to `_extra`.
            var room = columnLimit - (tables[table].map { $0.order.count - $0.fixedColumnCount } ?? 0)
            var accepted: [PendingColumn] = []
            var needsExtra = false
            for column in want.columns where !specIds.contains(column.id) {
                if column.id == NameTable.extra { needsExtra = true; continue }
                if room > 0 {
                    accepted.append(column)
                    room -= 1
                } else {
                    needsExtra = true
                }
            }
            if needsExtra && tables[table]?.index(of: NameTable.extra) == nil {
                accepted.append(PendingColumn(name: "_extra", id: NameTable.extra, type: .text, keys: [], origin: "extra"))
            }
            let state: TableState
            if want.isNew {
                state = TableState(id: table, name: names.name(table), callType: want.type, profileOf: nil)
                let common = want.type.commonColumns.map { column -> PendingColumn in
                    let id = names.id(column.name)
                    return PendingColumn(name: column.name, id: id, type: column.type, keys: Self.commonSourceKeys[id] ?? [], origin: "common")
                }
                // People read left to right: common columns, properties or traits, then context.
                let isContext = { (column: PendingColumn) in column.origin == "context" }
                let columns = common + spec.filter { !isContext($0) } + accepted.filter { !isContext($0) && $0.origin != "extra" }
                    + accepted.filter { $0.origin == "extra" } + spec.filter(isContext) + accepted.filter(isContext)
                try createTable(state, columns: columns, kind: want.type.rawValue, eventNames: want.event.map { [$0] })
            } else {
                state = tables[table]!
                for column in accepted { try addColumn(column, to: state) }
            }
            if want.type == .identify || want.type == .group, table == NameTable.table(of: want.type) {
                let traits = accepted.filter { $0.origin == "trait" }
                let profileId = want.type == .identify ? NameTable.users : NameTable.accounts
                if want.isNew {
                    let keyColumn = want.type == .identify ? "user_id" : "group_id"
                    try db.execute("CREATE INDEX \(quoteIdentifier(Indexes.prefix + state.name + "_" + keyColumn + "_timestamp")) ON \(quoteIdentifier(state.name)) (\(keyColumn), timestamp)")
                    let profile = TableState(id: profileId, name: names.name(profileId), callType: nil, profileOf: table)
                    try createTable(profile, columns: [
                        PendingColumn(name: "id", id: NameTable.id, type: .text,
                                      keys: [want.type == .identify ? NameTable.keyUserId : NameTable.keyGroupId], origin: "profile"),
                        PendingColumn(name: "received_at", id: NameTable.receivedAt, type: .timestamp, keys: [NameTable.keyReceivedAt], origin: "profile"),
                        PendingColumn(name: "uuid_ts", id: NameTable.uuidTs, type: .timestamp, keys: [], origin: "profile"),
                    ] + traits, kind: "profile", eventNames: nil)
                } else if let twin = profileTwin(of: state) {
                    for column in traits where twin.index(of: column.id) == nil { try addColumn(column, to: twin) }
                }
            }
        }
    }

    private func createTable(_ state: TableState, columns: [PendingColumn], kind: String, eventNames: [String]?) throws {
        let definitions = columns.map { column -> String in
            var definition = quoteIdentifier(column.name) + " " + column.type.rawValue
            if column.name == "id" && state.profileOf != nil { definition += " PRIMARY KEY" }
            return definition
        }
        try db.execute("CREATE TABLE \(quoteIdentifier(state.name)) (\(definitions.joined(separator: ", ")))")
        try insertTable.run([.text(state.name), .text(kind),
                             eventNames.map { .text(JSONWriter.string(.array($0.map { .string($0) }))) } ?? .null, .integer(loadId)])
        for column in columns {
            state.add(column.name, id: column.id, type: column.type, keys: column.keys)
            if column.origin != "common" && column.origin != "profile" && !column.spec { newColumns += 1 }
            try catalog(state, column: column, note: column.spec ? Self.specNote : renameNote(column, in: state))
        }
        if let event = eventNames?.first { state.eventNames.insert(event) }
        tables[state.id] = state
        newTables.append(state.name)
    }

    /// `_schema_columns.note` of a Segment Spec column.
    static let specNote = "Segment Spec column: created with the table"

    static let commonSourceKeys: [Int32: Set<Int32>] = [
        NameTable.id: [NameTable.keyMessageId], NameTable.anonymousId: [NameTable.keyAnonymousId],
        NameTable.userId: [NameTable.keyUserId], NameTable.receivedAt: [NameTable.keyReceivedAt],
        NameTable.sentAt: [NameTable.keySentAt], NameTable.originalTimestamp: [NameTable.keyOriginalTimestamp, NameTable.keyTimestamp],
        NameTable.timestamp: [NameTable.keyTimestamp], NameTable.uuidTs: [], NameTable.event: [NameTable.keyEvent],
        NameTable.eventText: [NameTable.keyEvent], NameTable.name: [NameTable.keyName], NameTable.category: [NameTable.keyCategory],
        NameTable.groupId: [NameTable.keyGroupId], NameTable.previousId: [NameTable.keyPreviousId],
    ]

    private func addColumn(_ column: PendingColumn, to state: TableState) throws {
        try db.execute("ALTER TABLE \(quoteIdentifier(state.name)) ADD COLUMN \(quoteIdentifier(column.name)) \(column.type.rawValue)")
        state.add(column.name, id: column.id, type: column.type, keys: column.keys)
        newColumns += 1
        try catalog(state, column: column, note: renameNote(column, in: state))
    }

    /// For a property or trait kept under `_` because it would take a common column's name.
    private func renameNote(_ column: PendingColumn, in state: TableState) -> String? {
        guard column.origin == "property" || column.origin == "trait", column.name.hasPrefix("_") else { return nil }
        let callType = state.callType ?? (state.profileOf == NameTable.table(of: .identify) ? .identify : .group)
        let bare = String(column.name.dropFirst())
        if callType.commonColumns.contains(where: { $0.name == bare }) || bare.hasPrefix("context") || bare == "_extra" {
            return "renamed: \(bare) is a common column of this table"
        }
        return nil
    }

    private func catalog(_ state: TableState, column: PendingColumn, note: String?) throws {
        try insertColumn.run([.text(state.name), .text(column.name), .text(column.type.rawValue), .text(keysJSON(column.keys)),
                              .integer(loadId), .text(column.origin), note.map { .text($0) } ?? .null])
    }

    private func keysJSON(_ keys: Set<Int32>) -> String {
        JSONWriter.string(.array(keys.map { names.keyName($0) }.sorted().map { .string($0) }))
    }

    private func profileTwin(of state: TableState) -> TableState? {
        switch state.id {
        case NameTable.table(of: .identify): return tables[NameTable.users]
        case NameTable.table(of: .group): return tables[NameTable.accounts]
        default: return nil
        }
    }

    // MARK: Profiles

    /// The trait columns of `users` or `accounts` (every column but id, received_at and
    /// uuid_ts), in the table's order; nil while the table does not exist.
    func profileTraits(_ table: Int32) -> [String]? {
        tables[table].map { $0.order.filter { $0 != "id" && $0 != "received_at" && $0 != "uuid_ts" } }
    }

    private var upserts: [Int32: Statement] = [:]

    /// Writes one `users` or `accounts` row as the Split stage derived it, replacing the old one;
    /// `traits` in the order `profileTraits` gave.
    func writeProfile(_ table: Int32, id: String, receivedAt: SQLValue, traits: [SQLValue]) throws {
        guard let profile = tables[table], let traitColumns = profileTraits(table) else { return }
        let columns = ["id", "received_at", "uuid_ts"] + traitColumns
        let upsert: Statement
        if let cached = upserts[table], cached.parameterCount == columns.count {
            upsert = cached
        } else {
            upsert = try db.prepare("""
                INSERT OR REPLACE INTO \(quoteIdentifier(profile.name)) (\(columns.map(quoteIdentifier).joined(separator: ", ")))
                VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", ")))
                """)
            upserts[table] = upsert
        }
        try upsert.run([.text(id), receivedAt, .text(uuidTs)] + traits)
        profilesUpdated[profile.name, default: []].insert(id)
    }
}

extension String {
    /// `properties.a.b` → `a.b`, `traits.x` → `x`; context keys keep their `context.` prefix.
    func droppingScope() -> String {
        for scope in ["properties.", "traits."] where hasPrefix(scope) {
            return String(dropFirst(scope.count))
        }
        return self
    }
}
