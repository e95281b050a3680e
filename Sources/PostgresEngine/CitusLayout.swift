import SegmentCore
import SegmentWarehouse

/// Where the warehouse's tables lie on a Citus cluster (docs/scaling.md): the tables people
/// join per person are hash-distributed and co-located on the key a person is found by (the
/// call and event tables on `_person_key`, the anonymous id else the user id; `identities` on
/// its anonymous id; `page_views` and `sessions` on the blended user id; `users` and the
/// touched ids on the id), so that one person's rows of every table lie in one shard group;
/// the seen-id set and the reject tables are distributed on their own keys; the small
/// bookkeeping tables every loader reads are reference tables, a copy on every node.
package enum CitusLayout {
    /// The call and event tables' distribution column.
    package static let personKey = "_person_key"

    package enum Placement: Equatable {
        case reference
        case distributed(by: String)
    }

    static let distributedBy: [String: String] = [
        "_message_ids": "id", "_rejects": "id", "_discards": "id", "_model_pending": "id",
        "users": "id", "accounts": "id", "identities": "anonymous_id",
        "page_views": "blended_user_id", "sessions": "blended_user_id",
        "_model_person_events": "person", "_model_people": "person",
    ]

    package static func placement(of table: String, isCallTable: Bool) -> Placement {
        if isCallTable { return .distributed(by: personKey) }
        return distributedBy[table].map { .distributed(by: $0) } ?? .reference
    }
}

extension CitusLayout.Placement {
    /// The statement that places `table`, unless Citus placed it already (so that it can run
    /// after every CREATE TABLE IF NOT EXISTS).
    package func statements(for table: String) -> [String] {
        let name = sqlLiteral(quoteIdentifier(table))
        let call: String
        switch self {
        case .reference: call = "create_reference_table(\(name))"
        case .distributed(let column): call = "create_distributed_table(\(name), \(sqlLiteral(column)))"
        }
        return ["SELECT \(call) WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass(\(name)))"]
    }
}

/// `text` as a SQL string literal.
func sqlLiteral(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

/// What a connection's database is on a Citus cluster.
package struct CitusCluster: Sendable {
    /// The Citus version of the database's extension.
    package var version: String
    /// Whether the connection is to the coordinator (which alone makes and alters tables).
    package var isCoordinator: Bool
    /// The nodes that hold shards (the workers; the coordinator too when it was given shards).
    package var nodes: Int
    /// The coordinator's host and port, as the cluster knows it.
    package var coordinator: (host: String, port: String)?

    /// SQL text for the sessions' setting every file's and every models build's transaction
    /// takes on Citus (see `PostgresDestination.file` and `PostgresDialect.modelsBuildPreamble`).
    package static let shardAfterShard = "SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"

    /// The row `WarehouseDistribution.read` reads.
    static let distributionQuery = """
        SELECT 'Citus ' || e.extversion, (\(nodesQuery)),
          count(*) FILTER (WHERE p.partmethod = 'h'), count(*) FILTER (WHERE p.partmethod = 'n'), count(*) FILTER (WHERE p.logicalrelid IS NULL)
        FROM pg_extension e CROSS JOIN pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
        WHERE e.extname = 'citus' AND n.nspname = current_schema() AND c.relkind = 'r' GROUP BY e.extversion
        """
    /// The nodes that hold shards: the workers (the coordinator too when it alone is there).
    static let nodesQuery = """
        SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary' AND isactive AND shouldhaveshards
          AND (groupid <> 0 OR NOT EXISTS (SELECT 1 FROM pg_dist_node w WHERE w.groupid <> 0))
        """

    /// The cluster the connection's database is on; nil when it has no Citus extension.
    package static func detect(_ connection: PostgresConnection) throws -> CitusCluster? {
        guard let version = try connection.scalar("SELECT extversion FROM pg_extension WHERE extname = 'citus'") else { return nil }
        let row = try connection.query("""
            SELECT citus_is_coordinator(), (\(nodesQuery)), c.nodename, c.nodeport::text
            FROM (SELECT 1) one LEFT JOIN (SELECT nodename, nodeport FROM pg_dist_node WHERE groupid = 0 LIMIT 1) c ON true
            """)[0]
        return CitusCluster(version: version, isCoordinator: row[0] == "t", nodes: Int(row[1] ?? "") ?? 0,
                            coordinator: row[2].flatMap { host in row[3].map { (host, $0) } })
    }
}

extension PostgresWarehouse {
    /// Places every table of the schema that Citus does not hold yet: all of them in a
    /// PostgreSQL warehouse whose database was just given Citus, rows kept (each call table
    /// first gains its person key), else none. In the caller's transaction.
    package static func distributeMissing(_ connection: PostgresConnection) throws {
        let local = try connection.query("""
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = current_schema() AND c.relkind = 'r'
              AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = c.oid)
            ORDER BY c.relname
            """).compactMap { $0[0] }
        guard !local.isEmpty else { return }
        let callTables = Set(try connection.query("SELECT table_name FROM _schema_tables WHERE call_type <> 'profile'").compactMap { $0[0] })
        let dialect = PostgresDialect(distributed: true)
        for table in local {
            let isCallTable = callTables.contains(table)
            let quoted = quoteIdentifier(table)
            if isCallTable {
                try connection.execute("ALTER TABLE \(quoted) ADD COLUMN IF NOT EXISTS \(CitusLayout.personKey) text")
                try connection.execute("UPDATE \(quoted) SET \(CitusLayout.personKey) = coalesce(anonymous_id, user_id)")
            }
            // A unique index Citus cannot keep as it is: made again with the distribution column.
            if table == "sessions" { try connection.execute("DROP INDEX IF EXISTS _model_idx_sessions_session_id") }
            for statement in dialect.placement(of: table, isCallTable: isCallTable) { try connection.execute(statement) }
            // The rows were copied into the shards; the table's own copy would stay on disk.
            try connection.execute("SELECT truncate_local_data_after_distributing_table(\(sqlLiteral(quoted)))")
        }
        if local.contains("sessions") { try connection.execute(each: Models.indexes(dialect)) }
    }
}
