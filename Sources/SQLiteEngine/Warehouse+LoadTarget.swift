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
