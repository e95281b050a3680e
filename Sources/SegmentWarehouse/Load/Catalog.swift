import SegmentCore
import SegmentStages

/// The warehouse's schema as the loader keeps it: the tables and columns it made, with their
/// types, source keys and event names (`_schema_tables`, `_schema_columns`), and the one place
/// that changes them. Before a chunk's rows are written, `apply` creates what the chunk's
/// admitted records need and the warehouse lacks (types from the run's plan, the column limit
/// checked here and nowhere else) and notes new source keys and event names, and which events
/// went past the event table limit (`_events_past_limit`).
public final class Catalog {
    package let session: any SQLSession
    package let names: NameTable
    package let loadId: Int64
    package let columnLimit: Int
    package let eventTableLimit: Int
    /// Planned types of new columns, keyed by `table << 32 | column`.
    package var plannedTypes: [Int64: ColumnType] = [:]

    package private(set) var tables: [Int32: TableState] = [:]
    package private(set) var newTables: [String] = []
    package private(set) var newColumns = 0
    /// Track calls the run loaded past the event table limit, and their distinct event names.
    package private(set) var pastLimitCalls: Int64 = 0
    package private(set) var pastLimitNames: Set<String> = []
    /// Prepared once the table exists (in this run); forgotten when a rollback may have taken it.
    private var pastLimitUpsert: (any SQLPrepared)?
    private let updateKeys: any SQLPrepared
    private let updateEventNames: any SQLPrepared
    private let insertTable: any SQLPrepared
    private let insertColumn: any SQLPrepared

    /// `_schema_columns.note` of a Segment Spec column.
    public static let specNote = "Segment Spec column: created with the table"

    package init(session: any SQLSession, names: NameTable, loadId: Int64, columnLimit: Int, eventTableLimit: Int) throws {
        self.session = session
        self.names = names
        self.loadId = loadId
        self.columnLimit = columnLimit
        self.eventTableLimit = eventTableLimit
        updateKeys = try session.prepared("UPDATE _schema_columns SET source_keys = ? WHERE table_name = ? AND column_name = ?")
        updateEventNames = try session.prepared("UPDATE _schema_tables SET event_names = ? WHERE table_name = ?")
        insertTable = try session.prepared("INSERT INTO _schema_tables (table_name, call_type, event_names, first_load_id) VALUES (?, ?, ?, ?)")
        insertColumn = try session.prepared("""
            INSERT INTO _schema_columns (table_name, column_name, type, source_keys, first_load_id, origin, note)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """)
        try reload()
    }

    package subscript(table: Int32) -> TableState? { tables[table] }

    /// What the run has counted, to restore when a file rolls back.
    package var counters: (tables: [String], columns: Int, pastLimitCalls: Int64, pastLimitNames: Set<String>) {
        get { (newTables, newColumns, pastLimitCalls, pastLimitNames) }
        set { (newTables, newColumns, pastLimitCalls, pastLimitNames) = newValue }
    }

    /// The event tables the warehouse has (every track table but `tracks`).
    package var eventTables: Set<Int32> {
        Set(tables.values.lazy.filter { $0.callType == .track && $0.id != NameTable.tracks }.map(\.id))
    }

    /// The event tables a run with these track calls per event table does not create (see
    /// `EventTableLimit`).
    package func eventTablesPastLimit(counts: [Int32: Int64]) -> Set<Int32> {
        EventTableLimit.pastLimit(counts: counts, existing: eventTables, limit: eventTableLimit, name: names.name)
    }

    /// Reads the catalog back (at start, and after a rolled-back file). A catalog entry that is
    /// not the JSON the loader wrote stops the run: rewriting it would lose what it says.
    package func reload() throws {
        tables.removeAll()
        pastLimitUpsert = nil
        for row in try session.rows(session.dialect.catalogTablesQuery) {
            guard let name = row[0].text, let kind = row[1].text else { continue }
            let state = TableState(id: names.id(name), name: name, callType: CallType(rawValue: kind),
                                   profile: kind == "profile" ? Profile.named(name) : nil)
            if let text = row[2].text { state.eventNames = Set(try Self.strings(text, in: "_schema_tables.event_names of \(name)")) }
            tables[state.id] = state
        }
        for row in try session.rows(session.dialect.catalogColumnsQuery) {
            guard let table = row[0].text, let column = row[1].text, let state = tables[names.id(table)] else { continue }
            let type = ColumnType(rawValue: row[2].text ?? "TEXT") ?? .text
            let keys = try row[3].text.map { try Self.strings($0, in: "_schema_columns.source_keys of \(table).\(column)") } ?? []
            state.add(column, id: names.id(column), type: type, keys: Set(keys.map { names.keyId($0) }))
        }
    }

