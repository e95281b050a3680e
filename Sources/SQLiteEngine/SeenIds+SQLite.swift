import CSQLite
import SegmentCore
import SegmentWarehouse

extension SeenIds {
    /// The SQL function `segment_loader_message_key(text)`, which gives the same key inside
    /// SQLite (the format 2 → 3 upgrade re-keys the set with it, sorting through SQLite's own
    /// temporary files rather than memory).
    package static let sqlFunction = "segment_loader_message_key"

    /// Registers `sqlFunction` on this connection.
    package static func register(in db: Database) throws(SQLiteError) {
        let status = sqlite3_create_function_v2(
            db.handle, sqlFunction, 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nil,
            { context, count, arguments in
                guard count == 1, let argument = arguments?[0], let text = sqlite3_value_text(argument) else {
                    sqlite3_result_null(context)
                    return
                }
                let bytes = UnsafeRawBufferPointer(start: text, count: Int(sqlite3_value_bytes(argument)))
                SeenIds.withKey(of: bytes) { key in
                    sqlite3_result_blob(context, key.baseAddress, Int32(key.count), csqlite_transient())
                }
            }, nil, nil, nil)
        if status != SQLITE_OK { throw db.error(status, sql: nil) }
    }
}
