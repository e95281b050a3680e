import CSQLite
import SegmentCore
import SegmentStages
import SegmentWarehouse

/// SQLite: one prepared INSERT per table, its parameters bound in place.
final class SQLiteRows: RowTarget {
    let db: Database
    var rowBudget: Int? { nil }
    private var statement: Statement?

    init(db: Database) {
        self.db = db
    }

    func begin(_ state: TableState) throws {
        if let cached = state.insert {
            statement = unsafeDowncast(cached, to: Statement.self)
            return
        }
        let columns = state.order.map(quoteIdentifier).joined(separator: ", ")
        let marks = Array(repeating: "?", count: state.order.count).joined(separator: ", ")
        let prepared = try db.prepare("INSERT INTO \(quoteIdentifier(state.name)) (\(columns)) VALUES (\(marks))")
        state.insert = prepared
        statement = prepared
    }

    @inline(__always) func sink(at index: Int) -> ParameterSink {
        ParameterSink(statement!, index: Int32(index + 1))
    }

    @inline(__always) func staticText(_ bytes: UnsafeRawBufferPointer, at index: Int) {
        statement!.bindStaticText(bytes, at: Int32(index + 1))
    }

    func end() throws -> (rowId: Int64?, refused: [(column: Int, value: String, reason: String)]) {
        let statement = statement!
        defer { statement.reset() }
        try statement.step()
        return (db.lastInsertRowID, [])
    }
}

/// Parameter `index` of a prepared statement. Text bytes are bound without a copy: they must
/// outlive the statement's next step (the chunk's record bytes do).
struct ParameterSink: ValueSink {
    /// The statement's handle, not the statement: a sink lives for one value of a row being
    /// bound, and holding the object would retain and release it for every value.
    let handle: OpaquePointer
    let index: Int32

    init(_ statement: Statement, index: Int32) {
        handle = statement.handle
        self.index = index
    }

    @inline(__always) func null() { sqlite3_bind_null(handle, index) }
    @inline(__always) func integer(_ value: Int64) { sqlite3_bind_int64(handle, index, value) }
    @inline(__always) func real(_ value: Double) { sqlite3_bind_double(handle, index, value) }
    @inline(__always) func text(_ bytes: UnsafeRawBufferPointer) { Statement.bindStaticText(bytes, to: handle, at: index) }
    @inline(__always) func text(_ string: String) { Statement.bindText(string, to: handle, at: index) }
}