    private static func strings(_ text: String, in place: String) throws -> [String] {
        guard case .array(let items)? = try? JSONParser.parse(text) else {
            throw WarehouseError(message: "\(place) is not a JSON array of strings (\(text.prefix(80))): the schema catalog is damaged. "
                                 + "Nothing was loaded; restore the value, or remove the row if the column is gone")
        }
        return items.compactMap(\.stringValue)
    }

    // MARK: Applying a chunk's needs

    /// Where a column's values come from, as `_schema_columns.origin` says.
    package enum ColumnOrigin: String, Sendable {
        case common, context, property, trait, extra, profile
    }

    /// A column to create.
    fileprivate struct NewColumn {
        var name: String
        var id: Int32
        var type: ColumnType
        var keys: Set<Int32>
        var origin: ColumnOrigin
        /// One of the Segment Spec's columns a table is created with (not counted as new).
        var spec = false
    }

    /// A table's new columns in the order the chunk first uses them.
    fileprivate struct NewColumns {
        var type: CallType
        var isNew: Bool
        var columns: [NewColumn] = []
        var index: [Int32: Int] = [:]
    }

    /// What a chunk's admitted records need of the schema: the tables and columns to create
    /// (in the order the chunk first uses them), the source keys and event names to note, the
    /// calls past the event table limit to count. `Catalog.plan` computes it without changing
    /// anything; `Catalog.apply` carries it out.
    package struct SchemaChange {
        fileprivate var pending: [Int32: NewColumns] = [:]
        fileprivate var order: [Int32] = []
        fileprivate var firstEvent: [Int32: String] = [:]
        /// The (table, column, key)s the records use that the schema lacks, noted after the
        /// tables are created (a key of a column created with it is there by then).
        fileprivate var keys: [(table: Int32, column: Int32, key: Int32)] = []
        /// The (table, event name)s the records use that the schema lacks, noted after the
        /// tables are created.
        fileprivate var eventNames: [(table: Int32, name: String)] = []
        fileprivate var pastLimit: [String: (event: Int32, count: Int64)] = [:]
        /// Whether carrying it out would change nothing.
        package fileprivate(set) var isEmpty = true
        /// The tables it creates or adds columns to, in order.
        package var tablesToChange: [Int32] { order }
    }

    /// What `apply` would change for the admitted records of a chunk, against the schema as it is now.
    package func plan(_ needs: SchemaNeeds, headers: [RecordCursor.Header], admitted: [Bool], in raw: UnsafeRawBufferPointer) -> SchemaChange {
        func used(_ use: SchemaNeeds.Use) -> Bool { SchemaNeeds.isUsed(use, headers: headers, admitted: admitted, in: raw) }
        var change = SchemaChange()
        for use in needs.uses where use.origin != .discard && tables[use.table]?.index(of: use.column) == nil && used(use) {
            let state = tables[use.table]
            if change.pending[use.table] == nil {
                change.pending[use.table] = NewColumns(type: use.callType, isNew: state == nil)
                change.order.append(use.table)
            }
            if let at = change.pending[use.table]!.index[use.column] {
                if use.column != NameTable.extra { change.pending[use.table]!.columns[at].keys.insert(use.key) }
                continue
            }
            if use.origin == .common && state == nil { continue }  // common columns come with a new table
            let isExtra = use.column == NameTable.extra
            let origin: ColumnOrigin = isExtra ? .extra : use.origin == .common ? .common : use.origin == .context ? .context
                : use.callType == .identify || use.callType == .group ? .trait : .property
            change.pending[use.table]!.index[use.column] = change.pending[use.table]!.columns.count
            change.pending[use.table]!.columns.append(NewColumn(
                name: names.name(use.column), id: use.column, type: isExtra ? .text : planned(use.table, use.column) ?? use.type ?? .text,
                keys: isExtra ? [] : [use.key], origin: origin))
        }
        for event in needs.events where change.pending[event.table]?.isNew == true && change.firstEvent[event.table] == nil
            && SchemaNeeds.isUsed(event, headers: headers, admitted: admitted) {
            change.firstEvent[event.table] = event.name
        }
        // Keys and event names the schema already has are left out: most chunks change nothing.
        for use in needs.uses where use.column != NameTable.extra && used(use) {
            if let state = tables[use.table], let index = state.index(of: use.column) {
                if state.keys[index].contains(use.key) { continue }
            } else if change.pending[use.table] == nil {
                continue  // no column to note it on, now or after this change
            }
            change.keys.append((use.table, use.column, use.key))
        }
        for event in needs.events where SchemaNeeds.isUsed(event, headers: headers, admitted: admitted) {
            if let state = tables[event.table] {
                if state.eventNames.contains(event.name) { continue }
            } else if change.pending[event.table] == nil {
                continue
            }
            change.eventNames.append((event.table, event.name))
        }
        for (r, header) in headers.enumerated() where admitted[r] && header.pastLimit {
            change.pastLimit[header.event?.string ?? "", default: (header.table, 0)].count += 1
        }
        change.isEmpty = change.order.isEmpty && change.keys.isEmpty && change.eventNames.isEmpty && change.pastLimit.isEmpty
        return change
    }

