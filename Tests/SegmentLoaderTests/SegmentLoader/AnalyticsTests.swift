import Foundation
import XCTest
@testable import SegmentLoader
import SegmentCore
import SegmentWarehouse
import SQLiteEngine
import PostgresEngine

/// A product's calls over 50 days, and the product-analytics figures their definitions give
/// (docs/models.md, Product analytics), computed here from the generated calls, not with the
/// loader's SQL.
struct ProductCorpus {
    struct Call {
        var person: String
        /// `track`, `page`, `screen`, or `other` (identify, group, alias).
        var kind: String
        var name: String?
        var time: Date
        /// A page's `context.campaign.source`, and its referrer's host.
        var campaign: String? = nil
        var referrerHost: String? = nil
    }

    var files: [URL] = []
    var calls: [Call] = []

    static let events = ["Signed Up", "Report Viewed", "Plan Upgraded"]
    static let paths = ["/", "/pricing", "/docs"]

    /// `people` people over `days` days from 2023-12-01, each active on a few random days from
    /// their first one. Two of three log in (an identify, and calls carrying both ids, link
    /// their first device); every fifth sends its logged-in calls under an old user id until an
    /// alias joins it to the new one; everyone also has a second device never logged in. One
    /// file per day, the calls of a day in time order.
    static func generate(in folder: URL, people: Int = 80, days: Int = 50, seed: UInt64 = 7) throws -> ProductCorpus {
        var random = SplitMix64(seed: seed)
        func below(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }
        let start = 1_701_388_800.0  // 2023-12-01 00:00 UTC
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var corpus = ProductCorpus()
        var byDay: [Int: [[String: Any]]] = [:]
        var n = 0
        for p in 0..<people {
            let user = "u\(p)", linked = "a\(p)-0", loose = "a\(p)-1"
            let logsIn = p % 3 != 0, aliased = p % 5 == 0
            let sentUser = aliased ? "old-" + user : user
            let first = below(days)
            func add(_ message: [String: Any], day: Int, second: Int, person: String, kind: String, name: String?,
                     campaign: String? = nil, referrerHost: String? = nil) {
                var m = message
                let time = Date(timeIntervalSince1970: start + Double(day * 86_400 + second))
                let text = formatter.string(from: time)
                n += 1
                m["messageId"] = "m\(n)"
                for key in ["timestamp", "receivedAt", "sentAt", "originalTimestamp"] { m[key] = text }
                byDay[day, default: []].append(m)
                corpus.calls.append(Call(person: person, kind: kind, name: name, time: time, campaign: campaign, referrerHost: referrerHost))
            }
            if logsIn {
                add(["type": "identify", "userId": user, "anonymousId": linked, "traits": ["plan": "free"]],
                    day: first + below(days - first), second: below(86_400), person: user, kind: "other", name: nil)
            }
            if aliased {
                add(["type": "alias", "previousId": sentUser, "userId": user], day: first + below(days - first), second: below(86_400),
                    person: user, kind: "other", name: nil)
            }
            var activeDays: Set<Int> = [first]
            for _ in 0..<below(8) { activeDays.insert(first + below(days - first)) }
            for day in activeDays.sorted() {
                for _ in 0..<(1 + below(4)) {
                    // 0: logged in (both ids), 1: the first device anonymously, 2: the second device.
                    let device = logsIn ? below(3) : 1 + below(2)
                    var message: [String: Any]
                    let kind: String, name: String
                    var campaign: String?, referrer: String?
                    switch below(4) {
                    case 0, 1:
                        name = events[below(events.count)]
                        (kind, message) = ("track", ["type": "track", "event": name])
                    case 2:
                        name = paths[below(paths.count)]
                        var properties: [String: Any] = ["path": name]
                        var context: [String: Any] = [:]
                        switch below(4) {
                        case 0: campaign = ["newsletter", "ads"][below(2)]; context["campaign"] = ["source": campaign!]
                        case 1: referrer = ["www.search.example", "news.example"][below(2)]; properties["referrer"] = "https://\(referrer!)/r"
                        default: break
                        }
                        (kind, message) = ("page", ["type": "page", "name": "Web", "properties": properties, "context": context])
                    default:
                        name = ["Home", "Settings"][below(2)]
                        (kind, message) = ("screen", ["type": "screen", "name": name])
                    }
                    let person: String
                    switch device {
                    case 0: message["userId"] = sentUser; message["anonymousId"] = linked; person = user
                    case 1: message["anonymousId"] = linked; person = logsIn ? user : linked
                    default: message["anonymousId"] = loose; person = loose
                    }
                    add(message, day: day, second: below(86_400), person: person, kind: kind, name: name, campaign: campaign, referrerHost: referrer)
                }
                if below(6) == 0 {
                    let anonymous = below(2) == 0
                    add(["type": "group", "groupId": "g\(p % 4)", anonymous ? "anonymousId" : "userId": anonymous ? loose : sentUser, "traits": ["name": "Team"]],
                        day: day, second: below(86_400), person: anonymous ? loose : user, kind: "other", name: nil)
                }
            }
        }
        for day in byDay.keys.sorted() {
            let messages = byDay[day]!.sorted { ($0["timestamp"] as! String) < ($1["timestamp"] as! String) }
            corpus.files.append(try write(gzip(ndjson(messages)), to: folder.appendingPathComponent(String(format: "day-%02d.gz", day))))
        }
        return corpus
    }

