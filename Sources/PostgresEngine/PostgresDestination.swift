import Foundation
import Synchronization
import SegmentCore
import SegmentStages
import SegmentWarehouse

/// The PostgreSQL warehouse behind the `Destination` boundary: the same catalog,
/// bookkeeping and profile rows as SQLite's (written through `SQLSession`), rows by COPY, and
/// what several loaders writing one warehouse at once need: message ids claimed in the file's
/// transaction (a copy another loader committed first is a duplicate here), schema changes
/// made under one lock after reading the catalog again (a column two loaders add exists once),
/// and each users/accounts row derived under a lock of its id (from every committed call).
final class PostgresDestination: Destination, SharedLoading, BatchedProfiles {
    let warehouse: PostgresWarehouse
    let connection: PostgresConnection
    private let ownCatalog: Catalog
    private let copies: CopyRows
    private let rows: RowWriter<CopyRows>
    private let ownBookkeeping: Bookkeeping
    private let names: NameTable
    private let loadId: Int64
    private var profilesUpdated: [String: Set<String>] = [:]
    /// The file's touched ids, written as it commits when the models were ever built (see
    /// `Models.everBuilt`): decided under the models' lock, so a build another loader ends
    /// before this file commits is seen.
    private var touches: (users: [String: String], anons: [String: String])?
    private var modelsBuilt = false
    /// Whether the file being written notes its touched ids: the models had been built when
    /// it began. A file that did not, and finds at its commit that another loader built them
    /// meanwhile, is written again (its ids are needed by the next build).
    private var ownKeepsTouches = true
    var keepsTouches: Bool { forwarding?.keepsTouches ?? ownKeepsTouches }
    var catalog: Catalog { forwarding?.catalog ?? ownCatalog }
    var bookkeeping: Bookkeeping { forwarding?.bookkeeping ?? ownBookkeeping }

    /// Through a Citus worker: only the coordinator makes and alters tables. A file that needs
    /// a schema change is rolled back and written again, whole, through the same destination
    /// on the coordinator (`coordinator`), which also makes the query indexes and builds the
    /// models; every other file goes through the worker.
    private var onWorker: Bool { warehouse.coordinator != nil }
    private var twin: PostgresDestination?
    /// The destination the current file is written through instead of this one.
    private var forwarding: PostgresDestination?
    private var needsCoordinator = false
    private let settings: (names: NameTable, columnLimit: Int, eventTableLimit: Int)
    static let schemaThroughCoordinator = PostgresError(kind: .retry, message: "the file changes the schema, which only the Citus coordinator does: it is written again through the coordinator")
    /// Whether this file's transaction holds the schema lock.
    private var schemaLocked = false
    private let uuidTs: String

    /// Another loader built the models for the first time while this file, begun before,
    /// did not note its touched ids: written again (as after a deadlock), noting them.
    static let touchesNeeded = PostgresError(kind: .retry, message: "another loader built the models while this file was written; it is written again with the ids it touched")

    /// On Citus, a file's statements reach each node through one connection, shard after shard
    /// (`CitusCluster.shardAfterShard`). In parallel mode, a table created in a transaction that ran a multi-shard statement
    /// before has its shards created over a connection each; when its name is long enough for
    /// Citus to shorten its shards' names (the hostile corpus's 63-byte event name), the names
    /// PostgreSQL gives the shards' array types collide, and the node's backends wait on each
    /// other until Citus cancels the file as a distributed deadlock (every time, here).

    /// Advisory lock keys ("SEGS", "SEGP"): schema changes; a profile id (with `hashtext`).
    static let schemaLockKey: Int64 = 0x5345_4753
    static let profileLockClass: Int32 = 0x5345_4750

    init(warehouse: PostgresWarehouse, names: NameTable, loadId: Int64, uuidTs: String, columnLimit: Int,
         eventTableLimit: Int = EventTableLimit.defaultLimit) throws {
        self.warehouse = warehouse
        self.names = names
        self.loadId = loadId
        self.uuidTs = uuidTs
        connection = warehouse.connection
        ownCatalog = try Catalog(session: connection, names: names, loadId: loadId, columnLimit: columnLimit, eventTableLimit: eventTableLimit)
        ownBookkeeping = try Bookkeeping(session: connection, names: names, loadId: loadId, uuidTs: uuidTs)
        settings = (names, columnLimit, eventTableLimit)
        copies = CopyRows(connection: warehouse.connection)
        rows = RowWriter(target: copies, catalog: ownCatalog, bookkeeping: ownBookkeeping, uuidTs: uuidTs)
    }

