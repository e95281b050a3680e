import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentStages
@testable import SegmentWarehouse
@testable import SQLiteEngine
@testable import SegmentCore

/// Every broken or hostile input in Tests/Fixtures/hostile (written by
/// scripts/make-hostile-fixtures.py), loaded by the real binary. Each test checks what is
/// special about its fixture; `load` checks what must hold for all of them: a normal exit with
/// the documented code, `integrity_check` ok, every file's accounting balanced, every reject
/// with file, line and reason, and no table, column or index outside the contract.
final class HostileInputTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/hostile")

    struct Loaded {
        var db: URL
        var file: URL
        var result: BinaryResult
    }

    @discardableResult
    func load(_ name: String, exit: Int32 = 0, arguments: [String] = [], file: URL? = nil) throws -> Loaded {
        let dir = try temporaryDirectory(self)
        let copy = dir.appendingPathComponent(name)
        try FileManager.default.copyItem(at: file ?? Self.fixtures.appendingPathComponent(name), to: copy)
        let db = dir.appendingPathComponent("w.sqlite")
        let result = try runSegmentLoader(["load", "--db", db.path] + arguments + [copy.path])
        XCTAssertFalse(result.signaled, "\(name): killed by signal \(result.status)\n\(result.stderr)")
        XCTAssertEqual(result.status, exit, "\(name): \(result.stdout)\n\(result.stderr)")
        try assertSound(db, name)
        return Loaded(db: db, file: copy, result: result)
    }

    func assertSound(_ db: URL, _ name: String) throws {
        XCTAssertEqual(try scalar(db, "PRAGMA integrity_check"), "ok", name)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _files WHERE lines != loaded + duplicates + rejected + filtered"), "0", name)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _rejects WHERE file = '' OR line < 1 OR reason = ''"), "0", name)
        let catalog = Set(try rows(db, "SELECT table_name FROM _schema_tables").map { $0[0] })
        let known = Names.bookkeepingTables.union(Names.contractTables).union(catalog)
        for table in try rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'").map({ $0[0] }) {
            XCTAssertTrue(known.contains(table), "\(name): table \(table) is outside the contract")
            XCTAssertTrue(Self.isCleanName(table), "\(name): table name \(table)")
            guard catalog.contains(table) else { continue }
            let listed = Set(try rows(db, "SELECT column_name FROM _schema_columns WHERE table_name = '\(table)'").map { $0[0] })
            for column in try rows(db, "SELECT name FROM pragma_table_info('\(table)')").map({ $0[0] }) {
                XCTAssertTrue(listed.contains(column) || column == "uuid_ts", "\(name): \(table).\(column) is not in _schema_columns")
                XCTAssertTrue(Self.isCleanName(column), "\(name): column name \(table).\(column)")
            }
        }
        for index in try rows(db, "SELECT name FROM sqlite_master WHERE type = 'index'").map({ $0[0] }) {
            XCTAssertTrue(index.hasPrefix("_idx_") || index.hasPrefix(Models.indexPrefix) || index.hasPrefix("sqlite_autoindex_") || index == "_files_sha256", "\(name): index \(index)")
        }
    }

    /// Lower-case ASCII letters, digits and `_`, at most 63 bytes: a name any SQL tool takes unquoted.
    static func isCleanName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 63 && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f }
    }

    func reasons(_ loaded: Loaded) throws -> [String] {
        try rows(loaded.db, "SELECT line || ': ' || reason FROM _rejects ORDER BY line, item").map { $0[0] }
    }

    // MARK: Compression

    func testGzipTruncatedMidMemberLoadsTheCompleteLinesAndRejectsTheTornOne() throws {
        let l = try load("gz-truncated-mid-member.ndjson.gz", exit: 65)
        XCTAssertEqual(try rows(l.db, "SELECT status, loaded, rejected FROM _files"), [["partial", "171", "1"]])
        XCTAssertEqual(try reasons(l), ["172: torn line: the gzip stream stopped in the middle of it"])
        XCTAssertTrue(l.result.stdout.contains("gzip data ends in the middle of a member: the file is truncated"), l.result.stdout)
    }

    func testCorruptBytesInAMemberLoadNothingFromThatMember() throws {
        let l = try load("gz-corrupt-middle.ndjson.gz", exit: 65)
        XCTAssertEqual(try rows(l.db, "SELECT status, loaded, rejected FROM _files"), [["failed", "0", "390"]])
        XCTAssertEqual(try scalar(l.db, "SELECT count(*) FROM _rejects WHERE reason LIKE 'from a gzip member that is corrupt (corrupt gzip data: incorrect data check%'"), "389")
        XCTAssertEqual(try scalar(l.db, "SELECT count(*) FROM sqlite_master WHERE name = 'tracks'"), "0", "nothing zlib made from damaged data gets in")
        XCTAssertEqual(try scalar(l.db, "SELECT count(*) FROM _message_ids"), "0")
    }

    func testAMemberThatFailsItsChecksumPlansNoColumnType() throws {
        // The second member inflates to sound-looking lines, but its CRC is wrong: its "abc" must
        // not widen `amount` to TEXT for the first member's rows.
        var second = gzip(ndjson([track("bad-crc", properties: ["amount": "abc"])]))
        second[second.count - 8] ^= 0xFF
        let dir = try temporaryDirectory(self)
        let file = try write(gzip(ndjson([track("good", properties: ["amount": 1])])) + second, to: dir.appendingPathComponent("crc.gz"))
        let l = try load("crc.ndjson.gz", exit: 65, file: file)
        XCTAssertEqual(try rows(l.db, "SELECT id, amount, typeof(amount) FROM application_enabled"), [["good", "1", "integer"]])
        XCTAssertEqual(try scalar(l.db, "SELECT type FROM _schema_columns WHERE column_name = 'amount'"), "INTEGER")
        XCTAssertEqual(try reasons(l).count, 1)
        XCTAssertTrue(try reasons(l)[0].hasPrefix("2: from a gzip member that is corrupt (corrupt gzip data: incorrect data check"))
    }

    func testACorruptSecondMemberKeepsTheFirst() throws {
        let l = try load("gz-second-member-corrupt.ndjson.gz", exit: 65)
        XCTAssertEqual(try rows(l.db, "SELECT status, lines, loaded FROM _files"), [["partial", "1", "1"]])
        XCTAssertEqual(try rows(l.db, "SELECT id FROM tracks"), [["ok-1"]])
        XCTAssertTrue(l.result.stdout.contains("corrupt gzip data: invalid"), l.result.stdout)
    }

    func testAnEmptyFileIsSkippedAndReported() throws {
        let l = try load("empty.ndjson.gz")
        XCTAssertTrue(l.result.stdout.contains("not an archive (empty file)"), l.result.stdout)
        XCTAssertEqual(try scalar(l.db, "SELECT count(*) FROM _files"), "0")
    }

    func testZeroLengthMembersAreNothing() throws {
        let l = try load("gz-zero-length-member.ndjson.gz")
        XCTAssertEqual(try rows(l.db, "SELECT status, lines, loaded FROM _files"), [["loaded", "1", "1"]])
    }

    func testPlainTextNamedGzIsReadAsNDJSON() throws {
        let l = try load("plain-text-named.ndjson.gz")
        XCTAssertEqual(try rows(l.db, "SELECT id FROM tracks"), [["ok-1"]])
    }

    func testABinaryFileIsNotAnArchive() throws {
        let l = try load("binary-neither.gz")
        XCTAssertTrue(l.result.stdout.contains("not an archive (neither gzip nor newline-delimited JSON)"), l.result.stdout)
    }

    func testAGzipBombIsRefusedWithBoundedMemoryAndTime() throws {
        // 64 copies of one member holding 64 MiB of zeros: 4 GiB inflated from about 4 MiB.
        let member = gzip(bytes: [UInt8](repeating: 0, count: 64 << 20), level: 9)
        let bomb = Array(repeating: member, count: 64).flatMap { $0 }
        let dir = try temporaryDirectory(self)
        let file = try write(gzip(ndjson([track("before-bomb")])) + bomb, to: dir.appendingPathComponent("bomb.ndjson.gz"))
        XCTAssertLessThan(bomb.count, 5 << 20)

        let started = Date()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let db = dir.appendingPathComponent("w.sqlite")
        let report = dir.appendingPathComponent("report.txt")
        // GNU time's %M: the peak resident set of the loader.
        process.arguments = ["bash", "-c", "command -v /usr/bin/time >/dev/null && exec /usr/bin/time -f %M -o \(report.path) \(segmentLoaderBinary.path) load --db \(db.path) \(file.path) || exec \(segmentLoaderBinary.path) load --db \(db.path) \(file.path)"]
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 65)
        XCTAssertLessThan(Date().timeIntervalSince(started), 60, "inflating stops early")
        if let text = try? String(contentsOf: report, encoding: .utf8), let kb = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            XCTAssertLessThan(kb, 300_000, "peak memory \(kb) KB")
        }
        XCTAssertEqual(try rows(db, "SELECT id FROM tracks"), [["before-bomb"]])
        let error = try scalar(db, "SELECT error FROM _files")
        XCTAssertTrue(error.contains("refused as a likely gzip bomb"), error)
        XCTAssertEqual(try scalar(db, "SELECT reason FROM _rejects"), "line longer than the limit of 1048576 bytes (the raw line is cut to the limit)")
        try assertSound(db, "bomb")
    }

    // MARK: Lines

    func testInvalidJSONIsRejectedWithWhereItWentWrong() throws {
        let l = try load("line-invalid-json.ndjson")
        XCTAssertEqual(try reasons(l), ["2: invalid JSON at byte 33: expected a member name in double quotes, found end of line",
                                        "3: invalid JSON at byte 8: unexpected '}' after the end of the value"])
        XCTAssertEqual(try scalar(l.db, "SELECT raw FROM _rejects WHERE line = 3"), "{\"a\":1}}")
    }

    func testArraysStringsNumbersInsteadOfObjectsAreRejected() throws {
        let l = try load("line-not-an-object.ndjson")
        XCTAssertEqual(try reasons(l), ["2: a message must be a JSON object, not an array", "3: a message must be a JSON object, not a string",
                                        "4: a message must be a JSON object, not a number", "5: a message must be a JSON object, not a null",
                                        "6: a message must be a JSON object, not a boolean"])
    }

    func testInvalidUTF8IsRejectedAndKeptAsBytes() throws {
        let l = try load("line-invalid-utf8.ndjson")
        XCTAssertEqual(try reasons(l), ["2: invalid JSON at byte 63: invalid UTF-8 in a string"])
        XCTAssertEqual(try scalar(l.db, "SELECT typeof(raw) || ' ' || length(raw) FROM _rejects"), "blob 69", "the raw bytes, not a lossy text")
    }

    func testANulByteIsRejected() throws {
        let l = try load("line-nul-byte.ndjson")
        XCTAssertEqual(try reasons(l), ["2: invalid JSON at byte 35: expected a member name in double quotes, found byte 0x0"])
        XCTAssertEqual(try scalar(l.db, "SELECT typeof(raw) FROM _rejects"), "blob")
    }

    func testALineOverTheLimitIsRejectedAndTheNextLoads() throws {
        let l = try load("line-too-long.ndjson.gz")
        XCTAssertEqual(try reasons(l), ["2: line longer than the limit of 1048576 bytes (the raw line is cut to the limit)"])
        XCTAssertEqual(try scalar(l.db, "SELECT length(raw) FROM _rejects"), "1048576")
        XCTAssertEqual(try rows(l.db, "SELECT id FROM tracks ORDER BY id"), [["after-long"], ["ok-1"]])
    }

    func testATenMegabyteStringLoadsWhenTheLimitAllowsIt() throws {
        let rejected = try load("line-10mb-string.ndjson.gz")
        XCTAssertEqual(try reasons(rejected), ["2: line longer than the limit of 1048576 bytes (the raw line is cut to the limit)"])
        let loaded = try load("line-10mb-string.ndjson.gz", arguments: ["--max-line-bytes", String(16 << 20)])
        XCTAssertEqual(try scalar(loaded.db, "SELECT length(text) FROM ok WHERE id = 'big-string'"), String(10 << 20))
    }

    func testNestingTenThousandDeepIsRefusedWithoutOverflowingTheStack() throws {
        let l = try load("line-nested-10000.ndjson")
        XCTAssertEqual(try reasons(l), ["2: invalid JSON at byte 337: nested deeper than 256 levels"])
    }

    func testFiveThousandKeysFillTheColumnLimitAndTheRestGoesToExtra() throws {
        let l = try load("line-5000-keys.ndjson.gz")
        XCTAssertEqual(try scalar(l.db, "SELECT count(*) FROM pragma_table_info('wide') WHERE name LIKE 'key\\_%' ESCAPE '\\'"), "1000")
        XCTAssertEqual(try scalar(l.db, "SELECT json_array_length(json_group_array(k)) FROM (SELECT key AS k FROM json_each((SELECT _extra FROM wide)))"), "4000")
        XCTAssertEqual(try scalar(l.db, "SELECT json_extract(_extra, '$.key_4999') FROM wide"), "4999")
        XCTAssertTrue(l.result.stdout.contains("overflow:   4000 values went to _extra"), l.result.stdout)
    }

    func testTheSameKeyTwiceKeepsTheLastAndRecordsTheFirst() throws {
        let l = try load("line-duplicate-key.ndjson")
        XCTAssertEqual(try rows(l.db, "SELECT user_id, plan FROM dup"), [["u2", "pro"]])
        XCTAssertEqual(try rows(l.db, "SELECT column_name, value, reason FROM _discards ORDER BY column_name"), [
            ["plan", "\"free\"", "properties.plan appears more than once in one object; the last one was kept"],
            ["user_id", "\"u1\"", "userId appears more than once in the message; the last one was kept"],
        ])
    }

    func testNaNAndInfinityAreNotJSON() throws {
        let l = try load("line-nan-infinity.ndjson")
        XCTAssertEqual(try reasons(l), ["2: invalid JSON at byte 79: NaN and Infinity are not JSON numbers",
                                        "3: invalid JSON at byte 79: NaN and Infinity are not JSON numbers",
                                        "4: invalid JSON at byte 81: a number needs digits"])
    }

    func testNumbersBeyondIntegerAndDoubleRangeKeepTheirDigits() throws {
        let l = try load("line-huge-numbers.ndjson")
        XCTAssertEqual(try rows(l.db, "SELECT big_int, beyond_double, tiny, neg_big, exact, typeof(exact) FROM huge"),
                       [["123456789012345678901234567890", "1e400", "1e-400", "-99999999999999999999", "9007199254740993", "integer"]])
        XCTAssertEqual(try rows(l.db, "SELECT column_name, type FROM _schema_columns WHERE table_name = 'huge' AND origin = 'property' ORDER BY 1"),
                       [["beyond_double", "TEXT"], ["big_int", "TEXT"], ["exact", "INTEGER"], ["neg_big", "TEXT"], ["tiny", "TEXT"]])
    }

    func testEscapedNulIsKeptAndLoneSurrogatesAreRecorded() throws {
        let l = try load("line-escapes-nul-surrogates.ndjson")
        XCTAssertEqual(try rows(l.db, "SELECT hex(nul), hex(lone_high), hex(lone_low), pair FROM esc"), [["610062", "78EFBFBD79", "EFBFBD", "😀"]])
        let discard = try rows(l.db, "SELECT column_name, reason, json_extract(value, '$') FROM _discards")
        XCTAssertEqual(discard.first?[0], "_extra")
        XCTAssertEqual(discard.first?[1], "2 lone UTF-16 surrogate escapes (not valid Unicode) replaced by U+FFFD; the value is the original line")
        XCTAssertTrue(discard.first?[2].contains("x\\ud800y") == true, "the original escapes are kept: \(discard)")
    }

    // MARK: Messages

    func testMissingAndUnknownTypesAreRejected() throws {
        XCTAssertEqual(try reasons(try load("msg-missing-type.ndjson")), ["2: missing type: the message has neither \"type\" nor \"action\""])
        XCTAssertEqual(try reasons(try load("msg-unknown-type.ndjson")), [
            "2: unsupported type \"delete\": only track, identify, page, screen, group and alias are loaded",
            "3: unsupported type \"Purchase\": only track, identify, page, screen, group and alias are loaded"])
    }

    func testMessagesWithoutIdsOrEventAreRejected() throws {
        XCTAssertEqual(try reasons(try load("msg-no-ids.ndjson")), ["2: missing id: the message needs a userId or an anonymousId",
                                                                     "3: missing id: the message needs a userId or an anonymousId"])
        XCTAssertEqual(try reasons(try load("msg-track-without-event.ndjson")), ["2: track without an event name", "3: track without an event name"])
    }

    func testIdsOfTheWrongTypeAreRejectedAndNumbersBecomeText() throws {
        let l = try load("msg-ids-wrong-type.ndjson")
        XCTAssertEqual(try reasons(l), ["2: userId must be a string or a number, not a object", "3: userId must be a string or a number, not a array",
                                        "4: userId must be a string or a number, not a boolean"])
        XCTAssertEqual(try rows(l.db, "SELECT id, user_id, anonymous_id FROM tracks WHERE id != 'ok-1' ORDER BY id"),
                       [["987654", "u1", "NULL"], ["floatid", "NULL", "1.5"], ["numid", "12345", "NULL"]])
    }

    func testTimestampsInEveryOddForm() throws {
        let l = try load("msg-odd-timestamps.ndjson")
        XCTAssertEqual(try rows(l.db, "SELECT id, original_timestamp, json_extract(_extra, '$.timestamp') FROM stamped ORDER BY CAST(substr(id, 3) AS INTEGER)"), [
            ["ts0", "2024-03-01 10:00:00.000", "NULL"],        // no zone: UTC
            ["ts1", "2024-03-01 10:00:00.000", "NULL"],        // +0530
            ["ts2", "2024-03-01 10:00:00.123", "NULL"],        // nine fraction digits
            ["ts3", "2015-02-02 00:30:08.276", "NULL"],        // one-digit month
            ["ts4", "2020-05-09 23:54:49.210", "NULL"],        // Go's time.String()
            ["ts5", "2024-03-01 10:00:00.000", "NULL"],        // epoch seconds
            ["ts6", "2024-03-01 10:00:00.123", "NULL"],        // epoch milliseconds
            ["ts7", "NULL", ""],                                // empty: missing, kept in _extra
            ["ts8", "NULL", "0000-01-01T00:00:00Z"],            // year 0: outside the format, kept
            ["ts9", "NULL", "10000-01-01T00:00:00Z"],           // year 10000: likewise
            ["ts10", "NULL", "not a time"],
            ["ts11", "NULL", "NULL"],                           // null: missing
        ])
        XCTAssertEqual(try scalar(l.db, "SELECT count(*) FROM stamped WHERE timestamp IS NULL OR received_at IS NULL"), "0")
    }

    // MARK: Names

    func testNamesBuiltToBreakSQLAreJustNames() throws {
        let l = try load("names-sql-injection.ndjson")
        XCTAssertEqual(try scalar(l.db, "SELECT count(*) FROM tracks"), "4", "tracks survived")
        XCTAssertEqual(try rows(l.db, "SELECT table_name, event_names FROM _schema_tables WHERE call_type = 'track' AND table_name != 'tracks' ORDER BY 1"), [
            ["__loads", "[\"_loads\"]"], ["_sqlite_master", "[\"sqlite_master\"]"], ["drop_table_tracks", "[\"\\\"); DROP TABLE tracks; --\"]"],
            ["ok", "[\"Ok\"]"]])
        XCTAssertEqual(try rows(l.db, "SELECT drop_table_tracks, a_b, c, d_e, f_g FROM drop_table_tracks"), [["1", "2", "3", "4", "5"]])
        // A column named rowid would hide SQLite's rowid: it is prefixed like a keyword.
        XCTAssertEqual(try rows(l.db, "SELECT sqlite_master, _rowid, _oid, rowid FROM _sqlite_master"), [["1", "2", "3", "1"]])
        XCTAssertEqual(try rows(l.db, "SELECT _loads, __extra, _id, id FROM __loads"), [["1", "2", "prop-id", "sql3"]])
    }

    func testNamesEmptyAfterNormalizationAreKept() throws {
        let l = try load("names-empty-after-normalization.ndjson")
        let tables = try rows(l.db, "SELECT table_name, event_names FROM _schema_tables WHERE table_name LIKE '\\_event\\_%' ESCAPE '\\' ORDER BY 2")
        XCTAssertEqual(tables.map { $0[1] }, ["[\"!!!\"]", "[\"ключ\"]"])
        let table = tables[1][0]
        let extra = try scalar(l.db, "SELECT _extra FROM \(table)")
        for key in ["ключ", "名前", "$$$", "\"\":3", "\" \":4"] where !key.hasPrefix("\"") {
            XCTAssertTrue(extra.contains(key), "\(key) in \(extra)")
        }
    }

    func testNamesOfTenThousandCharactersAreCutWithAStableHash() throws {
        let l = try load("names-10000-chars.ndjson")
        let table = try scalar(l.db, "SELECT table_name FROM _schema_tables WHERE event_names LIKE '[\"EEEE%'")
        XCTAssertEqual(table.utf8.count, 63)
        let columns = try rows(l.db, "SELECT column_name FROM _schema_columns WHERE table_name = '\(table)' AND origin = 'property' ORDER BY 1").map { $0[0] }
        XCTAssertEqual(columns.count, 2, "two different long keys stay two columns")
        XCTAssertTrue(columns.allSatisfy { $0.utf8.count <= 63 })
    }

    func testKeysDifferingOnlyInCaseOrPunctuationShareAColumnAndTheCollisionIsRecorded() throws {
        let l = try load("names-case-punct-collisions.ndjson")
        // go-snakecase: a run of capitals is one word, so ORDERID is `orderid`, not `order_id`.
        XCTAssertEqual(try rows(l.db, "SELECT id, order_id, orderid FROM order_completed ORDER BY id"),
                       [["case1", "5", "NULL"], ["case2", "NULL", "6"], ["case3", "NULL", "NULL"]])
        let keys = try scalar(l.db, "SELECT source_keys FROM _schema_columns WHERE table_name = 'order_completed' AND column_name = 'order_id'")
        for key in ["orderId", "OrderID", "order_id", "order-id", "Order Id"] {
            XCTAssertTrue(keys.contains("properties.\(key)"), "\(key) in \(keys)")
        }
        XCTAssertEqual(try scalar(l.db, "SELECT count(*) FROM _discards WHERE table_name = 'order_completed'"), "4")
        XCTAssertEqual(try scalar(l.db, "SELECT event_names FROM _schema_tables WHERE table_name = 'order_completed'"),
                       "[\"ORDER COMPLETED\",\"Order Completed\",\"order_completed\"]")
    }

    func testEventsNamedLikeContractTablesGetAPrefix() throws {
        let l = try load("names-contract-tables.ndjson")
        XCTAssertEqual(try rows(l.db, "SELECT table_name FROM _schema_tables WHERE call_type = 'track' AND table_name != 'tracks' ORDER BY 1").map { $0[0] }, [
            "__event_1234abcd", "__files", "__idx_tracks_user_id", "__schema_columns", "_identifies", "_sqlite_sequence", "_tracks", "_users", "ok"])
        XCTAssertEqual(try scalar(l.db, "SELECT count(*) FROM tracks"), "9")
        XCTAssertEqual(try scalar(l.db, "SELECT count(*) FROM sqlite_master WHERE name = 'users'"), "0", "an event named users never makes a users table")
    }
}

