import Foundation
import SegmentCore
import SegmentStages
import SegmentWarehouse
import SQLiteEngine
import PostgresEngine

/// What `segment-loader status` shows: recent runs, files by status, tables with their row
/// counts and newest `received_at`, rejects and discards waiting, and name collisions.
/// Read-only: it opens the warehouse without writing and takes no lock.
public enum WarehouseStatus {
    public static func render(database: String, schema: String? = nil, runs: Int = 10) throws -> String {
        let db: any SQLSession
        let version: Int64, size: Int64
        if WarehouseLocation.isPostgres(database) {
            let postgres = try PostgresWarehouse(existing: PostgresLocation(database, schema: schema), allowNewer: true)
            db = postgres.connection
            version = Int64(try postgres.formatVersion())
            size = PostgresWarehouse.storedBytes(postgres.connection)
        } else {
            try Warehouse.check(path: database, writing: false, allowNewer: true, mustExist: true)
            let lite = try Database(path: database, readOnly: true)
            let appID = Int32(truncatingIfNeeded: try lite.scalar("PRAGMA application_id")?.integer ?? 0)
            guard appID == Warehouse.applicationID else {
                throw WarehouseError(message: "\(database) is an empty SQLite database, not yet a segment-loader warehouse (a run makes it one)")
            }
            db = lite
            version = try lite.scalar("PRAGMA user_version")?.integer ?? 0
            size = (try? FileManager.default.attributesOfItem(atPath: database)[.size] as? NSNumber)?.int64Value ?? 0
        }
        let shownName = WarehouseLocation.display(database, schema: schema)
        let dbArgument = WarehouseLocation.isPostgres(database) ? "'" + WarehouseURL.redacted(database) + "'" + (schema.map { " --schema \($0)" } ?? "") : database
        var out: [String] = ["warehouse \(shownName) (format \(version), \(formatBytes(size)))"]
        if let distribution = try WarehouseDistribution.read(db) { out.append("  \(distribution.sentence)") }
        if version < Int64(Warehouse.formatVersion) {
            out.append("  format \(version) is older than this build's \(Warehouse.formatVersion): the next run or load upgrades it in place "
                       + "(timestamps become YYYY-MM-DD HH:MM:SS.sss; see docs/warehouse.md)")
        } else if version > Int64(Warehouse.formatVersion) {
            out.append("  format \(version) is newer than this build's \(Warehouse.formatVersion): this build will not load into it")
        }
        // Format 2 named the catalog's columns "table" and "column" and had no reject kinds.
        let (tableName, columnName) = version < 3 ? ("\"table\"", "\"column\"") : ("table_name", "column_name")
        let kind = version < 3 ? "NULL" : "kind"

        if try db.tableExists("_erasures"), let e = try db.rows(
            "SELECT id, requested_at, status, ids_given, ids_expanded, rows_total, archives_rewritten, lines_removed, (SELECT count(*) FROM _erasures), (SELECT count(*) FROM _suppressions) FROM _erasures ORDER BY id DESC LIMIT 1").first {
            let n = e.map { $0.integer ?? 0 }
            out.append("  erasures: \(n[8]) request\(n[8] == 1 ? "" : "s"), \(n[9]) suppressed id\(n[9] == 1 ? "" : "s"); latest #\(n[0]) \(text(e[1])) \(text(e[2])): "
                       + "\(n[3]) id\(n[3] == 1 ? "" : "s") given, \(n[4]) found, \(n[5]) rows removed, \(n[6]) archives rewritten (\(n[7]) lines)"
                       + (text(e[2]) == "complete" ? "" : " (finish it: segment-loader forget --db \(dbArgument) --resume)"))
        }
        out.append("")
        out.append("recent runs:")
        let loads = try db.rows("""
            SELECT id, pipeline, started_at, finished_at, status, files_loaded, files_partial, files_failed, files_skipped,
                   lines, loaded, duplicates, rejected, filtered, error FROM _loads ORDER BY id DESC LIMIT \(runs)
            """)
        if loads.isEmpty { out.append("  none yet") }
        for row in loads {
            let n = row.map { $0.integer ?? 0 }
            var line = "  #\(n[0]) \(text(row[1])) \(text(row[2])) \(text(row[4]))"
            if case .text = row[3], let a = Timestamp.parse(text(row[2])), let b = Timestamp.parse(text(row[3])) {
                line += String(format: " in %.1f s", Double(b.milliseconds - a.milliseconds) / 1000)
            }
            line += ": files \(n[5]) loaded, \(n[6]) partial, \(n[7]) failed, \(n[8]) skipped; messages \(n[9]) read, \(n[10]) loaded, \(n[11]) duplicates, \(n[12]) rejected, \(n[13]) filtered"
            if case .text(let error) = row[14] { line += "; error: \(error)" }
            out.append(line)
        }

        out.append("")
        let files = try db.rows("SELECT status, count(*), sum(size) FROM _files GROUP BY status ORDER BY status")
        out.append("files: " + (files.isEmpty ? "none" : files.map { "\($0[1].integer ?? 0) \(text($0[0])) (\(formatBytes($0[2].integer ?? 0)))" }.joined(separator: ", ")))
        for row in try db.rows("SELECT path, error FROM _files WHERE status != 'loaded' ORDER BY id DESC LIMIT 10") {
            out.append("  not fully loaded: \(text(row[0])): \(text(row[1]))")
        }

        out.append("")
        out.append("tables:")
        let tables = try db.rows("SELECT \(tableName), call_type, event_names FROM _schema_tables ORDER BY 1")
        let width = tables.map { text($0[0]).count }.max() ?? 0
        for row in tables {
            let name = text(row[0])
            let count = try db.value("SELECT count(*) FROM \(quoteIdentifier(name))")?.integer ?? 0
            let newest = try db.value("SELECT max(received_at) FROM \(quoteIdentifier(name))")
            var line = "  " + name.padding(toLength: width, withPad: " ", startingAt: 0) + "  \(count) row\(count == 1 ? "" : "s")"
            if case .text(let at)? = newest { line += ", newest received_at \(at)" }
            out.append(line)
        }
        if tables.isEmpty { out.append("  none yet") }
        let eventTables = tables.filter { text($0[1]) == "track" && text($0[0]) != "tracks" }.count
        if let past = try tableExists(db, "_events_past_limit") ? try db.rows("SELECT count(*), sum(calls) FROM _events_past_limit").first : nil,
           let names = past[0].integer, names > 0 {
            out.append("event tables: \(eventTables); \(names) event name\(names == 1 ? "" : "s") past the event table limit, "
                       + "\(past[1].integer ?? 0) track calls in tracks only, properties in _extra (SELECT * FROM _events_past_limit):")
            for row in try db.rows("SELECT event_text, calls FROM _events_past_limit ORDER BY calls DESC, event_text LIMIT 5") {
                out.append("  \(row[1].integer ?? 0) × \(text(row[0]))")
            }
            if names > 5 { out.append("  ... \(names - 5) more") }
        }

        // Before format 3, `_models` may be an event's table (the upgrade renames it).
        if version >= 3 {
            out.append("")
            out.append(contentsOf: try models(db))
        }

        out.append("")
        let rejects = try db.value("SELECT count(*) FROM _rejects")?.integer ?? 0
        out.append("rejects waiting: \(rejects)" + (rejects > 0 ? " (list: segment-loader rejects --db \(dbArgument); retry after a fix: segment-loader rejects retry --db \(dbArgument))" : ""))
        for row in try db.rows("SELECT reason, count(*), max(\(kind)) FROM _rejects GROUP BY reason ORDER BY count(*) DESC, reason LIMIT 5") {
            out.append("  \(row[1].integer ?? 0) × " + (row[2] == .null ? "" : "[\(text(row[2]))] ") + text(row[0]))
        }
        let discards = try db.value("SELECT count(*) FROM _discards")?.integer ?? 0
        if discards > 0 {
            out.append("discards: " + (discards == 1 ? "1 value kept out of its column" : "\(discards) values kept out of their columns") + " (SELECT * FROM _discards)")
        }
        for row in try db.rows("SELECT \(tableName), \(columnName), reason, count(*) FROM _discards GROUP BY 1, 2, 3 ORDER BY count(*) DESC LIMIT 5") {
            out.append("  \(row[3].integer ?? 0) × \(text(row[0])).\(text(row[1])): \(text(row[2]))")
        }

        out.append("")
        let collisions = try db.rows("""
            SELECT \(tableName), \(columnName), source_keys FROM _schema_columns WHERE \(db.dialect.jsonArrayLength("source_keys")) > 1 AND origin IN ('context', 'property', 'trait') ORDER BY 1, 2
            """)
        out.append("name collisions (several source keys share one column): \(collisions.count)")
        for row in collisions.prefix(20) {
            out.append("  \(text(row[0])).\(text(row[1])) ← \(text(row[2]))")
        }
        if collisions.count > 20 { out.append("  ... \(collisions.count - 20) more in _schema_columns") }
        return out.joined(separator: "\n")
    }

