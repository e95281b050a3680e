import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentWarehouse
@testable import PostgresEngine

/// The client: libpq reads the URL and the environment as psql does, errors are a
/// sentence and an exit status without the password, COPY carries any text.
final class PostgresLocationTests: XCTestCase {
    func testTheDisplayNamesTheServerAndNeverThePassword() throws {
        let location = try PostgresLocation("postgresql://loader:s3cr%40t@db.internal:5433/analytics?sslmode=require", schema: "web")
        XCTAssertEqual(location.display, "postgresql://loader@db.internal:5433/analytics")
        XCTAssertEqual(location.schema, "web")
        XCTAssertEqual(try PostgresLocation("postgres://db.internal/analytics").display, "postgresql://db.internal/analytics")
        XCTAssertEqual(try PostgresLocation("postgres://db.internal/analytics").schema, PostgresLocation.defaultSchema)
        XCTAssertTrue(PostgresLocation.isPostgres("POSTGRES://x/y"))
        XCTAssertFalse(PostgresLocation.isPostgres("warehouse.sqlite"))
    }

    func testRedactionTakesOutEveryFormOfPassword() {
        XCTAssertEqual(WarehouseURL.redacted("postgresql://u:pw@h:5432/d"), "postgresql://u:***@h:5432/d")
        XCTAssertEqual(WarehouseURL.redacted("postgresql://h/d?user=u&password=pw&sslmode=require"), "postgresql://h/d?user=u&password=***&sslmode=require")
        XCTAssertEqual(WarehouseURL.redacted("host=h password='a b\\' c' dbname=d"), "host=h password=*** dbname=d")
        XCTAssertEqual(WarehouseURL.redacted("postgresql://h/d"), "postgresql://h/d")
    }

    func testWhatLibpqCannotReadIsRefusedInASentenceWithoutThePassword() {
        XCTAssertThrowsError(try PostgresLocation("postgresql://u:pw@h/d?bogus=1")) { error in
            let error = error as! PostgresError
            XCTAssertEqual(error.exitStatus, 64)
            XCTAssertTrue(error.message.contains("postgresql://u:***@h/d?bogus=1 is not a PostgreSQL connection string"), error.message)
            XCTAssertTrue(error.message.contains("bogus"), error.message)
            XCTAssertFalse(error.message.contains("pw@"), error.message)
        }
        XCTAssertThrowsError(try PostgresLocation("postgresql://h/d?sslmode=sometimes")) { error in
            XCTAssertEqual((error as! PostgresError).exitStatus, 64)
        }
        XCTAssertThrowsError(try PostgresLocation("postgresql://h/d", schema: "Web Site")) { error in
            XCTAssertTrue((error as! PostgresError).message.contains("schema \"Web Site\""), "\(error)")
        }
    }
}

final class PostgresConnectionTests: XCTestCase {
    func testQueriesAndCopyCarryAnyText() throws {
        let server = try TestPostgres.shared()
        let connection = try PostgresConnection(try PostgresLocation(try server.createDatabase("conn_copy"), schema: "public"))
        XCTAssertGreaterThanOrEqual(connection.serverVersion, 150000)
        try connection.execute("CREATE TABLE t (id bigint, v text)")
        let values: [String?] = ["plain", "tab\there", "new\nline", "back\\slash", "cr\rhere", nil, "ünïcödé ✓", "\\N", ""]
        try connection.copy("COPY t (id, v) FROM STDIN") { send in
            var text = CopyText()
            for (i, value) in values.enumerated() {
                text.text(String(i))
                if let value { text.text(value) } else { text.null() }
                text.endRow()
                if i % 3 == 0 { try send(text.take()) }
            }
            try send(text.take())
        }
        XCTAssertEqual(try connection.query("SELECT v FROM t ORDER BY id").map { $0[0] }, values)
        XCTAssertEqual(try connection.query("SELECT $1::text || $2::text, $3::text IS NULL", ["a", "b", nil]).first, ["ab", "t"])
        XCTAssertEqual(try connection.scalar("SHOW TimeZone"), "UTC")
    }

