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
    /// The rule is this one fold, on every engine, over the links sorted by the database. The
    /// same rule as one SQL statement of window functions took SQLite 5.6 s for the bench's
    /// 396,383 ids against about 3 s for the sort and this fold (window functions materialize
    /// each partition); the ids are sorted by bytes, the same groups as any collation.
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
        if let primaryKey { try db.execute("ALTER TABLE identities ADD CONSTRAINT \(quoteIdentifier(primaryKey)) PRIMARY KEY (anonymous_id)") }
    }
}