    /// The models' tables with their row counts, the last build, and what waits for the next.
    static func models(_ db: any SQLSession) throws -> [String] {
        let exists = { (name: String) in try tableExists(db, name) }
        guard try exists("_models"), let last = try db.rows("""
            SELECT built_at, mode, people, seconds, session_timeout_minutes, (SELECT count(*) FROM _models) FROM _models ORDER BY id DESC LIMIT 1
            """).first else {
            return ["models: not built yet (the next run or load builds them; or segment-loader models --db W)"]
        }
        var out = ["models: last built \(text(last[0])), \(text(last[1])) for \(last[2].integer ?? 0) \(last[2].integer == 1 ? "person" : "people") in \(String(format: "%.2f", last[3].double ?? 0)) s"
                   + " (session timeout \(last[4].integer ?? 0) min; \(last[5].integer ?? 0) build\(last[5].integer == 1 ? "" : "s") in _models)"]
        for table in Models.tables where try exists(table) {
            let count = try db.value("SELECT count(*) FROM \(table)")?.integer ?? 0
            out.append("  \(table.padding(toLength: 10, withPad: " ", startingAt: 0))  \(count) row\(count == 1 ? "" : "s")")
        }
        if try exists("_model_pending"), let pending = try db.value("SELECT count(*) FROM (SELECT DISTINCT kind, id FROM _model_pending) AS pending")?.integer, pending > 0 {
            out.append("  \(pending) ids touched since the last build wait for the next one (a run with --no-models, or one stopped before its build)")
        }
        return out
    }

