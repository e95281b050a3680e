import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentWarehouse
@testable import SQLiteEngine
@testable import PostgresEngine

/// The warehouse on a real Citus cluster (`TestCitus`: a coordinator and two workers): the
/// loader places every table itself, event tables whenever they appear, and a PostgreSQL
/// warehouse given Citus on its next run; the models equal SQLite's, incremental and rebuilt;
/// one person's sessions with their page views are a single-shard query; a worker that is
/// missing or stopped is a sentence and a sysexits status, and loses nothing.
final class CitusTests: XCTestCase {
    static let now = Date(timeIntervalSince1970: 1_780_000_000)

    func options(_ url: String, jobs: Int = 2) -> LoadOptions {
        var options = LoadOptions(database: url, jobs: jobs)
        options.now = { Self.now }
        return options
    }

    /// Every table of the warehouse's schema with how Citus holds it: `h` distributed by hash,
    /// `n` a reference table, `local` neither.
    static func placements(_ db: PostgresConnection) throws -> [String: String] {
        var out: [String: String] = [:]
        for row in try db.query("""
            SELECT c.relname, coalesce(p.partmethod::text, 'local') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid WHERE n.nspname = current_schema() AND c.relkind = 'r'
            """) {
            out[row[0]!] = row[1]!
        }
        return out
    }

    /// Rows of `table` per worker port, counted in its shards where they lie.
    static func rowsPerNode(_ table: String, _ db: PostgresConnection) throws -> [Int: Int] {
        var out: [Int: Int] = [:]
        for row in try db.query("SELECT nodeport, result FROM run_command_on_placements($1, 'SELECT count(*) FROM %s')", [table]) {
            out[Int(row[0]!)!, default: 0] += Int(row[1] ?? "") ?? 0
        }
        return out
    }

    func testTheLoaderPlacesEveryTableItCreatesAndSaysSo() throws {
        let cluster = try TestCitus.shared()
        let url = try cluster.createDatabase("citus_place")
        let dir = try temporaryDirectory(self)
        try FileManager.default.copyItem(at: PostgresDifferentialTests.repo.appendingPathComponent("sample-data"), to: dir.appendingPathComponent("sample-data"))
        let first = try LoadRun.run(paths: [dir.appendingPathComponent("sample-data").path], options: options(url))
        XCTAssertEqual(first.outcome, .loaded, first.render())
        let db = try PostgresConnection(PostgresLocation(url))
        var placed = try Self.placements(db)
        XCTAssertGreaterThan(placed.count, 25)
        XCTAssertEqual(placed.filter { $0.value == "local" }.keys.sorted(), [])
        for table in ["tracks", "pages", "identifies", "users", "identities", "sessions", "page_views", "_message_ids", "cli_login"] {
            XCTAssertEqual(placed[table], "h", table)
        }
        for table in ["_loads", "_files", "_schema_tables", "_schema_columns", "_warehouse", "_models", "_model_aliases"] {
            XCTAssertEqual(placed[table], "n", table)
        }
        // The tables people join per person are co-located: one shard group for a person's rows.
        let groups = Set(try db.query("""
            SELECT colocationid FROM pg_dist_partition WHERE logicalrelid::text IN ('tracks', 'pages', 'cli_login', 'identities', 'sessions', 'page_views', 'users')
            """).map { $0[0] })
        XCTAssertEqual(groups.count, 1, "\(groups)")
        // The large tables have rows on both workers.
        for table in ["tracks", "_message_ids", "page_views"] {
            let perNode = try Self.rowsPerNode(table, db)
            XCTAssertEqual(Set(perNode.keys), Set(cluster.workers.map(\.port)), table)
            XCTAssertTrue(perNode.values.allSatisfy { $0 > 0 }, "\(table): \(perNode)")
        }
        // The summary, the report and status say so.
        XCTAssertEqual(first.distribution?.nodes, 2)
        XCTAssertEqual(first.distribution?.localTables, 0)
        XCTAssertEqual(first.distribution?.distributedTables, placed.filter { $0.value == "h" }.count)
        XCTAssertTrue(first.render().contains("  warehouse:  distributed over 2 nodes (Citus "), first.render())
        XCTAssertTrue(first.report().contains("\"distribution\":{\"engine\":\"Citus "), first.report())
        let status = try WarehouseStatus.render(database: url)
        XCTAssertTrue(status.contains("distributed over 2 nodes (Citus "), status)
        // Its size counts the shards on the workers, not the coordinator's empty tables.
        let shards = Int64(try db.scalar("""
            SELECT sum(s.shard_size) FROM citus_shards s JOIN pg_class c ON c.oid = s.table_name
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()
            """) ?? "") ?? 0
        XCTAssertGreaterThan(shards, 0)
        XCTAssertGreaterThanOrEqual(PostgresWarehouse.storedBytes(db), shards)

        // A later load that brings a new event makes its table distributed in the same run.
        let later = dir.appendingPathComponent("later.ndjson")
        try Data("""
            {"type":"track","event":"Plan Upgraded","messageId":"later-1","anonymousId":"anon-1001","userId":"u_1001","timestamp":"2023-11-22T10:00:00Z","receivedAt":"2023-11-22T10:00:01Z","properties":{"plan":"team"}}
            {"type":"track","event":"Plan Upgraded","messageId":"later-2","userId":"u_1009","timestamp":"2023-11-22T11:00:00Z","receivedAt":"2023-11-22T11:00:01Z","properties":{"plan":"pro"}}

            """.utf8).write(to: later)
        let second = try LoadRun.run(paths: [later.path], options: options(url))
        XCTAssertEqual(second.outcome, .loaded, second.render())
        XCTAssertEqual(second.newTables, ["plan_upgraded"])
        placed = try Self.placements(db)
        XCTAssertEqual(placed["plan_upgraded"], "h")
        // A call without an anonymous id is placed by its user id.
        XCTAssertEqual(try db.query("SELECT id, \(CitusLayout.personKey) FROM plan_upgraded ORDER BY id"),
                       [["later-1", "anon-1001"], ["later-2", "u_1009"]])
    }

