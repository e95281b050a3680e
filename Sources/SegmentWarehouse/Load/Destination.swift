import Foundation
import SegmentCore
import SegmentStages

/// The write side of a load, as the run sees it: the one boundary between the stages (read,
/// normalize, dedupe within the run, split) and the warehouse. A run begins a load, then for
/// each file opens one transaction in which it claims the file's message ids, has the schema
/// its rows need created, writes rows per table and the profile rows it derived, records the
/// file's rejects, touches and `_files` row, and commits; at the end it creates the query
/// indexes, brings the models up to date and records how the load ended.
/// `SQLiteDestination` implements it; nothing above it names SQLite.
package protocol Destination: AnyObject {
    // MARK: The run

    /// Content hashes of archives already loaded, each with the path it was loaded from.
    func loadedHashes() throws -> [String: String]
    /// The size of each path already loaded, to tell which archives a run will skip.
    func loadedPathsAndSizes() throws -> [String: LoadedFile]
    /// About how many bytes the warehouse holds (a run that brings more builds its query
    /// indexes once at the end instead of keeping them row by row).
    var storedBytes: Int64 { get }
    /// Whether `group` puts several files in one transaction (SQLite: one loader at a time;
    /// PostgreSQL: each file commits alone, for the other loaders to see).
    var groupsFiles: Bool { get }
    /// The run's column types, planned over all its messages before the first row.
    func plan(types: [Int64: ColumnType])
    /// The event tables the run does not create, given its track calls per event table (the
    /// event table limit: see `EventTableLimit`).
    func eventTablesPastLimit(counts: [Int32: Int64]) -> Set<Int32>

    // MARK: A file

    /// Runs `body` as one transaction: all it writes commits together when it returns; when it
    /// throws, nothing of it stays and the run's counts are as before it.
    func file<R>(_ body: () throws -> R) throws -> R
    /// Runs `body`, which runs several `file`s, as one transaction: none is in the warehouse
    /// until `body` returns, and when one file throws, the whole group is rolled back (the
    /// caller loads the files again, one transaction each).
    func group<R>(_ body: () throws -> R) throws -> R
    /// Inside a file's transaction, before its rows: whether this loader loads the archive
    /// (another loader may have loaded it since the run looked, or be loading it now: then
    /// `busy`, or with `wait`, this waits for it and loads it only if that one did not).
    func claimArchive(sha256: String, wait: Bool) throws -> ArchiveClaim
    /// Claims the ids of a chunk's messages: for each, whether it is new (to be loaded) or an
    /// earlier run or file already loaded it (a duplicate).
    func claim(_ headers: [RecordCursor.Header]) throws -> [Bool]
    /// May start claiming the ids of the chunk after the one being written, so that the
    /// database takes them while this one's rows are built; `claim` with the same ids then
    /// reads the answer (the default does nothing).
    func preclaim(_ headers: [RecordCursor.Header]) throws
    /// Creates the tables and columns the admitted records use and the warehouse lacks.
    func prepareSchema(_ needs: SchemaNeeds, headers: [RecordCursor.Header], admitted: [Bool], in raw: UnsafeRawBufferPointer) throws
    /// Writes the rows the Split stage made, in order.
    func write(_ rows: [SplitRow], of headers: [RecordCursor.Header], in raw: UnsafeRawBufferPointer) throws
    /// A profile table's trait columns in order, nil while it does not exist.
    func profileTraits(_ profile: Profile) -> [String]?
    /// Before the `profileCalls` of these ids (sorted): a destination may read them at once.
    func prepareProfileCalls(_ profile: Profile, ids: [String], traits: [String]) throws
    /// After a file's last `writeProfile`: what is buffered is written.
    func finishProfiles() throws
    /// Calls `each` with the `received_at` of every call of one profile id, oldest first (by
    /// timestamp, then received_at, then id), and a way to read its value of `traits[i]`.
    func profileCalls(_ profile: Profile, id: String, traits: [String], _ each: (SQLValue, (Int) -> SQLValue) -> Void) throws
    /// Writes a profile row as derived, replacing the old one.
    func writeProfile(_ profile: Profile, id: String, receivedAt: SQLValue, traits: [SQLValue]) throws
    /// Whether the current file's touched ids are kept (`recordTouches`): not while the models
    /// were never built, since their first build is a full one. Noting them costs the writer a
    /// String per id (4% of a first load's CPU), so the Split stage skips it then.
    var keepsTouches: Bool { get }
    /// Records the ids whose models the file's calls changed, each with its earliest timestamp.
    func recordTouches(users: [String: String], anons: [String: String]) throws
    func reject(file: String, line: Int, item: Int?, kind: RejectKind, reason: String, raw: RejectRaw) throws
    /// Values the current file kept out of their columns so far.
    var discardsInFile: Int64 { get }
    func record(_ file: FileRecord) throws

    // MARK: A retry of rejects

    /// A retried reject that still fails: its kind and reason as of today.
    func keepReject(id: Int64, kind: RejectKind, reason: String) throws
    /// A retried reject whose line now loaded (or was filtered, or a duplicate): removed, and
    /// the `_files` row it came from counted again so that it still balances.
    func resolveReject(id: Int64, file: String, loadId: Int64, produced: Int64, loaded: Int64, duplicates: Int64, filtered: Int64) throws

    // MARK: The end of the run

    /// Drops the query indexes before a bulk load; returns how many.
    func dropQueryIndexes() throws -> Int
    /// Creates the missing query indexes; returns their names.
    func createQueryIndexes() throws -> [String]
    func buildModels(_ options: ModelOptions, loadId: Int64, now: Date) throws -> ModelBuild
    /// What the run wrote: rows per table, new tables and columns, values past column limits.
    var statistics: WriteStatistics { get }
    /// Whether a file whose transaction failed with `error` is written again (PostgreSQL: a
    /// deadlock or serialization failure against another loader).
    func isRetryable(_ error: any Error) -> Bool
    /// How a failure of this kind of destination ends the run (locked out, out of storage), if
    /// it is one.
    static func failure(of error: any Error, busyTimeout: Double) -> RunOutcome?
}

