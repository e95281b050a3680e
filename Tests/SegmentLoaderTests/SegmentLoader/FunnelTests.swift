import Foundation
import XCTest
@testable import SegmentLoader
import SegmentCore
import SegmentWarehouse
import SQLiteEngine
import PostgresEngine

/// `funnel` against the definition (docs/models.md), computed here from the generated
/// messages themselves, not with the loader's SQL.
final class FunnelTests: XCTestCase {
    struct Call {
        var person: String
        var step: String
        var time: Date
    }

    /// 60 people over 20 days; each has two devices, logs in on one of them (which links that
    /// device's anonymous calls to the user), and does steps A, B, C and page /pricing at
    /// random times, some before logging in, some on the other device never logged in.
    static func corpus(in folder: URL) throws -> (files: [URL], calls: [Call]) {
        var random = SplitMix64(seed: 42)
        let start = Date(timeIntervalSince1970: 1_701_388_800)  // 2023-12-01
        var messages: [[String: Any]] = []
        var calls: [Call] = []
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var n = 0
        for p in 0..<60 {
            let user = "u\(p)", linked = "a\(p)-0", loose = "a\(p)-1"
            let loginAt = start.addingTimeInterval(Double(random.next() % (20 * 86_400)))
            func add(_ message: [String: Any], at time: Date) {
                var m = message
                let text = formatter.string(from: time)
                n += 1
                m["messageId"] = "m\(n)"
                for key in ["timestamp", "receivedAt", "sentAt", "originalTimestamp"] { m[key] = text }
                messages.append(m)
            }
            add(["type": "identify", "userId": user, "anonymousId": linked, "traits": ["plan": "free"]], at: loginAt)
            calls.append(Call(person: user, step: "identify", time: loginAt))
            for _ in 0..<Int(random.next() % 9) {
                let time = start.addingTimeInterval(Double(random.next() % (20 * 86_400)))
                let step = ["A", "B", "C", "page:/pricing"][Int(random.next() % 4)]
                let device = Int(random.next() % 3)
                var message: [String: Any] = step.hasPrefix("page:") ? ["type": "page", "name": "Pricing", "properties": ["path": "/pricing"]]
                    : ["type": "track", "event": step]
                // 0: logged in (user id), 1: the linked device before or after, 2: the loose device.
                let person: String
                switch device {
                case 0: message["userId"] = user; message["anonymousId"] = linked; person = user
                case 1: message["anonymousId"] = linked; person = user
                default: message["anonymousId"] = loose; person = loose
                }
                add(message, at: time)
                calls.append(Call(person: person, step: step, time: time))
            }
        }
        messages.sort { ($0["timestamp"] as! String) < ($1["timestamp"] as! String) }
        var files: [URL] = []
        for (i, chunk) in stride(from: 0, to: messages.count, by: 100).enumerated() {
            let part = Array(messages[chunk..<min(chunk + 100, messages.count)])
            files.append(try write(gzip(ndjson(part)), to: folder.appendingPathComponent("part-\(i).gz")))
        }
        return (files, calls)
    }

    /// The definition, straight: step 1's first time in the range, then each step's first time
    /// at or after the one before and within the window of step 1.
    static func expected(_ calls: [Call], steps: [String], window: TimeInterval, since: Date?, until: Date?) -> [Int] {
        var counts = [Int](repeating: 0, count: steps.count)
        for (_, mine) in Dictionary(grouping: calls, by: \.person) {
            let firsts = mine.filter { call in
                call.step == steps[0] && (since.map { call.time >= $0 } ?? true) && (until.map { call.time < $0 } ?? true)
            }
            guard let t1 = firsts.map(\.time).min() else { continue }
            counts[0] += 1
            var previous = t1
            for k in 1..<steps.count {
                guard let next = mine.filter({ $0.step == steps[k] && $0.time >= previous && $0.time <= t1.addingTimeInterval(window) }).map(\.time).min() else { break }
                counts[k] += 1
                previous = next
            }
        }
        return counts
    }