    // MARK: A file

    /// The same load through the coordinator (made on first use).
    private func coordinator() throws -> PostgresDestination {
        if let twin { return twin }
        guard let warehouse = warehouse.coordinator else { throw PostgresError(kind: .unreachable, message: "the Citus coordinator of \(connection.location.display) is not in pg_dist_node") }
        let made = try PostgresDestination(warehouse: warehouse, names: settings.names, loadId: loadId, uuidTs: uuidTs,
                                           columnLimit: settings.columnLimit, eventTableLimit: settings.eventTableLimit)
        made.ownCatalog.plannedTypes = ownCatalog.plannedTypes
        twin = made
        return made
    }

    func file<R>(_ body: () throws -> R) throws -> R {
        if needsCoordinator {
            needsCoordinator = false
            let through = try coordinator()
            forwarding = through
            defer {
                forwarding = nil
                // This loader's own catalog learns what the coordinator made.
                try? reloadCatalog()
            }
            return try through.file(body)
        }
        bookkeeping.beginFile()
        let before = (catalog.counters, catalog.tables.mapValues(\.rowsWritten), rows.overflowValues, profilesUpdated)
        do {
            defer { schemaLocked = false }
            return try connection.transaction {
                if connection.cluster != nil { try connection.execute(CitusCluster.shardAfterShard) }
                if !modelsBuilt { modelsBuilt = try Models.everBuilt(connection) }
                ownKeepsTouches = modelsBuilt
                let result = try body()
                try copies.flush()
                // A models build running now (another loader's) sees this file whole or not at all.
                try connection.run("SELECT pg_advisory_xact_lock_shared(\(PostgresDialect.modelsLockKey))")
                if let touched = touches {
                    touches = nil
                    if !modelsBuilt { modelsBuilt = try Models.everBuilt(connection) }
                    if modelsBuilt {
                        guard keepsTouches else { throw Self.touchesNeeded }
                        try writeTouches(touched.users, touched.anons)
                    }
                }
                return result
            }
        } catch {
            copies.discard()
            touches = nil
            warehouse.pendingClaim = nil
            profileRows.removeAll()
            profileCache.removeAll()
            // What this loader's catalog learned in the file may be gone with it.
            if connection.isUsable { try? catalog.reload() }
            catalog.counters = before.0
            for (id, written) in before.1 { catalog[id]?.rowsWritten = written }
            rows.overflowValues = before.2
            profilesUpdated = before.3
            throw error
        }
    }

    func claimArchive(sha256: String, wait: Bool) throws -> ArchiveClaim {
        if let forwarding { return try forwarding.claimArchive(sha256: sha256, wait: wait) }
        switch try warehouse.claimFile(sha256: sha256, wait: wait) {
        case .mine: return .mine
        case .busy: return .busy
        case .loaded(let earlier): return .loadedElsewhere(earlier)
        }
    }

    func claim(_ headers: [RecordCursor.Header]) throws -> [Bool] {
        if let forwarding { return try forwarding.claim(headers) }
        let (ids, tables) = claimed(headers)
        return try warehouse.claim(ids, tables: tables, loadId: loadId)
    }

    func preclaim(_ headers: [RecordCursor.Header]) throws {
        if let forwarding { return try forwarding.preclaim(headers) }
        let (ids, tables) = claimed(headers)
        try warehouse.sendClaim(ids, tables: tables, loadId: loadId)
        Self.claimsSentAhead.add(1, ordering: .relaxed)
    }

    /// Chunks whose claim was sent ahead, in this process (for the tests).
    static let claimsSentAhead = Atomic<Int>(0)

    private func claimed(_ headers: [RecordCursor.Header]) -> (ids: [[UInt8]], tables: [String]) {
        var ids: [[UInt8]] = []
        var tables: [String] = []
        ids.reserveCapacity(headers.count)
        tables.reserveCapacity(headers.count)
        for header in headers {
            ids.append(SeenIds.withKey(of: header.id) { Array($0) })
            tables.append(names.name(header.table))
        }
        return (ids, tables)
    }

