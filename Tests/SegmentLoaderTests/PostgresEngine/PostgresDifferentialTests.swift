import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentStages
@testable import SegmentWarehouse
@testable import SQLiteEngine
@testable import PostgresEngine

/// The proof: the same archives loaded into SQLite and into PostgreSQL give the same
/// warehouse: the same tables, columns in the same order with their types (mapped), and the
/// same rows, bookkeeping and models included.
final class PostgresDifferentialTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// One table as both databases can show it.
    struct Table: Equatable {
        var columns: [String]
        var rows: [String]
    }

    func testTheSampleDataGivesTheSameWarehouseInBoth() throws {
        let dir = try temporaryDirectory(self)
        try FileManager.default.copyItem(at: Self.repo.appendingPathComponent("sample-data"), to: dir.appendingPathComponent("sample-data"))
        try assertSameWarehouse(paths: [dir.appendingPathComponent("sample-data").path], database: "diff_sample", dir: dir)
    }

    /// The hostile corpus (Tests/Fixtures/hostile), but for the two files whose values hold a
    /// NUL character: PostgreSQL's text cannot, which `testTextWithANulCharacterGoesToDiscards`
    /// shows.
    func testTheHostileCorpusGivesTheSameWarehouseInBoth() throws {
        let dir = try temporaryDirectory(self)
        try assertSameWarehouse(paths: [try Self.hostileCorpus(in: dir).path], database: "diff_hostile", dir: dir, widerThanAPage: ["wide"])
    }

    /// The same on a Citus cluster (a coordinator and two workers): the distributed warehouse
    /// holds what SQLite's holds, models included, its person key aside.
    func testTheSampleDataGivesTheSameWarehouseOnCitus() throws {
        let cluster = try TestCitus.shared()
        let dir = try temporaryDirectory(self)
        try FileManager.default.copyItem(at: Self.repo.appendingPathComponent("sample-data"), to: dir.appendingPathComponent("sample-data"))
        try assertSameWarehouse(paths: [dir.appendingPathComponent("sample-data").path], database: "diff_citus_sample", dir: dir, server: cluster)
    }

    func testTheHostileCorpusGivesTheSameWarehouseOnCitus() throws {
        let cluster = try TestCitus.shared()
        let dir = try temporaryDirectory(self)
        try assertSameWarehouse(paths: [try Self.hostileCorpus(in: dir).path], database: "diff_citus_hostile", dir: dir, widerThanAPage: ["wide"], server: cluster)
    }

    /// The hostile fixtures but for the two whose values hold a NUL character.
    static func hostileCorpus(in dir: URL) throws -> URL {
        let corpus = dir.appendingPathComponent("hostile")
        try FileManager.default.createDirectory(at: corpus, withIntermediateDirectories: true)
        let fixtures = HostileInputTests.fixtures
        for name in try FileManager.default.contentsOfDirectory(atPath: fixtures.path).sorted()
        where !["line-nul-byte.ndjson", "line-escapes-nul-surrogates.ndjson"].contains(name) {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(name), to: corpus.appendingPathComponent(name))
        }
        return corpus
    }

    func testTextWithANulCharacterGoesToDiscards() throws {
        let server = try TestPostgres.shared()
        let dir = try temporaryDirectory(self)
        let file = dir.appendingPathComponent("nul.ndjson")
        try FileManager.default.copyItem(at: HostileInputTests.fixtures.appendingPathComponent("line-escapes-nul-surrogates.ndjson"), to: file)
        var options = LoadOptions(database: try server.createDatabase("diff_nul"), jobs: 1)
        options.now = { Date(timeIntervalSince1970: 1_780_000_000) }
        let summary = try LoadRun.run(paths: [file.path], options: options)
        XCTAssertEqual(summary.outcome, .loaded, "\(summary.render())")
        XCTAssertEqual(summary.totals.loaded, 2)
        let db = try PostgresConnection(try PostgresLocation(options.database))
        XCTAssertEqual(try db.query("SELECT nul, pair FROM esc"), [[nil, "\u{1F600}"]])
        XCTAssertEqual(try db.query("SELECT table_name, column_name, message_id, value, reason, row_id FROM _discards WHERE column_name = 'nul'"),
                       [["esc", "nul", "esc", "\"a\\u0000b\"", CopyRows.nulReason, nil]])
        XCTAssertEqual(try db.scalar("SELECT discarded FROM _files"), try db.scalar("SELECT count(*) FROM _discards"))
    }

    /// Loads `paths` into a new SQLite file and a new PostgreSQL database with one clock, and
    /// compares every table.
    ///
    /// `widerThanAPage`: tables with a row whose values PostgreSQL cannot keep in one page (the
    /// documented difference): there the rest of them are in `_extra`, so such a table's rows
    /// are compared as what they say (column or `_extra` key, and value).
    func assertSameWarehouse(paths: [String], database: String, dir: URL, widerThanAPage: Set<String> = [],
                             server: (any TestDatabaseServer)? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let server = try server ?? TestPostgres.shared()
        let now = Date(timeIntervalSince1970: 1_780_000_000)
        var sqliteOptions = LoadOptions(database: dir.appendingPathComponent("w.sqlite").path, jobs: 2)
        sqliteOptions.now = { now }
        var postgresOptions = LoadOptions(database: try server.createDatabase(database), jobs: 2)
        postgresOptions.now = { now }
        postgresOptions.schema = "web"
        let lite = try LoadRun.run(paths: paths, options: sqliteOptions)
        let post = try LoadRun.run(paths: paths, options: postgresOptions)
        XCTAssertEqual(post.outcome, lite.outcome, post.render(), file: file, line: line)
        XCTAssertEqual(post.totals, lite.totals, file: file, line: line)
        XCTAssertEqual(post.rowsPerTable, lite.rowsPerTable, file: file, line: line)
        XCTAssertEqual(post.models?.pageViews, lite.models?.pageViews, file: file, line: line)
        // The query indexes a run names are there, the same in both.
        XCTAssertFalse(post.indexesCreated.isEmpty, file: file, line: line)
        XCTAssertEqual(post.indexesCreated.sorted(), lite.indexesCreated.sorted(), file: file, line: line)

        let liteDB = try Database(path: sqliteOptions.database, readOnly: true)
        let postDB = try PostgresConnection(PostgresLocation(postgresOptions.database, schema: "web"))
        var sqlite = try Self.tables(liteDB)
        var postgres = try Self.tables(postDB)
        let built = Set(try postDB.query("SELECT indexname FROM pg_indexes WHERE schemaname = 'web'").compactMap { $0[0] })
        XCTAssertEqual(Set(post.indexesCreated).subtracting(built), [], "named but not there", file: file, line: line)
        for name in widerThanAPage {
            let (a, b) = (try Self.contents(of: name, in: liteDB), try Self.contents(of: name, in: postDB))
            XCTAssertEqual(a, b, "what the rows of \(name) say", file: file, line: line)
            XCTAssertNotEqual(sqlite[name]?.rows, postgres[name]?.rows, "\(name) has a row wider than a page", file: file, line: line)
            sqlite[name]?.rows = []
            postgres[name]?.rows = []
        }
        XCTAssertEqual(Set(postgres.keys).subtracting(["_warehouse"]), Set(sqlite.keys), file: file, line: line)
        XCTAssertGreaterThan(sqlite.count, 12, file: file, line: line)
        for (name, table) in sqlite.sorted(by: { $0.key < $1.key }) {
            guard let other = postgres[name] else { continue }
            XCTAssertEqual(other.columns, table.columns, "columns of \(name)", file: file, line: line)
            XCTAssertEqual(other.rows.count, table.rows.count, "rows of \(name)", file: file, line: line)
            for (a, b) in zip(table.rows, other.rows) where a != b {
                XCTFail("\(name): SQLite has\n  \(a)\nPostgreSQL has\n  \(b)", file: file, line: line)
                break
            }
        }
    }

    /// Every table: columns as `name TYPE` (PostgreSQL's types named as SQLite's), rows as
    /// sorted text. What cannot be the same is left out: `_discards.row_id` (PostgreSQL rows
    /// have no rowid), `_models.seconds`; PostgreSQL's hex `_rejects.raw` is read back.
    static func tables(_ db: any SQLSession) throws -> [String: Table] {
        let postgres = db is PostgresConnection
        let names = try db.rows(postgres ? "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                                         : "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").compactMap { $0[0].text }
        let mapped = ["bigint": "INTEGER", "double precision": "REAL", "timestamp with time zone": "TIMESTAMP", "boolean": "BOOLEAN",
                      "text": "TEXT", "bytea": "BLOB"]
        var out: [String: Table] = [:]
        for name in names {
            var columns = try db.rows(postgres
                ? "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position"
                : "SELECT name, type FROM pragma_table_info(?) ORDER BY cid", [.text(name)]).map { row in
                (row[0].text ?? "", postgres ? mapped[row[1].text ?? ""] ?? "?" + (row[1].text ?? "") : row[1].text ?? "")
            }
            // Citus's placement column of call tables is not content (docs/scaling.md).
            let left: Set<String> = name == "_discards" ? ["row_id"] : name == "_models" ? ["seconds"] : [CitusLayout.personKey]
            columns.removeAll { left.contains($0.0) }
            let list = columns.map { quoteIdentifier($0.0) }.joined(separator: ", ")
            let raw = name == "_rejects" ? columns.firstIndex { $0.0 == "raw" } : nil
            let redacted = name == "_rejects" ? columns.firstIndex { $0.0 == "redacted" } : nil
            var rows: [String] = []
            for var row in try db.rows("SELECT \(list) FROM \(quoteIdentifier(name))") {
                if let raw, let redacted, case .integer(let code) = row[redacted] {
                    let kept = RejectRaw(code: code, bytes: Array((row[raw].text ?? "").utf8))
                    if postgres || code >= RejectRaw.hexCode {
                        row[redacted] = .integer(kept.redactedCode)
                        row[raw] = .blob(kept.bytes)
                    }
                }
                if let raw, case .text(let text) = row[raw] { row[raw] = .blob(Array(text.utf8)) }
                rows.append(row.map(render).joined(separator: " | "))
            }
            out[name] = Table(columns: columns.map { "\($0.0) \($0.1)" }, rows: rows.sorted())
        }
        return out
    }

    /// A table's rows as sorted lists of `column=value`, `_extra`'s members among the columns.
    static func contents(of table: String, in db: any SQLSession) throws -> [[String]] {
        let columns = try tables(db)[table]!.columns.map { String($0.split(separator: " ")[0]) }
        return try db.rows("SELECT \(columns.map(quoteIdentifier).joined(separator: ", ")) FROM \(quoteIdentifier(table))").map { row in
            var said: [String] = []
            for (name, value) in zip(columns, row) where value != .null {
                if name == "_extra", case .object(let members)? = try? JSONParser.parse(value.text ?? "") {
                    said += members.map { "\($0.key)=\(JSONWriter.string($0.value))" }
                    continue
                }
                let json: JSONValue
                switch value {
                case .integer(let i): json = .int(i)
                case .real(let d): json = .double(d)
                case .text(let t): json = .string(t)
                default: json = .string(render(value))
                }
                said.append("\(name)=\(JSONWriter.string(json))")
            }
            return said.sorted()
        }.sorted { $0.joined(separator: ",") < $1.joined(separator: ",") }
    }

    static func render(_ value: SQLValue) -> String {
        switch value {
        case .null: return "NULL"
        case .integer(let i): return String(i)
        case .real(let d): return "r" + String(d)
        case .text(let s): return JSONWriter.string(.string(s))
        case .blob(let b): return "x'" + hexString(b) + "'"
        }
    }
}

