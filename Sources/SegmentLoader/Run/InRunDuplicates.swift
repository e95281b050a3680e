import SegmentCore
import SegmentStages

/// Duplicates within one run (docs/warehouse.md, Duplicates): of the copies of a messageId in a run, the
/// one with the earliest received_at wins (then archive path, line, batch item). `RunIds`
/// finds the winner of every id that occurs more than once; this drops the other copies from
/// pass 1's chunks before the writer sees them. Ids already in the warehouse are `CrossRunDuplicates`'.
extension Chunk {
    /// Turns the records that lost to another copy of their id in this run into duplicates.
    package mutating func dropLosers(winners: [MessageKey: Position]) {
        guard !winners.isEmpty else { return }
        var keep = [Bool](repeating: true, count: copies.count)
        var losers = 0
        for (i, copy) in copies.enumerated() {
            if let winner = winners[copy.key], winner != copy.position {
                keep[i] = false
                losers += 1
            }
        }
        guard losers > 0 else { return }
        var record = 0
        for (i, item) in items.enumerated() {
            guard case .message = item else { continue }
            if !keep[record] { items[i] = .duplicateInRun }
            record += 1
        }
        records = records.filtered(keep)
        copies = zip(copies, keep).filter(\.1).map(\.0)
    }
}
