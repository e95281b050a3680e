import Foundation

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
}

/// A statement with `?` parameters, run for its effect.
protocol SQLPrepared: AnyObject {
    /// Runs it with these arguments; returns how many rows it changed.
    @discardableResult
    func perform(_ arguments: [SQLValue]) throws -> Int
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
}

extension Statement: SQLPrepared {
    @discardableResult
    func perform(_ arguments: [SQLValue]) throws -> Int {
        try run(arguments)
        return database.changes
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
}

extension PostgresConnection: SQLSession {
    var dialect: SQLDialect { .postgres }

    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [[SQLValue]] {
        try typedQuery(Self.numbered(sql), arguments.map(Self.parameter))
    }

    func prepared(_ sql: String) throws -> any SQLPrepared { PostgresStatement(connection: self, sql: sql) }
    func inTransaction<R>(_ body: () throws -> R) throws -> R { try transaction(body) }

    /// A value as a text parameter: PostgreSQL reads it in the type the statement gives it
    /// (`1`/`0` are booleans too; a BLOB is bytea's hex form).
    static func parameter(_ value: SQLValue) -> String? {
        switch value {
        case .null: return nil
        case .integer(let i): return String(i)
        case .real(let d): return d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : String(d)
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
