/// One row a message yields: the table, and which of the message's field lists it takes.
/// The lists are not copied; the writer reads them from the message's record.
public struct RowPlan: Sendable, Equatable {
    public var table: Int32
    /// Whether the row takes the properties or traits (and `_extra`) besides common and
    /// context columns; the row that does also carries the message's discards.
    public var withPayload: Bool
}

/// Splits a message into the rows of the contract's tables (section 3): a track call goes to
/// `tracks` (common and context columns) and to its event's own table (with properties);
/// every other call to its one table. `users` and `accounts` are derived by the writer.
public enum Splitter {
    /// Calls `body` for each row of a message of `type` whose full row goes to `table`.
    @inline(__always)
    public static func forEachRow(type: CallType, table: Int32, _ body: (RowPlan) throws -> Void) rethrows {
        if type == .track { try body(RowPlan(table: NameTable.tracks, withPayload: false)) }
        try body(RowPlan(table: table, withPayload: true))
    }
}
