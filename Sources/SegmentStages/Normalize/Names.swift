import SegmentCore

/// Table and column names of the warehouse (docs/warehouse.md, Names): go-snakecase, then made safe
/// for SQL and for PostgreSQL's 63-byte identifiers.
public enum Names {
    public static let maxLength = 63

    /// The tables every warehouse has (docs/warehouse.md, Tables): the call tables, `users` and `accounts`, and the tables
    /// of the built-in models (reserved since format 3) and the product-analytics views over them
    /// (since format 4). A track event whose slug equals one of
    /// these gets a `_` prefix.
    public static let contractTables: Set<String> = [
        "tracks", "identifies", "users", "pages", "screens", "groups", "accounts", "aliases",
        "identities", "page_views", "sessions", "active_people", "daily_events", "weekly_retention",
    ]

    /// The bookkeeping tables (docs/warehouse.md, Bookkeeping), which no event table may take the name of.
    /// `_models` (a row per build), `_model_pending` (ids touched since) and `_model_aliases`
    /// (where alias chains end) are the built-in models' own.
    public static let bookkeepingTables: Set<String> = [
        "_loads", "_files", "_rejects", "_discards", "_schema_tables", "_schema_columns", "_message_ids", "_models",
        "_model_pending", "_model_aliases", "_model_person_days", "_model_person_events", "_model_people", "_model_active_days", "_model_daily_events",
        "_model_retention",
    ]

    /// The prefixes of the loader's own index names: query indexes and the models' indexes.
    public static let queryIndexPrefix = "_idx_"
    public static let modelIndexPrefix = "_model_idx_"

    /// The name an event table must take instead of `name` when `name` is reserved, else nil.
    package static func reservedReplacement(for name: String) -> String? {
        if contractTables.contains(name) || bookkeepingTables.contains(name) || name.hasPrefix("sqlite_") || name.hasPrefix("_event_")
            || name.hasPrefix(queryIndexPrefix) || name.hasPrefix(modelIndexPrefix) {
            return fitLength("_" + name)
        }
        return nil
    }

    /// Makes a snake-cased name usable as an SQL identifier: a leading digit or an SQL keyword
    /// gets a `_` prefix, and a name over 63 bytes is cut, ending in `_` and 8 hex digits of
    /// the SHA-256 of the whole name, so distinct long names stay distinct and stable.
    public static func sqlSafe(_ snake: String) -> String {
        var name = snake
        if let first = name.utf8.first, first >= 0x30 && first <= 0x39 {
            name = "_" + name
        } else if isKeyword(name) {
            name = "_" + name
        }
        return fitLength(name)
    }

    /// Cuts a name longer than 63 bytes to 54 bytes plus `_` plus 8 hex digits of its SHA-256.
    public static func fitLength(_ name: String) -> String {
        let utf8 = name.utf8
        guard utf8.count > maxLength else { return name }
        let head = String(decoding: utf8.prefix(maxLength - 9), as: UTF8.self)
        return head + "_" + shortHash(name)
    }

    /// The first 8 hex digits of the SHA-256 of `text`.
    public static func shortHash(_ text: String) -> String {
        let digest = SHA256Hasher.hash(text)
        return hexString(digest.prefix(4))
    }

    /// Whether `name` is a reserved word that cannot stand unquoted as a column name in SQLite
    /// or PostgreSQL (PostgreSQL's reserved key words, plus the words SQLite's grammar will not
    /// take as a bare identifier). SQLite's full keyword list is not used: it holds everyday
    /// property names such as `plan`, `action` and `key` that analysts expect unprefixed.
    public static func isKeyword(_ name: String) -> Bool {
        reservedWords.contains(name)
    }

    package static let reservedWords: Set<String> = [
        // PostgreSQL reserved key words (https://www.postgresql.org/docs/current/sql-keywords-appendix.html)
        "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "both", "case", "cast",
        "check", "collate", "column", "constraint", "create", "current_catalog", "current_date", "current_role",
        "current_time", "current_timestamp", "current_user", "default", "deferrable", "desc", "distinct", "do",
        "else", "end", "except", "false", "fetch", "for", "foreign", "from", "grant", "group", "having", "in",
        "initially", "intersect", "into", "lateral", "leading", "limit", "localtime", "localtimestamp", "not",
        "null", "offset", "on", "only", "or", "order", "placing", "primary", "references", "returning", "select",
        "session_user", "some", "symmetric", "table", "then", "to", "trailing", "true", "union", "unique", "user",
        "using", "variadic", "when", "where", "window", "with",
        // SQLite keywords that are not fallback identifiers (https://sqlite.org/lang_keywords.html)
        "add", "alter", "autoincrement", "between", "commit", "delete", "drop", "escape", "exists", "index",
        "insert", "is", "isnull", "join", "notnull", "set", "transaction", "update", "values",
        // Not keywords, but a column with one of these names hides SQLite's rowid
        // (https://sqlite.org/lang_createtable.html#rowid): analysts and the loader need it.
        "rowid", "oid", "_rowid_",
    ]

    /// The table for a track event: its slug, `_`-prefixed when it would take the name of a
    /// warehouse or bookkeeping table (or SQLite's own `sqlite_` names), and
    /// `_event_<8 hex of SHA-256>` when the name has no ASCII letters or digits at all.
    public static func eventTable(for event: String) -> String {
        let slug = snakeCase(event)
        if slug.isEmpty { return "_event_" + shortHash(event) }
        let name = sqlSafe(slug)
        return reservedReplacement(for: name) ?? name
    }
}