    func testAPostgresWarehouseGivenCitusIsDistributedByItsNextRunWithItsRows() throws {
        let cluster = try TestCitus.shared()
        let name = "citus_later"
        // The database on every node, Citus only on the workers: the coordinator's warehouse is plain PostgreSQL.
        try cluster.prepare(cluster.coordinator, name, extension: false)
        for worker in cluster.workers { try cluster.prepare(worker, name) }
        let url = cluster.url(name)
        let dir = try temporaryDirectory(self)
        let paths = try PostgresConcurrencyTests.corpus(in: dir, count: 4)
        let plain = try LoadRun.run(paths: Array(paths[0..<2]), options: options(url))
        XCTAssertEqual(plain.outcome, .loaded, plain.render())
        XCTAssertNil(plain.distribution)
        let db = try PostgresConnection(PostgresLocation(url))
        XCTAssertNil(db.cluster)

        // The database is given Citus and its workers.
        try db.execute("CREATE EXTENSION citus")
        try db.execute("INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, 'postgres', 'password=\(cluster.coordinator.password)')")
        try db.execute("SELECT citus_set_coordinator_host('127.0.0.1', \(cluster.coordinator.port))")
        for worker in cluster.workers { try db.execute("SELECT citus_add_node('127.0.0.1', \(worker.port))") }
        let next = try LoadRun.run(paths: paths, options: options(url))
        XCTAssertEqual(next.outcome, .loaded, next.render())
        XCTAssertEqual(next.filesLoaded, 2)
        XCTAssertEqual(next.distribution?.localTables, 0)
        let citus = try PostgresConnection(PostgresLocation(url))
        XCTAssertEqual(try Self.placements(citus).filter { $0.value == "local" }.keys.sorted(), [])
        XCTAssertEqual(try citus.scalar("SELECT count(*) FROM tracks WHERE \(CitusLayout.personKey) IS DISTINCT FROM coalesce(anonymous_id, user_id)"), "0")

        // The rows are those of one load of everything into plain PostgreSQL.
        let reference = try TestPostgres.shared().createDatabase("citus_later_ref")
        XCTAssertEqual(try LoadRun.run(paths: paths, options: options(reference)).outcome, .loaded)
        let expected = try PostgresConcurrencyTests.comparable(PostgresConnection(PostgresLocation(reference)))
        let got = try PostgresConcurrencyTests.comparable(citus)
        XCTAssertEqual(Set(got.keys), Set(expected.keys))
        for (table, rows) in expected where got[table] != rows { XCTFail("\(table) differs after the move to Citus") }
    }