extension PostgresDifferentialTests {
    /// Files of several chunks, in two runs whose second repeats the first's messages between
    /// new ones: claiming the next chunk's ids while a chunk's rows are built (PostgreSQL)
    /// admits exactly what SQLite's chunk-by-chunk claims admit, and the warehouses match.
    func testClaimsSentAheadAdmitWhatSQLiteAdmits() throws {
        let server = try TestPostgres.shared()
        let dir = try temporaryDirectory(self)
        let files = try Corpus.generate(CorpusSpec(events: 6000, files: 2, seed: 7), into: dir.appendingPathComponent("corpus"), jobs: 1)
        func lines(_ file: URL) throws -> [Substring] {
            let gunzip = Process()
            gunzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
            gunzip.arguments = ["-dc", file.path]
            let pipe = Pipe()
            gunzip.standardOutput = pipe
            try gunzip.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            gunzip.waitUntilExit()
            return String(decoding: data, as: UTF8.self).split(separator: "\n")
        }
        let (first, second) = (try lines(files[0]), try lines(files[1]))
        XCTAssertGreaterThan(first.count, 2500, "several chunks of 1024 lines")
        // The second run's file: a line of the first run's file, then a new one, and so on.
        var mixed: [Substring] = []
        for i in 0..<max(first.count, second.count) {
            if i < first.count { mixed.append(first[i]) }
            if i < second.count { mixed.append(second[i]) }
        }
        let mixedFile = dir.appendingPathComponent("mixed.ndjson")
        try Data((mixed.joined(separator: "\n") + "\n").utf8).write(to: mixedFile)

        let now = Date(timeIntervalSince1970: 1_780_000_000)
        var sqliteOptions = LoadOptions(database: dir.appendingPathComponent("w.sqlite").path, jobs: 2)
        sqliteOptions.now = { now }
        var postgresOptions = LoadOptions(database: try server.createDatabase("diff_ahead"), jobs: 2)
        postgresOptions.now = { now }
        // Every chunk with a next one in its file has that one's ids claimed ahead: the writer
        // waits for it (else how many are depends on how fast this machine parses).
        var faults = TestFaults()
        faults.awaitNextChunk = true
        let sentBefore = PostgresDestination.claimsSentAhead.load(ordering: .relaxed)
        var summaries: [[RunSummary]] = []
        for options in [sqliteOptions, postgresOptions] {
            summaries.append([try LoadRun.run(paths: [files[0].path], options: options, faults: faults),
                              try LoadRun.run(paths: [mixedFile.path], options: options, faults: faults)])
        }
        XCTAssertGreaterThan(PostgresDestination.claimsSentAhead.load(ordering: .relaxed) - sentBefore, 4)
        let (lite, post) = (summaries[0], summaries[1])
        for run in 0..<2 {
            XCTAssertEqual(post[run].outcome, .loaded, post[run].render())
            XCTAssertEqual(post[run].totals, lite[run].totals, "run \(run + 1)")
            XCTAssertEqual(post[run].rowsPerTable, lite[run].rowsPerTable, "run \(run + 1)")
        }
        // Every message of the first file is a duplicate the second time, every new one loaded.
        XCTAssertGreaterThanOrEqual(post[1].totals.duplicates, post[0].totals.loaded)
        XCTAssertGreaterThan(post[1].totals.loaded, 2500)
        let sqlite = try Self.tables(try Database(path: sqliteOptions.database, readOnly: true))
        let postgres = try Self.tables(try PostgresConnection(PostgresLocation(postgresOptions.database)))
        XCTAssertEqual(Set(postgres.keys).subtracting(["_warehouse"]), Set(sqlite.keys))
        for (name, table) in sqlite.sorted(by: { $0.key < $1.key }) where !["_loads", "_files"].contains(name) {
            XCTAssertEqual(postgres[name], table, name)
        }
    }
}

