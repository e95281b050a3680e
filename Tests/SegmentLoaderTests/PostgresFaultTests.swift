import Foundation
import XCTest
@testable import SegmentLoader

/// Issue 21: the real binary against the test server when things go wrong: killed at each
/// kill point, the server restarted under it, a wrong password, an unknown database, no
/// server. Each time a sentence and the right exit code, no client error stack, never the
/// password, and the next run completes the warehouse with nothing doubled or lost.
final class PostgresFaultTests: XCTestCase {
    let secret = "sl-test-secret"

    /// The warehouse of `paths` loaded once, uninterrupted, for comparison.
    func reference(_ paths: [String], database: String) throws -> [String: PostgresDifferentialTests.Table] {
        let url = try TestPostgres.shared().createDatabase(database)
        let clean = try runSegmentLoader(["load", "--db", url] + paths)
        XCTAssertEqual(clean.status, 0, clean.stderr)
        return try PostgresConcurrencyTests.comparable(PostgresConnection(PostgresLocation(url)))
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
        let watcher = try PostgresConnection(PostgresLocation(url))

        let process = Process()
        process.executableURL = segmentLoaderBinary
        process.arguments = ["load", "--jobs", "1", "--db", url] + paths
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // The restart comes once a file is in and while others remain.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let count = try? watcher.scalar("SELECT count(*) FROM segment._files"), (Int(count) ?? 0) >= 1 { break }
            usleep(20_000)
        }
        try server.pgCtl(["restart", "-m", "fast", "-w", "-t", "60"])
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 75, stdout + stderr)
        // The summary ends with the one sentence.
        let printed = stdout + stderr
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
        let ok = try runSegmentLoader(["load", "-v", "--db", url, "--report", report.path, "--metrics", metrics.path, archive.path])
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
