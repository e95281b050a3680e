import Foundation
import SegmentStages

/// The warehouse a run loads, as `LoadRun` sees it around the `Destination`: the run's row in
/// `_loads`, where its temporary files go, and how its name is shown. `Warehouse` (an SQLite
/// file) and `PostgresWarehouse` (a schema of a PostgreSQL database) implement it.
protocol LoadTarget: AnyObject {
    /// How output names the warehouse (never with a password).
    var displayName: String { get }
    /// The format the warehouse had when this run upgraded it, if it did.
    var upgradedFrom: Int32? { get }
    /// The folder for a run's sorted id runs and parsed archives (removed at its end).
    func runFolder() -> String
    func beginLoad(pipeline: String, startedAt: String) throws -> Int64
    func destination(names: NameTable, loadId: Int64, uuidTs: String, options: LoadOptions) throws -> any Destination
    /// Records how the load ended; returns why it could not, if it could not.
    func recordEnd(id: Int64, summary: RunSummary) -> String?
    func lastSuccess(pipeline: String) throws -> String?
    /// What the warehouse does once a run is over.
    func finish()
}

extension Warehouse: LoadTarget {
    var displayName: String { path }
    func runFolder() -> String { path + ".run-ids" }

    func destination(names: NameTable, loadId: Int64, uuidTs: String, options: LoadOptions) throws -> any Destination {
        try SQLiteDestination(warehouse: self, names: names, loadId: loadId, uuidTs: uuidTs,
                              columnLimit: options.columnLimit, eventTableLimit: options.eventTableLimit)
    }

    func finish() { truncateLog() }
}

extension PostgresWarehouse: LoadTarget {
    public var displayName: String { location.warehouseName }
    var upgradedFrom: Int32? { nil }
    /// Beside nothing the run owns: a new folder in the system's temporary folder.
    func runFolder() -> String {
        let run = UUID().uuidString.prefix(8).lowercased()
        return URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("segment-loader-\(getpid())-\(run).run-ids").path
    }

    func destination(names: NameTable, loadId: Int64, uuidTs: String, options: LoadOptions) throws -> any Destination {
        try PostgresDestination(warehouse: self, names: names, loadId: loadId, uuidTs: uuidTs,
                                columnLimit: options.columnLimit, eventTableLimit: options.eventTableLimit)
    }

    func finish() {}
}
