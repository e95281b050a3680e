import SegmentLoader
import Foundation
import Yams
import SegmentCore
import SegmentStages
import SegmentWarehouse
import SQLiteEngine

/// Metadata for Datasette (https://docs.datasette.io/en/0.65/metadata.html) that makes a
/// warehouse read well out of the box: bookkeeping tables hidden, event tables titled with
/// their raw event names, every column described by the source keys it holds, call and event
/// tables sorted newest first.
public enum DatasetteMetadata {
    public enum Format: String, Sendable, CaseIterable {
        case yaml, json
    }

    /// The metadata for the warehouse at `database`, as Datasette names it (the file name
    /// without its extension, unless `name` is given).
    /// `funnel`: the dashboard funnel's steps (none: the three most frequent events).
    public static func render(database: String, name: String? = nil, format: Format, funnel: [String] = []) throws -> String {
        let document = try build(database: database, name: name, funnel: funnel)
        switch format {
        case .json: return pretty(document, indent: "")
        case .yaml: return try Yams.serialize(node: node(document), width: -1, allowUnicode: true)
        }
    }

    static func build(database: String, name: String?, funnel: [String] = []) throws -> JSONValue {
        // The one refusal check; then what describing needs besides: this exact format.
        try Warehouse.check(path: database, writing: false, allowNewer: true, mustExist: true)
        let db = try Database(path: database, readOnly: true)
        let appID = Int32(truncatingIfNeeded: try db.scalar("PRAGMA application_id")?.integer ?? 0)
        guard appID == Warehouse.applicationID else {
            throw WarehouseError(message: "\(database) is an empty SQLite database, not yet a segment-loader warehouse (a run makes it one)")
        }
        let version = Int32(truncatingIfNeeded: try db.scalar("PRAGMA user_version")?.integer ?? 0)
        guard version == Warehouse.formatVersion else {
            throw WarehouseError(message: "\(database) is in warehouse format \(version), and this build describes format \(Warehouse.formatVersion): "
                + (version < Warehouse.formatVersion ? "run a load (segment-loader run or load) once to upgrade it, then try again" : "upgrade segment-loader"))
        }
        let databaseName = name ?? ((database as NSString).lastPathComponent as NSString).deletingPathExtension

        var columns: [String: [(name: String, description: String)]] = [:]
        for row in try db.query("SELECT table_name, column_name, source_keys, origin, note FROM _schema_columns ORDER BY rowid") {
            guard let table = row[0].text, let column = row[1].text else { continue }
            var keys: [String] = []
            if let text = row[2].text, case .array(let items)? = try? JSONParser.parse(text) { keys = items.compactMap(\.stringValue) }
            guard let description = describe(table: table, column: column, keys: keys, origin: row[3].text ?? "", note: row[4].text)
            else { continue }
            columns[table, default: []].append((column, description))
        }

        var tables: [(key: String, value: JSONValue)] = []
        let present = Set(try db.query("SELECT name FROM sqlite_master WHERE type = 'table'").compactMap { $0[0].text })
        for table in Names.bookkeepingTables.sorted() where present.contains(table) {
            tables.append((table, .object([("hidden", .bool(true))])))
        }
        for row in try db.query("SELECT table_name, call_type, event_names FROM _schema_tables ORDER BY table_name") {
            guard let table = row[0].text, let kind = row[1].text else { continue }
            var entry: [(key: String, value: JSONValue)] = []
            var eventNames: [String] = []
            if let text = row[2].text, case .array(let items)? = try? JSONParser.parse(text) { eventNames = items.compactMap(\.stringValue) }
            let isEvent = kind == "track" && table != "tracks"
            if isEvent && !eventNames.isEmpty { entry.append(("title", .string(eventNames.joined(separator: " / ")))) }
            entry.append(("description", .string(describe(table: table, kind: kind, eventNames: eventNames))))
            entry.append(("sort_desc", .string(kind == "profile" ? "received_at" : "timestamp")))
            if let described = columns[table], !described.isEmpty {
                entry.append(("columns", .object(described.map { ($0.name, .string($0.description)) })))
            }
            tables.append((table, .object(entry)))
        }
        for model in Self.models where present.contains(model.table) {
            tables.append((model.table, .object([
                ("description", .string(model.description)), ("sort_desc", .string(model.sort)),
                ("columns", .object(model.columns.map { ($0.0, .string($0.1)) })),
            ])))
        }
        let views = Set(try db.query("SELECT name FROM sqlite_master WHERE type = 'view'").compactMap { $0[0].text })
        for view in Self.analyticsViews where views.contains(view.name) {
            tables.append((view.name, .object([("description", .string(view.description))])))
        }
        var plugins: [(key: String, value: JSONValue)] = []
        if try DatasetteDashboard.missing(db) == nil {
            plugins.append(("plugins", .object([("datasette-dashboards", .object([
                (DatasetteDashboard.slug, try DatasetteDashboard.build(db, database: databaseName, funnel: funnel)),
            ]))])))
        }
        return .object([
            ("title", .string("Segment warehouse")),
            ("description", .string("Analytics events loaded by segment-loader, laid out like Segment Warehouses. "
                + "Timestamps are UTC text (YYYY-MM-DD HH:MM:SS.sss); bookkeeping tables (_loads, _files, _rejects, ...) are hidden but can be queried.")),
            ("databases", .object([(databaseName, .object([("tables", .object(tables))]))])),
        ] + plugins)
    }

