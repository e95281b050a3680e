import SegmentCore

/// How one database spells what the warehouse layer says: the words of its types, tables,
/// conflicts, orderings and catalog. The warehouse layer writes each statement once, asking the
/// session's dialect for the words that differ; each engine target provides its dialect
/// (`SQLiteDialect`, `PostgresDialect`) and nothing above the engines asks which one it has.
package protocol SQLDialect: Sendable {
    /// A column type as this database names it (docs/warehouse.md, Types).
    func typeName(_ type: StoredType) -> String
    /// The definition of an integer key the database assigns on insert (`_loads.id`).
    func generatedKey(_ column: String) -> String
    /// Added after a table whose rows are stored in the order of their primary key, where the
    /// database can (SQLite's WITHOUT ROWID; PostgreSQL keeps every table as a heap).
    var keyOrderedTable: String { get }
    /// `ALTER TABLE` adding a column unless it is there (where the database can say so itself,
    /// two loaders adding it at once do not fail; elsewhere the caller has looked first).
    func addColumnIfMissing(table: String, column: String, _ type: StoredType) -> String
    /// The schema that holds a session's temporary tables.
    var temporarySchema: String { get }
    /// `INSERT INTO <target> <select>` that skips rows whose key is already there.
    func insertSkippingDuplicates(into target: String, _ rows: String) -> String
    /// A column in a WHERE clause, kept from the planner's choice of index where the database
    /// chooses without statistics (SQLite's unary `+`).
    func unindexed(_ column: String) -> String
    /// Added to an ORDER BY term of text so that it orders by bytes.
    var byBytes: String { get }
    /// Added to an ascending ORDER BY term so that NULL comes first.
    var nullsFirst: String { get }
    /// A timestamp `seconds` after `expression`, comparable with stored timestamps.
    func plusSeconds(_ expression: String, _ seconds: Int) -> String
    /// A `?` parameter holding a timestamp as text (`YYYY-MM-DD HH:MM:SS.sss`, UTC).
    var timestampParameter: String { get }
    /// The UTC day of a stored timestamp, as whole days since 1970-01-01 (an integer).
    func dayNumber(_ timestamp: String) -> String
    /// A day number as the database writes a day (SQLite: text `YYYY-MM-DD`; PostgreSQL: a date).
    func dayText(_ number: String) -> String
    /// A CTE body giving one row (`day`) per day number from `first_day` to `last_day` of the CTE
    /// `bounds` (none when they are NULL), and whether the WITH must say RECURSIVE for it.
    func daySeries() -> (select: String, recursive: Bool)
    /// `CREATE VIEW name AS select` where the view is missing (PostgreSQL: replaced, as cheap).
    func createView(_ name: String, _ select: String) -> [String]
    /// An expression true when `text` contains the literal `needle` (which has no quote).
    func contains(_ text: String, _ needle: String) -> String
    /// The length of a JSON array held in a text column.
    func jsonArrayLength(_ column: String) -> String

    /// One row, `count(*)`, for the table named by the parameter.
    var tableExistsQuery: String { get }
    /// One row, `count(*)`, for the table and column named by the two parameters.
    var columnExistsQuery: String { get }
    /// Every index of the warehouse: name, table.
    var indexesQuery: String { get }
    /// The columns, in order, of the index named by the parameter.
    var indexColumnsQuery: String { get }
    /// `_schema_tables` (table_name, call_type, event_names) in the order the tables were made.
    var catalogTablesQuery: String { get }
    /// `_schema_columns` (table_name, column_name, type, source_keys) in each table's column order.
    var catalogColumnsQuery: String { get }
    /// The name a longer identifier was stored under before the loader shortened names itself:
    /// `name` when the database keeps any length.
    func storedIdentifier(_ name: String) -> String

    /// Whether a text column holds any bytes (else a line that is not UTF-8, or holds NUL, is
    /// kept as hex; see `RejectRaw.hexCode`).
    var textHoldsAnyBytes: Bool { get }
    /// The name of the primary key constraint of the table named by the parameter, for a full
    /// rebuild to drop and build again after its rows; nil where a primary key is the table.
    var primaryKeyConstraintQuery: String? { get }
    /// Statements that open a models build inside its transaction (a lock, memory for sorting).
    var modelsBuildPreamble: [String] { get }
    /// Statements each person's recomputation costs, relative to one person's share of a full
    /// rebuild: what an incremental build weighs against rebuilding everything.
    var roundTripsPerPerson: Int { get }

    /// Statements that place a table the loader has just created (never a temporary one) where
    /// the database spreads tables over machines (Citus: a distributed or a reference table;
    /// docs/scaling.md); none elsewhere. `isCallTable`: a call or event table, keyed by the
    /// person its calls were sent for.
    func placement(of table: String, isCallTable: Bool) -> [String]
    /// The column call and event tables carry beyond the warehouse's own where the database
    /// needs one to place their rows by person (Citus: `_person_key`, the anonymous id, else
    /// the user id), written by the engine with every row; nil elsewhere.
    var personKeyColumn: String? { get }
    /// The columns of a unique index on `table` as the database can enforce it (Citus: with the
    /// table's distribution column, which every unique key of a distributed table must hold).
    func uniqueKey(_ columns: [String], of table: String) -> [String]
    /// One row where the database spreads the warehouse over machines: the engine and its
    /// version, the nodes holding shards, and the warehouse's tables distributed, reference
    /// and neither; nil where it does not.
    var distributionQuery: String? { get }
}

