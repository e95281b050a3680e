import CSQLite
import Foundation
import SegmentCore
import SegmentStages
import SegmentWarehouse

/// How SQLite keeps a warehouse's transactions safe while a run writes.
public enum JournalMode: String, Sendable, CaseIterable {
    /// Write-ahead log, the default: readers (analysts, Datasette) never block a run and a run
    /// never blocks them. New pages are written twice (to the log, then into the file).
    case wal
    /// Rollback journal: a bulk load's new pages are written once, which is faster, but a
    /// reader holding the file open makes each commit wait (and a long read can stall the
    /// run): for backfills into a warehouse nobody reads meanwhile. The next run in `wal`
    /// mode switches the file back.
    case rollback

    package var pragma: String { self == .wal ? "WAL" : "DELETE" }
}

/// The SQLite file that holds the warehouse: opening and checking it, and the bookkeeping
/// tables (docs/warehouse.md, Bookkeeping).
public final class Warehouse {
    /// How large the write-ahead log grows during a run before SQLite copies it into the file.
    public static let checkpointBytes: Int64 = 256 << 20
    /// `PRAGMA application_id`: "SgLd".
    public static let applicationID: Int32 = 0x5367_4C64
    /// Seconds a run waits for another program's write lock before it gives up (exit 75):
    /// long enough for an analyst's statement, short enough for cron.
    public static let defaultBusyTimeout: Double = 300

    /// `PRAGMA user_version` of the layout this build writes.
    public static let formatVersion = WarehouseFormat.version

    public let db: Database
    public let path: String