    /// Carries out a change `plan` computed: creates its tables and columns (a new table in one
    /// CREATE TABLE: every schema change makes SQLite parse the whole schema again), then notes
    /// its new source keys and event names and counts its calls past the event table limit.
    package func apply(_ change: SchemaChange) throws {
        guard !change.isEmpty else { return }
        for table in change.order {
            try create(change.pending[table]!, in: table, event: change.firstEvent[table])
        }
        for (table, column, key) in change.keys {
            guard let state = tables[table], let index = state.index(of: column), !state.keys[index].contains(key) else { continue }
            try noteKey(key, at: index, in: state)
        }
        for (table, name) in change.eventNames {
            guard let state = tables[table], !state.eventNames.contains(name) else { continue }
            state.eventNames.insert(name)
            try updateEventNames.perform([.text(JSONWriter.string(.array(state.eventNames.sorted().map { .string($0) }))), .text(state.name)])
        }
        try notePastLimit(change.pastLimit)
    }

    /// `plan`, then `apply`.
    package func apply(_ needs: SchemaNeeds, headers: [RecordCursor.Header], admitted: [Bool], in raw: UnsafeRawBufferPointer) throws {
        try apply(plan(needs, headers: headers, admitted: admitted, in: raw))
    }

    /// What the run wrote, for its summary.
    package func statistics(overflowValues: Int64, profilesUpdated: [String: Set<String>]) -> WriteStatistics {
        var perTable = profilesUpdated.mapValues { Int64($0.count) }
        for state in tables.values where state.rowsWritten > 0 { perTable[state.name] = state.rowsWritten }
        return WriteStatistics(rowsPerTable: perTable, newTables: newTables, newColumns: newColumns,
                               overflowValues: overflowValues, eventTables: eventTables.count,
                               eventTableLimit: eventTableLimit, pastLimitCalls: pastLimitCalls,
                               pastLimitNames: pastLimitNames.count)
    }

    /// Counts the admitted track calls whose event is past the event table limit, per event
    /// name, in `_events_past_limit` (created with the first of them).
    private func notePastLimit(_ calls: [String: (event: Int32, count: Int64)]) throws {
        guard !calls.isEmpty else { return }
        if pastLimitUpsert == nil {
            try session.execute(each: session.dialect.createPlaced(BookkeepingSchema.eventsPastLimit, ifMissing: true))
            pastLimitUpsert = try session.prepared("""
                INSERT INTO _events_past_limit (event_text, event, calls, first_load_id, last_load_id) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (event_text) DO UPDATE SET calls = _events_past_limit.calls + excluded.calls, last_load_id = excluded.last_load_id
                """)
        }
        let upsert = pastLimitUpsert!
        for (name, entry) in calls.sorted(by: { $0.key < $1.key }) {
            try upsert.perform([.text(name), .text(names.name(entry.event)), .integer(entry.count), .integer(loadId), .integer(loadId)])
            pastLimitCalls += entry.count
            pastLimitNames.insert(name)
        }
    }

