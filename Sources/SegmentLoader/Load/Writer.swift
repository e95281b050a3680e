/// The one owner of the warehouse connection during a load: it grows the schema, converts
/// values to their columns' types, writes rows and bookkeeping, and commits one file per
/// transaction (contract, sections 3, 5 and 7).
final class Writer {
    /// One table as the writer knows it: columns in order, their types and source keys, and
    /// the prepared INSERT that is reused until a column is added.
    final class TableState {
        let name: String
        let callType: CallType?
        /// For `users` and `accounts`: the call table their rows are derived from.
        let profileOf: String?
        var order: [String] = []
        var index: [String: Int] = [:]
        var types: [ColumnType] = []
        var keys: [Set<String>] = []
        var lastKey: [String] = []
        var eventNames: Set<String> = []
        var insert: Statement?

        init(name: String, callType: CallType?, profileOf: String?) {
            self.name = name
            self.callType = callType
            self.profileOf = profileOf
        }

        func add(_ column: String, type: ColumnType, keys: Set<String>) {
            index[column] = order.count
            order.append(column)
            types.append(type)
            self.keys.append(keys)
            lastKey.append("")
            insert = nil
        }
    }

    let warehouse: Warehouse
    let db: Database
    let loadId: Int64
    let uuidTs: String
    let columnLimit: Int
    var plannedTypes: [String: [String: ColumnType]] = [:]

    private(set) var tables: [String: TableState] = [:]
    private(set) var rowsPerTable: [String: Int64] = [:]
    private(set) var newTables: [String] = []
    private(set) var newColumns = 0

    /// Ids whose users or accounts row this run wrote.
    private var profilesUpdated: [String: Set<String>] = [:]
    private var touchedUsers = Set<String>()
    private var touchedAccounts = Set<String>()
    private let insertMessageId: Statement
    private let insertReject: Statement
    private let insertDiscard: Statement
    private let insertFile: Statement
    private let updateKeys: Statement
    private let updateEventNames: Statement
    private let insertTable: Statement
    private let insertColumn: Statement
    /// Values that went to `_extra` because their table was at its column limit.
    private(set) var overflowValues: Int64 = 0
    private var fileDiscards: Int64 = 0