extension PostgresDifferentialTests {
    /// PostgreSQL builds `identities` in one statement, SQLite in Swift: the same rows where
    /// the rule has corners: a device linked to two users (the later one wins, both counted),
    /// a user aliased to another (its chain's end counted once), links at the same time (the
    /// message id orders them), and links in several call tables.
    func testIdentitiesMatchWhereTheRuleHasCorners() throws {
        let dir = try temporaryDirectory(self)
        let calls = [
            #"{"type":"identify","messageId":"m1","anonymousId":"a1","userId":"u1","timestamp":"2026-03-01T10:00:00Z","traits":{"plan":"free"}}"#,
            #"{"type":"track","messageId":"m2","anonymousId":"a1","userId":"u2","event":"Signed In","timestamp":"2026-03-02T10:00:00Z"}"#,
            #"{"type":"page","messageId":"m3","anonymousId":"a1","name":"Home","timestamp":"2026-03-03T10:00:00Z"}"#,
            #"{"type":"identify","messageId":"m5","anonymousId":"a2","userId":"u3","timestamp":"2026-03-01T10:00:00Z"}"#,
            #"{"type":"identify","messageId":"m4","anonymousId":"a2","userId":"u4","timestamp":"2026-03-01T10:00:00Z"}"#,
            #"{"type":"alias","messageId":"m6","previousId":"u1","userId":"u5","timestamp":"2026-03-04T10:00:00Z"}"#,
            #"{"type":"identify","messageId":"m7","anonymousId":"a3","userId":"u5","timestamp":"2026-03-05T10:00:00Z"}"#,
            #"{"type":"page","messageId":"m8","anonymousId":"a3","userId":"u1","name":"Pricing","timestamp":"2026-03-06T10:00:00Z"}"#,
            #"{"type":"group","messageId":"m9","anonymousId":"a4","userId":"u2","groupId":"g1","timestamp":"2026-03-01T09:00:00Z"}"#,
            #"{"type":"screen","messageId":"m10","anonymousId":"a4","userId":"u4","name":"Main","timestamp":"2026-03-01T08:00:00Z"}"#,
        ]
        try Data((calls.joined(separator: "\n") + "\n").utf8).write(to: dir.appendingPathComponent("calls.ndjson"))
        try assertSameWarehouse(paths: [dir.appendingPathComponent("calls.ndjson").path], database: "diff_identities", dir: dir)
        let db = try PostgresConnection(PostgresLocation(try TestPostgres.shared().url("diff_identities"), schema: "web"))
        XCTAssertEqual(try db.query("SELECT anonymous_id, user_id, user_ids FROM identities ORDER BY anonymous_id"),
                       [["a1", "u2", "2"], ["a2", "u3", "2"], ["a3", "u5", "1"], ["a4", "u2", "2"], ["u1", "u5", "1"]])
    }
    /// A file begun before the models were ever built does not note the ids it touches; when
    /// another loader builds them for the first time before that file commits, the file is
    /// written again noting them, so the next build brings its people up to date.
    func testAFileThatMissedTheFirstBuildIsWrittenAgainWithItsTouchedIds() throws {
        let dir = try temporaryDirectory(self)
        // Day 2 has the shape of day 1 (no new table or column), so the build running during
        // its file waits for no lock of that file's.
        func day(_ d: Int, _ people: [String]) -> String {
            people.enumerated().map { i, person in
                #"{"type":"page","messageId":"m\#(d)-\#(i)","anonymousId":"\#(person)","name":"Home","timestamp":"2026-03-0\#(d)T10:0\#(i):00Z","properties":{"url":"https://shop.example/?utm_source=d\#(d)"}}"#
                    + "\n" + #"{"type":"identify","messageId":"m\#(d)-i\#(i)","anonymousId":"\#(person)","userId":"u-\#(person)","timestamp":"2026-03-0\#(d)T10:0\#(i):30Z"}"#
            }.joined(separator: "\n") + "\n"
        }
        let day1 = dir.appendingPathComponent("day1.ndjson"), day2 = dir.appendingPathComponent("day2.ndjson")
        try Data(day(1, ["a1", "a2"]).utf8).write(to: day1)
        try Data(day(2, ["a2", "a3"]).utf8).write(to: day2)
        var options = LoadOptions(database: try TestPostgres.shared().createDatabase("diff_first_build"), jobs: 1)
        options.schema = "web"
        options.models.enabled = false
        _ = try LoadRun.run(paths: [day1.path], options: options)

        // Another loader's first build, while day 2's file is being written (once).
        let builds = Locked(0)
        let url = options.database + "?options=-c%20statement_timeout%3D20000"
        var faults = TestFaults()
        faults.duringFile = { _ in
            guard builds.withLock({ n -> Bool in n += 1; return n == 1 }) else { return }
            XCTAssertEqual(try? Models.build(postgres: url, schema: "web", options: ModelOptions(), rebuild: false).mode, "full")
        }
        let summary = try LoadRun.run(paths: [day2.path], options: options, faults: faults)
        XCTAssertEqual(summary.totals.loaded, 4, "the file written again is loaded once")
        let db = try PostgresConnection(PostgresLocation(options.database, schema: "web"))
        XCTAssertEqual(try db.scalar("SELECT count(*) FROM _model_pending"), "4", "day 2 touched a2, a3, u-a2, u-a3")
        XCTAssertEqual(try db.scalar("SELECT count(*) FROM pages"), "4")

        var personByPerson = ModelOptions()
        personByPerson.wideBuildFactor = 0
        XCTAssertEqual(try Models.build(postgres: options.database, schema: "web", options: personByPerson, rebuild: false).mode, "incremental")
        let updated = try Self.tables(db)
        XCTAssertEqual(try Models.build(postgres: options.database, schema: "web", options: ModelOptions(), rebuild: true).mode, "full")
        let rebuilt = try Self.tables(db)
        for table in ["identities", "page_views", "sessions"] {
            XCTAssertEqual(updated[table], rebuilt[table], table)
        }
        XCTAssertEqual(rebuilt["sessions"]?.rows.count, 4, "a1 one, a2 two (a day apart), a3 one")
    }

