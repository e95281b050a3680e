import XCTest
@testable import SegmentLoader
@testable import SegmentStages
@testable import SegmentCore

final class ArchiveReaderTests: XCTestCase {
    struct Line: Equatable {
        var number: Int
        var text: String
        var problem: String?
    }

    func readAll(_ url: URL, format: ArchiveFormat, maxLineBytes: Int = 1 << 20) throws -> ([Line], ReadOutcome) {
        var lines: [Line] = []
        let outcome = try ArchiveReader(maxLineBytes: maxLineBytes, blockSize: 7).read(path: url.path, format: format) { n, bytes, problem in
            lines.append(Line(number: n, text: String(decoding: bytes, as: UTF8.self), problem: problem?.reason))
        }
        return (lines, outcome)
    }

    func testMultiMemberGzipIsReadWhole() throws {
        let dir = try temporaryDirectory(self)
        let file = try write(gzip("{\"a\":1}\n{\"a\":2}\n") + gzip("{\"a\":3}\n"), to: dir.appendingPathComponent("two-members.gz"))
        let (lines, outcome) = try readAll(file, format: .gzip)
        XCTAssertEqual(lines.map(\.text), [#"{"a":1}"#, #"{"a":2}"#, #"{"a":3}"#])
        XCTAssertNil(outcome.streamError)
        XCTAssertEqual(outcome.physicalLines, 3)
    }

    func testCRLFBOMAndBlankLines() throws {
        let dir = try temporaryDirectory(self)
        let file = try write("\u{FEFF}{\"a\":1}\r\n\r\n   \n{\"a\":2}", to: dir.appendingPathComponent("crlf.ndjson"))
        let (lines, outcome) = try readAll(file, format: .ndjson)
        XCTAssertEqual(lines, [Line(number: 1, text: #"{"a":1}"#), Line(number: 4, text: #"{"a":2}"#)])
        XCTAssertEqual(outcome.physicalLines, 4)
    }

    func testTruncatedGzipKeepsCompleteLinesAndReportsTheTornOne() throws {
        let dir = try temporaryDirectory(self)
        let text = (1...200).map { "{\"n\":\($0),\"pad\":\"\(String(repeating: "x", count: $0 % 17))\"}\n" }.joined()
        let whole = gzip(text)
        let file = try write(Array(whole[0..<(whole.count * 2 / 3)]), to: dir.appendingPathComponent("truncated.ndjson.gz"))
        let (lines, outcome) = try readAll(file, format: .gzip)
        XCTAssertNotNil(outcome.streamError)
        XCTAssertTrue(outcome.streamError!.contains("truncated"))
        let torn = lines.last!
        XCTAssertEqual(torn.problem, "torn line: the gzip stream stopped in the middle of it")
        XCTAssertTrue(lines.dropLast().allSatisfy { $0.problem == nil })
        XCTAssertEqual(lines.dropLast().map(\.number), Array(1..<lines.count))
    }

    func testCorruptSecondMember() throws {
        let dir = try temporaryDirectory(self)
        var second = gzip("{\"a\":2}\n")
        second[12] ^= 0xff
        second[14] ^= 0xff
        let file = try write(gzip("{\"a\":1}\n") + second, to: dir.appendingPathComponent("corrupt-second-member.gz"))
        let (lines, outcome) = try readAll(file, format: .gzip)
        XCTAssertEqual(lines.first?.text, #"{"a":1}"#)
        XCTAssertNotNil(outcome.streamError)
    }

    func testOverlongLineIsCutAndReported() throws {
        let dir = try temporaryDirectory(self)
        let file = try write("{\"a\":\"\(String(repeating: "y", count: 3000))\"}\n{\"b\":1}\n", to: dir.appendingPathComponent("long.ndjson"))
        let (lines, _) = try readAll(file, format: .ndjson, maxLineBytes: 1024)
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(lines[0].text.utf8.count, 1024)
        XCTAssertTrue(lines[0].problem!.contains("longer than the limit of 1024 bytes"))
        XCTAssertEqual(lines[1], Line(number: 2, text: #"{"b":1}"#))
    }

    func testSniffingAndS3Layout() throws {
        let dir = try temporaryDirectory(self)
        try write(gzip("{\"a\":1}\n"), to: dir.appendingPathComponent("segment-logs/src1/1432684800000/a.gz"))
        try write("{\"a\":1}\n", to: dir.appendingPathComponent("segment-logs/src1/1432684800000/inflated.gz"))
        try write("Segment S3 test upload\n", to: dir.appendingPathComponent("segment-logs/dummy-object.txt"))
        try write("", to: dir.appendingPathComponent("empty.ndjson"))
        let found = try Discovery.find([dir.path])
        XCTAssertEqual(found.archives.map { URL(fileURLWithPath: $0.path).lastPathComponent }, ["a.gz", "inflated.gz"])
        XCTAssertEqual(found.archives.map(\.format), [.gzip, .ndjson], "decided by the first bytes, not the name")
        XCTAssertEqual(found.archives[0].sourceId, "src1")
        XCTAssertEqual(found.archives[0].day, "2015-05-27")
        XCTAssertEqual(found.skipped.map(\.reason).sorted(), ["empty file", "neither gzip nor newline-delimited JSON"])
    }
}
