import SegmentCore

/// The bookkeeping tables of a new warehouse (docs/warehouse.md, Bookkeeping): `_loads`, `_files`,
/// `_rejects`, `_discards`, the schema catalog and the seen-id set. `docs/warehouse.md`
/// describes every column.
package enum BookkeepingSchema {
    typealias C = TableDefinition.Column
    private static let zero = "NOT NULL DEFAULT 0"
    private static let notNull = "NOT NULL"

    package static let tables: [TableDefinition] = [
        TableDefinition("_loads", key: .generated, [
            C("id", .integer), C("pipeline", .text, notNull), C("started_at", .timestamp, notNull), C("finished_at", .timestamp),
            C("status", .text, notNull),
            C("files_loaded", .integer, zero), C("files_partial", .integer, zero), C("files_failed", .integer, zero),
            C("files_skipped", .integer, zero), C("files_not_archives", .integer, zero), C("lines", .integer, zero),
            C("loaded", .integer, zero), C("duplicates", .integer, zero), C("rejected", .integer, zero),
            C("filtered", .integer, zero), C("discarded", .integer, zero), C("tables_created", .integer, zero),
            C("columns_created", .integer, zero), C("error", .text), C("suppressed", .integer, zero),
        ]),
        TableDefinition("_files", key: .generated, [
            C("id", .integer), C("path", .text, notNull), C("size", .integer, notNull), C("sha256", .text, notNull),
            C("source_id", .text), C("day", .text),
            C("status", .text, "NOT NULL CHECK (status IN ('loaded', 'partial', 'failed'))"),
            C("lines", .integer, zero), C("loaded", .integer, zero), C("duplicates", .integer, zero),
            C("rejected", .integer, zero), C("filtered", .integer, zero), C("discarded", .integer, zero),
            C("physical_lines", .integer, zero), C("load_id", .integer, notNull), C("error", .text),
            C("loaded_at", .timestamp, notNull), C("etag", .text), C("suppressed", .integer, zero),
        ], indexes: [("_files_sha256", ["sha256"])]),
        TableDefinition("_rejects", key: .generated, [
            C("id", .integer), C("file", .text, notNull), C("line", .integer, notNull), C("item", .integer),
            C("kind", .text, notNull), C("reason", .text, notNull), C("raw", .text, notNull),
            C("load_id", .integer, notNull), C("redacted", .integer, zero),
        ]),
        TableDefinition("_discards", key: .generated, [
            C("id", .integer), C("table_name", .text, notNull), C("column_name", .text, notNull), C("row_id", .integer),
            C("message_id", .text), C("value", .text, notNull), C("reason", .text, notNull), C("received_at", .timestamp),
            C("load_id", .integer, notNull),
        ]),
        TableDefinition("_schema_tables", key: .columns(["table_name"], ordered: false), [
            C("table_name", .text), C("call_type", .text, notNull), C("event_names", .text),
            C("first_load_id", .integer, notNull),
        ]),
        TableDefinition("_schema_columns", key: .columns(["table_name", "column_name"], ordered: false), [
            C("table_name", .text, notNull), C("column_name", .text, notNull), C("type", .text, notNull),
            C("source_keys", .text, notNull), C("first_load_id", .integer, notNull), C("origin", .text, notNull),
            C("note", .text),
        ]),
        TableDefinition("_message_ids", key: .columns(["id"], ordered: true), [
            C("id", .bytes), C("table_name", .text, notNull), C("load_id", .integer, notNull),
        ]),
    ]

    /// Created with the first track call past the event table limit: one row per event name
    /// that has no table of its own (`event` is the table it would have had, as in `tracks.event`).
    package static let eventsPastLimit = TableDefinition("_events_past_limit", key: .columns(["event_text"], ordered: false), [
        C("event_text", .text), C("event", .text, notNull), C("calls", .integer, notNull),
        C("first_load_id", .integer, notNull), C("last_load_id", .integer, notNull),
    ])

    /// The ids each file's admitted calls touched since the last models build (`ModelTouches`).
    package static let modelPending = TableDefinition("_model_pending", [
        C("kind", .text, notNull), C("id", .text, notNull), C("since", .timestamp, notNull),
    ])

    /// Every bookkeeping table of a new warehouse, in `dialect`'s words.
    package static func statements(_ dialect: any SQLDialect) -> [String] {
        tables.flatMap { dialect.createPlaced($0) }
    }
}
