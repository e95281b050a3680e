import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentStages
@testable import SQLiteEngine

/// The warehouse shared with other programs, and mistakes answered the same way by
/// every command.
final class SharingTests: XCTestCase {
    var dir: URL!
    var db: URL!

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
        db = dir.appendingPathComponent("w.sqlite")
    }

    /// A FIFO in an input folder would block open() until something writes to it: it is
    /// skipped and reported like any file that is not an archive, and the rest loads.
    func testAFIFOInAnInputFolderIsSkippedNotOpened() throws {
        let folder = dir.appendingPathComponent("in")
        try write(gzip(ndjson([track("f1")])), to: folder.appendingPathComponent("a.gz"))
        XCTAssertEqual(mkfifo(folder.appendingPathComponent("pipe").path, 0o644), 0)
        let summary = try load([folder], into: db)
        XCTAssertEqual(summary.totals.loaded, 1)
        XCTAssertEqual(summary.notArchives.map(\.path), [folder.appendingPathComponent("pipe").path])
        XCTAssertEqual(summary.notArchives.first?.reason, "a FIFO (named pipe), not a regular file")
    }
}

extension SharingTests {
    /// Another program's write transaction makes a run wait up to --busy-timeout, then exit 75
    /// naming the cause; once it ends, the same run loads.
    func testAnotherProgramsWriteLockMakesTheRunWaitThenExit75() throws {
        try load([try write(gzip(ndjson([track("b0")])), to: dir.appendingPathComponent("a/0.gz"))], into: db)
        let other = try Database(path: db.path)
        try other.execute("BEGIN IMMEDIATE; CREATE TABLE my_notes AS SELECT id FROM tracks")
        let file = try write(gzip(ndjson([track("b1")])), to: dir.appendingPathComponent("b/1.gz"))
        let blocked = try runSegmentLoader(["load", "--db", db.path, "--busy-timeout", "1", file.path])
        XCTAssertEqual(blocked.status, 75, blocked.stdout + blocked.stderr)
        XCTAssertTrue(blocked.stderr.contains("another program holds the warehouse's write lock"), blocked.stderr)
        XCTAssertFalse(blocked.stderr.contains("SQLite error"), blocked.stderr)
        try other.execute("COMMIT")
        let after = try runSegmentLoader(["load", "--db", db.path, "--busy-timeout", "1", file.path])
        XCTAssertEqual(after.status, 0, after.stdout + after.stderr)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), "2")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM my_notes"), "1", "the other program's table is kept")
    }

    /// A reader's open transaction never makes a run wait; the log it kept from being reset is
    /// emptied by the first run after it closes.
    func testReadersNeverBlockARunAndTheLogShrinksAfterThem() throws {
        try load([try write(gzip(ndjson([track("r0")])), to: dir.appendingPathComponent("a/0.gz"))], into: db)
        let reader = try Database(path: db.path, readOnly: true)
        try reader.execute("BEGIN")
        XCTAssertEqual(try reader.scalar("SELECT count(*) FROM tracks")?.integer, 1)
        let files = try (1...3).map { i in
            try write(gzip(ndjson((0..<200).map { track("r\(i)-\($0)", properties: ["n": $0]) })), to: dir.appendingPathComponent("b/\(i).gz"))
        }
        let started = Date()
        let summary = try load(files, into: db) { $0.busyTimeout = 30 }
        XCTAssertLessThan(Date().timeIntervalSince(started), 30, "the run did not wait for the reader")
        XCTAssertEqual(summary.totals.loaded, 600)
        XCTAssertEqual(try reader.scalar("SELECT count(*) FROM tracks")?.integer, 1, "the reader keeps its snapshot")
        let wal = db.path + "-wal"
        let grown = (try FileManager.default.attributesOfItem(atPath: wal)[.size] as? NSNumber)?.intValue ?? 0
        XCTAssertGreaterThan(grown, 0, "the log could not be reset while the reader was open")
        try reader.execute("COMMIT")
        try load([try write(gzip(ndjson([track("r9")])), to: dir.appendingPathComponent("c/9.gz"))], into: db)
        let after = (try FileManager.default.attributesOfItem(atPath: wal)[.size] as? NSNumber)?.intValue ?? 0
        XCTAssertEqual(after, 0, "the first run after the reader closed emptied the log")
    }

}

