import SegmentCore

/// Another program (not a segment-loader run: that is `WarehouseLock.Held`) kept SQLite's write
/// lock on the warehouse longer than the run waits.
public struct WarehouseLockedOut: Error, Sendable, CustomStringConvertible {
    public var seconds: Double
    public init(seconds: Double) { self.seconds = seconds }
    public var description: String {
        "another program holds the warehouse's write lock (an open write transaction in sqlite3, Datasette or a script); "
            + "waited \(Int(seconds)) s (warehouse.busy_timeout, --busy-timeout). Every file committed before is kept; run again once it is released."
    }
}
