import Foundation
import SegmentStages

/// The warehouse a run loads, as `LoadRun` sees it around the `Destination`: the run's row in
/// `_loads`, where its temporary files go, and how its name is shown. `Warehouse` (an SQLite
/// file) and `PostgresWarehouse` (a schema of a PostgreSQL database) implement it.
package protocol LoadTarget: AnyObject {
    /// How output names the warehouse (never with a password).
    var displayName: String { get }
    /// The format the warehouse had when this run upgraded it, if it did.
    var upgradedFrom: Int32? { get }
    /// About how many bytes the warehouse holds (a run that brings more builds its query
    /// indexes once at the end instead of keeping them row by row).
    var storedBytes: Int64 { get }
    /// The folder for a run's sorted id runs and parsed archives (removed at its end).
    func runFolder() -> String
    func beginLoad(pipeline: String, startedAt: String) throws -> Int64
    /// The write side of this load: tables of at most `columnLimit` columns, at most
    /// `eventTableLimit` event tables.
    func destination(names: NameTable, loadId: Int64, uuidTs: String, columnLimit: Int, eventTableLimit: Int) throws -> any Destination
    /// How a failure of this warehouse ends the run (locked out, out of storage, the server
    /// gone), if it is one of those.
    func failure(of error: any Error, busyTimeout: Double) -> RunOutcome?
    /// Records how the load ended; returns why it could not, if it could not.
    func recordEnd(id: Int64, summary: RunSummary) -> String?
    func lastSuccess(pipeline: String) throws -> String?
    /// How the warehouse's tables lie over machines (nil: one machine, or it cannot be read now).
    func distribution() -> WarehouseDistribution?
    /// What the warehouse does once a run is over.
    func finish()
}

