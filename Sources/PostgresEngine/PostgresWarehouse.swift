import Foundation
import SegmentCore
import SegmentStages
import SegmentWarehouse

/// A warehouse in one PostgreSQL schema: the same bookkeeping tables as SQLite's,
/// in PostgreSQL's types, and the format version in a row of `_warehouse`, since PostgreSQL has
/// no `user_version`. Opening creates the schema and the tables when they are missing, refuses
/// a schema that holds other tables, and one written by a newer segment-loader, untouched.
public final class PostgresWarehouse {
    public let connection: PostgresConnection
    public var location: PostgresLocation { connection.location }
    /// Through a Citus worker: the same warehouse on the coordinator, which made or checked its
    /// tables first and takes what only the coordinator does (`PostgresDestination`).
    package private(set) var coordinator: PostgresWarehouse?
    /// The ids of the claim `sendClaim` sent and `claim` has not read yet.
    package var pendingClaim: [[UInt8]]?

    /// What marks a schema as a segment-loader warehouse, with its format.
    package static let markerTable = "_warehouse"

    /// The lock every loader takes while it creates or checks a warehouse's tables, so that two
    /// starting at once create them once (a transaction-scoped advisory lock: released at
    /// commit or when the connection drops).
    package static let setupLockKey: Int64 = 0x5345_474D_454E_5401  // "SEGMENT\u{1}"

    public init(_ location: PostgresLocation) throws {
        connection = try PostgresConnection(location)
        // Through a Citus worker: the coordinator makes (or checks and places) the tables first.
        if let location = connection.coordinatorLocation { coordinator = try PostgresWarehouse(location) }
        try connection.transaction {
            try connection.query("SELECT pg_advisory_xact_lock($1::bigint)", [String(Self.setupLockKey)])
            let exists = try Self.inspect(connection)
            if let cluster = connection.cluster {
                try Self.check(cluster, at: location, warehouseExists: exists)
                if cluster.isCoordinator { try Self.checkWorkers(connection) }
            }
            let dialect = connection.dialect
            if exists, connection.cluster?.isCoordinator ?? true {
                let version = try Self.format(connection)
                if version < Int(WarehouseFormat.version) { try PostgresUpgrade.run(connection, from: version) }
            }
            if !exists {
                try connection.execute("CREATE SCHEMA IF NOT EXISTS \(quoteIdentifier(location.schema))")
                try connection.execute(each: BookkeepingSchema.statements(dialect))
                try connection.execute("""
                    CREATE TABLE \(Self.markerTable) (key text PRIMARY KEY, value text NOT NULL);
                    INSERT INTO \(Self.markerTable) (key, value) VALUES ('application', 'segment-loader'), ('format', '\(WarehouseFormat.version)');
                    """)
            }
            try connection.execute(each: dialect.createPlaced(BookkeepingSchema.modelPending, ifMissing: true))
            if connection.cluster?.isCoordinator == true { try Self.distributeMissing(connection) }
        }
    }

    /// Refuses to start when a worker cannot take the warehouse's shards: it does not answer,
    /// or lacks the database or its Citus extension (Citus creates neither on the workers).
    static func checkWorkers(_ connection: PostgresConnection) throws {
        let database = try connection.scalar("SELECT current_database()") ?? "?"
        for row in try connection.query("""
            SELECT nodename, nodeport, success, result FROM run_command_on_workers($$SELECT count(*) FROM pg_extension WHERE extname = 'citus'$$)
            """) {
            let node = "worker \(row[0] ?? "?"):\(row[1] ?? "?")"
            let result = row[3] ?? ""
            if row[2] == "t" {
                guard result == "0" else { continue }
                throw PostgresError(kind: .unreachable, message: "\(node) of the Citus cluster has database \(database) without the Citus extension: run CREATE EXTENSION citus in database \(database) on that node, then run again")
            }
            // Citus says only that it could not connect: the node itself says why.
            var why = PostgresError.serverWords(result)
            if let host = row[0], let port = row[1], let location = try? connection.location.at(host: host, port: port) {
                do { _ = try PostgresConnection(location) } catch let error as PostgresError { why = error.message } catch {}
            }
            if why.contains("database \"\(database)\" does not exist") {
                throw PostgresError(kind: .unreachable, message: "\(node) of the Citus cluster has no database \(database): run CREATE DATABASE \(database) on that node and CREATE EXTENSION citus in it, then run again")
            }
            throw PostgresError(kind: .unreachable, message: "\(node) of the Citus cluster cannot be reached (\(why)); start it (or remove it with citus_remove_node) and run again")
        }
    }

