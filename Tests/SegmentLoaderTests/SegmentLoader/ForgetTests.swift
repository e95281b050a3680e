import Foundation
import XCTest
@testable import SegmentLoader
import SegmentCore
import SQLiteEngine
import SegmentWarehouse
import SegmentStages

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

    func bytes(_ path: String) -> [UInt8] { (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? [] }

    func assertNoSecrets(in db: URL, file: StaticString = #filePath, line: UInt = #line) {
        for path in [db.path, db.path + "-wal", db.path + "-journal"] {
            let contents = bytes(path)
            for secret in Self.secrets {
                XCTAssertFalse(contents.contains(sequence: Array(secret.utf8)), "\(secret) is still in \(path)", file: file, line: line)
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
        XCTAssertTrue(bytes(db.path).contains(sequence: Array("person0@mail.example".utf8)))

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
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _suppressions"), "3")
        XCTAssertEqual(try scalar(db, "SELECT digest FROM _suppressions WHERE kind = 'user_id'"), SuppressionList.digest(.userId, "user-0@ex"))
        // The models of everyone else equal a full rebuild of what is left.
        let models = ["SELECT * FROM sessions ORDER BY session_id", "SELECT * FROM page_views ORDER BY id", "SELECT * FROM identities ORDER BY anonymous_id"]
        let incremental = try models.map { try rows(db, $0) }
        let rebuild = try runSegmentLoader(["models", "--db", db.path, "--rebuild"])
        XCTAssertEqual(rebuild.status, 0, rebuild.stderr)
        XCTAssertEqual(try models.map { try rows(db, $0) }, incremental)

        // The original archives again: nothing of theirs comes back, counted as suppressed.
        // (Compressed again, so that their bytes are not those already loaded.)
        let copy = dir.appendingPathComponent("again")
        for (i, file) in archives.enumerated() {
            var out: [UInt8] = []
            let data = try Data(contentsOf: file)
            try data.withUnsafeBytes { raw in try Inflater().inflate(raw) { out.append(contentsOf: $0) } }
            _ = try write(gzip(bytes: out, level: 1), to: copy.appendingPathComponent("part-\(i).gz"))
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
        let dir = try temporaryDirectory(self)
        let folder = dir.appendingPathComponent("all")
        let archives = try Self.month(in: folder)
        let db = dir.appendingPathComponent("w.sqlite")
        try load([folder], into: db)
        func lines(_ url: URL) throws -> [String] {
            let data = try Data(contentsOf: url)
            var out: [UInt8] = []
            let inflater = Inflater()
            try data.withUnsafeBytes { raw in try inflater.inflate(raw) { out.append(contentsOf: $0) } }
            return String(decoding: out, as: UTF8.self).split(separator: "\n").map(String.init)
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
        let dir = try temporaryDirectory(self)
        let folder = dir.appendingPathComponent("all")
        _ = try Self.month(in: folder)
        let original = dir.appendingPathComponent("original.sqlite")
        try load([folder], into: original)
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
            let next = try load([archiveCopy], into: db)
            XCTAssertEqual(next.totals.loaded, 0, point)
            let resumed = try runSegmentLoader(["forget", "--db", db.path, "--resume"])
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertEqual(try scalar(db, "SELECT status FROM _erasures"), "complete", point)
            assertNoSecrets(in: db)
            for file in try FileManager.default.subpathsOfDirectory(atPath: archiveCopy.path) where file.hasSuffix(".gz") {
                let data = try Data(contentsOf: archiveCopy.appendingPathComponent(file))
                var out: [UInt8] = []
                try data.withUnsafeBytes { raw in try Inflater().inflate(raw) { out.append(contentsOf: $0) } }
                XCTAssertFalse(out.contains(sequence: Array("user-0@ex".utf8)), "\(point): \(file)")
            }
            let after = try load([archiveCopy], into: db)
            XCTAssertEqual(after.totals.lines, 0, "\(point): the next run reads nothing again")
        }
    }

    func testIdsThatMatchNobodyAndPatternsAreExact() throws {
        let dir = try temporaryDirectory(self)
        let folder = dir.appendingPathComponent("all")
        _ = try Self.month(in: folder)
        let db = dir.appendingPathComponent("w.sqlite")
        try load([folder], into: db)
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
        let bad = try write("user:nobody\n", to: dir.appendingPathComponent("bad.txt"))
        let refused = try runSegmentLoader(["forget", "--db", db.path, "--from", bad.path])
        XCTAssertEqual(refused.status, 64)
        XCTAssertTrue(refused.stderr.contains("bad.txt:1"), refused.stderr)
    }
}

extension Array where Element == UInt8 {
    func contains(sequence needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, count >= needle.count else { return false }
        for i in 0...(count - needle.count) where self[i] == needle[0] {
            if self[i..<(i + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}
