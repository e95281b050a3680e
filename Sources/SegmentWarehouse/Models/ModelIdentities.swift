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
    func rebuildIdentities(restrictedTo restriction: String?) throws {
        let tables = linkTables
        guard !tables.isEmpty else { return }
        if let restriction { try db.execute(sql("DELETE FROM identities WHERE anonymous_id IN (SELECT id FROM temp.\(restriction))")) }
        let selects = tables.map { table -> String in
            let anon = table == "aliases" ? "previous_id" : "anonymous_id"
            var sql = "SELECT \(anon) AS a, user_id AS u, timestamp AS t, received_at AS r, id FROM \(table) WHERE \(anon) IS NOT NULL AND +user_id IS NOT NULL"
            if table == "aliases" { sql += " AND previous_id <> user_id" }
            if let restriction { sql += " AND \(anon) IN (SELECT id FROM temp.\(restriction))" }
            return self.sql(sql)
        }
        let (byBytes, nullsFirst) = (db.dialect.byBytes, db.dialect.nullsFirst)
        if db.dialect == .postgres {
            // The same rule in one statement, in the server: the link last in the order below
            // (its user's chain's end), the first link's time (NULL when any link has none), the
            // last one's, and how many chain ends. No link travels to the loader. Window
            // functions over one sort of the links: an aggregate's ORDER BY or DISTINCT sorts
            // every anonymous id's links apart (PostgreSQL 15), and most ids have one or two.
            // The ids are grouped in bytes' order: the same groups as the database's collation
            // (equal is equal), sorted with memcmp instead of strcoll (1.8 s instead of 3.0 s for
            // the bench's 396,383 ids).
            let order = "l.t DESC NULLS LAST, l.r DESC NULLS LAST, l.id\(byBytes) DESC"
            // A whole rebuild fills the empty table without its primary key and builds that
            // after, from the sorted rows, as the other model indexes are built: keeping it row
            // by row was half of the statement (5.1 s against 3.1 s with the key built after).
            let primaryKey = try restriction == nil ? db.value("""
                SELECT conname FROM pg_constraint WHERE conrelid = 'identities'::regclass AND contype = 'p'
                """)?.text : nil
            if let primaryKey { try db.execute("ALTER TABLE identities DROP CONSTRAINT \(quoteIdentifier(primaryKey))") }
            try db.execute("""
                INSERT INTO identities (anonymous_id, user_id, first_linked_at, last_linked_at, user_ids)
                SELECT DISTINCT ON (l.a\(byBytes)) l.a, l.f,
                       CASE WHEN bool_or(l.t IS NULL) OVER anon THEN NULL ELSE min(l.t) OVER anon END, max(l.t) OVER anon,
                       count(*) FILTER (WHERE l.first_of_chain_end) OVER anon
                FROM (SELECT links.*, row_number() OVER (PARTITION BY links.a\(byBytes), links.f\(byBytes)) = 1 AS first_of_chain_end
                      FROM (SELECT l.a, coalesce(al.final_id, l.u) AS f, l.t, l.r, l.id
                            FROM (\(selects.joined(separator: " UNION ALL "))) AS l LEFT JOIN _model_aliases al ON al.id = l.u) AS links) AS l
                WINDOW anon AS (PARTITION BY l.a\(byBytes) ORDER BY \(order) ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
                ORDER BY l.a\(byBytes), \(order)
                """)
            if let primaryKey { try db.execute("ALTER TABLE identities ADD CONSTRAINT \(quoteIdentifier(primaryKey)) PRIMARY KEY (anonymous_id)") }
            return
        }
        let links = "SELECT a, u, t FROM (\(selects.joined(separator: " UNION ALL "))) AS links ORDER BY a\(byBytes), t\(nullsFirst), r\(nullsFirst), id\(byBytes)"
        let insert = try db.appender("identities", columns: ["anonymous_id", "user_id", "first_linked_at", "last_linked_at", "user_ids"])
        var current: String?
        var latest = "", first = SQLValue.null, last = SQLValue.null
        var finals = Set<String>()
        func flush() throws {
            guard let anon = current else { return }
            try insert.append([.text(anon), .text(latest), first, last, .integer(Int64(finals.count))])
        }
        try db.each(links, []) { links in
            guard let anon = links.value(at: 0).idText, let user = links.value(at: 1).idText else { return }
            let time = links.value(at: 2)
            if anon != current {
                try flush()
                current = anon
                first = time
                finals.removeAll()
            }
            let final = graph.final(user)
            latest = final
            last = time
            finals.insert(final)
        }
        try flush()
        try insert.finish()
    }

}
