import CLibPQ
import Foundation
import SegmentCore

/// What went wrong talking to PostgreSQL, as a sentence and the exit status it gives.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The connection string or a setting is wrong (64).
        case usage
        /// The server refused the user or password, or a privilege is missing (77, EX_NOPERM).
        case permission
        /// The database does not exist (66, EX_NOINPUT, as a missing warehouse file).
        case noDatabase
        /// No server answered: host unknown, nothing listening, timeout (69, EX_UNAVAILABLE).
        case unreachable
        /// The server went away during the run, or is starting or shutting down (75,
        /// EX_TEMPFAIL: the next run completes what this one did not).
        case connectionLost
        /// A serialization failure or a deadlock: the transaction is to be run again.
        case retry
        /// Any other error the server reported for a statement (1).
        case statement
    }

    public var kind: Kind
    public var message: String
    /// The server's SQLSTATE, when it sent one.
    public var sqlState: String?

    public init(kind: Kind, message: String, sqlState: String? = nil) {
        (self.kind, self.message, self.sqlState) = (kind, message, sqlState)
    }

    public var description: String { message }

    public var exitStatus: Int32 {
        switch kind {
        case .usage: return ExitStatus.usage
        case .permission: return ExitStatus.noPermission
        case .noDatabase: return ExitStatus.noInput
        case .unreachable: return ExitStatus.unavailable
        case .connectionLost, .retry: return ExitStatus.locked
        case .statement: return ExitStatus.failure
        }
    }

    /// The kind an SQLSTATE stands for (https://www.postgresql.org/docs/15/errcodes-appendix.html).
    static func kind(ofSQLState state: String) -> Kind {
        if state == "40001" || state == "40P01" { return .retry }
        if state.hasPrefix("08") || state == "57P01" || state == "57P02" || state == "57P03" { return .connectionLost }
        if state.hasPrefix("28") || state == "42501" { return .permission }
        if state == "3D000" { return .noDatabase }
        return .statement
    }

    /// A connection that failed, from libpq's message (it has no SQLSTATE for these: the
    /// server's words are matched, and anything not recognised counts as unreachable).
    static func connecting(to location: PostgresLocation, libpqMessage: String) -> PostgresError {
        let reason = serverWords(libpqMessage)
        let lower = reason.lowercased()
        let kind: Kind
        if lower.contains("password authentication failed") || lower.contains("no password supplied")
            || lower.contains("authentication failed") || lower.contains("pg_hba.conf") || lower.contains("role \"") && lower.contains("does not exist") {
            kind = .permission
        } else if lower.contains("database \"") && lower.contains("does not exist") {
            kind = .noDatabase
        } else if lower.contains("invalid") && (lower.contains("sslmode") || lower.contains("option")) {
            kind = .usage
        } else {
            kind = .unreachable
        }
        return PostgresError(kind: kind, message: "cannot connect to \(location.display): \(reason)")
    }

    /// The useful part of a libpq message: the server's own sentence after `FATAL:` when there
    /// is one, else libpq's, on one line.
    static func serverWords(_ message: String) -> String {
        var text = message.trimmingCharacters(in: .whitespacesAndNewlines)
        if let fatal = text.range(of: "FATAL:", options: .backwards) { text = String(text[fatal.upperBound...]) }
        else if let failed = text.range(of: "failed: ", options: .backwards) { text = String(text[failed.upperBound...]) }
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "; ")
    }
}

/// One blocking libpq connection (one per writer thread, as SQLite's). Text-format
/// parameters and results; rows in bulk go through `copy`.
///
/// One statement may be left in flight while the caller works on: a COPY whose rows were all
/// sent (`copy(deferred: true)`), or a statement whose rows are read later (`send`: the next
/// FETCH of a cursor `each` reads, the claim of the writer's next chunk). The server works
/// on it while the loader builds the next rows; the next use of the connection first reads its
/// result (`settle`), so an error in it is thrown there, inside the same transaction.
public final class PostgresConnection {
    let handle: OpaquePointer
    public let location: PostgresLocation

    private enum InFlight: Equatable {
        case none
        case copy(String)
        /// A statement whose rows are kept (`send`) under its key; its text names it in an error.
        case rows(sql: String, key: String)
    }
    private var inFlight = InFlight.none
    /// Rows read by `settle` before their reader asked for them, by key.
    private var received: [String: [[SQLValue]]] = [:]

