import Foundation
import SegmentCore
import SegmentWarehouse
import SQLiteEngine
import PostgresEngine

/// Where a warehouse is, read once from `--db` (and `--schema`): the one place that turns the
/// text into an engine. A URL of a known scheme is a PostgreSQL schema; a mistyped URL is
/// refused; anything else is a SQLite file's path.
public enum WarehouseLocation: Sendable, Equatable {
    case sqlite(path: String)
    case postgres(PostgresLocation)

    /// Reads `database` (`schema` is only for PostgreSQL). Throws when a URL is mistyped or
    /// libpq cannot read it.
    public init(_ database: String, schema: String? = nil) throws {
        if WarehouseURL.isServer(database) {
            self = .postgres(try PostgresLocation(database, schema: schema))
        } else {
            if let typo = WarehouseURL.typo(database) { throw typo }
            self = .sqlite(path: database)
        }
    }

    /// Whether `database` names a PostgreSQL warehouse (without reading it further).
    public static func isPostgres(_ database: String) -> Bool { WarehouseURL.isServer(database) }

    /// How output names the warehouse: the path, or the URL without its password and the schema.
    public static func display(_ database: String, schema: String?) -> String {
        guard isPostgres(database) else { return database }
        guard case .postgres(let location)? = try? WarehouseLocation(database, schema: schema) else { return WarehouseURL.redacted(database) }
        return location.warehouseName
    }

    /// An existing warehouse, to read (status, rejects): SQLite opened read-only, no lock.
    func reading() throws -> any SQLSession {
        switch self {
        case .postgres(let location):
            return try PostgresWarehouse(existing: location, allowNewer: true).connection
        case .sqlite(let path):
            try Warehouse.check(path: path, writing: false, allowNewer: true, mustExist: true)
            return try Database(path: path, readOnly: true)
        }
    }

    /// What a run would refuse, without changing anything: true when a warehouse is there.
    func check() throws -> Bool {
        switch self {
        case .postgres(let location):
            return try PostgresWarehouse.inspect(PostgresConnection(location))
        case .sqlite(let path):
            try Warehouse.check(path: path)
            return FileManager.default.fileExists(atPath: path)
        }
    }

    /// The warehouse a load writes, created when missing, with what must live as long as the
    /// run (a SQLite warehouse's lock file).
    func openForLoad(_ options: LoadOptions, faults: TestFaults) throws -> (target: any LoadTarget, lock: WarehouseLock?) {
        switch self {
        case .postgres(let location):
            return (try PostgresWarehouse(location), nil)
        case .sqlite(let path):
            // A database that is not ours is refused before the lock file appears beside it.
            try Warehouse.check(path: path)
            let lock = try WarehouseLock(database: path)
            let warehouse = try Warehouse(path: path, journal: options.journal, busyTimeout: options.busyTimeout,
                                          waitNotice: options.waitNotice, announce: options.announce)
            if let pages = faults.maxPageCount { try warehouse.limitPages(to: pages) }
            return (warehouse, lock)
        }
    }

    /// An existing warehouse a forget writes, with what must live as long as it (SQLite's lock
    /// file; PostgreSQL's erasure lock is taken by `prepareErasure`).
    func openForErasure(_ options: LoadOptions) throws -> (target: any ErasureScrub, lock: WarehouseLock?) {
        switch self {
        case .postgres(let location):
            return (try PostgresWarehouse(existing: location), nil)
        case .sqlite(let path):
            if !FileManager.default.fileExists(atPath: path) { try WarehouseLock.throwIfHeld(database: path) }
            try Warehouse.check(path: path, mustExist: true)
            let lock = try WarehouseLock(database: path)
            return (try Warehouse(path: path, busyTimeout: options.busyTimeout, announce: options.announce), lock)
        }
    }

    /// An existing warehouse a retry of rejects writes, with its session and what must live as
    /// long as the retry (SQLite's lock file; PostgreSQL's session lock, held by the connection).
    func openForRetry(_ options: LoadOptions, postgresLockKey: Int64) throws -> (target: any LoadTarget, session: any SQLSession, lock: WarehouseLock?) {
        switch self {
        case .postgres(let location):
            let warehouse = try PostgresWarehouse(existing: location)
            try warehouse.connection.run("SELECT pg_advisory_lock(\(postgresLockKey))")
            return (warehouse, warehouse.connection, nil)
        case .sqlite(let path):
            // Checked before the lock, so that a mistyped --db leaves no lock file behind (a run
            // that is creating the warehouse right now is still answered as the lock's holder).
            if !FileManager.default.fileExists(atPath: path) { try WarehouseLock.throwIfHeld(database: path) }
            try Warehouse.check(path: path, mustExist: true)
            let lock = try WarehouseLock(database: path)
            let warehouse = try Warehouse(path: path, announce: options.announce)
            return (warehouse, warehouse.db, lock)
        }
    }
}
