import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentStages

final class NormalizerTests: XCTestCase {
    var normalizer = Normalizer(loadTime: Timestamp.parse("2030-01-01T00:00:00Z")!)

    func normalize(_ json: String) throws -> Message {
        try normalizer.normalize(try JSONParser.parse(json))
    }

    func value(_ fields: [Field], _ column: String) -> FieldValue? {
        fields.first { normalizer.names.name($0.column) == column }?.value
    }

    func key(_ fields: [Field], _ column: String) -> String? {
        fields.first { normalizer.names.name($0.column) == column }.map { normalizer.names.keyName($0.key) }
    }

    func testFlatteningNamesAndTypes() throws {
        let m = try normalize("""
            {"type":"track","event":"Order Completed","userId":"u1","messageId":"m1","receivedAt":"2024-03-01T10:00:00Z",
             "properties":{"orderId":"o1","total":12.5,"items":3,"gift":false,"tags":["a","b"],"shipping":{"address":{"street":"Main"}},
                           "when":"2024-02-01T00:00:00+01:00","day":"2024-02-01","user_id":"other","id":7,"ключ":1,"2faEnabled":true,"_extra":"mine"},
             "context":{"page":{"path":"/x"},"userAgent":"UA"}}
            """)
        XCTAssertEqual(m.type, .track)
        XCTAssertEqual(normalizer.names.name(m.table), "order_completed")
        XCTAssertEqual(value(m.common, "event"), .text("order_completed"))
        XCTAssertEqual(value(m.common, "event_text"), .text("Order Completed"))
        XCTAssertEqual(value(m.payload, "order_id"), .text("o1"))
        XCTAssertEqual(value(m.payload, "total"), .real(12.5))
        XCTAssertEqual(value(m.payload, "items"), .int(3))
        XCTAssertEqual(value(m.payload, "gift"), .bool(false))
        XCTAssertEqual(value(m.payload, "tags"), .json(#"["a","b"]"#))
        XCTAssertEqual(value(m.payload, "shipping_address_street"), .text("Main"))
        XCTAssertEqual(value(m.payload, "_when"),  .timestamp(normalized: "2024-01-31 23:00:00.000", raw: "2024-02-01T00:00:00+01:00"))
        XCTAssertEqual(value(m.payload, "day"), .text("2024-02-01"), "a bare date stays text")
        XCTAssertEqual(value(m.payload, "_user_id"), .text("other"), "a property named like a common column is kept under _")
        XCTAssertEqual(value(m.payload, "_id"), .int(7))
        XCTAssertEqual(value(m.payload, "_2fa_enabled"), .bool(true))
        XCTAssertEqual(value(m.payload, "__extra"), .text("mine"), "a property may not take the _extra column")
        XCTAssertEqual(value(m.payload, "_extra"), .json(#"{"ключ":1}"#), "a key with no ASCII name goes to _extra")
        XCTAssertEqual(value(m.context, "context_page_path"), .text("/x"))
        XCTAssertEqual(value(m.context, "context_user_agent"), .text("UA"))
        XCTAssertEqual(key(m.payload, "order_id"), "properties.orderId")
        XCTAssertEqual(key(m.context, "context_page_path"), "context.page.path")
    }

    /// rudder-sdk-python (and RudderStack's other libraries) send an identify's traits in
    /// context.traits only; they are its traits then. Top-level traits still win.
    func testAnIdentifyWithTraitsOnlyInContextTakesThem() throws {
        let rudder = try normalize("""
            {"type":"identify","userId":"u1","messageId":"m1","context":{"traits":{"email":"a@x.test","seats":3},"library":{"name":"analytics-python"}}}
            """)
        XCTAssertEqual(value(rudder.payload, "email"), .text("a@x.test"))
        XCTAssertEqual(value(rudder.payload, "seats"), .int(3))
        XCTAssertEqual(value(rudder.context, "context_traits_email"), .text("a@x.test"), "the context keeps them too, as sent")
        let segment = try normalize("""
            {"type":"identify","userId":"u1","messageId":"m2","traits":{"plan":"pro"},"context":{"traits":{"email":"a@x.test"}}}
            """)
        XCTAssertEqual(value(segment.payload, "plan"), .text("pro"))
        XCTAssertNil(value(segment.payload, "email"))
        let track = try normalize("""
            {"type":"track","event":"E","userId":"u1","messageId":"m3","context":{"traits":{"email":"a@x.test"}}}
            """)
        XCTAssertNil(value(track.payload, "email"), "only identify calls take context.traits")
    }

    func testKeysOfOneMessageOnOneColumnKeepTheLastAndDiscardTheRest() throws {
        let m = try normalize(#"{"type":"identify","userId":"u1","traits":{"orderId":1,"order_id":2,"Order Id":3}}"#)
        XCTAssertEqual(value(m.payload, "order_id"), .int(3))
        XCTAssertEqual(m.discards.map(\.value), ["1", "2"])
        XCTAssertTrue(m.discards[0].reason.contains("traits.orderId and traits.Order Id both map to column order_id"))
    }

    func testClockSkewCorrectionForClientMessages() throws {
        // Straight from a client (no originalTimestamp): its timestamp is the original one.
        let m = try normalize("""
            {"type":"track","event":"e","anonymousId":"a","timestamp":"2024-03-01T10:00:00.000Z",
             "sentAt":"2024-03-01T10:00:05.000Z","receivedAt":"2024-03-01T10:00:02.500Z"}
            """)
        XCTAssertEqual(value(m.common, "original_timestamp"), .timestamp(normalized: "2024-03-01 10:00:00.000", raw: ""))
        XCTAssertEqual(value(m.common, "timestamp"), .timestamp(normalized: "2024-03-01 09:59:57.500", raw: ""),
                       "receivedAt - (sentAt - originalTimestamp)")
    }

    func testMessagesThroughSegmentKeepTheirTimestamp() throws {
        let m = try normalize("""
            {"type":"track","event":"e","anonymousId":"a","timestamp":"2024-03-01T11:00:00Z","originalTimestamp":"2024-03-01T10:00:00Z",
             "sentAt":"2024-03-01T10:00:05Z","receivedAt":"2024-03-01T10:00:02Z"}
            """)
        XCTAssertEqual(value(m.common, "timestamp"), .timestamp(normalized: "2024-03-01 11:00:00.000", raw: ""))
    }

    func testMissingSentAtStandsInAsReceivedAt() throws {
        let m = try normalize(#"{"type":"track","event":"e","anonymousId":"a","timestamp":"2024-03-01T10:00:00Z","receivedAt":"2024-03-01T10:00:09Z"}"#)
        XCTAssertEqual(value(m.common, "timestamp"), .timestamp(normalized: "2024-03-01 10:00:00.000", raw: ""))
    }

    func testRawClientBatchWithoutReceivedAt() throws {
        let m = try normalize(#"{"type":"track","event":"e","anonymousId":"a","timestamp":"2024-03-01T10:00:00Z","sentAt":"2024-03-01T10:00:03Z"}"#)
        XCTAssertEqual(value(m.common, "received_at"), .timestamp(normalized: "2024-03-01 10:00:03.000", raw: ""))
        XCTAssertEqual(value(m.common, "timestamp"), .timestamp(normalized: "2024-03-01 10:00:00.000", raw: ""))
        let bare = try normalize(#"{"type":"track","event":"e","anonymousId":"a"}"#)
        XCTAssertEqual(value(bare.common, "received_at"), .timestamp(normalized: "2030-01-01 00:00:00.000", raw: ""), "the load time")
        XCTAssertEqual(value(bare.common, "timestamp"), .timestamp(normalized: "2030-01-01 00:00:00.000", raw: ""))
    }

    func testUnparseableTimestampIsKeptInExtra() throws {
        let m = try normalize(#"{"type":"track","event":"e","anonymousId":"a","sentAt":"last tuesday","receivedAt":"2024-03-01T10:00:00Z"}"#)
        XCTAssertNil(value(m.common, "sent_at"))
        XCTAssertEqual(value(m.payload, "_extra"), .json(#"{"sentAt":"last tuesday"}"#))
    }

    func testLegacyFormsAndNumericIds() throws {
        let alias = try normalize(#"{"action":"Alias","from":"anon-1","to":"u1"}"#)
        XCTAssertEqual(alias.type, .alias)
        XCTAssertEqual(value(alias.common, "previous_id"), .text("anon-1"))
        XCTAssertEqual(value(alias.common, "user_id"), .text("u1"))
        let group = try normalize(#"{"type":"group","groupId":987,"userId":42,"traits":{"name":"Acme"}}"#)
        XCTAssertEqual(value(group.common, "group_id"), .text("987"))
        XCTAssertEqual(value(group.common, "user_id"), .text("42"))
        XCTAssertEqual(value(group.payload, "name"), .text("Acme"))
        let old = try normalize(#"{"type":"track","event":"e","userId":"u","context":{"library":"analytics-ruby"}}"#)
        XCTAssertEqual(value(old.context, "context_library"), .text("analytics-ruby"))
    }

    func testRejections() {
        let cases: [(String, String)] = [
            (#"[1,2]"#, "a message must be a JSON object, not an array"),
            (#"{"userId":"u"}"#, "missing type"),
            (#"{"type":"delete","userId":"u"}"#, "unsupported type \"delete\""),
            (#"{"type":"track","event":"e","userId":null}"#, "missing id"),
            (#"{"type":"track","userId":"u"}"#, "track without an event name"),
            (#"{"type":"track","event":"","userId":"u"}"#, "track without an event name"),
            (#"{"type":"track","event":"e","userId":{"a":1}}"#, "userId must be a string or a number"),
        ]
        for (json, reason) in cases {
            XCTAssertThrowsError(try normalize(json), json) { error in
                XCTAssertTrue("\(error)".contains(reason), "\(error) should contain \(reason)")
            }
        }
    }

    func testDerivedIdIsStableAcrossKeyOrder() throws {
        let a = try normalize(#"{"type":"track","event":"e","userId":"u","properties":{"x":1,"y":2}}"#)
        let b = try normalize(#"{"properties":{"y":2,"x":1},"userId":"u","event":"e","type":"track"}"#)
        let c = try normalize(#"{"type":"track","event":"e","userId":"u","properties":{"x":1,"y":3}}"#)
        XCTAssertTrue(a.id.hasPrefix("sl-"))
        XCTAssertEqual(a.id, b.id)
        XCTAssertNotEqual(a.id, c.id)
    }

    func testWarehouseOptOut() throws {
        XCTAssertTrue(try normalize(#"{"type":"track","event":"e","userId":"u","integrations":{"Warehouses":{"all":false}}}"#).optedOutOfWarehouses)
        XCTAssertTrue(try normalize(#"{"type":"track","event":"e","userId":"u","integrations":{"All":false}}"#).optedOutOfWarehouses)
        XCTAssertFalse(try normalize(#"{"type":"track","event":"e","userId":"u","integrations":{"All":false,"Warehouses":{"all":true}}}"#).optedOutOfWarehouses)
        XCTAssertFalse(try normalize(#"{"type":"track","event":"e","userId":"u","integrations":{}}"#).optedOutOfWarehouses)
    }
}

final class EnvelopeTests: XCTestCase {
    func testBatchItemsTakeTheEnvelopesContextSentAtAndIntegrations() throws {
        let line = try JSONParser.parse("""
            {"batch":[{"type":"track","event":"a","userId":"u","context":{"ip":"1.2.3.4","library":{"version":"9"}}},
                      {"type":"track","event":"b","userId":"u","sentAt":"2024-01-01T00:00:00Z","integrations":{"All":true}}],
             "context":{"library":{"name":"analytics-go","version":"3.0.0"},"ip":"0.0.0.0"},
             "sentAt":"2024-03-01T00:00:00Z","integrations":{"Warehouses":false},"writeKey":"k"}
            """)
        let items = Envelope.messages(in: line)
        XCTAssertEqual(items.count, 2)
        XCTAssertEqual(items[0]["context"]?["ip"], .string("1.2.3.4"), "item keys win")
        XCTAssertEqual(items[0]["context"]?["library"]?["name"], .string("analytics-go"), "merged from the envelope")
        XCTAssertEqual(items[0]["context"]?["library"]?["version"], .string("9"))
        XCTAssertEqual(items[0]["sentAt"], .string("2024-03-01T00:00:00Z"))
        XCTAssertEqual(items[1]["sentAt"], .string("2024-01-01T00:00:00Z"))
        XCTAssertEqual(items[0]["integrations"]?["Warehouses"], .bool(false))
        XCTAssertEqual(items[1]["integrations"]?["All"], .bool(true))
        XCTAssertEqual(items[1]["context"]?["library"]?["name"], .string("analytics-go"))
    }

    func testAPlainLineIsItsOwnMessage() throws {
        let line = try JSONParser.parse(#"{"type":"track"}"#)
        XCTAssertEqual(Envelope.messages(in: line), [line])
    }
}