    /// Loaded file by file (each a run, the models built incrementally after each), then
    /// rebuilt: both times the models equal those of SQLite loading everything at once.
    func testTheModelsOnCitusEqualSQLitesIncrementalAndRebuilt() throws {
        let cluster = try TestCitus.shared()
        let url = try cluster.createDatabase("citus_models")
        let dir = try temporaryDirectory(self)
        let paths = try Self.returningPeople(in: dir)
        let lite = try LoadRun.run(paths: paths, options: options(dir.appendingPathComponent("w.sqlite").path))
        XCTAssertEqual(lite.outcome, .loaded)
        var modes: [String] = []
        for path in paths {
            let run = try LoadRun.run(paths: [path], options: options(url))
            XCTAssertEqual(run.outcome, .loaded, run.render())
            modes.append(run.models?.mode ?? "none")
        }
        XCTAssertTrue(modes.dropFirst().contains("incremental"), "\(modes)")
        let liteDB = try Database(path: dir.appendingPathComponent("w.sqlite").path, readOnly: true)
        let expected = try PostgresDifferentialTests.tables(liteDB)
        func assertModels(_ what: String) throws {
            let got = try PostgresDifferentialTests.tables(PostgresConnection(PostgresLocation(url)))
            for table in Models.tables + ["_model_aliases"] {
                XCTAssertEqual(got[table]?.columns, expected[table]?.columns, "\(what): columns of \(table)")
                XCTAssertEqual(got[table]?.rows, expected[table]?.rows, "\(what): rows of \(table)")
            }
            XCTAssertGreaterThan(got["sessions"]?.rows.count ?? 0, 10)
        }
        try assertModels("incremental")
        let db = try PostgresConnection(PostgresLocation(url))
        let rebuilt = try Models.build(session: db, rebuild: true)
        XCTAssertEqual(rebuilt.mode, "full")
        try assertModels("rebuilt")
    }

    /// A first day of 300 people (pages and tracks by anonymous id, a third identified), then
    /// four days on which a few of them come back: one logs in, one is aliased, late data of a
    /// first-day visit arrives. Few people a day: the models are built person by person.
    static func returningPeople(in dir: URL) throws -> [String] {
        func call(_ n: Int, person: Int, day: Int, minute: Int, _ kind: String, user: Bool = false) -> String {
            let time = String(format: "2026-11-%02dT%02d:%02d:00.000Z", 1 + day, 8 + minute / 60, minute % 60)
            let common = "\"messageId\":\"d\(day)-\(n)\",\"anonymousId\":\"a-\(person)\",\"timestamp\":\"\(time)\",\"receivedAt\":\"\(time)\""
                + (user ? ",\"userId\":\"u-\(person)\"" : "")
            switch kind {
            case "page": return "{\"type\":\"page\",\"name\":\"Home\",\(common),\"properties\":{\"url\":\"https://example.com/p\(n % 7)?utm_source=s\(person % 3)\"}}"
            case "identify": return "{\"type\":\"identify\",\(common),\"userId\":\"u-\(person)\",\"traits\":{\"email\":\"u\(person)@example.com\"}}"
            default: return "{\"type\":\"track\",\"event\":\"Clicked\",\(common),\"properties\":{\"n\":\(n)}}"
            }
        }
        var days: [[String]] = [[]]
        for person in 0..<300 {
            for k in 0..<4 { days[0].append(call(person * 10 + k, person: person, day: 0, minute: person % 200 + k * 3, k % 2 == 0 ? "page" : "track")) }
            if person % 3 == 0 { days[0].append(call(person * 10 + 5, person: person, day: 0, minute: person % 200 + 12, "identify")) }
        }
        days.append([call(1, person: 1, day: 1, minute: 30, "page"), call(2, person: 1, day: 1, minute: 31, "identify"), call(3, person: 4, day: 1, minute: 5, "track")])
        days.append([call(1, person: 7, day: 2, minute: 50, "page"),
                     "{\"type\":\"alias\",\"messageId\":\"d2-al\",\"previousId\":\"u-9\",\"userId\":\"u-12\",\"timestamp\":\"2026-11-03T09:00:00.000Z\",\"receivedAt\":\"2026-11-03T09:00:00.000Z\"}"])
        days.append([call(9, person: 2, day: 0, minute: 4, "page"), call(8, person: 2, day: 3, minute: 4, "track", user: true)])
        days.append([call(1, person: 299, day: 4, minute: 1, "page"), call(2, person: 298, day: 4, minute: 2, "page")])
        return try days.enumerated().map { day, lines in
            let path = dir.appendingPathComponent("day-\(day).ndjson.gz").path
            try Data(gzip(lines.joined(separator: "\n") + "\n")).write(to: URL(fileURLWithPath: path))
            return path
        }
    }

