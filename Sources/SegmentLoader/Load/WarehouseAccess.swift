import Foundation

/// Opening a warehouse outside a load, the same way whichever database holds it: `--db` is an
/// SQLite file's path or a PostgreSQL URL (with `--schema`, or a pipeline's `warehouse.schema`).
public enum WarehouseAccess {
    public static func isPostgres(_ database: String) -> Bool { PostgresLocation.isPostgres(database) }

    /// How output names the warehouse: the path, or the URL without its password and the schema.
    public static func display(_ database: String, schema: String?) -> String {
        guard isPostgres(database) else { return database }
        guard let location = try? PostgresLocation(database, schema: schema) else { return PostgresLocation.redacted(database) }
        return location.warehouseName
    }

    /// An existing warehouse, to read (status, rejects): SQLite opened read-only, no lock.
    static func reading(_ database: String, schema: String?) throws -> any SQLSession {
        if isPostgres(database) {
            return try PostgresWarehouse(existing: PostgresLocation(database, schema: schema), allowNewer: true).connection
        }
        try Warehouse.check(path: database, writing: false, allowNewer: true, mustExist: true)
        return try Database(path: database, readOnly: true)
    }

    /// What a run would refuse, without changing anything: true when a warehouse is there.
    public static func check(_ database: String, schema: String?) throws -> Bool {
        if isPostgres(database) {
            return try PostgresWarehouse.inspect(PostgresConnection(PostgresLocation(database, schema: schema)))
        }
        try Warehouse.check(path: database)
        return FileManager.default.fileExists(atPath: database)
    }

    /// Whether a table exists in the warehouse.
    static func tableExists(_ db: any SQLSession, _ name: String) throws -> Bool {
        let sql = db.dialect == .sqlite ? "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
            : "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
        return try db.value(sql, [.text(name)])?.integer == 1
    }
}