    /// The product-analytics views (docs/models.md, Product analytics).
    static let analyticsViews: [(name: String, description: String)] = [
        ("active_people", "View: per UTC day, the people active that day (dau), in the 7 and 30 days ending with it (wau, mau), and new that day."),
        ("daily_events", "View: per UTC day and event (a track's raw name; page views as page, screen views as screen), its calls and people."),
        ("weekly_retention", "View: per cohort (the ISO week of people's first activity) and week number k, the cohort's people and those active in week cohort + k."),
    ]

    static func describe(table: String, kind: String, eventNames: [String]) -> String {
        switch (kind, table) {
        case ("track", "tracks"): return "Every track call: common columns and context; the properties are in each event's own table."
        case ("track", _):
            let names = eventNames.map { "\"\($0)\"" }.joined(separator: ", ")
            return "One row per track call of the event \(names.isEmpty ? table : names): common columns, properties, then context."
        case ("identify", _): return "One row per identify call, traits as columns."
        case ("page", _): return "One row per page call: name, category and the page's properties."
        case ("screen", _): return "One row per screen call: name, category and properties."
        case ("group", _): return "One row per group call, traits as columns."
        case ("alias", _): return "One row per alias call: previous_id now known as user_id."
        case ("profile", "users"): return "One row per user id: every trait with its newest non-null value (by timestamp)."
        case ("profile", "accounts"): return "One row per group id: every trait with its newest non-null value (by timestamp)."
        default: return "\(kind) table"
        }
    }

    /// Common columns whose meaning is not plain from their name.
    static let commonDescriptions: [String: String] = [
        "received_at": "receivedAt: when Segment (or the collector) received the message, UTC",
        "sent_at": "sentAt: when the client sent the message, by its clock, UTC",
        "original_timestamp": "originalTimestamp: the event time by the client's clock, UTC",
        "timestamp": "timestamp: the event time corrected for the client's clock skew, UTC",
        "uuid_ts": "when segment-loader wrote this row, UTC",
        "_extra": "JSON: keys without a column (no ASCII name, past the column limit, or not in the Spec)",
    ]

