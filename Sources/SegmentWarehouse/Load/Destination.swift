import Foundation
import SegmentCore
import SegmentStages

/// The write side of a load, as the run sees it: the one boundary between the stages (read,
/// normalize, dedupe within the run, split) and the warehouse. For each file the run opens one
/// transaction (`file`) in which it claims the file's message ids, has the schema its rows need
/// created, writes the rows, derives the profiles, records the ids the models must revisit and
/// the file's bookkeeping, and commits; at the end it creates the query indexes and brings the
/// models up to date. What one engine can do and another cannot is a capability of its own
/// (`GroupedFiles`, `SharedLoading`, `BulkIndexes`, `BatchedProfiles`), never a requirement that
/// does nothing. `SQLiteDestination` and `PostgresDestination` implement it.
package protocol Destination: AnyObject {
    /// The schema as the loader keeps it: the run's planned column types, the event table
    /// limit, each table's columns.
    var catalog: Catalog { get }
    /// `_files`, `_rejects` and `_discards`, and the archives loaded so far.
    var bookkeeping: Bookkeeping { get }
    /// Runs `body` as one transaction: all it writes commits together when it returns; when it
    /// throws, nothing of it stays and the run's counts are as before it.
    func file<R>(_ body: () throws -> R) throws -> R
    /// Claims the ids of a chunk's messages: for each, whether it is new (to be loaded) or an
    /// earlier run or file already loaded it (a duplicate).
    func claim(_ headers: [RecordCursor.Header]) throws -> [Bool]
    /// Creates the tables and columns the admitted records use and the warehouse lacks.
    func prepareSchema(_ needs: SchemaNeeds, headers: [RecordCursor.Header], admitted: [Bool], in raw: UnsafeRawBufferPointer) throws
    /// Writes the rows the Split stage made, in order.
    func write(_ rows: [SplitRow], of headers: [RecordCursor.Header], in raw: UnsafeRawBufferPointer) throws
    /// Where the derivation of `users` and `accounts` reads a profile's calls and writes its row.
    var profiles: any ProfileStore { get }
    /// Whether the current file's touched ids are kept (`recordTouches`): not while the models
    /// were never built, since their first build is a full one. Noting them costs the writer a
    /// String per id (4% of a first load's CPU), so the Split stage skips it then.
    var keepsTouches: Bool { get }
    /// Records the ids whose models the file's calls changed, each with its earliest timestamp.
    func recordTouches(users: [String: String], anons: [String: String]) throws
    /// Creates the missing query indexes; returns their names.
    func createQueryIndexes() throws -> [String]
    func buildModels(_ options: ModelOptions, loadId: Int64, now: Date) throws -> ModelBuild
    /// What the run wrote: rows per table, new tables and columns, values past column limits.
    var statistics: WriteStatistics { get }
}

/// A destination that can put several files in one transaction (SQLite, one loader at a time:
/// a night of small files into a large warehouse commits once). PostgreSQL commits each file
/// alone, for the other loaders to see.
package protocol GroupedFiles: Destination {
    /// Runs `body`, which runs several `file`s, as one transaction: none is in the warehouse
    /// until `body` returns, and when one file throws, the whole group is rolled back (the
    /// caller loads the files again, one transaction each).
    func group<R>(_ body: () throws -> R) throws -> R
}

/// A destination that several loaders fill at once (PostgreSQL).
package protocol SharedLoading: Destination {
    /// Inside a file's transaction, before its rows: whether this loader loads the archive
    /// (another loader may have loaded it since the run looked, or be loading it now: then
    /// `busy`, or with `wait`, this waits for it and loads it only if that one did not).
    func claimArchive(sha256: String, wait: Bool) throws -> ArchiveClaim
    /// Starts claiming the ids of the chunk after the one being written, so that the database
    /// takes them while this one's rows are built; `claim` with the same ids then reads the answer.
    func preclaim(_ headers: [RecordCursor.Header]) throws
    /// Whether a file whose transaction failed with `error` is written again (a deadlock or a
    /// serialization failure against another loader).
    func isRetryable(_ error: any Error) -> Bool
}

/// A destination whose query indexes are dropped before a bulk load into a small warehouse
/// and built once at its end (SQLite: keeping them row by row costs more).
package protocol BulkIndexes: Destination {
    /// Drops the query indexes; returns how many.
    func dropQueryIndexes() throws -> Int
}

/// Where profiles are derived from: each id's calls, oldest first, and its row.
package protocol ProfileStore: AnyObject {
    /// Calls `each` with the `received_at` of every call of one profile id, oldest first (by
    /// timestamp, then received_at, then id), and a way to read its value of `traits[i]`.
    func profileCalls(_ profile: Profile, id: String, traits: [String], _ each: (SQLValue, (Int) -> SQLValue) -> Void) throws
    /// Writes a profile row as derived, replacing the old one.
    func writeProfile(_ profile: Profile, id: String, receivedAt: SQLValue, traits: [SQLValue]) throws
}

/// A profile store that reads the calls of many ids at once and writes their rows together
/// (PostgreSQL: a round trip per file, not per id).
package protocol BatchedProfiles: ProfileStore {
    /// Before the `profileCalls` of these ids (sorted).
    func prepareProfileCalls(_ profile: Profile, ids: [String], traits: [String]) throws
    /// After a file's last `writeProfile`: what is buffered is written.
    func finishProfiles() throws
}

/// Whether a loader loads an archive (see `SharedLoading.claimArchive`).
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

