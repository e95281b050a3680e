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

    private var touchedUsers = Set<String>()
    private var touchedAccounts = Set<String>()
    private let insertMessageId: Statement
    private let insertReject: Statement
    private let insertDiscard: Statement
    private let insertFile: Statement
    private let updateKeys: Statement
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

    func beginFile() throws {
        try db.execute("BEGIN IMMEDIATE")
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

    /// Writes a message unless its id is already in the warehouse; returns whether it was written.
    func write(_ message: Message) throws -> Bool {
        let rows = Splitter.rows(for: message)
        insertMessageId.bindText(message.id, at: 1)
        insertMessageId.bindText(rows.last!.table, at: 2)
        insertMessageId.bindInt(loadId, at: 3)
        defer { insertMessageId.reset() }
        try insertMessageId.step()
        if db.changes == 0 { return false }
        let receivedAt = Timestamp.format(message.receivedAt)
        for row in rows {
            try insert(row, messageId: message.id, receivedAt: receivedAt, event: message.event)
        }
        if message.type == .identify, let userId = message.userId { touchedUsers.insert(userId) }
        if message.type == .group, let groupId = message.groupId { touchedAccounts.insert(groupId) }
        return true
    }

    private func insert(_ row: Row, messageId: String, receivedAt: String, event: String?) throws {
        let state = try table(row.table, type: row.type, event: event)
        var bindings: [(Int, SQLValue)] = []
        bindings.reserveCapacity(row.fields.count + 1)
        var discards = row.discards
        var overflow: [(key: String, value: JSONValue)] = []
        var extraIndex: Int?
        for field in row.fields {
            if case .null = field.value { continue }
            guard let index = try column(field, in: state) else {
                overflow.append((field.key.droppingScope(), field.value.jsonValue))
                continue
            }
            if field.column == "_extra" { extraIndex = bindings.count }
            switch convert(field.value, to: state.types[index]) {
            case .value(let value): bindings.append((index, value))
            case .discard(let reason):
                discards.append(PendingDiscard(column: field.column, value: field.value.jsonText, reason: reason))
            }
        }
        if !overflow.isEmpty {
            // Past the per-table column limit, new keys go into the row's `_extra` JSON.
            var members: [(key: String, value: JSONValue)] = []
            if let extraIndex, case .text(let text) = bindings[extraIndex].1, case .object(let existing)? = try? JSONParser.parse(text) {
                members = existing
                bindings.remove(at: extraIndex)
            }
            members += overflow
            let extraField = Field(column: "_extra", key: "_extra", value: .json(JSONWriter.string(.object(members))))
            if let index = try column(extraField, in: state, ignoringLimit: true) {
                bindings.append((index, .text(JSONWriter.string(.object(members)))))
            }
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

    /// The table a row goes to, created with its common columns (and, for identifies and
    /// groups, the users or accounts table beside it) the first time a row needs it.
    private func table(_ name: String, type: CallType, event: String?) throws -> TableState {
        if let state = tables[name] {
            if let event, !state.eventNames.contains(event), name != "tracks" {
                state.eventNames.insert(event)
                try db.prepare("UPDATE _schema_tables SET event_names = ? WHERE \"table\" = ?")
                    .run([.text(JSONWriter.string(.array(state.eventNames.sorted().map { .string($0) }))), .text(name)])
            }
            return state
        }
        let state = TableState(name: name, callType: type, profileOf: nil)
        try createTable(state, columns: type.commonColumns, kind: type.rawValue,
                        eventNames: name == "tracks" ? nil : event.map { [$0] })
        if name == "identifies" || name == "groups" {
            let keyColumn = name == "identifies" ? "user_id" : "group_id"
            try db.execute("CREATE INDEX \(quoteIdentifier(name + "_" + keyColumn)) ON \(quoteIdentifier(name)) (\(keyColumn), timestamp)")
            let profile = TableState(name: name == "identifies" ? "users" : "accounts", callType: nil, profileOf: name)
            try createTable(profile, columns: [("id", .text), ("received_at", .timestamp), ("uuid_ts", .timestamp)],
                            kind: "profile", eventNames: nil)
        }
        return state
    }

    private func createTable(_ state: TableState, columns: [(name: String, type: ColumnType)], kind: String, eventNames: [String]?) throws {
        let definitions = columns.map { column -> String in
            var definition = quoteIdentifier(column.name) + " " + column.type.rawValue
            if column.name == "id" && state.profileOf != nil { definition += " PRIMARY KEY" }
            return definition
        }
        try db.execute("CREATE TABLE \(quoteIdentifier(state.name)) (\(definitions.joined(separator: ", ")))")
        try db.prepare("INSERT INTO _schema_tables (\"table\", call_type, event_names, first_load_id) VALUES (?, ?, ?, ?)")
            .run([.text(state.name), .text(kind),
                  eventNames.map { .text(JSONWriter.string(.array($0.map { .string($0) }))) } ?? .null, .integer(loadId)])
        for column in columns {
            let keys = Self.commonSourceKeys[column.name].map { Set($0) } ?? []
            state.add(column.name, type: column.type, keys: keys)
            try catalog(state, column: column.name, type: column.type, keys: keys, origin: state.profileOf == nil ? "common" : "profile", note: nil)
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

    /// The index of a field's column, adding the column (and its twin in users or accounts)
    /// when it is new; nil when the table is at its column limit.
    private func column(_ field: Field, in state: TableState, ignoringLimit: Bool = false) throws -> Int? {
        if let index = state.index[field.column] {
            if state.lastKey[index] != field.key {
                state.lastKey[index] = field.key
                if !state.keys[index].contains(field.key) && field.column != "_extra" {
                    state.keys[index].insert(field.key)
                    try updateKeys.run([.text(keysJSON(state.keys[index])), .text(state.name), .text(field.column)])
                    if let twin = profileTwin(of: state), let twinIndex = twin.index[field.column], isPayload(field) {
                        twin.keys[twinIndex].insert(field.key)
                        try updateKeys.run([.text(keysJSON(twin.keys[twinIndex])), .text(twin.name), .text(field.column)])
                    }
                }
            }
            return index
        }
        if !ignoringLimit && field.column != "_extra" && state.order.count >= columnLimit + state.callTypeCommonCount {
            return nil
        }
        let type = plannedTypes[state.name]?[field.column] ?? field.value.columnType ?? .text
        try addColumn(field.column, type: type, keys: field.column == "_extra" ? [] : [field.key], origin: origin(of: field), to: state)
        if isPayload(field), let twin = profileTwin(of: state), twin.index[field.column] == nil {
            try addColumn(field.column, type: type, keys: [field.key], origin: "trait", to: twin)
        }
        return state.index[field.column]
    }

    private func addColumn(_ column: String, type: ColumnType, keys: Set<String>, origin: String, to state: TableState) throws {
        try db.execute("ALTER TABLE \(quoteIdentifier(state.name)) ADD COLUMN \(quoteIdentifier(column)) \(type.rawValue)")
        state.add(column, type: type, keys: keys)
        newColumns += 1
        var note: String?
        if origin != "context", origin != "extra", column.hasPrefix("_"), let callType = state.callType ?? (state.profileOf == "identifies" ? .identify : state.profileOf == "groups" ? .group : nil) {
            let bare = String(column.dropFirst())
            if callType.commonColumns.contains(where: { $0.name == bare }) || bare.hasPrefix("context") {
                note = "renamed: \(bare) is a common column of this table"
            }
        }
        try catalog(state, column: column, type: type, keys: keys, origin: origin, note: note)
    }

    private func catalog(_ state: TableState, column: String, type: ColumnType, keys: Set<String>, origin: String, note: String?) throws {
        try db.prepare("""
            INSERT INTO _schema_columns ("table", "column", type, source_keys, first_load_id, origin, note)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """).run([.text(state.name), .text(column), .text(type.rawValue), .text(keysJSON(keys)), .integer(loadId),
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

    private func isPayload(_ field: Field) -> Bool { field.key.hasPrefix("traits.") }

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
            rowsPerTable[table, default: 0] += 1
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
