import Foundation
import XCTest
@testable import SegmentLoader
import SegmentCore
import SegmentWarehouse
import SQLiteEngine
@testable import YAMLFiles

/// The "Product analytics" dashboard as a person sees it: Datasette 0.65 with
/// datasette-dashboards 0.8.0 (both pinned, from PyPI: scripts/dashboards-venv.sh) serving a
/// loaded warehouse on 127.0.0.1 with the metadata `segment-loader datasette` writes, opened in
/// Debian's headless Chromium. Every chart must draw a Vega view with marks, without error text
/// or console errors, and the figures its marks carry must equal those computed here from the
/// generated calls (`ProductCorpus`), not with the loader's SQL.
///
/// Without Chromium or that Datasette the test says so and skips; with
/// SEGMENT_LOADER_REQUIRE_BROWSER set (`.ci/run` sets it) it fails instead.
final class DashboardBrowserTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    func tools() throws -> (datasette: URL, chromium: URL) {
        let datasette = URL(fileURLWithPath: ProcessInfo.processInfo.environment["SEGMENT_LOADER_DATASETTE"]
                            ?? Self.repo.appendingPathComponent(".build-dashboards/bin/datasette").path)
        let chromium = URL(fileURLWithPath: "/usr/bin/chromium")
        var missing: [String] = []
        if !FileManager.default.isExecutableFile(atPath: datasette.path) { missing.append("Datasette with datasette-dashboards (\(datasette.path); scripts/dashboards-venv.sh installs it)") }
        if !FileManager.default.isExecutableFile(atPath: chromium.path) { missing.append("Debian's chromium (apt-get install chromium)") }
        if !missing.isEmpty {
            let why = "the dashboard browser test needs " + missing.joined(separator: " and ")
            if ProcessInfo.processInfo.environment["SEGMENT_LOADER_REQUIRE_BROWSER"] != nil { XCTFail(why) }
            throw XCTSkip(why)
        }
        return (datasette, chromium)
    }

    /// Datasette on 127.0.0.1, on a port the system chose; stopped when the test ends.
    func serve(_ datasette: URL, database: URL, metadata: URL, log: URL) throws -> String {
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = datasette
        process.arguments = ["serve", database.path, "-m", metadata.path, "-h", "127.0.0.1", "-p", "0", "--setting", "sql_time_limit_ms", "5000"]
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        addTeardownBlock { process.terminate(); process.waitUntilExit() }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: #"http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression) { return String(text[range]) }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw XCTSkip("datasette did not start: " + ((try? String(contentsOf: log, encoding: .utf8)) ?? ""))
    }

    /// The page after its scripts ran, and what the browser's console said.
    func open(_ chromium: URL, _ url: String, screenshot: URL? = nil) throws -> (dom: String, console: String) {
        var arguments = ["120", chromium.path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=30000", "--window-size=1400,2600"]
        if let screenshot { arguments.append("--screenshot=\(screenshot.path)") } else { arguments.append("--dump-dom") }
        let result = try runBinary(URL(fileURLWithPath: "/usr/bin/timeout"), arguments + [url])
        XCTAssertEqual(result.status, 0, result.stderr)
        return (result.stdout, result.stderr)
    }

    /// The aria-labels of the marks Vega drew inside the chart's element, each as its fields.
    static func marks(_ dom: String, chart slug: String) -> [[String: String]] {
        guard let start = dom.range(of: "id=\"chart-\(slug)\"") else { return [] }
        let rest = dom[start.upperBound...]
        let end = rest.range(of: "id=\"chart-")?.lowerBound ?? rest.endIndex
        let element = rest[..<end]
        var out: [[String: String]] = []
        var search = element.startIndex
        while let found = element.range(of: "role=\"graphics-symbol\"", range: search..<element.endIndex) {
            search = found.upperBound
            // The mark's tag: from its `<` to its `>`.
            let open = element[..<found.lowerBound].lastIndex(of: "<") ?? found.lowerBound
            let close = element[found.upperBound...].firstIndex(of: ">") ?? element.endIndex
            let tag = element[open..<close]
            // Data marks only: not axes, legends or the containers of marks.
            guard ["point", "bar", "rect mark"].contains(where: { tag.contains("aria-roledescription=\"\($0)\"") }) else { continue }
            guard let label = tag.range(of: #"aria-label="[^"]*""#, options: .regularExpression) else { continue }
            let text = tag[label].dropFirst("aria-label=\"".count).dropLast()
                .replacingOccurrences(of: "&amp;", with: "&").replacingOccurrences(of: "&quot;", with: "\"")
            var fields: [String: String] = [:]
            for part in text.components(separatedBy: "; ") {
                guard let colon = part.range(of: ": ") else { continue }
                fields[String(part[..<colon.lowerBound])] = String(part[colon.upperBound...])
            }
            out.append(fields)
        }
        return out
    }

    /// Vega's label of a UTC day (`Dec 1, 2023`) as `2023-12-01`.
    static func day(_ label: String?) -> String? {
        guard let label else { return nil }
        let format = DateFormatter()
        format.locale = Locale(identifier: "en_US_POSIX")
        format.timeZone = TimeZone(identifier: "UTC")
        format.dateFormat = "MMM dd, yyyy"
        return format.date(from: label).map(ProductCorpus.day)
    }

    static func number(_ text: String?) -> Double? { text.flatMap { Double($0.replacingOccurrences(of: ",", with: "")) } }

    func testTheDashboardDrawsEveryChartWithTheFiguresOfTheArchives() throws {
        let (datasette, chromium) = try tools()
        let dir = try temporaryDirectory(self)
        let corpus = try ProductCorpus.generate(in: dir.appendingPathComponent("in"))
        let db = dir.appendingPathComponent("product.sqlite")
        try load(corpus.files, into: db)
        let metadata = dir.appendingPathComponent("datasette.yml")
        let written = try runSegmentLoader(["datasette", "--db", db.path, "-o", metadata.path, "--funnel", "Signed Up", "Report Viewed", "Plan Upgraded"])
        XCTAssertEqual(written.status, 0, written.stderr)
        let base = try serve(datasette, database: db, metadata: metadata, log: dir.appendingPathComponent("datasette.log"))
        let page = try open(chromium, base + "/-/dashboards/" + DatasetteDashboard.slug)
        if let keep = ProcessInfo.processInfo.environment["DASHBOARD_DOM"] { try (page.dom + "\n=====\n" + page.console).write(toFile: keep, atomically: true, encoding: .utf8) }

        // Every chart drew marks, and nothing went wrong on the way.
        let charts = ["active-people", "new-returning", "events", "funnel", "retention", "sessions", "pages", "sources"]
        for chart in charts {
            XCTAssertGreaterThan(Self.marks(page.dom, chart: chart).count, 0, "\(chart) drew no marks")
        }
        XCTAssertTrue(page.dom.contains("Product analytics"))
        for bad in ["Error:", "error:", "Traceback", "SQL Interrupted", "Query timed out"] {
            XCTAssertFalse(page.dom.contains(bad), "the page says \(bad)")
        }
        // (Vega's warnings aside: the plugin's specs name Vega-Lite 5, and it bundles 6.)
        let console = page.console.split(separator: "\n").filter { $0.contains(":CONSOLE") && !$0.contains("\"WARN ") }
        XCTAssertTrue(console.isEmpty, console.joined(separator: "\n"))

        // Active people: a point per day and measure.
        let active = Dictionary(uniqueKeysWithValues: corpus.activePeople.map { ($0[0], $0) })
        var seen = 0
        for mark in Self.marks(page.dom, chart: "active-people") {
            guard let day = Self.day(mark["day (UTC)"]), let row = active[day], let measure = mark["measure"] else { continue }
            let column = ["DAU": 1, "WAU": 2, "MAU": 3][measure]!
            XCTAssertEqual(Self.number(mark["people"]), Double(row[column]), "\(measure) of \(day)")
            seen += 1
        }
        XCTAssertEqual(seen, 3 * corpus.activePeople.count, "a point per day and measure")

        // New and returning: a bar each per day.
        seen = 0
        for mark in Self.marks(page.dom, chart: "new-returning") {
            guard let day = Self.day(mark["day (UTC)"]), let row = active[day], let kind = mark["people_kind"] else { continue }
            let want = kind == "new people" ? Int(row[4])! : Int(row[1])! - Int(row[4])!
            XCTAssertEqual(Self.number(mark["people"]), Double(want), "\(kind) on \(day)")
            seen += 1
        }
        XCTAssertGreaterThan(seen, corpus.activePeople.count, "new and returning bars")

        // Events: the calls per day of each event drawn.
        let events = Dictionary(uniqueKeysWithValues: corpus.dailyEvents.map { ([$0[0], $0[1]], Int($0[2])!) })
        seen = 0
        for mark in Self.marks(page.dom, chart: "events") {
            guard let day = Self.day(mark["day (UTC)"]), let event = mark["event"] else { continue }
            XCTAssertEqual(Self.number(mark["calls"]), events[[day, event]].map(Double.init), "\(event) on \(day)")
            seen += 1
        }
        XCTAssertGreaterThan(seen, 50)

        // The funnel: the definition, straight from the calls.
        let steps = ["Signed Up", "Report Viewed", "Plan Upgraded"]
        let funnelCalls = corpus.calls.filter { $0.kind == "track" }.map { FunnelTests.Call(person: $0.person, step: $0.name!, time: $0.time) }
        let want = FunnelTests.expected(funnelCalls, steps: steps, window: 7 * 86_400, since: nil, until: nil)
        let bars = Self.marks(page.dom, chart: "funnel")
        XCTAssertEqual(bars.count, 3)
        for (i, step) in steps.enumerated() {
            let bar = bars.first { $0["step"] == "\(i + 1). \(step)" }
            XCTAssertEqual(Self.number(bar?["people"]), Double(want[i]), step)
        }
        XCTAssertLessThan(want[2], want[0])

        // Retention: every cell.
        let retention = corpus.weeklyRetention
        let cells = Self.marks(page.dom, chart: "retention")
        XCTAssertEqual(cells.count, retention.count)
        for cell in cells {
            guard let cohort = cell["cohort (Monday, UTC)"], let k = cell["weeks after the cohort's first"],
                  let row = retention.first(where: { $0[0] == cohort && $0[1] == k }) else { XCTFail("a cell for no cohort: \(cell)"); continue }
            let pct = (1000.0 * Double(row[3])! / Double(row[2])!).rounded() / 10
            XCTAssertEqual(Self.number(cell["% retained"]), pct, "\(cohort) week \(k)")
        }

        // Sessions: per day, the count and the median duration.
        let sessions = corpus.sessionsPerDay
        seen = 0
        for mark in Self.marks(page.dom, chart: "sessions") {
            guard let day = Self.day(mark["day (UTC)"]), let want = sessions[day] else { continue }
            if let count = mark["sessions"] { XCTAssertEqual(Self.number(count), Double(want.sessions), "sessions on \(day)"); seen += 1 }
            if let median = mark["median seconds"] { XCTAssertEqual(Self.number(median) ?? -1, want.median, accuracy: 0.5, "median on \(day)"); seen += 1 }
        }
        XCTAssertEqual(seen, 2 * sessions.count)

        // Pages: views per path.
        let pages = corpus.pages
        let pageBars = Self.marks(page.dom, chart: "pages")
        XCTAssertEqual(pageBars.count, pages.count)
        for bar in pageBars {
            XCTAssertEqual(Self.number(bar["views"]), bar["path"].flatMap { pages[$0] }.map { Double($0.views) }, "\(bar)")
        }

        // Sources: new people per day and first-touch source.
        let sources = corpus.newPeopleBySource
        var drawn = 0
        for mark in Self.marks(page.dom, chart: "sources") {
            guard let day = Self.day(mark["day (UTC)"]), let source = mark["source"] else { continue }
            XCTAssertEqual(Self.number(mark["people"]), sources[[day, source]].map(Double.init), "\(source) on \(day)")
            drawn += Int(Self.number(mark["people"]) ?? 0)
        }
        XCTAssertEqual(drawn, sources.values.reduce(0, +), "every new person in a bar")
        XCTAssertGreaterThan(Set(sources.keys.map { $0[1] }).count, 3, "sources told apart")

        // A date range narrows every chart.
        let narrowed = try open(chromium, base + "/-/dashboards/\(DatasetteDashboard.slug)?date_start=2023-12-10&date_end=2023-12-16")
        let points = Self.marks(narrowed.dom, chart: "active-people").compactMap { Self.day($0["day (UTC)"]) }
        XCTAssertEqual(Set(points), Set((0..<7).map { String(format: "2023-12-%02d", 10 + $0) }))
    }
}