    private func planned(_ table: Int32, _ column: Int32) -> ColumnType? {
        plannedTypes[Int64(table) << 32 | Int64(column)]
    }

    /// Creates one table's new columns: a new table with the Spec's columns, an existing one
    /// with one ALTER per column; past the column limit, the table's `_extra` instead.
    private func create(_ want: NewColumns, in table: Int32, event: String?) throws {
        // A new table comes with the Spec's columns, typed by the run's plan where a value
        // decided it, else TEXT; they do not count against the column limit.
        let spec = want.isNew ? want.type.specColumns.map { column -> NewColumn in
            let id = names.id(column.name)
            let wanted = want.index[id].map { want.columns[$0] }
            return NewColumn(name: column.name, id: id, type: wanted?.type ?? planned(table, id) ?? .text,
                             keys: wanted?.keys ?? [], origin: column.isContext ? .context : .property, spec: true)
        } : []
        let specIds = Set(spec.map(\.id))
        // The column limit counts data columns; what is past it goes to `_extra`.
        var room = columnLimit - (tables[table]?.dataColumnCount ?? 0)
        var accepted: [NewColumn] = []
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
            accepted.append(NewColumn(name: "_extra", id: NameTable.extra, type: .text, keys: [], origin: .extra))
        }
        let state: TableState
        if want.isNew {
            state = TableState(id: table, name: names.name(table), callType: want.type, profile: nil)
            let common = want.type.commonColumns.map { column -> NewColumn in
                let id = names.id(column.name)
                return NewColumn(name: column.name, id: id, type: column.type, keys: Self.commonSourceKeys[id] ?? [], origin: .common)
            }
            // People read left to right: common columns, properties or traits, then context.
            let isContext = { (column: NewColumn) in column.origin == .context }
            let columns = common + spec.filter { !isContext($0) } + accepted.filter { !isContext($0) && $0.origin != .extra }
                + accepted.filter { $0.origin == .extra } + spec.filter(isContext) + accepted.filter(isContext)
            try createTable(state, columns: columns, kind: want.type.rawValue, eventNames: event.map { [$0] })
        } else {
            state = tables[table]!
            for column in accepted { try addColumn(column, to: state) }
        }
        guard let profile = Profile.derived(from: table) else { return }
        let traits = accepted.filter { $0.origin == .trait }
        if want.isNew {
            try session.execute("CREATE INDEX \(quoteIdentifier(Indexes.profileIndex(profile))) ON \(quoteIdentifier(state.name)) (\(profile.keyColumn), timestamp)")
            try createTable(TableState(id: profile.table, name: profile.tableName, callType: nil, profile: profile), columns: [
                NewColumn(name: "id", id: NameTable.id, type: .text, keys: [profile.sourceKey], origin: .profile),
                NewColumn(name: "received_at", id: NameTable.receivedAt, type: .timestamp, keys: [NameTable.keyReceivedAt], origin: .profile),
                NewColumn(name: "uuid_ts", id: NameTable.uuidTs, type: .timestamp, keys: [], origin: .profile),
            ] + traits, kind: "profile", eventNames: nil)
        } else if let twin = tables[profile.table] {
            for column in traits where twin.index(of: column.id) == nil { try addColumn(column, to: twin) }
        }
    }

    private func createTable(_ state: TableState, columns: [NewColumn], kind: String, eventNames: [String]?) throws {
        let dialect = session.dialect
        var definitions = columns.map { column -> String in
            var definition = quoteIdentifier(column.name) + " " + dialect.typeName(.column(column.type))
            if column.name == "id" && state.profile != nil { definition += " PRIMARY KEY" }
            return definition
        }
        let isCallTable = state.callType != nil
        if isCallTable, let personKey = dialect.personKeyColumn { definitions.append(personKey + " " + dialect.typeName(.text)) }
        try session.execute("CREATE TABLE \(quoteIdentifier(state.name)) (\(definitions.joined(separator: ", ")))")
        for statement in dialect.placement(of: state.name, isCallTable: isCallTable) { try session.execute(statement) }
        try insertTable.perform([.text(state.name), .text(kind),
                             eventNames.map { .text(JSONWriter.string(.array($0.map { .string($0) }))) } ?? .null, .integer(loadId)])
        for column in columns {
            state.add(column.name, id: column.id, type: column.type, keys: column.keys)
            if column.origin != .common && column.origin != .profile && !column.spec { newColumns += 1 }
            try record(column, of: state, note: column.spec ? Self.specNote : renameNote(column, in: state))
        }
        if let event = eventNames?.first { state.eventNames.insert(event) }
        tables[state.id] = state
        newTables.append(state.name)
    }

    package static let commonSourceKeys: [Int32: Set<Int32>] = [
        NameTable.id: [NameTable.keyMessageId], NameTable.anonymousId: [NameTable.keyAnonymousId],
        NameTable.userId: [NameTable.keyUserId], NameTable.receivedAt: [NameTable.keyReceivedAt],
        NameTable.sentAt: [NameTable.keySentAt], NameTable.originalTimestamp: [NameTable.keyOriginalTimestamp, NameTable.keyTimestamp],
        NameTable.timestamp: [NameTable.keyTimestamp], NameTable.uuidTs: [], NameTable.event: [NameTable.keyEvent],
        NameTable.eventText: [NameTable.keyEvent], NameTable.name: [NameTable.keyName], NameTable.category: [NameTable.keyCategory],
        NameTable.groupId: [NameTable.keyGroupId], NameTable.previousId: [NameTable.keyPreviousId],
    ]

    /// Gives a table its `_extra` column (PostgreSQL: for rows too wide for a page).
    package func addExtra(to table: Int32) throws {
        guard let state = tables[table], state.index(of: NameTable.extra) == nil else { return }
        try addColumn(NewColumn(name: "_extra", id: NameTable.extra, type: .text, keys: [], origin: .extra), to: state)
    }

    private func addColumn(_ column: NewColumn, to state: TableState) throws {
        try session.execute("ALTER TABLE \(quoteIdentifier(state.name)) ADD COLUMN \(quoteIdentifier(column.name)) \(session.dialect.typeName(.column(column.type)))")
        state.add(column.name, id: column.id, type: column.type, keys: column.keys)
        newColumns += 1
        try record(column, of: state, note: renameNote(column, in: state))
    }

    /// For a property or trait kept under `_` because it would take a common column's name.
    private func renameNote(_ column: NewColumn, in state: TableState) -> String? {
        guard column.origin == .property || column.origin == .trait, column.name.hasPrefix("_") else { return nil }
        let callType = state.callType ?? state.profile?.callType ?? .identify
        let bare = String(column.name.dropFirst())
        if callType.commonColumns.contains(where: { $0.name == bare }) || bare.hasPrefix("context") || bare == "_extra" {
            return "renamed: \(bare) is a common column of this table"
        }
        return nil
    }

    private func record(_ column: NewColumn, of state: TableState, note: String?) throws {
        try insertColumn.perform([.text(state.name), .text(column.name), .text(column.type.rawValue), .text(keysJSON(column.keys)),
                              .integer(loadId), .text(column.origin.rawValue), note.map { .text($0) } ?? .null])
    }

    /// Records a source key seen for the first time on an existing column (a name collision
    /// the schema catalog shows), and on its twin in users or accounts.
    private func noteKey(_ key: Int32, at index: Int, in state: TableState) throws {
        state.keys[index].insert(key)
        try updateKeys.perform([.text(keysJSON(state.keys[index])), .text(state.name), .text(state.order[index])])
        guard names.keyName(key).hasPrefix("traits."), let profile = Profile.derived(from: state.id), let twin = tables[profile.table],
              let twinIndex = twin.index(of: state.columnIds[index]), !twin.keys[twinIndex].contains(key) else { return }
        twin.keys[twinIndex].insert(key)
        try updateKeys.perform([.text(keysJSON(twin.keys[twinIndex])), .text(twin.name), .text(twin.order[twinIndex])])
    }

    private func keysJSON(_ keys: Set<Int32>) -> String {
        JSONWriter.string(.array(keys.map { names.keyName($0) }.sorted().map { .string($0) }))
    }
}
