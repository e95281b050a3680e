import Foundation
import XCTest
@testable import SegmentLoader
@testable import SQLiteEngine
@testable import PostgresEngine

/// Every command against a PostgreSQL warehouse as against SQLite, through the real
/// binary: a pipeline with `warehouse: {url, schema}` (validate, dry run, run), status,
/// rejects and rejects retry, models; datasette says it serves SQLite only (exit 64).
final class PostgresCommandsTests: XCTestCase {
    func testEveryCommandWorksOnAPostgresWarehouse() throws {
        let server = try TestPostgres.shared()
        let dir = try temporaryDirectory(self)
        let data = dir.appendingPathComponent("sample-data")
        try FileManager.default.copyItem(at: PostgresDifferentialTests.repo.appendingPathComponent("sample-data"), to: data)
        let url = try server.createDatabase("commands")
        let pipeline = dir.appendingPathComponent("pg.yml")
        try """
            version: 1
            name: into-postgres
            sources:
              - path: \(data.path)
            warehouse:
              url: \(url)
              schema: web
            """.write(to: pipeline, atomically: true, encoding: .utf8)
        let shown = "postgresql://postgres@127.0.0.1:\(server.port)/commands (schema web)"

        let validate = try runSegmentLoader(["validate", pipeline.path])
        XCTAssertEqual(validate.status, 0, validate.stderr)
        XCTAssertTrue(validate.stdout.contains("warehouse \(shown)"), validate.stdout)

        let dry = try runSegmentLoader(["run", "--dry-run", pipeline.path])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains("Warehouse \(shown) (does not exist yet; a run creates it)"), dry.stdout)
        XCTAssertTrue(dry.stdout.contains("4 "), dry.stdout)

        let run = try runSegmentLoader(["run", pipeline.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("loaded 4 files into \(shown)"), run.stdout)
        let db = try PostgresConnection(PostgresLocation(url, schema: "web"))
        XCTAssertEqual(try db.scalar("SELECT pipeline FROM _loads"), "into-postgres")
        XCTAssertEqual(try db.scalar("SELECT count(*) FROM tracks"), "57")

        let again = try runSegmentLoader(["run", "--dry-run", pipeline.path])
        XCTAssertTrue(again.stdout.contains("already loaded"), again.stdout)

        let status = try runSegmentLoader(["status", "--db", url, "--schema", "web"])
        XCTAssertEqual(status.status, 0, status.stderr)
        XCTAssertTrue(status.stdout.hasPrefix("warehouse \(shown) (format 4,"), status.stdout)
        XCTAssertTrue(status.stdout.contains("tracks") && status.stdout.contains("57 rows"), status.stdout)
        XCTAssertTrue(status.stdout.contains("rejects waiting: 1"), status.stdout)
        XCTAssertTrue(status.stdout.contains("page_views  20 rows"), status.stdout)

        let rejects = try runSegmentLoader(["rejects", "--db", url, "--schema", "web", "--raw"])
        XCTAssertEqual(rejects.status, 0, rejects.stderr)
        XCTAssertTrue(rejects.stdout.contains(":18: invalid JSON"), rejects.stdout)

        let retry = try runSegmentLoader(["rejects", "retry", "--db", url, "--schema", "web"])
        XCTAssertEqual(retry.status, 65, retry.stdout + retry.stderr)
        XCTAssertTrue(retry.stdout.contains("1 still rejected"), retry.stdout)

        let models = try runSegmentLoader(["models", "--db", url, "--schema", "web", "--rebuild"])
        XCTAssertEqual(models.status, 0, models.stderr)
        XCTAssertTrue(models.stdout.contains("rebuilt in full (14 people)"), models.stdout)

        let datasette = try runSegmentLoader(["datasette", "--db", url])
        XCTAssertEqual(datasette.status, 64)
        XCTAssertTrue(datasette.stderr.contains("datasette serves SQLite files"), datasette.stderr)

        let missing = try runSegmentLoader(["status", "--db", url, "--schema", "nothing_here"])
        XCTAssertEqual(missing.status, 66, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("there is no warehouse in schema nothing_here"), missing.stderr)

        for output in [validate, dry, run, status, rejects, retry, models, missing] {
            XCTAssertFalse((output.stdout + output.stderr).contains(server.password))
        }
    }