    /// Connects, and fixes the session's settings the warehouse relies on: UTF-8, UTC, the
    /// warehouse's schema first on the search path, no chatter below warnings.
    public init(_ location: PostgresLocation) throws {
        self.location = location
        guard let handle = PQconnectdb(location.conninfo) else {
            throw PostgresError(kind: .unreachable, message: "cannot connect to \(location.display): libpq could not allocate a connection")
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(handle))
            PQfinish(handle)
            throw PostgresError.connecting(to: location, libpqMessage: message)
        }
        self.handle = handle
        try execute("SET client_encoding TO 'UTF8'; SET TIME ZONE 'UTC'; SET client_min_messages TO warning; SET search_path TO \(quoteIdentifier(location.schema))")
    }

    deinit { PQfinish(handle) }

    /// Whether the connection still talks to the server.
    public var isUsable: Bool { PQstatus(handle) == CONNECTION_OK }

    /// The server's version as a number (150004 for 15.4).
    public var serverVersion: Int { Int(PQserverVersion(handle)) }

    /// Runs one or more statements without parameters.
    public func execute(_ sql: String) throws {
        try settle()
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        try check(result, sql: sql)
    }

    /// Runs one statement with text parameters (nil is NULL) and returns its rows as text.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws -> [[String?]] {
        try withResult(sql, parameters) { result in
            let rows = Int(PQntuples(result)), columns = Int(PQnfields(result))
            return (0..<rows).map { row in
                (0..<columns).map { column in
                    PQgetisnull(result, Int32(row), Int32(column)) != 0 ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
                }
            }
        }
    }

    /// Runs one statement with text parameters and returns its rows as warehouse values, by
    /// the type of each column: integers, floating point, booleans (1 or 0, as SQLite keeps
    /// them), bytea as bytes, `timestamptz` as SQLite's `YYYY-MM-DD HH:MM:SS.sss` UTC text, the
    /// rest as text.
    func typedQuery(_ sql: String, _ parameters: [String?]) throws -> [[SQLValue]] {
        try withResult(sql, parameters, Self.typedRows)
    }

    private static func typedRows(_ result: OpaquePointer?) -> [[SQLValue]] {
        let rows = Int(PQntuples(result)), columns = Int(PQnfields(result))
        let types = (0..<columns).map { PQftype(result, Int32($0)) }
        return (0..<rows).map { row in
            (0..<columns).map { column in
                if PQgetisnull(result, Int32(row), Int32(column)) != 0 { return .null }
                let text = String(cString: PQgetvalue(result, Int32(row), Int32(column)))
                return Self.value(text, type: types[column])
            }
        }
    }

    /// Runs one statement with text parameters for its effect; returns the rows it changed.
    @discardableResult
    func command(_ sql: String, _ parameters: [String?]) throws -> Int {
        try withResult(sql, parameters) { Int(String(cString: PQcmdTuples($0))) ?? 0 }
    }

    /// Runs one statement with text parameters and hands its checked result to `body`.
    private func withResult<R>(_ sql: String, _ parameters: [String?], _ body: (OpaquePointer?) -> R) throws -> R {
        try settle()
        let result = withParameters(parameters) { values in
            PQexecParams(handle, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        defer { PQclear(result) }
        try check(result, sql: sql)
        return body(result)
    }

    /// A result's text as a warehouse value, by its type's OID (pg_type.dat).
    static func value(_ text: String, type: Oid) -> SQLValue {
        switch type {
        case 16: return .integer(text == "t" ? 1 : 0)
        case 20, 21, 23, 26: return Int64(text).map { .integer($0) } ?? .text(text)
        case 700, 701: return Double(text).map { .real($0) } ?? .text(text)
        case 1700: return Int64(text).map { .integer($0) } ?? Double(text).map { .real($0) } ?? .text(text)
        case 17:
            guard text.hasPrefix("\\x") else { return .blob(Array(text.utf8)) }
            return .blob(bytes(hex: text.dropFirst(2)))
        case 1184: return .text(sqliteTimestamp(text))
        default: return .text(text)
        }
    }

    /// `2026-01-02 03:04:05.6+00` (PostgreSQL's ISO output in UTC) as `2026-01-02 03:04:05.600`.
    static func sqliteTimestamp(_ text: String) -> String {
        var utf8 = Array(text.utf8)
        guard utf8.count >= 19, utf8[10] == 0x20 else { return text }
        if let zone = utf8[19...].firstIndex(where: { $0 == 0x2b || $0 == 0x2d }) { utf8.removeSubrange(zone...) }
        var fraction = utf8.count > 19 && utf8[19] == 0x2e ? Array(utf8[20...]) : []
        fraction = Array((fraction + [0x30, 0x30, 0x30]).prefix(3))
        return String(decoding: utf8[..<19] + [0x2e] + fraction, as: UTF8.self)
    }

    static func bytes<S: StringProtocol>(hex: S) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(hex.utf8.count / 2)
        var high: UInt8?
        for c in hex.utf8 {
            let v: UInt8
            switch c {
            case 0x30...0x39: v = c - 0x30
            case 0x61...0x66: v = c - 0x61 + 10
            case 0x41...0x46: v = c - 0x41 + 10
            default: continue
            }
            if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
        }
        return out
    }

    /// The first column of the first row, or nil.
    public func scalar(_ sql: String, _ parameters: [String?] = []) throws -> String? {
        try query(sql, parameters).first?.first ?? nil
    }

    /// `COPY ... FROM STDIN` (text format): `body` hands the rows' bytes to `send` in pieces of
    /// any size (see `CopyText`); the copy ends when it returns, or is abandoned when it throws.
    /// `deferred`: its result is read by the next use of the connection, so the server takes
    /// in the rows while the caller goes on (an error is thrown there).
    public func copy(_ sql: String, deferred: Bool = false, _ body: (_ send: ([UInt8]) throws -> Void) throws -> Void) throws {
        try settle()
        let start = PQexec(handle, sql)
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            defer { PQclear(start) }
            try check(start, sql: sql)
            throw PostgresError(kind: .statement, message: "\(sql.prefix(80)) did not start a COPY")
        }
        PQclear(start)
        do {
            try body { bytes in
                let sent = bytes.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress, Int32($0.count)) }
                }
                if sent != 1 { throw self.connectionError() }
            }
        } catch {
            _ = PQputCopyEnd(handle, "abandoned by the loader")
            while let result = PQgetResult(handle) { PQclear(result) }
            throw error
        }
        guard PQputCopyEnd(handle, nil) == 1 else { throw connectionError() }
        inFlight = .copy(sql)
        if !deferred { try settle() }
    }

    /// Reads the result of the statement left in flight, if any: a COPY's is checked (its
    /// error thrown), a sent statement's rows kept for its reader.
    private func settle() throws {
        let sql: String, key: String?
        switch inFlight {
        case .none: return
        case .copy(let text): (sql, key) = (text, nil)
        case .rows(let text, let name): (sql, key) = (text, name)
        }
        inFlight = .none
        var failure: Error?
        var rows: [[SQLValue]]?
        while let result = PQgetResult(handle) {
            if failure == nil {
                do {
                    try check(result, sql: sql)
                    if key != nil, rows == nil { rows = Self.typedRows(result) }
                } catch { failure = error }
            }
            PQclear(result)
        }
        if let failure { throw failure }
        if let key {
            guard let rows else { throw connectionError() }
            received[key] = rows
        }
    }

    /// Sends a statement with text parameters without waiting for its rows: `receive(key)`
    /// reads them (or the next use of the connection does, keeping them for it).
    func send(_ sql: String, _ parameters: [String?] = [], key: String) throws {
        try settle()
        let sent = withParameters(parameters) { values in
            PQsendQueryParams(handle, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        guard sent == 1 else { throw connectionError() }
        inFlight = .rows(sql: sql, key: key)
    }

    /// The rows of the statement `send` sent with `key`.
    func receive(_ key: String) throws -> [[SQLValue]] {
        if case .rows(_, key) = inFlight { try settle() }
        guard let rows = received.removeValue(forKey: key) else {
            throw PostgresError(kind: .statement, message: "internal error: no statement \(key) was sent")
        }
        return rows
    }

    /// Rows of a cursor, the next batch fetched by the server while `body` works on this one.
    func eachFetched(cursor name: String, batch: Int, _ body: ([SQLValue]) throws -> Void) throws {
        let fetch = "FETCH \(batch) FROM \(name)"
        defer { received[fetch] = nil }
        try send(fetch, key: fetch)
        while true {
            let rows = try receive(fetch)
            let last = rows.count < batch
            if !last { try send(fetch, key: fetch) }
            for row in rows { try body(row) }
            if last { return }
        }
    }

    /// Cursors declared so far (each gets a name of its own).
    var cursors = 0

    /// Transactions open on this connection (more than one: savepoints inside the first).
    private var depth = 0

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    /// Inside an open one it is a savepoint instead.
    public func transaction<R>(_ body: () throws -> R) throws -> R {
        let savepoint = depth > 0 ? "s\(depth)" : nil
        try execute(savepoint.map { "SAVEPOINT \($0)" } ?? "BEGIN")
        depth += 1
        defer { depth -= 1 }
        do {
            let value = try body()
            try execute(savepoint.map { "RELEASE \($0)" } ?? "COMMIT")
            return value
        } catch {
            try? settle()
            // What statements sent in the transaction answered is gone with it.
            if savepoint == nil { received.removeAll() }
            if PQstatus(handle) == CONNECTION_OK { try? execute(savepoint.map { "ROLLBACK TO \($0); RELEASE \($0)" } ?? "ROLLBACK") }
            throw error
        }
    }

    private func withParameters<R>(_ parameters: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
        let storage: [UnsafeMutablePointer<CChar>?] = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { storage.forEach { free($0) } }
        return body(storage.map { $0.map { UnsafePointer($0) } })
    }

    private func connectionError() -> PostgresError {
        PostgresError(kind: .connectionLost, message: "the connection to \(location.display) was lost: \(PostgresError.serverWords(String(cString: PQerrorMessage(handle))))")
    }

    private func check(_ result: OpaquePointer?, sql: String) throws {
        let status = result.map(PQresultStatus) ?? PGRES_FATAL_ERROR
        switch status {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_COPY_IN, PGRES_EMPTY_QUERY: return
        default: break
        }
        if PQstatus(handle) != CONNECTION_OK { throw connectionError() }
        let field = { (code: UInt8) -> String? in
            guard let result, let value = PQresultErrorField(result, Int32(code)) else { return nil }
            return String(cString: value)
        }
        let state = field(UInt8(ascii: "C"))
        let primary = field(UInt8(ascii: "M")) ?? PostgresError.serverWords(String(cString: PQerrorMessage(handle)))
        let detail = field(UInt8(ascii: "D")).map { " (\($0))" } ?? ""
        let kind = state.map(PostgresError.kind(ofSQLState:)) ?? .statement
        let message = kind == .connectionLost
            ? "the connection to \(location.display) was lost: \(primary)"
            : "PostgreSQL \(state ?? "error"): \(primary)\(detail) (in: \(sql.prefix(200)))"
        throw PostgresError(kind: kind, message: message, sqlState: state)
    }
}

/// A text value with a NUL character, which PostgreSQL's text type cannot hold.
public struct CopyValueError: Error, CustomStringConvertible {
    public var value: String
    public var description: String { "PostgreSQL text cannot hold the NUL character (\\u0000) in \(JSONWriter.string(.string(value)))" }
}

/// Rows in COPY's text format: columns separated by tabs, rows by newlines, NULL as `\N`, and
/// backslash, tab, newline and carriage return escaped in values.
public struct CopyText {
    public private(set) var bytes: [UInt8] = []
    private var first = true

    public init() {}

    public mutating func null() { separate(); bytes += [0x5c, 0x4e] }

    public mutating func text(_ value: String) {
        separate()
        var value = value
        value.withUTF8 { CopyText.escape(UnsafeRawBufferPointer($0), into: &bytes) }
    }

    /// Appends text as COPY's text format wants it: backslash, tab, newline and carriage
    /// return escaped, the runs between them copied whole.
    @inline(__always)
    static func escape(_ text: UnsafeRawBufferPointer, into bytes: inout [UInt8]) {
        var run = 0
        for (i, byte) in text.enumerated() {
            let escaped: UInt8
            switch byte {
            case 0x5c: escaped = 0x5c
            case 0x09: escaped = 0x74
            case 0x0a: escaped = 0x6e
            case 0x0d: escaped = 0x72
            default: continue
            }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: text[run..<i]))
            bytes.append(0x5c)
            bytes.append(escaped)
            run = i + 1
        }
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: text[run...]))
    }

    /// A warehouse value in its column's type (nil: as it is). SQLite's BOOLEAN is 0 or 1,
    /// PostgreSQL's `t` or `f`; timestamps are SQLite's `YYYY-MM-DD HH:MM:SS.sss` text, which
    /// `timestamptz` reads as UTC (the session's time zone); a BLOB goes as bytea hex. Throws
    /// for text with a NUL character, which PostgreSQL's text cannot hold (the caller keeps the
    /// value elsewhere, by the contract's rule for values a column cannot take).
    public mutating func value(_ value: SQLValue, as type: ColumnType? = nil) throws {
        switch value {
        case .null: null()
        case .integer(let i):
            if type == .boolean { text(i != 0 ? "t" : "f") } else { separate(); Self.digits(i, into: &bytes) }
        case .real(let d):
            text(Self.float(d))
        case .text(let s):
            var s = s
            let hasNul = s.withUTF8 { memchr($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, 0, $0.count) != nil }
            if hasNul { throw CopyValueError(value: s) }
            text(s)
        case .blob(let b): text("\\x" + hexString(b))
        }
    }

    /// An integer's decimal digits, written without a String in between.
    static func digits(_ i: Int64, into bytes: inout [UInt8]) {
        if i < 0 { bytes.append(0x2d) }
        var v = i.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var at = 20
            repeat {
                at -= 1
                buffer[at] = UInt8(0x30 + v % 10)
                v /= 10
            } while v > 0
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[at...]))
        }
    }

    /// A double as `float8` reads it: `NaN` and the infinities spelled out.
    static func float(_ d: Double) -> String {
        d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : String(d)
    }

    public mutating func endRow() { bytes.append(0x0a); first = true }

    /// Hands back what is buffered and starts again.
    public mutating func take() -> [UInt8] { defer { bytes.removeAll(keepingCapacity: true) }; return bytes }

    private mutating func separate() {
        if !first { bytes.append(0x09) }
        first = false
    }
}
