import CSQLite
import Foundation
import SegmentCore
import SegmentWarehouse

/// An SQLite failure: result code, SQLite's message, and the statement it came from.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    public var code: Int32
    public var message: String
    public var sql: String?

    public var description: String {
        var text = "SQLite error \(code): \(message)"
        if let sql { text += " (in: \(sql.prefix(200)))" }
        return text
    }

    /// SQLITE_BUSY: another connection held the lock past the busy timeout.
    public var isBusy: Bool { code & 0xff == SQLITE_BUSY }
    /// SQLITE_FULL, or an I/O error: the disk, not the data.
    public var isDiskProblem: Bool { code & 0xff == SQLITE_FULL || code & 0xff == SQLITE_IOERR || code & 0xff == SQLITE_READONLY }
}

/// A busy handler's state: when the wait began, how long it may last, and whether it was said.
final class BusyWaiter {
    let limit: Double
    let notice: (@Sendable (String) -> Void)?
    private var started: UInt64?
    private var told = false

    init(limit: Double, notice: (@Sendable (String) -> Void)?) {
        self.limit = limit
        self.notice = notice
    }

    /// Called by SQLite while the lock is held by another connection: sleeps a little and
    /// says whether to try again.
    func shouldRetry(first: Bool) -> Bool {
        let now = monotonicNanoseconds()
        if first || started == nil {
            started = now
            told = false
        }
        let waited = Double(now - started!) / 1e9
        if waited >= limit { return false }
        if waited >= 1, !told {
            told = true
            notice?("waiting for another program's lock on the warehouse (up to \(Int(limit)) s; warehouse.busy_timeout or --busy-timeout)")
        }
        usleep(UInt32(min(50_000, max(1_000, (limit - waited) * 1e6))))
        return true
    }
}

/// One SQLite connection, owned by one thread at a time (the writer). Closed in `deinit`
/// after every statement it prepared (statements hold a strong reference to it).
public final class Database {
    package let handle: OpaquePointer
    /// Savepoints this connection opened (nested transactions), for tests.
    package var savepointsOpened = 0

    /// Memory statistics off, once, before the first connection (see the shim).
    private static let configured: Bool = csqlite_disable_memstatus() == SQLITE_OK

