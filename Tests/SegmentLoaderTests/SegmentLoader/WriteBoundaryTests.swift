import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentStages
@testable import SQLiteEngine

/// The write side behind one boundary. Names that must match a table, the spill's
/// damage, `_loads` when recording fails, the column limit in one place, the scoped transaction.
final class WriteBoundaryTests: XCTestCase {
    var dir: URL!
    var db: URL!

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
        db = dir.appendingPathComponent("w.sqlite")
    }

    // MARK: NameTable

    /// Every fixed id is the position of its name in `NameTable.fixed`, so `name(id)` is that name.
    func testNameTableIdsArePositionsInItsTable() {
        let ids: [(Int32, String)] = [
            (NameTable.id, "id"), (NameTable.anonymousId, "anonymous_id"), (NameTable.userId, "user_id"),
            (NameTable.receivedAt, "received_at"), (NameTable.sentAt, "sent_at"), (NameTable.originalTimestamp, "original_timestamp"),
            (NameTable.timestamp, "timestamp"), (NameTable.uuidTs, "uuid_ts"), (NameTable.event, "event"), (NameTable.eventText, "event_text"),
            (NameTable.name, "name"), (NameTable.category, "category"), (NameTable.groupId, "group_id"), (NameTable.previousId, "previous_id"),
            (NameTable.extra, "_extra"), (NameTable.context, "context"),
            (NameTable.keyMessageId, "messageId"), (NameTable.keyAnonymousId, "anonymousId"), (NameTable.keyUserId, "userId"),
            (NameTable.keyReceivedAt, "receivedAt"), (NameTable.keySentAt, "sentAt"), (NameTable.keyOriginalTimestamp, "originalTimestamp"),
            (NameTable.keyTimestamp, "timestamp_key"), (NameTable.keyEvent, "event_key"), (NameTable.keyName, "name_key"),
            (NameTable.keyCategory, "category_key"), (NameTable.keyGroupId, "groupId"), (NameTable.keyPreviousId, "previousId"),
            (NameTable.keyFrom, "from"), (NameTable.keyTo, "to"), (NameTable.keyContext, "context_key"),
            (NameTable.rootProperties, "properties"), (NameTable.rootTraits, "traits"), (NameTable.tracks, "tracks"),
            (NameTable.users, "users"), (NameTable.accounts, "accounts"),
        ] + CallType.allCases.map { (NameTable.table(of: $0), $0.table) }
        XCTAssertEqual(Set(ids.map(\.1)), Set(NameTable.fixed), "every fixed name has its id checked")
        let names = NameTable()
        for (id, name) in ids {
            XCTAssertEqual(NameTable.fixed.firstIndex(of: name).map(Int32.init), id, name)
            XCTAssertEqual(names.name(id), name)
            XCTAssertEqual(names.id(name), id)
        }
        XCTAssertEqual(Set(ids.map(\.0)).count, NameTable.fixed.count, "no two names share an id")
        for profile in Profile.allCases {
            XCTAssertEqual(names.name(profile.table), profile.tableName)
            XCTAssertEqual(names.name(profile.sourceTable), profile.sourceName)
        }
    }

    // MARK: Spill files

    func spill(_ chunks: Int) throws -> String {
        let path = dir.appendingPathComponent("spill.bin").path
        var writer = try SpillWriter(path: path)
        let names = NameTable()
        var processor = LineProcessor(loadTime: Instant(date: Date(timeIntervalSince1970: 1_700_000_000)), names: names)
        for c in 0..<chunks {
            var chunk = Chunk()
            for i in 0..<3 {
                let line = Array(jsonLine(track("c\(c)-\(i)", properties: ["n": i])).utf8)
                line.withUnsafeBufferPointer { bytes in
                    for parsed in processor.process(bytes, problem: nil) {
                        _ = chunk.add(parsed, line: i + 1, bytes: bytes, file: 0, processor: processor, filter: MessageFilter())
                    }
                }
            }
            let broken = Array("{broken".utf8)
            broken.withUnsafeBufferPointer { bytes in
                _ = chunk.add(.reject(.json, "invalid", item: nil), line: 4, bytes: bytes, file: 0, processor: processor, filter: MessageFilter())
            }
            try writer.write(chunk)
        }
        try writer.finish()
        writer.close()
        return path
    }

    func readAll(_ path: String) throws -> Int {
        var reader = try SpillReader(path: path, file: 0)
        defer { reader.close() }
        var count = 0
        while let chunk = try reader.next() { count += chunk.items.count }
        return count
    }

    /// Whatever byte of a spill file is changed, reading it stops with a TemporaryStorageError
    /// naming the damage; it never traps and never hands on changed records.
    func testEveryDamagedByteOfASpillIsReportedNotTrappedOn() throws {
        let path = try spill(2)
        XCTAssertEqual(try readAll(path), 8)
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        for offset in 0..<original.count {
            var damaged = original
            damaged[offset] ^= 0x5A
            try damaged.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try readAll(path), "byte \(offset)") { error in
                XCTAssertTrue(error is TemporaryStorageError, "byte \(offset): \(error)")
                XCTAssertTrue("\(error)".contains("the run's spill file is damaged") || "\(error)".contains("ends early"), "\(error)")
            }
        }
        // Cut short anywhere: also reported.
        let firstChunk = 12 + 12 + Int(original[12]) + Int(original[13]) << 8 + Int(original[14]) << 16
        for length in [4, 12, 20, firstChunk, original.count - 8, original.count - 1] {
            try original.prefix(length).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try readAll(path), "cut at \(length)") { XCTAssertTrue($0 is TemporaryStorageError, "\($0)") }
        }
    }

    /// A spill damaged between the passes stops the run with exit 74 and a sentence; nothing
    /// of the file is loaded, `_loads` says failed, and the next run loads everything.
    func testADamagedSpillStopsTheRunWithExit74() throws {
        let file = try write(gzip(ndjson((0..<50).map { track("m\($0)") })), to: dir.appendingPathComponent("a.gz"))
        let result = try runSegmentLoader(["load", "--db", db.path, "--test-damage-spill", file.path])
        XCTAssertEqual(result.status, 74, result.stdout + result.stderr)
        XCTAssertTrue((result.stdout + result.stderr).contains("the run's spill file is damaged"), result.stdout + result.stderr)
        XCTAssertTrue((result.stdout + result.stderr).contains("run again to resume"), result.stdout + result.stderr)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _files"), "0")
        XCTAssertEqual(try rows(db, "SELECT status FROM _loads"), [["failed"]])
        XCTAssertFalse(FileManager.default.fileExists(atPath: db.path + ".run-ids"), "the damaged spill is removed")
        let again = try runSegmentLoader(["load", "--db", db.path, file.path])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), "50")
    }

    // MARK: _loads says how a run ended

    /// A `_loads` row that cannot be written in full still says `failed`, with why; the run fails.
    func testAFailingFinishLoadLeavesLoadsSayingFailed() throws {
        let file = try write(gzip(ndjson([track("a")])), to: dir.appendingPathComponent("a.gz"))
        try load([file], into: db)
        try Database(path: db.path).execute("""
            CREATE TRIGGER no_counts BEFORE UPDATE OF files_loaded ON _loads BEGIN SELECT RAISE(ABORT, 'counts are read-only here'); END
            """)
        let second = try write(gzip(ndjson([track("b")])), to: dir.appendingPathComponent("b.gz"))
        let summary = try load([second], into: db)
        XCTAssertEqual(summary.status, "failed")
        XCTAssertTrue(summary.fatalError?.contains("cannot record the end of load 2 in _loads") == true, summary.fatalError ?? "")
        XCTAssertEqual(try rows(db, "SELECT id, status, coalesce(error LIKE '%counts are read-only here%', 0) FROM _loads ORDER BY id"),
                       [["1", "succeeded", "0"], ["2", "failed", "1"]])
        let cli = try runSegmentLoader(["load", "--db", db.path, try write(gzip(ndjson([track("c")])), to: dir.appendingPathComponent("c.gz")).path])
        XCTAssertEqual(cli.status, 1, cli.stdout)
    }

    /// When not even the status can be written, the next run writes it: the failure is not
    /// turned into `interrupted`.
    func testALoadThatCannotRecordItsEndAtAllIsRecordedByTheNextRun() throws {
        let file = try write(gzip(ndjson([track("a")])), to: dir.appendingPathComponent("a.gz"))
        try load([file], into: db)
        try Database(path: db.path).execute("""
            CREATE TRIGGER frozen BEFORE UPDATE ON _loads BEGIN SELECT RAISE(ABORT, 'frozen'); END
            """)
        let summary = try load([try write(gzip(ndjson([track("b")])), to: dir.appendingPathComponent("b.gz"))], into: db)
        XCTAssertEqual(summary.status, "failed")
        XCTAssertTrue(summary.fatalError?.contains("the next run records it") == true, summary.fatalError ?? "")
        XCTAssertEqual(try scalar(db, "SELECT status FROM _loads WHERE id = 2"), "running")
        try Database(path: db.path).execute("DROP TRIGGER frozen")
        try load([try write(gzip(ndjson([track("c")])), to: dir.appendingPathComponent("c.gz"))], into: db)
        XCTAssertEqual(try rows(db, "SELECT id, status, coalesce(error LIKE '%frozen%', 0) FROM _loads ORDER BY id"),
                       [["1", "succeeded", "0"], ["2", "failed", "1"], ["3", "succeeded", "0"]])
        XCTAssertFalse(FileManager.default.fileExists(atPath: db.path + ".unrecorded"))
    }

    /// `rejects retry` whose models fail to build finishes its load as `failed`, not `running`.
    func testAFailingModelsBuildInRejectsRetryLeavesLoadsSayingFailed() throws {
        let broken = #"{"type":"trak","messageId":"r1","userId":"u1","event":"E","receivedAt":"2024-03-01T10:00:00Z"}"#
        let file = try write(broken + "\n", to: dir.appendingPathComponent("a.ndjson"))
        try load([file], into: db) { $0.models.enabled = false }
        let database = try Database(path: db.path)
        // Something of the user's own where the models write: their build fails.
        try database.execute("CREATE VIEW identities AS SELECT 1 AS anonymous_id")
        try database.execute(#"UPDATE _rejects SET raw = replace(raw, '"trak"', '"track"')"#)
        XCTAssertThrowsError(try RejectRetry.run(options: LoadOptions(database: db.path))) { error in
            XCTAssertTrue("\(error)".contains("identities"), "\(error)")
        }
        XCTAssertEqual(try rows(db, "SELECT pipeline, status, error IS NOT NULL FROM _loads ORDER BY id"),
                       [["load", "succeeded", "0"], ["rejects retry", "failed", "1"]])
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), "1", "the retried rows were committed before the models")
    }

    // MARK: The column limit, in the catalog

    /// The catalog alone decides which new columns a table gets: up to the limit, then `_extra`
    /// (created once); the row writer puts values without a column into `_extra`, across chunks,
    /// files and the users table.
    func testTheColumnLimitIsDecidedByTheCatalogAcrossChunksAndFiles() throws {
        func identify(_ id: String, _ traits: [String: Any]) -> [String: Any] {
            SegmentLoaderTests.identify(id, user: "u1", at: "2024-03-01T10:00:00.000Z", traits: traits)
        }
        // 1100 messages: the second chunk brings a key the first did not have.
        var first = (0..<1099).map { identify("i\($0)", ["a": 1, "b": 2]) }
        first.append(identify("late", ["c": 3]))
        let one = try write(gzip(ndjson(first)), to: dir.appendingPathComponent("1.gz"))
        let two = try write(gzip(ndjson([identify("next", ["d": 4, "a": 5])])), to: dir.appendingPathComponent("2.gz"))
        let summary = try load([one, two], into: db) { $0.columnLimit = 2 }
        XCTAssertEqual(summary.overflowValues, 2)
        XCTAssertEqual(try rows(db, "SELECT column_name FROM _schema_columns WHERE table_name = 'identifies' AND origin IN ('trait', 'extra') ORDER BY rowid"),
                       [["a"], ["b"], ["_extra"]])
        XCTAssertEqual(try rows(db, "SELECT id, a, b, _extra FROM identifies WHERE id IN ('late', 'next', 'i0') ORDER BY id"),
                       [["i0", "1", "2", "NULL"], ["late", "NULL", "NULL", #"{"c":3}"#], ["next", "5", "NULL", #"{"d":4}"#]])
        XCTAssertEqual(try rows(db, "SELECT column_name FROM _schema_columns WHERE table_name = 'users' AND origin = 'trait' ORDER BY rowid"),
                       [["a"], ["b"]])
    }

    // MARK: The scoped transaction

    func testATransactionCommitsOnReturnAndRollsBackOnThrow() throws {
        let database = try Database(path: db.path)
        try database.execute("CREATE TABLE t (x)")
        let n = try database.transaction { () throws -> Int in
            try database.execute("INSERT INTO t VALUES (1)")
            return 1
        }
        XCTAssertEqual(n, 1)
        struct Stop: Error {}
        XCTAssertThrowsError(try database.transaction { try database.execute("INSERT INTO t VALUES (2)"); throw Stop() }) {
            XCTAssertTrue($0 is Stop, "the body's error comes back, not the rollback's")
        }
        XCTAssertFalse(database.isInTransaction)
        XCTAssertEqual(try database.scalar("SELECT group_concat(x) FROM t")?.text, "1")
        // SQLite rolls a transaction back itself on a full disk: nothing is left to roll back,
        // and the disk error is what comes back.
        try database.execute("PRAGMA max_page_count = \(try database.scalar("PRAGMA page_count")?.integer ?? 2)")
        XCTAssertThrowsError(try database.transaction {
            try database.execute("INSERT INTO t SELECT randomblob(100000)")
        }) { error in
            XCTAssertTrue((error as? SQLiteError)?.isDiskProblem == true, "\(error)")
        }
        XCTAssertFalse(database.isInTransaction)
    }
}

/// The warehouse the sample data makes, compared with what the loader wrote before its write
/// side was rebuilt behind the Destination boundary (`Tests/Fixtures/sample-warehouse.dump`,
/// written by `scripts/warehouse-dump.py dump` from that build's warehouse): the same tables,
/// columns, types, rows and indexes, load times and load ids aside.
final class SampleWarehouseTests: XCTestCase {
    func testTheSampleDataMakesTheSameWarehouseAsBefore() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = try temporaryDirectory(self)
        for item in ["pipelines", "sample-data"] {
            try FileManager.default.copyItem(at: repo.appendingPathComponent(item), to: dir.appendingPathComponent(item))
        }
        // From the folder, as README's first command runs it: paths are stored as given.
        let load = try runBinary(URL(fileURLWithPath: "/bin/sh"), ["-c", "cd '\(dir.path)' && exec '\(segmentLoaderBinary.path)' run pipelines/sample.yml"])
        XCTAssertEqual(load.status, 0, load.stdout + load.stderr)
        let dump = try runBinary(URL(fileURLWithPath: "/usr/bin/env"),
                                 ["python3", repo.appendingPathComponent("scripts/warehouse-dump.py").path, "dump", dir.appendingPathComponent("warehouse.sqlite").path, dir.path])
        XCTAssertEqual(dump.status, 0, dump.stderr)
        let expected = try String(contentsOf: repo.appendingPathComponent("Tests/Fixtures/sample-warehouse.dump"), encoding: .utf8)
        let got = dump.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let want = expected.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(got.count, want.count)
        for (a, b) in zip(got, want) where a != b {
            XCTFail("first difference:\n  now:    \(a)\n  before: \(b)")
            break
        }
    }
}
