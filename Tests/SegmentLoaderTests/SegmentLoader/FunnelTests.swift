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

    func testTheFunnelIsTheDefinitionOnPostgreSQLAndCitus() throws {
        let dir = try temporaryDirectory(self)
        let (files, calls) = try Self.corpus(in: dir.appendingPathComponent("in"))
        let servers: [(any TestDatabaseServer, String)] = [(try TestPostgres.shared(), "funnel_pg"), (try TestCitus.shared(), "funnel_citus")]
        for (server, name) in servers {
            let url = try server.createDatabase(name)
            var options = LoadOptions(database: url, jobs: 2)
            options.now = { Date(timeIntervalSince1970: 1_780_000_000) }
            _ = try LoadRun.run(paths: files.map(\.path), options: options)
            try check(url, calls: calls)
        }
    }
}