/// Faults outside the data: a full disk, a warehouse that cannot be written, a database that
/// is not ours.
final class FaultTests: XCTestCase {
    func archives(in dir: URL) throws -> [URL] {
        let small = try write(gzip(ndjson((0..<5).map { track("a\($0)") })), to: dir.appendingPathComponent("in/a.gz"))
        var rng = SeededGenerator(seed: 0x5EED)  // seeded: a failure reproduces
        let big = try write(gzip(ndjson((0..<1500).map { i in
            track("b\(i)", event: "Big Event", properties: ["noise": (0..<500).map { _ in String(UInt8.random(in: 0...255, using: &rng), radix: 16) }.joined()])
        })), to: dir.appendingPathComponent("in/b.gz"))
        return [small, big]
    }

    func testADiskFullStopsTheRunKeepsWhatWasCommittedAndTheNextRunResumes() throws {
        let dir = try temporaryDirectory(self)
        let files = try archives(in: dir)
        let db = dir.appendingPathComponent("w.sqlite")
        // 300 pages of 4 KiB: room for the bookkeeping and a.gz, not for b.gz.
        let full = try runSegmentLoader(["load", "--db", db.path, "--test-max-pages", "300", dir.appendingPathComponent("in").path])
        XCTAssertFalse(full.signaled)
        XCTAssertEqual(full.status, 74, full.stdout + full.stderr)
        XCTAssertTrue(full.stdout.contains("cannot write to the warehouse (database or disk is full): the disk is full or the file or its folder is not writable."), full.stdout)
        XCTAssertTrue(full.stdout.contains("free space or fix permissions and run again to resume"), full.stdout)
        XCTAssertEqual(try rows(db, "SELECT path, status FROM _files"), [[files[0].path, "loaded"]])
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = 'big_event'"), "0", "b.gz's table was rolled back with its rows")
        XCTAssertEqual(try scalar(db, "PRAGMA integrity_check"), "ok")

        let resumed = try runSegmentLoader(["load", "--db", db.path, dir.appendingPathComponent("in").path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("1 loaded, 0 partial, 0 failed, 1 skipped (already loaded)"), resumed.stdout)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM big_event"), "1500")
        XCTAssertEqual(try scalar(db, "SELECT group_concat(status) FROM (SELECT status FROM _loads ORDER BY id)"), "failed,succeeded")
    }

    func testAWarehouseThatCannotBeWrittenStopsWithACleanMessage() throws {
        let dir = try temporaryDirectory(self)
        let files = try archives(in: dir)
        let db = dir.appendingPathComponent("w.sqlite")
        XCTAssertEqual(try runSegmentLoader(["load", "--db", db.path, files[0].path]).status, 0)
        let before = try dumpWarehouse(db)
        let locked = dir.appendingPathComponent("locked")
        try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: true)
        for suffix in ["", ".lock", "-wal", "-shm"] where FileManager.default.fileExists(atPath: db.path + suffix) {
            try FileManager.default.moveItem(atPath: db.path + suffix, toPath: locked.appendingPathComponent("w.sqlite" + suffix).path)
        }
        let lockedDb = locked.appendingPathComponent("w.sqlite")
        try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: lockedDb.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: locked.path)
        addTeardownBlock { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: locked.path) }
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: files[1].path)

        // Root writes anything: run the loader as nobody, as a cron user without rights would be.
        func runUnprivileged() throws -> (Int32, String) {
            var arguments = ["load", "--db", lockedDb.path, files[1].path]
            var binary = segmentLoaderBinary.path
            if geteuid() == 0 {
                arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", binary] + arguments
                binary = "/usr/bin/setpriv"
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
            let err = Pipe()
            process.standardError = err
            process.standardOutput = Pipe()
            try process.run()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, stderr)
        }
        let (status, stderr) = try runUnprivileged()
        XCTAssertEqual(status, 74, stderr)
        XCTAssertTrue(stderr.contains("cannot write in the folder of the warehouse \(lockedDb.path)") && stderr.contains("Permission denied"), stderr)
        XCTAssertEqual(try dumpWarehouse(lockedDb), before, "the warehouse is unchanged")

        // The folder writable, the file not.
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: locked.path)
        try? FileManager.default.removeItem(atPath: lockedDb.path + ".lock")
        let (fileStatus, fileError) = try runUnprivileged()
        XCTAssertEqual(fileStatus, 74, fileError)
        XCTAssertTrue(fileError.contains("cannot write to the warehouse \(lockedDb.path): attempt to write a readonly database"), fileError)
        XCTAssertEqual(try dumpWarehouse(lockedDb), before, "the warehouse is unchanged")
    }

    func testADatabaseThatIsNotAWarehouseOrIsNewerIsRefusedUntouched() throws {
        let dir = try temporaryDirectory(self)
        let files = try archives(in: dir)
        let other = dir.appendingPathComponent("app.sqlite")
        try Database(path: other.path).execute("CREATE TABLE customers (id INTEGER); INSERT INTO customers VALUES (1)")
        let bytes = try Data(contentsOf: other)
        let refused = try runSegmentLoader(["load", "--db", other.path, files[0].path])
        XCTAssertEqual(refused.status, 64)
        XCTAssertTrue(refused.stderr.contains("is an SQLite database but not a segment-loader warehouse"), refused.stderr)
        XCTAssertEqual(try Data(contentsOf: other), bytes)
        XCTAssertFalse(FileManager.default.fileExists(atPath: other.path + ".lock"), "nothing is created beside it either")

        let newer = dir.appendingPathComponent("newer.sqlite")
        XCTAssertEqual(try runSegmentLoader(["load", "--db", newer.path, files[0].path]).status, 0)
        try Database(path: newer.path).execute("PRAGMA user_version = 99; PRAGMA wal_checkpoint(TRUNCATE)")
        let newerBytes = try Data(contentsOf: newer)
        let tooNew = try runSegmentLoader(["load", "--db", newer.path, files[1].path])
        XCTAssertEqual(tooNew.status, 64)
        XCTAssertTrue(tooNew.stderr.contains("was written by a newer segment-loader (warehouse format 99, this build knows \(Warehouse.formatVersion)); refusing to change it"), tooNew.stderr)
        XCTAssertEqual(try Data(contentsOf: newer), newerBytes)
    }
}

