/// One row bound for one table.
public struct Row: Sendable {
    public var table: String
    public var type: CallType
    public var fields: [Field]
    /// Values of this message kept out of their columns; written with this row's id.
    public var discards: [PendingDiscard]
}

/// Splits a message into the rows of the contract's tables (section 3): a track call goes to
/// `tracks` (common and context columns) and to its event's own table (with properties);
/// every other call to its one table. `users` and `accounts` are derived by the writer.
public enum Splitter {
    public static func rows(for message: Message) -> [Row] {
        switch message.type {
        case .track:
            let base = message.common + message.context
            return [
                Row(table: "tracks", type: .track, fields: base, discards: []),
                Row(table: message.eventTable ?? "tracks", type: .track, fields: base + message.payload, discards: message.discards),
            ]
        default:
            return [Row(table: message.type.table, type: message.type,
                        fields: message.common + message.context + message.payload, discards: message.discards)]
        }
    }
}