    /// `bench --db postgresql://...` loads its corpus into a fresh schema, with two loaders at
    /// once into another, and times psql's floor for the same rows, each part from a quiet
    /// server; its password never shows.
    func testBenchLoadsIntoPostgresWithLoadersAndTheFloor() throws {
        let server = try TestPostgres.shared()
        let dir = try temporaryDirectory(self)
        let url = try server.createDatabase("bench")
        let bench = try runSegmentLoader(["bench", "--db", url, "--events", "3000", "--files", "2", "--jobs", "1",
                                          "--loaders", "2", "--floor", "--dir", dir.path])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        let lines = bench.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("loaded: 3000 messages") }, bench.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("1 ") }, "the row of --jobs 1: \(bench.stdout)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("loaders: 2 at once (jobs 1 each), each on 1/2 of the files") }, bench.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("floor: psql COPY of the same rows") && $0.contains("jobs 1 is") }, bench.stdout)
        XCTAssertFalse(bench.stdout.contains(server.password) || bench.stderr.contains(server.password))
        let db = try PostgresConnection(PostgresLocation(url, schema: "bench_jobs1"))
        XCTAssertEqual(try db.scalar("SELECT count(*) FROM bench_jobs1._message_ids"), try db.scalar("SELECT count(*) FROM bench_loaders2._message_ids"),
                       "two loaders load what one does")
        XCTAssertEqual(try db.scalar("SELECT count(*) FROM bench_jobs1.sessions"), try db.scalar("SELECT count(*) FROM bench_floor.sessions"))
    }

    /// A schema holding other tables, or a pipeline that names both kinds of warehouse, is
    /// refused before anything is loaded.
    func testWhatARunWouldRefuseValidateRefuses() throws {
        let server = try TestPostgres.shared()
        let dir = try temporaryDirectory(self)
        let url = try server.createDatabase("refusals")
        let other = try PostgresConnection(PostgresLocation(url, schema: "public"))
        try other.execute("CREATE TABLE public.orders (id int)")
        let pipeline = dir.appendingPathComponent("p.yml")
        try "version: 1\nname: p\nsources:\n  - path: \(dir.path)\nwarehouse:\n  url: \(url)\n  schema: public\n"
            .write(to: pipeline, atomically: true, encoding: .utf8)
        let refused = try runSegmentLoader(["validate", pipeline.path])
        XCTAssertEqual(refused.status, 64)
        XCTAssertTrue(refused.stderr.contains("schema public of postgresql://postgres@127.0.0.1:\(server.port)/refusals holds 1 tables and is not a segment-loader warehouse"), refused.stderr)
        try "version: 1\nname: p\nsources:\n  - path: \(dir.path)\nwarehouse:\n  url: \(url)\n  path: w.sqlite\n"
            .write(to: pipeline, atomically: true, encoding: .utf8)
        let both = try runSegmentLoader(["validate", pipeline.path])
        XCTAssertEqual(both.status, 64)
        XCTAssertTrue(both.stderr.contains("not both"), both.stderr)
        XCTAssertFalse(both.stderr.contains(server.password), both.stderr)
        // --schema with an SQLite file does nothing there: refused, not ignored.
        let sqlite = try runSegmentLoader(["load", "--db", dir.appendingPathComponent("w.sqlite").path, "--schema", "web", dir.path])
        XCTAssertEqual(sqlite.status, 64)
        XCTAssertTrue(sqlite.stderr.contains("--schema is for a PostgreSQL warehouse"), sqlite.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("w.sqlite").path))
    }
}
