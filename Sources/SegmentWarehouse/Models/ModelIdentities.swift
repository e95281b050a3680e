import Foundation
import SegmentCore
import SegmentStages

/// The identities model: which user id each anonymous id belongs to.
extension Builder {
    /// The tables whose rows link an anonymous id to a user id (`aliases` by its previous id).
    var linkTables: [String] {
        ["identifies", "tracks", "pages", "screens", "groups", "aliases"].filter(callTables.contains)
    }

    func writeAliases(_ pairs: [(id: String, final: String)]) throws {
        let insert = try db.appender("_model_aliases", columns: ["id", "final_id"])
        for pair in pairs { try insert.append([.text(pair.id), .text(pair.final)]) }
        try insert.finish()
    }

    /// Recomputes the `identities` rows of the anonymous ids in temp table `restriction` (all
    /// when nil): every call that carries both ids links them; an alias links its previous id.
    /// An anonymous id belongs to the end of the alias chain of its latest link (by timestamp,
    /// then received_at, then id; a missing time first), `first_linked_at` is its first link's
    /// time (NULL when any link has none), `last_linked_at` the latest, and `user_ids` counts
    /// the chain ends it was linked to.
    ///
    /// One statement, in the database: no link travels to the loader. Window functions over
    /// one sort of the links per anonymous id (most have one or two); the ids are grouped in
    /// bytes' order, the same groups as any collation (equal is equal), sorted with memcmp
    /// (PostgreSQL: 1.8 s instead of 3.0 s with its collation for the bench's 396,383 ids).
    func rebuildIdentities(restrictedTo restriction: String?) throws {
        let tables = linkTables
        guard !tables.isEmpty else { return }
        if let restriction { try db.execute("DELETE FROM identities WHERE anonymous_id IN (SELECT id FROM \(temp(restriction)))") }
        let selects = tables.map { table -> String in
            let anon = table == "aliases" ? "previous_id" : "anonymous_id"
            var sql = "SELECT \(anon) AS a, user_id AS u, timestamp AS t, received_at AS r, id FROM \(table) WHERE \(anon) IS NOT NULL AND \(unindexed("user_id")) IS NOT NULL"
            if table == "aliases" { sql += " AND previous_id <> user_id" }
            if let restriction { sql += " AND \(anon) IN (SELECT id FROM \(temp(restriction)))" }
            return sql
        }
        let (byBytes, nullsFirst) = (dialect.byBytes, dialect.nullsFirst)
        // A whole rebuild fills the empty table without its primary key and builds that after,
        // from the sorted rows, where the database can (PostgreSQL: 5.1 s against 3.1 s).
        let primaryKey = try restriction == nil ? dialect.primaryKeyConstraintQuery.flatMap { try db.value($0, [.text("identities")])?.text } : nil
        if let primaryKey { try db.execute("ALTER TABLE identities DROP CONSTRAINT \(quoteIdentifier(primaryKey))") }
        try db.execute("""
            INSERT INTO identities (anonymous_id, user_id, first_linked_at, last_linked_at, user_ids)
            SELECT a, f, first_t, last_t, ends FROM (
              SELECT l.a, last_value(l.f) OVER anon AS f, first_value(l.t) OVER anon AS first_t, last_value(l.t) OVER anon AS last_t,
                     sum(l.chain_end) OVER anon AS ends, row_number() OVER anon AS n
              FROM (SELECT links.*, CASE WHEN row_number() OVER (PARTITION BY links.a\(byBytes), links.f\(byBytes)) = 1 THEN 1 ELSE 0 END AS chain_end
                    FROM (SELECT l.a, coalesce(al.final_id, l.u) AS f, l.t, l.r, l.id
                          FROM (\(selects.joined(separator: " UNION ALL "))) AS l LEFT JOIN _model_aliases al ON al.id = l.u) AS links) AS l
              WINDOW anon AS (PARTITION BY l.a\(byBytes) ORDER BY l.t\(nullsFirst), l.r\(nullsFirst), l.id\(byBytes)
                              ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
            ) AS per WHERE n = 1 ORDER BY a\(byBytes)
            """)
        if let primaryKey { try db.execute("ALTER TABLE identities ADD CONSTRAINT \(quoteIdentifier(primaryKey)) PRIMARY KEY (anonymous_id)") }
    }
}
