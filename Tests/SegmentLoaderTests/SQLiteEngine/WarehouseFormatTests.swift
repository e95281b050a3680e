import XCTest
@testable import SegmentLoader
@testable import YAMLFiles
@testable import SegmentCore
@testable import SegmentStages
@testable import SegmentWarehouse
@testable import SQLiteEngine

/// Warehouse format 3: what an analyst meets first (timestamps that compare with SQLite's own,
/// Spec columns from the start, column order, reserved names), the bookkeeping that reads well,
/// and the upgrade of a real format-2 file.
final class WarehouseFormatTests: XCTestCase {
    var dir: URL!
    var db: URL!

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
        db = dir.appendingPathComponent("w.sqlite")
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    // MARK: Timestamps

    /// Four events around 12:00:00 on one day, and the rows each comparison must return.
    func testBoundaryQueriesAgainstSQLiteDateFunctionsReturnExactlyTheRightRows() throws {
        let times = ["2024-03-05T11:59:59.999Z", "2024-03-05T12:00:00.000Z", "2024-03-05T12:00:00.001Z", "2024-03-05T13:00:00+01:00",
                     "2024-03-05T12:00:01Z", "2024-03-04T23:00:00-01:00"]
        let lines = times.enumerated().map { i, t in
            #"{"type":"track","messageId":"m\#(i)","userId":"u","event":"Tick","timestamp":"\#(t)","originalTimestamp":"\#(t)","receivedAt":"\#(t)"}"#
        }
        _ = try load([try write(lines.joined(separator: "\n") + "\n", to: dir.appendingPathComponent("t.ndjson"))], into: db)
        func ids(_ condition: String) throws -> [String] {
            try rows(db, "SELECT id FROM tick WHERE \(condition) ORDER BY id").map { $0[0] }
        }
        // m3 (13:00 at +01:00) is the same instant as m1; m5 (23:00 the day before at -01:00) is midnight UTC.
        XCTAssertEqual(try rows(db, "SELECT id, timestamp FROM tick ORDER BY id"), [
            ["m0", "2024-03-05 11:59:59.999"], ["m1", "2024-03-05 12:00:00.000"], ["m2", "2024-03-05 12:00:00.001"],
            ["m3", "2024-03-05 12:00:00.000"], ["m4", "2024-03-05 12:00:01.000"], ["m5", "2024-03-05 00:00:00.000"],
        ])
        let exact = "strftime('%Y-%m-%d %H:%M:%f', '2024-03-05 12:00:00')"
        XCTAssertEqual(try ids("timestamp >= \(exact)"), ["m1", "m2", "m3", "m4"])
        XCTAssertEqual(try ids("timestamp > \(exact)"), ["m2", "m4"])
        XCTAssertEqual(try ids("timestamp <= \(exact)"), ["m0", "m1", "m3", "m5"])
        XCTAssertEqual(try ids("timestamp < \(exact)"), ["m0", "m5"])
        // datetime() has no milliseconds: `>=` and `<` are exact; `>` and `<=` differ only for
        // values exactly on the whole second (m1, m3), which compare greater (docs/warehouse.md).
        let whole = "datetime('2024-03-05 12:00:00')"
        XCTAssertEqual(try ids("timestamp >= \(whole)"), ["m1", "m2", "m3", "m4"])
        XCTAssertEqual(try ids("timestamp < \(whole)"), ["m0", "m5"])
        XCTAssertEqual(try ids("timestamp > \(whole)"), ["m1", "m2", "m3", "m4"])
        XCTAssertEqual(try ids("timestamp <= \(whole)"), ["m0", "m5"])
        // Literals, days and SQLite's own arithmetic.
        XCTAssertEqual(try ids("timestamp >= '2024-03-05 12:00:00'"), ["m1", "m2", "m3", "m4"])
        XCTAssertEqual(try ids("date(timestamp) = '2024-03-05'"), ["m0", "m1", "m2", "m3", "m4", "m5"])
        XCTAssertEqual(try ids("timestamp < '2024-03-05'"), [])
        XCTAssertEqual(try ids("timestamp >= datetime('2024-03-05 13:00:00', '-1 hour')"), ["m1", "m2", "m3", "m4"])
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tick WHERE timestamp != strftime('%Y-%m-%d %H:%M:%f', timestamp)"), "0",
                       "every stored value is already SQLite's canonical text")
        // Bookkeeping times take the same form.
        for sql in ["SELECT started_at FROM _loads", "SELECT finished_at FROM _loads", "SELECT loaded_at FROM _files"] {
            let value = try scalar(db, sql)
            XCTAssertEqual(try scalar(db, "SELECT strftime('%Y-%m-%d %H:%M:%f', '\(value)')"), value, sql)
        }
    }

    // MARK: Spec columns and order

    func testSpecColumnsExistWhenNoMessageCarriedThem() throws {
        let lines = [
            #"{"type":"page","messageId":"p1","anonymousId":"a1","name":"Home","receivedAt":"2024-03-05T10:00:00Z"}"#,
            #"{"type":"screen","messageId":"s1","anonymousId":"a1","name":"Feed","receivedAt":"2024-03-05T10:00:00Z"}"#,
            #"{"type":"track","messageId":"t1","anonymousId":"a1","event":"Signed Up","receivedAt":"2024-03-05T10:00:00Z"}"#,
            #"{"type":"identify","messageId":"i1","userId":"u1","receivedAt":"2024-03-05T10:00:00Z"}"#,
            #"{"type":"group","messageId":"g1","userId":"u1","groupId":"g","receivedAt":"2024-03-05T10:00:00Z"}"#,
            #"{"type":"alias","messageId":"al1","userId":"u1","previousId":"a1","receivedAt":"2024-03-05T10:00:00Z"}"#,
        ]
        _ = try load([try write(lines.joined(separator: "\n") + "\n", to: dir.appendingPathComponent("bare.ndjson"))], into: db)
        for table in ["tracks", "signed_up", "pages", "screens", "identifies", "groups", "aliases"] {
            let columns = try rows(db, "SELECT name, type FROM pragma_table_info('\(table)')")
            for spec in specContextColumns {
                XCTAssertTrue(columns.contains([spec, "TEXT"]), "\(table) lacks \(spec)")
            }
        }
        for table in ["pages", "screens"] {
            let columns = try rows(db, "SELECT name FROM pragma_table_info('\(table)')").map { $0[0] }
            for spec in ["name", "category", "path", "referrer", "search", "title", "url"] {
                XCTAssertTrue(columns.contains(spec), "\(table) lacks \(spec)")
            }
        }
        // The query every dashboard runs works, with NULLs where nothing was sent.
        XCTAssertEqual(try rows(db, """
            SELECT id, coalesce(url, context_page_url), context_campaign_source, context_campaign_medium, context_user_agent, referrer
            FROM pages
            """), [["p1", "NULL", "NULL", "NULL", "NULL", "NULL"]])
        XCTAssertEqual(try rows(db, "SELECT origin, note, source_keys FROM _schema_columns WHERE table_name = 'pages' AND column_name = 'url'"),
                       [["property", Catalog.specNote, "[]"]])
        // Spec columns are not counted as columns the data added.
        XCTAssertEqual(try scalar(db, "SELECT columns_created FROM _loads"), "0")
    }

    func testASpecColumnTakesTheTypeItsValuesDecideAndKeepsItsSourceKeys() throws {
        let lines = [
            #"{"type":"page","messageId":"p1","anonymousId":"a1","properties":{"url":"https://x.example/a","search":12},"context":{"page":{"url":"https://x.example/a"}},"receivedAt":"2024-03-05T10:00:00Z"}"#,
        ]
        _ = try load([try write(lines.joined(separator: "\n") + "\n", to: dir.appendingPathComponent("p.ndjson"))], into: db)
        XCTAssertEqual(try rows(db, "SELECT name, type FROM pragma_table_info('pages') WHERE name IN ('url', 'search', 'context_page_url') ORDER BY name"),
                       [["context_page_url", "TEXT"], ["search", "INTEGER"], ["url", "TEXT"]])
        XCTAssertEqual(try rows(db, "SELECT column_name, source_keys FROM _schema_columns WHERE table_name = 'pages' AND column_name IN ('url', 'context_page_url') ORDER BY 1"),
                       [["context_page_url", #"["context.page.url"]"#], ["url", #"["properties.url"]"#]])
    }

    func testANewTablesColumnsAreCommonThenPropertiesThenContext() throws {
        let line = #"{"type":"track","messageId":"t1","userId":"u1","event":"Order Completed","context":{"os":{"name":"iOS"},"ip":"192.0.2.1"},"#
            + #""properties":{"total":12.5,"currency":"EUR","items":[1]},"receivedAt":"2024-03-05T10:00:00Z","zzz":1}"#
        _ = try load([try write(line + "\n", to: dir.appendingPathComponent("o.ndjson"))], into: db)
        let columns = try rows(db, "SELECT name FROM pragma_table_info('order_completed')").map { $0[0] }
        XCTAssertEqual(columns, ["id", "anonymous_id", "user_id", "received_at", "sent_at", "original_timestamp", "timestamp", "uuid_ts",
                                 "event", "event_text", "total", "currency", "items", "_extra"] + specContextColumns + ["context_os_name"])
    }

    // MARK: Names

    func testEventsNamedLikeModelTablesGetAPrefix() throws {
        let events = ["sessions", "Sessions", "Page Views", "identities", "_models"]
        let lines = events.enumerated().map { i, e in
            #"{"type":"track","messageId":"e\#(i)","userId":"u","event":"\#(e)","receivedAt":"2024-03-05T10:00:00Z"}"#
        }
        _ = try load([try write(lines.joined(separator: "\n") + "\n", to: dir.appendingPathComponent("n.ndjson"))], into: db)
        XCTAssertEqual(try rows(db, "SELECT table_name, event_names FROM _schema_tables WHERE call_type = 'track' AND table_name != 'tracks' ORDER BY 1"), [
            ["__models", #"["_models"]"#], ["_identities", #"["identities"]"#], ["_page_views", #"["Page Views"]"#],
            ["_sessions", #"["Sessions","sessions"]"#],
        ])
        // The names stay the models' own: the tables of those names are the models'.
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _schema_tables WHERE table_name IN ('sessions', 'page_views', 'identities', '_models')"), "0")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM pragma_table_info('sessions') WHERE name = 'session_id'"), "1")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM pragma_table_info('page_views') WHERE name = 'blended_user_id'"), "1")
    }

    // MARK: Rejects by kind

    func testRejectKindsAndARetryThatNeverLoadsACorruptMemberLine() throws {
        let corrupt = dir.appendingPathComponent("gz-corrupt-middle.ndjson.gz")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("hostile/gz-corrupt-middle.ndjson.gz"), to: corrupt)
        let other = try write("""
            {"type":"track","messageId":"k1","userId":"u","event":"Ok","receivedAt":"2024-03-05T10:00:00Z"}
            {"type":"torn","messageId":"k2","userId":"u","event":"Fixed Later","receivedAt":"2024-03-05T10:00:00Z"}
            {not json

            """, to: dir.appendingPathComponent("other.ndjson"))
        _ = try load([corrupt, other], into: db)
        let kinds = Dictionary(uniqueKeysWithValues: try rows(db, "SELECT kind, count(*) FROM _rejects GROUP BY kind").map { ($0[0], Int($0[1])!) })
        XCTAssertEqual(kinds["spec"], 1)
        XCTAssertEqual(kinds["json"], 1)
        XCTAssertEqual(kinds["torn"], 1, "the corrupt stream ends in the middle of a line")
        XCTAssertGreaterThan(kinds["corrupt_member"] ?? 0, 100)
        XCTAssertEqual(try scalar(db, "SELECT reason FROM _rejects WHERE kind = 'spec'"),
                       #"unsupported type "torn": only track, identify, page, screen, group and alias are loaded"#)
        // Lines zlib made from damaged data that still parse as messages: a retry must not load them.
        var parsing = 0
        for raw in try rows(db, "SELECT raw FROM _rejects WHERE kind = 'corrupt_member'").map({ $0[0] }) {
            if case .object? = try? JSONParser.parse(raw) { parsing += 1 }
        }
        XCTAssertGreaterThan(parsing, 100, "the test needs corrupt-member lines that parse")
        let before = try rows(db, "SELECT count(*) FROM tracks")

        // Fix the message of type "torn" by hand, as a person would, and retry.
        let database = try Database(path: db.path)
        try database.execute(#"UPDATE _rejects SET raw = replace(raw, '"type":"torn"', '"type":"track"') WHERE kind = 'spec'"#)
        let outcome = try RejectRetry.run(options: LoadOptions(database: db.path))
        XCTAssertEqual(outcome.resolved, 1, "only the repaired line loads")
        XCTAssertEqual(outcome.messagesLoaded, 1)
        XCTAssertEqual(try rows(db, "SELECT event_text FROM tracks WHERE id = 'k2'"), [["Fixed Later"]])
        XCTAssertEqual(try rows(db, "SELECT count(*) FROM tracks"), [[String(Int(before[0][0])! + 1)]])
        let after = Dictionary(uniqueKeysWithValues: try rows(db, "SELECT kind, count(*) FROM _rejects GROUP BY kind").map { ($0[0], Int($0[1])!) })
        XCTAssertEqual(after["corrupt_member"], kinds["corrupt_member"], "every corrupt-member line is still a reject")
        XCTAssertEqual(after["torn"], 1)
        XCTAssertEqual(after["json"], 1)
        XCTAssertNil(after["spec"])
    }

    func testFormat2ReasonsMapToKinds() {
        XCTAssertEqual(RejectKind.derived(fromFormat2Reason: "from a gzip member that is corrupt (corrupt gzip data: x): zlib made this line"), .corruptMember)
        XCTAssertEqual(RejectKind.derived(fromFormat2Reason: "torn line: the gzip stream stopped in the middle of it"), .torn)
        XCTAssertEqual(RejectKind.derived(fromFormat2Reason: "line longer than the limit of 2048 bytes (the raw line is cut to the limit)"), .tooLong)
        XCTAssertEqual(RejectKind.derived(fromFormat2Reason: "invalid JSON at byte 2: expected a value"), .json)
        XCTAssertEqual(RejectKind.derived(fromFormat2Reason: #"unsupported type "torn": only track, identify, page, screen, group and alias are loaded"#), .spec)
        XCTAssertFalse(RejectKind.corruptMember.isRetryable)
        XCTAssertTrue(RejectKind.spec.isRetryable)
    }

    // MARK: The seen-id set

    func testSeenIdsAreKeyedBySixteenBytesOfSHA256() throws {
        _ = try load([try write(gzip(ndjson([track("abc")])), to: dir.appendingPathComponent("a.gz"))], into: db)
        // SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad
        XCTAssertEqual(try rows(db, "SELECT hex(id), typeof(id), table_name FROM _message_ids"),
                       [["BA7816BF8F01CFEA414140DE5DAE2223", "blob", "application_enabled"]])
        XCTAssertEqual(SeenIds.key(of: "abc").count, 16)
        let again = try load([try write(gzip(ndjson([track("abc", received: "2024-03-02T10:00:00.000Z")])), to: dir.appendingPathComponent("b.gz"))], into: db)
        XCTAssertEqual(again.totals.duplicates, 1, "an id already in the warehouse is found by its digest")
    }

    // MARK: Upgrade from format 2

    /// The format-2 file kept in Tests/Fixtures/format2, upgraded by this build, holds the same
    /// rows in every data table as a fresh format-3 load of the same archives.
    func testAFormat2WarehouseUpgradesToWhatAFreshLoadWrites() throws {
        let fixture = Self.fixtures.appendingPathComponent("format2")
        let upgraded = dir.appendingPathComponent("upgraded.sqlite")
        try FileManager.default.copyItem(at: fixture.appendingPathComponent("warehouse.sqlite"), to: upgraded)
        XCTAssertEqual(try scalar(upgraded, "PRAGMA user_version"), "2")
        let archives = dir.appendingPathComponent("archives")
        try FileManager.default.copyItem(at: fixture.appendingPathComponent("archives"), to: archives)

        let status = try runSegmentLoader(["status", "--db", upgraded.path])
        XCTAssertTrue(status.stdout.contains("(format 2,") && status.stdout.contains("the next run or load upgrades it"), status.stdout)

        // The next load upgrades it (here a load of nothing new).
        let nothing = dir.appendingPathComponent("nothing")
        try FileManager.default.createDirectory(at: nothing, withIntermediateDirectories: true)
        let result = try runSegmentLoader(["load", "--db", upgraded.path, nothing.path])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stderr.contains("upgrading \(upgraded.path) from warehouse format 2 to 4 in one transaction"), result.stderr)
        XCTAssertTrue(result.stdout.contains("upgraded:   the warehouse from format 2 to 4"), result.stdout)
        XCTAssertEqual(try scalar(upgraded, "PRAGMA user_version"), "4")
        XCTAssertEqual(try scalar(upgraded, "PRAGMA integrity_check"), "ok")
        XCTAssertTrue(try runSegmentLoader(["status", "--db", upgraded.path]).stdout.contains("(format 4,"))

        let fresh = dir.appendingPathComponent("fresh.sqlite")
        _ = try load([archives], into: fresh) { $0.maxLineBytes = 2048 }

        // Every data table: the same columns (by name, with their types) and the same rows.
        let tables = try rows(fresh, "SELECT table_name, call_type, event_names FROM _schema_tables ORDER BY 1")
        XCTAssertEqual(try rows(upgraded, "SELECT table_name, call_type, event_names FROM _schema_tables ORDER BY 1"), tables)
        XCTAssertTrue(tables.contains { $0[0] == "_sessions" } && tables.contains { $0[0] == "__models" })
        XCTAssertGreaterThan(tables.count, 20)
        for table in tables.map({ $0[0] }) {
            let columns = try rows(fresh, "SELECT name, type FROM pragma_table_info('\(table)') WHERE name != 'uuid_ts' ORDER BY name")
            XCTAssertEqual(try rows(upgraded, "SELECT name, type FROM pragma_table_info('\(table)') WHERE name != 'uuid_ts' ORDER BY name"), columns, table)
            let list = columns.map { quoteIdentifier($0[0]) }.joined(separator: ", ")
            let sql = "SELECT \(list) FROM \(quoteIdentifier(table)) ORDER BY \(list)"
            XCTAssertEqual(try rows(upgraded, sql), try rows(fresh, sql), table)
        }
        // The catalog, the discards, the rejects and the seen ids say the same.
        for sql in [
            // (`note` says whether a Spec column came with its table, which differs by history.)
            "SELECT table_name, column_name, type, source_keys, origin FROM _schema_columns ORDER BY 1, 2",
            "SELECT table_name, column_name, message_id, value, reason, received_at FROM _discards ORDER BY message_id, column_name",
            "SELECT replace(file, rtrim(file, replace(file, '/', '')), ''), line, item, kind, reason, raw FROM _rejects ORDER BY 1, 2, 3",
            "SELECT hex(id), table_name FROM _message_ids ORDER BY 1",
        ] {
            XCTAssertEqual(try rows(upgraded, sql), try rows(fresh, sql), sql)
        }
        XCTAssertEqual(try rows(upgraded, "SELECT kind, count(*) FROM _rejects GROUP BY 1 ORDER BY 1"),
                       [["corrupt_member", "389"], ["json", "1"], ["spec", "2"], ["too_long", "1"], ["torn", "2"]])
        // Bookkeeping times were rewritten too, and the query indexes exist under the new names.
        XCTAssertEqual(try scalar(upgraded, "SELECT count(*) FROM _loads WHERE started_at LIKE '%T%' OR finished_at LIKE '%Z'"), "0")
        XCTAssertEqual(try scalar(upgraded, "SELECT count(*) FROM _files WHERE loaded_at LIKE '%T%'"), "0")
        XCTAssertEqual(try scalar(upgraded, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '_idx__sessions_received_at'"), "1")
        XCTAssertEqual(try scalar(upgraded, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '\\_idx\\_sessions\\_%' ESCAPE '\\'"), "0")
    }

    /// An upgrade that cannot finish changes nothing: here an event table that must become
    /// `_sessions` meets a table of that name halfway through.
    func testAnUpgradeThatFailsHalfwayLeavesTheWarehouseAsItWas() throws {
        let upgraded = dir.appendingPathComponent("w2.sqlite")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("format2/warehouse.sqlite"), to: upgraded)
        try Database(path: upgraded.path).execute("CREATE TABLE _sessions (note TEXT); PRAGMA wal_checkpoint(TRUNCATE)")
        let before = try Data(contentsOf: upgraded)
        let nothing = dir.appendingPathComponent("nothing")
        try FileManager.default.createDirectory(at: nothing, withIntermediateDirectories: true)
        let result = try runSegmentLoader(["load", "--db", upgraded.path, nothing.path])
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertTrue(result.stderr.contains("cannot upgrade: the event table sessions must be renamed _sessions"), result.stderr)
        try Database(path: upgraded.path).execute("PRAGMA wal_checkpoint(TRUNCATE)")
        XCTAssertEqual(try Data(contentsOf: upgraded), before, "the upgrade rolled back whole")
        XCTAssertEqual(try scalar(upgraded, "PRAGMA user_version"), "2")
        XCTAssertEqual(try scalar(upgraded, "SELECT count(*) FROM pragma_table_info('_schema_columns') WHERE name = 'table'"), "1")
    }

    func testAnUpgradeNeedsRoomForAboutTheWarehousesSize() throws {
        let upgraded = dir.appendingPathComponent("w3.sqlite")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("format2/warehouse.sqlite"), to: upgraded)
        XCTAssertThrowsError(try WarehouseUpgrade.checkFreeSpace(for: upgraded.path, available: 1 << 20)) { error in
            let refused = error as? WarehouseError
            XCTAssertEqual(refused?.storage, true)
            XCTAssertTrue(refused?.message.contains("needs about") == true, "\(error)")
            XCTAssertTrue(refused?.message.contains("Nothing was changed") == true, "\(error)")
        }
        XCTAssertNoThrow(try WarehouseUpgrade.checkFreeSpace(for: upgraded.path, available: 1 << 30))
    }

    // MARK: Datasette metadata

    func testDatasetteMetadataHidesBookkeepingTitlesEventsAndDescribesColumns() throws {
        let line = #"{"type":"track","messageId":"t1","userId":"u1","event":"Order Completed","properties":{"orderId":"o1","order_id":"o2"},"receivedAt":"2024-03-05T10:00:00Z"}"#
        let identify = #"{"type":"identify","messageId":"i1","userId":"u1","traits":{"email":"a@example.com","firstName":"Ada"},"receivedAt":"2024-03-05T10:00:00Z"}"#
        _ = try load([try write(line + "\n" + identify + "\n", to: dir.appendingPathComponent("o.ndjson"))], into: db)
        let text = try DatasetteMetadata.render(database: db.path, format: .json)
        guard case .object(let top)? = try? JSONParser.parse(text), let databases = top.first(where: { $0.key == "databases" })?.value,
              case .object(let named) = databases, named.first?.key == "w", case .object(let database) = named[0].value,
              case .object(let tables)? = database.first(where: { $0.key == "tables" })?.value else {
            return XCTFail("unexpected shape:\n\(text)")
        }
        func table(_ name: String) -> JSONValue? { tables.first { $0.key == name }?.value }
        for hidden in ["_loads", "_files", "_rejects", "_discards", "_schema_tables", "_schema_columns", "_message_ids", "_models", "_model_pending", "_model_aliases"] + Rollups.tables {
            XCTAssertEqual(table(hidden)?["hidden"], .bool(true), hidden)
        }
        XCTAssertEqual(table("order_completed")?["title"], .string("Order Completed"))
        XCTAssertEqual(table("order_completed")?["sort_desc"], .string("timestamp"))
        XCTAssertEqual(table("users")?["sort_desc"], .string("received_at"))
        XCTAssertEqual(table("order_completed")?["columns"]?["order_id"], .string("properties.orderId, properties.order_id (these keys share this column)"))
        XCTAssertEqual(table("identifies")?["columns"]?["first_name"], .string("traits.firstName"))
        XCTAssertNil(table("identifies")?["columns"]?["email"], "traits.email: the name says it all")
        XCTAssertEqual(table("tracks")?["columns"]?["timestamp"], .string("timestamp: the event time corrected for the client's clock skew, UTC"))
        XCTAssertEqual(table("users")?["columns"]?["id"], .string("userId: one row each"))
        XCTAssertNil(table("tracks")?["columns"]?["context_campaign_source"], "a Spec column no value reached: its name says it all")
        XCTAssertNil(table("tracks")?["columns"]?["user_id"])
        // The models are described and sorted newest first.
        XCTAssertEqual(table("sessions")?["sort_desc"], .string("started_at"))
        XCTAssertEqual(table("identities")?["sort_desc"], .string("last_linked_at"))
        XCTAssertNotNil(table("page_views")?["columns"]?["blended_user_id"])
        // YAML says the same.
        let yaml = try DatasetteMetadata.render(database: db.path, format: .yaml)
        XCTAssertTrue(yaml.contains("order_completed:\n        title: Order Completed\n"), yaml)
        XCTAssertTrue(yaml.contains("      _loads:\n        hidden: true\n"), yaml)
    }
}