/// The types the loader's own tables use: the warehouse's column types and bytes.
package enum StoredType: Sendable, Equatable {
    case column(ColumnType)
    case bytes

    package static let text = StoredType.column(.text)
    package static let integer = StoredType.column(.integer)
    package static let real = StoredType.column(.real)
    package static let timestamp = StoredType.column(.timestamp)
}

/// A table the loader itself defines (bookkeeping, models, temporary tables), described once and
/// written in each dialect's words by `SQLDialect.create`.
package struct TableDefinition: Sendable {
    package struct Column: Sendable {
        package var name: String
        package var type: StoredType
        /// The constraints after the type, in SQL (`NOT NULL DEFAULT 0`).
        package var constraints: String
        package init(_ name: String, _ type: StoredType, _ constraints: String = "") {
            self.name = name
            self.type = type
            self.constraints = constraints
        }
    }
    package enum Key: Sendable {
        /// No primary key.
        case none
        /// An integer the database assigns, in the first column.
        case generated
        /// These columns; `ordered`: the rows are stored in the key's order where the database can.
        case columns([String], ordered: Bool)
    }
    package var name: String
    package var columns: [Column]
    package var key: Key
    /// Indexes: name and columns.
    package var indexes: [(name: String, columns: [String])]
    /// Table constraints after the columns (a CHECK).
    package var checks: [String]

    /// Columns written as `name TYPE [constraints]`, separated by commas (no comma inside a
    /// constraint), the types the warehouse's own words (`TEXT`, `INTEGER`, ...; `BLOB` for bytes).
    package static func columns(_ list: String) -> [Column] {
        list.split(separator: ",").map { item in
            let words = item.split(separator: " ", maxSplits: 2).map(String.init)
            let type = words[1] == "BLOB" ? StoredType.bytes : .column(ColumnType(rawValue: words[1])!)
            return Column(words[0], type, words.count > 2 ? words[2] : "")
        }
    }

    package init(_ name: String, key: Key = .none, _ columns: [Column], checks: [String] = [], indexes: [(name: String, columns: [String])] = []) {
        self.name = name
        self.columns = columns
        self.key = key
        self.checks = checks
        self.indexes = indexes
    }
}

extension SQLDialect {
    /// The statements that create `table` and its indexes (`ifMissing`: each IF NOT EXISTS;
    /// `temporary`: the session's own, gone when it ends).
    package func create(_ table: TableDefinition, ifMissing: Bool = false, temporary: Bool = false) -> String {
        createStatements(table, ifMissing: ifMissing, temporary: temporary).joined(separator: ";\n")
    }

    /// `create`, one statement each.
    package func createStatements(_ table: TableDefinition, ifMissing: Bool = false, temporary: Bool = false) -> [String] {
        let guardWord = ifMissing ? "IF NOT EXISTS " : ""
        var definitions: [String] = []
        for (i, column) in table.columns.enumerated() {
            var definition: String
            if case .generated = table.key, i == 0 {
                definition = generatedKey(column.name)
            } else {
                definition = column.name + " " + typeName(column.type)
                if case .columns(let key, _) = table.key, key == [column.name] { definition += " PRIMARY KEY" }
            }
            if !column.constraints.isEmpty { definition += " " + column.constraints }
            definitions.append(definition)
        }
        var ordered = false
        if case .columns(let key, let isOrdered) = table.key {
            ordered = isOrdered
            if key.count > 1 { definitions.append("PRIMARY KEY (\(key.joined(separator: ", ")))") }
        }
        definitions += table.checks
        var sql = "CREATE \(temporary ? "TEMP " : "")TABLE \(guardWord)\(table.name) (\n    " + definitions.joined(separator: ",\n    ") + "\n)"
        if ordered { sql += keyOrderedTable }
        return [sql] + table.indexes.map { index in
            "CREATE INDEX \(guardWord)\(index.name) ON \(table.name) (\(index.columns.joined(separator: ", ")))"
        }
    }

    /// `create` (never temporary), then the table's `placement`.
    package func createPlaced(_ table: TableDefinition, ifMissing: Bool = false) -> [String] {
        createStatements(table, ifMissing: ifMissing) + placement(of: table.name, isCallTable: false)
    }

    /// The column a call table's rows are joined with a person's rows by: the anonymous id, or
    /// the person key where the database places the rows by it (the same value for every call
    /// that has an anonymous id).
    package func anonymousKey(of alias: String) -> String { alias + "." + (personKeyColumn ?? "anonymous_id") }

    /// A session's temporary table `name` made again, empty, for one build's work.
    package func recreateTemporary(_ table: TableDefinition) -> String {
        "DROP TABLE IF EXISTS \(temporary(table.name)); " + create(table, temporary: true)
    }

    /// `name` in the session's temporary schema.
    package func temporary(_ name: String) -> String { temporarySchema + "." + name }
}
