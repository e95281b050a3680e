import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SegmentCore
import SegmentStages
import SegmentWarehouse

/// Upgrades a warehouse written by an older build to the format this build writes. `Warehouse`
/// runs it inside the transaction that also sets `PRAGMA user_version`, so an interrupted
/// upgrade leaves the warehouse as it was.
enum WarehouseUpgrade {
    /// What an upgrade from `version` does, in a sentence for the person running it.
    static func summary(from version: Int32) -> String {
        var steps: [String] = []
        if version < 2 { steps.append("adds _rejects.redacted and renames the loader's indexes") }
        if version < 3 {
            steps.append("rewrites every timestamp as YYYY-MM-DD HH:MM:SS.sss, names bookkeeping columns table_name/column_name, "
                + "gives every reject a kind, adds the Segment Spec columns to every table, keys _message_ids by digest, "
                + "and renames event tables that take a model's name (identities, page_views, sessions, _models)")
        }
        if version < 4 {
            steps.append("renames event tables that take the name of a product-analytics view (active_people, daily_events, weekly_retention)")
        }
        return steps.joined(separator: "; ")
    }

    /// Refuses to start an upgrade that could fill the disk halfway: rewriting every row needs
    /// about the warehouse's size again (SQLite writes the new pages to the WAL before it
    /// checkpoints them into the file). `available` replaces the file system's answer in tests.
    static func checkFreeSpace(for path: String, available: Int64? = nil) throws {
        // A write-ahead log that does not exist holds nothing; a size that cannot be read is
        // not taken as nothing.
        var size: Int64 = 0
        for file in [path, path + "-wal"] {
            var info = stat()
            if stat(file, &info) == 0 {
                size += Int64(info.st_size)
            } else if !(errno == ENOENT && file != path) {
                throw WarehouseError(
                    message: "\(path) needs an upgrade to warehouse format \(Warehouse.formatVersion), which needs about its size free beside it, "
                        + "and the size of \(file) cannot be read (\(String(cString: strerror(errno)))). Nothing was changed.",
                    storage: true)
            }
        }
        guard let free = available ?? freeBytes(in: (path as NSString).deletingLastPathComponent) else { return }
        let needed = size + size / 10 + (8 << 20)
        if free < needed {
            throw WarehouseError(
                message: "\(path) needs an upgrade to warehouse format \(Warehouse.formatVersion), which rewrites it and needs about "
                    + "\(needed >> 20) MB free beside it; \(free >> 20) MB are free. Nothing was changed: free space and run again.",
                storage: true)
        }
    }

    /// Format 2 → 3 (docs/warehouse.md, Formats and upgrades).
    static func toFormat3(_ db: Database) throws {
        // The load that performs the upgrade: new columns record it as their first load.
        let loadId = (try db.scalar("SELECT coalesce(max(id), 0) + 1 FROM _loads")?.integer) ?? 1

        // Bookkeeping columns that need no quoting.
        try db.execute("""
            ALTER TABLE _schema_tables RENAME COLUMN "table" TO table_name;
            ALTER TABLE _schema_columns RENAME COLUMN "table" TO table_name;
            ALTER TABLE _schema_columns RENAME COLUMN "column" TO column_name;
            ALTER TABLE _discards RENAME COLUMN "table" TO table_name;
            ALTER TABLE _discards RENAME COLUMN "column" TO column_name;
            ALTER TABLE _message_ids RENAME COLUMN "table" TO table_name;
            ALTER TABLE _rejects ADD COLUMN kind TEXT NOT NULL DEFAULT 'spec';
            """)

        // Kinds: format 2 kept only the reason, whose wording for each cause is fixed.
        let setKind = try db.prepare("UPDATE _rejects SET kind = ? WHERE id = ?")
        for row in try db.query("SELECT id, reason FROM _rejects") {
            let kind = RejectKind.derived(fromFormat2Reason: row[1].text ?? "")
            if kind != .spec { try setKind.run([.text(kind.rawValue), row[0]]) }
        }

        try renameReservedEventTables(db)
        try addSpecColumns(db, loadId: loadId)
        try rewriteTimestamps(db)

        // The seen-id set by digest, inserted in key order (SQLite sorts through temporary files).
        try db.execute("""
            CREATE TABLE _message_ids_format3 (id BLOB PRIMARY KEY, table_name TEXT NOT NULL, load_id INTEGER NOT NULL) WITHOUT ROWID;
            INSERT OR IGNORE INTO _message_ids_format3 (id, table_name, load_id)
              SELECT \(SeenIds.sqlFunction)(id), table_name, load_id FROM _message_ids ORDER BY 1;
            DROP TABLE _message_ids;
            ALTER TABLE _message_ids_format3 RENAME TO _message_ids;
            """)
    }

