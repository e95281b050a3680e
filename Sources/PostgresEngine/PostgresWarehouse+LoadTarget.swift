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
