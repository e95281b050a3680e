import CLibPQ
import Foundation
import SegmentCore
import SegmentWarehouse

public final class PostgresConnection {
    package let handle: OpaquePointer
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
    /// The Citus cluster the database is on (nil: plain PostgreSQL), read as it connects.
    package private(set) var cluster: CitusCluster?
    /// Connected to a Citus worker: the coordinator, and a connection to it where this one's
    /// advisory locks are taken, so that loaders on every node take them in one place (an
    /// advisory lock is one node's). Inside a transaction of this connection they are taken in
    /// a transaction of that one, which ends right after this one's.
    package private(set) var coordinatorLocation: PostgresLocation?
    private var lockSession: PostgresConnection?
    /// The connection a load's `_loads` row is written through: the coordinator's when this
    /// one is a worker's, so that load ids count 1, 2, 3 whichever node a loader uses (a
    /// worker's own ids start past 2^48).
    package var recordsSession: PostgresConnection { lockSession ?? self }
    private var lockTransactionOpen = false

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
        cluster = try CitusCluster.detect(self)
        // Citus lets one multi-shard modification at a time touch a shard, until its transaction
        // ends: every file's claim of its message ids (one INSERT over many shards of
        // _message_ids) waited for the file before it, and a file holding the schema lock
        // waited for a file waiting for that lock (a distributed deadlock, every time). The
        // claims insert in digest order; a real deadlock between two loaders is detected and
        // the file written again, as on PostgreSQL.
        if cluster != nil { try execute("SET citus.enable_deadlock_prevention TO off") }
        if let cluster, !cluster.isCoordinator, let node = cluster.coordinator {
            let coordinator = try location.at(host: node.host, port: node.port)
            coordinatorLocation = coordinator
            lockSession = try PostgresConnection(coordinator)
        }
    }

    /// Where a statement runs: the lock session for one that takes or reads advisory locks.
    private func lockSessionFor(_ sql: String) throws -> PostgresConnection? {
        guard let lockSession, sql.contains("pg_advisory") || sql.contains("pg_try_advisory") || sql.contains("pg_locks") else { return nil }
        if depth > 0 && !lockTransactionOpen {
            try lockSession.execute("BEGIN")
            lockTransactionOpen = true
        }
        return lockSession
    }

    /// Ends the lock session's transaction after this connection's.
    private func endLockTransaction(commit: Bool) {
        guard lockTransactionOpen, let lockSession else { return }
        lockTransactionOpen = false
        try? lockSession.execute(commit ? "COMMIT" : "ROLLBACK")
    }

    deinit { PQfinish(handle) }

    /// Whether the connection still talks to the server.
    public var isUsable: Bool { PQstatus(handle) == CONNECTION_OK }

    /// The server's version as a number (150004 for 15.4).
    public var serverVersion: Int { Int(PQserverVersion(handle)) }

    /// Runs one or more statements without parameters.
    public func execute(_ sql: String) throws {
        if let other = try lockSessionFor(sql) { return try other.execute(sql) }
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
    package func typedQuery(_ sql: String, _ parameters: [String?]) throws -> [[SQLValue]] {
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
    package func command(_ sql: String, _ parameters: [String?]) throws -> Int {
        try withResult(sql, parameters) { Int(String(cString: PQcmdTuples($0))) ?? 0 }
    }

    /// Runs one statement with text parameters and hands its checked result to `body`.
    private func withResult<R>(_ sql: String, _ parameters: [String?], _ body: (OpaquePointer?) -> R) throws -> R {
        if let other = try lockSessionFor(sql) { return try other.withResult(sql, parameters, body) }
        try settle()
        let result = withParameters(parameters) { values in
            PQexecParams(handle, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        defer { PQclear(result) }
        try check(result, sql: sql)
        return body(result)
    }

    /// A result's text as a warehouse value, by its type's OID (pg_type.dat).
    package static func value(_ text: String, type: Oid) -> SQLValue {
        switch type {
        case 16: return .integer(text == "t" ? 1 : 0)
        case 20, 21, 23, 26: return Int64(text).map { .integer($0) } ?? .text(text)
        case 700, 701: return Double(text).map { .real($0) } ?? .text(text)
        case 1700: return Int64(text).map { .integer($0) } ?? Double(text).map { .real($0) } ?? .text(text)
        case 17:
            guard text.hasPrefix("\\x") else { return .blob(Array(text.utf8)) }
            return .blob(bytes(fromHex: text.dropFirst(2)))
        case 1184: return .text(sqliteTimestamp(text))
        default: return .text(text)
        }
    }

    /// `2026-01-02 03:04:05.6+00` (PostgreSQL's ISO output in UTC) as `2026-01-02 03:04:05.600`.
    package static func sqliteTimestamp(_ text: String) -> String {
        var utf8 = Array(text.utf8)
        guard utf8.count >= 19, utf8[10] == 0x20 else { return text }
        if let zone = utf8[19...].firstIndex(where: { $0 == 0x2b || $0 == 0x2d }) { utf8.removeSubrange(zone...) }
        var fraction = utf8.count > 19 && utf8[19] == 0x2e ? Array(utf8[20...]) : []
        fraction = Array((fraction + [0x30, 0x30, 0x30]).prefix(3))
        return String(decoding: utf8[..<19] + [0x2e] + fraction, as: UTF8.self)
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
    package func send(_ sql: String, _ parameters: [String?] = [], key: String) throws {
        try settle()
        let sent = withParameters(parameters) { values in
            PQsendQueryParams(handle, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        guard sent == 1 else { throw connectionError() }
        inFlight = .rows(sql: sql, key: key)
    }

    /// The rows of the statement `send` sent with `key`.
    package func receive(_ key: String) throws -> [[SQLValue]] {
        if case .rows(_, key) = inFlight { try settle() }
        guard let rows = received.removeValue(forKey: key) else {
            throw PostgresError(kind: .statement, message: "internal error: no statement \(key) was sent")
        }
        return rows
    }

    /// Rows of a cursor, the next batch fetched by the server while `body` works on this one.
    package func eachFetched(cursor name: String, batch: Int, _ body: ([SQLValue]) throws -> Void) throws {
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
    package var cursors = 0

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
            if savepoint == nil { endLockTransaction(commit: true) }
            return value
        } catch {
            if savepoint == nil { endLockTransaction(commit: false) }
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
        if cluster != nil, let node = PostgresError.unreachableNode(in: primary) {
            throw PostgresError(kind: .connectionLost, message: "worker \(node) of the Citus cluster of \(location.display) cannot be reached (\(primary)): "
                                + "nothing of the file being loaded was kept; start the worker (or remove it with citus_remove_node) and run again", sqlState: state)
        }
        let kind = state.map(PostgresError.kind(ofSQLState:)) ?? .statement
        let message = kind == .connectionLost
            ? "the connection to \(location.display) was lost: \(primary)"
            : "PostgreSQL \(state ?? "error"): \(primary)\(detail) (in: \(sql.prefix(200)))"
        throw PostgresError(kind: kind, message: message, sqlState: state)
    }
}
