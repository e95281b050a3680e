import Foundation
import SegmentCore
import SQLiteEngine
import SegmentWarehouse

/// What SQLite alone needs to write a warehouse: the floor under any loader. Copies every table
/// of a loaded warehouse into a fresh file with the loader's own pragmas and journal mode, as
/// `INSERT ... SELECT ... WHERE rowid IS NOT NULL` (the WHERE clause defeats SQLite's raw-page
/// copy, so every row is decoded and encoded again), the seen-id table in random order (as ids
/// arrive), and the indexes built after the rows. No JSON, no Swift, no binding.
public enum WriteFloor {
    public struct Result: Sendable {
        public var seconds: Double
        public var tables: Int
        public var rows: Int64
    }

    public static func measure(source: String, journal: JournalMode, scratch: String) throws -> Result {
        for suffix in ["", "-wal", "-shm", "-journal"] { try? FileManager.default.removeItem(atPath: scratch + suffix) }
        defer { for suffix in ["", "-wal", "-shm", "-journal"] { try? FileManager.default.removeItem(atPath: scratch + suffix) } }
        let started = monotonicNanoseconds()
        let db = try Database(path: scratch)
        _ = try db.scalar("PRAGMA journal_mode=\(journal.pragma)")
        try db.execute("PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY")
        try db.execute("ATTACH \(quoteLiteral(source)) AS src")
        let tables = try db.query("SELECT name, sql FROM src.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")
        let indexes = try db.query("SELECT sql FROM src.sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY rowid").compactMap { $0[0].text }
        var rows: Int64 = 0
        try db.transaction(.deferred) {
            for table in tables {
                guard let name = table[0].text, let sql = table[1].text else { continue }
                try db.execute(sql)
                let order = sql.uppercased().contains("WITHOUT ROWID") ? "WHERE 1 ORDER BY random()" : "WHERE rowid IS NOT NULL"
                try db.execute("INSERT INTO main.\(quoteIdentifier(name)) SELECT * FROM src.\(quoteIdentifier(name)) \(order)")
                rows += Int64(db.changes)
            }
        }
        try db.execute("PRAGMA temp_store=FILE")
        try db.transaction(.deferred) {
            for sql in indexes { try db.execute(sql) }
        }
        try db.execute("DETACH src")
        let seconds = Double(monotonicNanoseconds() - started) / 1e9
        return Result(seconds: seconds, tables: tables.count, rows: rows)
    }

    static func quoteLiteral(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }
}
