import Foundation
import SegmentCore
import SegmentStages
import SegmentWarehouse

extension Warehouse: LoadTarget {
    package var displayName: String { path }
    package func runFolder() -> String { path + ".run-ids" }

    package var storedBytes: Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.int64Value ?? 0
    }

    package func destination(names: NameTable, loadId: Int64, uuidTs: String, columnLimit: Int, eventTableLimit: Int) throws -> any Destination {
        try SQLiteDestination(warehouse: self, names: names, loadId: loadId, uuidTs: uuidTs,
                              columnLimit: columnLimit, eventTableLimit: eventTableLimit)
    }

    package func failure(of error: any Error, busyTimeout: Double) -> RunOutcome? {
        SQLiteDestination.failure(of: error, busyTimeout: busyTimeout)
    }

    package func finish() { truncateLog() }
    /// One file on one machine.
    package func distribution() -> WarehouseDistribution? { nil }
}

extension Warehouse: ErasureScrub {
    package var erasureSession: any SQLSession { db }

    package func prepareErasure() throws {
        try db.execute("PRAGMA secure_delete = ON")
    }

    /// VACUUM writes every live page into a new file and the freed ones are gone with the old
    /// file (it needs free space of the file's size beside it, and again in the WAL); pages of cells deleted earlier, free blocks inside pages and old copies of pages in
    /// the WAL go with them. Then the WAL is emptied. A reader that holds the WAL open stops
    /// the last step: said, and the request stays pending.
    package func scrub(tables: [String]) throws -> String? {
        // VACUUM builds the new file as a temporary database first: on disk, beside the
        // warehouse (the session's temporary storage is memory, which would hold all of it).
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try db.execute("PRAGMA temp_store = FILE; PRAGMA temp_store_directory = '\(folder.replacingOccurrences(of: "'", with: "''"))'")
        defer { try? db.execute("PRAGMA temp_store_directory = ''; PRAGMA temp_store = MEMORY") }
        try db.execute("VACUUM")
        db.waitForLocks(upTo: 10)
        let row = try db.query("PRAGMA wal_checkpoint(TRUNCATE)").first
        db.waitForLocks(upTo: Warehouse.defaultBusyTimeout)
        if let busy = row?.first?.integer, busy != 0 {
            return "another program (a reader such as sqlite3 or Datasette) holds the warehouse's write-ahead log open, so old pages in it could not be removed; close it and run forget --resume"
        }
        return nil
    }
}
