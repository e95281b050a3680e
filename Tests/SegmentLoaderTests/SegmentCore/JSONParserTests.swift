import XCTest
@testable import SegmentLoader
@testable import SegmentCore

final class JSONParserTests: XCTestCase {
    func testObjectsKeepOrderAndDuplicateKeys() throws {
        let value = try JSONParser.parse(#"{"b":1,"a":[true,null,"x"],"b":2}"#)
        guard case .object(let members) = value else { return XCTFail("not an object") }
        XCTAssertEqual(members.map(\.key), ["b", "a", "b"])
        XCTAssertEqual(value["b"], .int(2), "the last duplicate wins")
        XCTAssertEqual(value["a"], .array([.bool(true), .null, .string("x")]))
    }

    func testNumbers() throws {
        XCTAssertEqual(try JSONParser.parse("9223372036854775807"), .int(Int64.max))
        XCTAssertEqual(try JSONParser.parse("-9223372036854775808"), .int(Int64.min))
        XCTAssertEqual(try JSONParser.parse("1.5"), .double(1.5))
        XCTAssertEqual(try JSONParser.parse("0.30000000000000004"), .double(0.30000000000000004))
        XCTAssertEqual(try JSONParser.parse("1e300"), .double(1e300))
        XCTAssertEqual(try JSONParser.parse("10000000000000000000"), .double(1e19), "beyond Int64 but the same digits as a double")
        XCTAssertEqual(try JSONParser.parse("18446744073709551616"), .bigNumber("18446744073709551616"), "prints back as 1.8446744073709552e+19")
        XCTAssertEqual(try JSONParser.parse("12345678901234567891"), .bigNumber("12345678901234567891"), "a double would lose digits")
        XCTAssertEqual(try JSONParser.parse("1e999"), .bigNumber("1e999"))
        XCTAssertThrowsError(try JSONParser.parse("01"))
        XCTAssertThrowsError(try JSONParser.parse("NaN"))
    }

    func testStringsAndEscapes() throws {
        XCTAssertEqual(try JSONParser.parse(#""caf\u00e9 \ud83d\ude00 \"q\" \\ \n""#), .string("café 😀 \"q\" \\ \n"))
        XCTAssertEqual(try JSONParser.parse(#""\ud83d""#), .string("\u{FFFD}"), "a lone surrogate becomes U+FFFD")
        XCTAssertEqual(try JSONParser.parse(#""Ünïcode""#), .string("Ünïcode"))
        let invalid: [UInt8] = [0x22, 0xff, 0xfe, 0x22]
        XCTAssertThrowsError(try invalid.withUnsafeBufferPointer { try JSONParser.parse($0) }) { error in
            XCTAssertTrue("\(error)".contains("invalid UTF-8"))
        }
    }

    func testErrorsSayWhere() {
        XCTAssertThrowsError(try JSONParser.parse(#"{"a":1,"b":}"#)) { error in
            XCTAssertEqual("\(error)", "invalid JSON at byte 12: unexpected '}'")
        }
        XCTAssertThrowsError(try JSONParser.parse(#"{"a":"unterminated"#)) { error in
            XCTAssertTrue("\(error)".contains("unterminated string"))
        }
    }

    func testDeepNestingIsRefusedNotACrash() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        XCTAssertThrowsError(try JSONParser.parse(deep)) { error in
            XCTAssertTrue("\(error)".contains("nested deeper than"))
        }
    }

    func testCanonicalWriterSortsKeysAndResolvesDuplicates() throws {
        let value = try JSONParser.parse(#"{"b":1,"a":{"y":2,"x":1},"b":3}"#)
        XCTAssertEqual(JSONWriter.string(value, sortedKeys: true), #"{"a":{"x":1,"y":2},"b":3}"#)
    }
}