    /// The built-in models (docs/models.md), with the columns whose names do not say it all.
    static let models: [(table: String, description: String, sort: String, columns: [(String, String)])] = [
        ("identities", "Model: one row per anonymous id seen together with a user id (any call, or an alias's previous id).", "last_linked_at", [
            ("user_id", "The user of the latest linking call, after aliases"),
            ("user_ids", "How many distinct users this id was seen with (2 or more: a shared device)"),
        ]),
        ("page_views", "Model: one row per page call, with its person, source and session.", "timestamp", [
            ("id", "The page call's message id (pages.id)"),
            ("blended_user_id", "The person: user_id after aliases, else the user the anonymous id resolves to, else the anonymous id"),
            ("utm_source", "context.campaign.source, else the URL's utm_source (likewise the other utm_ columns)"),
            ("device", "iPad, iPhone, Android, Windows, Mac, Linux (first found in the user agent) or other"),
            ("view_index", "The view's place among its session's page views"),
        ]),
        ("sessions", "Model: a person's pages, screens and tracks, split where they are more than the session timeout apart.", "started_at", [
            ("blended_user_id", "The person: user_id after aliases, else the user the anonymous id resolves to, else the anonymous id"),
            ("session_index", "The session's number among the person's (1 is the first)"),
            ("referrer", "Of the session's first page or screen view (likewise utm_, gclid, device)"),
        ]),
    ]

    /// A column's description: the source keys it holds when they are not plain from its name
    /// (`properties.orderId`, several keys sharing it, a rename), or what a time column means;
    /// nil where the name says it all (`user_id`, `plan` from `properties.plan`, a Spec column
    /// no value has reached yet). Datasette lists every described column above the rows.
    static func describe(table: String, column: String, keys: [String], origin: String, note: String?) -> String? {
        var text: String
        if origin == "profile" && (column == "id" || column == "received_at") {
            let call = table == "accounts" ? "group" : "identify"
            text = column == "id" ? "\(keys.first ?? "id"): one row each" : "receivedAt of the newest \(call) call, UTC"
        } else if origin == "common" || origin == "profile" || origin == "extra" {
            guard let known = commonDescriptions[column] else { return nil }
            text = known
        } else if keys.isEmpty {
            return nil
        } else if keys.count == 1, note == nil || note == Catalog.specNote,
                  keys[0].droppingScope().replacingOccurrences(of: ".", with: "_") == column {
            return nil
        } else {
            text = keys.joined(separator: ", ")
            if keys.count > 1 { text += " (these keys share this column)" }
        }
        if let note, !note.isEmpty, note != Catalog.specNote { text += "; \(note)" }
        return text
    }

    /// JSON with one member per line, for a file people read and edit.
    static func pretty(_ value: JSONValue, indent: String) -> String {
        let inner = indent + "  "
        switch value {
        case .object(let members):
            if members.isEmpty { return "{}" }
            return "{\n" + members.map { inner + JSONWriter.string(.string($0.key)) + ": " + pretty($0.value, indent: inner) }
                .joined(separator: ",\n") + "\n" + indent + "}"
        case .array(let items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        default:
            return JSONWriter.string(value)
        }
    }

    static func node(_ value: JSONValue) -> Node {
        switch value {
        case .object(let members): return .mapping(Node.Mapping(members.map { (Node($0.key), node($0.value)) }))
        case .array(let items): return .sequence(Node.Sequence(items.map(node)))
        case .string(let s): return Node(s, Tag(.str), s.isEmpty || needsQuotes(s) ? .singleQuoted : .plain)
        case .bool(let b): return Node(b ? "true" : "false", Tag(.bool))
        case .int(let i): return Node(String(i), Tag(.int))
        case .double(let d): return Node(String(d), Tag(.float))
        case .bigNumber(let s): return Node(s)
        case .null: return Node("null", Tag(.null))
        }
    }

    /// Strings YAML would read as something else, or that carry characters with a meaning.
    static func needsQuotes(_ s: String) -> Bool {
        let lowered = s.lowercased()
        if ["true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"].contains(lowered) { return true }
        if Double(s) != nil || Int(s) != nil { return true }
        guard let first = s.unicodeScalars.first else { return true }
        if "-?:,[]{}#&*!|>'\"%@` ".unicodeScalars.contains(first) { return true }
        return s.contains(": ") || s.contains(" #") || s.hasSuffix(":") || s.hasSuffix(" ")
    }
}