    func funnel(_ steps: [String], within: Int = 7 * 86_400, since: String? = nil, until: String? = nil) -> Funnel {
        var funnel = Funnel(steps: steps.map(Funnel.Step.init))
        funnel.windowSeconds = within
        funnel.since = since
        funnel.until = until
        return funnel
    }

    static let cases: [(steps: [String], within: Int, since: String?, until: String?)] = [
        (["A", "B"], 7 * 86_400, nil, nil),
        (["A", "B", "C"], 7 * 86_400, nil, nil),
        (["page:/pricing", "A", "C"], 2 * 86_400, nil, nil),
        (["B", "A"], 36 * 3600, "2023-12-05", "2023-12-12"),
        (["C", "C"], 86_400, "2023-12-10", nil),
    ]

    func check(_ database: String, calls: [Call], file: StaticString = #filePath, line: UInt = #line) throws {
        let day = { (text: String?) in text.map { ISO8601DateFormatter().date(from: $0 + "T00:00:00Z")! } }
        for c in Self.cases {
            let got = try FunnelReport.people(database: database, schema: nil, funnel: funnel(c.steps, within: c.within, since: c.since, until: c.until))
            let want = Self.expected(calls, steps: c.steps, window: TimeInterval(c.within), since: day(c.since), until: day(c.until)?.addingTimeInterval(86_400))
            XCTAssertEqual(got.map(Int.init), want, "\(c)", file: file, line: line)
            XCTAssertGreaterThan(want[0], 0, file: file, line: line)
            // The corpus tells the rules apart: some get through, some drop out.
            if c.steps == ["A", "B", "C"] {
                XCTAssertGreaterThan(want[2], 0, file: file, line: line)
                XCTAssertLessThan(want[1], want[0], file: file, line: line)
            }
        }
    }

    func testTheFunnelIsTheDefinitionOnSQLite() throws {
        let dir = try temporaryDirectory(self)
        let (files, calls) = try Self.corpus(in: dir.appendingPathComponent("in"))
        let db = dir.appendingPathComponent("w.sqlite")
        try load(files, into: db)
        try check(db.path, calls: calls)
        let printed = try runSegmentLoader(["funnel", "--db", db.path, "A", "B", "C", "--within", "7d"])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        let want = Self.expected(calls, steps: ["A", "B", "C"], window: 7 * 86_400, since: nil, until: nil)
        XCTAssertTrue(printed.stdout.contains("1. A  \(String(repeating: " ", count: String(want[0]).count - String(want[0]).count))\(want[0]) people"), printed.stdout)
        XCTAssertTrue(printed.stdout.contains(" \(want[2]) people"), printed.stdout)
        let refused = try runSegmentLoader(["funnel", "--db", db.path, "A", "B", "--within", "soon"])
        XCTAssertEqual(refused.status, 64)
        XCTAssertTrue(refused.stderr.contains("--within must be a duration"), refused.stderr)
    }

