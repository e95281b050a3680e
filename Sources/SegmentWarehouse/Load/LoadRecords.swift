import SegmentCore
import SegmentStages

/// What `_files` says of a path already loaded.
package struct LoadedFile: Sendable, Equatable {
    package var size: Int64
    package var etag: String?

    /// Whether `archive`, an S3 object, is this one: the same size and ETag under the same
    /// key, which a run takes as loaded without reading it.
    package func isSameObject(as archive: Archive) -> Bool {
        etag != nil && etag == archive.etag && size == archive.size
    }
}

/// The rows of `_loads` and what `_files` says was loaded, read and written the same way in
/// either database (docs/warehouse.md, Bookkeeping).
package enum LoadRecords {
    /// Content hashes of files already loaded (or partially loaded: the same bytes cannot give
    /// more), each with the path it was loaded from.
    package static func loadedHashes(_ session: any SQLSession) throws -> [String: String] {
        var result: [String: String] = [:]
        for row in try session.rows("SELECT sha256, path FROM _files WHERE status IN ('loaded', 'partial') ORDER BY id") {
            if let sha = row[0].text, let path = row[1].text, result[sha] == nil { result[sha] = path }
        }
        return result
    }

    /// Size (and, for an S3 object, ETag) of each path already loaded or partially loaded: an
    /// archive under the same path with the same size is not counted in the run's temporary
    /// space, and an object with the same key, size and ETag is skipped unread.
    package static func loadedPathsAndSizes(_ session: any SQLSession) throws -> [String: LoadedFile] {
        var result: [String: LoadedFile] = [:]
        let etag = try hasETagColumn(session) ? "etag" : "NULL"
        for row in try session.rows("SELECT path, size, \(etag) FROM _files WHERE status IN ('loaded', 'partial') ORDER BY id") {
            if let path = row[0].text, let size = row[1].integer { result[path] = LoadedFile(size: size, etag: row[2].text) }
        }
        return result
    }

    /// `_files.etag` (the ETag of an archive read from S3) came with s3:// sources, in format
    /// 3: a warehouse that lacks it gets it, empty for the files it already has.
    package static func addETagColumn(_ session: any SQLSession) throws {
        guard try !hasETagColumn(session) else { return }
        try session.execute(session.dialect.addColumnIfMissing(table: "_files", column: "etag", .text))
    }

    /// `suppressed` in `_loads` and `_files` came with erasure (the messages of forgotten
    /// people a load left out): a warehouse that lacks it gets it, 0 for what it holds.
    package static func addSuppressedColumns(_ session: any SQLSession) throws {
        for table in ["_loads", "_files"] where try !session.columnExists(table, "suppressed") {
            try session.execute(session.dialect.addColumnIfMissing(table: table, column: "suppressed", .integer) + " NOT NULL DEFAULT 0")
        }
    }

    package static func hasETagColumn(_ session: any SQLSession) throws -> Bool {
        try session.columnExists("_files", "etag")
    }

    /// `finished_at` of the newest succeeded run of a pipeline.
    package static func lastSuccess(_ session: any SQLSession, pipeline: String) throws -> String? {
        try session.value("SELECT max(finished_at) FROM _loads WHERE pipeline = ? AND status = 'succeeded'", [.text(pipeline)])?.text
    }

    /// Records a running load; returns its id.
    package static func insertRunning(_ session: any SQLSession, pipeline: String, startedAt: String) throws -> Int64 {
        try addSuppressedColumns(session)
        guard let id = try session.value("INSERT INTO _loads (pipeline, started_at, status) VALUES (?, ?, 'running') RETURNING id",
                                         [.text(pipeline), .text(startedAt)])?.integer else {
            throw WarehouseError(message: "internal error: _loads gave no id for a new load")
        }
        return id
    }

    package static func finish(_ session: any SQLSession, id: Int64, summary: RunSummary, status: String, error: String?) throws {
        try session.run("""
            UPDATE _loads SET finished_at = ?, status = ?, files_loaded = ?, files_partial = ?, files_failed = ?,
              files_skipped = ?, files_not_archives = ?, lines = ?, loaded = ?, duplicates = ?, rejected = ?,
              filtered = ?, discarded = ?, tables_created = ?, columns_created = ?, error = ?, suppressed = ? WHERE id = ?
            """, [
                .text(summary.finishedAt), .text(status), .integer(Int64(summary.filesLoaded)),
                .integer(Int64(summary.filesPartial)), .integer(Int64(summary.filesFailed)),
                .integer(Int64(summary.skippedAlreadyLoaded.count)), .integer(Int64(summary.notArchives.count)),
                .integer(summary.totals.lines), .integer(summary.totals.loaded), .integer(summary.totals.duplicates),
                .integer(summary.totals.rejected), .integer(summary.totals.filtered), .integer(summary.totals.discarded),
                .integer(Int64(summary.newTables.count)), .integer(Int64(summary.newColumns)),
                error.map { .text($0) } ?? .null, .integer(summary.totals.suppressed), .integer(id),
            ])
    }

    /// Records only that the load failed, and why (when the full row could not be written).
    package static func markFailed(_ session: any SQLSession, id: Int64, finishedAt: String, message: String) throws {
        try session.run("UPDATE _loads SET finished_at = ?, status = 'failed', error = ? WHERE id = ?",
                        [.text(finishedAt), .text(message), .integer(id)])
    }
}
