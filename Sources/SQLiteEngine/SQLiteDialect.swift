import SegmentCore
import SegmentWarehouse

/// SQLite's words for the warehouse layer's statements.
package struct SQLiteDialect: SQLDialect {
    package init() {}

    package func typeName(_ type: StoredType) -> String {
        switch type {
        case .column(let column): return column.rawValue
        case .bytes: return "BLOB"
        }
    }
    /// A rowid alias: the table's own key, assigned on insert.
    package func generatedKey(_ column: String) -> String { column + " INTEGER PRIMARY KEY" }
    package var keyOrderedTable: String { " WITHOUT ROWID" }
    /// SQLite has no IF NOT EXISTS here; its loaders are one at a time (the lock file).
    package func addColumnIfMissing(table: String, column: String, _ type: StoredType) -> String {
        "ALTER TABLE \(table) ADD COLUMN \(column) \(typeName(type))"
    }
    package var temporarySchema: String { "temp" }
    package func insertSkippingDuplicates(into target: String, _ rows: String) -> String {
        "INSERT OR IGNORE INTO \(target) \(rows)"
    }
    /// SQLite has no statistics unless asked (ANALYZE): a unary `+` keeps its planner off an
    /// index that would read a whole table's rows for `user_id IS NULL`.
    package func unindexed(_ column: String) -> String { "+" + column }
    /// strftime's `%f` gives the stored form's milliseconds, so the text compares as stored.
    package func plusSeconds(_ expression: String, _ seconds: Int) -> String {
        "strftime('%Y-%m-%d %H:%M:%f', \(expression), '+\(seconds) seconds')"
    }
    package var timestampParameter: String { "?" }
    /// Timestamps are text `YYYY-MM-DD HH:MM:SS.sss`: the day is their first ten characters.
    package func dayNumber(_ timestamp: String) -> String { "CAST(julianday(substr(\(timestamp), 1, 10)) - 2440587.5 AS INTEGER)" }
    package func dayText(_ number: String) -> String { "date((\(number)) * 86400, 'unixepoch')" }
    package func daySeries() -> (select: String, recursive: Bool) {
        ("SELECT first_day FROM bounds WHERE first_day IS NOT NULL UNION ALL SELECT days.day + 1 FROM days, bounds WHERE days.day < bounds.last_day", true)
    }
    package func createView(_ name: String, _ select: String) -> [String] {
        ["CREATE VIEW IF NOT EXISTS \(name) AS\n\(select)"]
    }
    /// SQLite compares text with memcmp (BINARY) unless told otherwise.
    package var byBytes: String { "" }
    /// SQLite puts NULL first in ascending order.
    package var nullsFirst: String { "" }
    package func contains(_ text: String, _ needle: String) -> String { "instr(\(text), '\(needle)')" }
    package func jsonArrayLength(_ column: String) -> String { "json_array_length(\(column))" }

    package var tableExistsQuery: String { "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?" }
    package var columnExistsQuery: String { "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?" }
    package var indexesQuery: String { "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'" }
    package var indexColumnsQuery: String { "SELECT name FROM pragma_index_info(?) ORDER BY seqno" }
    /// The rowid order is the order of insertion.
    package var catalogTablesQuery: String { "SELECT table_name, call_type, event_names FROM _schema_tables ORDER BY rowid" }
    package var catalogColumnsQuery: String {
        "SELECT table_name, column_name, type, source_keys FROM _schema_columns ORDER BY rowid"
    }
    /// SQLite keeps a name of any length.
    package func storedIdentifier(_ name: String) -> String { name }

    package var textHoldsAnyBytes: Bool { true }
    /// A rowid table's primary key cannot be dropped.
    package var primaryKeyConstraintQuery: String? { nil }
    /// The models build holds the write lock its transaction took (BEGIN IMMEDIATE).
    package var modelsBuildPreamble: [String] { [] }
    /// Statements are calls into the same process.
    package var roundTripsPerPerson: Int { 1 }
    /// One file on one machine: nothing to place, no column to place rows by.
    package func placement(of table: String, isCallTable: Bool) -> [String] { [] }
    package var personKeyColumn: String? { nil }
    package func uniqueKey(_ columns: [String], of table: String) -> [String] { columns }
    package var distributionQuery: String? { nil }
}

extension SQLDialect where Self == SQLiteDialect {
    package static var sqlite: SQLiteDialect { SQLiteDialect() }
}
