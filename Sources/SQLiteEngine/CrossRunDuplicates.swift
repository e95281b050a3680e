import SegmentCore
import SegmentStages
import SegmentWarehouse

/// The Dedupe stage's second half: messages whose id an earlier run (or an earlier file of this
/// run) already loaded. `InRunDuplicates` has already kept one copy of every id within the run;
/// this claims each remaining id in the warehouse's seen-id set (`_message_ids`,
/// docs/warehouse.md, Duplicates) inside the file's transaction, so a file that rolls back releases its ids with
/// its rows.
final class CrossRunDuplicates {
    private let names: NameTable
    private let loadId: Int64
    private let claim: Statement
    private var tableNames: [Int32: String] = [:]

    init(db: Database, names: NameTable, loadId: Int64) throws {
        self.names = names
        self.loadId = loadId
        claim = try db.prepare("INSERT OR IGNORE INTO _message_ids (id, table_name, load_id) VALUES (?, ?, ?)")
    }

    /// Claims the id of each of a chunk's messages; returns, for each, whether it was new (the
    /// message is loaded) or already in the warehouse (a duplicate). Probed and inserted in key
    /// order: neighbouring keys share B-tree pages, where arrival order (random digests) touches
    /// a page per id.
    func admit(_ headers: [RecordCursor.Header]) throws -> [Bool] {
        var keys = SeenIds.Keys(capacity: headers.count)
        for header in headers { keys.append(header.id) }
        var admitted = [Bool](repeating: false, count: headers.count)
        for i in keys.sortedIndices() {
            keys.withKey(i) { claim.bindBlob($0, at: 1) }
            claim.bindText(tableName(headers[i].table), at: 2)
            claim.bindInt(loadId, at: 3)
            defer { claim.reset() }
            try claim.step()
            admitted[i] = claim.database.changes > 0
        }
        return admitted
    }

    private func tableName(_ id: Int32) -> String {
        if let name = tableNames[id] { return name }
        let name = names.name(id)
        tableNames[id] = name
        return name
    }
}
