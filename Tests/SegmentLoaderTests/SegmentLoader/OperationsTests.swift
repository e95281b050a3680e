import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SQLiteEngine

/// Running unattended, through the real binary: pipelines, exit codes, the lock, kill and
/// resume, SIGINT, dry runs, reports and metrics, status and rejects.
final class OperationsTests: XCTestCase {
    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> BinaryResult {
        try runSegmentLoader(arguments, environment: environment)
    }

    /// Four archives in Segment's S3 layout over three days, with what makes a resume hard:
    /// a column whose type is widened by a later file, a messageId repeated across files (the
    /// later file's copy wins: it was received earlier), an older identify in a later file,
    /// and a broken line.
    func makeArchives(in dir: URL) throws -> URL {
        let root = dir.appendingPathComponent("segment-logs")
        let day1 = "1709251200000", day2 = "1709337600000", day3 = "1709424000000"  // 2024-03-01, 02, 03
        try write(gzip(ndjson([
            track("m1", received: "2024-03-01T10:00:00.000Z", properties: ["amount": 1, "plan": "pro"]),
            track("m2", event: "Order Completed", received: "2024-03-01T10:01:00.000Z", properties: ["total": 10]),
            identify("i1", user: "u1", at: "2024-03-01T12:00:00.000Z", traits: ["plan": "pro", "email": "a@x.io"]),
            track("dup", received: "2024-03-01T11:00:00.000Z", properties: ["copy": "first-file"]),
        ])), to: root.appendingPathComponent("src1/\(day1)/a.gz"))
        try write(gzip(ndjson([
            track("m3", received: "2024-03-02T10:00:00.000Z", properties: ["amount": 2.5]),
            identify("i2", user: "u1", at: "2024-03-02T12:00:00.000Z", traits: ["plan": "enterprise"]),
        ]) + "{broken\n"), to: root.appendingPathComponent("src1/\(day2)/b.gz"))
        try write(gzip(ndjson([
            track("m4", event: "Order Completed", received: "2024-03-03T10:00:00.000Z", properties: ["total": "ten", "coupon": "X"]),
            identify("i0", user: "u1", at: "2024-02-01T12:00:00.000Z", traits: ["plan": "free", "company": "Acme"]),
        ])), to: root.appendingPathComponent("src1/\(day3)/c.gz"))
        try write(gzip(ndjson([
            track("dup", received: "2024-03-01T09:00:00.000Z", properties: ["copy": "second-file"]),
            track("m5", event: "Signed Up", received: "2024-03-03T11:00:00.000Z", properties: ["via": "ads", "orderId": "A", "order_id": "B"]),
        ])), to: root.appendingPathComponent("src2/\(day3)/d.gz"))
        return root
    }

    func pipeline(_ dir: URL, name: String = "test", extra: String = "", sources: String? = nil) throws -> URL {
        let text = """
            version: 1
            name: \(name)
            sources:
            \(sources ?? "  - path: segment-logs")
            warehouse:
              path: w.sqlite
            \(extra)
            """
        return try write(text, to: dir.appendingPathComponent("\(name).yml"))
    }