    public init(path: String, readOnly: Bool = false) throws(SQLiteError) {
        _ = Database.configured
        var db: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &db, flags, nil)
        guard status == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close_v2(db)
            throw SQLiteError(code: status, message: "\(message): \(path)", sql: nil)
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 5000)
    }

    deinit {
        sqlite3_close_v2(handle)
        waiter?.release()
    }

    /// Waits for another program's lock up to `seconds` (0: fail at once), telling `notice`
    /// once, after a second, what it waits for.
    public func waitForLocks(upTo seconds: Double, notice: (@Sendable (String) -> Void)? = nil) {
        waiter?.release()
        let box = Unmanaged.passRetained(BusyWaiter(limit: seconds, notice: notice))
        waiter = box
        sqlite3_busy_handler(handle, { context, count in
            guard let context else { return 0 }
            return Unmanaged<BusyWaiter>.fromOpaque(context).takeUnretainedValue().shouldRetry(first: count == 0) ? 1 : 0
        }, box.toOpaque())
    }

    private var waiter: Unmanaged<BusyWaiter>?

    /// Runs one or more statements that return no rows (https://sqlite.org/c3ref/exec.html).
    public func execute(_ sql: String) throws(SQLiteError) {
        var error: UnsafeMutablePointer<CChar>?
        let status = sqlite3_exec(handle, sql, nil, nil, &error)
        if status != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(error)
            throw SQLiteError(code: status, message: message, sql: sql)
        }
    }

    public func prepare(_ sql: String) throws(SQLiteError) -> Statement {
        try Statement(database: self, sql: sql)
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    public var changes: Int { Int(sqlite3_changes(handle)) }
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// All rows of a query, each as an array of values; for small bookkeeping queries.
    public func query(_ sql: String, _ arguments: [SQLValue] = []) throws(SQLiteError) -> [[SQLValue]] {
        let statement = try prepare(sql)
        for (i, argument) in arguments.enumerated() { try statement.bind(argument, at: Int32(i + 1)) }
        var rows: [[SQLValue]] = []
        while try statement.step() {
            rows.append((0..<statement.columnCount).map { statement.value(at: $0) })
        }
        return rows
    }

    /// The first column of the first row, if any.
    public func scalar(_ sql: String, _ arguments: [SQLValue] = []) throws(SQLiteError) -> SQLValue? {
        try query(sql, arguments).first?.first
    }

    package func error(_ status: Int32, sql: String?) -> SQLiteError {
        SQLiteError(code: status, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }
}

/// A prepared statement (https://sqlite.org/c3ref/stmt.html), finalized in `deinit`.
public final class Statement {
    let database: Database
    let handle: OpaquePointer
    let sql: String

    init(database: Database, sql: String) throws(SQLiteError) {
        var statement: OpaquePointer?
        let status = sqlite3_prepare_v3(database.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard status == SQLITE_OK, let statement else { throw database.error(status, sql: sql) }
        self.database = database
        self.handle = statement
        self.sql = sql
    }

    /// How many `?` parameters the statement has.
    var parameterCount: Int { Int(sqlite3_bind_parameter_count(handle)) }

    deinit {
        sqlite3_finalize(handle)
    }

    public var columnCount: Int32 { sqlite3_column_count(handle) }

    public func bind(_ value: SQLValue, at index: Int32) throws(SQLiteError) {
        let status: Int32
        switch value {
        case .null: status = sqlite3_bind_null(handle, index)
        case .integer(let i): status = sqlite3_bind_int64(handle, index, i)
        case .real(let d): status = sqlite3_bind_double(handle, index, d)
        case .text(let s): status = sqlite3_bind_text(handle, index, s, -1, csqlite_transient())
        case .blob(let b):
            status = b.withUnsafeBytes { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), csqlite_transient()) }
        }
        if status != SQLITE_OK { throw database.error(status, sql: sql) }
    }

    @inline(__always) public func bindText(_ s: String, at index: Int32) {
        Self.bindText(s, to: handle, at: index)
    }

    /// Binds bytes the caller keeps alive and unchanged until the statement is reset
    /// (SQLITE_STATIC: SQLite does not copy them).
    @inline(__always) func bindStaticText(_ bytes: UnsafeRawBufferPointer, at index: Int32) {
        Self.bindStaticText(bytes, to: handle, at: index)
    }

    /// The same on a statement's handle (for a caller that binds many values and holds only it).
    @inline(__always) static func bindText(_ s: String, to handle: OpaquePointer, at index: Int32) {
        var s = s
        s.withUTF8 { buffer in
            guard buffer.count > 0 else {
                sqlite3_bind_text(handle, index, "", 0, csqlite_transient())
                return
            }
            _ = buffer.withMemoryRebound(to: CChar.self) {
                sqlite3_bind_text(handle, index, $0.baseAddress, Int32($0.count), csqlite_transient())
            }
        }
    }

    @inline(__always) static func bindStaticText(_ bytes: UnsafeRawBufferPointer, to handle: OpaquePointer, at index: Int32) {
        if bytes.isEmpty {
            sqlite3_bind_text(handle, index, "", 0, csqlite_transient())
        } else {
            sqlite3_bind_text(handle, index, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(bytes.count), nil)
        }
    }

    /// Binds bytes that SQLite copies (SQLITE_TRANSIENT) as a BLOB.
    @inline(__always) func bindBlob(_ bytes: UnsafeRawBufferPointer, at index: Int32) {
        sqlite3_bind_blob(handle, index, bytes.baseAddress, Int32(bytes.count), csqlite_transient())
    }

    @inline(__always) public func bindInt(_ i: Int64, at index: Int32) { sqlite3_bind_int64(handle, index, i) }
    @inline(__always) public func bindDouble(_ d: Double, at index: Int32) { sqlite3_bind_double(handle, index, d) }
    @inline(__always) public func bindNull(at index: Int32) { sqlite3_bind_null(handle, index) }

    /// Steps once: true while there is a row to read.
    @discardableResult
    public func step() throws(SQLiteError) -> Bool {
        let status = sqlite3_step(handle)
        switch status {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            sqlite3_reset(handle)
            throw database.error(status, sql: sql)
        }
    }

    /// Runs the statement to completion with these arguments, then resets it for reuse.
    public func run(_ arguments: [SQLValue]) throws(SQLiteError) {
        for (i, argument) in arguments.enumerated() { try bind(argument, at: Int32(i + 1)) }
        defer { reset() }
        while try step() {}
    }

    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    public func value(at column: Int32) -> SQLValue {
        switch sqlite3_column_type(handle, column) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(handle, column))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, column))
        case SQLITE_TEXT:
            let count = Int(sqlite3_column_bytes(handle, column))
            guard let pointer = sqlite3_column_text(handle, column) else { return .text("") }
            return .text(String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(handle, column))
            guard let pointer = sqlite3_column_blob(handle, column) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: pointer, count: count)))
        default: return .null
        }
    }
}

