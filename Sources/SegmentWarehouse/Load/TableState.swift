import SegmentCore
import SegmentStages

/// One table as the loader knows it: columns in order with their types and source keys, a
/// column-id → position map, the raw event names that map to it, and the prepared INSERT
/// reused until a column is added.
package final class TableState {
    package let id: Int32
    package let name: String
    package let callType: CallType?
    /// For `users` and `accounts`: which profile the table holds.
    package let profile: Profile?
    package var order: [String] = []
    package var columnIds: [Int32] = []
    /// Indexed by column id: the column's position, or -1.
    private var position: [Int32] = []
    package var types: [ColumnType] = []
    package var keys: [Set<Int32>] = []
    package var eventNames: Set<String> = []
    /// The engine's prepared INSERT for the table's columns as they are (cleared when one is added).
    package var insert: AnyObject?
    /// Rows this run wrote (call and event tables).
    package var rowsWritten: Int64 = 0

    package init(id: Int32, name: String, callType: CallType?, profile: Profile?) {
        self.id = id
        self.name = name
        self.callType = callType
        self.profile = profile
    }

    @inline(__always) package func index(of column: Int32) -> Int? {
        let c = Int(column)
        guard c < position.count else { return nil }
        let p = position[c]
        return p < 0 ? nil : Int(p)
    }

    package func add(_ column: String, id: Int32, type: ColumnType, keys: Set<Int32>) {
        let c = Int(id)
        if c >= position.count { position.append(contentsOf: repeatElement(-1, count: c + 256 - position.count)) }
        position[c] = Int32(order.count)
        order.append(column)
        columnIds.append(id)
        types.append(type)
        self.keys.append(keys)
        insert = nil
    }

    /// Columns every row of this table has besides data keys, which the column limit does not count.
    package var fixedColumnCount: Int {
        (callType.map { $0.commonColumns.count + $0.specColumns.count } ?? 3) + (index(of: NameTable.extra) == nil ? 0 : 1)
    }

    /// Data columns (the ones the column limit counts).
    package var dataColumnCount: Int { order.count - fixedColumnCount }

    /// For a profile table: its trait columns (every column but id, received_at and uuid_ts),
    /// in the table's order.
    package var traitColumns: [String] {
        order.filter { $0 != "id" && $0 != "received_at" && $0 != "uuid_ts" }
    }
}
