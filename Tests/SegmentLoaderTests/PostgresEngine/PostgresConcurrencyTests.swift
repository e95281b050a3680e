import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentWarehouse
@testable import SQLiteEngine
@testable import PostgresEngine

/// Several loaders writing one PostgreSQL warehouse at once, on overlapping inputs
/// (the same archives, and the same messages in different archives), give one loader's
/// warehouse: every file loaded once, every message id once, each column once, the models
/// those of all the calls.
final class PostgresConcurrencyTests: XCTestCase {
    /// `count` archives of 240 messages: tracks of a handful of events (each file bringing a
    /// property of its own, so the loaders add columns as they go), pages, identifies with
    /// traits and groups, from people who come back; archive k repeats 60 messages of
    /// archive k-1 byte for byte.
    static func corpus(in dir: URL, count: Int) throws -> [String] {
        var paths: [String] = []
        var previous: [String] = []
        for k in 0..<count {
            var lines: [String] = Array(previous.suffix(60))
            for i in 0..<(240 - lines.count) {
                let n = k * 1000 + i
                let person = n % 37
                let time = String(format: "2026-11-%02d %02d:%02d:%02d", 1 + k, (n / 60) % 24, n % 60, (n * 7) % 60)
                    .replacingOccurrences(of: " ", with: "T") + ".000Z"
                let common = "\"messageId\":\"m-\(n)\",\"anonymousId\":\"a-\(person)\",\"timestamp\":\"\(time)\",\"receivedAt\":\"\(time)\""
                    + (person % 3 == 0 ? ",\"userId\":\"u-\(person)\"" : "")
                switch n % 6 {
                case 0, 1: lines.append("{\"type\":\"track\",\"event\":\"Event \(n % 5)\",\(common),\"properties\":{\"value\":\(n),\"file_\(k)\":\"f\(k)\",\"plan\":\"p\(n % 4)\"}}")
                case 2, 3: lines.append("{\"type\":\"page\",\"name\":\"Home\",\(common),\"properties\":{\"url\":\"https://example.com/p\(n % 9)?utm_source=s\(k)\",\"path\":\"/p\(n % 9)\"}}")
                case 4: lines.append("{\"type\":\"identify\",\(common),\"userId\":\"u-\(person)\",\"traits\":{\"email\":\"u\(person)@example.com\",\"seen_\(k % 3)\":\(n)}}")
                default: lines.append("{\"type\":\"group\",\(common),\"userId\":\"u-\(person)\",\"groupId\":\"g-\(person % 5)\",\"traits\":{\"name\":\"G\(person % 5)\",\"size\":\(n)}}")
                }
            }
            previous = lines
            let path = dir.appendingPathComponent(String(format: "day-%02d.ndjson.gz", k)).path
            try Data(gzip(lines.joined(separator: "\n") + "\n")).write(to: URL(fileURLWithPath: path))
            paths.append(path)
        }
        return paths
    }

    func testTwoLoadersAtOnceOnOverlappingInputsGiveOneLoadersWarehouse() throws {
        try assertLoadersAtOnce(2, windows: [0..<6, 2..<8], files: 8, database: "conc_two")
    }

    func testFourLoadersAtOnceOnOverlappingInputsGiveOneLoadersWarehouse() throws {
        try assertLoadersAtOnce(4, windows: [0..<5, 2..<7, 4..<9, 0..<9], files: 9, database: "conc_four")
    }

    /// Three loaders at once on a Citus cluster, one through the coordinator and one through
    /// each worker (Citus takes distributed statements on every node with its metadata).
    func testThreeLoadersOnThreeCitusNodesGiveOneLoadersWarehouse() throws {
        let cluster = try TestCitus.shared()
        try assertLoadersAtOnce(3, windows: [0..<5, 2..<7, 4..<9], files: 9, database: "conc_citus", server: cluster) { url, k in
            url.replacingOccurrences(of: ":\(cluster.coordinator.port)/", with: ":\(cluster.nodes[k].port)/")
        }
    }

