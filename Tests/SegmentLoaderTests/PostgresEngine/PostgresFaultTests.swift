import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentWarehouse
@testable import PostgresEngine

/// The real binary against the test server when things go wrong: killed at each
/// kill point, the server restarted under it, a wrong password, an unknown database, no
/// server. Each time a sentence and the right exit code, no client error stack, never the
/// password, and the next run completes the warehouse with nothing doubled or lost.
final class PostgresFaultTests: XCTestCase {
    let secret = "sl-test-secret"

    /// The warehouse of `paths` loaded once, uninterrupted, for comparison.
    func reference(_ paths: [String], database: String) throws -> [String: PostgresDifferentialTests.Table] {
        try uninterruptedWarehouse(paths, database: database)
    }

    func assertSame(_ got: [String: PostgresDifferentialTests.Table], _ expected: [String: PostgresDifferentialTests.Table],
                    _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(got.keys), Set(expected.keys), what, file: file, line: line)
        for (name, table) in expected where got[name] != table {
            XCTFail("\(what): \(name) differs (\(got[name]?.rows.count ?? -1) rows, expected \(table.rows.count))", file: file, line: line)
        }
    }

    func testKilledAtEachKillPointTheNextRunGivesTheUninterruptedWarehouse() throws {
        let server = try TestPostgres.shared()
        let dir = try temporaryDirectory(self)
        let paths = try PostgresConcurrencyTests.corpus(in: dir, count: 4)
        let expected = try reference(paths, database: "kill_ref")
        for (n, point) in ["scan", "write:1", "commit:1", "write:3", "commit:3"].enumerated() {
            let url = try server.createDatabase("kill_\(n)")
            let killed = try runSegmentLoader(["load", "--db", url, "--test-kill-at", point] + paths)
            XCTAssertTrue(killed.signaled, "\(point): not killed: \(killed.stdout)\(killed.stderr)")
            let again = try runSegmentLoader(["load", "--db", url] + paths)
            XCTAssertEqual(again.status, 0, "\(point): \(again.stderr)")
            let db = try PostgresConnection(PostgresLocation(url))
            assertSame(try PostgresConcurrencyTests.comparable(db), expected, "after a kill at \(point)")
            XCTAssertEqual(try db.scalar("SELECT count(*) FROM _loads WHERE status = 'interrupted'"), "1", point)
            XCTAssertEqual(try db.scalar("SELECT count(*) FROM _files"), "4", point)
        }
    }

    /// `pg_ctl restart -m fast` while a run writes: the run stops with a sentence and exit 75,
    /// the files it committed stay, the next run loads the rest.
    func testTheServerRestartedDuringARunStopsItWith75AndTheNextRunCompletes() throws {
        let server = try TestPostgres.shared()
        let dir = try temporaryDirectory(self)
        let paths = try PostgresConcurrencyTests.corpus(in: dir, count: 24)
        let expected = try reference(paths, database: "restart_ref")
        let url = try server.createDatabase("restart")
        let (status, printed) = try loadWithFault(url, paths) { try server.pgCtl(["restart", "-m", "fast", "-w", "-t", "60"]) }
        XCTAssertEqual(status, 75, printed)
        // The summary ends with the one sentence.
        XCTAssertTrue(printed.contains("error: the connection to postgresql://postgres@127.0.0.1:\(server.port)/restart was lost"), printed)
        XCTAssertTrue(printed.contains("run again to resume"), printed)
        XCTAssertFalse(printed.contains(secret))
        XCTAssertEqual(printed.split(separator: "\n").filter { $0.hasPrefix("error") }.count, 1, printed)

        let again = try runSegmentLoader(["load", "--db", url] + paths)
        XCTAssertEqual(again.status, 0, again.stderr)
        let db = try PostgresConnection(PostgresLocation(url))
        assertSame(try PostgresConcurrencyTests.comparable(db), expected, "after the restart")
        XCTAssertEqual(try db.scalar("SELECT count(*) FROM _files"), "24")
        let first = try db.query("SELECT status, error FROM _loads ORDER BY id LIMIT 1")[0]
        XCTAssertTrue(["failed", "interrupted"].contains(first[0] ?? ""), "\(first)")
    }

    func testConnectionProblemsAreASentenceAndTheirExitCodeNeverThePassword() throws {
        let server = try TestPostgres.shared()
        let dir = try temporaryDirectory(self)
        let archive = dir.appendingPathComponent("a.ndjson")
        try Data("{\"type\":\"track\",\"event\":\"E\",\"messageId\":\"m1\",\"userId\":\"u\"}\n".utf8).write(to: archive)
        let cases: [(url: String, status: Int32, words: String)] = [
            (server.url("postgres", password: "wrong-\(secret)"), 77, "password authentication failed"),
            (server.url("no_such_database"), 66, "does not exist"),
            ("postgresql://postgres:\(secret)@127.0.0.1:\(try TestPostgres.freePort())/postgres", 69, "cannot connect to postgresql://postgres@127.0.0.1:"),
            // The test server has no certificate: an sslmode that requires TLS is refused by libpq.
            (server.url("postgres") + "?sslmode=require", 69, "server does not support SSL, but SSL was required"),
            (server.url("postgres") + "?sslmode=sometimes", 64, "sslmode=sometimes is not one libpq knows"),
        ]
        for c in cases {
            let report = dir.appendingPathComponent("report.json")
            let result = try runSegmentLoader(["load", "--db", c.url, "--report", report.path, archive.path])
            XCTAssertEqual(result.status, c.status, "\(c.words): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(c.words), result.stderr)
            XCTAssertFalse((result.stdout + result.stderr).contains(secret), result.stderr)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "one sentence: \(result.stderr)")
        }
        // A run that works: the password is nowhere in what it prints, reports or records.
        let url = try server.createDatabase("secret_kept")
        let report = dir.appendingPathComponent("report.json"), metrics = dir.appendingPathComponent("metrics.prom")
        let ok = try runSegmentLoader(["load", "-v", "--db", url + "?sslmode=disable", "--report", report.path, "--metrics", metrics.path, archive.path])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        for text in [ok.stdout, ok.stderr, try String(contentsOf: report, encoding: .utf8), try String(contentsOf: metrics, encoding: .utf8)] {
            XCTAssertFalse(text.contains(secret), text)
        }
        XCTAssertTrue(ok.stdout.contains("postgresql://postgres@127.0.0.1:\(server.port)/secret_kept"), ok.stdout)
        let db = try PostgresConnection(PostgresLocation(url))
        let everything = try db.query("SELECT pipeline || coalesce(error, '') FROM _loads").compactMap { $0[0] }.joined()
        XCTAssertFalse(everything.contains(secret))
    }
}

