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

    /// The erasure lock alone: the loads running end first, and the loads starting wait. After
    /// `erasureWaitSeconds` of loads still running, it gives up (exit 75, as a held lock).
    package func prepareErasure() throws {
        let deadline = Date().addingTimeInterval(Self.erasureWaitSeconds)
        while true {
            if try connection.scalar("SELECT pg_try_advisory_lock(\(Self.erasureLockClass), 0)") == "t" { return }
            guard Date() < deadline else {
                throw PostgresError(kind: .retry, message: "loads into \(displayName) kept running for \(Int(Self.erasureWaitSeconds)) s: forget waits for the loads that are running and takes the warehouse alone; run it again when they are done")
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    package static let erasureWaitSeconds: Double = 300

    /// Every table rows were deleted from, vacuumed: the dead tuples' space is reclaimed
    /// (on Citus, every shard). What PostgreSQL keeps elsewhere (WAL, archives of it, backups)
    /// is for its operator (docs/operations.md).
    package func scrub(tables: [String]) throws -> String? {
        for table in tables.sorted() { try connection.execute("VACUUM \(quoteIdentifier(table))") }
        return nil
    }
}
