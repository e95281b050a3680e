import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentStages

final class SplitterTests: XCTestCase {
    func plans(_ json: String) throws -> [(table: String, withPayload: Bool)] {
        var normalizer = Normalizer(loadTime: Instant(seconds: 0))
        let message = try normalizer.normalize(try JSONParser.parse(json))
        var result: [(String, Bool)] = []
        Splitter.forEachRow(type: message.type, table: message.table) { plan in
            result.append((normalizer.names.name(plan.table), plan.withPayload))
        }
        return result
    }

    func testATrackGoesToTracksAndToItsEventsTable() throws {
        let rows = try plans(#"{"type":"track","event":"Order Completed","userId":"u","properties":{"total":3}}"#)
        XCTAssertEqual(rows.map(\.table), ["tracks", "order_completed"])
        XCTAssertEqual(rows.map(\.withPayload), [false, true], "only the event's table takes the properties")
    }

    func testOtherCallsGoToTheirOwnTable() throws {
        XCTAssertEqual(try plans(#"{"type":"identify","userId":"u","traits":{"a":1}}"#).map(\.table), ["identifies"])
        XCTAssertEqual(try plans(#"{"type":"page","userId":"u"}"#).map(\.table), ["pages"])
        XCTAssertEqual(try plans(#"{"type":"screen","userId":"u"}"#).map(\.table), ["screens"])
        XCTAssertEqual(try plans(#"{"type":"group","userId":"u","groupId":"g"}"#).map(\.table), ["groups"])
        XCTAssertEqual(try plans(#"{"type":"alias","userId":"u","previousId":"p"}"#).map(\.table), ["aliases"])
        XCTAssertEqual(try plans(#"{"type":"track","event":"users","userId":"u"}"#).map(\.table), ["tracks", "_users"])
    }
}
