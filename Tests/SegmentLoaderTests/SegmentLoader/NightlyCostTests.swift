import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentStages
@testable import SegmentWarehouse
@testable import SQLiteEngine

/// A night's cost. A run whose archives are small beside its warehouse loads them in
/// one transaction (each file a savepoint); a kill during it loses the night, and the next run
/// gives the warehouse an uninterrupted run gives.
final class NightlyCostTests: XCTestCase {
    /// A warehouse with history (one archive of 1,000 calls) and a night of three small archives.
    func makeNight(in dir: URL) throws -> (history: URL, night: URL) {
        let history = dir.appendingPathComponent("history/h.ndjson.gz")
        try write(gzip(ndjson((0..<1000).map { i in
            track("h\(i)", event: ["Signed In", "Order Completed", "Cart Viewed"][i % 3], user: "u\(i % 300)",
                  received: "2024-03-01T10:00:00.000Z", properties: ["n": i, "plan": i % 2 == 0 ? "pro" : "free", "note": String(repeating: "x", count: i % 50)])
        })), to: history)
        let night = dir.appendingPathComponent("night")
        for f in 0..<3 {
            try write(gzip(ndjson((0..<20).map { i in
                track("n\(f)-\(i)", event: i % 2 == 0 ? "Signed In" : "Invite Sent", user: "u\(i)", received: "2024-03-02T0\(f):00:00.000Z",
                      properties: ["n": i, "file": f])
            } + [identify("i\(f)", user: "u\(f)", at: "2024-03-02T0\(f):30:00.000Z", traits: ["plan": "team", "night": f])])),
                      to: night.appendingPathComponent("part-\(f).ndjson.gz"))
        }
        return (history, night)
    }

    func testAKillDuringANightLoadedInOneTransactionResumesToTheSameWarehouse() throws {
        let reference = try temporaryDirectory(self)
        let (refHistory, refNight) = try makeNight(in: reference)
        let refDb = reference.appendingPathComponent("w.sqlite")
        XCTAssertEqual(try runSegmentLoader(["load", "--db", refDb.path, refHistory.path]).status, 0)
        let clean = try runSegmentLoader(["load", "--verbose", "--db", refDb.path, refNight.path])
        XCTAssertEqual(clean.status, 0, clean.stderr)
        XCTAssertTrue(clean.stderr.contains("3 files (") && clean.stderr.contains("in one transaction"), clean.stderr)
        let expected = try dumpWarehouse(refDb).replacingOccurrences(of: reference.path, with: "<dir>")

        for point in ["write:1", "commit:2", "write:3", "commit:3"] {
            let dir = try temporaryDirectory(self)
            let (history, night) = try makeNight(in: dir)
            let db = dir.appendingPathComponent("w.sqlite")
            XCTAssertEqual(try runSegmentLoader(["load", "--db", db.path, history.path]).status, 0)
            let killed = try runSegmentLoader(["load", "--db", db.path, "--test-kill-at", point, night.path])
            XCTAssertTrue(killed.signaled, "\(point): not killed: \(killed.stdout)")
            // Nothing of the night is in: its files were one transaction, never committed.
            XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _files"), "1", point)
            XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE id LIKE 'n%'"), "0", point)
            let again = try runSegmentLoader(["load", "--db", db.path, night.path])
            XCTAssertEqual(again.status, 0, "\(point): \(again.stderr)")
            XCTAssertTrue(again.stdout.contains("3 loaded, 0 partial, 0 failed, 0 skipped"), again.stdout)
            XCTAssertEqual(try dumpWarehouse(db).replacingOccurrences(of: dir.path, with: "<dir>"), expected,
                           "after a kill at \(point) the warehouse differs from an uninterrupted night")
            XCTAssertEqual(try scalar(db, "PRAGMA integrity_check"), "ok")
            XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _loads WHERE status = 'interrupted'"), "1", point)
        }
    }

    /// SIGINT during a grouped night commits the files already written (they are whole) and
    /// leaves the rest to the next run.
    func testSIGINTDuringAGroupedNightCommitsTheFilesDone() throws {
        let dir = try temporaryDirectory(self)
        let (history, night) = try makeNight(in: dir)
        let db = dir.appendingPathComponent("w.sqlite")
        XCTAssertEqual(try runSegmentLoader(["load", "--db", db.path, history.path]).status, 0)
        let stopped = try runSegmentLoader(["load", "--db", db.path, "--test-kill-at", "interrupt:2", night.path])
        XCTAssertEqual(stopped.status, 130, stopped.stderr)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _files"), "3", "the history and the night's first two files")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE id LIKE 'n%'"), "40")
        let rest = try runSegmentLoader(["load", "--db", db.path, night.path])
        XCTAssertEqual(rest.status, 0, rest.stderr)
        XCTAssertTrue(rest.stdout.contains("1 loaded, 0 partial, 0 failed, 2 skipped (already loaded)"), rest.stdout)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE id LIKE 'n%'"), "60")
    }