    init(warehouse: Warehouse, loadId: Int64, uuidTs: String, columnLimit: Int) throws {
        self.warehouse = warehouse
        self.db = warehouse.db
        self.loadId = loadId
        self.uuidTs = uuidTs
        self.columnLimit = columnLimit
        insertMessageId = try db.prepare("INSERT OR IGNORE INTO _message_ids (id, \"table\", load_id) VALUES (?, ?, ?)")
        insertReject = try db.prepare("INSERT INTO _rejects (file, line, item, reason, raw, load_id) VALUES (?, ?, ?, ?, ?, ?)")
        insertDiscard = try db.prepare("""
            INSERT INTO _discards ("table", "column", row_id, message_id, value, reason, received_at, load_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        insertFile = try db.prepare("""
            INSERT INTO _files (path, size, sha256, source_id, day, status, lines, loaded, duplicates, rejected,
              filtered, discarded, physical_lines, load_id, error, loaded_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        updateKeys = try db.prepare("UPDATE _schema_columns SET source_keys = ? WHERE \"table\" = ? AND \"column\" = ?")
        updateEventNames = try db.prepare("UPDATE _schema_tables SET event_names = ? WHERE \"table\" = ?")
        insertTable = try db.prepare("INSERT INTO _schema_tables (\"table\", call_type, event_names, first_load_id) VALUES (?, ?, ?, ?)")
        insertColumn = try db.prepare("""
            INSERT INTO _schema_columns ("table", "column", type, source_keys, first_load_id, origin, note)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """)
        try reloadSchema()
    }

    /// Reads the schema catalog back (at start, and after a rolled-back file).
    func reloadSchema() throws {
        tables.removeAll()
        for row in try db.query("SELECT \"table\", call_type, event_names FROM _schema_tables ORDER BY rowid") {
            guard let name = row[0].text, let kind = row[1].text else { continue }
            let profileOf: String? = kind == "profile" ? (name == "users" ? "identifies" : "groups") : nil
            let state = TableState(name: name, callType: CallType(rawValue: kind), profileOf: profileOf)
            if let names = row[2].text, case .array(let items)? = try? JSONParser.parse(names) {
                state.eventNames = Set(items.compactMap(\.stringValue))
            }
            tables[name] = state
        }
        for row in try db.query("SELECT \"table\", \"column\", type, source_keys FROM _schema_columns ORDER BY rowid") {
            guard let table = row[0].text, let column = row[1].text, let state = tables[table] else { continue }
            let type = ColumnType(rawValue: row[2].text ?? "TEXT") ?? .text
            var keys = Set<String>()
            if let text = row[3].text, case .array(let items)? = try? JSONParser.parse(text) {
                keys = Set(items.compactMap(\.stringValue))
            }
            state.add(column, type: type, keys: keys)
        }
    }

    // MARK: Files

    /// What the run has counted before the current file, restored if the file rolls back.
    private var beforeFile: (rows: [String: Int64], tables: [String], columns: Int, overflow: Int64, profiles: [String: Set<String>])?

    func beginFile() throws {
        try db.execute("BEGIN IMMEDIATE")
        beforeFile = (rowsPerTable, newTables, newColumns, overflowValues, profilesUpdated)
        touchedUsers.removeAll()
        touchedAccounts.removeAll()
        fileDiscards = 0
    }

    /// Derives the profiles touched by this file, records the file, checks its accounting and
    /// commits everything in one transaction.
    func commitFile(_ archive: Archive, sha256: String, physicalLines: Int, status: FileResult.Status,
                    counts: Counts, error: String?) throws {
        guard counts.balances else {
            throw WarehouseError(message: "internal accounting error in \(archive.path): \(counts.lines) messages read but \(counts.loaded) loaded + \(counts.duplicates) duplicates + \(counts.rejected) rejected + \(counts.filtered) filtered; nothing of this file was committed")
        }
        try refreshProfiles(table: "users", from: "identifies", key: "user_id", ids: touchedUsers)
        try refreshProfiles(table: "accounts", from: "groups", key: "group_id", ids: touchedAccounts)
        try insertFile.run([
            .text(archive.path), .integer(archive.size), .text(sha256), archive.sourceId.map { .text($0) } ?? .null,
            archive.day.map { .text($0) } ?? .null, .text(status.rawValue), .integer(counts.lines), .integer(counts.loaded),
            .integer(counts.duplicates), .integer(counts.rejected), .integer(counts.filtered), .integer(counts.discarded),
            .integer(Int64(physicalLines)), .integer(loadId), error.map { .text($0) } ?? .null, .text(uuidTs),
        ])
        try db.execute("COMMIT")
    }

    /// Undoes the current file: its rows, schema changes and bookkeeping.
    func rollbackFile() throws {
        try? db.execute("ROLLBACK")
        if let before = beforeFile {
            (rowsPerTable, newTables, newColumns, overflowValues, profilesUpdated) = before
        }
        try reloadSchema()
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

    func reject(file: String, line: Int, item: Int?, reason: String, raw: [UInt8]) throws {
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

    /// Writes a batch of messages, each unless its id is already in the warehouse; returns, for
    /// each, whether it was written. The tables and columns the batch needs are created first,
    /// together (one CREATE TABLE for a new table rather than one ALTER per column: every schema
    /// change makes SQLite parse the whole schema again).
    func write(_ messages: [Message]) throws -> [Bool] {
        var written: [Bool] = []
        written.reserveCapacity(messages.count)
        var fresh: [(message: Message, rows: [Row])] = []
        for message in messages {
            let rows = Splitter.rows(for: message)
            insertMessageId.bindText(message.id, at: 1)
            insertMessageId.bindText(rows.last!.table, at: 2)
            insertMessageId.bindInt(loadId, at: 3)
            defer { insertMessageId.reset() }
            try insertMessageId.step()
            let isNew = db.changes > 0
            written.append(isNew)
            if isNew { fresh.append((message, rows)) }
        }
        try growSchema(for: fresh)
        for (message, rows) in fresh {
            let receivedAt = Timestamp.format(message.receivedAt)
            for row in rows {
                try insert(row, messageId: message.id, receivedAt: receivedAt, event: message.event)
            }
            if message.type == .identify, let userId = message.userId { touchedUsers.insert(userId) }
            if message.type == .group, let groupId = message.groupId { touchedAccounts.insert(groupId) }
        }
        return written
    }

    private func insert(_ row: Row, messageId: String, receivedAt: String, event: String?) throws {
        guard let state = tables[row.table] else { preconditionFailure("growSchema did not create \(row.table)") }
        if let event, row.table != "tracks", !state.eventNames.contains(event) {
            state.eventNames.insert(event)
            try updateEventNames.run([.text(JSONWriter.string(.array(state.eventNames.sorted().map { .string($0) }))), .text(state.name)])
        }
        var bindings: [(Int, SQLValue)] = []
        bindings.reserveCapacity(row.fields.count + 1)
        var discards = row.discards
        var overflow: [(key: String, value: JSONValue)] = []
        var extraIndex: Int?
        for field in row.fields {
            if case .null = field.value { continue }
            guard let index = state.index[field.column] else {
                // Past the per-table column limit: the value goes to the row's `_extra` JSON.
                overflow.append((field.key.droppingScope(), field.value.jsonValue))
                continue
            }
            if state.lastKey[index] != field.key { try noteKey(field, at: index, in: state) }
            if field.column == "_extra" { extraIndex = bindings.count }
            switch convert(field.value, to: state.types[index]) {
            case .value(let value): bindings.append((index, value))
            case .discard(let reason):
                discards.append(PendingDiscard(column: field.column, value: field.value.jsonText, reason: reason))
            }
        }
        if !overflow.isEmpty, let index = state.index["_extra"] {
            var members: [(key: String, value: JSONValue)] = []
            if let extraIndex, case .text(let text) = bindings[extraIndex].1, case .object(let existing)? = try? JSONParser.parse(text) {
                members = existing
                bindings.remove(at: extraIndex)
            }
            members += overflow
            bindings.append((index, .text(JSONWriter.string(.object(members)))))
            overflowValues += Int64(overflow.count)
        }
        if let uuid = state.index["uuid_ts"] { bindings.append((uuid, .text(uuidTs))) }
        let statement = try insertStatement(for: state)
        for (index, value) in bindings {
            let at = Int32(index + 1)
            switch value {
            case .null: statement.bindNull(at: at)
            case .integer(let i): statement.bindInt(i, at: at)
            case .real(let d): statement.bindDouble(d, at: at)
            case .text(let s): statement.bindText(s, at: at)
            case .blob: try statement.bind(value, at: at)
            }
        }
        defer { statement.reset() }
        try statement.step()
        rowsPerTable[state.name, default: 0] += 1
        if !discards.isEmpty {
            let rowId = db.lastInsertRowID
            for discard in discards {
                try insertDiscard.run([
                    .text(state.name), .text(discard.column), .integer(rowId), .text(messageId), .text(discard.value),
                    .text(discard.reason), .text(receivedAt), .integer(loadId),
                ])
                fileDiscards += 1
            }
        }
    }

    /// Records a source key seen for the first time on an existing column (a name collision
    /// the schema catalog shows), and on its twin in users or accounts.
    private func noteKey(_ field: Field, at index: Int, in state: TableState) throws {
        state.lastKey[index] = field.key
        guard field.column != "_extra", !state.keys[index].contains(field.key) else { return }
        state.keys[index].insert(field.key)
        try updateKeys.run([.text(keysJSON(state.keys[index])), .text(state.name), .text(field.column)])
        if isTrait(field), let twin = profileTwin(of: state), let twinIndex = twin.index[field.column],
           !twin.keys[twinIndex].contains(field.key) {
            twin.keys[twinIndex].insert(field.key)
            try updateKeys.run([.text(keysJSON(twin.keys[twinIndex])), .text(twin.name), .text(field.column)])
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

    enum Conversion {
        case value(SQLValue)
        case discard(String)
    }

    /// A value in a column of a given type (contract, section 5): lossless conversions are made,
    /// anything that would lose information is a discard with a reason.
    func convert(_ value: FieldValue, to type: ColumnType) -> Conversion {
        func refuse() -> Conversion {
            .discard("\(value.jsonText.prefix(100)) (\(value.columnType?.rawValue.lowercased() ?? "null")) does not fit a \(type.rawValue) column without losing information")
        }
        switch (type, value) {
        case (_, .null): return .value(.null)
        case (.text, .text(let s)): return .value(.text(s))
        case (.text, .timestamp(_, let raw)): return .value(.text(raw))
        case (.text, .json(let s)), (.text, .bigNumber(let s)): return .value(.text(s))
        case (.text, _): return .value(.text(value.jsonText))
        case (.boolean, .bool(let b)): return .value(.integer(b ? 1 : 0))
        case (.integer, .int(let i)): return .value(.integer(i))
        case (.integer, .bool(let b)): return .value(.integer(b ? 1 : 0))
        case (.integer, .real(let d)):
            if d == d.rounded(), abs(d) < 9.2e18 { return .value(.integer(Int64(d))) }
            return refuse()
        case (.real, .real(let d)): return .value(.real(d))
        case (.real, .int(let i)):
            if abs(i) <= 1 << 53 { return .value(.real(Double(i))) }
            return refuse()
        case (.real, .bool(let b)): return .value(.real(b ? 1 : 0))
        case (.timestamp, .timestamp(let normalized, _)): return .value(.text(normalized))
        default: return refuse()
        }
    }

    // MARK: Schema

    /// A column a batch needs that the warehouse does not have yet.
    struct PendingColumn {
        var name: String
        var type: ColumnType
        var keys: Set<String>
        var origin: String
    }

    /// A table's new columns in the order the batch first needs them.
    struct PendingTable {
        var type: CallType
        var event: String?
        var isNew: Bool
        var columns: [PendingColumn] = []
        var index: [String: Int] = [:]
    }

    /// Creates the tables and columns that `batch` needs and the warehouse lacks: a new table
    /// in one CREATE TABLE with all of them, an existing one with one ALTER per new column;
    /// types from the run's plan (the widest among all values of the run).
    private func growSchema(for batch: [(message: Message, rows: [Row])]) throws {
        var pending: [String: PendingTable] = [:]
        var order: [String] = []
        for (message, rows) in batch {
            for row in rows {
                let state = tables[row.table]
                for field in row.fields {
                    if case .null = field.value { continue }
                    if state?.index[field.column] != nil { continue }
                    if pending[row.table] == nil {
                        pending[row.table] = PendingTable(type: row.type, event: row.table == "tracks" ? nil : message.event, isNew: state == nil)
                        order.append(row.table)
                    }
                    if let at = pending[row.table]!.index[field.column] {
                        if field.column != "_extra" { pending[row.table]!.columns[at].keys.insert(field.key) }
                        continue
                    }
                    if state == nil, row.type.commonColumns.contains(where: { $0.name == field.column }) { continue }
                    let type = plannedTypes[row.table]?[field.column] ?? field.value.columnType ?? .text
                    pending[row.table]!.index[field.column] = pending[row.table]!.columns.count
                    pending[row.table]!.columns.append(PendingColumn(
                        name: field.column, type: type, keys: field.column == "_extra" ? [] : [field.key], origin: origin(of: field)))
                }
            }
        }
        for name in order {
            let table = pending[name]!
            // The column limit counts data columns; what is past it goes to `_extra`.
            var room = columnLimit - (tables[name].map { $0.order.count - $0.callTypeCommonCount - ($0.index["_extra"] == nil ? 0 : 1) } ?? 0)
            var accepted: [PendingColumn] = []
            var needsExtra = false
            for column in table.columns {
                if column.name == "_extra" { needsExtra = true; continue }
                if room > 0 {
                    accepted.append(column)
                    room -= 1
                } else {
                    needsExtra = true
                }
            }
            if needsExtra && tables[name]?.index["_extra"] == nil {
                accepted.append(PendingColumn(name: "_extra", type: .text, keys: [], origin: "extra"))
            }
            let state: TableState
            if table.isNew {
                state = TableState(name: name, callType: table.type, profileOf: nil)
                try createTable(state, columns: table.type.commonColumns.map { PendingColumn(
                    name: $0.name, type: $0.type, keys: Set(Self.commonSourceKeys[$0.name] ?? []), origin: "common") } + accepted,
                    kind: table.type.rawValue, eventNames: table.event.map { [$0] })
            } else {
                state = tables[name]!
                for column in accepted { try addColumn(column, to: state) }
            }
            if name == "identifies" || name == "groups" {
                let traits = accepted.filter { $0.origin == "trait" }
                if table.isNew {
                    let keyColumn = name == "identifies" ? "user_id" : "group_id"
                    try db.execute("CREATE INDEX \(quoteIdentifier(name + "_" + keyColumn)) ON \(quoteIdentifier(name)) (\(keyColumn), timestamp)")
                    let profile = TableState(name: name == "identifies" ? "users" : "accounts", callType: nil, profileOf: name)
                    try createTable(profile, columns: [
                        PendingColumn(name: "id", type: .text, keys: [name == "identifies" ? "userId" : "groupId"], origin: "profile"),
                        PendingColumn(name: "received_at", type: .timestamp, keys: ["receivedAt"], origin: "profile"),
                        PendingColumn(name: "uuid_ts", type: .timestamp, keys: [], origin: "profile"),
                    ] + traits, kind: "profile", eventNames: nil)
                } else if let twin = profileTwin(of: state) {
                    for column in traits where twin.index[column.name] == nil { try addColumn(column, to: twin) }
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
        let common = Set((state.callType?.commonColumns ?? []).map(\.name))
        for column in columns {
            state.add(column.name, type: column.type, keys: column.keys)
            if !common.contains(column.name) && column.origin != "profile" { newColumns += 1 }
            try catalog(state, column: column.name, type: column.type, keys: column.keys, origin: column.origin,
                        note: renameNote(column, in: state))
        }
        if let event = eventNames?.first { state.eventNames.insert(event) }
        tables[state.name] = state
        newTables.append(state.name)
    }

    static let commonSourceKeys: [String: [String]] = [
        "id": ["messageId"], "anonymous_id": ["anonymousId"], "user_id": ["userId"], "received_at": ["receivedAt"],
        "sent_at": ["sentAt"], "original_timestamp": ["originalTimestamp", "timestamp"], "timestamp": ["timestamp"],
        "uuid_ts": [], "event": ["event"], "event_text": ["event"], "name": ["name"], "category": ["category"],
        "group_id": ["groupId"], "previous_id": ["previousId"],
    ]

    private func addColumn(_ column: PendingColumn, to state: TableState) throws {
        try db.execute("ALTER TABLE \(quoteIdentifier(state.name)) ADD COLUMN \(quoteIdentifier(column.name)) \(column.type.rawValue)")
        state.add(column.name, type: column.type, keys: column.keys)
        newColumns += 1
        try catalog(state, column: column.name, type: column.type, keys: column.keys, origin: column.origin,
                    note: renameNote(column, in: state))
    }

    /// For a property or trait kept under `_` because it would take a common column's name.
    private func renameNote(_ column: PendingColumn, in state: TableState) -> String? {
        guard column.origin == "property" || column.origin == "trait", column.name.hasPrefix("_") else { return nil }
        let callType = state.callType ?? (state.profileOf == "identifies" ? .identify : .group)
        let bare = String(column.name.dropFirst())
        if callType.commonColumns.contains(where: { $0.name == bare }) || bare.hasPrefix("context") || bare == "_extra" {
            return "renamed: \(bare) is a common column of this table"
        }
        return nil
    }

    private func catalog(_ state: TableState, column: String, type: ColumnType, keys: Set<String>, origin: String, note: String?) throws {
        try insertColumn.run([.text(state.name), .text(column), .text(type.rawValue), .text(keysJSON(keys)), .integer(loadId),
                      .text(origin), note.map { .text($0) } ?? .null])
    }

    private func keysJSON(_ keys: Set<String>) -> String {
        JSONWriter.string(.array(keys.sorted().map { .string($0) }))
    }

    private func origin(of field: Field) -> String {
        if field.column == "_extra" { return "extra" }
        if field.key.hasPrefix("context.") || field.key == "context" { return "context" }
        if field.key.hasPrefix("properties.") { return "property" }
        if field.key.hasPrefix("traits.") { return "trait" }
        return "common"
    }

    private func isTrait(_ field: Field) -> Bool { field.key.hasPrefix("traits.") }

    private func profileTwin(of state: TableState) -> TableState? {
        switch state.name {
        case "identifies": return tables["users"]
        case "groups": return tables["accounts"]
        default: return nil
        }
    }

    // MARK: Profiles

    /// Rebuilds the profile rows of `ids` from their calls: each trait takes the value of the
    /// newest call (by timestamp, then received_at, then id) that set it to something non-null,
    /// so loading an older archive later never overwrites newer traits.
    private func refreshProfiles(table: String, from source: String, key: String, ids: Set<String>) throws {
        guard !ids.isEmpty, let profile = tables[table] else { return }
        let traits = profile.order.filter { $0 != "id" && $0 != "received_at" && $0 != "uuid_ts" }
        let selectColumns = (["received_at"] + traits).map(quoteIdentifier).joined(separator: ", ")
        let select = try db.prepare("""
            SELECT \(selectColumns) FROM \(quoteIdentifier(source)) WHERE \(quoteIdentifier(key)) = ?
            ORDER BY timestamp, received_at, id
            """)
        let allColumns = ["id", "received_at", "uuid_ts"] + traits
        let upsert = try db.prepare("""
            INSERT OR REPLACE INTO \(quoteIdentifier(table)) (\(allColumns.map(quoteIdentifier).joined(separator: ", ")))
            VALUES (\(Array(repeating: "?", count: allColumns.count).joined(separator: ", ")))
            """)
        for id in ids.sorted() {
            var values = [SQLValue](repeating: .null, count: traits.count)
            var receivedAt = SQLValue.null
            select.bindText(id, at: 1)
            while try select.step() {
                receivedAt = select.value(at: 0)
                for i in 0..<traits.count {
                    let value = select.value(at: Int32(i + 1))
                    if value != .null { values[i] = value }
                }
            }
            select.reset()
            try upsert.run([.text(id), receivedAt, .text(uuidTs)] + values)
            profilesUpdated[table, default: []].insert(id)
            rowsPerTable[table] = Int64(profilesUpdated[table]!.count)
        }
    }
}

extension Writer.TableState {
    /// Columns every row of this table has besides data keys, which the column limit does not count.
    var callTypeCommonCount: Int {
        (callType?.commonColumns.count ?? 3)
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
