import CLibPQ
import Foundation
import SegmentWarehouse
import SegmentCore

/// Where a PostgreSQL warehouse is: what libpq connects with (a `postgresql://` or
/// `postgres://` URL, or `key=value` words, completed by `PGHOST`, `PGUSER`, `PGPASSWORD`,
/// `~/.pgpass`, service files as for `psql`) and the schema its tables go into.
///
/// libpq parses the URL itself (`PQconninfoParse`), so every form and option psql knows is
/// known here too, and a mistake is reported in its words. The password never leaves this
/// value: `display` names the server, port, user and database only.
public struct PostgresLocation: Sendable, Equatable {
    /// What libpq is given, as the user wrote it (with its password, if any).
    public let conninfo: String
    /// The schema the warehouse's tables live in (created if missing).
    public let schema: String

    /// The schema a warehouse uses when none is named: one of its own, not `public`, so that
    /// its ~20 tables and one per event do not mix with a database's other tables.
    public static let defaultSchema = "segment"

    /// The options libpq found, password included (internal: never printed).
    package let options: [String: String]

    /// Whether `text` names a PostgreSQL warehouse rather than a SQLite file.
    public static func isPostgres(_ text: String) -> Bool {
        WarehouseURL.isServer(text)
    }

    /// Parses `conninfo` with libpq. Throws a sentence (without the password) when libpq
    /// refuses it or the schema is not a plain name.
    public init(_ conninfo: String, schema: String? = nil) throws {
        var error: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(conninfo, &error) else {
            let reason = error.map { String(cString: $0) } ?? "libpq could not read it"
            if let error { PQfreemem(error) }
            throw PostgresError(kind: .usage, message: "\(WarehouseURL.redacted(conninfo)) is not a PostgreSQL connection string: \(reason.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        defer { PQconninfoFree(parsed) }
        var options: [String: String] = [:]
        var option = parsed
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { options[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        let schema = schema ?? PostgresLocation.defaultSchema
        guard PostgresLocation.isPlainName(schema) else {
            throw PostgresError(kind: .usage, message: "schema \"\(schema)\": use a name of letters, digits and underscores (at most 63 bytes, not starting with a digit)")
        }
        if let mode = options["sslmode"], !PostgresLocation.sslModes.contains(mode) {
            throw PostgresError(kind: .usage, message: "sslmode=\(mode) is not one libpq knows: use one of \(PostgresLocation.sslModes.joined(separator: ", "))")
        }
        self.conninfo = conninfo
        self.schema = schema
        self.options = options
    }

    /// libpq's sslmode values (all of them are supported: libpq does the TLS).
    public static let sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    /// `postgresql://user@host:port/database` as far as the URL says; what it leaves out comes
    /// from the environment at connection time. Never a password.
    public var display: String {
        var text = "postgresql://"
        if let user = options["user"], !user.isEmpty { text += user + "@" }
        text += options["host"] ?? options["hostaddr"] ?? ""
        if let port = options["port"], !port.isEmpty { text += ":" + port }
        if let database = options["dbname"], !database.isEmpty { text += "/" + database }
        return text
    }

    /// The same database, user and settings on another server (a Citus node).
    package func at(host: String, port: String) throws -> PostgresLocation {
        var node = options
        node["host"] = host
        node["hostaddr"] = nil
        node["port"] = port
        let conninfo = node.sorted { $0.key < $1.key }.map { "\($0.key)='\($0.value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'"))'" }
            .joined(separator: " ")
        return try PostgresLocation(conninfo, schema: schema)
    }

    /// The warehouse as output names it: `display` and the schema.
    public var warehouseName: String { display + " (schema \(schema))" }

    package static func isPlainName(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= 63, !(first >= 0x30 && first <= 0x39) else { return false }
        return name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f }
    }
}