    static func tableExists(_ db: any SQLSession, _ name: String) throws -> Bool {
        try db.tableExists(name)
    }

    static func text(_ value: SQLValue) -> String {
        switch value {
        case .text(let s): return s
        case .integer(let i): return String(i)
        case .real(let d): return String(d)
        case .null: return ""
        case .blob(let b): return "<\(b.count) bytes>"
        }
    }
}

/// `segment-loader rejects`: the rejected lines, one per line of output.
public enum RejectList {
    public static func render(database: String, schema: String? = nil, limit: Int, raw: Bool) throws -> String {
        let db = try WarehouseLocation(database, schema: schema).reading()
        let total = try db.value("SELECT count(*) FROM _rejects")?.integer ?? 0
        // A warehouse before format 3 (read, not upgraded) has no kind.
        let kind = try db.columnExists("_rejects", "kind") ? "kind" : "NULL"
        let rows = try db.rows("SELECT file, line, item, reason, raw, load_id, \(kind), redacted FROM _rejects ORDER BY id\(limit > 0 ? " LIMIT \(limit)" : "")")
        var out: [String] = []
        let shown = PathDisplay()
        for row in rows {
            var line = "\(shown(WarehouseStatus.text(row[0]))):\(row[1].integer ?? 0)"
            if let item = row[2].integer { line += " (batch item \(item))" }
            line += ": \(WarehouseStatus.text(row[3])) [" + (row[6] == .null ? "" : "\(WarehouseStatus.text(row[6])), ") + "load \(row[5].integer ?? 0)]"
            out.append(line)
            if raw {
                let code = row[7].integer ?? 0
                let text = code % RejectRaw.hexCode == RejectRaw.withheld.redactedCode
                    ? "(not kept: privacy rules apply and the line is not a JSON object; it is in the archive)"
                    : code >= RejectRaw.hexCode ? "(bytes that are not UTF-8 text, in hex) " + WarehouseStatus.text(row[4])
                    : WarehouseStatus.text(row[4])
                out.append("    " + (text.count > 200 ? String(text.prefix(200)) + "…" : text))
            }
        }
        if total > Int64(rows.count) { out.append("... \(total - Int64(rows.count)) more (--limit 0 lists all)") }
        out.append("\(total) rejected line\(total == 1 ? "" : "s") in \(WarehouseLocation.display(database, schema: schema))")
        return out.joined(separator: "\n")
    }
}
