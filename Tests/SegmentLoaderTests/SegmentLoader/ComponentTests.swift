import Dispatch
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentStages
@testable import SegmentWarehouse

/// Unit tests of pieces other tests only reach through a whole load: the value
/// converter, the channel between a worker and the writer, and the normalizer's name cache.
final class ComponentTests: XCTestCase {
    // MARK: ValueConversion.convert

    func testValuesConvertToTheirColumnOnlyWithoutLosingInformation() {
        func convert(_ value: FieldValue, _ type: ColumnType) -> ValueConversion.Conversion { ValueConversion.convert(value, to: type) }
        XCTAssertEqual(convert(.null, .integer), .value(.null))
        XCTAssertEqual(convert(.int(42), .integer), .value(.integer(42)))
        XCTAssertEqual(convert(.real(3.0), .integer), .value(.integer(3)), "a whole double fits an integer")
        XCTAssertEqual(convert(.bool(true), .boolean), .value(.integer(1)))
        XCTAssertEqual(convert(.int(7), .real), .value(.real(7)))
        XCTAssertEqual(convert(.text("hi"), .text), .value(.text("hi")))
        XCTAssertEqual(convert(.int(42), .text), .value(.text("42")), "anything is text, as its JSON")
        XCTAssertEqual(convert(.timestamp(normalized: "2024-03-01 10:00:00.000", raw: "2024-03-01T10:00:00Z"), .timestamp),
                       .value(.text("2024-03-01 10:00:00.000")))
        XCTAssertEqual(convert(.timestamp(normalized: "2024-03-01 10:00:00.000", raw: "2024-03-01T10:00:00Z"), .text),
                       .value(.text("2024-03-01T10:00:00Z")), "in a text column a timestamp keeps what was sent")
        guard case .discard(let why) = convert(.real(3.5), .integer) else { return XCTFail("3.5 does not fit an integer") }
        XCTAssertTrue(why.contains("does not fit a INTEGER column"), why)
        guard case .discard = convert(.int(1 << 60), .real) else { return XCTFail("2^60 loses digits as a double") }
        guard case .discard = convert(.text("abc"), .integer) else { return XCTFail("text is no integer") }
        guard case .discard = convert(.int(2), .boolean) else { return XCTFail("2 is no boolean") }
    }

    // MARK: Channel

    func testAChannelKeepsOrderBlocksWhenFullAndDropsAfterClose() {
        let channel = Channel<Int>(capacity: 2)
        XCTAssertTrue(channel.send(1))
        XCTAssertTrue(channel.send(2))
        let third = DispatchSemaphore(value: 0)
        let sent = Locked(false)
        DispatchQueue.global().async {
            sent.withLock { $0 = channel.send(3) }
            third.signal()
        }
        // Full: the third send cannot have completed before a receive makes room.
        XCTAssertEqual(third.wait(timeout: .now() + .milliseconds(300)), .timedOut)
        XCTAssertEqual(channel.receive(), 1)
        third.wait()
        XCTAssertTrue(sent.withLock { $0 })
        XCTAssertEqual(channel.receive(), 2)
        XCTAssertEqual(channel.receive(), 3)
        channel.close()
        XCTAssertFalse(channel.send(4), "a closed channel drops what is sent")
        channel.waitUntilFinished()  // returns at once once closed
    }

    // MARK: NameCache

    func testTheNameCacheFindsWhatItHoldsByKeyParentAndScopeAcrossGrowth() {
        var cache = NameCache(size: 8)
        func name(_ i: Int) -> Normalizer.CachedName { Normalizer.CachedName(key: Int32(i), column: Int32(1000 + i), prefix: "p\(i)") }
        for i in 0..<500 {
            let key = "key\(i % 50)"
            let parent = Int32(i / 50), scope = UInt8(i % 2)
            cache.insert(key, parent: parent, scope: scope, hash: NameCache.hash(key, parent: parent, scope: scope), value: name(i))
        }
        XCTAssertEqual(cache.count, 500)
        for i in 0..<500 {
            let key = "key\(i % 50)"
            let parent = Int32(i / 50), scope = UInt8(i % 2)
            XCTAssertEqual(cache.find(key, parent: parent, scope: scope, hash: NameCache.hash(key, parent: parent, scope: scope))?.column, Int32(1000 + i))
        }
        // Same key, another parent or scope: not found.
        XCTAssertNil(cache.find("key1", parent: 99, scope: 1, hash: NameCache.hash("key1", parent: 99, scope: 1)))
        XCTAssertNil(cache.find("key1", parent: 0, scope: 0, hash: NameCache.hash("key1", parent: 0, scope: 0)), "key1 was inserted with scope 1")
        XCTAssertNotEqual(NameCache.hash("", parent: 0, scope: 0), 0, "0 marks an empty slot")
        cache.removeAll()
        XCTAssertEqual(cache.count, 0)
        XCTAssertNil(cache.find("key0", parent: 0, scope: 0, hash: NameCache.hash("key0", parent: 0, scope: 0)))
    }
}
