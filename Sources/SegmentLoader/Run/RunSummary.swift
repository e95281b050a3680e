/// The message accounting of one file or a whole run:
/// `lines = loaded + duplicates + rejected + filtered`.
public struct Counts: Sendable, Equatable {
    /// Messages read: one per non-blank line, or one per item of a batch envelope.
    public var lines: Int64 = 0
    public var loaded: Int64 = 0
    public var duplicates: Int64 = 0
    public var rejected: Int64 = 0
    public var filtered: Int64 = 0
    /// Values kept out of their column (in `_discards`); not part of the equation.
    public var discarded: Int64 = 0

    public init() {}

    public var balances: Bool { lines == loaded + duplicates + rejected + filtered }

    public static func += (a: inout Counts, b: Counts) {
        a.lines += b.lines
        a.loaded += b.loaded
        a.duplicates += b.duplicates
        a.rejected += b.rejected
        a.filtered += b.filtered
        a.discarded += b.discarded
    }
}

/// The outcome of one archive in a run.
public struct FileResult: Sendable {
    public enum Status: String, Sendable {
        case loaded, partial, failed
    }

    public var path: String
    public var status: Status
    public var counts: Counts
    public var error: String?
}

/// A line that could not be loaded, as reported at the end of a run.
public struct Problem: Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var reason: String
    public var description: String { "\(file):\(line): \(reason)" }
}

/// Everything a run did, for the summary it prints and the `_loads` row.
public struct RunSummary: Sendable {
    public var loadId: Int64 = 0
    public var database: String = ""
    public var startedAt: String = ""
    public var finishedAt: String = ""
    public var elapsedSeconds: Double = 0
    public var files: [FileResult] = []
    /// Archives skipped because a file with the same SHA-256 was already loaded: (path, earlier path).
    public var skippedAlreadyLoaded: [(path: String, loadedAs: String)] = []
    public var notArchives: [SkippedFile] = []
    public var totals = Counts()
    /// Rows written per table in this run (for `users` and `accounts`: distinct rows inserted or updated).
    public var rowsPerTable: [String: Int64] = [:]
    public var newTables: [String] = []
    public var newColumns: Int = 0
    /// Values that went to a row's `_extra` because their table was at its column limit.
    public var overflowValues: Int64 = 0
    /// The first rejected lines, with file and line (all of them are in `_rejects`).
    public var problems: [Problem] = []
    public var problemCount: Int64 = 0
    /// Where the time went (seconds). CPU time summed over threads for inflate, parse and
    /// normalize (both passes) and write; wall time for the two passes.
    public struct Stages: Sendable, Codable {
        public var inflate: Double = 0
        public var parseAndNormalize: Double = 0
        public var write: Double = 0
        public var scanWall: Double = 0
        public var loadWall: Double = 0
    }

    public var stages = Stages()
    /// Bytes of inflated input read by the load pass.
    public var inflatedBytes: Int64 = 0
    /// Set when the run stopped early.
    public var fatalError: String?
    /// `succeeded`, `partial` (a file partial or failed) or `failed` (the run stopped).
    public var status: String = "running"

    public init() {}

