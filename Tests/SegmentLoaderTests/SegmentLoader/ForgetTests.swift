import Foundation
import XCTest
@testable import SegmentLoader
import SegmentCore
import SQLiteEngine
import SegmentWarehouse
import SegmentStages
import PostgresEngine
import SegmentS3

/// `forget` on SQLite: a month of archives, one person erased by user id.
final class ForgetTests: XCTestCase {
    /// Six people, each with an e-mail and two devices, a month of days: anonymous browsing,
    /// then a login (identify with traits) on each device, tracks and pages, one group call.
    /// Person 0 also has a rejected line (not JSON) that mentions their user id.
    static func month(in folder: URL, without person: Int? = nil) throws -> [URL] {
        var files: [URL] = []
        for day in 0..<30 {
            let ms = Int64(1_701_388_800_000) + Int64(day) * 86_400_000
            var lines: [String] = []
            for p in 0..<6 where p != person {
                guard (day + p) % 3 != 0 else { continue }
                let user = "user-\(p)@ex", anon = "anon-\(p)-\(day % 2)", email = "person\(p)@mail.example"
                let time = { (minute: Int) -> String in
                    let date = Date(timeIntervalSince1970: Double(ms) / 1000 + Double(p * 3600 + minute * 60))
                    return ISO8601DateFormatter().string(from: date)
                }
                lines.append(jsonLine(["type": "page", "messageId": "pg-\(p)-\(day)", "anonymousId": anon, "name": "Home",
                                       "properties": ["path": "/", "url": "https://ex.com/?utm_source=mail"],
                                       "receivedAt": time(0), "sentAt": time(0), "originalTimestamp": time(0), "timestamp": time(0)]))
                lines.append(jsonLine(["type": "identify", "messageId": "id-\(p)-\(day)", "anonymousId": anon, "userId": user,
                                       "traits": ["email": email, "plan": day < 15 ? "free" : "pro"],
                                       "receivedAt": time(2), "sentAt": time(2), "originalTimestamp": time(2), "timestamp": time(2)]))
                lines.append(jsonLine(["type": "track", "messageId": "tr-\(p)-\(day)", "anonymousId": anon, "userId": user,
                                       "event": p == 0 ? "Secret Thing" : "Order Completed", "properties": ["total": p * 10 + day],
                                       "receivedAt": time(5), "sentAt": time(5), "originalTimestamp": time(5), "timestamp": time(5)]))
                if day == 4 {
                    lines.append(jsonLine(["type": "group", "messageId": "gr-\(p)", "userId": user, "groupId": p < 3 ? "acme" : "p\(p)corp",
                                           "traits": ["name": p < 3 ? "Acme" : "Corp \(p)", "seats": p],
                                           "receivedAt": time(7), "sentAt": time(7), "originalTimestamp": time(7), "timestamp": time(7)]))
                }
                if p == 0 && day == 7 { lines.append("{\"userId\": \"user-0@ex\", \"type\": \"track\", \"event\": ") }
            }
            let file = folder.appendingPathComponent("segment-logs/src1/\(ms)/part-\(day).gz")
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            files.append(try write(gzip(lines.joined(separator: "\n") + "\n"), to: file))
        }
        return files
    }

    static let secrets = ["user-0@ex", "anon-0-0", "anon-0-1", "person0@mail.example"]

    /// The inflated bytes of a gzip archive.
    static func inflated(_ data: some DataProtocol) throws -> [UInt8] {
        var out: [UInt8] = []
        try Array(data).withUnsafeBytes { raw in try Inflater().inflate(raw) { out.append(contentsOf: $0) } }
        return out
    }

