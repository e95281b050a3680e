import XCTest
@testable import SegmentLoader
@testable import YAMLFiles
@testable import SegmentCore
@testable import SegmentStages
@testable import SQLiteEngine

/// The load path: one parse per message (pass 2 writes pass 1's spill), the run's
/// temporary space bounded, checked and reported, its failures stopping the run, and the
/// journal mode a backfill may choose.
final class LoadPathTests: XCTestCase {
    var dir: URL!
    var db: URL!

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
        db = dir.appendingPathComponent("w.sqlite")
    }

    func archives(_ count: Int, perFile: Int = 50) throws -> [URL] {
        try (0..<count).map { f in
            try write(gzip(ndjson((0..<perFile).map { i in
                track("f\(f)-m\(i)", event: i % 2 == 0 ? "Even" : "Odd", received: "2024-03-0\(f + 1)T10:00:00.000Z",
                      properties: ["n": i, "file": f])
            })), to: dir.appendingPathComponent("a\(f).gz"))
        }
    }

    func testEachArchiveIsParsedOnceAndTheSpillIsRemoved() throws {
        let files = try archives(3)
        var options = LoadOptions(database: db.path, jobs: 2)
        options.now = { Date(timeIntervalSince1970: 1_700_000_000) }
        let summary = try LoadRun.run(paths: files.map(\.path), options: options)
        XCTAssertEqual(summary.totals.loaded, 150)
        XCTAssertGreaterThan(summary.temporaryBytes, 0, "pass 1 spilled the parsed archives")
        XCTAssertFalse(FileManager.default.fileExists(atPath: db.path + ".run-ids"), "and the spill is gone after the run")
        XCTAssertTrue(summary.report().contains("\"temporary_bytes\":\(summary.temporaryBytes)"))
        // The same result as the same archives through one worker.
        let other = dir.appendingPathComponent("one.sqlite")
        _ = try load(files, into: other, jobs: 1)
        XCTAssertEqual(try dumpWarehouse(db), try dumpWarehouse(other))
    }

    func testDuplicatesWithinARunKeepTheWinnerFromTheSpill() throws {
        // The same id in two files: the earlier received_at wins, wherever it sits in a chunk.
        let a = try write(gzip(ndjson([track("x", received: "2024-03-02T10:00:00.000Z", properties: ["from": "a"]),
                                       track("y", received: "2024-03-02T10:00:00.000Z")])), to: dir.appendingPathComponent("a.gz"))
        let b = try write(gzip(ndjson([track("z"), track("x", received: "2024-03-01T10:00:00.000Z", properties: ["from": "b"])])),
                          to: dir.appendingPathComponent("b.gz"))
        let summary = try load([a, b], into: db)
        XCTAssertEqual(summary.totals.loaded, 3)
        XCTAssertEqual(summary.totals.duplicates, 1)
        XCTAssertEqual(try rows(db, "SELECT id, _from FROM application_enabled WHERE id = 'x'"), [["x", "b"]])
        XCTAssertEqual(try rows(db, "SELECT path LIKE '%a.gz', duplicates FROM _files ORDER BY path"), [["1", "1"], ["0", "0"]])
    }

    func testTheRunsTemporaryStorageFillingUpStopsTheRunAndTheNextRunResumes() throws {
        let files = try archives(4, perFile: 200)
        var faults = TestFaults()
        faults.temporaryByteLimit = 60_000
        let summary = try LoadRun.run(paths: files.map(\.path), options: LoadOptions(database: db.path, jobs: 1), faults: faults)
        XCTAssertTrue(summary.storageFailure, "a full disk for the run's own files is a storage failure (exit 74)")
        XCTAssertEqual(summary.status, "failed")
        XCTAssertTrue(summary.fatalError?.contains("cannot write the run's spill file") == true, summary.fatalError ?? "")
        XCTAssertTrue(summary.fatalError?.contains("is the disk full?") == true)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _files"), "0", "nothing was loaded from a partial scan")
        XCTAssertFalse(FileManager.default.fileExists(atPath: db.path + ".run-ids"))

        let again = try LoadRun.run(paths: files.map(\.path), options: LoadOptions(database: db.path, jobs: 2))
        XCTAssertEqual(again.totals.loaded, 800)
        XCTAssertEqual(again.status, "succeeded")
    }

    func testARunIsRefusedWhenItsTemporarySpaceWouldNotFit() throws {
        let files = try archives(2)
        let options = LoadOptions(database: db.path, jobs: 1)
        var faults = TestFaults()
        faults.temporarySpaceAvailable = 1000
        let summary = try LoadRun.run(paths: files.map(\.path), options: options, faults: faults)
        XCTAssertTrue(summary.storageFailure)
        XCTAssertTrue(summary.fatalError?.contains("the run needs about") == true, summary.fatalError ?? "")
        XCTAssertTrue(summary.fatalError?.contains("Nothing was loaded") == true)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _files"), "0")

        // Archives already loaded under their path and size are not counted: a nightly run over
        // a folder of old archives is not refused for them.
        _ = try LoadRun.run(paths: files.map(\.path), options: LoadOptions(database: db.path, jobs: 1))
        let rerun = try LoadRun.run(paths: files.map(\.path), options: options, faults: faults)
        XCTAssertFalse(rerun.storageFailure, rerun.fatalError ?? "")
        XCTAssertEqual(rerun.skippedAlreadyLoaded.count, 2)
        XCTAssertEqual(TemporaryBudget.estimate(for: [Archive(path: "/a.gz", format: .gzip, size: 100)]), 1000)
    }

    func testTheRollbackJournalIsOptInAndWALComesBack() throws {
        let files = try archives(2)
        var options = LoadOptions(database: db.path, jobs: 1)
        options.journal = .rollback
        _ = try LoadRun.run(paths: [files[0].path], options: options)
        XCTAssertEqual(try scalar(db, "PRAGMA journal_mode"), "delete")
        XCTAssertFalse(FileManager.default.fileExists(atPath: db.path + "-wal"))
        _ = try LoadRun.run(paths: [files[1].path], options: LoadOptions(database: db.path, jobs: 1))
        XCTAssertEqual(try scalar(db, "PRAGMA journal_mode"), "wal", "the default switches the file back")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), "100")

        // Through a pipeline and the command line.
        let pipeline = try write("""
            version: 1
            name: backfill
            sources:
              - path: \(files[0].path)
            warehouse:
              path: \(dir.appendingPathComponent("p.sqlite").path)
              journal: rollback
            """, to: dir.appendingPathComponent("p.yml"))
        XCTAssertEqual(try PipelineFile.load(path: pipeline.path).warehouse.journal, .rollback)
        let bad = try write("""
            version: 1
            name: backfill
            sources:
              - path: \(files[0].path)
            warehouse:
              path: w.sqlite
              journal: memory
            """, to: dir.appendingPathComponent("bad.yml"))
        XCTAssertThrowsError(try PipelineFile.load(path: bad.path)) { error in
            XCTAssertTrue("\(error)".contains("bad.yml:7:12: warehouse.journal must be wal or rollback, not 'memory'"), "\(error)")
        }
        let cli = try runSegmentLoader(["load", "--db", dir.appendingPathComponent("c.sqlite").path, "--journal", "rollback", files[0].path])
        XCTAssertEqual(cli.status, 0, cli.stderr)
        XCTAssertEqual(try scalar(dir.appendingPathComponent("c.sqlite"), "PRAGMA journal_mode"), "delete")
        XCTAssertEqual(try runSegmentLoader(["load", "--db", db.path, "--journal", "off", files[0].path]).status, 64)
    }

    /// The stages on the writer's thread, each on the packed records: Dedupe claims ids (an id
    /// claimed by an earlier chunk is a duplicate; a rolled-back file releases its claims),
    /// Split makes a track call two rows (tracks and its event table) and notes touched users,
    /// Load writes exactly the rows it is handed.
    func testDedupeSplitAndLoadAreStagesOnRecords() throws {
        let names = NameTable()
        let warehouse = try Warehouse(path: db.path)
        let loadId = try warehouse.beginLoad(pipeline: "test", startedAt: "2024-03-01 00:00:00.000")
        func records(_ lines: [String]) -> MessageRecords { packedRecords(lines, names: names) }
        let track = #"{"type":"track","messageId":"m1","event":"Signed Up","userId":"u1","receivedAt":"2024-03-01T10:00:00Z","properties":{"plan":"pro"}}"#
        let identify = #"{"type":"identify","messageId":"m2","userId":"u1","receivedAt":"2024-03-01T10:00:01Z","traits":{"email":"a@example.com"}}"#
        let chunk = records([track, identify])

        // Split: a track is two rows, an identify one; rows keep the chunk's order.
        chunk.bytes.withUnsafeBytes { raw in
            let headers = RecordCursor.headers(of: chunk.count, in: raw)
            let rows = Splitter.rows(of: headers, admitted: [true, true])
            XCTAssertEqual(rows.map(\.record), [0, 0, 1])
            XCTAssertEqual(rows.map { names.name($0.plan.table) }, ["tracks", "signed_up", "identifies"])
            XCTAssertEqual(rows.map(\.plan.withPayload), [false, true, true])
            XCTAssertEqual(Splitter.rows(of: headers, admitted: [false, true]).map(\.record), [1])
        }

        let destination = try SQLiteDestination(warehouse: warehouse, names: names, loadId: loadId, uuidTs: "2024-03-01 00:00:00.000", columnLimit: 1000)
        let stages = WriteStages(destination: destination)
        struct RollBack: Error {}
        XCTAssertThrowsError(try stages.file {
            XCTAssertEqual(try stages.load(chunk), [true, true])
            XCTAssertEqual(try stages.load(records([track])), [false], "an id claimed earlier in the transaction is a duplicate")
            throw RollBack()
        })
        XCTAssertEqual(try warehouse.db.scalar("SELECT count(*) FROM _message_ids")?.integer, 0, "a rolled-back file releases its ids")

        try stages.file {
            XCTAssertEqual(try stages.load(chunk), [true, true], "released ids are new again")
        }
        XCTAssertEqual(try warehouse.db.scalar("SELECT count(*) FROM tracks")?.integer, 1)
        XCTAssertEqual(try warehouse.db.scalar("SELECT count(*) FROM signed_up")?.integer, 1)
        XCTAssertEqual(try warehouse.db.scalar("SELECT plan FROM signed_up")?.text, "pro")
        XCTAssertEqual(try warehouse.db.scalar("SELECT email FROM users WHERE id = 'u1'")?.text, "a@example.com",
                       "the profile the Split stage derived is written with the file")
        XCTAssertEqual(try warehouse.db.scalar("SELECT count(*) FROM _message_ids")?.integer, 2)
    }
}