    /// `loaders` loaders at once, loader k on `windows[k]` of the files, through
    /// `through(url, k)` (the same URL by default).
    func assertLoadersAtOnce(_ loaders: Int, windows: [Range<Int>], files: Int, database: String,
                             server given: (any TestDatabaseServer)? = nil, through: (String, Int) -> String = { url, _ in url },
                             file: StaticString = #filePath, line: UInt = #line) throws {
        let server = try given ?? TestPostgres.shared()
        let dir = try temporaryDirectory(self)
        let paths = try Self.corpus(in: dir, count: files)
        let now = Date(timeIntervalSince1970: 1_780_000_000)
        func options(_ url: String) -> LoadOptions {
            var options = LoadOptions(database: url, jobs: 1)
            options.now = { now }
            return options
        }
        let one = try LoadRun.run(paths: paths, options: options(try server.createDatabase(database + "_one")))
        XCTAssertEqual(one.outcome, .loaded, one.render(), file: file, line: line)

        let shared = try server.createDatabase(database)
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var summaries: [RunSummary] = []
            var failures: [String] = []
        }
        let results = Results()
        let inputs = windows.map { $0.map { paths[$0] } }
        let perLoader = (0..<loaders).map { options(through(shared, $0)) }
        DispatchQueue.concurrentPerform(iterations: loaders) { k in
            do {
                let summary = try LoadRun.run(paths: inputs[k], options: perLoader[k])
                results.lock.withLock { results.summaries.append(summary) }
            } catch {
                results.lock.withLock { results.failures.append("\(error)") }
            }
        }
        XCTAssertEqual(results.failures, [], file: file, line: line)
        for summary in results.summaries {
            XCTAssertEqual(summary.outcome, .loaded, summary.render(), file: file, line: line)
        }
        let all = results.summaries
        XCTAssertEqual(all.count, loaders, file: file, line: line)
        // Every file once: loaded by one loader, skipped by the others (before or during their run).
        XCTAssertEqual(all.reduce(0) { $0 + $1.filesLoaded }, files, file: file, line: line)
        XCTAssertEqual(all.reduce(0) { $0 + $1.filesLoaded + $1.skippedAlreadyLoaded.count }, windows.reduce(0) { $0 + $1.count },
                       file: file, line: line)
        XCTAssertEqual(all.reduce(Int64(0)) { $0 + $1.totals.loaded }, one.totals.loaded, file: file, line: line)

        let expected = try Self.comparable(PostgresConnection(PostgresLocation(shared.replacingOccurrences(of: "/" + database, with: "/" + database + "_one"))))
        let got = try Self.comparable(PostgresConnection(PostgresLocation(shared)))
        XCTAssertEqual(Set(got.keys), Set(expected.keys), file: file, line: line)
        for (name, table) in expected.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(got[name]?.columns, table.columns, "columns of \(name)", file: file, line: line)
            XCTAssertEqual(got[name]?.rows.count, table.rows.count, "rows of \(name)", file: file, line: line)
            if let rows = got[name]?.rows, rows != table.rows {
                XCTFail("\(name) differs: \(zip(table.rows, rows).first { $0.0 != $0.1 }.map { "\($0.0)\n  vs \($0.1)" } ?? "")", file: file, line: line)
            }
        }
    }

    /// The tables with what says which loader or load wrote a row left out (`load_id`, `uuid_ts`,
    /// `first_load_id`, `_loads`, `_models`, bookkeeping rows' ids, and which copy of a message
    /// a file counted as loaded, duplicate or with discards), column order aside (two loaders add a table's
    /// columns in the order they meet them).
    static func comparable(_ db: PostgresConnection) throws -> [String: PostgresDifferentialTests.Table] {
        var tables = try PostgresDifferentialTests.tables(db)
        tables["_loads"] = nil
        tables["_models"] = nil
        tables["_warehouse"] = nil
        for (name, table) in tables {
            let columns = table.columns.map { String($0.split(separator: " ")[0]) }
            let left = Set(["load_id", "first_load_id", "loaded_at", "uuid_ts"])
                .union(name == "_files" ? ["loaded", "duplicates", "discarded"] : [])
                .union(["_files", "_discards", "_rejects"].contains(name) ? ["id"] : [])
            let keep = columns.filter { !left.contains($0) }.sorted()
            let rows = try db.rows("SELECT \(keep.map(quoteIdentifier).joined(separator: ", ")) FROM \(quoteIdentifier(name))")
                .map { $0.map(PostgresDifferentialTests.render).joined(separator: " | ") }.sorted()
            tables[name] = PostgresDifferentialTests.Table(columns: table.columns.sorted(), rows: rows)
        }
        return tables
    }
}
