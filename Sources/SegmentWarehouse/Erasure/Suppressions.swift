import SegmentCore

/// The warehouse's record of erasure (docs/warehouse.md, Erasure): `_suppressions`, the digests
/// of every id it forgot (never the id), and `_erasures`, one row per request.
package enum Suppressions {
    typealias C = TableDefinition.Column

    package static let suppressions = TableDefinition("_suppressions", key: .columns(["digest"], ordered: false), [
        C("digest", .text), C("kind", .text, "NOT NULL"), C("erasure_id", .integer, "NOT NULL"), C("added_at", .timestamp, "NOT NULL"),
    ])

    /// `status`: `pending` while the archives or the scrub of the file (SQLite) are still to be
    /// done (the next `forget` or load finishes them), `complete` after.
    package static let erasures = TableDefinition("_erasures", key: .generated, [
        C("id", .integer), C("requested_at", .timestamp, "NOT NULL"), C("finished_at", .timestamp), C("status", .text, "NOT NULL"),
        C("digests", .text, "NOT NULL"), C("ids_given", .integer, "NOT NULL"), C("ids_expanded", .integer, "NOT NULL"),
        C("rows_removed", .text, "NOT NULL"), C("rows_total", .integer, "NOT NULL"),
        C("archives_pending", .text, "NOT NULL DEFAULT '[]'"), C("archives_rewritten", .integer, "NOT NULL DEFAULT 0"),
        C("lines_removed", .integer, "NOT NULL DEFAULT 0"), C("scrubbed", .integer, "NOT NULL DEFAULT 0"),
    ])

    /// Creates both tables where missing.
    package static func create(_ db: any SQLSession) throws {
        for table in [suppressions, erasures] where try !db.tableExists(table.name) {
            try db.execute(each: db.dialect.createPlaced(table))
        }
    }

    /// The list a load, a retry and the collector apply (empty when nobody was forgotten).
    package static func list(_ db: any SQLSession) throws -> SuppressionList {
        guard try db.tableExists("_suppressions") else { return SuppressionList() }
        var list = SuppressionList()
        for row in try db.rows("SELECT digest FROM _suppressions") {
            if let digest = row[0].text { list.insert(digest) }
        }
        return list
    }

    /// Requests not yet complete, oldest first.
    package static func pending(_ db: any SQLSession) throws -> [Int64] {
        guard try db.tableExists("_erasures") else { return [] }
        return try db.rows("SELECT id FROM _erasures WHERE status <> 'complete' ORDER BY id").compactMap { $0[0].integer }
    }
}
