import SegmentCore

/// The warehouse's database as the schema catalog, the bookkeeping, the query indexes and the
/// models use it: statements with `?` parameters (prepared once per text where the database
/// prepares), values as `SQLValue`. `Database` (SQLite) and `PostgresConnection` implement it,
/// so each of those parts is written once for both.
package protocol SQLSession: AnyObject {
    /// The words this database spells apart from the others.
    var dialect: any SQLDialect { get }
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
package protocol SQLRow {
    func value(at column: Int32) -> SQLValue
}

/// See `SQLSession.appender`.
package protocol SQLAppender: AnyObject {
    func append(_ values: [SQLValue]) throws
    func finish() throws
}

/// A statement with `?` parameters, run for its effect.
package protocol SQLPrepared: AnyObject {
    /// Runs it with these arguments; returns how many rows it changed.
    @discardableResult
    func perform(_ arguments: [SQLValue]) throws -> Int
    /// Runs it with these arguments; returns its rows.
    func rows(_ arguments: [SQLValue]) throws -> [[SQLValue]]
}

extension SQLSession {
    /// Whether a table exists in the warehouse.
    package func tableExists(_ name: String) throws -> Bool {
        try value(dialect.tableExistsQuery, [.text(name)])?.integer == 1
    }
    /// Whether a table has a column.
    package func columnExists(_ table: String, _ column: String) throws -> Bool {
        try value(dialect.columnExistsQuery, [.text(table), .text(column)])?.integer != 0
    }
    package func rows(_ sql: String) throws -> [[SQLValue]] { try rows(sql, []) }
    /// Runs statements one at a time (Citus sends a DDL statement's text to the workers and
    /// refuses text that holds several).
    package func execute(each statements: [String]) throws {
        for statement in statements { try execute(statement) }
    }
    /// Runs one statement once for its effect; returns how many rows it changed.
    @discardableResult
    package func run(_ sql: String, _ arguments: [SQLValue] = []) throws -> Int { try prepared(sql).perform(arguments) }
    package func value(_ sql: String, _ arguments: [SQLValue] = []) throws -> SQLValue? { try rows(sql, arguments).first?.first }

    /// (Re)creates the temporary table `name` (one text column `id`, its key) holding `ids`:
    /// the set of ids a models build or an erasure joins its statements with.
    package func fillTemporaryIds(_ name: String, _ ids: Set<String>) throws {
        try execute(dialect.recreateTemporary(TableDefinition(name, key: .columns(["id"], ordered: true), [.init("id", .text)])))
        let insert = try appender(dialect.temporary(name), columns: ["id"])
        for id in ids.sorted() { try insert.append([.text(id)]) }
        try insert.finish()
    }
}

/// A row of a PostgreSQL result, already read.
package struct ValuesRow: SQLRow {
    package let values: [SQLValue]
    package init(values: [SQLValue]) { self.values = values }
    package func value(at column: Int32) -> SQLValue { values[Int(column)] }
}

/// Quotes an identifier for SQL: `"name"`, with inner quotes doubled.
public func quoteIdentifier(_ name: String) -> String {
    "\"" + name.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
}