    /// Refuses, without creating or changing anything, a database that is not a warehouse or
    /// is one from a newer version. A missing file is fine (a run creates it).
    /// The one check every command makes (run, load, validate, a dry run, status, models,
    /// rejects retry), with one wording: the warehouse's folder must exist (and, to write,
    /// be writable), and an existing file must be an SQLite database that is a warehouse of
    /// this format or older (`allowNewer` lets a read-only look at a newer one). `mustExist`:
    /// for the commands that only read or change an existing warehouse (rejects, rejects retry),
    /// a missing one is said as such.
    public static func check(path: String, writing: Bool = true, allowNewer: Bool = false, mustExist: Bool = false) throws {
        if let typo = WarehouseURL.typo(path) { throw typo }
        if mustExist && !FileManager.default.fileExists(atPath: path) { throw missing(path) }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw WarehouseError(message: "the folder of the warehouse \(path) does not exist (\(folder)); create it first")
        }
        if writing && access(folder, W_OK) != 0 {
            throw WarehouseError(message: "cannot write in the folder of the warehouse \(path) (\(folder)): \(String(cString: strerror(errno)))", storage: true)
        }
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return }
        if isDirectory.boolValue {
            let example = URL(fileURLWithPath: path).appendingPathComponent("warehouse.sqlite").path
            throw WarehouseError(message: "\(path) is a directory, not a warehouse file: give --db the path of a file (a new one is created), e.g. \(example)")
        }
        let db = try Database(path: path, readOnly: true)
        _ = try refusal(db, path: path, allowNewer: allowNewer)
    }

    /// The error for a warehouse file that is not there, naming the warehouse beside it whose
    /// name is closest (a typo of `warehouse.sqlite`), if there is one.
    public static func missing(_ path: String) -> WarehouseError {
        var message = "there is no warehouse at \(path)"
        if let near = nearby(path) {
            message += "; the warehouse beside it is \(near): did you mean --db \(near)?"
        } else {
            message += ": give --db the file a run or load wrote"
        }
        return WarehouseError(message: message)
    }

    /// The warehouse in `path`'s folder whose file name is nearest to `path`'s (at most a few
    /// letters away, or the only one there), as the user would type it. Reads the first 100
    /// bytes of candidates only: the SQLite header and its application id.
    package static func nearby(_ path: String) -> String? {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent()
        let name = url.lastPathComponent
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return nil }
        var warehouses: [String] = []
        for entry in entries.sorted() where entry != name && !entry.hasPrefix(".") && warehouses.count < 100 {
            guard let handle = FileHandle(forReadingAtPath: folder.appendingPathComponent(entry).path) else { continue }
            let header = (try? handle.read(upToCount: 100)) ?? Data()
            try? handle.close()
            // "SQLite format 3\0", and the application id (big-endian) at offset 68.
            guard header.count == 100, header.prefix(16).elementsEqual(Array("SQLite format 3\0".utf8)) else { continue }
            let id = header[68..<72].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            if Int32(bitPattern: id) == applicationID { warehouses.append(entry) }
        }
        guard let nearest = warehouses.min(by: { distance(name, $0) < distance(name, $1) }) else { return nil }
        guard distance(name, nearest) <= 3 || warehouses.count == 1 else { return nil }
        let given = path.hasPrefix("/") ? folder.path : (path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "")
        return given.isEmpty ? nearest : (given as NSString).appendingPathComponent(nearest)
    }

    /// Throws for a database to refuse; else returns its application id and format version.
    package static func refusal(_ db: Database, path: String, allowNewer: Bool = false) throws -> (appID: Int32, version: Int32) {
        let appID: Int32, version: Int32, tableCount: Int64
        do {
            appID = Int32(truncatingIfNeeded: try db.scalar("PRAGMA application_id")?.integer ?? 0)
            version = Int32(truncatingIfNeeded: try db.scalar("PRAGMA user_version")?.integer ?? 0)
            tableCount = try db.scalar("SELECT count(*) FROM sqlite_master")?.integer ?? 0
        } catch {
            // The statements throw SQLiteError only.
            if error.code & 0xff == SQLITE_NOTADB {
                throw WarehouseError(message: "\(path) is not an SQLite database; refusing to touch it. Give --db a new file or an existing warehouse.")
            }
            throw error
        }
        if appID != Warehouse.applicationID {
            if tableCount > 0 {
                throw WarehouseError(message: "\(path) is an SQLite database but not a segment-loader warehouse (it has \(tableCount) tables and no segment-loader marker); refusing to change it. Give --db a new file or an existing warehouse.")
            }
        } else if version > Warehouse.formatVersion && !allowNewer {
            throw WarehouseError(message: "\(path) was written by a newer segment-loader (warehouse format \(version), this build knows \(Warehouse.formatVersion)); refusing to change it. Upgrade segment-loader.")
        }
        return (appID, version)
    }

    /// The format the warehouse had when it was opened, when this build upgraded it.
    public private(set) var upgradedFrom: Int32?

    /// Opens (creating if needed) a warehouse. Refuses, without changing it, a database that
    /// holds tables but is not a segment-loader warehouse, and one written by a newer version.
    /// Upgrades an older format in place, in one transaction, saying so through `announce`.
    public init(path: String, journal: JournalMode = .wal, busyTimeout: Double = Warehouse.defaultBusyTimeout,
                waitNotice: (@Sendable (String) -> Void)? = nil, announce: (String) -> Void = { _ in }) throws {
        self.path = path
        db = try Database(path: path)
        db.waitForLocks(upTo: busyTimeout, notice: waitNotice)
        try SeenIds.register(in: db)
        let (appID, version) = try Warehouse.refusal(db, path: path)
        // SQLite answers with the mode in force: leaving WAL needs the file to itself.
        if let mode = try db.scalar("PRAGMA journal_mode=\(journal.pragma)")?.text, mode.uppercased() != journal.pragma {
            announce("\(path) stays in journal mode \(mode): another program has it open, so it cannot switch to \(journal.pragma) now")
        }
        try db.execute("PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY")
        // SQLite copies the log into the file after any commit that leaves it over 1000 pages
        // (4 MB): a run of several files then writes the same index pages into the file once
        // per file. A run checkpoints when the log passes `checkpointBytes` and once at its end
        // (`truncateLog`), so a night's pages go into the file about once.
        let pageSize = max(512, try db.scalar("PRAGMA page_size")?.integer ?? 4096)
        try db.execute("PRAGMA wal_autocheckpoint=\(Warehouse.checkpointBytes / pageSize)")
        if appID != Warehouse.applicationID {
            try db.transaction(.immediate) {
                try db.execute(each: BookkeepingSchema.statements(SQLiteDialect.sqlite))
                try db.execute("PRAGMA application_id=\(Warehouse.applicationID); PRAGMA user_version=\(Warehouse.formatVersion)")
            }
        } else if version < Warehouse.formatVersion {
            try migrate(from: version, announce: announce)
            upgradedFrom = version
        }
    }

    /// Brings a warehouse written by an older build up to `formatVersion`, in one transaction:
    /// interrupted, it leaves the warehouse as it was.
    private func migrate(from version: Int32, announce: (String) -> Void) throws {
        if version < 3 { try WarehouseUpgrade.checkFreeSpace(for: path) }
        announce("upgrading \(path) from warehouse format \(version) to \(Warehouse.formatVersion) in one transaction: "
                 + WarehouseUpgrade.summary(from: version))
        try db.transaction(.immediate) {
            if version < 2 {
                try db.execute("ALTER TABLE _rejects ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0")
                for profile in Profile.allCases {
                    // Format 1 named them `identifies_user_id` and `groups_group_id`.
                    let old = profile.sourceName + "_" + profile.keyColumn
                    let isIndex = try db.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?", [.text(old)])
                    guard isIndex == .integer(1) else { continue }
                    try db.execute("""
                        DROP INDEX \(quoteIdentifier(old));
                        CREATE INDEX \(quoteIdentifier(Indexes.profileIndex(profile))) ON \(quoteIdentifier(profile.sourceName)) (\(profile.keyColumn), timestamp)
                        """)
                }
            }
            if version < 3 { try WarehouseUpgrade.toFormat3(db) }
            if version < 4 { try WarehouseUpgrade.renameReservedEventTables(db) }
            try db.execute("PRAGMA user_version=\(Warehouse.formatVersion)")
        }
    }

    /// Copies the write-ahead log into the database and empties it, unless a reader still
    /// needs it (a reader's open transaction keeps the log from being reset, so it grows while
    /// one is open; the first run after it closes brings it back to nothing). Never waits.
    public func truncateLog() {
        db.waitForLocks(upTo: 0)
        _ = try? db.query("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Content hashes of files already loaded (or partially loaded: the same bytes cannot give more).
    public func loadedHashes() throws -> [String: String] { try LoadRecords.loadedHashes(db) }
    package func loadedPathsAndSizes() throws -> [String: LoadedFile] { try LoadRecords.loadedPathsAndSizes(db) }

    /// Where a run that could not write how it ended into `_loads` leaves it for the next run.
    package var unrecordedPath: String { path + ".unrecorded" }

    /// Starts a load: writes down how an earlier run ended if it could not (`recordEnd`),
    /// marks loads left `running` by a killed process as `interrupted`, and records this one.
    public func beginLoad(pipeline: String, startedAt: String) throws -> Int64 {
        if let text = try? String(contentsOfFile: unrecordedPath, encoding: .utf8) {
            let fields = text.split(separator: "\t", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
            if fields.count == 4, let id = Int64(fields[0]) {
                try db.prepare("UPDATE _loads SET status = ?, finished_at = ?, error = ? WHERE id = ? AND status = 'running'")
                    .run([.text(fields[1]), .text(fields[2]), .text(fields[3]), .integer(id)])
            }
            try? FileManager.default.removeItem(atPath: unrecordedPath)
        }
        try db.execute("UPDATE _loads SET status = 'interrupted' WHERE status = 'running'")
        return try LoadRecords.insertRunning(db, pipeline: pipeline, startedAt: startedAt)
    }

    /// `finished_at` of the newest succeeded run of a pipeline.
    public func lastSuccess(pipeline: String) throws -> String? {
        try LoadRecords.lastSuccess(db, pipeline: pipeline)
    }

    /// Records how a load ended in `_loads`. When its full row cannot be written, the status
    /// `failed` and the error alone are tried; when even that fails, they go to a file beside
    /// the warehouse that the next run writes into `_loads` first, so the record of a failure
    /// is never lost (nor turned into `interrupted`). Returns why the full row could not be
    /// written, if it could not: the run then failed.
    public func recordEnd(id: Int64, summary: RunSummary) -> String? {
        do {
            try finishLoad(id: id, summary: summary, status: summary.status, error: summary.fatalError)
            return nil
        } catch {
            let problem = "cannot record the end of load \(id) in _loads (\(error))"
            let message = [summary.fatalError, problem].compactMap { $0 }.joined(separator: "; ")
            do {
                try LoadRecords.markFailed(db, id: id, finishedAt: summary.finishedAt, message: message)
            } catch {
                let line = "\(id)\tfailed\t\(summary.finishedAt)\t\(message.replacingOccurrences(of: "\n", with: " "))"
                if (try? line.write(toFile: unrecordedPath, atomically: true, encoding: .utf8)) == nil {
                    return problem + "; nor could it be left in \(unrecordedPath): the next run will call it interrupted"
                }
                return problem + "; the next run records it"
            }
            return problem
        }
    }

    /// For fault tests: the warehouse cannot grow past `pages` pages, as on a full disk.
    package func limitPages(to pages: Int) throws {
        try db.execute("PRAGMA max_page_count=\(pages)")
    }

    public func finishLoad(id: Int64, summary: RunSummary, status: String, error: String?) throws {
        try LoadRecords.finish(db, id: id, summary: summary, status: status, error: error)
    }
}
