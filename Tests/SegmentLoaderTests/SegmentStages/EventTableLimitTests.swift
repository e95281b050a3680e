import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentStages
@testable import SegmentWarehouse
@testable import SQLiteEngine

/// Any number of distinct event names loads in bounded time and memory with nothing
/// lost. A warehouse makes at most `event_table_limit` event tables; the calls of the events
/// past it are rows of `tracks` with their properties in `_extra`, named in `_events_past_limit`,
/// and reported by the run, its report and `status`. Which events get the tables is decided
/// over the whole run, so the order of the archives does not change it.
final class EventTableLimitTests: XCTestCase {
    var dir: URL!
    var db: URL!

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
        db = dir.appendingPathComponent("w.sqlite")
    }

    /// `count` track calls, call i named "Viewed Product <first + i>" (a product id inside the
    /// event name) with the id and a price as properties.
    func products(_ count: Int, from first: Int = 0, idPrefix: String = "m") -> [[String: Any]] {
        (0..<count).map { i in
            let n = first + i
            return track("\(idPrefix)\(n)", event: "Viewed Product \(10_000 + n)", user: "u\(n % 50)",
                         received: "2024-03-01T10:00:00.000Z", properties: ["product_id": n, "price": Double(n) / 100 + 0.5])
        }
    }

    func eventTables(_ db: URL) throws -> [String] {
        try rows(db, "SELECT table_name FROM _schema_tables WHERE call_type = 'track' AND table_name != 'tracks' ORDER BY 1").map { $0[0] }
    }

    /// The case: one archive of 20,000 track calls, each with its own event name.
    func testTwentyThousandEventNamesInOneArchiveMakeAtMostTheLimitOfTablesAndLoseNothing() throws {
        let file = try write(gzip(ndjson(products(20_000))), to: dir.appendingPathComponent("products.ndjson.gz"))
        let summary = try load([file], into: db) { $0.models.enabled = false }

        XCTAssertEqual(summary.totals.loaded, 20_000)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), "20000", "every message is in tracks")
        // Every call counts 1: the names decide, so the first 1000 in name order have tables.
        let tables = try eventTables(db)
        XCTAssertEqual(tables.count, EventTableLimit.defaultLimit)
        XCTAssertEqual(tables.first, "viewed_product_10000")
        XCTAssertEqual(tables.last, "viewed_product_10999")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM viewed_product_10999"), "1")
        // The other 19,000: named in _events_past_limit, their rows in tracks with the properties in _extra.
        XCTAssertEqual(try rows(db, "SELECT count(*), sum(calls), min(event), max(event) FROM _events_past_limit"),
                       [["19000", "19000", "viewed_product_11000", "viewed_product_29999"]])
        XCTAssertEqual(try scalar(db, """
            SELECT count(*) FROM tracks t JOIN _events_past_limit p ON p.event_text = t.event_text AND p.event = t.event
            WHERE json_extract(t._extra, '$.product_id') = CAST(substr(t.event_text, 16) AS INTEGER) - 10000
              AND json_extract(t._extra, '$.price') = (CAST(substr(t.event_text, 16) AS INTEGER) - 10000) / 100.0 + 0.5
            """), "19000", "each call past the limit keeps its own properties in tracks._extra")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE _extra IS NOT NULL AND event IN (SELECT table_name FROM _schema_tables)"), "0",
                       "a call whose event has a table has its properties there, not in _extra")
        XCTAssertEqual(summary.overflowValues, 0, "properties of calls past the event limit are not values past a column limit")

        // Reported: the summary, the report, the metrics and status.
        XCTAssertEqual(summary.pastLimitCalls, 19_000)
        XCTAssertEqual(summary.pastLimitNames, 19_000)
        XCTAssertEqual(summary.eventTables, 1000)
        XCTAssertTrue(summary.render().contains("19000 track calls of 19000 event names past the event table limit (1000 of 1000 tables) are in tracks only"),
                      summary.render())
        let json = try JSONParser.parse(summary.report())
        XCTAssertEqual(json["event_tables"]?["count"], .int(1000))
        XCTAssertEqual(json["event_tables"]?["limit"], .int(1000))
        XCTAssertEqual(json["event_tables"]?["events_past_limit"], .int(19_000))
        XCTAssertEqual(json["event_tables"]?["event_names_past_limit"], .int(19_000))
        XCTAssertTrue(summary.prometheus().contains("segment_loader_last_run_events_past_limit{pipeline=\"load\"} 19000"), summary.prometheus())
        let status = try WarehouseStatus.render(database: db.path)
        XCTAssertTrue(status.contains("event tables: 1000; 19000 event names past the event table limit, 19000 track calls in tracks only"), status)

        // A fresh connection reads a schema of about a thousand tables, not twenty thousand.
        XCTAssertLessThan(Int(try scalar(db, "SELECT count(*) FROM sqlite_master"))!, 2 * 1000 + 50)
    }

    /// 20,000 names spread over ten runs: the first run fills the limit, later runs put every new
    /// name in tracks, and an event that has a table keeps taking rows in it.
    func testTwentyThousandEventNamesOverManyRunsStayAtTheLimit() throws {
        var lastSummary = RunSummary()
        for run in 0..<10 {
            let calls = products(2_000, from: run * 2_000)
                + [track("again\(run)", event: "Viewed Product 10000", received: "2024-03-02T10:00:00.000Z", properties: ["product_id": 0])]
            let file = try write(gzip(ndjson(calls)), to: dir.appendingPathComponent("run\(run).ndjson.gz"))
            lastSummary = try load([file], into: db) { $0.models.enabled = false }
            XCTAssertEqual(lastSummary.totals.loaded, 2_001, "run \(run)")
        }
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), "20010")
        XCTAssertEqual(try eventTables(db).count, 1000)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM viewed_product_10000"), "11", "an event with a table takes its later calls there")
        XCTAssertEqual(try rows(db, "SELECT count(*), sum(calls) FROM _events_past_limit"), [["19000", "19000"]])
        XCTAssertEqual(try rows(db, "SELECT first_load_id, last_load_id FROM _events_past_limit WHERE event_text = 'Viewed Product 29999'"),
                       [["10", "10"]])
        XCTAssertEqual(lastSummary.pastLimitCalls, 2_000)
        XCTAssertEqual(lastSummary.newTables, [], "the last run made no table")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE event_text LIKE 'Viewed Product %' AND event NOT IN (SELECT table_name FROM _schema_tables) AND _extra IS NULL"), "0")
    }

    /// The same archives under swapped names (so the run reads them in the other order) give
    /// the same event tables: the events with the most calls in the run, not the first met.
    func testWhichEventsGetTablesDoesNotDependOnTheOrderOfTheArchives() throws {
        func calls(_ event: String, _ count: Int, _ prefix: String) -> [[String: Any]] {
            (0..<count).map { track("\(prefix)\($0)", event: event, properties: ["n": $0]) }
        }
        let x = gzip(ndjson(calls("Alpha", 1, "a") + calls("Bravo", 3, "b")))
        let y = gzip(ndjson(calls("Charlie", 2, "c") + calls("Delta", 1, "d")))
        var results: [String] = []
        for (name, first, second) in [("xy", x, y), ("yx", y, x)] {
            let folder = dir.appendingPathComponent(name)
            try write(first, to: folder.appendingPathComponent("1.ndjson.gz"))
            try write(second, to: folder.appendingPathComponent("2.ndjson.gz"))
            let warehouse = dir.appendingPathComponent("\(name).sqlite")
            let summary = try load([folder], into: warehouse) { $0.eventTableLimit = 2 }
            XCTAssertEqual(summary.pastLimitCalls, 2)
            XCTAssertEqual(try eventTables(warehouse), ["bravo", "charlie"], name)
            results.append(try rows(warehouse, "SELECT id, event, event_text, _extra FROM tracks ORDER BY id").map { $0.joined(separator: "|") }.joined(separator: "\n"))
            XCTAssertEqual(try rows(warehouse, "SELECT event_text, event, calls FROM _events_past_limit ORDER BY 1"),
                           [["Alpha", "alpha", "1"], ["Delta", "delta", "1"]])
        }
        XCTAssertEqual(results[0], results[1])
        XCTAssertTrue(results[0].contains("a0|alpha|Alpha|{\"n\":0}"), results[0])
    }

    /// The ranking: existing tables keep their place and take no room; new events by calls,
    /// then by name.
    func testThePastLimitRuleRanksNewEventsByCallsThenName() {
        let names = ["a", "b", "c", "d", "e"]
        let name = { (id: Int32) in names[Int(id)] }
        XCTAssertEqual(EventTableLimit.pastLimit(counts: [0: 5, 1: 5, 2: 9, 3: 1], existing: [], limit: 2, name: name), [1, 3],
                       "c (9 calls) and a (5, before b by name) get tables")
        XCTAssertEqual(EventTableLimit.pastLimit(counts: [0: 5, 1: 5, 4: 100], existing: [4], limit: 2, name: name), [1],
                       "e has a table already: one place left, for a")
        XCTAssertEqual(EventTableLimit.pastLimit(counts: [0: 5, 1: 5], existing: [2, 3, 4], limit: 2, name: name), [0, 1],
                       "a warehouse over a lowered limit makes no new table")
        XCTAssertEqual(EventTableLimit.pastLimit(counts: [0: 5, 1: 5], existing: [], limit: 2, name: name), [])
        XCTAssertEqual(EventTableLimit.pastLimit(counts: [0: 5], existing: [], limit: 0, name: name), [0])
    }

    /// A lowered limit: the tables that exist keep taking rows; new events go to tracks. With a
    /// limit of 0 (set in a pipeline) no event gets a table.
    func testExistingTablesKeepTheirRowsUnderALoweredLimitAndZeroMeansNone() throws {
        let first = try write(gzip(ndjson(["Alpha", "Bravo", "Charlie"].enumerated().map { track("m\($0.offset)", event: $0.element) })),
                              to: dir.appendingPathComponent("1.ndjson.gz"))
        try load([first], into: db)
        XCTAssertEqual(try eventTables(db), ["alpha", "bravo", "charlie"])
        let second = try write(gzip(ndjson([track("n1", event: "Alpha", properties: ["x": 1]), track("n2", event: "Delta", properties: ["x": 2])])),
                               to: dir.appendingPathComponent("2.ndjson.gz"))
        let summary = try load([second], into: db) { $0.eventTableLimit = 2 }
        XCTAssertEqual(try eventTables(db), ["alpha", "bravo", "charlie"])
        XCTAssertEqual(try rows(db, "SELECT id, x FROM alpha ORDER BY id"), [["m0", "NULL"], ["n1", "1"]])
        XCTAssertEqual(try rows(db, "SELECT id, event, _extra FROM tracks WHERE id = 'n2'"), [["n2", "delta", "{\"x\":2}"]])
        XCTAssertEqual(summary.pastLimitCalls, 1)
        XCTAssertEqual(summary.eventTables, 3)

        let pipelineDir = dir.appendingPathComponent("p")
        try write(gzip(ndjson([track("p1", event: "Echo", properties: ["y": true])])), to: pipelineDir.appendingPathComponent("logs/a.ndjson.gz"))
        let pipeline = try write("""
            version: 1
            name: none
            sources:
              - path: logs
            warehouse:
              path: none.sqlite
              event_table_limit: 0
            """, to: pipelineDir.appendingPathComponent("none.yml"))
        let result = try runSegmentLoader(["run", pipeline.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("1 track call of 1 event name past the event table limit (0 of 0 tables)"), result.stdout)
        let none = pipelineDir.appendingPathComponent("none.sqlite")
        XCTAssertEqual(try eventTables(none), [])
        XCTAssertEqual(try rows(none, "SELECT id, event, event_text, _extra FROM tracks"), [["p1", "echo", "Echo", "{\"y\":true}"]])

        let bad = try write(try String(contentsOf: pipeline, encoding: .utf8).replacingOccurrences(of: "limit: 0", with: "limit: 20000"),
                            to: pipelineDir.appendingPathComponent("bad.yml"))
        let refused = try runSegmentLoader(["validate", bad.path])
        XCTAssertEqual(refused.status, 64)
        XCTAssertTrue(refused.stderr.contains("bad.yml:7:22: warehouse.event_table_limit must be between 0 and 10000, not 20000"), refused.stderr)
    }

    /// `rejects retry` applies the limit as a run does: a line that now loads as a call of a new
    /// event past the limit goes to tracks only.
    func testARetriedRejectPastTheLimitGoesToTracks() throws {
        let file = try write(gzip(ndjson([track("m1", event: "Alpha")]) + "{not json\n"), to: dir.appendingPathComponent("a.ndjson.gz"))
        var options = LoadOptions(database: db.path)
        options.eventTableLimit = 1
        options.now = { Date(timeIntervalSince1970: 1_700_000_000) }
        _ = try LoadRun.run(paths: [file.path], options: options)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _rejects"), "1")
        let database = try Database(path: db.path)
        try database.prepare("UPDATE _rejects SET raw = ?").run([.text(jsonLine(track("m2", event: "Bravo", properties: ["fixed": true])))])
        let outcome = try RejectRetry.run(options: options)
        XCTAssertEqual(outcome.messagesLoaded, 1)
        XCTAssertEqual(outcome.pastLimitCalls, 1)
        XCTAssertTrue(outcome.render(database: "w.sqlite").contains("1 of the messages are track calls past the event table limit"))
        XCTAssertEqual(try eventTables(db), ["alpha"])
        XCTAssertEqual(try rows(db, "SELECT id, event, _extra FROM tracks WHERE id = 'm2'"), [["m2", "bravo", "{\"fixed\":true}"]])
        XCTAssertEqual(try rows(db, "SELECT event_text, calls FROM _events_past_limit"), [["Bravo", "1"]])
    }
}
