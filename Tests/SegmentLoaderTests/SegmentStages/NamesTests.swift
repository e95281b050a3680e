import XCTest
@testable import SegmentLoader
@testable import SegmentStages

final class NamesTests: XCTestCase {
    /// The contract's test vectors, from segmentio/go-snakecase's own tests.
    func testContractSnakeCaseVectors() {
        let vectors: [(String, String)] = [
            ("sample text", "sample_text"), ("sampleText", "sample_text"), ("something.com", "something_com"),
            ("___$$Base64Encode", "base64_encode"), ("5TEst", "5test"), ("f_pX9", "f_p_x9"),
            ("HTTPRequest", "httprequest"), ("CStringRef", "cstring_ref"), ("Application Enabled", "application_enabled"),
            ("accountType", "account_type"), ("Ünïcode Évent", "n_code_vent"),
        ]
        for (input, expected) in vectors {
            XCTAssertEqual(snakeCase(input), expected, "snakeCase(\(input))")
        }
    }

    func testUpstreamSnakeCaseVectors() {
        let vectors: [(String, String)] = [
            ("sample-text", "sample_text"), ("sample_text", "sample_text"), ("sample___text", "sample_text"),
            ("inviteYourCustomersAddInvites", "invite_your_customers_add_invites"), ("sample 2 Text", "sample_2_text"),
            ("   sample   2    Text   ", "sample_2_text"), ("   $#$sample   2    Text   ", "sample_2_text"),
            ("SAMPLE 2 TEXT", "sample_2_text"), ("FOO:BAR$BAZ", "foo_bar_baz"), ("FOO#BAR#BAZ", "foo_bar_baz"),
            ("$something%", "something"), ("•¶§ƒ˚foo˙∆˚¬", "foo"), ("project:created", "project_created"),
            ("", ""), ("ключ", ""),
        ]
        for (input, expected) in vectors {
            XCTAssertEqual(snakeCase(input), expected, "snakeCase(\(input))")
        }
    }

    func testLeadingDigitsAndKeywordsGetAnUnderscore() {
        XCTAssertEqual(Names.sqlSafe(snakeCase("2faEnabled")), "_2fa_enabled")
        XCTAssertEqual(Names.sqlSafe("select"), "_select")
        XCTAssertEqual(Names.sqlSafe("order"), "_order")
        XCTAssertEqual(Names.sqlSafe("plan"), "plan", "everyday words stay as they are")
        XCTAssertEqual(Names.sqlSafe("action"), "action")
    }

    func testLongNamesAreCutWithAStableHashSuffix() {
        let long = String(repeating: "very_long_property_name_", count: 5)
        let cut = Names.sqlSafe(long)
        XCTAssertEqual(cut.utf8.count, 63)
        XCTAssertEqual(cut, Names.sqlSafe(long), "stable")
        XCTAssertTrue(cut.hasPrefix(String(long.prefix(54)) + "_"))
        XCTAssertNotEqual(cut, Names.sqlSafe(long + "x"), "distinct long names stay distinct")
        XCTAssertEqual(Names.sqlSafe(String(repeating: "a", count: 63)), String(repeating: "a", count: 63))
    }

    func testEventTables() {
        XCTAssertEqual(Names.eventTable(for: "Application Enabled"), "application_enabled")
        XCTAssertEqual(Names.eventTable(for: "tracks"), "_tracks")
        XCTAssertEqual(Names.eventTable(for: "Users"), "_users")
        XCTAssertEqual(Names.eventTable(for: "sqlite_master"), "_sqlite_master")
        XCTAssertEqual(Names.eventTable(for: "_loads"), "__loads", "go-snakecase keeps a clean leading underscore")
        XCTAssertEqual(Names.eventTable(for: "_schema_columns"), "__schema_columns")
        let empty = Names.eventTable(for: "注文")
        XCTAssertTrue(empty.hasPrefix("_event_"))
        XCTAssertEqual(empty.count, "_event_".count + 8)
        XCTAssertNotEqual(empty, Names.eventTable(for: "名前"))
    }
}
