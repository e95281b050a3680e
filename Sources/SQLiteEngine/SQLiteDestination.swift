import Foundation
import SegmentCore
import SegmentStages
import SegmentWarehouse

/// The SQLite warehouse behind the `Destination` boundary: the catalog (schema), the row
/// writer, the bookkeeping rows, the seen-id set and the models' pending ids, all on the run's
/// one connection, each file in one transaction.
final class SQLiteDestination: Destination, GroupedFiles, BulkIndexes, ProfileStore {
    let warehouse: Warehouse
    let db: Database
    let catalog: Catalog
    private let rows: RowWriter<SQLiteRows>
    private let profileWriter: ProfileWriter
    let bookkeeping: Bookkeeping
    private let seen: CrossRunDuplicates
    private let insertTouch: Statement
    /// False until the models are first built: that build is full and reads no touched ids.
    /// (The run holds the warehouse's lock, so no build can happen before its own.)
    private let modelsBuilt: Bool
    /// Per profile: the trait columns its SELECT reads, and the SELECT.
    private var profileSelects: [Profile: (traits: [String], select: Statement)] = [:]
    /// Ids whose users or accounts row this run wrote.
    private var profilesUpdated: [String: Set<String>] = [:]
    /// Inside `group`: files are not savepoints of their own.
    private var grouping = false

    init(warehouse: Warehouse, names: NameTable, loadId: Int64, uuidTs: String, columnLimit: Int,
         eventTableLimit: Int = EventTableLimit.defaultLimit) throws {
        self.warehouse = warehouse
        db = warehouse.db
        catalog = try Catalog(session: db, names: names, loadId: loadId, columnLimit: columnLimit, eventTableLimit: eventTableLimit)
        bookkeeping = try Bookkeeping(session: db, names: names, loadId: loadId, uuidTs: uuidTs)
        rows = RowWriter(target: SQLiteRows(db: db), catalog: catalog, bookkeeping: bookkeeping, uuidTs: uuidTs)
        profileWriter = ProfileWriter(session: db, catalog: catalog, uuidTs: uuidTs)
        seen = try CrossRunDuplicates(db: db, names: names, loadId: loadId)
        try db.execute(SQLiteDialect.sqlite.create(BookkeepingSchema.modelPending, ifMissing: true))
        // Appended, one row per id per file: an append costs a fraction of an insert into a
        // keyed B-tree of random ids (about a third of a bulk load's time, measured); the build
        // takes each id's earliest `since` with GROUP BY.
        insertTouch = try db.prepare("INSERT OR IGNORE INTO _model_pending (kind, id, since) VALUES (?, ?, ?)")
        modelsBuilt = try Models.everBuilt(db)
    }

    // MARK: A file

    func file<R>(_ body: () throws -> R) throws -> R {
        bookkeeping.beginFile()
        // Inside a group a file is not a savepoint: SQLite keeps the first image of every page
        // a savepoint changes (its sub-journal, in memory with temp_store=MEMORY), and a night's
        // file changes pages all over a large warehouse: 110 MB of peak RSS on a 2 GB one,
        // growing with it. A file that fails there fails the group (see `WritePass`).
        if grouping { return try body() }
        return try undoingState { try db.transaction(.immediate, body) }
    }

    func group<R>(_ body: () throws -> R) throws -> R {
        grouping = true
        defer { grouping = false }
        return try undoingState { try db.transaction(.immediate, body) }
    }

    /// Runs `body`, a transaction; when it throws, what the catalog and the counts learned in
    /// it is undone with it.
    private func undoingState<R>(_ body: () throws -> R) throws -> R {
        let before = (catalog.counters, catalog.tables.mapValues(\.rowsWritten), rows.overflowValues, profilesUpdated)
        do {
            return try body()
        } catch {
            try catalog.reload()
            catalog.counters = before.0
            for (id, written) in before.1 { catalog[id]?.rowsWritten = written }
            rows.overflowValues = before.2
            profilesUpdated = before.3
            throw error
        }
    }

    func claim(_ headers: [RecordCursor.Header]) throws -> [Bool] {
        try seen.admit(headers)
    }

    func prepareSchema(_ needs: SchemaNeeds, headers: [RecordCursor.Header], admitted: [Bool], in raw: UnsafeRawBufferPointer) throws {
        try catalog.apply(needs, headers: headers, admitted: admitted, in: raw)
    }

    func write(_ rows: [SplitRow], of headers: [RecordCursor.Header], in raw: UnsafeRawBufferPointer) throws {
        try self.rows.write(rows, of: headers, in: raw)
    }

    /// One indexed SELECT per id, prepared once: as cheap as any batch in-process.
    var profiles: any ProfileStore { self }

    func profileCalls(_ profile: Profile, id: String, traits: [String], _ each: (SQLValue, (Int) -> SQLValue) -> Void) throws {
        let select: Statement
        if let cached = profileSelects[profile], cached.traits == traits {
            select = cached.select
        } else {
            select = try db.prepare("""
                SELECT \((["received_at"] + traits).map(quoteIdentifier).joined(separator: ", ")) FROM \(quoteIdentifier(profile.sourceName))
                WHERE \(quoteIdentifier(profile.keyColumn)) = ? ORDER BY timestamp, received_at, id
                """)
            profileSelects[profile] = (traits, select)
        }
        defer { select.reset() }
        select.bindText(id, at: 1)
        while try select.step() {
            each(select.value(at: 0)) { select.value(at: Int32($0 + 1)) }
        }
    }

    func writeProfile(_ profile: Profile, id: String, receivedAt: SQLValue, traits: [SQLValue]) throws {
        try profileWriter.write(profile, id: id, receivedAt: receivedAt, traits: traits)
        profilesUpdated[profile.tableName, default: []].insert(id)
    }

    /// One loader at a time (the warehouse lock), and the models are built after its files.
    var keepsTouches: Bool { modelsBuilt }

    func recordTouches(users: [String: String], anons: [String: String]) throws {
        guard modelsBuilt else { return }
        for (id, time) in users.sorted(by: { $0.key < $1.key }) { try insertTouch.run([.text("user"), .text(id), .text(time)]) }
        for (id, time) in anons.sorted(by: { $0.key < $1.key }) { try insertTouch.run([.text("anon"), .text(id), .text(time)]) }
    }

    // MARK: The end of the run

    func dropQueryIndexes() throws -> Int { try Indexes.dropForBulkLoad(in: db) }
    func createQueryIndexes() throws -> [String] { try Indexes.create(in: db) }

    func buildModels(_ options: ModelOptions, loadId: Int64, now: Date) throws -> ModelBuild {
        try Models.build(in: db, options: options, loadId: loadId, now: now)
    }

    var statistics: WriteStatistics {
        catalog.statistics(overflowValues: rows.overflowValues, profilesUpdated: profilesUpdated)
    }

    static func failure(of error: any Error, busyTimeout: Double) -> RunOutcome? {
        let cause = (error as? RollbackFailure)?.cause ?? error
        guard let sqlite = cause as? SQLiteError else { return nil }
        if sqlite.isBusy { return .lockedOut(WarehouseLockedOut(seconds: busyTimeout).description) }
        if sqlite.isDiskProblem {
            return .storageFailure("cannot write to the warehouse (\(sqlite.message)): the disk is full or the file or its folder is not writable. "
                + "Every file committed before is kept and the file being written was rolled back; free space or fix permissions and run again to resume.")
        }
        return nil
    }
}