    func prepareSchema(_ needs: SchemaNeeds, headers: [RecordCursor.Header], admitted: [Bool], in raw: UnsafeRawBufferPointer) throws {
        if let forwarding { return try forwarding.prepareSchema(needs, headers: headers, admitted: admitted, in: raw) }
        var change = catalog.plan(needs, headers: headers, admitted: admitted, in: raw)
        if !change.isEmpty && onWorker {
            throw handToCoordinator()
        }
        if !change.isEmpty && !schemaLocked {
            // Planned again under the lock: another loader may have made part of it meanwhile.
            try lockSchema()
            change = catalog.plan(needs, headers: headers, admitted: admitted, in: raw)
        }
        try catalog.apply(change)
        // A row whose values cannot fit in a page keeps the rest in `_extra` (see `RowSize`).
        for row in Splitter.rows(of: headers, admitted: admitted) {
            guard let state = catalog[row.plan.table], state.index(of: NameTable.extra) == nil,
                  RowSize.of(headers[row.record], withPayload: row.plan.withPayload, in: raw) > RowSize.postgresBudget else { continue }
            if onWorker {
                throw handToCoordinator()
            }
            try lockSchema()
            if catalog[row.plan.table]?.index(of: NameTable.extra) == nil { try catalog.addExtra(to: row.plan.table) }
        }
    }

    /// Takes the schema lock for the rest of the file's transaction, and reads the catalog
    /// again: another loader may have changed the schema since this one read it; from now on
    /// only what is still missing is added.
    private func lockSchema() throws {
        guard !schemaLocked else { return }
        // The models' lock first, shared, as the file takes it before it commits: a file that
        // altered a table and then waited for it held that table from a build reading it
        // under the lock (a deadlock the build lost, ending another loader's run with 75).
        try connection.run("SELECT pg_advisory_xact_lock_shared(\(PostgresDialect.modelsLockKey))")
        try connection.run("SELECT pg_advisory_xact_lock(\(Self.schemaLockKey))")
        schemaLocked = true
        try reloadCatalog()
    }

    /// Reads this loader's catalog again from the warehouse, keeping what it counted it wrote.
    private func reloadCatalog() throws {
        let written = ownCatalog.tables.mapValues(\.rowsWritten)
        try ownCatalog.reload()
        for (id, count) in written { ownCatalog[id]?.rowsWritten = count }
    }

    /// Leaves the file to the coordinator (see `onWorker`): it is rolled back and written again there.
    private func handToCoordinator() -> PostgresError {
        needsCoordinator = true
        return Self.schemaThroughCoordinator
    }

    func write(_ rows: [SplitRow], of headers: [RecordCursor.Header], in raw: UnsafeRawBufferPointer) throws {
        if let forwarding { return try forwarding.write(rows, of: headers, in: raw) }
        try self.rows.write(rows, of: headers, in: raw)
    }

    /// The calls of the ids being derived, read at once (per id, in call order), and the rows
    /// derived, written at once by `finishProfiles`: a round trip per file, not three per id.
    private var profileCache: [String: [[SQLValue]]] = [:]
    private var profileRows: [Profile: [[SQLValue]]] = [:]

    /// Locks the ids (in one order for every loader: another loader deriving one of them
    /// waits, and this one then reads its calls too), then reads every call of every id.
    func prepareProfileCalls(_ profile: Profile, ids: [String], traits: [String]) throws {
        if let forwarding { return try forwarding.prepareProfileCalls(profile, ids: ids, traits: traits) }
        try copies.flush()
        let array = Self.textArray(ids)
        try connection.run("SELECT count(pg_advisory_xact_lock(\(Self.profileLockClass), hashtext(? || x))) FROM unnest(?::text[]) AS x",
                           [.text(profile.tableName + "\u{1F}"), .text(array)])
        let key = quoteIdentifier(profile.keyColumn)
        profileCache.removeAll(keepingCapacity: true)
        for row in try connection.rows("""
            SELECT \(key), \((["received_at"] + traits).map(quoteIdentifier).joined(separator: ", ")) FROM \(quoteIdentifier(profile.sourceName))
            WHERE \(key) = ANY(?::text[]) ORDER BY \(key), timestamp\(connection.dialect.nullsFirst), received_at\(connection.dialect.nullsFirst), id\(connection.dialect.byBytes)
            """, [.text(array)]) {
            guard let id = row[0].idText else { continue }
            profileCache[id, default: []].append(Array(row.dropFirst()))
        }
    }

    func profileCalls(_ profile: Profile, id: String, traits: [String], _ each: (SQLValue, (Int) -> SQLValue) -> Void) throws {
        if let forwarding { return try forwarding.profileCalls(profile, id: id, traits: traits, each) }
        for row in profileCache[id] ?? [] {
            each(row[0]) { row[$0 + 1] }
        }
    }

