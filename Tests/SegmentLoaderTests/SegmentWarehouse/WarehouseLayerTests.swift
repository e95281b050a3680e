import Foundation
import XCTest
@testable import SegmentCore
@testable import SegmentStages
@testable import SegmentWarehouse
@testable import SegmentLoader
@testable import SQLiteEngine
@testable import PostgresEngine

// The warehouse layer without a database: a session that records what it is asked and holds
// nothing (an empty warehouse), a row target that keeps the rows it is handed, and a
// destination made of them, so that the catalog, the row writer, the bookkeeping and the write
// pass are each seen doing their part, in either dialect.

/// An `SQLSession` over nothing: statements are recorded, queries answer no rows.
final class RecordingSession: SQLSession {
    let dialect: any SQLDialect
    private(set) var statements: [String] = []
    private(set) var performed: [(sql: String, arguments: [SQLValue])] = []
    private(set) var appended: [String: [[SQLValue]]] = [:]

    init(dialect: any SQLDialect) { self.dialect = dialect }

    func execute(_ sql: String) throws { statements.append(sql) }
    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [[SQLValue]] {
        performed.append((sql, arguments))
        return []
    }
    func prepared(_ sql: String) throws -> any SQLPrepared { Statement(session: self, sql: sql) }
    func inTransaction<R>(_ body: () throws -> R) throws -> R { try body() }
    func each(_ sql: String, _ arguments: [SQLValue], _ body: (any SQLRow) throws -> Void) throws {
        performed.append((sql, arguments))
    }
    func appender(_ table: String, columns: [String]) throws -> any SQLAppender { Appender(session: self, table: table) }

    /// The arguments of each INSERT into `table`, in order.
    func inserts(into table: String) -> [[SQLValue]] {
        performed.filter { $0.sql.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("INSERT INTO \(table) ") }.map(\.arguments)
    }

    final class Statement: SQLPrepared {
        let session: RecordingSession
        let sql: String
        init(session: RecordingSession, sql: String) { (self.session, self.sql) = (session, sql) }
        func perform(_ arguments: [SQLValue]) throws -> Int {
            session.performed.append((sql, arguments))
            return 1
        }
        func rows(_ arguments: [SQLValue]) throws -> [[SQLValue]] {
            session.performed.append((sql, arguments))
            return []
        }
    }

    final class Appender: SQLAppender {
        let session: RecordingSession
        let table: String
        init(session: RecordingSession, table: String) { (self.session, self.table) = (session, table) }
        func append(_ values: [SQLValue]) throws { session.appended[table, default: []].append(values) }
        func finish() throws {}
    }
}

/// A `RowTarget` that keeps each row it is handed, by column name.
final class RecordingRows: RowTarget {
    struct Sink: ValueSink {
        let rows: RecordingRows
        let index: Int
        func null() { rows.current[index] = .null }
        func integer(_ value: Int64) { rows.current[index] = .integer(value) }
        func real(_ value: Double) { rows.current[index] = .real(value) }
        func text(_ bytes: UnsafeRawBufferPointer) { rows.current[index] = .text(String(decoding: bytes, as: UTF8.self)) }
        func text(_ string: String) { rows.current[index] = .text(string) }
    }

    private(set) var written: [(table: String, values: [String: SQLValue])] = []
    private var state: TableState?
    fileprivate var current: [Int: SQLValue] = [:]

    var rowBudget: Int? { nil }
    func begin(_ state: TableState) throws {
        self.state = state
        current = [:]
    }
    func sink(at index: Int) -> Sink { Sink(rows: self, index: index) }
    func staticText(_ bytes: UnsafeRawBufferPointer, at index: Int) { current[index] = .text(String(decoding: bytes, as: UTF8.self)) }
    func end() throws -> (rowId: Int64?, refused: [(column: Int, value: String, reason: String)]) {
        let state = state!
        written.append((state.name, Dictionary(uniqueKeysWithValues: current.map { (state.order[$0.key], $0.value) })))
        return (nil, [])
    }
    func rows(of table: String) -> [[String: SQLValue]] { written.filter { $0.table == table }.map(\.values) }
}

