import Foundation
import SegmentCore

/// Which SQL a session speaks, for the few words the warehouse's two databases spell apart.
public enum SQLDialect: Sendable {
    case sqlite
    case postgres

    /// A column type as this database names it (contract section 8 for PostgreSQL).
    func typeName(_ type: ColumnType) -> String {
        guard self == .postgres else { return type.rawValue }
        switch type {
        case .boolean: return "boolean"
        case .integer: return "bigint"
        case .real: return "double precision"
        case .timestamp: return "timestamptz"
        case .text: return "text"
        }
    }

    /// Added to an ORDER BY term of text, to order it by its bytes as SQLite does (PostgreSQL
    /// orders by the database's collation).
    var byBytes: String { self == .postgres ? " COLLATE \"C\"" : "" }
    /// Added to an ORDER BY term, to put NULL first as SQLite does.
    var nullsFirst: String { self == .postgres ? " NULLS FIRST" : "" }

    /// Table definitions written in SQLite's words, in this database's.
    func ddl(_ sql: String) -> String {
        self == .postgres ? PostgresWarehouse.translate(sql) : sql
    }
}

/// The warehouse's database as the schema catalog, the bookkeeping, the query indexes and the
/// models use it: statements with `?` parameters (prepared once per text where the database
/// prepares), values as `SQLValue`. `Database` (SQLite) and `PostgresConnection` implement it,
/// so each of those parts is written once for both.
protocol SQLSession: AnyObject {
    var dialect: SQLDialect { get }
    /// Runs statements without parameters or rows.
    func execute(_ sql: String) throws
    /// Runs one statement; returns its rows.
    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [[SQLValue]]
    /// One statement to run many times (kept by its user, like a prepared statement).
    func prepared(_ sql: String) throws -> any SQLPrepared
    /// Runs `body` in one transaction (SQLite: IMMEDIATE; inside one, a savepoint).
    func inTransaction<R>(_ body: () throws -> R) throws -> R
    /// Calls `body` with each row of a query as it is read (memory does not grow with the
    /// result); `body` may run other statements meanwhile. PostgreSQL: inside a transaction.
    func each(_ sql: String, _ arguments: [SQLValue], _ body: (any SQLRow) throws -> Void) throws
    /// Rows appended to a table in bulk (SQLite: a prepared INSERT; PostgreSQL: COPY), all in
    /// by `finish`.
    func appender(_ table: String, columns: [String]) throws -> any SQLAppender
}

/// A row being read.
protocol SQLRow {
    func value(at column: Int32) -> SQLValue
}

/// See `SQLSession.appender`.
protocol SQLAppender: AnyObject {
    func append(_ values: [SQLValue]) throws
    func finish() throws
}

/// A statement with `?` parameters, run for its effect.
protocol SQLPrepared: AnyObject {
    /// Runs it with these arguments; returns how many rows it changed.
    @discardableResult
    func perform(_ arguments: [SQLValue]) throws -> Int
    /// Runs it with these arguments; returns its rows.
    func rows(_ arguments: [SQLValue]) throws -> [[SQLValue]]
}

extension SQLSession {
    func rows(_ sql: String) throws -> [[SQLValue]] { try rows(sql, []) }
    /// Runs one statement once for its effect; returns how many rows it changed.
    @discardableResult
    func run(_ sql: String, _ arguments: [SQLValue] = []) throws -> Int { try prepared(sql).perform(arguments) }
    func value(_ sql: String, _ arguments: [SQLValue] = []) throws -> SQLValue? { try rows(sql, arguments).first?.first }
}

extension Database: SQLSession {
    var dialect: SQLDialect { .sqlite }

    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [[SQLValue]] {
        try query(sql, arguments)
    }

    func prepared(_ sql: String) throws -> any SQLPrepared { try prepare(sql) }
    func inTransaction<R>(_ body: () throws -> R) throws -> R { try transaction(.immediate, body) }

    func each(_ sql: String, _ arguments: [SQLValue], _ body: (any SQLRow) throws -> Void) throws {
        let statement = try prepare(sql)
        for (i, argument) in arguments.enumerated() { try statement.bind(argument, at: Int32(i + 1)) }
        while try statement.step() { try body(statement) }
    }

