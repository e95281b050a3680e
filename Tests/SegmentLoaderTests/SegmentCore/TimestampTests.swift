import XCTest
@testable import SegmentLoader
@testable import SegmentCore

final class TimestampTests: XCTestCase {
    func normalized(_ text: String) -> String? {
        Timestamp.parse(text).map(Timestamp.format)
    }

    func testLenientForms() {
        XCTAssertEqual(normalized("2024-03-01T10:00:00Z"), "2024-03-01 10:00:00.000")
        XCTAssertEqual(normalized("2024-03-01T10:00:00.123456789Z"), "2024-03-01 10:00:00.123")
        XCTAssertEqual(normalized("2024-03-01T10:00:00.1239Z"), "2024-03-01 10:00:00.124", "rounded to the millisecond")
        XCTAssertEqual(normalized("2024-03-01T15:30:00+05:30"), "2024-03-01 10:00:00.000")
        XCTAssertEqual(normalized("2024-03-01T15:30:00+0530"), "2024-03-01 10:00:00.000")
        XCTAssertEqual(normalized("2024-03-01T02:00:00-08:00"), "2024-03-01 10:00:00.000")
        XCTAssertEqual(normalized("2024-03-01 10:00:00Z"), "2024-03-01 10:00:00.000", "space instead of T")
        XCTAssertEqual(normalized("2024-03-01T10:00:00"), "2024-03-01 10:00:00.000", "no zone means UTC")
        XCTAssertEqual(normalized("2015-2-02T00:30:08.276Z"), "2015-02-02 00:30:08.276")
        XCTAssertEqual(normalized("2020-05-09 23:54:49.209808489 +0000 UTC"), "2020-05-09 23:54:49.210", "Go's time.String()")
        XCTAssertEqual(normalized("2024-02-29T23:59:59.9995Z"), "2024-03-01 00:00:00.000")
    }

    func testRejectsWhatIsNotADateTime() {
        for text in ["", "2024-03-01", "yesterday", "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
                     "2024-03-01T25:00:00Z", "2024-03-01T10:00:00Zjunk", "0000-01-01T00:00:00Z", "1700000000"] {
            XCTAssertNil(Timestamp.parse(text), text)
        }
    }

    func testFormatSortsAsText() {
        let a = Timestamp.format(Timestamp.parse("1999-12-31T23:59:59.999Z")!)
        let b = Timestamp.format(Timestamp.parse("2000-01-01T00:00:00Z")!)
        XCTAssertLessThan(a, b)
        XCTAssertEqual(Timestamp.format(Instant(seconds: -1)), "1969-12-31 23:59:59.000")
    }

    func testS3DayFolder() {
        XCTAssertEqual(Timestamp.day(fromEpochMilliseconds: 1_432_684_800_000), "2015-05-27")
    }
}