/// A destination that writes nowhere: what the write pass asks of it, in order.
final class RecordingDestination: Destination {
    enum Event: Equatable {
        case begin, commit, rollBack
        case claim([String])
        case schema([String])
        case write([String])
        case profileCalls(String)
        case profile(String, [SQLValue])
        case touches(users: [String], anons: [String])
    }

    let session: RecordingSession
    let names: NameTable
    let catalog: Catalog
    let bookkeeping: Bookkeeping
    let rowTarget = RecordingRows()
    let rowWriter: RowWriter<RecordingRows>
    private(set) var events: [Event] = []
    /// Message ids committed by earlier files (or runs): claims of them are duplicates.
    var loaded: Set<String>
    private var claimedInFile: Set<String> = []
    var keepsTouches: Bool

    init(names: NameTable, loaded: Set<String> = [], keepsTouches: Bool = true) throws {
        session = RecordingSession(dialect: SQLiteDialect.sqlite)
        self.names = names
        catalog = try Catalog(session: session, names: names, loadId: 1, columnLimit: 1000, eventTableLimit: EventTableLimit.defaultLimit)
        bookkeeping = try Bookkeeping(session: session, names: names, loadId: 1, uuidTs: "2024-03-01 00:00:00.000")
        rowWriter = RowWriter(target: rowTarget, catalog: catalog, bookkeeping: bookkeeping, uuidTs: "2024-03-01 00:00:00.000")
        self.loaded = loaded
        self.keepsTouches = keepsTouches
    }

    func file<R>(_ body: () throws -> R) throws -> R {
        events.append(.begin)
        claimedInFile = []
        do {
            let result = try body()
            loaded.formUnion(claimedInFile)
            events.append(.commit)
            return result
        } catch {
            events.append(.rollBack)
            throw error
        }
    }

    func claim(_ headers: [RecordCursor.Header]) throws -> [Bool] {
        let ids = headers.map { String(decoding: $0.id, as: UTF8.self) }
        events.append(.claim(ids))
        return ids.map { id in !loaded.contains(id) && claimedInFile.insert(id).inserted }
    }

    func prepareSchema(_ needs: SchemaNeeds, headers: [RecordCursor.Header], admitted: [Bool], in raw: UnsafeRawBufferPointer) throws {
        let change = catalog.plan(needs, headers: headers, admitted: admitted, in: raw)
        events.append(.schema(change.tablesToChange.map(names.name)))
        try catalog.apply(change)
    }

    func write(_ rows: [SplitRow], of headers: [RecordCursor.Header], in raw: UnsafeRawBufferPointer) throws {
        events.append(.write(rows.map { names.name($0.plan.table) }))
        try rowWriter.write(rows, of: headers, in: raw)
    }

    var profiles: any ProfileStore { self }
    func recordTouches(users: [String: String], anons: [String: String]) throws {
        events.append(.touches(users: users.keys.sorted(), anons: anons.keys.sorted()))
    }
    func createQueryIndexes() throws -> [String] { [] }
    func buildModels(_ options: ModelOptions, loadId: Int64, now: Date) throws -> ModelBuild {
        ModelBuild(mode: "none", people: 0, identities: 0, pageViews: 0, sessions: 0, seconds: 0)
    }
    var statistics: WriteStatistics { catalog.statistics(overflowValues: rowWriter.overflowValues, profilesUpdated: [:]) }
}

extension RecordingDestination: ProfileStore {
    /// Each profile's calls are the identify rows written so far (oldest first, as written).
    func profileCalls(_ profile: Profile, id: String, traits: [String], _ each: (SQLValue, (Int) -> SQLValue) -> Void) throws {
        events.append(.profileCalls(id))
        for row in rowTarget.rows(of: profile.sourceName) where row[profile.keyColumn] == .text(id) {
            each(row["received_at"] ?? .null) { row[traits[$0]] ?? .null }
        }
    }
    func writeProfile(_ profile: Profile, id: String, receivedAt: SQLValue, traits: [SQLValue]) throws {
        events.append(.profile(id, traits))
    }
}