    /// `active_people`, `daily_events`, `weekly_retention` as the definitions give them.
    static func expectedViews(_ calls: [Call]) -> (active: [[String]], events: [[String]], retention: [[String]]) {
        let utc = TimeZone(identifier: "UTC")!
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = utc
        let format = DateFormatter()
        format.dateFormat = "yyyy-MM-dd"
        format.timeZone = utc
        func day(_ date: Date) -> String { format.string(from: date) }
        func monday(_ date: Date) -> Date { calendar.dateInterval(of: .weekOfYear, for: date)!.start }
        var days: [String: Set<String>] = [:]
        var firstDay: [String: Date] = [:]
        for call in calls {
            days[call.person, default: []].insert(day(call.time))
            firstDay[call.person] = min(firstDay[call.person] ?? call.time, call.time)
        }
        let allDays = Set(days.values.flatMap { $0 }).sorted()
        var active: [[String]] = []
        for d in allDays {
            let date = format.date(from: d)!
            func within(_ n: Int) -> Int {
                days.values.filter { set in set.contains { s in let x = format.date(from: s)!; return x > date.addingTimeInterval(Double(-n) * 86_400) && x <= date } }.count
            }
            let dau = days.values.filter { $0.contains(d) }.count
            let new = firstDay.values.filter { day($0) == d }.count
            active.append([d, String(dau), String(within(7)), String(within(30)), String(new)])
        }
        var eventCalls: [[String]: (Int, Set<String>)] = [:]
        for call in calls where call.step != "identify" {
            let event = call.step.hasPrefix("page:") ? "page" : call.step
            var entry = eventCalls[[day(call.time), event]] ?? (0, [])
            entry.0 += 1
            entry.1.insert(call.person)
            eventCalls[[day(call.time), event]] = entry
        }
        let events = eventCalls.map { $0.key + [String($0.value.0), String($0.value.1.count)] }.sorted { $0.lexicographicallyPrecedes($1) }
        var cohortOf: [String: Date] = [:]
        for (person, first) in firstDay { cohortOf[person] = monday(first) }
        var sizes: [Date: Int] = [:]
        for cohort in cohortOf.values { sizes[cohort, default: 0] += 1 }
        var retained: [[String]: Set<String>] = [:]
        for call in calls {
            let cohort = cohortOf[call.person]!
            let k = Int((monday(call.time).timeIntervalSince(cohort) / (7 * 86_400)).rounded())
            retained[[day(cohort), String(k)], default: []].insert(call.person)
        }
        let retention = retained.map { [$0.key[0], $0.key[1], String(sizes[format.date(from: $0.key[0])!]!), String($0.value.count)] }
            .sorted { ($0[0], Int($0[1])!) < ($1[0], Int($1[1])!) }
        return (active, events, retention)
    }

    func checkViews(_ db: any SQLSession, calls: [Call], file: StaticString = #filePath, line: UInt = #line) throws {
        let want = Self.expectedViews(calls)
        func text(_ sql: String) throws -> [[String]] {
            try db.rows(sql).map { $0.map { value in
                switch value {
                case .integer(let n): return String(n)
                case .text(let t): return String(t.prefix(10))
                default: return "\(value)"
                }
            } }
        }
        XCTAssertEqual(try text("SELECT day, dau, wau, mau, new_people FROM active_people ORDER BY day"), want.active, file: file, line: line)
        XCTAssertEqual(try text("SELECT day, event, calls, people FROM daily_events ORDER BY day, event"), want.events, file: file, line: line)
        XCTAssertEqual(try text("SELECT cohort_week, week_number, cohort_people, retained_people FROM weekly_retention ORDER BY cohort_week, week_number"),
                       want.retention, file: file, line: line)
        XCTAssertGreaterThan(want.retention.count, 6, file: file, line: line)
    }

    func testTheViewsAreTheDefinitionsOnSQLite() throws {
        let dir = try temporaryDirectory(self)
        let (files, calls) = try Self.corpus(in: dir.appendingPathComponent("in"))
        let db = dir.appendingPathComponent("w.sqlite")
        // Day by day, so the models (and the views) follow incremental builds.
        for file in files { try load([file], into: db) }
        try checkViews(try Database(path: db.path, readOnly: true), calls: calls)
    }

    func testTheFunnelAndTheViewsAreTheDefinitionsOnPostgreSQLAndCitus() throws {
        let dir = try temporaryDirectory(self)
        let (files, calls) = try Self.corpus(in: dir.appendingPathComponent("in"))
        let servers: [(any TestDatabaseServer, String)] = [(try TestPostgres.shared(), "funnel_pg"), (try TestCitus.shared(), "funnel_citus")]
        for (server, name) in servers {
            let url = try server.createDatabase(name)
            var options = LoadOptions(database: url, jobs: 2)
            options.now = { Date(timeIntervalSince1970: 1_780_000_000) }
            _ = try LoadRun.run(paths: files.map(\.path), options: options)
            try check(url, calls: calls)
            try checkViews(try PostgresConnection(PostgresLocation(url)), calls: calls)
        }
    }
}