    /// The run as a JSON document (`--report`): every count of the summary, per file and per table.
    public func report() -> String {
        func counts(_ c: Counts) -> [(key: String, value: JSONValue)] {
            [("lines", .int(c.lines)), ("loaded", .int(c.loaded)), ("duplicates", .int(c.duplicates)),
             ("rejected", .int(c.rejected)), ("filtered", .int(c.filtered)), ("discarded", .int(c.discarded))]
        }
        let document: JSONValue = .object([
            ("load_id", .int(loadId)), ("database", .string(database)), ("status", .string(status)),
            ("started_at", .string(startedAt)), ("finished_at", .string(finishedAt)),
            ("elapsed_seconds", .double(elapsedSeconds)), ("messages_per_second", .double(eventsPerSecond.rounded())),
            ("inflated_bytes", .int(inflatedBytes)),
            ("totals", .object(counts(totals))),
            ("files", .array(files.map { file in
                .object([("path", .string(file.path)), ("status", .string(file.status.rawValue))] + counts(file.counts)
                        + [("error", file.error.map { .string($0) } ?? .null)])
            })),
            ("skipped_already_loaded", .array(skippedAlreadyLoaded.map { .object([("path", .string($0.path)), ("same_as", .string($0.loadedAs))]) })),
            ("not_archives", .array(notArchives.map { .object([("path", .string($0.path)), ("reason", .string($0.reason))]) })),
            ("rows_per_table", .object(rowsPerTable.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("new_tables", .array(newTables.map { .string($0) })),
            ("new_columns", .int(Int64(newColumns))),
            ("overflow_values", .int(overflowValues)),
            ("stages_seconds", .object([
                ("inflate_cpu", .double(stages.inflate)), ("parse_and_normalize_cpu", .double(stages.parseAndNormalize)),
                ("write", .double(stages.write)), ("scan_pass_wall", .double(stages.scanWall)),
                ("load_pass_wall", .double(stages.loadWall)),
            ])),
            ("error", fatalError.map { .string($0) } ?? .null),
        ])
        return JSONWriter.string(document)
    }

    public var filesLoaded: Int { files.filter { $0.status == .loaded }.count }
    public var filesPartial: Int { files.filter { $0.status == .partial }.count }
    public var filesFailed: Int { files.filter { $0.status == .failed }.count }

    public var eventsPerSecond: Double {
        elapsedSeconds > 0 ? Double(totals.lines) / elapsedSeconds : 0
    }

    /// The summary as a person reads it at the end of a run.
    public func render() -> String {
        var out: [String] = []
        let verb = fatalError == nil ? "loaded" : "stopped while loading"
        out.append("segment-loader: \(verb) \(files.count) file\(files.count == 1 ? "" : "s") into \(database) in \(format(elapsedSeconds)) s (load \(loadId))")
        var fileLine = "  files:      \(filesLoaded) loaded, \(filesPartial) partial, \(filesFailed) failed, \(skippedAlreadyLoaded.count) skipped (already loaded)"
        if !notArchives.isEmpty { fileLine += ", \(notArchives.count) not archives" }
        out.append(fileLine)
        out.append("  messages:   \(totals.lines) read = \(totals.loaded) loaded + \(totals.duplicates) duplicates + \(totals.rejected) rejected + \(totals.filtered) filtered")
        if !rowsPerTable.isEmpty {
            let callTables = ["tracks", "identifies", "users", "pages", "screens", "groups", "accounts", "aliases"]
            var parts = callTables.compactMap { t in
                rowsPerTable[t].map { t == "users" || t == "accounts" ? "\(t) \($0) updated" : "\(t) \($0)" }
            }
            let eventTables = rowsPerTable.keys.filter { !callTables.contains($0) }.sorted()
            if !eventTables.isEmpty {
                let eventRows = eventTables.reduce(Int64(0)) { $0 + rowsPerTable[$1]! }
                parts.append("\(eventRows) in \(eventTables.count) event table\(eventTables.count == 1 ? "" : "s")")
            }
            out.append("  rows:       " + parts.joined(separator: ", "))
        }
        out.append("  discarded:  \(totals.discarded) value\(totals.discarded == 1 ? "" : "s") kept out of their column (see _discards)")
        out.append("  schema:     \(newTables.count) new table\(newTables.count == 1 ? "" : "s"), \(newColumns) new column\(newColumns == 1 ? "" : "s")")
        if overflowValues > 0 {
            out.append("  overflow:   \(overflowValues) value\(overflowValues == 1 ? "" : "s") went to _extra: their table is at the column limit")
        }
        out.append("  speed:      \(Int(eventsPerSecond.rounded())) messages/s")
        for skip in notArchives {
            out.append("  skipped \(skip.path): not an archive (\(skip.reason))")
        }
        for file in files where file.status != .loaded {
            out.append("  \(file.status.rawValue) \(file.path): \(file.error ?? "")")
        }
        if problemCount > 0 {
            out.append("rejected lines (\(problemCount); all are in _rejects):")
            for problem in problems { out.append("  \(problem)") }
            if problemCount > Int64(problems.count) { out.append("  ... and \(problemCount - Int64(problems.count)) more") }
        }
        if let fatalError { out.append("error: \(fatalError)") }
        return out.joined(separator: "\n")
    }

    private func format(_ seconds: Double) -> String {
        let hundredths = Int((seconds * 100).rounded())
        let frac = hundredths % 100
        return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)"
    }
}
