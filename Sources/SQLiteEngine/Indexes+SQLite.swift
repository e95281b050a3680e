import SegmentCore
import SegmentWarehouse

extension Indexes {
    /// Creates the missing indexes, and again those whose columns changed (a warehouse made
    /// before `user_id` and `anonymous_id` took `timestamp`); returns their names.
    @discardableResult
    public static func create(in db: Database) throws -> [String] {
        // Building an index sorts the whole table: let SQLite spill that sort to a temporary
        // file, or memory would grow with the warehouse (the loader otherwise keeps temp in memory).
        try create(session: db) { build in
            try db.execute("PRAGMA temp_store=FILE")
            defer { try? db.execute("PRAGMA temp_store=MEMORY") }
            try build()
        }
    }

    /// Drops the query indexes (not the two the loader needs) before a bulk load.
    public static func dropForBulkLoad(in db: Database) throws -> Int {
        let names = try db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '\\_idx\\_%' ESCAPE '\\'").compactMap { row -> String? in
            if case .text(let name) = row[0] { return name } else { return nil }
        }.filter { !loaderIndexes.contains($0) }
        guard !names.isEmpty else { return 0 }
        try db.transaction(.immediate) {
            for name in names { try db.execute("DROP INDEX IF EXISTS \(quoteIdentifier(name))") }
        }
        return names.count
    }
}
