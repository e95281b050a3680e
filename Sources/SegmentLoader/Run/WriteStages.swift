/// The stages after the parse, run on the writer's thread one file at a time, each on the
/// packed records the one before hands it: Dedupe (`CrossRunDuplicates`: ids already in the
/// warehouse), Split (`Splitter`: rows per table; `ProfileDerivation`: users and accounts), Load
/// (`Writer`: rows, schema, bookkeeping, the file's transaction).
final class WriteStages {
    let writer: Writer
    private let crossRun: CrossRunDuplicates
    private let profiles = ProfileDerivation()
    private let touches: ModelTouches

    init(writer: Writer) throws {
        self.writer = writer
        crossRun = try CrossRunDuplicates(db: writer.db, names: writer.names, loadId: writer.loadId)
        touches = try ModelTouches(db: writer.db)
    }

    func beginFile() throws {
        profiles.reset()
        touches.reset()
        try writer.beginFile()
    }

    /// Loads a chunk's records (the copies that won within the run); returns, for each, whether
    /// it was loaded (false: an earlier run already loaded its id).
    func load(_ records: MessageRecords) throws -> [Bool] {
        try records.bytes.withUnsafeBytes { raw in
            let headers = RecordCursor.headers(of: records.count, in: raw)
            let admitted = try crossRun.admit(headers)
            try writer.write(Splitter.rows(of: headers, admitted: admitted), of: headers, in: raw)
            profiles.note(headers, admitted: admitted)
            touches.note(headers, admitted: admitted, in: raw)
            return admitted
        }
    }

    /// Derives the file's profiles, records the file and commits.
    func commitFile(_ archive: Archive, sha256: String, physicalLines: Int, status: FileResult.Status,
                    counts: Counts, error: String?) throws {
        try profiles.derive(into: writer)
        try touches.record()
        try writer.commitFile(archive, sha256: sha256, physicalLines: physicalLines, status: status, counts: counts, error: error)
    }

    /// Derives the profiles and commits, with no `_files` row (a retry of rejects).
    func commitWithoutFile() throws {
        try profiles.derive(into: writer)
        try touches.record()
        try writer.commitWithoutFile()
    }

    func rollbackFile() throws {
        profiles.reset()
        touches.reset()
        try writer.rollbackFile()
    }
}
