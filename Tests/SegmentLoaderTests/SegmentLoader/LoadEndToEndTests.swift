import XCTest
@testable import SegmentLoader
@testable import SQLiteEngine

final class LoadEndToEndTests: XCTestCase {
    var dir: URL!
    var db: URL!

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
        db = dir.appendingPathComponent("warehouse.sqlite")
    }

    func columns(_ table: String) throws -> [String] {
        try rows(db, "SELECT name || ' ' || type FROM pragma_table_info('\(table)')").map { $0[0] }
    }

    func testAllCallTypesLandInTheirTablesWithExactColumnsAndTypes() throws {
        let file = try write(gzip(ndjson([
            track("t1", properties: ["appId": "a1", "seats": 3, "price": 9.5, "trial": true, "tags": ["x"], "startedAt": "2024-03-01T09:00:00Z"],
                  extra: ["context": ["page": ["path": "/p"], "ip": "1.2.3.4"]]),
            identify("i1", user: "u1", at: "2024-03-01T10:00:00Z", traits: ["email": "a@example.com", "address": ["city": "Oslo"]]),
            ["type": "page", "messageId": "p1", "anonymousId": "an1", "name": "Home", "category": "Docs",
             "properties": ["path": "/"], "receivedAt": "2024-03-01T10:00:00Z"],
            ["type": "screen", "messageId": "s1", "userId": "u1", "name": "Dashboard", "properties": ["from_push": false],
             "receivedAt": "2024-03-01T10:00:00Z"],
            ["type": "group", "messageId": "g1", "userId": "u1", "groupId": 987, "traits": ["name": "Acme", "employees": 40],
             "receivedAt": "2024-03-01T10:00:00Z"],
            ["type": "alias", "messageId": "al1", "userId": "u1", "previousId": "an1", "receivedAt": "2024-03-01T10:00:00Z"],
        ])), to: dir.appendingPathComponent("all-calls.ndjson.gz"))
        let summary = try load([file], into: db)
        XCTAssertNil(summary.fatalError)
        XCTAssertEqual(summary.totals.loaded, 6)

        let common = ["id TEXT", "anonymous_id TEXT", "user_id TEXT", "received_at TIMESTAMP", "sent_at TIMESTAMP",
                      "original_timestamp TIMESTAMP", "timestamp TIMESTAMP", "uuid_ts TIMESTAMP"]
        // The Spec's context columns come with every table, whether or not a value arrived.
        let context = specContextColumns.map { $0 + " TEXT" }
        XCTAssertEqual(try columns("tracks"), common + ["event TEXT", "event_text TEXT"] + context)
        let properties = try columns("application_enabled").dropFirst(common.count + 2).dropLast(context.count)
        XCTAssertEqual(try columns("application_enabled"), common + ["event TEXT", "event_text TEXT"] + properties + context)
        XCTAssertEqual(Set(properties), ["app_id TEXT", "seats INTEGER", "price REAL", "trial BOOLEAN", "tags TEXT", "started_at TIMESTAMP"])
        XCTAssertEqual(try rows(db, "SELECT event, event_text, app_id, seats, price, trial, tags, started_at, context_page_path FROM application_enabled"),
                       [["application_enabled", "Application Enabled", "a1", "3", "9.5", "1", #"["x"]"#, "2024-03-01 09:00:00.000", "/p"]])
        XCTAssertEqual(try rows(db, "SELECT id, user_id, email, address_city FROM identifies"), [["i1", "u1", "a@example.com", "Oslo"]])
        XCTAssertEqual(try rows(db, "SELECT id, received_at, email, address_city FROM users"), [["u1", "2024-03-01 10:00:00.000", "a@example.com", "Oslo"]])
        XCTAssertEqual(try rows(db, "SELECT name, category, path, anonymous_id FROM pages"), [["Home", "Docs", "/", "an1"]])
        XCTAssertEqual(try rows(db, "SELECT name, from_push FROM screens"), [["Dashboard", "0"]])
        XCTAssertEqual(try rows(db, "SELECT group_id, name, employees FROM groups"), [["987", "Acme", "40"]])
        XCTAssertEqual(try rows(db, "SELECT id, name, employees FROM accounts"), [["987", "Acme", "40"]])
        XCTAssertEqual(try rows(db, "SELECT previous_id, user_id FROM aliases"), [["an1", "u1"]])
        XCTAssertEqual(try rows(db, "SELECT count(*) FROM _message_ids"), [["6"]])
        XCTAssertEqual(try rows(db, "SELECT status, lines, loaded, duplicates, rejected, filtered FROM _files"), [["loaded", "6", "6", "0", "0", "0"]])
        XCTAssertEqual(try rows(db, "SELECT status, files_loaded, lines, loaded FROM _loads"), [["succeeded", "1", "6", "6"]])
        XCTAssertEqual(try scalar(db, "SELECT event_names FROM _schema_tables WHERE table_name = 'application_enabled'"), #"["Application Enabled"]"#)
        XCTAssertEqual(try scalar(db, "PRAGMA integrity_check"), "ok")
    }

    func testRerunningIsANoOpAndACopyElsewhereIsSkipped() throws {
        let text = ndjson([track("m1"), track("m2"), identify("m3", user: "u1", at: "2024-03-01T10:00:00Z", traits: ["plan": "pro"])])
        let file = try write(gzip(text), to: dir.appendingPathComponent("day1.gz"))
        try load([file], into: db)
        let before = try dumpWarehouse(db)
        let again = try load([file], into: db)
        XCTAssertEqual(again.skippedAlreadyLoaded.count, 1)
        XCTAssertEqual(again.totals.lines, 0)
        XCTAssertEqual(try dumpWarehouse(db), before, "nothing changes")

        // The same bytes under another name are the same archive.
        let copy = try write(gzip(text), to: dir.appendingPathComponent("copy/day1-again.gz"))
        XCTAssertEqual(try load([copy], into: db).skippedAlreadyLoaded.map(\.loadedAs), [file.path])

        // Changed content is loaded again; deduplication keeps the result exact.
        let grown = try write(gzip(text + ndjson([track("m4")])), to: dir.appendingPathComponent("day1.gz"))
        let third = try load([grown], into: db)
        XCTAssertEqual(third.totals.loaded, 1)
        XCTAssertEqual(third.totals.duplicates, 3)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), "3")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM application_enabled"), "3")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _loads"), "4")
    }

    func testTheWinningCopyIsTheEarliestReceivedWhateverTheFileOrder() throws {
        // "b.gz" sorts after "a.gz" but holds the earlier copy.
        try write(gzip(ndjson([track("dup", received: "2024-03-02T00:00:00.000Z", properties: ["copy": "late"])])),
                  to: dir.appendingPathComponent("a.gz"))
        try write(gzip(ndjson([track("dup", received: "2024-03-01T00:00:00.000Z", properties: ["copy": "early"]),
                               track("other", properties: ["copy": "x"])])), to: dir.appendingPathComponent("b.gz"))
        let summary = try load([dir], into: db)
        XCTAssertEqual(summary.totals.duplicates, 1)
        XCTAssertEqual(try rows(db, "SELECT id, copy FROM application_enabled ORDER BY id"), [["dup", "early"], ["other", "x"]])
        XCTAssertEqual(try rows(db, "SELECT path, loaded, duplicates FROM _files ORDER BY path").map { [URL(fileURLWithPath: $0[0]).lastPathComponent, $0[1], $0[2]] },
                       [["a.gz", "0", "1"], ["b.gz", "2", "0"]])
        // Same received_at: the earlier path wins.
        let db2 = dir.appendingPathComponent("second.sqlite")
        let tie = try temporaryDirectory(self)
        try write(gzip(ndjson([track("dup", properties: ["copy": "from-a"])])), to: tie.appendingPathComponent("a.gz"))
        try write(gzip(ndjson([track("dup", properties: ["copy": "from-b"])])), to: tie.appendingPathComponent("b.gz"))
        try load([tie.appendingPathComponent("b.gz"), tie.appendingPathComponent("a.gz")], into: db2)
        XCTAssertEqual(try rows(db2, "SELECT copy FROM application_enabled"), [["from-a"]])
    }

    func testDuplicatesAcrossRunsAndTablesAreLoadedOnce() throws {
        try load([try write(gzip(ndjson([track("same-id")])), to: dir.appendingPathComponent("one.gz"))], into: db)
        let page: [String: Any] = ["type": "page", "messageId": "same-id", "userId": "u", "receivedAt": "2024-03-01T00:00:00Z"]
        let second = try load([try write(gzip(ndjson([page])), to: dir.appendingPathComponent("two.gz"))], into: db)
        XCTAssertEqual(second.totals.duplicates, 1)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = 'pages'"), "0")
    }

    func testJobsOneAndEightGiveTheSameWarehouse() throws {
        var files: [URL] = []
        for f in 0..<6 {
            var messages: [[String: Any]] = []
            for i in 0..<150 {
                let n = f * 150 + i
                let id = "m\(n % 700)"  // ids repeat across files
                let received = "2024-03-0\(1 + (n * 7) % 9)T\(10 + n % 10):00:00.000Z"
                switch n % 5 {
                case 0: messages.append(identify(id, user: "u\(n % 13)", at: received, traits: ["n": n, "plan": n % 2 == 0 ? "free" : "pro"]))
                case 1: messages.append(["type": "group", "messageId": id, "userId": "u", "groupId": "g\(n % 4)", "traits": ["size": n], "receivedAt": received])
                default: messages.append(track(id, event: "Event \(n % 4)", received: received, properties: ["v\(n % 9)": n, "mixed": n % 3 == 0 ? "text" : n]))
                }
            }
            files.append(try write(gzip(ndjson(messages)), to: dir.appendingPathComponent("in/file-\(f).gz")))
        }
        let one = dir.appendingPathComponent("one.sqlite")
        let eight = dir.appendingPathComponent("eight.sqlite")
        let a = try load([dir.appendingPathComponent("in")], into: one, jobs: 1)
        let b = try load(files.reversed(), into: eight, jobs: 8)
        XCTAssertEqual(a.totals, b.totals)
        XCTAssertGreaterThan(a.totals.duplicates, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: one.path + ".run-ids"), "the run's id files are removed")
        XCTAssertEqual(try dumpWarehouse(one), try dumpWarehouse(eight))
        XCTAssertEqual(try scalar(one, "SELECT type FROM _schema_columns WHERE table_name = 'event_2' AND column_name = 'mixed'"), "TEXT",
                       "the widest type among all values of the run")
    }

    func testBackfillingAnOlderArchiveNeverOverwritesNewerTraits() throws {
        let newer = try write(gzip(ndjson([
            identify("n1", user: "u1", at: "2024-06-01T00:00:00Z", traits: ["plan": "enterprise", "email": "new@example.com"]),
        ])), to: dir.appendingPathComponent("2024-06.gz"))
        let older = try write(gzip(ndjson([
            identify("o1", user: "u1", at: "2024-01-01T00:00:00Z", traits: ["plan": "free", "email": "old@example.com", "company": "Initech"]),
            identify("o2", user: "u1", at: "2024-02-01T00:00:00Z", traits: ["plan": NSNull(), "phone": "555"]),
        ])), to: dir.appendingPathComponent("2024-01.gz"))
        try load([newer], into: db)
        try load([older], into: db)
        let expected = [["u1", "2024-06-01 00:00:00.000", "enterprise", "new@example.com", "Initech", "555"]]
        XCTAssertEqual(try rows(db, "SELECT id, received_at, plan, email, company, phone FROM users"), expected)

        let together = dir.appendingPathComponent("together.sqlite")
        try load([older, newer], into: together)
        XCTAssertEqual(try rows(together, "SELECT id, received_at, plan, email, company, phone FROM users"), expected)
    }

    func testTruncatedGzipLoadsCompleteLinesAndRejectsTheTornOne() throws {
        let messages = (0..<300).map { track("t\($0)", properties: ["n": $0, "pad": String(repeating: "p", count: $0 % 50)]) }
        let whole = gzip(ndjson(messages))
        let file = try write(Array(whole[0..<(whole.count / 2)]), to: dir.appendingPathComponent("truncated.ndjson.gz"))
        let summary = try load([file], into: db)
        XCTAssertEqual(summary.filesPartial, 1)
        let file0 = try rows(db, "SELECT status, lines, loaded, rejected, error FROM _files")[0]
        XCTAssertEqual(file0[0], "partial")
        XCTAssertEqual(Int(file0[1]), Int(file0[2])! + 1)
        XCTAssertEqual(file0[3], "1")
        XCTAssertTrue(file0[4].contains("truncated"))
        let reject = try rows(db, "SELECT line, reason FROM _rejects")[0]
        XCTAssertEqual(Int(reject[0]), Int(file0[1]), "the torn line is the last one")
        XCTAssertTrue(reject[1].hasPrefix("torn line"))
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM application_enabled"), file0[2])
        XCTAssertEqual(try scalar(db, "SELECT status FROM _loads"), "partial")
    }

    func testSchemaEvolutionAcrossRunsDiscardsWhatDoesNotFit() throws {
        try load([try write(gzip(ndjson([track("a", properties: ["seats": 3])])), to: dir.appendingPathComponent("1.gz"))], into: db)
        let second = try load([try write(gzip(ndjson([
            track("b", properties: ["seats": 1.5, "newKey": "hello"]),
            track("c", properties: ["seats": 4.0, "other": true]),
            track("d", event: "Brand New", properties: ["x": 1]),
        ])), to: dir.appendingPathComponent("2.gz"))], into: db)
        XCTAssertEqual(second.newColumns, 2 + 1, "new_key and other in application_enabled; brand_new: x (common and Spec columns come with the table)")
        XCTAssertEqual(second.newTables, ["brand_new"])
        XCTAssertEqual(try rows(db, "SELECT id, seats, new_key, other FROM application_enabled ORDER BY id"),
                       [["a", "3", "NULL", "NULL"], ["b", "NULL", "hello", "NULL"], ["c", "4", "NULL", "1"]])
        XCTAssertEqual(try rows(db, "SELECT table_name, column_name, value, reason LIKE '%does not fit a INTEGER column%', row_id, message_id FROM _discards"),
                       [["application_enabled", "seats", "1.5", "1", "2", "b"]])
        XCTAssertEqual(try scalar(db, "SELECT discarded FROM _files WHERE path LIKE '%2.gz'"), "1")
        XCTAssertEqual(try scalar(db, "SELECT type FROM _schema_columns WHERE column_name = 'seats'"), "INTEGER")
    }

    func testCollisionsAndRenamesAreRecordedInTheCatalog() throws {
        try load([try write(gzip(ndjson([
            track("a", properties: ["orderId": "o1", "user_id": "someone-else"]),
            track("b", properties: ["order_id": "o2"]),
            track("c", properties: ["Order Id": "o3"]),
            track("d", properties: ["orderNo": 1, "order_no": 2]),
        ])), to: dir.appendingPathComponent("collide.gz"))], into: db)
        XCTAssertEqual(try rows(db, "SELECT source_keys FROM _schema_columns WHERE column_name = 'order_no'"),
                       [[#"["properties.orderNo","properties.order_no"]"#]], "keys of one message that collide are listed too")
        XCTAssertEqual(try rows(db, "SELECT column_name, row_id, message_id FROM _discards"), [["order_no", "4", "d"]])
        XCTAssertEqual(try rows(db, "SELECT source_keys FROM _schema_columns WHERE table_name = 'application_enabled' AND column_name = 'order_id'"),
                       [[#"["properties.Order Id","properties.orderId","properties.order_id"]"#]])
        XCTAssertEqual(try rows(db, "SELECT source_keys, note FROM _schema_columns WHERE column_name = '_user_id'"),
                       [[#"["properties.user_id"]"#, "renamed: user_id is a common column of this table"]])
        XCTAssertEqual(try rows(db, "SELECT id, order_id, _user_id, user_id FROM application_enabled ORDER BY id"),
                       [["a", "o1", "someone-else", "u1"], ["b", "o2", "NULL", "u1"], ["c", "o3", "NULL", "u1"], ["d", "NULL", "NULL", "u1"]])
    }

    func testRejectsBatchesFiltersAndNonArchivesAreAccountedFor() throws {
        let b1: [String: Any] = ["type": "track", "event": "Batched", "messageId": "b1", "userId": "u", "context": ["ip": "9.9.9.9"]]
        let batch = jsonLine(["batch": [b1, ["type": "delete", "userId": "u"], track("b3", extra: ["integrations": ["Warehouses": ["all": false]]])],
                              "context": ["library": ["name": "analytics-go"]], "sentAt": "2024-03-01T00:00:00Z"])
        let text = ndjson([track("x1")]) + "{not json}\n" + batch + "\n" + "[1,2,3]\n"
        try write(text, to: dir.appendingPathComponent("mixed.ndjson"))
        try write("Segment S3 test upload\n", to: dir.appendingPathComponent("dummy-object.txt"))
        let summary = try load([dir], into: db) { $0.skipOptedOut = true }
        XCTAssertEqual(summary.notArchives.map { URL(fileURLWithPath: $0.path).lastPathComponent }, ["dummy-object.txt"])
        XCTAssertEqual(summary.totals.lines, 6)
        XCTAssertEqual(summary.totals.loaded, 2)
        XCTAssertEqual(summary.totals.rejected, 3)
        XCTAssertEqual(summary.totals.filtered, 1)
        XCTAssertEqual(try rows(db, "SELECT line, item, reason FROM _rejects ORDER BY line, item"), [
            ["2", "NULL", "invalid JSON at byte 2: expected a member name in double quotes, found 'n'"],
            ["3", "2", "batch item 2: unsupported type \"delete\": only track, identify, page, screen, group and alias are loaded"],
            ["4", "NULL", "a message must be a JSON object, not an array"],
        ])
        XCTAssertEqual(try scalar(db, "SELECT raw FROM _rejects WHERE line = 2"), "{not json}")
        XCTAssertEqual(try rows(db, "SELECT lines, loaded, duplicates, rejected, filtered, physical_lines FROM _files"), [["6", "2", "0", "3", "1", "4"]])
        XCTAssertEqual(try scalar(db, "SELECT context_library_name FROM tracks WHERE id = 'b1'"), "analytics-go", "batch context merged")
        XCTAssertTrue(summary.render().contains("mixed.ndjson:2: invalid JSON at byte 2"))
    }

    func testColumnLimitSendsNewKeysToExtra() throws {
        let summary = try load([try write(gzip(ndjson([
            track("a", properties: ["k1": 1, "k2": 2]),
            track("b", properties: ["k3": 3, "ключ": "v"]),
        ])), to: dir.appendingPathComponent("wide.gz"))], into: db) { $0.columnLimit = 2 }
        XCTAssertEqual(summary.overflowValues, 1)
        XCTAssertTrue(summary.render().contains("overflow:   1 value went to _extra: their table is at the column limit"))
        // k1, k2 fill the limit of 2 data columns (the Spec's columns do not count).
        XCTAssertEqual(try rows(db, "SELECT id, k1, k2, _extra FROM application_enabled ORDER BY id"),
                       [["a", "1", "2", "NULL"], ["b", "NULL", "NULL", #"{"ключ":"v","k3":3}"#]])
    }

    func testARefusedDatabaseIsLeftAlone() throws {
        let other = dir.appendingPathComponent("app.sqlite")
        let database = try Database(path: other.path)
        try database.execute("CREATE TABLE customers (id INTEGER)")
        let file = try write(gzip(ndjson([track("a")])), to: dir.appendingPathComponent("a.gz"))
        XCTAssertThrowsError(try load([file], into: other)) { error in
            XCTAssertTrue("\(error)".contains("not a segment-loader warehouse"))
        }
        XCTAssertEqual(try rows(other, "SELECT name FROM sqlite_master"), [["customers"]])
    }
}
