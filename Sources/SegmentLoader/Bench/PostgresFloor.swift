import Foundation
import SQLiteEngine
import PostgresEngine
import SegmentCore
import SegmentWarehouse

/// `bench --db postgresql://... --floor`: what PostgreSQL alone needs for the rows a load wrote.
/// Every table of the loaded schema is exported to a file first (not timed); the timed part is
/// `psql` making the same tables in a schema of their own, `\copy`ing each file in, then
/// building the same indexes: the rows with no parsing, no dedupe and no schema decisions.
public enum PostgresFloor {
    public struct Scripts: Sendable {
        /// Exports the tables (run first, not timed).
        public var export: String
        /// The timed load: tables, `\copy` of each file, then the indexes.
        public var load: String
        public var tables: Int
        public var rows: Int64
    }

    public static func scripts(url: String, schema: String, floorSchema: String, scratch: URL) throws -> Scripts {
        let connection = try PostgresConnection(PostgresLocation(url, schema: schema))
        try connection.execute("DROP SCHEMA IF EXISTS \(quoteIdentifier(floorSchema)) CASCADE")
        let tables = try connection.query("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name", [schema])
            .compactMap { $0[0] }
        // Each index as name, table, uniqueness and key columns, made again on the copy.
        let indexes = try connection.query("""
            SELECT i.relname, t.relname, x.indisunique,
                   array_to_string(ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) FROM generate_series(1, x.indnkeyatts) AS k), ', ')
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1 ORDER BY 1
            """, [schema])
        var export: [String] = [], load: [String] = ["CREATE SCHEMA \(quoteIdentifier(floorSchema));"]
        var rows: Int64 = 0
        for (i, table) in tables.enumerated() {
            let file = scratch.appendingPathComponent("table-\(i).copy").path
            let source = quoteIdentifier(schema) + "." + quoteIdentifier(table), target = quoteIdentifier(floorSchema) + "." + quoteIdentifier(table)
            export.append("\\copy \(source) TO '\(file)'")
            load.append("CREATE TABLE \(target) (LIKE \(source));")
            load.append("\\copy \(target) FROM '\(file)'")
            rows += Int64(try connection.scalar("SELECT count(*) FROM \(source)") ?? "0") ?? 0
        }
        for index in indexes {
            guard let name = index[0], let table = index[1], let columns = index[3] else { continue }
            load.append("CREATE \(index[2] == "t" ? "UNIQUE " : "")INDEX \(quoteIdentifier(name)) ON \(quoteIdentifier(floorSchema)).\(quoteIdentifier(table)) (\(columns));")
        }
        return Scripts(export: export.joined(separator: "\n") + "\n", load: load.joined(separator: "\n") + "\n", tables: tables.count, rows: rows)
    }
}

/// The bytes of a PostgreSQL warehouse's schema (tables, indexes, TOAST), for the bench.
public enum PostgresWarehouseSize {
    public static func bytes(url: String, schema: String) -> Int64 {
        guard let connection = try? PostgresConnection(PostgresLocation(url, schema: schema)) else { return 0 }
        return PostgresWarehouse.storedBytes(connection)
    }
}
