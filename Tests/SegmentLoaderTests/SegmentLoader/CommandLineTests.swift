import Foundation
import XCTest
@testable import SegmentLoader

/// Runs the built `segment-loader` binary as a user would.
final class CommandLineTests: XCTestCase {
    func run(_ arguments: [String]) throws -> BinaryResult {
        try runSegmentLoader(arguments)
    }

    func testLoadPrintsABalancedSummaryAndExitsZero() throws {
        let dir = try temporaryDirectory(self)
        let file = try write(gzip(ndjson([track("a"), track("b"), track("a")]) + "{oops\n"), to: dir.appendingPathComponent("in/day.gz"))
        let db = dir.appendingPathComponent("w.sqlite")
        let result = try run(["load", "--db", db.path, "--jobs", "2", dir.appendingPathComponent("in").path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("messages:   4 read = 2 loaded + 1 duplicates + 1 rejected + 0 filtered"), result.stdout)
        XCTAssertTrue(result.stdout.contains("rows:       tracks 2, 2 in 1 event table"), result.stdout)
        XCTAssertTrue(result.stdout.contains("\(file.path):4: invalid JSON"), result.stdout)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM application_enabled"), "2")
    }

    func testAPartialFileExits65() throws {
        let dir = try temporaryDirectory(self)
        let whole = gzip(ndjson((0..<200).map { track("t\($0)", properties: ["pad": String(repeating: "z", count: $0)]) }))
        try write(Array(whole[0..<(whole.count / 2)]), to: dir.appendingPathComponent("truncated.ndjson.gz"))
        let result = try run(["load", "--db", dir.appendingPathComponent("w.sqlite").path, dir.path])
        XCTAssertEqual(result.status, 65)
        XCTAssertTrue(result.stdout.contains("partial \(dir.appendingPathComponent("truncated.ndjson.gz").path): gzip data ends in the middle of a member"), result.stdout)
    }

    func testUsageErrorsExit64() throws {
        let missing = try run(["load", "--db", "/tmp/x.sqlite"])
        XCTAssertEqual(missing.status, 64)
        XCTAssertTrue(missing.stderr.contains("Missing expected argument '<path|s3-url> ...'"), missing.stderr)
        let jobs = try run(["load", "--db", "/tmp/x.sqlite", "--jobs", "0", "."])
        XCTAssertEqual(jobs.status, 64)
        XCTAssertTrue(jobs.stderr.contains("--jobs must be at least 1"))
        // --journal is parsed into its mode: a word that is neither is refused with the choices.
        let journal = try run(["load", "--db", "/tmp/x.sqlite", "--journal", "memory", "."])
        XCTAssertEqual(journal.status, 64)
        XCTAssertTrue(journal.stderr.contains("The value 'memory' is invalid for '--journal <mode>'"), journal.stderr)
        XCTAssertTrue(journal.stderr.contains("'wal'") && journal.stderr.contains("'rollback'"), journal.stderr)
    }

    func testMissingPathNamesIt() throws {
        let dir = try temporaryDirectory(self)
        let result = try run(["load", "--db", dir.appendingPathComponent("w.sqlite").path, "/nonexistent/segment-logs"])
        XCTAssertEqual(result.status, 64, "a usage error, as for run")
        XCTAssertTrue(result.stderr.contains("/nonexistent/segment-logs: no such file or directory"), result.stderr)
    }

    func testHelpDocumentsExitCodes() throws {
        let result = try run(["load", "--help"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.contains("65 when a file was partial or failed"), result.stdout)
    }

    func testBenchPrintsEveryFigureForEachJobCount() throws {
        let dir = try temporaryDirectory(self)
        let result = try run(["bench", "--events", "600", "--files", "2", "--jobs", "1,2", "--baseline", "--dir", dir.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("corpus: 600 events in 2 gzip files") }, result.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("loaded: 600 messages") }, result.stdout)
        let header = lines.first { $0.hasPrefix("jobs") }
        XCTAssertEqual(header?.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " "),
                       "jobs wall s events/s MB/s peak RSS MB inflate s parse+normalize s write s scan pass s load pass s models s")
        let rows = lines.filter { $0.hasPrefix("1 ") || $0.hasPrefix("2 ") }
        XCTAssertEqual(rows.count, 2, result.stdout)
        for row in rows { XCTAssertEqual(row.split(separator: " ").count, 11, row) }
        XCTAssertTrue(lines.contains { $0.hasPrefix("models: full build for ") }, result.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("baseline: gzip -dc of the same files takes") && $0.contains("jobs 2 is") }, result.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("corpus-e600-f2-s1/part-000.ndjson.gz").path))
    }

    func testBenchMeasuresTheSQLiteFloorAndLoadsIntoAPreloadedWarehouse() throws {
        let dir = try temporaryDirectory(self)
        let floor = try run(["bench", "--events", "400", "--files", "2", "--jobs", "1", "--floor", "--dir", dir.path])
        XCTAssertEqual(floor.status, 0, floor.stderr)
        let line = floor.stdout.split(separator: "\n").first { $0.hasPrefix("floor: SQLite alone writes that warehouse") }
        XCTAssertNotNil(line, floor.stdout)
        XCTAssertTrue(line?.contains("journal wal") == true && line?.contains("; jobs 1 is ") == true, floor.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("floor.sqlite").path), "the floor's copy is removed")

        let preload = try run(["bench", "--events", "400", "--files", "2", "--jobs", "1", "--preload", "300", "--journal", "rollback", "--dir", dir.path])
        XCTAssertEqual(preload.status, 0, preload.stderr)
        XCTAssertTrue(preload.stdout.contains("preload: 300 other events loaded into"), preload.stdout)
        let loaded = dir.appendingPathComponent("bench-jobs1.sqlite")
        XCTAssertGreaterThan(Int(try scalar(loaded, "SELECT count(*) FROM _message_ids"))!, 650, "both corpora's ids are in the warehouse")
        XCTAssertEqual(try scalar(loaded, "PRAGMA journal_mode"), "delete")
        let again = try run(["bench", "--events", "400", "--files", "2", "--jobs", "1", "--preload", "300", "--dir", dir.path])
        XCTAssertTrue(again.stdout.contains("preload: 300 other events already in"), again.stdout)
    }

    /// The measurement: many event names, in one run or a run per file, with the limit
    /// and a fresh connection's first query reported.
    func testBenchLoadsManyEventNamesInARunPerFile() throws {
        let dir = try temporaryDirectory(self)
        let result = try run(["bench", "--events", "300", "--files", "3", "--jobs", "1", "--event-names", "300", "--run-per-file", "--no-models", "--dir", dir.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        for expected in ["corpus: 300 events (track calls over 300 event names) in 3 gzip files",
                         "loaded: 300 messages", "in 3 runs", "first query on a fresh connection (count(*) of tracks: "] {
            XCTAssertTrue(result.stdout.contains(expected), "missing \(expected):\n\(result.stdout)")
        }
        let loaded = dir.appendingPathComponent("bench-jobs1.sqlite")
        XCTAssertEqual(try scalar(loaded, "SELECT count(*) FROM _loads"), "3", "one run per file")
        // A few calls are retries of the file before's (about 1%): fewer names than calls.
        let names = Int(try scalar(loaded, "SELECT count(DISTINCT event_text) FROM tracks"))!
        XCTAssertGreaterThan(names, 290)
        XCTAssertTrue(result.stdout.contains("event tables: \(names) (limit 1000); 0 track calls past the limit"), result.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("report-jobs1-run3.json").path))
    }
}
