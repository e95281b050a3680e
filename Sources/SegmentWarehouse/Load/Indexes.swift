import SegmentStages

/// Indexes for ad-hoc queries, named `_idx_<table>_<column>`: `received_at` on every call and
/// event table (time ranges), `(user_id, timestamp)` and `(anonymous_id, timestamp)` on
/// `tracks`, `pages`, `screens` (one person's activity in time order; the models read a
/// person's new activity through them without reading their whole history),
/// `anonymous_id` on `identifies`, `user_id` on `groups`,
/// `previous_id` and `user_id` on `aliases` (identity stitching). `identifies(user_id,
/// timestamp)` and `groups(group_id, timestamp)` exist from the start: the loader itself needs
/// them to rebuild `users` and `accounts`.
///
/// They are created at the end of a run, after the rows are in, because building an index once
/// over loaded rows is much cheaper than updating it on every insert of a bulk load. A run whose
/// archives (compressed) are larger than the warehouse file drops them first
/// (`dropForBulkLoad`) and builds them again at the end; a nightly run keeps them.
public enum Indexes {
    package static let prefix = Names.queryIndexPrefix
    /// The index the loader needs to derive a profile's rows from its call table:
    /// `_idx_identifies_user_id_timestamp`, `_idx_groups_group_id_timestamp`.
    package static func profileIndex(_ profile: Profile) -> String {
        prefix + profile.sourceName + "_" + profile.keyColumn + "_timestamp"
    }

    /// The two indexes the loader needs for users and accounts (never dropped).
    package static let loaderIndexes = Set(Profile.allCases.map(profileIndex))

    /// The indexes the warehouse should have now: (index name, table, column).
    package static func wanted(in db: any SQLSession) throws -> [(name: String, table: String, columns: [String])] {
        var out: [(String, String, [String])] = []
        let tables = try db.rows("SELECT table_name, call_type FROM _schema_tables ORDER BY table_name")
        for row in tables {
            guard case .text(let table) = row[0], case .text(let kind) = row[1] else { continue }
            let columns: [[String]]
            switch kind {
            case "track" where table != "tracks": columns = [["received_at"]]
            case "track", "page", "screen": columns = [["received_at"], ["user_id", "timestamp"], ["anonymous_id", "timestamp"]]
            case "identify": columns = [["received_at"], ["anonymous_id"]]
            case "group": columns = [["received_at"], ["user_id"]]
            case "alias": columns = [["received_at"], ["previous_id"], ["user_id"]]
            default: columns = []
            }
            for list in columns { out.append((name(table: table, column: list[0]), table, list)) }
        }
        return out
    }

    /// `_idx_<table>_<column>`, cut as a table's name is when over 63 bytes (54 bytes, `_`, 8 hex
    /// digits of a hash of the whole): PostgreSQL would clip it at 63 bytes itself, losing the
    /// column and the hash that tells two long tables apart.
    package static func name(table: String, column: String) -> String {
        Names.fitLength(prefix + table + "_" + column)
    }

    /// What an index whose name is cut was called before December 2026, if not the same: the
    /// whole name as the database stored it (SQLite: whole; PostgreSQL: clipped at 63 bytes).
    /// Dropped when found and built again under its new name.
    package static func legacyName(table: String, column: String, dialect: any SQLDialect) -> String? {
        let whole = prefix + table + "_" + column
        guard whole != name(table: table, column: column) else { return nil }
        return dialect.storedIdentifier(whole)
    }

    /// Creates the missing indexes; `building` wraps the work when there is any (an engine's
    /// settings for sorting whole tables).
    package static func create(session db: any SQLSession, building: (() throws -> Void) throws -> Void = { try $0() }) throws -> [String] {
        let existing = Set(try db.rows(db.dialect.indexesQuery).compactMap(\.first?.text))
        var stale: [String] = []
        var missing: [(name: String, table: String, columns: [String])] = []
        for index in try wanted(in: db) {
            if !existing.contains(index.name) {
                if let legacy = legacyName(table: index.table, column: index.columns[0], dialect: db.dialect), existing.contains(legacy) {
                    stale.append(legacy)
                }
                missing.append(index)
            } else if index.columns.count > 1 {
                let columns = try db.rows(db.dialect.indexColumnsQuery, [.text(index.name)]).compactMap { $0[0].text }
                if columns != index.columns {
                    stale.append(index.name)
                    missing.append(index)
                }
            }
        }
        guard !missing.isEmpty else { return [] }
        try building {
            try db.inTransaction {
                // IF EXISTS: two long tables' clipped PostgreSQL names may have been one.
                for name in Set(stale).sorted() { try db.execute("DROP INDEX IF EXISTS \(quoteIdentifier(name))") }
                for index in missing {
                    try db.execute("CREATE INDEX IF NOT EXISTS \(quoteIdentifier(index.name)) ON \(quoteIdentifier(index.table)) (\(index.columns.map(quoteIdentifier).joined(separator: ", ")))")
                }
            }
        }
        return missing.map(\.name)
    }
}