    func writeProfile(_ profile: Profile, id: String, receivedAt: SQLValue, traits: [SQLValue]) throws {
        if let forwarding { return try forwarding.writeProfile(profile, id: id, receivedAt: receivedAt, traits: traits) }
        profileRows[profile, default: []].append([.text(id), receivedAt] + traits)
        profilesUpdated[profile.tableName, default: []].insert(id)
    }

    /// Each profile's rows by COPY into a temporary table like it, then one upsert.
    func finishProfiles() throws {
        if let forwarding { return try forwarding.finishProfiles() }
        profileCache.removeAll()
        defer { profileRows.removeAll() }
        for (profile, rows) in profileRows.sorted(by: { $0.key.tableName < $1.key.tableName }) where !rows.isEmpty {
            guard let table = catalog[profile.table] else { continue }
            let columns = ["id", "received_at", "uuid_ts"] + table.traitColumns
            let staging = "pg_temp." + quoteIdentifier("profile_" + profile.tableName)
            try connection.execute("""
                DROP TABLE IF EXISTS \(staging);
                CREATE TEMP TABLE \(quoteIdentifier("profile_" + profile.tableName)) AS SELECT * FROM \(quoteIdentifier(table.name)) WITH NO DATA
                """)
            let copy = try connection.appender(staging, columns: columns)
            for row in rows { try copy.append([row[0], row[1], .text(uuidTs)] + row[2...]) }
            try copy.finish()
            let list = columns.map(quoteIdentifier).joined(separator: ", ")
            try connection.execute("""
                INSERT INTO \(quoteIdentifier(table.name)) (\(list)) SELECT \(list) FROM \(staging)
                ON CONFLICT (id) DO UPDATE SET \(ProfileWriter.assignments(columns));
                DROP TABLE \(staging)
                """)
        }
    }

    /// A PostgreSQL array literal of texts.
    static func textArray(_ items: [String]) -> String {
        "{" + items.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }.joined(separator: ",") + "}"
    }

    func recordTouches(users: [String: String], anons: [String: String]) throws {
        if let forwarding { return try forwarding.recordTouches(users: users, anons: anons) }
        touches = (users, anons)
    }

    private func writeTouches(_ users: [String: String], _ anons: [String: String]) throws {
        guard !users.isEmpty || !anons.isEmpty else { return }
        let pending = try connection.appender("_model_pending", columns: ["kind", "id", "since"])
        for (kind, ids) in [("user", users), ("anon", anons)] {
            for (id, time) in ids.sorted(by: { $0.key < $1.key }) { try pending.append([.text(kind), .text(id), .text(time)]) }
        }
        try pending.finish()
    }

    // MARK: The end of the run

    /// Never: another loader may be loading into the same tables.
    var profiles: any ProfileStore { self }

    func createQueryIndexes() throws -> [String] {
        if onWorker { return try coordinator().createQueryIndexes() }
        // Inside the indexes' transaction: two loaders ending together create each once.
        return try connection.transaction {
            try connection.run("SELECT pg_advisory_xact_lock(\(Self.schemaLockKey))")
            return try Indexes.create(session: connection)
        }
    }

    func buildModels(_ options: ModelOptions, loadId: Int64, now: Date) throws -> ModelBuild {
        if onWorker { return try coordinator().buildModels(options, loadId: loadId, now: now) }
        return try Models.build(session: connection, options: options, loadId: loadId, now: now)
    }

    /// With the files written through the coordinator, if any.
    var statistics: WriteStatistics {
        var own = ownCatalog.statistics(overflowValues: rows.overflowValues, profilesUpdated: profilesUpdated)
        guard let other = twin?.statistics else { return own }
        own.rowsPerTable.merge(other.rowsPerTable, uniquingKeysWith: +)
        own.newTables += other.newTables
        own.newColumns += other.newColumns
        own.overflowValues += other.overflowValues
        own.eventTables = max(own.eventTables, other.eventTables)
        own.pastLimitCalls += other.pastLimitCalls
        own.pastLimitNames += other.pastLimitNames
        return own
    }

    func isRetryable(_ error: any Error) -> Bool { (error as? PostgresError)?.kind == .retry }

    static func failure(of error: any Error, busyTimeout: Double) -> RunOutcome? {
        guard let postgres = error as? PostgresError else { return nil }
        switch postgres.kind {
        case .connectionLost:
            return .unavailable(postgres.message + ". Every file committed before is kept and the file being written was rolled back; run again to resume.", status: postgres.exitStatus)
        case .statement: return nil
        default: return .unavailable(postgres.message, status: postgres.exitStatus)
        }
    }
}
