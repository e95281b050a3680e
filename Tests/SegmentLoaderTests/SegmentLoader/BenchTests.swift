import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentStages

final class CorpusTests: XCTestCase {
    func lines(_ files: [URL]) throws -> [[String]] {
        try files.map { file in
            var lines: [String] = []
            _ = try ArchiveReader().read(path: file.path, format: .gzip) { _, bytes, _ in
                lines.append(String(decoding: bytes, as: UTF8.self))
            }
            return lines
        }
    }

    func testTheCorpusIsDeterministicAndShapedLikeTheIssueSays() throws {
        let dir = try temporaryDirectory(self)
        let spec = CorpusSpec(events: 4000, files: 4, seed: 7)
        let a = try Corpus.generate(spec, into: dir.appendingPathComponent("a"), jobs: 2)
        let b = try Corpus.generate(spec, into: dir.appendingPathComponent("b"), jobs: 1)
        XCTAssertEqual(try a.map { try Data(contentsOf: $0) }, try b.map { try Data(contentsOf: $0) }, "same spec, same bytes")

        let perFile = try lines(a)
        XCTAssertEqual(perFile.map(\.count), [1000, 1000, 1000, 1000])
        let messages = try perFile.flatMap { try $0.map { try JSONParser.parse($0) } }
        var types: [String: Int] = [:]
        for m in messages { types[m["type"]!.stringValue!, default: 0] += 1 }
        XCTAssertEqual(Double(types["track"]!) / 4000, 0.70, accuracy: 0.04)
        XCTAssertEqual(Double(types["page"]!) / 4000, 0.12, accuracy: 0.03)
        XCTAssertEqual(Double(types["identify"]!) / 4000, 0.08, accuracy: 0.03)
        XCTAssertEqual(Double(types["screen"]!) / 4000, 0.05, accuracy: 0.02)
        XCTAssertNotNil(types["group"])
        XCTAssertNotNil(types["alias"])

        let averageLine = Double(perFile.joined().reduce(0) { $0 + $1.utf8.count }) / 4000
        XCTAssertEqual(averageLine, 1000, accuracy: 250, "about 1 KB per line")

        // About 1% of later files' messages repeat an earlier file's messageId.
        let ids = perFile.map { Set($0.compactMap { try? JSONParser.parse($0)["messageId"]?.stringValue }) }
        let repeated = (1..<4).reduce(0) { $0 + ids[$1].intersection(ids[$1 - 1]).count }
        XCTAssertEqual(Double(repeated) / 3000, 0.01, accuracy: 0.006)

        // 3 to 15 properties; the late keys (past the 12th) only in the second half of the files.
        for (f, file) in perFile.enumerated() {
            for line in file {
                guard case .object(let properties)? = try JSONParser.parse(line)["properties"],
                      try JSONParser.parse(line)["type"] == .string("track") else { continue }
                XCTAssertTrue((3...15).contains(properties.count), "\(properties.count) properties")
                if f < 2 { XCTAssertLessThanOrEqual(properties.count, 12) }
            }
        }
        let lateKeys = perFile[2...].joined().contains { line in
            guard case .object(let members)? = try? JSONParser.parse(line)["properties"] else { return false }
            return members.count > 12
        }
        XCTAssertTrue(lateKeys, "keys that first appear part-way through")
    }
}

/// `bench --nightly` as the cron user's case is measured: a night per `load`, each with its
/// bytes written (what the load handed to write(2), read from /proc before the child is
/// reaped) and the growth line; `--loader` measures another build with the same measure.
final class NightlyBenchTests: XCTestCase {
    func testTheNightlyBenchMeasuresEveryNightWithTheLoaderItIsGiven() throws {
        let dir = try temporaryDirectory(self)
        let result = try runSegmentLoader(["bench", "--nightly", "--nights", "7", "--people", "300", "--dir", dir.path,
                                           "--loader", segmentLoaderBinary.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let rows = result.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            .filter { $0.count == 10 && Int($0[0]) != nil }
        XCTAssertEqual(rows.map { $0[0] }, (1...7).map(String.init))
        for row in rows {
            // A night writes its rows to the WAL and again into the database: more than its NDJSON.
            XCTAssertGreaterThan(Double(row[6]) ?? 0, 0, "written MB of night \(row[0])")
            XCTAssertGreaterThan(Double(row[7]) ?? 0, 1, "written/NDJSON of night \(row[0])")
        }
        XCTAssertTrue(result.stdout.contains("growth: the last 5 nights' mean wall"), result.stdout)

        let refused = try runSegmentLoader(["bench", "--loader", segmentLoaderBinary.path, "--dir", dir.path])
        XCTAssertEqual(refused.status, 64)
        XCTAssertTrue(refused.stderr.contains("--loader goes with --nightly"), refused.stderr)
    }
}