/// Whether a loader loads an archive (see `Destination.claimArchive`).
package enum ArchiveClaim: Equatable {
    case mine
    /// Another loader is loading it now.
    case busy
    /// Another loader committed the same bytes (from this path) after this run looked.
    case loadedElsewhere(String)
}

/// What a run wrote, for its summary.
package struct WriteStatistics {
    /// Rows written per table (for users and accounts: distinct rows inserted or updated).
    package var rowsPerTable: [String: Int64] = [:]
    package var newTables: [String] = []
    package var newColumns = 0
    /// Values that went to `_extra` because their table was at its column limit.
    package var overflowValues: Int64 = 0
    /// Event tables in the warehouse after the run, and the limit.
    package var eventTables = 0
    package var eventTableLimit = EventTableLimit.defaultLimit
    /// Track calls loaded past the event table limit (into `tracks` only), and their event names.
    package var pastLimitCalls: Int64 = 0
    package var pastLimitNames = 0
}

/// A destination made of the parts both databases share: the schema `Catalog` and the
/// `Bookkeeping` rows (`_rejects`, `_discards`, `_files`), each on its connection; what only
/// forwards to them is written once here.
package protocol SharedPartsDestination: Destination {
    var catalog: Catalog { get }
    var bookkeeping: Bookkeeping { get }
}

extension SharedPartsDestination {
    package func plan(types: [Int64: ColumnType]) {
        catalog.plannedTypes = types
    }

    package func eventTablesPastLimit(counts: [Int32: Int64]) -> Set<Int32> {
        catalog.eventTablesPastLimit(counts: counts)
    }

    package func profileTraits(_ profile: Profile) -> [String]? {
        catalog[profile.table]?.traitColumns
    }

    package func reject(file: String, line: Int, item: Int?, kind: RejectKind, reason: String, raw: RejectRaw) throws {
        try bookkeeping.reject(file: file, line: line, item: item, kind: kind, reason: reason, raw: raw)
    }

    package var discardsInFile: Int64 { bookkeeping.discardsInFile }

    package func record(_ file: FileRecord) throws {
        try bookkeeping.record(file)
    }

    package func keepReject(id: Int64, kind: RejectKind, reason: String) throws {
        try bookkeeping.keepReject(id: id, kind: kind, reason: reason)
    }

    package func resolveReject(id: Int64, file: String, loadId: Int64, produced: Int64, loaded: Int64, duplicates: Int64, filtered: Int64) throws {
        try bookkeeping.resolveReject(id: id, file: file, loadId: loadId, produced: produced, loaded: loaded, duplicates: duplicates, filtered: filtered)
    }
}

extension Destination {
    /// SQLite claims each chunk when it is written: nothing to start early.
    package func preclaim(_ headers: [RecordCursor.Header]) throws {}
}
