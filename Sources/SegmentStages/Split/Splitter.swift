import SegmentCore

/// One row a message yields: the table, and which of the message's field lists it takes.
/// The lists are not copied; the writer reads them from the message's record.
public struct RowPlan: Sendable, Equatable {
    public var table: Int32
    /// Whether the row takes the properties or traits (and `_extra`) besides common and
    /// context columns; the row that does also carries the message's discards.
    public var withPayload: Bool
}

/// A row for the writer: which record of the chunk it comes from, and its plan.
package struct SplitRow {
    package var record: Int
    package var plan: RowPlan
}

/// The Split stage: a message becomes the rows of the warehouse's tables (docs/warehouse.md, Tables). A track
/// call goes to `tracks` (common and context columns) and to its event's own table (with
/// properties), or, when its event is past the event table limit, only to `tracks` with its
/// properties in the row's `_extra`; every other call to its one table. The `users` and `accounts` rows an identify
/// or group call changes are derived by `ProfileDerivation`, also part of this stage.
public enum Splitter {
    /// Calls `body` for each row of a message of `type` whose full row goes to `table`.
    @inline(__always)
    public static func forEachRow(type: CallType, table: Int32, pastLimit: Bool = false, _ body: (RowPlan) throws -> Void) rethrows {
        if type == .track && pastLimit { return try body(RowPlan(table: NameTable.tracks, withPayload: true)) }
        if type == .track { try body(RowPlan(table: NameTable.tracks, withPayload: false)) }
        try body(RowPlan(table: table, withPayload: true))
    }

    /// The rows of a packed record.
    @inline(__always)
    package static func forEachRow(_ header: RecordCursor.Header, _ body: (RowPlan) throws -> Void) rethrows {
        try forEachRow(type: header.type, table: header.table, pastLimit: header.pastLimit, body)
    }

    /// The rows of a chunk's admitted messages, in the chunk's order.
    package static func rows(of headers: [RecordCursor.Header], admitted: [Bool]) -> [SplitRow] {
        var rows: [SplitRow] = []
        rows.reserveCapacity(headers.count + headers.count / 2)
        for (i, header) in headers.enumerated() where admitted[i] {
            forEachRow(header) { rows.append(SplitRow(record: i, plan: $0)) }
        }
        return rows
    }
}
