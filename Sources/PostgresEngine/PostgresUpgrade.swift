import SegmentCore
import SegmentStages
import SegmentWarehouse

/// Upgrades a PostgreSQL (or Citus) warehouse written by an older build, inside the setup
/// transaction that holds the setup lock: two loaders starting at once upgrade it once, and an
/// interrupted upgrade leaves it as it was.
enum PostgresUpgrade {
    /// Format 3 → 4: event tables named like a product-analytics view (`daily_events`, ...) take
    /// the `_`-prefixed name a fresh load gives them, with their catalog rows, discards, seen ids
    /// and `event` values; their query indexes are dropped, and the run's `Indexes.create` makes
    /// them again under the new name.
    static func run(_ connection: PostgresConnection, from version: Int) throws {
        if version < 4 {
            let rows = try connection.query("SELECT table_name FROM _schema_tables WHERE call_type = 'track' AND table_name <> 'tracks' ORDER BY table_name")
            for row in rows {
                guard let old = row[0], let new = Names.reservedReplacement(for: old) else { continue }
                if try connection.scalar("SELECT to_regclass($1) IS NOT NULL", [quoteIdentifier(new)]) == "t" {
                    throw PostgresError(kind: .usage, message: "cannot upgrade: the event table \(old) must be renamed \(new) (format \(WarehouseFormat.version) reserves \(old)), "
                        + "but a table \(new) exists already. Nothing was changed; rename or drop one of them and run again.")
                }
                for index in try connection.query("""
                    SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1 AND indexname LIKE $2
                    """, [old, Indexes.prefix.replacingOccurrences(of: "_", with: "\\_") + "%"]) {
                    if let name = index[0] { try connection.execute("DROP INDEX \(quoteIdentifier(name))") }
                }
                try connection.execute("ALTER TABLE \(quoteIdentifier(old)) RENAME TO \(quoteIdentifier(new))")
                for table in ["_schema_tables", "_schema_columns", "_discards", "_message_ids"] {
                    try connection.query("UPDATE \(table) SET table_name = $1 WHERE table_name = $2", [new, old])
                }
                for table in [new, "tracks"] {
                    try connection.query("UPDATE \(quoteIdentifier(table)) SET event = $1 WHERE event = $2", [new, old])
                }
            }
        }
        try connection.query("UPDATE \(PostgresWarehouse.markerTable) SET value = $1 WHERE key = 'format'", [String(WarehouseFormat.version)])
    }
}