/// A real deadlock between a loader and another session, and a real type conflict between two
/// loaders.
final class PostgresConflictTests: XCTestCase {
    /// Another session holds message id X and then asks for Y, which the loader's file has
    /// just claimed while it waits for X: PostgreSQL detects the deadlock and aborts the
    /// loader's transaction (it waited first). The loader writes the file again, unseen by the
    /// user: the run succeeds with the same warehouse as without the other session.
    func testADeadlockIsRetriedNeverShown() throws {
        let server = try TestPostgres.shared()
        let dir = try temporaryDirectory(self)
        var ids = ["dl-1", "dl-2"]
        if !SeenIds.key(of: ids[0]).lexicographicallyPrecedes(SeenIds.key(of: ids[1])) { ids.reverse() }
        let (y, x) = (ids[0], ids[1])  // the loader claims y first, then waits for x
        let first = dir.appendingPathComponent("a-first.ndjson"), file = dir.appendingPathComponent("b-file.ndjson")
        try Data("{\"type\":\"track\",\"event\":\"Start\",\"messageId\":\"s-1\",\"userId\":\"u\"}\n".utf8).write(to: first)
        try Data(([x, y].map { "{\"type\":\"track\",\"event\":\"Step\",\"messageId\":\"\($0)\",\"userId\":\"u\",\"receivedAt\":\"2026-11-01T00:00:00.000Z\"}" }
                  .joined(separator: "\n") + "\n").utf8).write(to: file)
        let url = try server.createDatabase("retried")
        var options = LoadOptions(database: url, jobs: 1)
        options.models.enabled = false
        XCTAssertEqual(try LoadRun.run(paths: [first.path], options: options).outcome, .loaded)

        let other = try PostgresConnection(PostgresLocation(url))
        try other.execute("BEGIN")
        try other.query("INSERT INTO _message_ids (id, table_name, load_id) VALUES (decode($1, 'hex'), 'tracks', 0)", [hexString(SeenIds.key(of: x))])
        final class Box: @unchecked Sendable { var summary: RunSummary?; var log: [String] = []; var error: (any Error)? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let runOptions = options
        DispatchQueue.global().async {
            do { box.summary = try LoadRun.run(paths: [file.path], options: runOptions) { box.log.append($0) } } catch { box.error = error }
            done.signal()
        }
        // Wait until the loader waits for x.
        let watcher = try PostgresConnection(PostgresLocation(url))
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if try watcher.scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO _message_ids%'") == "1" { break }
            usleep(10_000)
        }
        // Now ask for y: one of the two must give way; PostgreSQL picks the loader.
        try other.query("INSERT INTO _message_ids (id, table_name, load_id) VALUES (decode($1, 'hex'), 'tracks', 0) ON CONFLICT DO NOTHING", [hexString(SeenIds.key(of: y))])
        try other.execute("ROLLBACK")
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        XCTAssertNil(box.error)
        XCTAssertEqual(box.summary?.outcome, .loaded, box.summary?.render() ?? "")
        XCTAssertEqual(box.summary?.totals.loaded, 2)
        XCTAssertTrue(box.log.contains { $0.contains("is written again (attempt 2)") && $0.contains("deadlock") }, "\(box.log)")
        XCTAssertFalse(box.summary?.render().contains("deadlock") ?? true, box.summary?.render() ?? "")
        let db = try PostgresConnection(PostgresLocation(url))
        XCTAssertEqual(try db.query("SELECT id FROM step ORDER BY id").map { $0[0] ?? "" }, [x, y].sorted())
        XCTAssertEqual(try db.scalar("SELECT count(*) FROM _message_ids"), "3")
        XCTAssertEqual(try db.scalar("SELECT count(*) FROM _files WHERE status = 'loaded'"), "2")
    }

