import SegmentCore

/// The bookkeeping tables of a new warehouse (docs/warehouse.md, Bookkeeping): `_loads`, `_files`,
/// `_rejects`, `_discards`, the schema catalog and the seen-id set. `docs/warehouse.md`
/// describes every column.
package enum BookkeepingSchema {
    package static let sql = """
        CREATE TABLE _loads (
            id INTEGER PRIMARY KEY,
            pipeline TEXT NOT NULL,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            status TEXT NOT NULL,
            files_loaded INTEGER NOT NULL DEFAULT 0,
            files_partial INTEGER NOT NULL DEFAULT 0,
            files_failed INTEGER NOT NULL DEFAULT 0,
            files_skipped INTEGER NOT NULL DEFAULT 0,
            files_not_archives INTEGER NOT NULL DEFAULT 0,
            lines INTEGER NOT NULL DEFAULT 0,
            loaded INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0,
            filtered INTEGER NOT NULL DEFAULT 0,
            discarded INTEGER NOT NULL DEFAULT 0,
            tables_created INTEGER NOT NULL DEFAULT 0,
            columns_created INTEGER NOT NULL DEFAULT 0,
            error TEXT
        );
        CREATE TABLE _files (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            source_id TEXT,
            day TEXT,
            status TEXT NOT NULL CHECK (status IN ('loaded', 'partial', 'failed')),
            lines INTEGER NOT NULL DEFAULT 0,
            loaded INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0,
            filtered INTEGER NOT NULL DEFAULT 0,
            discarded INTEGER NOT NULL DEFAULT 0,
            physical_lines INTEGER NOT NULL DEFAULT 0,
            load_id INTEGER NOT NULL,
            error TEXT,
            loaded_at TIMESTAMP NOT NULL,
            etag TEXT
        );
        CREATE INDEX _files_sha256 ON _files (sha256);
        CREATE TABLE _rejects (
            id INTEGER PRIMARY KEY,
            file TEXT NOT NULL,
            line INTEGER NOT NULL,
            item INTEGER,
            kind TEXT NOT NULL,
            reason TEXT NOT NULL,
            raw TEXT NOT NULL,
            load_id INTEGER NOT NULL,
            redacted INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE _discards (
            id INTEGER PRIMARY KEY,
            table_name TEXT NOT NULL,
            column_name TEXT NOT NULL,
            row_id INTEGER,
            message_id TEXT,
            value TEXT NOT NULL,
            reason TEXT NOT NULL,
            received_at TIMESTAMP,
            load_id INTEGER NOT NULL
        );
        CREATE TABLE _schema_tables (
            table_name TEXT PRIMARY KEY,
            call_type TEXT NOT NULL,
            event_names TEXT,
            first_load_id INTEGER NOT NULL
        );
        CREATE TABLE _schema_columns (
            table_name TEXT NOT NULL,
            column_name TEXT NOT NULL,
            type TEXT NOT NULL,
            source_keys TEXT NOT NULL,
            first_load_id INTEGER NOT NULL,
            origin TEXT NOT NULL,
            note TEXT,
            PRIMARY KEY (table_name, column_name)
        );
        CREATE TABLE _message_ids (
            id BLOB PRIMARY KEY,
            table_name TEXT NOT NULL,
            load_id INTEGER NOT NULL
        ) WITHOUT ROWID;
        """

    /// Created with the first track call past the event table limit: one row per event name
    /// that has no table of its own (`event` is the table it would have had, as in `tracks.event`).
    package static let eventsPastLimit = """
        CREATE TABLE IF NOT EXISTS _events_past_limit (
            event_text TEXT PRIMARY KEY,
            event TEXT NOT NULL,
            calls INTEGER NOT NULL,
            first_load_id INTEGER NOT NULL,
            last_load_id INTEGER NOT NULL
        )
        """
}