    /// Each warehouse type through COPY into its PostgreSQL type, and back as the same value.
    func testWarehouseValuesGoInTheirPostgresTypes() throws {
        let server = try TestPostgres.shared()
        let connection = try PostgresConnection(try PostgresLocation(try server.createDatabase("conn_types"), schema: "public"))
        try connection.execute(PostgresDialect.postgres.create(TableDefinition("t", [
            .init("n", .integer), .init("b", .column(.boolean)), .init("i", .integer), .init("r", .real), .init("ts", .timestamp),
            .init("s", .text), .init("x", .bytes),
        ])))
        let rows: [[SQLValue]] = [
            [.integer(1), .integer(1), .integer(-9_007_199_254_740_993), .real(1.5), .text("2024-03-01 10:00:00.123"), .text("a\tb"), .blob([0, 1, 0xfe])],
            [.integer(2), .integer(0), .integer(0), .real(1e300), .text("1969-12-31 23:59:59.999"), .text(""), .blob([])],
            [.integer(3), .null, .null, .real(-0.1), .null, .null, .null],
        ]
        let types: [ColumnType?] = [.integer, .boolean, .integer, .real, .timestamp, .text, nil]
        try connection.copy("COPY t FROM STDIN") { send in
            var text = CopyText()
            for row in rows {
                for (value, type) in zip(row, types) { try text.value(value, as: type) }
                text.endRow()
            }
            try send(text.take())
        }
        let back = try connection.query(
            "SELECT b::text, i::text, r::text, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS'), s, encode(x, 'hex') FROM t ORDER BY n")
        XCTAssertEqual(back, [["true", "-9007199254740993", "1.5", "2024-03-01 10:00:00.123", "a\tb", "0001fe"],
                              ["false", "0", "1e+300", "1969-12-31 23:59:59.999", "", ""],
                              [nil, nil, "-0.1", nil, nil, nil]])
        var text = CopyText()
        XCTAssertThrowsError(try text.value(.text("a\u{0}b"))) { error in
            XCTAssertEqual("\(error)", #"PostgreSQL text cannot hold the NUL character (\u0000) in "a\u0000b""#)
        }
    }

    /// The models' appender writes COPY's binary format when every column's type takes the
    /// values so, and turns to the text format, for the rest of its rows, at a value that
    /// does not fit (the server then reads it as it always did).
    func testTheAppenderWritesBinaryAndTurnsToTextForAValueItCannotWrite() throws {
        let server = try TestPostgres.shared()
        let connection = try PostgresConnection(try PostgresLocation(try server.createDatabase("conn_appender"), schema: "public"))
        try connection.execute(PostgresDialect.postgres.create(TableDefinition("t", [
            .init("n", .integer), .init("b", .column(.boolean)), .init("i", .integer), .init("r", .real), .init("ts", .timestamp),
            .init("s", .text), .init("x", .bytes),
        ]))
            + "; ALTER TABLE t ADD COLUMN k integer, ADD COLUMN h smallint")
        let appender = try XCTUnwrap(try connection.appender("t", columns: ["n", "b", "i", "r", "ts", "s", "x", "k", "h"]) as? CopyAppender)
        try appender.append([.integer(1), .integer(1), .integer(-9_007_199_254_740_993), .real(1.5), .text("2024-03-01 10:00:00.123"),
                             .text("a\tb ✓"), .blob([0, 1, 0xfe]), .integer(Int64(Int32.min)), .integer(-3)])
        try appender.append([.integer(2), .integer(0), .integer(0), .real(1e300), .text("1969-12-31 23:59:59.999"),
                             .integer(42), .blob([]), .integer(7), .integer(Int64(Int16.max))])
        try appender.append([.integer(3), .null, .null, .integer(2), .null, .real(0.25), .null, .null, .null])
        XCTAssertTrue(appender.isBinary, "every value fits its column: binary")
        // A number as text for a bigint column: not written in binary; the server reads it.
        try appender.append([.integer(4), .null, .text("17"), .null, .null, .text(""), .null, .null, .null])
        XCTAssertFalse(appender.isBinary)
        try appender.append([.integer(5), .integer(1), .integer(5), .real(-0.1), .text("2026-12-02 00:00:00.000"), .text("after"), .null, .null, .null])
        try appender.finish()
        let back = try connection.query("""
            SELECT n::text, b::text, i::text, r::text, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS'), s, encode(x, 'hex'), k::text, h::text
            FROM t ORDER BY n
            """)
        XCTAssertEqual(back, [["1", "true", "-9007199254740993", "1.5", "2024-03-01 10:00:00.123", "a\tb ✓", "0001fe", "-2147483648", "-3"],
                              ["2", "false", "0", "1e+300", "1969-12-31 23:59:59.999", "42", "", "7", "32767"],
                              ["3", nil, nil, "2", nil, "0.25", nil, nil, nil],
                              ["4", nil, "17", nil, nil, "", nil, nil, nil],
                              ["5", "true", "5", "-0.1", "2026-12-02 00:00:00.000", "after", nil, nil, nil]])
    }

    func testATransactionThatThrowsLeavesNothing() throws {
        let server = try TestPostgres.shared()
        let connection = try PostgresConnection(try PostgresLocation(try server.createDatabase("conn_tx"), schema: "public"))
        try connection.execute("CREATE TABLE t (x bigint)")
        struct Boom: Error {}
        XCTAssertThrowsError(try connection.transaction {
            try connection.execute("INSERT INTO t VALUES (1)")
            throw Boom()
        })
        try connection.transaction { try connection.execute("INSERT INTO t VALUES (2)") }
        XCTAssertEqual(try connection.query("SELECT x FROM t").map { $0[0] }, ["2"])
    }

    func testAWrongPasswordIsASentenceAndExit77WithoutThePassword() throws {
        let server = try TestPostgres.shared()
        XCTAssertThrowsError(try PostgresConnection(try PostgresLocation(server.url(password: "not-the-one")))) { error in
            let error = error as! PostgresError
            XCTAssertEqual(error.kind, .permission)
            XCTAssertEqual(error.exitStatus, 77)
            XCTAssertEqual(error.message, "cannot connect to postgresql://postgres@127.0.0.1:\(server.port)/postgres: password authentication failed for user \"postgres\"")
            XCTAssertFalse(error.message.contains("not-the-one"))
        }
    }

    func testAnUnknownDatabaseIsExit66() throws {
        let server = try TestPostgres.shared()
        XCTAssertThrowsError(try PostgresConnection(try PostgresLocation(server.url("no_such_db")))) { error in
            let error = error as! PostgresError
            XCTAssertEqual(error.exitStatus, 66)
            XCTAssertTrue(error.message.hasSuffix("database \"no_such_db\" does not exist"), error.message)
        }
    }

    func testNoServerIsExit69() throws {
        let port = try TestPostgres.freePort()
        XCTAssertThrowsError(try PostgresConnection(try PostgresLocation("postgresql://u:pw@127.0.0.1:\(port)/d?connect_timeout=5"))) { error in
            let error = error as! PostgresError
            XCTAssertEqual(error.exitStatus, 69)
            XCTAssertTrue(error.message.hasPrefix("cannot connect to postgresql://u@127.0.0.1:\(port)/d: "), error.message)
            XCTAssertTrue(error.message.contains("Connection refused"), error.message)
            XCTAssertFalse(error.message.contains("pw"), error.message)
        }
    }

    /// The password and where to find it come from the environment as for psql: PGPASSWORD,
    /// and a password file (PGPASSFILE, else ~/.pgpass).
    func testThePasswordComesFromTheEnvironmentOrAPasswordFile() throws {
        let server = try TestPostgres.shared()
        let bare = "postgresql://postgres@127.0.0.1:\(server.port)/postgres"
        setenv("PGPASSWORD", server.password, 1)
        XCTAssertEqual(try PostgresConnection(try PostgresLocation(bare)).scalar("SELECT current_user"), "postgres")
        unsetenv("PGPASSWORD")
        let file = try temporaryDirectory(self).appendingPathComponent("pgpass")
        try Data("127.0.0.1:\(server.port):*:postgres:\(server.password)\n".utf8).write(to: file)
        chmod(file.path, 0o600)
        setenv("PGPASSFILE", file.path, 1)
        defer { unsetenv("PGPASSFILE") }
        XCTAssertEqual(try PostgresConnection(try PostgresLocation(bare)).scalar("SELECT 1"), "1")
    }

    func testALostConnectionIsExit75AndASerializationFailureIsToRetry() throws {
        let server = try TestPostgres.shared()
        let url = try server.createDatabase("conn_lost")
        let victim = try PostgresConnection(try PostgresLocation(url, schema: "public"))
        let pid = try victim.scalar("SELECT pg_backend_pid()")
        let killer = try PostgresConnection(try PostgresLocation(url, schema: "public"))
        XCTAssertEqual(try killer.scalar("SELECT pg_terminate_backend($1::int)", [pid]), "t")
        XCTAssertThrowsError(try victim.query("SELECT 1")) { error in
            let error = error as! PostgresError
            XCTAssertEqual(error.kind, .connectionLost)
            XCTAssertEqual(error.exitStatus, 75)
            XCTAssertTrue(error.message.hasPrefix("the connection to postgresql://postgres@127.0.0.1:\(server.port)/conn_lost was lost: "), error.message)
        }
        XCTAssertThrowsError(try killer.execute("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$")) { error in
            XCTAssertEqual((error as! PostgresError).kind, .retry)
            XCTAssertEqual((error as! PostgresError).sqlState, "40001")
        }
        XCTAssertThrowsError(try killer.execute("SELECT * FROM no_such_table")) { error in
            let error = error as! PostgresError
            XCTAssertEqual(error.kind, .statement)
            XCTAssertTrue(error.message.contains("42P01"), error.message)
        }
    }
}