/// Packed records of NDJSON lines, as the read and normalize stages make them.
func packedRecords(_ lines: [String], names: NameTable) -> MessageRecords {
    var processor = LineProcessor(loadTime: Instant(seconds: 1_709_300_000), names: names)
    var records = MessageRecords()
    for line in lines {
        var bytes = Array(line.utf8)
        for parsed in bytes.withUnsafeMutableBufferPointer({ processor.process(UnsafeBufferPointer($0), problem: nil) }) {
            if case .message(let message, _) = parsed { records.append(message) }
        }
    }
    return records
}

private func trackLine(_ id: String, user: String, event: String = "Signed Up", properties: String = #"{"plan":"pro"}"#) -> String {
    #"{"type":"track","messageId":"\#(id)","event":"\#(event)","userId":"\#(user)","anonymousId":"a-\#(user)","timestamp":"2024-03-01T10:00:00Z","receivedAt":"2024-03-01T10:00:00Z","properties":\#(properties)}"#
}

private func identifyLine(_ id: String, user: String, email: String, at time: String) -> String {
    #"{"type":"identify","messageId":"\#(id)","userId":"\#(user)","timestamp":"\#(time)","receivedAt":"\#(time)","traits":{"email":"\#(email)"}}"#
}

/// The write pass (`WriteStages`) against the recording destination.
final class WriteStagesTests: XCTestCase {
    func testAFileIsClaimedPlannedWrittenProfiledAndTouchedInOneTransaction() throws {
        let names = NameTable()
        let destination = try RecordingDestination(names: names, loaded: ["m0"])
        let stages = WriteStages(destination: destination)
        let chunk = packedRecords([
            trackLine("m0", user: "u0"),
            trackLine("m1", user: "u1"),
            identifyLine("m2", user: "u1", email: "old@example.com", at: "2024-03-01T09:00:00Z"),
            identifyLine("m3", user: "u1", email: "new@example.com", at: "2024-03-01T11:00:00Z"),
        ], names: names)
        let admitted = try stages.file { try stages.load(chunk) }
        XCTAssertEqual(admitted, [false, true, true, true], "m0 was loaded before: a duplicate")
        XCTAssertEqual(destination.events, [
            .begin,
            .claim(["m0", "m1", "m2", "m3"]),
            .schema(["tracks", "signed_up", "identifies"]),
            .write(["tracks", "signed_up", "identifies", "identifies"]),
            .profileCalls("u1"),
            .profile("u1", [.text("new@example.com")]),
            .touches(users: ["u1"], anons: ["a-u1"]),
            .commit,
        ])
        XCTAssertTrue(destination.session.statements.contains { $0.hasPrefix(#"CREATE TABLE "users" ("#) }, "identifies bring their profile table")
        // The rows as written: the duplicate's never, the event's properties in its own table.
        XCTAssertEqual(destination.rowTarget.rows(of: "tracks").map { $0["id"] }, [.text("m1")])
        XCTAssertEqual(destination.rowTarget.rows(of: "signed_up").first?["plan"], .text("pro"))
        XCTAssertEqual(destination.rowTarget.rows(of: "signed_up").first?["uuid_ts"], .text("2024-03-01 00:00:00.000"))
    }

    func testARolledBackFileLeavesNothingForTheNextOne() throws {
        let names = NameTable()
        let destination = try RecordingDestination(names: names)
        let stages = WriteStages(destination: destination)
        struct Stop: Error {}
        XCTAssertThrowsError(try stages.file {
            _ = try stages.load(packedRecords([trackLine("m1", user: "gone")], names: names))
            throw Stop()
        })
        XCTAssertEqual(destination.events.last, .rollBack)
        // The next file claims m1 anew and touches only its own ids: the rolled-back file's
        // touched ids and profiles are forgotten.
        let admitted = try stages.file { try stages.load(packedRecords([trackLine("m1", user: "kept")], names: names)) }
        XCTAssertEqual(admitted, [true])
        XCTAssertEqual(destination.events.suffix(2), [.touches(users: ["kept"], anons: ["a-kept"]), .commit])
    }

    func testTouchesAreNotRecordedWhileTheModelsWereNeverBuilt() throws {
        let names = NameTable()
        let destination = try RecordingDestination(names: names, keepsTouches: false)
        let stages = WriteStages(destination: destination)
        _ = try stages.file { try stages.load(packedRecords([trackLine("m1", user: "u1")], names: names)) }
        XCTAssertEqual(destination.events.suffix(2), [.touches(users: [], anons: []), .commit])
    }
}

/// The schema catalog's plans, against an empty warehouse.
final class CatalogPlanTests: XCTestCase {
    func plan(_ catalog: Catalog, _ records: MessageRecords) -> Catalog.SchemaChange {
        records.bytes.withUnsafeBytes { raw in
            let headers = RecordCursor.headers(of: records.count, in: raw)
            return catalog.plan(SchemaNeeds.of(headers, in: raw), headers: headers, admitted: Array(repeating: true, count: headers.count), in: raw)
        }
    }

    func testAPlanNamesWhatIsMissingAndApplyingItLeavesNothingToPlan() throws {
        let names = NameTable()
        let session = RecordingSession(dialect: SQLiteDialect.sqlite)
        let catalog = try Catalog(session: session, names: names, loadId: 7, columnLimit: 1000, eventTableLimit: 100)
        let first = packedRecords([trackLine("m1", user: "u1")], names: names)

        let change = plan(catalog, first)
        XCTAssertFalse(change.isEmpty)
        XCTAssertEqual(change.tablesToChange.map(names.name), ["tracks", "signed_up"])
        XCTAssertTrue(session.statements.isEmpty, "planning changes nothing")
        try catalog.apply(change)
        let created = session.statements.filter { $0.hasPrefix("CREATE TABLE") }
        XCTAssertEqual(created.count, 2)
        XCTAssertTrue(created[1].hasPrefix(#"CREATE TABLE "signed_up" ("#) && created[1].contains(#""plan" TEXT"#), created[1])
        XCTAssertEqual(session.inserts(into: "_schema_tables").map { $0.first }, [.text("tracks"), .text("signed_up")])

        XCTAssertTrue(plan(catalog, first).isEmpty, "the same records need nothing more")

        // A new property of a known event: one column on its table, typed by its value.
        let second = packedRecords([trackLine("m2", user: "u2", properties: #"{"plan":"team","seats":3}"#)], names: names)
        let more = plan(catalog, second)
        XCTAssertEqual(more.tablesToChange.map(names.name), ["signed_up"])
        try catalog.apply(more)
        XCTAssertEqual(session.statements.last, #"ALTER TABLE "signed_up" ADD COLUMN "seats" INTEGER"#)
        let column = try XCTUnwrap(session.inserts(into: "_schema_columns").last)
        XCTAssertEqual(Array(column.prefix(3)), [.text("signed_up"), .text("seats"), .text("INTEGER")])
    }

    func testTheSameChangeIsWrittenInPostgreSQLsWords() throws {
        let names = NameTable()
        let session = RecordingSession(dialect: PostgresDialect.postgres)
        let catalog = try Catalog(session: session, names: names, loadId: 1, columnLimit: 1000, eventTableLimit: 100)
        try catalog.apply(plan(catalog, packedRecords([trackLine("m1", user: "u1", properties: #"{"seats":3,"ratio":0.5}"#)], names: names)))
        let table = try XCTUnwrap(session.statements.first { $0.hasPrefix(#"CREATE TABLE "signed_up""#) })
        XCTAssertTrue(table.contains(#""seats" bigint"#) && table.contains(#""ratio" double precision"#) && table.contains(#""timestamp" timestamptz"#), table)
    }
}

/// The row writer: each value converted to its column's type, what cannot be kept in
/// `_discards`, the load's `uuid_ts` on every row.
final class RowWriterTests: XCTestCase {
    func testValuesMeetTheirColumnsAndWhatDoesNotFitIsDiscarded() throws {
        let names = NameTable()
        let destination = try RecordingDestination(names: names)
        let stages = WriteStages(destination: destination)
        _ = try stages.file {
            try stages.load(packedRecords([trackLine("m1", user: "u1", properties: #"{"seats":3,"ratio":1.5,"paid":true}"#)], names: names))
        }
        _ = try stages.file {
            try stages.load(packedRecords([trackLine("m2", user: "u2", properties: #"{"seats":"many","ratio":2,"paid":false}"#)], names: names))
        }
        let rows = destination.rowTarget.rows(of: "signed_up")
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0]["seats"], .integer(3))
        XCTAssertEqual(rows[0]["ratio"], .real(1.5))
        XCTAssertEqual(rows[0]["paid"], .integer(1))
        XCTAssertEqual(rows[1]["ratio"], .real(2), "an integer in a REAL column is widened")
        XCTAssertEqual(rows[1]["paid"], .integer(0))
        XCTAssertEqual(rows[1]["seats"] ?? .null, .null, "text in an INTEGER column is kept out of it")
        let discard = try XCTUnwrap(destination.session.inserts(into: "_discards").first)
        XCTAssertEqual(Array(discard.prefix(2)), [.text("signed_up"), .text("seats")])
        XCTAssertEqual(discard[3], .text("m2"))
        XCTAssertEqual(discard[4], .text(#""many""#))
        XCTAssertEqual(destination.bookkeeping.discardsInFile, 1)
    }
}

/// The bookkeeping rows: rejects kept as the database can hold them, files only when their
/// accounting balances.
final class BookkeepingTests: XCTestCase {
    func testARejectThatIsNotUTF8IsKeptAsBytesOrAsMarkedHex() throws {
        let bytes: [UInt8] = [0x7b, 0xff, 0x00, 0x7d]
        for dialect in [SQLiteDialect.sqlite as any SQLDialect, PostgresDialect.postgres] {
            let session = RecordingSession(dialect: dialect)
            let bookkeeping = try Bookkeeping(session: session, names: NameTable(), loadId: 3, uuidTs: "2024-03-01 00:00:00.000")
            try bookkeeping.reject(file: "/in/a.gz", line: 4, item: nil, kind: .json, reason: "invalid JSON", raw: .asRead(bytes))
            try bookkeeping.reject(file: "/in/a.gz", line: 5, item: 2, kind: .json, reason: "invalid JSON", raw: .asRead(Array("{x".utf8)))
            let rows = session.inserts(into: "_rejects")
            XCTAssertEqual(rows.count, 2)
            if dialect.textHoldsAnyBytes {
                XCTAssertEqual(rows[0][4], .blob(bytes))
                XCTAssertEqual(rows[0][6], .integer(0))
            } else {
                XCTAssertEqual(rows[0][4], .text("7bff007d"))
                XCTAssertEqual(rows[0][6], .integer(RejectRaw.hexCode))
            }
            XCTAssertEqual(rows[1][4], .text("{x"), "UTF-8 is kept as text in either")
            XCTAssertEqual(rows[1][2], .integer(2))
            XCTAssertEqual(rows[1][5], .integer(3), "the load's id")
        }
    }

    func testAFileWhoseCountsDoNotAddUpIsRefused() throws {
        let session = RecordingSession(dialect: SQLiteDialect.sqlite)
        let bookkeeping = try Bookkeeping(session: session, names: NameTable(), loadId: 1, uuidTs: "2024-03-01 00:00:00.000")
        let archive = Archive(path: "/in/a.gz", format: .gzip, size: 10)
        var counts = Counts()
        counts.lines = 3
        counts.loaded = 2
        counts.rejected = 1
        try bookkeeping.record(FileRecord(archive: archive, sha256: "ab", physicalLines: 3, status: .loaded, counts: counts, error: nil))
        XCTAssertEqual(session.inserts(into: "_files").count, 1)
        XCTAssertEqual(session.inserts(into: "_files")[0][6], .integer(3))
        counts.loaded = 1
        XCTAssertThrowsError(try bookkeeping.record(FileRecord(archive: archive, sha256: "ab", physicalLines: 3, status: .loaded, counts: counts, error: nil))) {
            XCTAssertTrue("\($0)".contains("internal accounting error in /in/a.gz"), "\($0)")
        }
        XCTAssertEqual(session.inserts(into: "_files").count, 1, "nothing of it is written")
    }
}
