import SegmentCore
import SegmentStages

/// The rows that say what a load did with its input (docs/warehouse.md, Bookkeeping): `_files` (one per
/// archive), `_rejects` (each line that could not be loaded, with what is kept of it) and
/// `_discards` (each value kept out of its column). Written in the file's transaction.
package final class Bookkeeping {
    package let session: any SQLSession
    package let names: NameTable
    package let loadId: Int64
    package let uuidTs: String
    private let insertReject: any SQLPrepared
    private let insertDiscard: any SQLPrepared
    private let insertFile: any SQLPrepared
    /// Content hashes of archives already loaded, each with the path it was loaded from.
    package func loadedHashes() throws -> [String: String] { try LoadRecords.loadedHashes(session) }
    /// The size (and ETag) of each path already loaded, to tell which archives a run will skip.
    package func loadedPathsAndSizes() throws -> [String: LoadedFile] { try LoadRecords.loadedPathsAndSizes(session) }

    /// Discards written since the current file began.
    package private(set) var discardsInFile: Int64 = 0

    package init(session: any SQLSession, names: NameTable, loadId: Int64, uuidTs: String) throws {
        self.session = session
        self.names = names
        self.loadId = loadId
        self.uuidTs = uuidTs
        try LoadRecords.addETagColumn(session)
        try LoadRecords.addSuppressedColumns(session)
        insertReject = try session.prepared("INSERT INTO _rejects (file, line, item, reason, raw, load_id, redacted, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        insertDiscard = try session.prepared("""
            INSERT INTO _discards (table_name, column_name, row_id, message_id, value, reason, received_at, load_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        insertFile = try session.prepared("""
            INSERT INTO _files (path, size, sha256, source_id, day, status, lines, loaded, duplicates, rejected,
              filtered, discarded, physical_lines, load_id, error, loaded_at, etag, suppressed)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
    }

    package func beginFile() {
        discardsInFile = 0
    }

    /// One line that could not be loaded: `raw` says what is kept of it and how (see `RejectRaw`).
    package func reject(file: String, line: Int, item: Int?, kind: RejectKind, reason: String, raw kept: RejectRaw) throws {
        let raw = kept.bytes
        var rawValue: SQLValue
        var code = kept.redactedCode
        if let text = String(validating: raw, as: UTF8.self), !text.utf8.contains(0) {
            rawValue = .text(text)
        } else if !session.dialect.textHoldsAnyBytes {
            // Where text holds neither a NUL nor bytes that are not UTF-8 (PostgreSQL), the
            // line goes in hex, marked so (see `RejectRaw.hexCode`).
            rawValue = .text(hexString(raw))
            code += RejectRaw.hexCode
        } else {
            rawValue = .blob(raw)
        }
        try insertReject.perform([.text(file), .integer(Int64(line)), item.map { .integer(Int64($0)) } ?? .null, .text(reason),
                                  rawValue, .integer(loadId), .integer(code), .text(kind.rawValue)])
    }

    /// Values of one row kept out of their columns (`rowId`: the row's SQLite rowid; PostgreSQL's
    /// rows have none, so the table and message id name the row there).
    package func discards(_ discards: [PendingDiscard], table: String, rowId: Int64?, messageId: String, receivedAtMilliseconds: Int64) throws {
        let receivedAt = Timestamp.format(Instant(seconds: receivedAtMilliseconds / 1000, nanos: receivedAtMilliseconds % 1000 * 1_000_000))
        for discard in discards {
            try insertDiscard.perform([
                .text(table), .text(names.name(discard.column)), rowId.map { .integer($0) } ?? .null, .text(messageId), .text(discard.value),
                .text(discard.reason), .text(receivedAt), .integer(loadId),
            ])
            discardsInFile += 1
        }
    }

    /// The file's `_files` row, after its accounting is checked: nothing of a file whose counts
    /// do not add up is committed.
    package func record(_ file: FileRecord) throws {
        let counts = file.counts
        guard counts.balances else {
            throw WarehouseError(message: "internal accounting error in \(file.archive.path): \(counts.lines) messages read but \(counts.loaded) loaded + \(counts.duplicates) duplicates + \(counts.rejected) rejected + \(counts.filtered) filtered + \(counts.suppressed) suppressed; nothing of this file was committed")
        }
        let archive = file.archive
        try insertFile.perform([
            .text(archive.path), .integer(archive.size), .text(file.sha256), archive.sourceId.map { .text($0) } ?? .null,
            archive.day.map { .text($0) } ?? .null, .text(file.status.rawValue), .integer(counts.lines), .integer(counts.loaded),
            .integer(counts.duplicates), .integer(counts.rejected), .integer(counts.filtered), .integer(counts.discarded),
            .integer(Int64(file.physicalLines)), .integer(loadId), file.error.map { .text($0) } ?? .null, .text(uuidTs),
            archive.etag.map { .text($0) } ?? .null, .integer(counts.suppressed),
        ])
    }
}

extension Bookkeeping {
    /// A retried reject that still fails: its kind and reason as of today.
    package func keepReject(id: Int64, kind: RejectKind, reason: String) throws {
        try session.run("UPDATE _rejects SET kind = ?, reason = ? WHERE id = ?", [.text(kind.rawValue), .text(reason), .integer(id)])
    }

    /// A retried reject whose line now loaded: removed, and its `_files` row counted again.
    package func resolveReject(id: Int64, file: String, loadId: Int64, produced: Int64, loaded: Int64, duplicates: Int64, filtered: Int64,
                               suppressed: Int64) throws {
        try session.run("DELETE FROM _rejects WHERE id = ?", [.integer(id)])
        try session.run("""
            UPDATE _files SET lines = lines + ?, loaded = loaded + ?, duplicates = duplicates + ?, rejected = rejected - 1,
              filtered = filtered + ?, suppressed = suppressed + ?
            WHERE id = (SELECT max(id) FROM _files WHERE path = ? AND load_id = ?)
            """, [.integer(produced - 1), .integer(loaded), .integer(duplicates), .integer(filtered), .integer(suppressed),
                  .text(file), .integer(loadId)])
    }
}

/// What `_files` records of one archive.
package struct FileRecord {
    package var archive: Archive
    package var sha256: String
    package var physicalLines: Int
    package var status: FileResult.Status
    package var counts: Counts
    package var error: String?

    package init(archive: Archive, sha256: String, physicalLines: Int, status: FileResult.Status, counts: Counts, error: String?) {
        self.archive = archive
        self.sha256 = sha256
        self.physicalLines = physicalLines
        self.status = status
        self.counts = counts
        self.error = error
    }

    /// An archive that could not be read at all.
    package static func failed(_ archive: Archive, sha256: String, error: String) -> FileRecord {
        FileRecord(archive: archive, sha256: sha256, physicalLines: 0, status: .failed, counts: Counts(), error: error)
    }
}
