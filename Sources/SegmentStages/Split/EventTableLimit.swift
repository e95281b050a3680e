/// The event table limit: a warehouse makes at most so many event tables (the pipeline's
/// `warehouse.event_table_limit`). Every table costs every connection that opens the warehouse
/// (SQLite reads the whole schema first) and every later schema change; an event name with an
/// id inside it ("Viewed Product 12345") would otherwise make a table per id.
///
/// A track call whose event has no table and cannot get one is not lost: its row in `tracks`
/// takes its properties in `_extra`, and `_events_past_limit` names the event.
public enum EventTableLimit {
    /// The default number of event tables.
    public static let defaultLimit = 1000
    /// The largest limit a pipeline may set: past it, SQLite's per-statement cost of a large
    /// schema makes each new column of a run cost tenths of a second.
    public static let maximum = 10_000

    /// The event tables of the run (`counts`: track calls per event table over its archives)
    /// that it does not create. A table that exists keeps taking rows; of the new ones, those
    /// with the most calls in the run come first, then by name, until the warehouse holds
    /// `limit` event tables. Counts over the whole run and names decide it, so the result does
    /// not depend on the order of the archives, as a new column's type does not.
    package static func pastLimit(counts: [Int32: Int64], existing: Set<Int32>, limit: Int, name: (Int32) -> String) -> Set<Int32> {
        let new = counts.filter { !existing.contains($0.key) }
        let room = max(0, limit - existing.count)
        guard new.count > room else { return [] }
        let ranked = new.map { (table: $0.key, calls: $0.value, name: name($0.key)) }
            .sorted { $0.calls != $1.calls ? $0.calls > $1.calls : $0.name < $1.name }
        return Set(ranked.dropFirst(room).map(\.table))
    }
}