    func testOnePersonsSessionsWithTheirPageViewsIsOneTaskOnOneWorker() throws {
        let cluster = try TestCitus.shared()
        let url = try cluster.createDatabase("citus_router")
        let dir = try temporaryDirectory(self)
        try FileManager.default.copyItem(at: PostgresDifferentialTests.repo.appendingPathComponent("sample-data"), to: dir.appendingPathComponent("sample-data"))
        XCTAssertEqual(try LoadRun.run(paths: [dir.appendingPathComponent("sample-data").path], options: options(url)).outcome, .loaded)
        let db = try PostgresConnection(PostgresLocation(url))
        try db.execute("SET citus.enable_repartition_joins TO off")
        let query = """
            SELECT s.session_id, s.started_at, v.view_index, v.path FROM sessions s
            JOIN page_views v ON v.blended_user_id = s.blended_user_id AND v.session_id = s.session_id
            WHERE s.blended_user_id = 'u_1001' ORDER BY s.started_at, v.view_index
            """
        XCTAssertFalse(try db.query(query).isEmpty)
        let plan = try db.query("EXPLAIN " + query).compactMap { $0[0] }.joined(separator: "\n")
        XCTAssertTrue(plan.contains("Task Count: 1"), plan)
        XCTAssertTrue(plan.contains("Custom Scan (Citus Adaptive)"), plan)
        let node = try XCTUnwrap(plan.range(of: "Node: host=127.0.0.1 port=").map { plan[$0.upperBound...].prefix { $0.isNumber } })
        XCTAssertTrue(cluster.workers.map { String($0.port) }.contains(String(node)), plan)
        // And the per-person work of the models: a person's calls with their identities row.
        let calls = try db.query("EXPLAIN SELECT x.id, i.user_id FROM pages x JOIN identities i ON i.anonymous_id = x.\(CitusLayout.personKey) WHERE x.\(CitusLayout.personKey) = 'anon-1001'")
            .compactMap { $0[0] }.joined(separator: "\n")
        XCTAssertTrue(calls.contains("Task Count: 1"), calls)
    }

    /// Through a worker: a load, whose new tables the coordinator makes, then `models --rebuild`,
    /// which the coordinator builds (a worker may not drop or create indexes).
    func testALoadAndAModelsRebuildThroughAWorker() throws {
        let cluster = try TestCitus.shared()
        _ = try cluster.createDatabase("citus_via_worker")
        let url = cluster.url("citus_via_worker", node: 2)
        let dir = try temporaryDirectory(self)
        let paths = try PostgresConcurrencyTests.corpus(in: dir, count: 3)
        let run = try LoadRun.run(paths: paths, options: options(url))
        XCTAssertEqual(run.outcome, .loaded, run.render())
        XCTAssertEqual(run.loadId, 1, "the load's id comes from the coordinator")
        XCTAssertFalse(run.newTables.isEmpty)
        let rebuilt = try runSegmentLoader(["models", "--rebuild", "--db", url])
        XCTAssertEqual(rebuilt.status, 0, rebuilt.stdout + rebuilt.stderr)
        XCTAssertTrue(rebuilt.stdout.contains("rebuilt in full"), rebuilt.stdout)
        let db = try PostgresConnection(PostgresLocation(cluster.url("citus_via_worker")))
        XCTAssertEqual(try db.scalar("SELECT count(*) FROM _models WHERE mode = 'full'"), "2")
    }