    func bytes(_ path: String) -> [UInt8] { (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? [] }

    func assertNoSecrets(in db: URL, file: StaticString = #filePath, line: UInt = #line) {
        for path in [db.path, db.path + "-wal", db.path + "-journal"] {
            let contents = bytes(path)
            for secret in Self.secrets {
                XCTAssertNil(contents.firstRange(of: Array(secret.utf8)), "\(secret) is still in \(path)", file: file, line: line)
            }
        }
    }

    /// Every table's rows over the columns both warehouses have (a table or column only the
    /// erased warehouse has must hold nothing), leaving out what depends on runs and files.
    func assertSameRows(_ erased: URL, _ reference: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let skipTables: Set = ["_loads", "_models", "_files", "_erasures", "_suppressions", "_schema_tables", "_schema_columns"]
        let skipColumns: Set = ["uuid_ts", "load_id", "first_load_id", "last_load_id", "loaded_at", "line"]
        let tables = try rows(erased, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").map { $0[0] }
        let referenceTables = Set(try rows(reference, "SELECT name FROM sqlite_master WHERE type = 'table'").map { $0[0] })
        var compared = 0
        for table in tables where !skipTables.contains(table) {
            guard referenceTables.contains(table) else {
                XCTAssertEqual(try scalar(erased, "SELECT count(*) FROM \(quoteIdentifier(table))"), "0", "\(table) only in the erased warehouse", file: file, line: line)
                continue
            }
            let mine = try rows(erased, "SELECT name FROM pragma_table_info('\(table)')").map { $0[0] }
            let theirs = Set(try rows(reference, "SELECT name FROM pragma_table_info('\(table)')").map { $0[0] })
            var columns = mine.filter { theirs.contains($0) && !skipColumns.contains($0) }
            if table.hasPrefix("_") { columns.removeAll { $0 == "id" } }
            for extra in mine where !theirs.contains(extra) {
                XCTAssertEqual(try scalar(erased, "SELECT count(*) FROM \(quoteIdentifier(table)) WHERE \(quoteIdentifier(extra)) IS NOT NULL"), "0",
                               "\(table).\(extra) only in the erased warehouse", file: file, line: line)
            }
            let list = columns.map(quoteIdentifier).joined(separator: ", ")
            let query = "SELECT \(list) FROM \(quoteIdentifier(table)) ORDER BY \(list)"
            XCTAssertEqual(try rows(erased, query), try rows(reference, query), "rows of \(table)", file: file, line: line)
            compared += 1
        }
        XCTAssertGreaterThan(compared, 10, file: file, line: line)
    }

    func testForgettingAPersonByUserIdLeavesWhatAWarehouseWithoutThemHas() throws {
        let dir = try temporaryDirectory(self)
        let archives = try Self.month(in: dir.appendingPathComponent("all"))
        let without = try Self.month(in: dir.appendingPathComponent("without"), without: 0)
        let db = dir.appendingPathComponent("w.sqlite"), reference = dir.appendingPathComponent("ref.sqlite")
        // Loaded night by night, so the models are built incrementally as in production.
        for file in archives { try load([file], into: db) }
        for file in without { try load([file], into: reference) }
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _rejects"), "1")
        XCTAssertNotNil(bytes(db.path).firstRange(of: Array("person0@mail.example".utf8)))

        let dry = try runSegmentLoader(["forget", "--db", db.path, "--user-id", "user-0@ex", "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains("would remove"), dry.stdout)
        XCTAssertTrue(dry.stdout.contains("expanded to 2 more anonymous ids"), dry.stdout)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE user_id = 'user-0@ex'"), "20")

        let result = try runSegmentLoader(["forget", "--db", db.path, "--user-id", "user-0@ex"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("_rejects: 1"), result.stdout)
        XCTAssertTrue(result.stdout.contains("secret_thing: 20"), result.stdout)
        assertNoSecrets(in: db)
        try assertSameRows(db, reference)
        XCTAssertEqual(try rows(db, "SELECT status, ids_given, ids_expanded, scrubbed FROM _erasures"), [["complete", "1", "2", "1"]])
        // Its run in _loads ends with the request, scrub included.
        XCTAssertEqual(try rows(db, "SELECT l.status, l.finished_at >= e.finished_at FROM _loads l, _erasures e WHERE l.pipeline = 'forget'"), [["succeeded", "1"]])
        let status = try runSegmentLoader(["status", "--db", db.path])
        XCTAssertTrue(status.stdout.contains("erasures: 1 request, 3 suppressed ids; latest #1 "), status.stdout)
        XCTAssertTrue(status.stdout.contains(" complete: 1 id given, 2 found, "), status.stdout)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _suppressions"), "3")
        XCTAssertEqual(try scalar(db, "SELECT digest FROM _suppressions WHERE kind = 'user_id'"), SuppressionList.digest(.userId, "user-0@ex"))
        // The models of everyone else equal a full rebuild of what is left.
        let incremental = try modelsDump(db)
        XCTAssertTrue(incremental.contains("active_people\n2"), "the analytics views have rows")
        let rebuild = try runSegmentLoader(["models", "--db", db.path, "--rebuild"])
        XCTAssertEqual(rebuild.status, 0, rebuild.stderr)
        XCTAssertEqual(try modelsDump(db), incremental)

        // The original archives again: nothing of theirs comes back, counted as suppressed.
        // (Compressed again, so that their bytes are not those already loaded.)
        let copy = dir.appendingPathComponent("again")
        for (i, file) in archives.enumerated() {
            _ = try write(gzip(bytes: try Self.inflated(Data(contentsOf: file)), level: 1), to: copy.appendingPathComponent("part-\(i).gz"))
        }
        let again = try runSegmentLoader(["load", "--db", db.path, copy.path, "--report", dir.appendingPathComponent("r.json").path])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("+ 62 suppressed") || again.stdout.contains("+ 62 suppressed"), again.stdout + again.stderr)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE user_id = 'user-0@ex' OR anonymous_id LIKE 'anon-0-%'"), "0")
        XCTAssertEqual(try scalar(db, "SELECT sum(suppressed) FROM _files"), "62")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _files WHERE lines <> loaded + duplicates + rejected + filtered + suppressed"), "0")
        XCTAssertEqual(try scalar(db, "SELECT suppressed FROM _loads ORDER BY id DESC LIMIT 1"), "62")
        let report = try String(contentsOf: dir.appendingPathComponent("r.json"), encoding: .utf8)
        XCTAssertTrue(report.contains("\"suppressed\":62"), report)
        // The line that is no message but holds their id is suppressed too, not kept as a reject.
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _rejects"), "0")
        // The list for the collector.
        let export = try runSegmentLoader(["suppressions", "export", "--db", db.path])
        XCTAssertEqual(export.status, 0, export.stderr)
        XCTAssertEqual(try SuppressionList.parse(export.stdout).digests, Set(try rows(db, "SELECT digest FROM _suppressions").map { $0[0] }))
    }

    func testArchivesRewrittenWithoutTheirLinesAndNotReadAgain() throws {
        let (_, folder, archives, db) = try loadedMonth()
        func lines(_ url: URL) throws -> [String] {
            String(decoding: try Self.inflated(Data(contentsOf: url)), as: UTF8.self).split(separator: "\n").map(String.init)
        }
        let before = try archives.map(lines)
        let result = try runSegmentLoader(["forget", "--db", db.path, "--user-id", "user-0@ex", "--archives"])
        XCTAssertEqual(result.status, 0, result.stderr)
        for (i, file) in archives.enumerated() {
            let expected = before[i].filter { line in !Self.secrets.contains { line.contains($0) } }
            XCTAssertEqual(try lines(file), expected, file.lastPathComponent)
        }
        XCTAssertEqual(try scalar(db, "SELECT archives_rewritten FROM _erasures"), "20")
        XCTAssertEqual(try scalar(db, "SELECT lines_removed FROM _erasures"), "62")
        for file in archives {
            let (sha, size) = try ArchiveReader.sha256(path: file.path)
            XCTAssertEqual(try rows(db, "SELECT sha256, size FROM _files WHERE path = '\(file.path)'"), [[sha, String(size)]])
        }
        let next = try load([folder], into: db)
        XCTAssertEqual(next.skippedAlreadyLoaded.count, 30)
        XCTAssertEqual(next.totals.lines, 0)
    }

    func testKilledAtEachStepGivesBeforeOrAfter() throws {
        let (dir, folder, _, original) = try loadedMonth("original.sqlite")
        let before = try dumpWarehouse(original)
        let archiveCopy = dir.appendingPathComponent("copy")
        for point in ["forget:removed", "forget:committed", "forget:archive:1", "forget:archive:3", "forget:scrub"] {
            try? FileManager.default.removeItem(at: archiveCopy)
            try FileManager.default.copyItem(at: folder, to: archiveCopy)
            let db = dir.appendingPathComponent("k.sqlite")
            for suffix in ["", "-wal", "-shm", ".lock"] { try? FileManager.default.removeItem(atPath: db.path + suffix) }
            try load([archiveCopy], into: db)
            let killed = try runSegmentLoader(["forget", "--db", db.path, "--user-id", "user-0@ex", "--archives", "--test-kill-at", point])
            XCTAssertTrue(killed.signaled, "\(point): \(killed.stdout)")
            if point == "forget:removed" {
                let dump = try dumpWarehouse(db).replacingOccurrences(of: archiveCopy.path, with: folder.path)
                    .split(separator: "\n").filter { !$0.hasPrefix("TABLE _erasures") && !$0.hasPrefix("TABLE _suppressions") }.joined(separator: "\n")
                XCTAssertEqual(dump, before, point)
                XCTAssertEqual(try scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = '_erasures'"), "1")
                XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _erasures"), "0")
                continue
            }
            // After: the rows are gone; the rest is finished by the next forget (or load).
            XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE user_id = 'user-0@ex'"), "0", point)
            XCTAssertEqual(try scalar(db, "SELECT status FROM _erasures"), "pending", point)
            // Odd points: the next load finishes it; even ones: forget --resume.
            if ["forget:committed", "forget:archive:3"].contains(point) {
                var said: [String] = []
                let next = try LoadRun.run(paths: [archiveCopy.path], options: LoadOptions(database: db.path), log: { said.append($0) })
                XCTAssertEqual(next.totals.loaded, 0, point)
                XCTAssertTrue(said.contains { $0.contains("finished erasure 1") }, "\(point): \(said)")
            } else {
                let resumed = try runSegmentLoader(["forget", "--db", db.path, "--resume"])
                XCTAssertEqual(resumed.status, 0, resumed.stderr)
                XCTAssertTrue(resumed.stdout.contains("finished erasure 1"), resumed.stdout)
            }
            XCTAssertEqual(try scalar(db, "SELECT status FROM _erasures"), "complete", point)
            XCTAssertEqual(try runSegmentLoader(["forget", "--db", db.path, "--resume"]).stdout, "forget: no erasure of \(db.path) is pending\n")
            assertNoSecrets(in: db)
            for file in try FileManager.default.subpathsOfDirectory(atPath: archiveCopy.path) where file.hasSuffix(".gz") {
                let out = try Self.inflated(Data(contentsOf: archiveCopy.appendingPathComponent(file)))
                XCTAssertNil(out.firstRange(of: Array("user-0@ex".utf8)), "\(point): \(file)")
            }
            let after = try load([archiveCopy], into: db)
            XCTAssertEqual(after.totals.lines, 0, "\(point): the next run reads nothing again")
        }
    }

    /// Under a pipeline that hashes user ids, the id given is looked for as the warehouse holds it.
    func testAPipelineThatHashesUserIdsForgetsByTheirDigest() throws {
        let dir = try temporaryDirectory(self)
        _ = try Self.month(in: dir.appendingPathComponent("all"))
        let yaml = "version: 1\nname: hashed\nsources:\n  - path: all\nwarehouse:\n  path: h.sqlite\nprivacy:\n  hash: [userId]\n  hash_key_env: SL_FORGET_KEY\n"
        let pipeline = try write(yaml, to: dir.appendingPathComponent("hashed.yml"))
        let key = ["SL_FORGET_KEY": "a key of at least sixteen characters"]
        let run = try runSegmentLoader(["run", pipeline.path], environment: key)
        XCTAssertEqual(run.status, 0, run.stderr)
        let db = dir.appendingPathComponent("h.sqlite")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE user_id = 'user-0@ex'"), "0")
        let people = try scalar(db, "SELECT count(DISTINCT user_id) FROM tracks")
        let result = try runSegmentLoader(["forget", "--pipeline", pipeline.path, "--user-id", "user-0@ex", "--archives"], environment: key)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("tracks: 20"), result.stdout)
        XCTAssertEqual(try scalar(db, "SELECT count(DISTINCT user_id) FROM tracks"), String(Int(people)! - 1))
        // The archives hold the plain id: their lines are matched as the load stored them.
        for file in try FileManager.default.subpathsOfDirectory(atPath: dir.appendingPathComponent("all").path) where file.hasSuffix(".gz") {
            let text = String(decoding: try Self.inflated(Data(contentsOf: dir.appendingPathComponent("all/" + file))), as: UTF8.self)
            XCTAssertFalse(text.contains("user-0@ex"), file)
            XCTAssertFalse(text.contains("anon-0-"), file)
        }
    }

    func testIdsThatMatchNobodyAndPatternsAreExact() throws {
        let (dir, _, _, db) = try loadedMonth()
        let before = try scalar(db, "SELECT count(*) FROM tracks")
        let result = try runSegmentLoader(["forget", "--db", db.path, "--user-id", "user-%", "--anonymous-id", "anon-_-0"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("match nobody"), result.stdout)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), before)
        let list = dir.appendingPathComponent("ids.txt")
        _ = try write("# requests\nuser_id:user-1@ex\n\nanonymous_id:anon-2-0\n", to: list)
        let batch = try runSegmentLoader(["forget", "--db", db.path, "--from", list.path])
        XCTAssertEqual(batch.status, 0, batch.stderr)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE user_id = 'user-1@ex'"), "0")
        // anon-2-0's anonymous rows go; person 2's logged-in rows on that device are theirs and stay.
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM pages WHERE anonymous_id = 'anon-2-0'"), "0")
        XCTAssertNotEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE anonymous_id = 'anon-2-0'"), "0")
        // The warehouse's lock, as a load takes it: a forget while another run holds it is refused.
        do {
            let held = try WarehouseLock(database: db.path)
            let refused = try runSegmentLoader(["forget", "--db", db.path, "--user-id", "user-4@ex"])
            XCTAssertEqual(refused.status, 75, refused.stderr)
            XCTAssertNotEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE user_id = 'user-4@ex'"), "0")
            withExtendedLifetime(held) {}
        }
        // Through a pipeline: its warehouse.
        let pipeline = try write("version: 1\nname: p\nsources:\n  - path: all\nwarehouse:\n  path: w.sqlite\n", to: dir.appendingPathComponent("p.yml"))
        let piped = try runSegmentLoader(["forget", "--pipeline", pipeline.path, "--user-id", "user-3@ex"])
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertTrue(piped.stdout.contains("rows from \(db.path)"), piped.stdout)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM identifies WHERE user_id = 'user-3@ex'"), "0")
        let bad = try write("user:nobody\n", to: dir.appendingPathComponent("bad.txt"))
        let refused = try runSegmentLoader(["forget", "--db", db.path, "--from", bad.path])
        XCTAssertEqual(refused.status, 64)
        XCTAssertTrue(refused.stderr.contains("bad.txt:1"), refused.stderr)
    }
}

extension XCTestCase {
    /// `ForgetTests.month` in `<dir>/all`, loaded into `<dir>/<name>`.
    func loadedMonth(_ name: String = "w.sqlite") throws -> (dir: URL, folder: URL, archives: [URL], db: URL) {
        let dir = try temporaryDirectory(self)
        let folder = dir.appendingPathComponent("all")
        let archives = try ForgetTests.month(in: folder)
        let db = dir.appendingPathComponent(name)
        try load([folder], into: db)
        return (dir, folder, archives, db)
    }
}


/// The collector with the list `suppressions export` writes: a forgotten person's calls are
/// answered 200, counted and never archived; SIGHUP reads a new list.
final class ForgetCollectorTests: XCTestCase {
    func testTheCollectorDropsForgottenPeopleAfterAnExportAndReadsTheListAgainOnSIGHUP() throws {
        let (dir, _, _, db) = try loadedMonth()
        XCTAssertEqual(try runSegmentLoader(["forget", "--db", db.path, "--user-id", "user-0@ex"]).status, 0)
        let list = dir.appendingPathComponent("suppressions.txt")
        let export = try runSegmentLoader(["suppressions", "export", "--db", db.path, "-o", list.path])
        XCTAssertEqual(export.status, 0, export.stderr)

        let server = try CollectorProcess.start(dir, ["--source", "KEY=web", "--suppressions", list.path])
        defer { _ = try? server.stop() }
        func post(_ body: String, route: String = "track") throws {
            let reply = try server.post(route, body, key: "KEY")
            XCTAssertEqual(reply.status, 200, body)
            XCTAssertEqual(reply.text, #"{"success":true}"#)
        }
        try post(#"{"userId":"user-0@ex","event":"Back Again","messageId":"s1"}"#)
        try post(#"{"anonymousId":"anon-0-1","name":"Home","messageId":"s2"}"#, route: "page")
        try post(#"{"userId":"user-1@ex","event":"Kept","messageId":"k1"}"#)
        // Someone else on a device the person used: theirs, kept.
        try post(#"{"userId":"user-2@ex","anonymousId":"anon-0-1","event":"Kept","messageId":"k2"}"#)
        try post(#"{"batch":[{"type":"track","userId":"user-0@ex","event":"X","messageId":"s3"},{"type":"track","userId":"user-3@ex","event":"Kept","messageId":"k3"}]}"#, route: "batch")

        // Another person forgotten; the list exported again and read on SIGHUP.
        XCTAssertEqual(try runSegmentLoader(["forget", "--db", db.path, "--user-id", "user-1@ex"]).status, 0)
        XCTAssertEqual(try runSegmentLoader(["suppressions", "export", "--db", db.path, "-o", list.path]).status, 0)
        server.signal(SIGHUP)
        let deadline = Date().addingTimeInterval(20)
        while !server.stderr.contains("suppression list read again") && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(server.stderr.contains("suppression list read again"), server.stderr)
        try post(#"{"userId":"user-1@ex","event":"Gone","messageId":"s4"}"#)
        let metrics = try server.request("GET", "/metrics").text
        XCTAssertTrue(metrics.contains(#"messages_suppressed_total{source="web"} 4"#), metrics)
        XCTAssertEqual(try server.stop(), 0)
        let text = try server.archivedText()
        for id in ["s1", "s2", "s3", "s4"] { XCTAssertFalse(text.contains("\"\(id)\""), "\(id) was archived") }
        for id in ["k1", "k2", "k3"] { XCTAssertTrue(text.contains("\"\(id)\""), "\(id) was not archived") }
        XCTAssertFalse(text.contains("user-0@ex"))
    }
}

/// The same erasure on PostgreSQL and on Citus gives what it gives on SQLite (which
/// `ForgetTests` compares with a warehouse built without the person), table by table.
final class ForgetPostgresTests: XCTestCase {
    func testForgetOnPostgreSQLEqualsSQLite() throws {
        try assertSameErasure(server: try TestPostgres.shared(), database: "forget_pg")
    }

    func testForgetOnCitusEqualsSQLite() throws {
        try assertSameErasure(server: try TestCitus.shared(), database: "forget_citus")
    }

    func assertSameErasure(server: any TestDatabaseServer, database: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try temporaryDirectory(self)
        let folder = dir.appendingPathComponent("all")
        let archives = try ForgetTests.month(in: folder)
        let now = Date(timeIntervalSince1970: 1_780_000_000)
        var lite = LoadOptions(database: dir.appendingPathComponent("w.sqlite").path, jobs: 2)
        var post = LoadOptions(database: try server.createDatabase(database), jobs: 2)
        for i in [0, 1] {
            var options = i == 0 ? lite : post
            options.now = { now }
            for file in archives { _ = try LoadRun.run(paths: [file.path], options: options) }
            var request = Forget.Request()
            request.users = ["user-0@ex"]
            let outcome = try Forget.run(request, options: options)
            XCTAssertEqual(outcome.totalRows > 100, true, file: file, line: line)
            XCTAssertNil(outcome.scrubNote, file: file, line: line)
            if i == 0 { lite = options } else { post = options }
        }
        let liteDB = try Database(path: lite.database, readOnly: true)
        let postDB = try PostgresConnection(PostgresLocation(post.database))
        let a = try PostgresDifferentialTests.tables(liteDB), b = try PostgresDifferentialTests.tables(postDB)
        XCTAssertEqual(Set(b.keys).subtracting(["_warehouse"]), Set(a.keys), file: file, line: line)
        for (name, table) in a.sorted(by: { $0.key < $1.key }) where !["_loads", "_models"].contains(name) {
            XCTAssertEqual(b[name]?.rows.count, table.rows.count, "rows of \(name)", file: file, line: line)
            for (x, y) in zip(table.rows, b[name]?.rows ?? []) where x != y {
                XCTFail("\(name): SQLite has\n  \(x)\nPostgreSQL has\n  \(y)", file: file, line: line)
                break
            }
        }
        XCTAssertEqual(try postDB.scalar("SELECT count(*) FROM tracks WHERE user_id = 'user-0@ex'"), "0", file: file, line: line)
        // The tables rows left were vacuumed.
        XCTAssertEqual(try postDB.scalar("SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('tracks', 'identifies', 'users') AND schemaname = current_schema() AND last_vacuum IS NOT NULL"),
                       "3", file: file, line: line)
        // Later loads leave them out.
        let copy = dir.appendingPathComponent("again")
        for (i, archive) in archives.enumerated() {
            _ = try write(gzip(bytes: try ForgetTests.inflated(Data(contentsOf: archive)), level: 1), to: copy.appendingPathComponent("part-\(i).gz"))
        }
        let again = try LoadRun.run(paths: [copy.path], options: post)
        XCTAssertEqual(again.totals.suppressed, 62, again.render(), file: file, line: line)
        XCTAssertEqual(again.totals.loaded, 0, file: file, line: line)
        XCTAssertEqual(try postDB.scalar("SELECT sum(suppressed) FROM _files"), "62", file: file, line: line)
    }
}

/// `forget --archives` on S3 objects (moto): each object holding the person's lines replaced by
/// one PUT without them, `_files` given the new size, SHA-256 and ETag, the next run reads nothing.
final class ForgetS3Tests: XCTestCase {
    func testArchivesInS3AreReplacedWithoutTheirLines() throws {
        let s3 = try TestS3.shared()
        let client = s3.client()
        let dir = try temporaryDirectory(self)
        let folder = dir.appendingPathComponent("up")
        _ = try ForgetTests.month(in: folder)
        let bucket = "sl-forget-\(UUID().uuidString.prefix(8).lowercased())"
        try s3.put(folder, bucket: bucket)
        var options = LoadOptions(database: dir.appendingPathComponent("w.sqlite").path, jobs: 2)
        options.objects = client
        let first = try LoadRun.run(found: try Discovery.find(["s3://\(bucket)/"], objects: client), options: options)
        XCTAssertEqual(first.filesLoaded, 30)
        func lines(_ url: String) throws -> [String] {
            var bytes: [UInt8] = []
            _ = try client.read(url) { bytes.append(contentsOf: $0) }
            return String(decoding: try ForgetTests.inflated(bytes), as: UTF8.self).split(separator: "\n").map(String.init)
        }
        let urls = try rows(URL(fileURLWithPath: options.database), "SELECT path FROM _files ORDER BY path").map { $0[0] }
        let before = try urls.map(lines)
        var request = Forget.Request()
        request.users = ["user-0@ex"]
        request.archives = true
        let outcome = try Forget.run(request, options: options)
        XCTAssertEqual(outcome.archivesRewritten.count, 20, outcome.render(database: "w"))
        XCTAssertEqual(outcome.archiveProblems, [])
        for (i, url) in urls.enumerated() {
            XCTAssertEqual(try lines(url), before[i].filter { line in !ForgetTests.secrets.contains { line.contains($0) } }, url)
        }
        let db = URL(fileURLWithPath: options.database)
        let listed = try client.list(S3Location("s3://\(bucket)/")!).objects
        for object in listed {
            let url = "s3://\(bucket)/\(object.key)"
            XCTAssertEqual(try rows(db, "SELECT size, etag FROM _files WHERE path = '\(url)'"), [[String(object.size), object.etag]], url)
        }
        let next = try LoadRun.run(found: try Discovery.find(["s3://\(bucket)/"], objects: client), options: options)
        XCTAssertEqual(next.skippedAlreadyLoaded.count, 30)
        XCTAssertEqual(next.totals.lines, 0)
    }
}

final class SuppressionListTests: XCTestCase {
    func testTheRuleAndTheFile() throws {
        var list = SuppressionList()
        list.insert(SuppressionList.digest(.userId, "u1"))
        list.insert(SuppressionList.digest(.anonymousId, "a1"))
        XCTAssertEqual(SuppressionList.digest(.userId, "u1"), hexString(SHA256Hasher.hash("user_id:u1")))
        XCTAssertTrue(list.suppresses(userId: "u1", anonymousId: nil))
        XCTAssertTrue(list.suppresses(userId: nil, anonymousId: "a1"))
        XCTAssertFalse(list.suppresses(userId: "u2", anonymousId: "a1"), "someone else on their device")
        XCTAssertFalse(list.suppresses(userId: nil, anonymousId: "u1"), "a user id is not an anonymous id")
        XCTAssertTrue(list.suppresses(try JSONParser.parse(#"{"type":"alias","from":"x","to":"u1"}"#)))
        XCTAssertTrue(list.suppresses(try JSONParser.parse(#"{"userId":"","anonymousId":"a1"}"#)), "an empty userId is none")
        XCTAssertEqual(try SuppressionList.parse(list.exported()), list)
        XCTAssertEqual(Array("{\"userId\":\"u1\",".utf8).withUnsafeBufferPointer { list.mentioned(in: $0) }, true)
        XCTAssertEqual(Array("{\"userId\":\"u11\",".utf8).withUnsafeBufferPointer { list.mentioned(in: $0) }, false)
        XCTAssertThrowsError(try SuppressionList.parse("# list\n\(SuppressionList.digest(.userId, "x"))\nnot-a-digest\n")) { error in
            XCTAssertEqual("\(error)", "line 3 is not a digest (64 hexadecimal digits): not-a-digest")
        }
    }
}