    func appender(_ table: String, columns: [String]) throws -> any SQLAppender {
        try SQLiteAppender(statement: prepare("""
            INSERT INTO \(table) (\(columns.map(quoteIdentifier).joined(separator: ", "))) VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", ")))
            """))
    }
}

extension Statement: SQLRow {}

final class SQLiteAppender: SQLAppender {
    let statement: Statement
    init(statement: Statement) { self.statement = statement }
    func append(_ values: [SQLValue]) throws { try statement.run(values) }
    func finish() throws {}
}

/// A row of a PostgreSQL result, already read.
struct ValuesRow: SQLRow {
    let values: [SQLValue]
    func value(at column: Int32) -> SQLValue { values[Int(column)] }
}

extension Statement: SQLPrepared {
    @discardableResult
    func perform(_ arguments: [SQLValue]) throws -> Int {
        try run(arguments)
        return database.changes
    }

    func rows(_ arguments: [SQLValue]) throws -> [[SQLValue]] {
        for (i, argument) in arguments.enumerated() { try bind(argument, at: Int32(i + 1)) }
        defer { reset() }
        var rows: [[SQLValue]] = []
        while try step() { rows.append((0..<columnCount).map { value(at: $0) }) }
        return rows
    }
}

/// A statement of a PostgreSQL session, its `?` already numbered.
final class PostgresStatement: SQLPrepared {
    let connection: PostgresConnection
    let sql: String

    init(connection: PostgresConnection, sql: String) {
        self.connection = connection
        self.sql = PostgresConnection.numbered(sql)
    }

    @discardableResult
    func perform(_ arguments: [SQLValue]) throws -> Int {
        try connection.command(sql, arguments.map(PostgresConnection.parameter))
    }

    func rows(_ arguments: [SQLValue]) throws -> [[SQLValue]] {
        try connection.typedQuery(sql, arguments.map(PostgresConnection.parameter))
    }
}

extension PostgresConnection: SQLSession {
    var dialect: SQLDialect { .postgres }

    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [[SQLValue]] {
        try typedQuery(Self.numbered(sql), arguments.map(Self.parameter))
    }

    func prepared(_ sql: String) throws -> any SQLPrepared { PostgresStatement(connection: self, sql: sql) }
    func inTransaction<R>(_ body: () throws -> R) throws -> R { try transaction(body) }

    /// Through a cursor, a thousand rows at a time, so that other statements can run between;
    /// the server reads the next thousand while `body` works on these.
    func each(_ sql: String, _ arguments: [SQLValue], _ body: (any SQLRow) throws -> Void) throws {
        cursors += 1
        let name = "c\(cursors)"
        try run("DECLARE \(name) NO SCROLL CURSOR FOR " + sql, arguments)
        defer { try? execute("CLOSE \(name)") }
        try eachFetched(cursor: name, batch: 1000) { try body(ValuesRow(values: $0)) }
    }

    func appender(_ table: String, columns: [String]) throws -> any SQLAppender {
        try CopyAppender(connection: self, table: table, columns: columns)
    }

    /// A value as a text parameter: PostgreSQL reads it in the type the statement gives it
    /// (`1`/`0` are booleans too; a BLOB is bytea's hex form).
    static func parameter(_ value: SQLValue) -> String? {
        switch value {
        case .null: return nil
        case .integer(let i): return String(i)
        case .real(let d): return CopyText.float(d)
        case .text(let s): return s
        case .blob(let b): return "\\x" + hexString(b)
        }
    }

    /// `?` parameters as PostgreSQL's `$1, $2, ...` (outside quoted text and names).
    static func numbered(_ sql: String) -> String {
        guard sql.contains("?") else { return sql }
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var quote: Character?
        var n = 0
        for c in sql {
            if let q = quote {
                if c == q { quote = nil }
                out.append(c)
            } else if c == "'" || c == "\"" {
                quote = c
                out.append(c)
            } else if c == "?" {
                n += 1
                out += "$\(n)"
            } else {
                out.append(c)
            }
        }
        return out
    }
}