    /// Refuses a cluster the loader cannot place tables on: no node for shards, or a first load
    /// through a worker (only the coordinator makes tables).
    static func check(_ cluster: CitusCluster, at location: PostgresLocation, warehouseExists: Bool) throws {
        if cluster.nodes == 0 {
            throw PostgresError(kind: .unreachable, message: "\(location.display) has the Citus extension but no node to hold shards: add the workers on the coordinator with SELECT citus_add_node('HOST', PORT) (docs/scaling.md)")
        }
        if !warehouseExists && !cluster.isCoordinator {
            throw PostgresError(kind: .usage, message: "\(location.display) is a Citus worker and schema \(location.schema) holds no warehouse: the coordinator, which makes the distributed tables, did not make it")
        }
    }

    /// Opens a warehouse that must exist already (status, rejects, models), changing nothing.
    public init(existing location: PostgresLocation, allowNewer: Bool = false) throws {
        connection = try PostgresConnection(location)
        guard try Self.inspect(connection, allowNewer: allowNewer) else {
            throw PostgresError(kind: .noDatabase, message: "there is no warehouse in schema \(location.schema) of \(location.display): give --db the database a load wrote (and --schema its schema)")
        }
    }

    /// Whether the connection's schema holds a warehouse (false: it is empty or missing);
    /// throws, changing nothing, for a schema that holds other tables or one written by a
    /// newer segment-loader: what a run refuses, `validate` and a dry run refuse in its words.
    @discardableResult
    public static func inspect(_ connection: PostgresConnection, allowNewer: Bool = false) throws -> Bool {
        let location = connection.location
        let tables = try connection.query("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", [location.schema])
            .compactMap { $0[0] }
        if tables.contains(Self.markerTable) {
            let version = try format(connection)
            if version > Int(WarehouseFormat.version) && !allowNewer {
                throw PostgresError(kind: .usage, message: "schema \(location.schema) of \(location.display) was written by a newer segment-loader (warehouse format \(version), this build knows \(WarehouseFormat.version)); refusing to change it. Upgrade segment-loader.")
            }
            return true
        }
        if !tables.isEmpty {
            throw PostgresError(kind: .usage, message: "schema \(location.schema) of \(location.display) holds \(tables.count) tables and is not a segment-loader warehouse; refusing to change it. Name another schema (warehouse schema, or --schema).")
        }
        return false
    }

    /// The warehouse's format, from its `_warehouse` row.
    public func formatVersion() throws -> Int { try Self.format(connection) }

    private static func format(_ connection: PostgresConnection) throws -> Int {
        Int(try connection.scalar("SELECT value FROM \(markerTable) WHERE key = 'format'") ?? "") ?? 0
    }

}

extension PostgresWarehouse {
    /// Claims message ids (16-byte digests) in `_message_ids` inside the caller's transaction:
    /// for each, true when this transaction claimed it, false when the warehouse already had it.
    /// Another loader's claim of the same id that is not yet committed makes this wait for it:
    /// committed, the id is theirs (a duplicate here); rolled back, it is ours. The batch is
    /// inserted in digest order, so two loaders claiming overlapping batches take the rows'
    /// locks in one order.
    public func claim(_ ids: [[UInt8]], tables: [String], loadId: Int64) throws -> [Bool] {
        guard !ids.isEmpty else { return [] }
        if pendingClaim == nil { try sendClaim(ids, tables: tables, loadId: loadId) }
        guard pendingClaim == ids else { throw Self.unreadClaim }
        pendingClaim = nil
        let claimed = Set(try connection.receive(Self.claimKey).compactMap { $0[0].text })
        return ids.map { claimed.contains(hexString($0)) }
    }

    /// Sends the claim of the writer's next chunk, to be read by `claim` with the same ids:
    /// the server takes the ids while the writer builds the rows of the chunk before.
    package func sendClaim(_ ids: [[UInt8]], tables: [String], loadId: Int64) throws {
        precondition(ids.count == tables.count)
        // A claim sent ahead is always read by the next `claim`: its ids are claimed in this
        // transaction, and would never be loaded.
        guard pendingClaim == nil else { throw Self.unreadClaim }
        guard !ids.isEmpty else { return }
        let order = ids.indices.sorted { ids[$0].lexicographicallyPrecedes(ids[$1]) }
        let idArray = "{" + order.map { hexString(ids[$0]) }.joined(separator: ",") + "}"
        let tableArray = "{" + order.map { "\"\(tables[$0])\"" }.joined(separator: ",") + "}"
        try connection.send("""
            INSERT INTO _message_ids (id, table_name, load_id)
            SELECT decode(h, 'hex'), t, $3::bigint FROM unnest($1::text[], $2::text[]) AS c(h, t)
            ON CONFLICT (id) DO NOTHING RETURNING encode(id, 'hex')
            """, [idArray, tableArray, String(loadId)], key: Self.claimKey)
        pendingClaim = ids
    }

    private static let claimKey = "claim"
    private static let unreadClaim = WarehouseError(message: "internal error: a chunk's ids were claimed ahead and never read; nothing of this file was kept")
}