    func testKillingTheLoaderAtAnyPointThenRunningAgainGivesTheSameWarehouse() throws {
        let reference = try temporaryDirectory(self)
        _ = try makeArchives(in: reference)
        let file = try pipeline(reference)
        let clean = try run(["run", "--jobs", "2", file.path])
        XCTAssertEqual(clean.status, 0, clean.stderr)
        let expected = try dumpWarehouse(reference.appendingPathComponent("w.sqlite")).replacingOccurrences(of: reference.path, with: "<dir>")
        XCTAssertTrue(expected.contains("second-file"))

        for point in ["scan", "write:1", "commit:1", "write:2", "commit:3", "write:4"] {
            let dir = try temporaryDirectory(self)
            _ = try makeArchives(in: dir)
            let file = try pipeline(dir)
            let killed = try run(["run", "--jobs", "2", "--test-kill-at", point, file.path])
            XCTAssertTrue(killed.signaled, "\(point): the loader was not killed: \(killed.stdout)")
            XCTAssertEqual(killed.status, SIGKILL, point)
            let again = try run(["run", "--jobs", "1", file.path])
            XCTAssertEqual(again.status, 0, "\(point): \(again.stderr)")
            let db = dir.appendingPathComponent("w.sqlite")
            XCTAssertEqual(try dumpWarehouse(db).replacingOccurrences(of: dir.path, with: "<dir>"), expected,
                           "after a kill at \(point) the warehouse differs from an uninterrupted run")
            XCTAssertEqual(try scalar(db, "PRAGMA integrity_check"), "ok")
            XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _loads WHERE status = 'interrupted'"), "1",
                           "\(point): the killed run is recorded as interrupted")
        }
    }

    func testSIGINTStopsAfterTheCurrentFileAndTheNextRunFinishes() throws {
        let dir = try temporaryDirectory(self)
        _ = try makeArchives(in: dir)
        let file = try pipeline(dir)
        let stopped = try run(["run", "--jobs", "2", "--test-kill-at", "interrupt:2", file.path])
        XCTAssertEqual(stopped.status, 130, stopped.stderr)
        XCTAssertTrue(stopped.stderr.contains("SIGINT received: stopping after the file being committed"), stopped.stderr)
        XCTAssertTrue(stopped.stdout.contains("interrupted: 2 files committed, 2 left; run again to load the rest"), stopped.stdout)
        let db = dir.appendingPathComponent("w.sqlite")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _files"), "2")
        XCTAssertEqual(try scalar(db, "SELECT status FROM _loads ORDER BY id DESC LIMIT 1"), "interrupted")

        let rest = try run(["run", file.path])
        XCTAssertEqual(rest.status, 0, rest.stderr)
        XCTAssertTrue(rest.stdout.contains("2 loaded, 0 partial, 0 failed, 2 skipped (already loaded)"), rest.stdout)

        let reference = try temporaryDirectory(self)
        _ = try makeArchives(in: reference)
        XCTAssertEqual(try run(["run", try pipeline(reference).path]).status, 0)
        XCTAssertEqual(try dumpWarehouse(db).replacingOccurrences(of: dir.path, with: "<dir>"),
                       try dumpWarehouse(reference.appendingPathComponent("w.sqlite")).replacingOccurrences(of: reference.path, with: "<dir>"))

        let termDir = try temporaryDirectory(self)
        _ = try makeArchives(in: termDir)
        let terminated = try run(["run", "--test-kill-at", "terminate:3", try pipeline(termDir).path])
        XCTAssertEqual(terminated.status, 143, terminated.stderr)
        XCTAssertTrue(terminated.stderr.contains("SIGTERM received"), terminated.stderr)
        XCTAssertEqual(try scalar(termDir.appendingPathComponent("w.sqlite"), "SELECT count(*) FROM _files"), "3")
    }

    func testASecondRunExits75NamingTheRunningProcessAndADeadLockDoesNotBlock() throws {
        let dir = try temporaryDirectory(self)
        _ = try makeArchives(in: dir)
        let file = try pipeline(dir)
        let db = dir.appendingPathComponent("w.sqlite")
        do {
            let held = try WarehouseLock(database: db.path, command: "test holder")
            let second = try run(["run", file.path])
            XCTAssertEqual(second.status, 75)
            XCTAssertTrue(second.stderr.contains("another run holds the lock on this warehouse: process \(getpid())"), second.stderr)
            XCTAssertTrue(second.stderr.contains("command=test holder"), second.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: db.path), "the refused run must not touch the warehouse")
            let retry = try run(["rejects", "retry", "--db", db.path])
            XCTAssertEqual(retry.status, 75, retry.stderr)
            withExtendedLifetime(held) {}
        }
        // The lock file of a run that died: its process is gone, so is its flock.
        try "pid=999999 started=2024-01-01T00:00:00.000Z command=segment-loader run dead.yml\n"
            .write(toFile: db.path + ".lock", atomically: true, encoding: .utf8)
        let after = try run(["run", file.path])
        XCTAssertEqual(after.status, 0, after.stderr)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _files"), "4")
    }

    func testDryRunPrintsThePlanAndChangesNothing() throws {
        let dir = try temporaryDirectory(self)
        let root = try makeArchives(in: dir)
        let file = try pipeline(dir, extra: "", sources: "  - path: segment-logs\n    since: 2024-03-02\n    until: 2024-03-03")
        let db = dir.appendingPathComponent("w.sqlite")
        let plan = try run(["run", "--dry-run", file.path])
        XCTAssertEqual(plan.status, 0, plan.stderr)
        XCTAssertTrue(plan.stdout.contains("does not exist yet"), plan.stdout)
        XCTAssertTrue(plan.stdout.contains("load: \(root.path)/src1/1709337600000/b.gz"), plan.stdout)
        XCTAssertTrue(plan.stdout.contains("source src1 day 2024-03-02"), plan.stdout)
        XCTAssertTrue(plan.stdout.contains("would load 3 of 3 archives"), plan.stdout)
        XCTAssertTrue(plan.stdout.contains("days 2024-03-02..2024-03-03 (2)"), plan.stdout)
        XCTAssertTrue(plan.stdout.contains("outside the selection: 1 (before since)"), plan.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: db.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: db.path + ".lock"))

        XCTAssertEqual(try run(["run", file.path]).status, 0)
        XCTAssertEqual(try scalar(db, "SELECT group_concat(day) FROM (SELECT day FROM _files ORDER BY day)"), "2024-03-02,2024-03-03,2024-03-03")
        let before = try Data(contentsOf: db)
        let again = try run(["run", "--dry-run", file.path])
        XCTAssertTrue(again.stdout.contains("skip (already loaded): \(root.path)/src1/1709337600000/b.gz"), again.stdout)
        XCTAssertTrue(again.stdout.contains("would load 0 of 3 archives"), again.stdout)
        XCTAssertEqual(try Data(contentsOf: db), before, "a dry run must not write to the warehouse")
    }

    func testValidateReportsEveryMistakeWithLineAndColumn() throws {
        let dir = try temporaryDirectory(self)
        let bad = try write("""
            version: 1
            name: nightly
            sorces:
              - path: x
            warehouse:
              path: w.sqlite
              column_limit: lots
            filters:
              types:
                include: [track, purchase]
              events:
                exclude: ["Debug [x"]
            run:
              jobs: 0
            """, to: dir.appendingPathComponent("bad.yml"))
        let result = try run(["validate", bad.path])
        XCTAssertEqual(result.status, 64)
        for expected in [
            "bad.yml:1:1: the pipeline needs 'sources'",
            "bad.yml:3:1: unknown key 'sorces' in the pipeline (did you mean sources?)",
            "bad.yml:7:17: warehouse.column_limit must be a whole number, not 'lots'",
            "bad.yml:10:22: 'purchase' in filters.types.include is not a call type",
            "bad.yml:12:22: bad glob 'Debug [x' in filters.events.exclude: '[' at character 7 is never closed by ']'",
            "bad.yml:14:9: run.jobs must be between 1 and 256, not 0",
        ] {
            XCTAssertTrue(result.stderr.contains(expected), "missing: \(expected)\n\(result.stderr)")
        }
        let runBad = try run(["run", bad.path])
        XCTAssertEqual(runBad.status, 64)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("w.sqlite").path))

        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let sample = try run(["validate", repo.appendingPathComponent("pipelines/sample.yml").path])
        XCTAssertEqual(sample.status, 0, sample.stderr)
        XCTAssertTrue(sample.stdout.contains("sample.yml: ok (pipeline sample"), sample.stdout)
        // The nightly and backfill examples are written for a server's folders: validate says
        // they are valid, for another machine, one line each, and exits 66, not 64.
        let shipped = try run(["validate"] + ["nightly", "backfill"].map { repo.appendingPathComponent("pipelines/\($0).yml").path })
        XCTAssertEqual(shipped.status, 66, shipped.stderr)
        let lines = shipped.stderr.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, shipped.stderr)
        XCTAssertTrue(lines[0].hasSuffix("nightly.yml: valid, for another machine: /var/lib/segment-loader/ is not on this one (a run here would refuse it)"), lines[0])
        XCTAssertTrue(lines[1].hasSuffix("backfill.yml: valid, for another machine: /data/exports/segment-logs, /var/lib/segment-loader/ are not on this one (a run here would refuse it)"), lines[1])
        // With a broken file among them, the broken one decides: 64.
        let mixed = try run(["validate", bad.path, repo.appendingPathComponent("pipelines/backfill.yml").path])
        XCTAssertEqual(mixed.status, 64, mixed.stderr)
        XCTAssertTrue(mixed.stderr.contains("backfill.yml: valid, for another machine"), mixed.stderr)
    }

    func testARunWritesItsReportAndPrometheusMetricsAndStrictFailsOnRejects() throws {
        let dir = try temporaryDirectory(self)
        _ = try makeArchives(in: dir)
        let file = try pipeline(dir, extra: "run:\n  report: out/report.json\n  metrics: out/metrics.prom")
        let result = try run(["run", "--quiet", file.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "", "--quiet prints nothing on success")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("out/report.json"))) as! [String: Any]
        XCTAssertEqual(report["pipeline"] as? String, "test")
        XCTAssertEqual(report["status"] as? String, "succeeded")
        let files = report["files"] as! [[String: Any]]
        XCTAssertEqual(files.count, 4)
        XCTAssertEqual(files[1]["rejected"] as? Int, 1)
        XCTAssertEqual((report["rows_per_table"] as! [String: Any])["order_completed"] as? Int, 2)
        let metrics = try String(contentsOf: dir.appendingPathComponent("out/metrics.prom"), encoding: .utf8)
        XCTAssertTrue(metrics.contains("segment_loader_last_run_status{pipeline=\"test\",status=\"succeeded\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("segment_loader_last_run_status{pipeline=\"test\",status=\"failed\"} 0"), metrics)
        XCTAssertTrue(metrics.contains("segment_loader_last_run_messages{pipeline=\"test\",outcome=\"rejected\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("segment_loader_last_run_rows{pipeline=\"test\",table=\"tracks\"} 6"), metrics)
        XCTAssertTrue(metrics.contains("# TYPE segment_loader_last_success_timestamp_seconds gauge"), metrics)
        XCTAssertFalse(metrics.contains("segment_loader_last_success_timestamp_seconds{pipeline=\"test\"} 0\n"), metrics)

        let strictDir = try temporaryDirectory(self)
        _ = try makeArchives(in: strictDir)
        let strict = try run(["run", "--strict", try pipeline(strictDir).path])
        XCTAssertEqual(strict.status, 65, strict.stdout)
        XCTAssertTrue(strict.stdout.contains("strict: 1 rejected line(s) make this run fail (exit 65)"), strict.stdout)
    }

    func testStatusAndRejectsRetryAfterTheRawLineIsFixed() throws {
        let dir = try temporaryDirectory(self)
        _ = try makeArchives(in: dir)
        let file = try pipeline(dir)
        XCTAssertEqual(try run(["run", file.path]).status, 0)
        let db = dir.appendingPathComponent("w.sqlite")

        let status = try run(["status", "--db", db.path])
        XCTAssertEqual(status.status, 0, status.stderr)
        for expected in ["recent runs:", "test", "succeeded", "files: 4 loaded", "order_completed", "2 rows, newest received_at 2024-03-03 10:00:00.000",
                         "rejects waiting: 1", "discards: 1 value", "1 × signed_up.order_id: ",
                         "name collisions (several source keys share one column): 1", "signed_up.order_id ← [\"properties.orderId\",\"properties.order_id\"]"] {
            XCTAssertTrue(status.stdout.contains(expected), "missing \(expected):\n\(status.stdout)")
        }

        let list = try run(["rejects", "--db", db.path])
        XCTAssertTrue(list.stdout.contains("src1/1709337600000/b.gz:3: invalid JSON"), list.stdout)

        let still = try run(["rejects", "retry", "--db", db.path])
        XCTAssertEqual(still.status, 65, still.stdout)
        XCTAssertTrue(still.stdout.contains("0 resolved"), still.stdout)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _rejects"), "1")

        // A person repairs the line in _rejects, then retries.
        let fixed = jsonLine(track("m6", event: "Signed Up", received: "2024-03-02T13:00:00.000Z", properties: ["via": "email", "fixed": true]))
        let database = try Database(path: db.path)
        try database.prepare("UPDATE _rejects SET raw = ?").run([.text(fixed)])
        let retry = try run(["rejects", "retry", "--db", db.path])
        XCTAssertEqual(retry.status, 0, retry.stderr + retry.stdout)
        XCTAssertTrue(retry.stdout.contains("1 resolved (1 messages loaded, 0 duplicates, 0 filtered), 0 still rejected"), retry.stdout)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _rejects"), "0")
        XCTAssertEqual(try rows(db, "SELECT id, via, fixed FROM signed_up ORDER BY id"), [["m5", "ads", "NULL"], ["m6", "email", "1"]])
        XCTAssertEqual(try rows(db, "SELECT lines, loaded, duplicates, rejected, filtered FROM _files WHERE path LIKE '%b.gz'"), [["3", "3", "0", "0", "0"]])
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _files WHERE lines != loaded + duplicates + rejected + filtered"), "0")
        XCTAssertEqual(try scalar(db, "SELECT status FROM _loads WHERE pipeline = 'rejects retry' ORDER BY id DESC LIMIT 1"), "succeeded")
    }

    func testAChangedFileIsLoadedAgainAndDeduplicationKeepsTheResultExact() throws {
        let dir = try temporaryDirectory(self)
        let root = try makeArchives(in: dir)
        let file = try pipeline(dir)
        let first = try run(["run", "--verbose", file.path])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("loaded \(root.path)/src1/1709251200000/a.gz: 4 messages, 3 loaded"), first.stderr)
        XCTAssertFalse(first.stderr.contains("scanning") || first.stderr.contains("\r"), "no progress line when stderr is not a terminal")

        // Segment appends to the day's archive: the file's bytes change.
        let a = root.appendingPathComponent("src1/1709251200000/a.gz")
        try write(gzip(ndjson([
            track("m1", received: "2024-03-01T10:00:00.000Z", properties: ["amount": 1, "plan": "pro"]),
            track("m2", event: "Order Completed", received: "2024-03-01T10:01:00.000Z", properties: ["total": 10]),
            identify("i1", user: "u1", at: "2024-03-01T12:00:00.000Z", traits: ["plan": "pro", "email": "a@x.io"]),
            track("dup", received: "2024-03-01T11:00:00.000Z", properties: ["copy": "first-file"]),
            track("m7", event: "Order Completed", received: "2024-03-01T23:00:00.000Z", properties: ["total": 70]),
        ])), to: a)
        let plan = try run(["run", "--dry-run", file.path])
        XCTAssertTrue(plan.stdout.contains("load (changed since it was loaded; duplicates are skipped): \(a.path)"), plan.stdout)
        let second = try run(["run", file.path])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stdout.contains("5 read = 1 loaded + 4 duplicates + 0 rejected + 0 filtered"), second.stdout)
        let db = dir.appendingPathComponent("w.sqlite")
        XCTAssertEqual(try rows(db, "SELECT id, total FROM order_completed ORDER BY id"), [["m2", "10"], ["m4", "ten"], ["m7", "70"]])
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _files WHERE path = '\(a.path)'"), "2")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), "7")
    }

    func testIndexesForAdHocQueriesAreCreatedAfterTheLoad() throws {
        let dir = try temporaryDirectory(self)
        _ = try makeArchives(in: dir)
        XCTAssertEqual(try run(["run", try pipeline(dir).path]).status, 0)
        let db = dir.appendingPathComponent("w.sqlite")
        let indexes = try rows(db, "SELECT name || ' ' || tbl_name FROM sqlite_master WHERE type = 'index' AND name LIKE '\\_idx\\_%' ESCAPE '\\' ORDER BY name").map { $0[0] }
        for expected in ["_idx_tracks_received_at tracks", "_idx_tracks_user_id tracks", "_idx_tracks_anonymous_id tracks",
                         "_idx_order_completed_received_at order_completed", "_idx_identifies_user_id_timestamp identifies",
                         "_idx_identifies_anonymous_id identifies"] {
            XCTAssertTrue(indexes.contains(expected), "missing \(expected) in \(indexes)")
        }
        let plan = try rows(db, "EXPLAIN QUERY PLAN SELECT * FROM tracks WHERE received_at > '2024-03-02'").map { $0.last! }.joined()
        XCTAssertTrue(plan.contains("_idx_tracks_received_at"), plan)
    }
}