    static let utc = TimeZone(identifier: "UTC")!
    static func day(_ date: Date) -> String {
        let format = DateFormatter()
        format.dateFormat = "yyyy-MM-dd"
        format.timeZone = utc
        return format.string(from: date)
    }
    static func dayNumber(_ date: Date) -> Int { Int((date.timeIntervalSince1970 / 86_400).rounded(.down)) }
    static func text(ofDay n: Int) -> String { day(Date(timeIntervalSince1970: Double(n) * 86_400)) }

    /// `active_people`: every day from the first to the last active one.
    var activePeople: [[String]] {
        var days: [String: Set<Int>] = [:]
        for call in calls { days[call.person, default: []].insert(Self.dayNumber(call.time)) }
        let all = days.values.flatMap { $0 }
        var out: [[String]] = []
        for d in all.min()!...all.max()! {
            func within(_ n: Int) -> Int { days.values.filter { set in set.contains { $0 > d - n && $0 <= d } }.count }
            let new = days.values.filter { $0.min() == d }.count
            out.append([Self.text(ofDay: d), String(within(1)), String(within(7)), String(within(30)), String(new)])
        }
        return out
    }

    /// `daily_events`: a track's raw name, `page`, `screen`.
    var dailyEvents: [[String]] {
        var counts: [[String]: (calls: Int, people: Set<String>)] = [:]
        for call in calls where call.kind != "other" {
            let key = [Self.day(call.time), call.kind == "track" ? call.name! : call.kind]
            counts[key, default: (0, [])].calls += 1
            counts[key, default: (0, [])].people.insert(call.person)
        }
        return counts.map { $0.key + [String($0.value.calls), String($0.value.people.count)] }.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// Each person's sessions (pages, screens and tracks in time order, split where two are more
    /// than 30 minutes apart).
    var sessions: [String: [[Call]]] {
        var out: [String: [[Call]]] = [:]
        for (person, mine) in Dictionary(grouping: calls.filter { $0.kind != "other" }, by: \.person) {
            var list: [[Call]] = []
            for call in mine.sorted(by: { $0.time < $1.time }) {
                if let last = list.last?.last, call.time.timeIntervalSince(last.time) <= 1800 { list[list.count - 1].append(call) } else { list.append([call]) }
            }
            out[person] = list
        }
        return out
    }

    /// Sessions per UTC day of their start, and the median of their durations (seconds).
    var sessionsPerDay: [String: (sessions: Int, median: Double)] {
        var durations: [String: [Double]] = [:]
        for list in sessions.values {
            for session in list { durations[Self.day(session[0].time), default: []].append(session.last!.time.timeIntervalSince(session[0].time)) }
        }
        return durations.mapValues { all in
            let sorted = all.sorted()
            let n = sorted.count
            return (n, n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2)
        }
    }

    /// Page views and people per path.
    var pages: [String: (views: Int, people: Int)] {
        Dictionary(grouping: calls.filter { $0.kind == "page" }, by: { $0.name! }).mapValues { ($0.count, Set($0.map(\.person)).count) }
    }

    /// New people per UTC day of their first activity and first-touch source: their first
    /// session's first page or screen view's campaign source, else its referrer's host, else direct.
    var newPeopleBySource: [[String]: Int] {
        var firstDay: [String: Date] = [:]
        for call in calls { firstDay[call.person] = min(firstDay[call.person] ?? call.time, call.time) }
        let sessions = self.sessions
        var out: [[String]: Int] = [:]
        for (person, first) in firstDay {
            let view = sessions[person]?.first?.first { $0.kind != "track" }
            out[[Self.day(first), view?.campaign ?? view?.referrerHost ?? "direct"], default: 0] += 1
        }
        return out
    }

    /// `weekly_retention`: ISO weeks (Monday, UTC) from the week of each person's first activity.
    var weeklyRetention: [[String]] {
        func monday(_ n: Int) -> Int { n - ((n + 3) % 7 + 7) % 7 }
        var firstDay: [String: Int] = [:]
        for call in calls { firstDay[call.person] = min(firstDay[call.person] ?? Int.max, Self.dayNumber(call.time)) }
        var sizes: [Int: Int] = [:]
        for first in firstDay.values { sizes[monday(first), default: 0] += 1 }
        var retained: [[Int]: Set<String>] = [:]
        for call in calls {
            let cohort = monday(firstDay[call.person]!)
            retained[[cohort, (monday(Self.dayNumber(call.time)) - cohort) / 7], default: []].insert(call.person)
        }
        return retained.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { key in
            [Self.text(ofDay: key[0]), String(key[1]), String(sizes[key[0]]!), String(retained[key]!.count)]
        }
    }
}

final class AnalyticsTests: XCTestCase {
    static let queries = (
        active: "SELECT day, dau, wau, mau, new_people FROM active_people ORDER BY day",
        events: "SELECT day, event, calls, people FROM daily_events ORDER BY day, event",
        retention: "SELECT cohort_week, week_number, cohort_people, retained_people FROM weekly_retention ORDER BY cohort_week, week_number"
    )