extension PostgresWarehouse {
    /// What a loader may do with an archive when several load one warehouse.
    public enum FileClaim: Sendable, Equatable {
        /// This transaction has the archive until it ends: load it.
        case mine
        /// Another loader is loading it now (its transaction holds the archive's lock).
        case busy
        /// A committed `_files` row already has these bytes loaded (by another loader, or earlier).
        case loaded(path: String)
    }

    /// Takes the archive's lock for the caller's transaction without waiting (a transaction-
    /// scoped advisory lock keyed by its content hash, released at commit or rollback, or when a
    /// killed loader's connection drops), then looks for a loaded copy, which another loader may
    /// have committed while this one scanned.
    /// With `wait`, waits for another loader's transaction to end instead of answering `busy`.
    public func claimFile(sha256: String, wait: Bool = false) throws -> FileClaim {
        if wait {
            try connection.query("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", [String(Self.fileLockClass), sha256])
        } else {
            let locked = try connection.scalar("SELECT pg_try_advisory_xact_lock($1::int, hashtext($2))", [String(Self.fileLockClass), sha256])
            guard locked == "t" else { return .busy }
        }
        if let path = try connection.scalar("SELECT path FROM _files WHERE sha256 = $1 AND status IN ('loaded', 'partial') ORDER BY id LIMIT 1", [sha256]) {
            return .loaded(path: path)
        }
        return .mine
    }

    /// The first key of the archives' advisory locks ("SEGF"), apart from other programs' locks.
    package static let fileLockClass: Int32 = 0x5345_4746
}

extension PostgresWarehouse {
    /// The first key of the lock a running load holds for its life ("SEGL", with its id): a
    /// load left `running` whose lock nobody holds was killed.
    package static let loadLockClass: Int32 = 0x5345_474C
    /// The erasure lock's class ("SEGE"): loads and retries hold it shared, a forget alone.
    package static let erasureLockClass: Int32 = 0x5345_4745

    /// Starts a load: marks loads left `running` by a killed loader as `interrupted` (not the
    /// ones other loaders are running now: they hold their load's lock) and records this one,
    /// whose lock this connection holds until it ends.
    public func beginLoad(pipeline: String, startedAt: String) throws -> Int64 {
        // Loads share the erasure lock (for the connection's life); a forget takes it alone, so
        // it waits for the loads running and the loads starting wait for it.
        try connection.run("SELECT pg_advisory_lock_shared(?::int, 0)", [.integer(Int64(Self.erasureLockClass))])
        try connection.run("""
            UPDATE _loads SET status = 'interrupted' WHERE status = 'running' AND NOT EXISTS (
              SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.classid = \(UInt32(bitPattern: Self.loadLockClass)) AND l.objid = (hashint8(_loads.id) & 2147483647)::oid AND l.objsubid = 2)
            """)
        let id = try LoadRecords.insertRunning(connection.recordsSession, pipeline: pipeline, startedAt: startedAt)
        // By a hash of the id: ids a Citus worker assigns are past 2^48.
        try connection.run("SELECT pg_advisory_lock(?::int, hashint8(?::bigint) & 2147483647)", [.integer(Int64(Self.loadLockClass)), .integer(id)])
        return id
    }

    public func lastSuccess(pipeline: String) throws -> String? {
        try LoadRecords.lastSuccess(connection, pipeline: pipeline)
    }

    /// Records how a load ended in `_loads`, on a new connection when the run's was lost (the
    /// server restarted): a load whose end cannot be written at all stays `running` with its
    /// lock gone, and the next run calls it interrupted. Returns why the row could not be
    /// written, if it could not.
    public func recordEnd(id: Int64, summary: RunSummary) -> String? {
        var session: PostgresConnection? = connection.isUsable && connection.recordsSession.isUsable ? connection.recordsSession : nil
        if session == nil { session = try? PostgresConnection(location) }
        guard let session else {
            return "cannot record the end of load \(id) in _loads: \(location.display) cannot be reached; the next run records it as interrupted"
        }
        do {
            try LoadRecords.finish(session, id: id, summary: summary, status: summary.status, error: summary.fatalError)
            return nil
        } catch {
            return "cannot record the end of load \(id) in _loads (\(error))"
        }
    }
}

extension PostgresWarehouse {
    /// The bytes of the schema's tables with their indexes and TOAST.
    package static func storedBytes(_ connection: PostgresConnection) -> Int64 {
        // On Citus: the shards on every node (a reference table counted once per node).
        if connection.cluster != nil, let total = try? connection.value("""
            SELECT coalesce(sum(CASE WHEN p.logicalrelid IS NULL THEN pg_total_relation_size(c.oid) ELSE citus_total_relation_size(c.oid) END), 0)::bigint
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
            WHERE n.nspname = current_schema() AND c.relkind = 'r'
            """)?.integer {
            return total
        }
        return (try? connection.value("""
            SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'
            """))?.integer ?? 0
    }
}
