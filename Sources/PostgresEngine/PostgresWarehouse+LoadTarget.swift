import Foundation
import SegmentCore
import SegmentStages
import SegmentWarehouse

extension PostgresWarehouse: LoadTarget {
    public var displayName: String { location.warehouseName }
    package var upgradedFrom: Int32? { nil }
    package var storedBytes: Int64 { PostgresWarehouse.storedBytes(connection) }
    /// Beside nothing the run owns: a new folder in the system's temporary folder.
    package func runFolder() -> String {
        let run = UUID().uuidString.prefix(8).lowercased()
        return URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("segment-loader-\(getpid())-\(run).run-ids").path
    }

    package func destination(names: NameTable, loadId: Int64, uuidTs: String, columnLimit: Int, eventTableLimit: Int) throws -> any Destination {
        try PostgresDestination(warehouse: self, names: names, loadId: loadId, uuidTs: uuidTs,
                                columnLimit: columnLimit, eventTableLimit: eventTableLimit)
    }

    package func failure(of error: any Error, busyTimeout: Double) -> RunOutcome? {
        PostgresDestination.failure(of: error, busyTimeout: busyTimeout)
    }

    package func finish() {}

    package func distribution() -> WarehouseDistribution? {
        guard connection.isUsable else { return nil }
        return try? WarehouseDistribution.read(connection)
    }
}

extension PostgresWarehouse: ErasureScrub {
    package var erasureSession: any SQLSession { connection }

    /// The erasure lock alone: the loads running end first, and the loads starting wait.
    package func prepareErasure() throws {
        try connection.run("SELECT pg_advisory_lock(?::int, 0)", [.integer(Int64(Self.erasureLockClass))])
    }

    /// Every table rows were deleted from, vacuumed: the dead tuples' space is reclaimed
    /// (on Citus, every shard). What PostgreSQL keeps elsewhere (WAL, archives of it, backups)
    /// is for its operator (docs/operations.md).
    package func scrub(tables: [String]) throws -> String? {
        for table in tables.sorted() { try connection.execute("VACUUM \(quoteIdentifier(table))") }
        return nil
    }
}