    /// Until the models are first built, a load keeps no touched ids (that build is a full
    /// one); once they are, a load without the models keeps them, and the person-by-person
    /// build they feed gives the same models in both databases.
    func testTouchedIdsAreKeptOnceTheModelsWereBuilt() throws {
        let dir = try temporaryDirectory(self)
        let calls = [
            #"{"type":"page","messageId":"m1","anonymousId":"a1","name":"Home","timestamp":"2026-03-01T10:00:00Z","properties":{"url":"https://shop.example/?utm_source=news"}}"#,
            #"{"type":"identify","messageId":"m2","anonymousId":"a1","userId":"u1","timestamp":"2026-03-01T10:05:00Z"}"#,
            #"{"type":"track","messageId":"m3","anonymousId":"a2","event":"Viewed","timestamp":"2026-03-01T11:00:00Z"}"#,
            #"{"type":"page","messageId":"m4","anonymousId":"a1","userId":"u1","name":"Cart","timestamp":"2026-03-02T09:00:00Z"}"#,
            #"{"type":"identify","messageId":"m5","anonymousId":"a2","userId":"u2","timestamp":"2026-03-02T09:10:00Z"}"#,
            #"{"type":"screen","messageId":"m6","anonymousId":"a3","name":"Main","timestamp":"2026-03-02T09:20:00Z"}"#,
        ]
        let day1 = dir.appendingPathComponent("day1.ndjson"), day2 = dir.appendingPathComponent("day2.ndjson")
        try Data((calls.prefix(3).joined(separator: "\n") + "\n").utf8).write(to: day1)
        try Data((calls.suffix(3).joined(separator: "\n") + "\n").utf8).write(to: day2)
        var lite = LoadOptions(database: dir.appendingPathComponent("w.sqlite").path, jobs: 1)
        var post = LoadOptions(database: try TestPostgres.shared().createDatabase("diff_touches"), jobs: 1)
        post.schema = "web"
        lite.models.enabled = false
        post.models.enabled = false
        var personByPerson = ModelOptions()
        personByPerson.wideBuildFactor = 0
        func pending(_ db: any SQLSession) throws -> Int64 { try db.value("SELECT count(*) FROM _model_pending")?.integer ?? -1 }

        _ = try LoadRun.run(paths: [day1.path], options: lite)
        _ = try LoadRun.run(paths: [day1.path], options: post)
        let liteDB = try Database(path: lite.database)
        let postDB = try PostgresConnection(PostgresLocation(post.database, schema: "web"))
        XCTAssertEqual(try pending(liteDB), 0, "never built: nothing is kept for a full build")
        XCTAssertEqual(try pending(postDB), 0, "never built: nothing is kept for a full build")
        XCTAssertEqual(try Models.build(in: liteDB, options: personByPerson).mode, "full")
        XCTAssertEqual(try Models.build(postgres: post.database, schema: "web", options: personByPerson, rebuild: false).mode, "full")
        // A full build fills identities without its primary key and puts the key back after.
        let key = "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'identities'::regclass AND contype = 'p'"
        XCTAssertEqual(try postDB.query(key), [["identities_pkey", "PRIMARY KEY (anonymous_id)"]])
        XCTAssertThrowsError(try postDB.execute("INSERT INTO identities SELECT * FROM identities LIMIT 1"), "the key holds again")

        _ = try LoadRun.run(paths: [day2.path], options: lite)
        _ = try LoadRun.run(paths: [day2.path], options: post)
        XCTAssertEqual(try pending(liteDB), 5, "built: the ids day 2 touched (a1, u1, a2, u2, a3) are kept")
        XCTAssertEqual(try pending(postDB), 5, "built: the ids day 2 touched (a1, u1, a2, u2, a3) are kept")
        XCTAssertEqual(try Models.build(in: liteDB, options: personByPerson).mode, "incremental")
        XCTAssertEqual(try Models.build(postgres: post.database, schema: "web", options: personByPerson, rebuild: false).mode, "incremental")
        let (a, b) = (try Self.tables(liteDB), try Self.tables(postDB))
        for table in ["identities", "page_views", "sessions"] {
            XCTAssertEqual(a[table], b[table], table)
        }
        XCTAssertEqual(a["sessions"]?.rows.count, 4)
        XCTAssertEqual(try postDB.query(key), [["identities_pkey", "PRIMARY KEY (anonymous_id)"]], "a person-by-person build keeps the key")
    }
}