extension SharingTests {
    /// RFC 4231 test case 2 (key "Jefe"): the privacy hash is HMAC-SHA256 as published.
    func testThePrivacyHashIsHMACSHA256AsRFC4231Publishes() {
        XCTAssertEqual(Privacy.digest(.string("what do ya want for nothing?"), key: Array("Jefe".utf8)),
                       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}

extension SharingTests {
    /// Counts of one are singular, and a count of nothing kept out is left out.
    func testTheSummaryAndStatusSayOneRowAndLeaveOutNothingDiscarded() throws {
        let summary = try load([try write(gzip(ndjson([track("one")])), to: dir.appendingPathComponent("a/1.gz"))], into: db)
        let text = summary.render()
        XCTAssertFalse(text.contains("kept out of"), text)
        XCTAssertTrue(text.contains("2 new tables"), text)
        let status = try WarehouseStatus.render(database: db.path)
        XCTAssertTrue(status.contains("tracks               1 row,") || status.contains(" 1 row,"), status)
        XCTAssertFalse(status.contains(" 1 rows"), status)
        XCTAssertFalse(status.contains("kept out of"), status)
        XCTAssertTrue(status.contains("1 build in _models"), status)
    }
}

extension SharingTests {
    /// Each option's default is said once (`--jobs` has none that help could print truthfully on every machine).
    func testHelpLoadSaysEachDefaultOnce() throws {
        let help = try runSegmentLoader(["help", "load"])
        XCTAssertEqual(help.status, 0)
        let jobs = help.stdout.components(separatedBy: "--jobs <jobs>")[1].components(separatedBy: "--column-limit")[0]
        XCTAssertEqual(jobs.components(separatedBy: "default").count - 1, 1, jobs)
    }
}

extension SharingTests {
    /// `--db` on a file that is not SQLite: a plain sentence and 64, from every command.
    func testAFileThatIsNotSQLiteIsRefusedWith64Everywhere() throws {
        let notes = try write("shopping list\nmilk\n" + String(repeating: "x", count: 200) + "\n", to: dir.appendingPathComponent("notes.sqlite"))
        let archive = try write(gzip(ndjson([track("n1")])), to: dir.appendingPathComponent("a.gz"))
        for arguments in [["load", "--db", notes.path, archive.path], ["status", "--db", notes.path], ["models", "--db", notes.path]] {
            let result = try runSegmentLoader(arguments)
            XCTAssertEqual(result.status, 64, "\(arguments[0]): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("is not an SQLite database"), "\(arguments[0]): \(result.stderr)")
            XCTAssertFalse(result.stderr.contains("SQLite error"), "\(arguments[0]): \(result.stderr)")
        }
        XCTAssertEqual(try String(contentsOf: notes, encoding: .utf8).prefix(13), "shopping list", "left untouched")
    }

    /// A warehouse in a folder that does not exist is named as such, by run and by validate;
    /// validate also reports a source path that does not exist, as run would refuse it.
    func testValidateReportsWhatRunWouldRefuse() throws {
        let pipeline = try write("""
            version: 1
            name: p
            sources: [{path: no-such-folder}]
            warehouse: {path: missing/dir/w.sqlite}

            """, to: dir.appendingPathComponent("p.yml"))
        let validate = try runSegmentLoader(["validate", pipeline.path])
        XCTAssertEqual(validate.status, 66, validate.stdout + validate.stderr)
        XCTAssertTrue(validate.stderr.contains("valid, for another machine: \(dir.path)/no-such-folder, \(dir.path)/missing/dir/ are not on this one"), validate.stderr)
        let load = try runSegmentLoader(["load", "--db", dir.appendingPathComponent("missing/dir/w.sqlite").path, dir.path])
        XCTAssertEqual(load.status, 64, load.stderr)
        XCTAssertTrue(load.stderr.contains("the folder of the warehouse"), load.stderr)
        XCTAssertFalse(load.stderr.contains("lock"), load.stderr)
    }

    /// A dry run refuses a warehouse from a newer format as a run would, in the same words.
    func testADryRunRefusesANewerWarehouseLikeARun() throws {
        let folder = dir.appendingPathComponent("in")
        try write(gzip(ndjson([track("d1")])), to: folder.appendingPathComponent("a.gz"))
        try load([folder], into: db)
        try Database(path: db.path).execute("PRAGMA user_version = 99")
        let pipeline = try write("version: 1\nname: p\nsources: [{path: in}]\nwarehouse: {path: w.sqlite}\n", to: dir.appendingPathComponent("p.yml"))
        let dry = try runSegmentLoader(["run", "--dry-run", pipeline.path])
        let real = try runSegmentLoader(["run", pipeline.path])
        XCTAssertEqual(real.status, 64, real.stderr)
        XCTAssertEqual(dry.status, 64, dry.stdout + dry.stderr)
        XCTAssertTrue(dry.stderr.contains("was written by a newer segment-loader (warehouse format 99"), dry.stderr)
        XCTAssertTrue(real.stderr.contains("was written by a newer segment-loader (warehouse format 99"), real.stderr)
        let status = try runSegmentLoader(["status", "--db", db.path])
        XCTAssertEqual(status.status, 0, "status still shows it: " + status.stderr)
        XCTAssertTrue(status.stdout.contains("newer than this build's"), status.stdout)
    }
}

extension SharingTests {
    /// The helper that runs the binary reads its two outputs at once: more than a pipe's
    /// 64 KB on stderr while it waited for stdout's end used to deadlock it.
    func testTheBinaryHelperReadsStdoutAndStderrTogether() throws {
        let sources = (0..<2000).map { "  - {path: in, bogus_key_\($0): 1}" }.joined(separator: "\n")
        let pipeline = try write("version: 1\nname: p\nsources:\n\(sources)\nwarehouse: {path: w.sqlite}\n", to: dir.appendingPathComponent("p.yml"))
        let result = try runSegmentLoader(["validate", pipeline.path])
        XCTAssertEqual(result.status, 64)
        XCTAssertGreaterThan(result.stderr.utf8.count, 65_536)
        XCTAssertTrue(result.stderr.contains("bogus_key_1999"))
    }
}
