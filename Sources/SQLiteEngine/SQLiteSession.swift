import CSQLite
import SegmentCore
import SegmentWarehouse


extension Database: SQLSession {
    package var dialect: any SQLDialect { SQLiteDialect.sqlite }

    package func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [[SQLValue]] {
        try query(sql, arguments)
    }

    package func prepared(_ sql: String) throws -> any SQLPrepared { try prepare(sql) }
    package func inTransaction<R>(_ body: () throws -> R) throws -> R { try transaction(.immediate, body) }

    package func each(_ sql: String, _ arguments: [SQLValue], _ body: (any SQLRow) throws -> Void) throws {
        let statement = try prepare(sql)
        for (i, argument) in arguments.enumerated() { try statement.bind(argument, at: Int32(i + 1)) }
        while try statement.step() { try body(statement) }
    }

    package func appender(_ table: String, columns: [String]) throws -> any SQLAppender {
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


extension Statement: SQLPrepared {
    @discardableResult
    package func perform(_ arguments: [SQLValue]) throws -> Int {
        try run(arguments)
        return database.changes
    }

    package func rows(_ arguments: [SQLValue]) throws -> [[SQLValue]] {
        for (i, argument) in arguments.enumerated() { try bind(argument, at: Int32(i + 1)) }
        defer { reset() }
        var rows: [[SQLValue]] = []
        while try step() { rows.append((0..<columnCount).map { value(at: $0) }) }
        return rows
    }
}
