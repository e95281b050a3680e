import SegmentCore
import SegmentWarehouse

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
    package var dialect: any SQLDialect { PostgresDialect(distributed: cluster != nil) }

    package func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [[SQLValue]] {
        try typedQuery(Self.numbered(sql), arguments.map(Self.parameter))
    }

    package func prepared(_ sql: String) throws -> any SQLPrepared { PostgresStatement(connection: self, sql: sql) }
    package func inTransaction<R>(_ body: () throws -> R) throws -> R { try transaction(body) }

    /// Through a cursor, a thousand rows at a time, so that other statements can run between;
    /// the server reads the next thousand while `body` works on these.
    package func each(_ sql: String, _ arguments: [SQLValue], _ body: (any SQLRow) throws -> Void) throws {
        cursors += 1
        let name = "c\(cursors)"
        try run("DECLARE \(name) NO SCROLL CURSOR FOR " + sql, arguments)
        defer { try? execute("CLOSE \(name)") }
        try eachFetched(cursor: name, batch: 1000) { try body(ValuesRow(values: $0)) }
    }

    package func appender(_ table: String, columns: [String]) throws -> any SQLAppender {
        try CopyAppender(connection: self, table: table, columns: columns)
    }

    /// A value as a text parameter: PostgreSQL reads it in the type the statement gives it
    /// (`1`/`0` are booleans too; a BLOB is bytea's hex form).
    package static func parameter(_ value: SQLValue) -> String? {
        switch value {
        case .null: return nil
        case .integer(let i): return String(i)
        case .real(let d): return CopyText.float(d)
        case .text(let s): return s
        case .blob(let b): return "\\x" + hexString(b)
        }
    }

    /// `?` parameters as PostgreSQL's `$1, $2, ...` (outside quoted text and names).
    package static func numbered(_ sql: String) -> String {
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