/// Inputs the fuzzer once crashed on (Tests/Fixtures/fuzz), replayed through the harness's
/// entry points so that `swift test` catches a regression without fuzzing.
final class FuzzRegressionTests: XCTestCase {
    /// Each input the fuzzer found, replayed without trapping: what it must give, and no
    /// broken check; one input's failure is reported and the others still run.
    func testEveryInputTheFuzzerFoundStillGivesWhatItMust() throws {
        let folder = HostileInputTests.fixtures.deletingLastPathComponent().appendingPathComponent("fuzz")
        func counts(_ lines: Int64, loaded: Int64, rejected: Int64, discarded: Int64) -> Counts {
            var c = Counts()
            (c.lines, c.loaded, c.rejected, c.discarded) = (lines, loaded, rejected, discarded)
            return c
        }
        let expected: [String: FuzzEntry.Replay] = [
            // A gzip member zlib found corrupt: every line of it handed on distrusted and rejected.
            "distrusted-long-line.gz": FuzzEntry.Replay(messages: 0, rejects: [.json], archiveLines: 377,
                                                        loaded: counts(377, loaded: 0, rejected: 377, discarded: 0)),
            // Two lines (as one line, not JSON); each keeps the last of a duplicate key and
            // records the first in _discards.
            "duplicate-keys-round-trip.ndjson": FuzzEntry.Replay(messages: 0, rejects: [.json], archiveLines: 2,
                                                                 loaded: counts(2, loaded: 2, rejected: 0, discarded: 2)),
            // 10 KB whose damaged member inflates a thousandfold to 860,948 lines, each a
            // _rejects row (a libFuzzer timeout: 35 s under AddressSanitizer, linear but long):
            // the harness's bomb guard refuses it after its first line, which loads (a member
            // refused before its checksum is read is cut, as a truncated one), and the second
            // is rejected where it was cut.
            "thousandfold-corrupt-member.gz": FuzzEntry.Replay(messages: 0, rejects: [.json], archiveLines: 2,
                                                               loaded: counts(2, loaded: 1, rejected: 1, discarded: 0)),
            // One byte: a rejected line; as a file, not an archive at all (nothing loads).
            "one-byte-reject.bin": FuzzEntry.Replay(messages: 0, rejects: [.json], archiveLines: 1,
                                                    loaded: counts(0, loaded: 0, rejected: 0, discarded: 0)),
        ]
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        XCTAssertEqual(Set(files), Set(expected.keys), "every fuzz input has its expectation")
        let scratch = try temporaryDirectory(self).appendingPathComponent("scratch").path
        for name in files {
            let data = try Data(contentsOf: folder.appendingPathComponent(name))
            let replay = data.withUnsafeBytes { FuzzEntry.replay($0.bindMemory(to: UInt8.self), scratch: scratch) }
            XCTAssertEqual(replay, expected[name], name)
        }
    }

    /// A broken check is reported, not trapped, by a replay: the next input still runs.
    func testAReplayReportsABrokenCheckInsteadOfStopping() {
        let checks = FuzzEntry.Checks(trap: false)
        checks.check(1 + 1 == 3, "arithmetic")
        checks.check(true, "fine")
        XCTAssertEqual(checks.failures, ["arithmetic"])
    }

    func testADistrustedLongLineIsCutToTheLimit() throws {
        let dir = try temporaryDirectory(self)
        let file = try write(String(repeating: "x", count: 5000) + "\n{}\n", to: dir.appendingPathComponent("a.ndjson"))
        var seen: [(Int, Int, String?)] = []
        _ = try ArchiveReader(maxLineBytes: 1024).read(path: file.path, format: .ndjson, distrust: Distrust(fromLine: 1, reason: "damaged")) {
            seen.append(($0, $1.count, $2?.reason))
        }
        XCTAssertEqual(seen.map(\.0), [1, 2])
        XCTAssertEqual(seen.map(\.1), [1024, 2])
        XCTAssertEqual(seen.map(\.2), ["damaged", "damaged"])
    }
}