    /// Event tables that an older format named like a table this one reserves (`sessions`,
    /// `daily_events`, ...) take
    /// the `_`-prefixed name a fresh load gives them, with their catalog rows, discards, seen
    /// ids, indexes and `event` values.
    static func renameReservedEventTables(_ db: Database) throws {
        let rows = try db.query("SELECT table_name FROM _schema_tables WHERE call_type = 'track' AND table_name != 'tracks' ORDER BY table_name")
        for row in rows {
            guard let old = row[0].text, let new = Names.reservedReplacement(for: old) else { continue }
            if try db.scalar("SELECT count(*) FROM sqlite_master WHERE name = ?", [.text(new)])?.integer != 0 {
                throw WarehouseError(message: "cannot upgrade: the event table \(old) must be renamed \(new) (format \(Warehouse.formatVersion) reserves \(old) for a model), "
                    + "but a table \(new) exists already. Nothing was changed; rename or drop one of them with sqlite3 and run again.")
            }
            // The loader's query indexes are named after their table: they are dropped here and
            // `Indexes.create` makes them under the new name at the end of the run. SQLite's
            // RENAME TO points every other index (and trigger) at the new name itself.
            let ours = try db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name LIKE ? ESCAPE '\\'",
                                    [.text(old), .text(Indexes.prefix.replacingOccurrences(of: "_", with: "\\_") + "%")])
            for index in ours {
                if let name = index[0].text { try db.execute("DROP INDEX \(quoteIdentifier(name))") }
            }
            try db.execute("ALTER TABLE \(quoteIdentifier(old)) RENAME TO \(quoteIdentifier(new))")
            for table in ["_schema_tables", "_schema_columns", "_discards", "_message_ids"] {
                try db.prepare("UPDATE \(table) SET table_name = ? WHERE table_name = ?").run([.text(new), .text(old)])
            }
            // `event` holds the event's table name, in its table and in `tracks`.
            for table in [new, "tracks"] {
                try db.prepare("UPDATE \(quoteIdentifier(table)) SET event = ? WHERE event = ?").run([.text(new), .text(old)])
            }
        }
    }

    /// Every call and event table gets the Segment Spec's columns it lacks (as TEXT: no value
    /// has decided otherwise, or the column would exist).
    private static func addSpecColumns(_ db: Database, loadId: Int64) throws {
        let insertColumn = try db.prepare("""
            INSERT INTO _schema_columns (table_name, column_name, type, source_keys, first_load_id, origin, note)
            VALUES (?, ?, 'TEXT', '[]', ?, ?, ?)
            """)
        for row in try db.query("SELECT table_name, call_type FROM _schema_tables ORDER BY table_name") {
            guard let table = row[0].text, let type = row[1].text.flatMap(CallType.init(rawValue:)) else { continue }
            let existing = Set(try db.query("SELECT column_name FROM _schema_columns WHERE table_name = ?", [.text(table)]).compactMap { $0[0].text })
            for column in type.specColumns where !existing.contains(column.name) {
                try db.execute("ALTER TABLE \(quoteIdentifier(table)) ADD COLUMN \(quoteIdentifier(column.name)) TEXT")
                try insertColumn.run([.text(table), .text(column.name), .integer(loadId),
                                      .text(column.isContext ? "context" : "property"), .text(Catalog.specNote)])
            }
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.sssZ` → `YYYY-MM-DD HH:MM:SS.sss` in every TIMESTAMP column of the
    /// data tables and in the bookkeeping times. Format 2 wrote every such value in exactly
    /// that form; anything else in those columns is left as it is.
    private static func rewriteTimestamps(_ db: Database) throws {
        var columns: [String: [String]] = [:]
        for row in try db.query("SELECT table_name, column_name FROM _schema_columns WHERE type = 'TIMESTAMP' ORDER BY rowid") {
            guard let table = row[0].text, let column = row[1].text else { continue }
            columns[table, default: []].append(column)
        }
        columns["_loads"] = ["started_at", "finished_at"]
        columns["_files"] = ["loaded_at"]
        columns["_discards"] = ["received_at"]
        let format2 = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'"
        for (table, names) in columns.sorted(by: { $0.key < $1.key }) {
            let sets = names.map { name -> String in
                let c = quoteIdentifier(name)
                return "\(c) = CASE WHEN \(c) GLOB \(format2) THEN substr(\(c), 1, 10) || ' ' || substr(\(c), 12, 12) ELSE \(c) END"
            }
            try db.execute("UPDATE \(quoteIdentifier(table)) SET \(sets.joined(separator: ", "))")
        }
    }
}