    /// Two loaders at once give one property different types: the column exists once, with
    /// the type of the loader that made it; the other loader's values that column cannot hold
    /// without loss are in `_discards`, the rest converted.
    func testTwoLoadersGivingAColumnConflictingTypesConverge() throws {
        let server = try TestPostgres.shared()
        let dir = try temporaryDirectory(self)
        var paths: [String] = []
        for (k, value) in ["12", "\"twelve\""].enumerated() {
            let path = dir.appendingPathComponent("f\(k).ndjson").path
            let lines = (0..<2000).map { "{\"type\":\"track\",\"event\":\"Typed\",\"messageId\":\"t\(k)-\($0)\",\"userId\":\"u\($0 % 7)\",\"properties\":{\"size\":\(value)}}" }
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
            paths.append(path)
        }
        let url = try server.createDatabase("typed")
        var options = LoadOptions(database: url, jobs: 1)
        options.models.enabled = false
        final class Box: @unchecked Sendable { var outcomes: [RunOutcome] = []; let lock = NSLock() }
        let box = Box()
        let runOptions = options
        let inputs = paths
        DispatchQueue.concurrentPerform(iterations: 2) { k in
            let outcome = (try? LoadRun.run(paths: [inputs[k]], options: runOptions).outcome) ?? .failed("threw")
            box.lock.withLock { box.outcomes.append(outcome) }
        }
        XCTAssertEqual(box.outcomes, [.loaded, .loaded])
        let db = try PostgresConnection(PostgresLocation(url))
        let columns = try db.query("SELECT column_name, type FROM _schema_columns WHERE table_name = 'typed' AND column_name = 'size'")
        XCTAssertEqual(columns.count, 1, "\(columns)")
        XCTAssertEqual(try db.scalar("SELECT count(*) FROM typed"), "4000")
        let type = columns.first?[1]
        if type == "INTEGER" {
            // The integer loader made it: "twelve" cannot be an integer.
            XCTAssertEqual(try db.scalar("SELECT count(*) FROM _discards WHERE table_name = 'typed' AND column_name = 'size'"), "2000")
            XCTAssertEqual(try db.scalar("SELECT count(*) FROM typed WHERE size = 12"), "2000")
        } else {
            // The text loader made it: 12 is kept as the text "12".
            XCTAssertEqual(type, "TEXT")
            XCTAssertEqual(try db.scalar("SELECT count(*) FROM typed WHERE size = '12'"), "2000")
            XCTAssertEqual(try db.scalar("SELECT count(*) FROM typed WHERE size = 'twelve'"), "2000")
        }
    }
}