    static func shuffled(_ files: [URL], seed: UInt64) -> [URL] {
        var random = SplitMix64(seed: seed)
        var out = files
        for i in stride(from: out.count - 1, to: 0, by: -1) { out.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        return out
    }

    func check(_ corpus: ProductCorpus, _ read: (String) throws -> [[String]], _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try read(Self.queries.active), corpus.activePeople, "\(what): active_people", file: file, line: line)
        XCTAssertEqual(try read(Self.queries.events), corpus.dailyEvents, "\(what): daily_events", file: file, line: line)
        XCTAssertEqual(try read(Self.queries.retention), corpus.weeklyRetention, "\(what): weekly_retention", file: file, line: line)
    }

    func testTheCorpusTellsTheDefinitionsApart() throws {
        let corpus = try ProductCorpus.generate(in: try temporaryDirectory(self))
        let active = corpus.activePeople
        XCTAssertEqual(active.count, 50)
        // WAU and MAU differ from DAU and from each other, the 30-day window passes by, and
        // people are new on most days.
        XCTAssertTrue(active.contains { Int($0[1])! < Int($0[2])! && Int($0[2])! < Int($0[3])! })
        XCTAssertGreaterThan(Int(active[45][3])!, 0)
        XCTAssertLessThan(Int(active[45][3])!, Set(corpus.calls.map(\.person)).count)
        XCTAssertGreaterThan(active.filter { $0[4] != "0" }.count, 25)
        XCTAssertGreaterThan(corpus.weeklyRetention.filter { $0[1] == "4" }.count, 2)
    }

    /// Day by day, in time order and in a shuffled order, the builds person by person: the
    /// views equal the definitions, and a rebuild changes no row of the models or the rollups.
    func testTheViewsAreTheDefinitionsLoadByLoadOnSQLite() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try ProductCorpus.generate(in: dir.appendingPathComponent("in"))
        for (name, files) in [("in order", corpus.files), ("shuffled", Self.shuffled(corpus.files, seed: 3))] {
            let db = dir.appendingPathComponent("\(name).sqlite")
            for file in files { try load([file], into: db, configure: ModelTests.personByPerson) }
            XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _models WHERE mode = 'incremental'"), String(files.count - 1), name)
            try check(corpus, { try rows(db, $0) }, name)
            let incremental = try modelsDump(db)
            _ = try Models.build(session: try Database(path: db.path), rebuild: true)
            XCTAssertEqual(try modelsDump(db), incremental, "\(name): a rebuild gives the same rows")
        }
    }