    /// A file that cannot be read during a grouped night (it changed after pass 1) rolls the
    /// group back, and the night is loaded again one transaction per file: the others load,
    /// that one is recorded as failed, as in a run that never grouped.
    func testAFileThatFailsInsideAGroupedNightFailsAloneAfterTheGroupIsRedone() throws {
        let dir = try temporaryDirectory(self)
        let (history, night) = try makeNight(in: dir)
        // part-1 ends with a damaged gzip member, so pass 2 reads it again from the archive.
        let part1 = night.appendingPathComponent("part-1.ndjson.gz")
        let damaged = HostileInputTests.fixtures.appendingPathComponent("gz-second-member-corrupt.ndjson.gz")
        try (try Data(contentsOf: part1) + Data(contentsOf: damaged)).write(to: part1)
        let db = dir.appendingPathComponent("w.sqlite")
        _ = try LoadRun.run(paths: [history.path], options: LoadOptions(database: db.path, jobs: 1))
        var faults = TestFaults()
        faults.betweenPasses = {
            guard let handle = FileHandle(forWritingAtPath: part1.path) else { return }
            handle.seekToEndOfFile()
            handle.write(Data("\n".utf8))
            handle.closeFile()
        }
        let lines = Locked([String]())
        let summary = try LoadRun.run(paths: [night.path], options: LoadOptions(database: db.path, jobs: 1), faults: faults) { line in
            lines.withLock { $0.append(line) }
        }
        let log = lines.withLock { $0 }.joined(separator: "\n")
        XCTAssertTrue(log.contains("in one transaction"), log)
        XCTAssertTrue(log.contains("a file could not be read inside the run's one transaction"), log)
        XCTAssertEqual(summary.files.map { URL(fileURLWithPath: $0.path).lastPathComponent + " " + $0.status.rawValue },
                       ["part-0.ndjson.gz loaded", "part-1.ndjson.gz failed", "part-2.ndjson.gz loaded"])
        XCTAssertEqual(summary.totals.loaded, 42, "two files of 21 calls, counted once")
        XCTAssertEqual(try rows(db, "SELECT status, lines, loaded, error FROM _files WHERE path LIKE '%part-%' ORDER BY path"), [
            ["loaded", "21", "21", "NULL"], ["failed", "0", "0", "the file changed while it was being loaded; run again"], ["loaded", "21", "21", "NULL"]])
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE id LIKE 'n1-%'"), "0")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE id LIKE 'n%'"), "40")
        XCTAssertEqual(try scalar(db, "PRAGMA integrity_check"), "ok")
    }

    /// Files inside a group are not savepoints (SQLite would keep the first image of every page
    /// each one changes in memory: 110 MB of peak RSS for a night into a 2 GB warehouse, growing
    /// with it), and one that throws takes the whole group with it.
    func testFilesInsideAGroupAreNotSavepointsAndAFailureUndoesTheGroup() throws {
        let dir = try temporaryDirectory(self)
        let warehouse = try Warehouse(path: dir.appendingPathComponent("w.sqlite").path)
        let destination = try SQLiteDestination(warehouse: warehouse, names: NameTable(), loadId: 1, uuidTs: "2024-01-01 00:00:00.000", columnLimit: 1000)
        try warehouse.db.execute("CREATE TABLE t (x INTEGER)")
        try destination.group {
            for x in 1...3 { try destination.file { try warehouse.db.execute("INSERT INTO t VALUES (\(x))") } }
        }
        XCTAssertEqual(warehouse.db.savepointsOpened, 0)
        XCTAssertEqual(try warehouse.db.query("SELECT count(*) FROM t").first?[0].integer, 3)
        struct Boom: Error {}
        XCTAssertThrowsError(try destination.group {
            try destination.file { try warehouse.db.execute("INSERT INTO t VALUES (4)") }
            try destination.file { try warehouse.db.execute("INSERT INTO t VALUES (5)"); throw Boom() }
        })
        XCTAssertFalse(warehouse.db.isInTransaction)
        XCTAssertEqual(warehouse.db.savepointsOpened, 0)
        XCTAssertEqual(try warehouse.db.query("SELECT x FROM t ORDER BY x").map { $0[0].integer }, [1, 2, 3])
    }

    /// A nested transaction is a savepoint: the inner one's failure undoes only its own writes.
    func testATransactionInsideATransactionRollsBackAlone() throws {
        let dir = try temporaryDirectory(self)
        let database = try Database(path: dir.appendingPathComponent("t.sqlite").path)
        try database.execute("CREATE TABLE t (x INTEGER)")
        struct Boom: Error {}
        try database.transaction(.immediate) {
            try database.execute("INSERT INTO t VALUES (1)")
            XCTAssertThrowsError(try database.transaction(.immediate) {
                try database.execute("INSERT INTO t VALUES (2)")
                throw Boom()
            })
            try database.transaction(.immediate) { try database.execute("INSERT INTO t VALUES (3)") }
            XCTAssertTrue(database.isInTransaction)
        }
        XCTAssertFalse(database.isInTransaction)
        XCTAssertEqual(try database.query("SELECT x FROM t ORDER BY x").map { $0[0].integer }, [1, 3])
    }

    func models(_ db: URL) throws -> String { try modelsDump(db) }

    /// Returning visitors night after night, each night's models updated incrementally (most
    /// people come back after more than a session timeout, so only their new activity is
    /// modelled): the same identities, page views and sessions as one full build of the month.
    func testAMonthOfNightsUpdatedIncrementallyGivesTheModelsOfOneFullBuild() throws {
        let dir = try temporaryDirectory(self)
        let spec = NightlySpec(people: 300, activeShare: 0.35, nights: 8, files: 2, seed: 5)
        let nights = try NightlyCorpus.generate(spec, into: dir.appendingPathComponent("corpus"), jobs: 2)
        let db = dir.appendingPathComponent("nightly.sqlite")
        var modes: [String] = []
        for night in nights {
            let summary = try load([night], into: db) { $0.models.wideBuildFactor = 0 }
            XCTAssertEqual(summary.outcome, .loaded)
            modes.append(summary.models?.mode ?? "none")
        }
        XCTAssertEqual(modes, ["full"] + Array(repeating: "incremental", count: 7))
        XCTAssertGreaterThan(Int(try scalar(db, "SELECT count(*) FROM (SELECT blended_user_id FROM sessions GROUP BY 1 HAVING count(*) > 3)"))!, 20,
                             "people come back night after night")
        XCTAssertGreaterThan(Int(try scalar(db, "SELECT count(*) FROM identities"))!, 10, "some log in")
        let reference = dir.appendingPathComponent("reference.sqlite")
        try load(nights, into: reference)
        XCTAssertEqual(try models(db), try models(reference))
    }

    /// The person indexes of tracks, pages and screens lead with the id and go on with the
    /// timestamp; a warehouse made with the single-column ones gets them rebuilt by its next run.
    func testPersonIndexesTakeTheTimestampAndOldOnesAreRebuilt() throws {
        let dir = try temporaryDirectory(self)
        let db = dir.appendingPathComponent("w.sqlite")
        try load([try write(gzip(ndjson([track("a", user: "u1")])), to: dir.appendingPathComponent("1.ndjson.gz"))], into: db)
        func columns(_ index: String) throws -> [String] {
            try rows(db, "SELECT name FROM pragma_index_info('\(index)') ORDER BY seqno").map { $0[0] }
        }
        XCTAssertEqual(try columns("_idx_tracks_user_id"), ["user_id", "timestamp"])
        XCTAssertEqual(try columns("_idx_tracks_anonymous_id"), ["anonymous_id", "timestamp"])
        let database = try Database(path: db.path)
        try database.execute("DROP INDEX _idx_tracks_user_id; CREATE INDEX _idx_tracks_user_id ON tracks (user_id)")
        let summary = try load([try write(gzip(ndjson([track("b", user: "u2")])), to: dir.appendingPathComponent("2.ndjson.gz"))], into: db)
        XCTAssertEqual(summary.indexesCreated, ["_idx_tracks_user_id"])
        XCTAssertEqual(try columns("_idx_tracks_user_id"), ["user_id", "timestamp"])
        XCTAssertEqual(try rows(db, "EXPLAIN QUERY PLAN SELECT min(timestamp) FROM tracks WHERE user_id = 'u1'").map { $0.last! }.joined(),
                       "SEARCH tracks USING COVERING INDEX _idx_tracks_user_id (user_id=?)")
    }

    /// page_views no longer has a unique index on the message id (random keys rewritten every
    /// night, for no query of the models): a build drops the one an older warehouse has.
    func testTheModelsDropThePageViewsIdIndex() throws {
        let dir = try temporaryDirectory(self)
        let db = dir.appendingPathComponent("w.sqlite")
        let page: [String: Any] = ["type": "page", "messageId": "p1", "anonymousId": "a1", "receivedAt": "2024-03-01T10:00:00.000Z",
                                   "timestamp": "2024-03-01T10:00:00.000Z", "properties": ["url": "https://x.example/"]]
        try load([try write(gzip(ndjson([page])), to: dir.appendingPathComponent("1.ndjson.gz"))], into: db)
        let database = try Database(path: db.path)
        try database.execute("CREATE UNIQUE INDEX _model_idx_page_views_id ON page_views (id)")
        var second = page
        second["messageId"] = "p2"
        let summary = try load([try write(gzip(ndjson([second])), to: dir.appendingPathComponent("2.ndjson.gz"))], into: db)
        XCTAssertEqual(summary.models?.pageViews, 2)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = '_model_idx_page_views_id'"), "0")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'page_views'"), "3")
    }
}