    func testAWorkerWithoutTheDatabaseOrTheExtensionIsASentenceSayingWhatToRun() throws {
        let cluster = try TestCitus.shared()
        let dir = try temporaryDirectory(self)
        let paths = try PostgresConcurrencyTests.corpus(in: dir, count: 1)
        let worker = cluster.workers[1]

        let url = try cluster.createDatabase("citus_no_ext")
        let onWorker = try PostgresConnection(PostgresLocation(worker.url("citus_no_ext")))
        try onWorker.execute("DROP EXTENSION citus")
        var result = try runSegmentLoader(["load", "--db", url] + paths)
        XCTAssertEqual(result.status, 69, result.stdout + result.stderr)
        XCTAssertTrue(result.stderr.contains("worker 127.0.0.1:\(worker.port)"), result.stderr)
        XCTAssertTrue(result.stderr.contains("CREATE EXTENSION citus"), result.stderr)
        XCTAssertFalse(result.stderr.contains(worker.password))

        let gone = try cluster.createDatabase("citus_no_db")
        let admin = try PostgresConnection(PostgresLocation(worker.url()))
        try admin.execute("DROP DATABASE citus_no_db WITH (FORCE)")
        result = try runSegmentLoader(["load", "--db", gone] + paths)
        XCTAssertEqual(result.status, 69, result.stdout + result.stderr)
        XCTAssertTrue(result.stderr.contains("worker 127.0.0.1:\(worker.port)"), result.stderr)
        XCTAssertTrue(result.stderr.contains("CREATE DATABASE citus_no_db"), result.stderr)
        // Nothing was written: the check comes before any table.
        XCTAssertEqual(try PostgresConnection(PostgresLocation(gone)).scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'segment'"), "0")
    }
}

extension CitusTests {
    func reference(_ paths: [String], database: String) throws -> [String: PostgresDifferentialTests.Table] {
        try uninterruptedWarehouse(paths, database: database)
    }

    func testAWorkerStoppedDuringALoadStopsItNamingTheNodeAndLosesNothing() throws {
        let cluster = try TestCitus.shared()
        let dir = try temporaryDirectory(self)
        let paths = try PostgresConcurrencyTests.corpus(in: dir, count: 24)
        let expected = try reference(paths, database: "citus_worker_ref")
        let url = try cluster.createDatabase("citus_worker_stop")
        let worker = cluster.workers[0]
        let run = try loadWithFault(url, paths) { try worker.pgCtl(["stop", "-m", "fast", "-w", "-t", "60"]) }
        defer { try? worker.start() }
        XCTAssertEqual(run.status, 75, run.printed)
        XCTAssertTrue(run.printed.contains("worker 127.0.0.1:\(worker.port)"), run.printed)
        XCTAssertEqual(run.printed.split(separator: "\n").filter { $0.hasPrefix("error") }.count, 1, run.printed)
        XCTAssertFalse(run.printed.contains(worker.password))
        try worker.start()

        // Whole files or none: every committed file holds all of its rows.
        let db = try PostgresConnection(PostgresLocation(url))
        let committed = Int(try db.scalar("SELECT count(*) FROM _files") ?? "") ?? 0
        XCTAssertLessThan(committed, 24)
        XCTAssertEqual(try db.scalar("SELECT coalesce(sum(loaded), 0) FROM _files"), try db.scalar("SELECT count(*) FROM _message_ids"))

        let again = try runSegmentLoader(["load", "--db", url] + paths)
        XCTAssertEqual(again.status, 0, again.stdout + again.stderr)
        let got = try PostgresConcurrencyTests.comparable(PostgresConnection(PostgresLocation(url)))
        XCTAssertEqual(Set(got.keys), Set(expected.keys))
        for (name, table) in expected where got[name] != table {
            XCTFail("after the worker came back: \(name) differs (\(got[name]?.rows.count ?? -1) rows, expected \(table.rows.count))")
        }
    }

    func testTheCoordinatorRestartedDuringALoadStopsItWith75AndTheNextRunCompletes() throws {
        let cluster = try TestCitus.shared()
        let dir = try temporaryDirectory(self)
        let paths = try PostgresConcurrencyTests.corpus(in: dir, count: 24)
        let expected = try reference(paths, database: "citus_restart_ref")
        let url = try cluster.createDatabase("citus_restart")
        let run = try loadWithFault(url, paths) { try cluster.coordinator.pgCtl(["restart", "-m", "fast", "-w", "-t", "60"]) }
        XCTAssertEqual(run.status, 75, run.printed)
        XCTAssertTrue(run.printed.contains("error: the connection to postgresql://postgres@127.0.0.1:\(cluster.coordinator.port)/citus_restart was lost"), run.printed)
        let again = try runSegmentLoader(["load", "--db", url] + paths)
        XCTAssertEqual(again.status, 0, again.stdout + again.stderr)
        let got = try PostgresConcurrencyTests.comparable(PostgresConnection(PostgresLocation(url)))
        XCTAssertEqual(Set(got.keys), Set(expected.keys))
        for (name, table) in expected where got[name] != table {
            XCTFail("after the restart: \(name) differs (\(got[name]?.rows.count ?? -1) rows, expected \(table.rows.count))")
        }
    }
}