    /// A warehouse whose models were built before the rollups existed gets them in full at its
    /// next build, then keeps them.
    func testAWarehouseWithoutRollupsGetsThemAtItsNextBuild() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try ProductCorpus.generate(in: dir.appendingPathComponent("in"))
        let db = dir.appendingPathComponent("w.sqlite")
        try load(Array(corpus.files.prefix(30)), into: db)
        let database = try Database(path: db.path)
        try database.execute((Rollups.views.map { "DROP VIEW \($0)" } + Rollups.tables.map { "DROP TABLE \($0)" }).joined(separator: "; "))
        for file in corpus.files.dropFirst(30) { try load([file], into: db, configure: ModelTests.personByPerson) }
        try check(corpus, { try rows(db, $0) }, "upgraded")
    }

    /// The first layout of the rollups (each person's days in `_model_person_days`, no last day
    /// in `_model_people`) is replaced by the next build: the old table gone, the rollups made
    /// again, then kept night by night.
    func testRollupsOfTheEarlierLayoutAreMadeAgain() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try ProductCorpus.generate(in: dir.appendingPathComponent("in"))
        let db = dir.appendingPathComponent("w.sqlite")
        try load(Array(corpus.files.prefix(30)), into: db)
        let database = try Database(path: db.path)
        try database.execute("""
            CREATE TABLE _model_person_days (person TEXT NOT NULL, day INTEGER NOT NULL, calls INTEGER NOT NULL, PRIMARY KEY (person, day)) WITHOUT ROWID;
            INSERT INTO _model_person_days SELECT person, day, sum(calls) FROM _model_person_events GROUP BY person, day;
            DROP VIEW active_people; ALTER TABLE _model_people DROP COLUMN last_day;
            UPDATE _model_active_days SET dau_change = dau_change + 5
            """)
        XCTAssertFalse(try Rollups.current(database))
        for file in corpus.files.dropFirst(30) { try load([file], into: db, configure: ModelTests.personByPerson) }
        XCTAssertTrue(try Rollups.current(database))
        XCTAssertFalse(try database.tableExists("_model_person_days"))
        XCTAssertEqual(try database.value("SELECT count(*) FROM _models WHERE mode = 'incremental'")?.integer, Int64(corpus.files.count - 30))
        try check(corpus, { try rows(db, $0) }, "earlier layout")
    }

    func testTheViewsAreTheDefinitionsOnPostgreSQLAndCitus() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try ProductCorpus.generate(in: dir.appendingPathComponent("in"))
        let order = Self.shuffled(corpus.files, seed: 11)
        // Ten loads of five days each, in a shuffled order.
        let loads: [[URL]] = stride(from: 0, to: order.count, by: 5).map { Array(order[$0..<min($0 + 5, order.count)]) }
        let servers: [(() throws -> any TestDatabaseServer, String)] = [({ try TestPostgres.shared() }, "analytics_pg"), ({ try TestCitus.shared() }, "analytics_citus")]
        for (server, name) in servers {
            let url = try server().createDatabase(name)
            for files in loads {
                var options = LoadOptions(database: url, jobs: 2)
                options.now = { Date(timeIntervalSince1970: 1_780_000_000) }
                ModelTests.personByPerson(&options)
                let summary = try LoadRun.run(paths: files.map(\.path), options: options)
                XCTAssertNotNil(summary.models, summary.render())
            }
            let connection = try PostgresConnection(PostgresLocation(url))
            XCTAssertEqual(try connection.scalar("SELECT count(*) FROM _models WHERE mode = 'incremental'"), String(loads.count - 1), name)
            let read = { (sql: String) in try connection.query(sql).map { $0.map { $0 ?? "NULL" } } }
            try check(corpus, read, name)
            let tables = Rollups.tables.map { "SELECT '\($0)', count(*) FROM \($0)" }.joined(separator: " UNION ALL ")
            let before = try read(tables)
            XCTAssertEqual(try runSegmentLoader(["models", "--rebuild", "--db", url]).status, 0)
            XCTAssertEqual(try read(tables), before, name)
            try check(corpus, read, "\(name), rebuilt")
        }
    }

    // MARK: Format 4 reserves the views' names

    static func eventFiles(in dir: URL) throws -> [URL] {
        let events = ["Daily Events", "weekly retention", "Signed Up"]
        return try (0..<2).map { n in
            let lines = events.enumerated().map { i, e in
                #"{"type":"track","messageId":"e\#(n)-\#(i)","userId":"u\#(i)","event":"\#(e)","properties":{"n":\#(n)},"timestamp":"2024-03-0\#(5 + n)T10:00:00Z"}"#
            }
            return try write(lines.joined(separator: "\n") + "\n", to: dir.appendingPathComponent("e\(n).ndjson"))
        }
    }

    /// What format 3 wrote for those events: tables `daily_events` and `weekly_retention`.
    static let toFormat3 = ["daily_events", "weekly_retention"].map { name in """
        DROP VIEW \(name);
        ALTER TABLE _\(name) RENAME TO \(name);
        UPDATE _schema_tables SET table_name = '\(name)' WHERE table_name = '_\(name)';
        UPDATE _schema_columns SET table_name = '\(name)' WHERE table_name = '_\(name)';
        UPDATE _message_ids SET table_name = '\(name)' WHERE table_name = '_\(name)';
        UPDATE \(name) SET event = '\(name)' WHERE event = '_\(name)';
        UPDATE tracks SET event = '\(name)' WHERE event = '_\(name)';
        """ }.joined(separator: "\n")

    func testEventTablesNamedLikeTheViewsAreRenamedByTheUpgradeOnSQLite() throws {
        let dir = try temporaryDirectory(self)
        let files = try Self.eventFiles(in: dir)
        let fresh = dir.appendingPathComponent("fresh.sqlite")
        for file in files { try load([file], into: fresh) }
        XCTAssertEqual(try rows(fresh, "SELECT table_name FROM _schema_tables WHERE call_type = 'track' ORDER BY 1"),
                       [["_daily_events"], ["_weekly_retention"], ["signed_up"], ["tracks"]])
        XCTAssertEqual(try rows(fresh, "SELECT event, calls, people FROM daily_events ORDER BY day, event").count, 6)

        let old = dir.appendingPathComponent("old.sqlite")
        try load([files[0]], into: old)
        try Database(path: old.path).execute(Self.toFormat3 + "PRAGMA user_version = 3; PRAGMA wal_checkpoint(TRUNCATE)")
        let result = try runSegmentLoader(["load", "--db", old.path, files[1].path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("from warehouse format 3 to 4 in one transaction: renames event tables that take the name of a product-analytics view"), result.stderr)
        XCTAssertEqual(try scalar(old, "PRAGMA user_version"), "4")
        XCTAssertEqual(try dumpWarehouse(old), try dumpWarehouse(fresh))
    }

    func testEventTablesNamedLikeTheViewsAreRenamedByTheUpgradeOnPostgreSQL() throws {
        let dir = try temporaryDirectory(self)
        let files = try Self.eventFiles(in: dir)
        let url = try TestPostgres.shared().createDatabase("analytics_upgrade")
        func run(_ file: URL) throws {
            var options = LoadOptions(database: url, jobs: 2)
            options.now = { Date(timeIntervalSince1970: 1_780_000_000) }
            XCTAssertNotNil(try LoadRun.run(paths: [file.path], options: options).models)
        }
        try run(files[0])
        let connection = try PostgresConnection(PostgresLocation(url))
        try connection.execute(Self.toFormat3 + "UPDATE _warehouse SET value = '3' WHERE key = 'format'")
        XCTAssertEqual(try connection.scalar("SELECT count(*) FROM daily_events"), "1", "the event table, as format 3 named it")
        try run(files[1])
        XCTAssertEqual(try connection.scalar("SELECT value FROM _warehouse WHERE key = 'format'"), "4")
        XCTAssertEqual(try connection.query("SELECT table_name FROM _schema_tables WHERE call_type = 'track' ORDER BY 1").map { $0[0] ?? "" },
                       ["_daily_events", "_weekly_retention", "signed_up", "tracks"])
        XCTAssertEqual(try connection.query("SELECT event, count(*) FROM tracks GROUP BY 1 ORDER BY 1").map { $0.map { $0 ?? "" } },
                       [["_daily_events", "2"], ["_weekly_retention", "2"], ["signed_up", "2"]])
        XCTAssertEqual(try connection.scalar("SELECT count(*) FROM _daily_events"), "2")
        XCTAssertEqual(try connection.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = '_idx__daily_events_received_at'"), "1")
        XCTAssertEqual(try connection.query("SELECT event, calls FROM daily_events ORDER BY day, event").count, 6, "the view again")
    }
}
