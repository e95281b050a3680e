import XCTest
@testable import SegmentLoader
@testable import SegmentStages

final class RunIdsTests: XCTestCase {
    func position(_ received: Int64, _ file: Int32, _ line: Int32) -> Position {
        Position(receivedAt: received, file: file, line: line, item: 0)
    }

    func testRepeatedIdsGetTheSmallestPositionAcrossManyRuns() throws {
        let dir = try temporaryDirectory(self)
        let ids = try RunIds(directory: dir.appendingPathComponent("run-ids"), runLength: 3)
        var first = ids.collector()
        var second = ids.collector()
        try first.add("a", at: position(500, 0, 1))
        try first.add("b", at: position(100, 0, 2))
        try first.add("c", at: position(100, 0, 3))
        try first.add("a", at: position(200, 0, 4))  // a sorted run is written here
        try second.add("a", at: position(200, 1, 1))
        try second.add("d", at: position(100, 1, 2))
        try second.add("b", at: position(100, 1, 3))  // and here
        try second.add("e", at: position(1, 1, 4))
        try first.flush()
        try second.flush()
        let winners = try ids.duplicateWinners()
        XCTAssertEqual(winners, [
            MessageKey("a"): position(200, 0, 4),  // earliest received_at, then the earlier file
            MessageKey("b"): position(100, 0, 2),
        ], "ids seen once (c, d, e) need no entry")
        XCTAssertGreaterThanOrEqual(try FileManager.default.contentsOfDirectory(atPath: ids.directory.path).count, 4)
        ids.remove()
        XCTAssertFalse(FileManager.default.fileExists(atPath: ids.directory.path))
    }
}
