import Foundation
import SegmentCore
import SegmentStages

/// The message accounting of one file or a whole run:
/// `lines = loaded + duplicates + rejected + filtered + suppressed`.
public struct Counts: Sendable, Equatable {
    /// Messages read: one per non-blank line, or one per item of a batch envelope.
    public var lines: Int64 = 0
    public var loaded: Int64 = 0
    public var duplicates: Int64 = 0
    public var rejected: Int64 = 0
    public var filtered: Int64 = 0
    /// Messages of people the warehouse forgot (its suppression list), left out.
    public var suppressed: Int64 = 0
    /// Values kept out of their column (in `_discards`); not part of the equation.
    public var discarded: Int64 = 0

    public init() {}

    public var balances: Bool { lines == loaded + duplicates + rejected + filtered + suppressed }

    public static func += (a: inout Counts, b: Counts) {
        a.lines += b.lines
        a.loaded += b.loaded
        a.duplicates += b.duplicates
        a.rejected += b.rejected
        a.filtered += b.filtered
        a.suppressed += b.suppressed
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

    package init(path: String, status: Status, counts: Counts, error: String?) {
        self.path = path
        self.status = status
        self.counts = counts
        self.error = error
    }
}

/// A line that could not be loaded, as reported at the end of a run.
public struct Problem: Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var reason: String

    package init(file: String, line: Int, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }
    public var description: String { "\(file):\(line): \(reason)" }
}

/// Everything a run did, for the summary it prints and the `_loads` row.
public struct RunSummary: Sendable {
    public var loadId: Int64 = 0
    /// The pipeline's name (`load` for the load command).
    public var pipeline: String = "load"
    /// `finished_at` of the newest succeeded run of this pipeline on this warehouse (this one if it succeeded).
    public var lastSuccessAt: String?
    public var database: String = ""
    /// How the warehouse's tables lie over machines, after the run (nil: one machine).
    public var distribution: WarehouseDistribution?
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
    /// Event tables in the warehouse after the run, and the event table limit.
    public var eventTables = 0
    public var eventTableLimit = EventTableLimit.defaultLimit
    /// Track calls the run loaded past the event table limit (their row in `tracks` only, with
    /// the properties in `_extra`), and their distinct event names.
    public var pastLimitCalls: Int64 = 0
    public var pastLimitNames = 0
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
    /// How the run ended.
    public var outcome = RunOutcome.running
    /// What stopped the run early, if anything.
    public var fatalError: String? { outcome.error }
    /// The run stopped because the warehouse could not be written (disk full, read-only).
    public var storageFailure: Bool { if case .storageFailure = outcome { return true } else { return false } }
    /// The run stopped because another program held the warehouse's write lock past the busy timeout.
    public var lockedOut: Bool { if case .lockedOut = outcome { return true } else { return false } }
    /// Stopped by a signal (SIGINT/SIGTERM) after the last committed file.
    public var interrupted: Bool { outcome == .interrupted }
    /// Archives an interrupted run did not start (the next run loads them).
    public var notStarted: [String] = []
    /// Query indexes created at the end of the run.
    public var indexesCreated: [String] = []
    /// Bytes the run kept on disk beside the warehouse while it ran (its parsed archives),
    /// removed at its end.
    public var temporaryBytes: Int64 = 0
    /// Requests to S3 (listing pages, GETs of objects) and the bytes read, when the run had
    /// s3:// sources.
    public var s3: (listRequests: Int, getRequests: Int, bytes: Int64)?
    /// The warehouse format this run upgraded the warehouse from, if it did.
    public var upgradedFrom: Int32?
    /// What the build of the models after the load did (nil: not built).
    public var models: ModelBuild?
    /// `succeeded`, `partial` (a file partial or failed), `interrupted` (stopped by a signal
    /// between files) or `failed` (the run stopped on an error).
    public var status: String { outcome.status }

    public init() {}

    /// The run as a JSON document (`--report`): every count of the summary, per file and per table.
    public func report() -> String {
        func counts(_ c: Counts) -> [(key: String, value: JSONValue)] {
            [("lines", .int(c.lines)), ("loaded", .int(c.loaded)), ("duplicates", .int(c.duplicates)),
             ("rejected", .int(c.rejected)), ("filtered", .int(c.filtered)), ("suppressed", .int(c.suppressed)),
             ("discarded", .int(c.discarded))]
        }
        let document: JSONValue = .object([
            ("load_id", .int(loadId)), ("pipeline", .string(pipeline)), ("database", .string(database)), ("status", .string(status)),
            ("distribution", distribution?.json ?? .null),
            ("last_success_at", lastSuccessAt.map { .string($0) } ?? .null),
            ("started_at", .string(startedAt)), ("finished_at", .string(finishedAt)),
            ("elapsed_seconds", .double(elapsedSeconds)), ("messages_per_second", .double(eventsPerSecond.rounded())),
            ("inflated_bytes", .int(inflatedBytes)),
            ("temporary_bytes", .int(temporaryBytes)),
            ("s3", s3.map { s3 in .object([
                ("list_requests", .int(Int64(s3.listRequests))), ("get_requests", .int(Int64(s3.getRequests))), ("bytes_read", .int(s3.bytes)),
            ]) } ?? .null),
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
            ("event_tables", .object([
                ("count", .int(Int64(eventTables))), ("limit", .int(Int64(eventTableLimit))),
                ("event_names_past_limit", .int(Int64(pastLimitNames))), ("events_past_limit", .int(pastLimitCalls)),
            ])),
            ("stages_seconds", .object([
                ("inflate_cpu", .double(stages.inflate)), ("parse_and_normalize_cpu", .double(stages.parseAndNormalize)),
                ("write", .double(stages.write)), ("scan_pass_wall", .double(stages.scanWall)),
                ("load_pass_wall", .double(stages.loadWall)),
            ])),
            ("interrupted", .bool(interrupted)),
            ("not_started", .array(notStarted.map { .string($0) })),
            ("indexes_created", .array(indexesCreated.map { .string($0) })),
            ("upgraded_from_format", upgradedFrom.map { .int(Int64($0)) } ?? .null),
            ("models", models.map { m in .object([
                ("mode", .string(m.mode)), ("people", .int(Int64(m.people))), ("identities", .int(m.identities)),
                ("page_views", .int(m.pageViews)), ("sessions", .int(m.sessions)), ("seconds", .double(m.seconds)),
                ("session_timeout_minutes", .int(Int64(m.sessionTimeoutMinutes))),
            ]) } ?? .null),
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
        let verb = outcome.verb
        let shown = PathDisplay()
        out.append("segment-loader: \(verb) \(files.count) file\(files.count == 1 ? "" : "s") into \(shown(database)) in \(format(elapsedSeconds)) s (load \(loadId))")
        var fileLine = "  files:      \(filesLoaded) loaded, \(filesPartial) partial, \(filesFailed) failed, \(skippedAlreadyLoaded.count) skipped (already loaded)"
        if !notArchives.isEmpty { fileLine += ", \(notArchives.count) not archives" }
        out.append(fileLine)
        if let distribution { out.append("  warehouse:  \(distribution.sentence)") }
        out.append("  messages:   \(totals.lines) read = \(totals.loaded) loaded + \(totals.duplicates) duplicates + \(totals.rejected) rejected + \(totals.filtered) filtered"
                   + (totals.suppressed > 0 ? " + \(totals.suppressed) suppressed (forgotten people)" : ""))
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
        if totals.discarded > 0 {
            out.append("  discarded:  " + (totals.discarded == 1 ? "1 value kept out of its column" : "\(totals.discarded) values kept out of their columns") + " (see _discards)")
        }
        out.append("  schema:     \(newTables.count) new table\(newTables.count == 1 ? "" : "s"), \(newColumns) new column\(newColumns == 1 ? "" : "s")")
        if overflowValues > 0 {
            out.append("  overflow:   \(overflowValues) value\(overflowValues == 1 ? "" : "s") went to _extra: their table is at the column limit")
        }
        if pastLimitCalls > 0 {
            out.append("  events:     \(pastLimitCalls) track call\(pastLimitCalls == 1 ? "" : "s") of \(pastLimitNames) event name\(pastLimitNames == 1 ? "" : "s") past the event table limit"
                       + " (\(eventTables) of \(eventTableLimit) tables) are in tracks only, properties in _extra (see _events_past_limit)")
        }
        if let models {
            out.append("  models:     " + models.summaryLine)
        }
        out.append("  speed:      \(Int(eventsPerSecond.rounded())) messages/s")
        if let s3 {
            out.append("  s3:         \(s3.listRequests) listing request\(s3.listRequests == 1 ? "" : "s"), \(s3.getRequests) GET\(s3.getRequests == 1 ? "" : "s") of objects, "
                       + String(format: "%.1f MB read", Double(s3.bytes) / 1e6))
        }
        if let upgradedFrom {
            out.append("  upgraded:   the warehouse from format \(upgradedFrom) to \(WarehouseFormat.version)"
                       + (upgradedFrom < 3 ? " (timestamps are now YYYY-MM-DD HH:MM:SS.sss)" : ""))
        }
        for skip in notArchives {
            out.append("  skipped \(shown(skip.path)): not an archive (\(skip.reason))")
        }
        for file in files where file.status != .loaded {
            out.append("  \(file.status.rawValue) \(shown(file.path)): \(file.error ?? "")")
        }
        if problemCount > 0 {
            out.append("rejected lines (\(problemCount); all are in _rejects):")
            for problem in problems { out.append("  \(shown(problem.file)):\(problem.line): \(problem.reason)") }
            if problemCount > Int64(problems.count) { out.append("  ... and \(problemCount - Int64(problems.count)) more") }
        }
        if interrupted {
            out.append(notStarted.isEmpty && files.isEmpty
                ? "interrupted while scanning: nothing was loaded; run again to load everything"
                : "interrupted: \(files.count) file\(files.count == 1 ? "" : "s") committed, \(notStarted.count) left; run again to load the rest")
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

/// Paths as the person at the terminal would write them: relative to the working directory
/// when they lie below it, else as they are. (The warehouse and reports keep full paths.)
public struct PathDisplay: Sendable {
    package let base: String

    public init(directory: String = FileManager.default.currentDirectoryPath) {
        base = directory.hasSuffix("/") ? directory : directory + "/"
    }

    public func callAsFunction(_ path: String) -> String {
        path.hasPrefix(base) && path.count > base.count ? String(path.dropFirst(base.count)) : path
    }
}

extension RunSummary {
    /// The run in Prometheus' text format, for node_exporter's textfile collector: status,
    /// last success time, duration, and the message and row counts (per table).
    public func prometheus() -> String {
        let p = "pipeline=\"\(Self.escape(pipeline))\""
        var lines: [String] = []
        func metric(_ name: String, _ help: String, _ type: String = "gauge", _ samples: [(labels: String, value: String)]) {
            lines.append("# HELP segment_loader_\(name) \(help)")
            lines.append("# TYPE segment_loader_\(name) \(type)")
            for sample in samples { lines.append("segment_loader_\(name){\(sample.labels)} \(sample.value)") }
        }
        func seconds(_ timestamp: String?) -> String {
            guard let timestamp, let instant = Timestamp.parse(timestamp) else { return "0" }
            return String(format: "%.3f", Double(instant.milliseconds) / 1000)
        }
        let statuses = ["succeeded", "partial", "interrupted", "failed"]
        metric("last_run_status", "1 for the outcome of the last run (succeeded, partial, interrupted, failed), 0 for the others.",
               "gauge", statuses.map { ("\(p),status=\"\($0)\"", $0 == status ? "1" : "0") })
        metric("last_run_timestamp_seconds", "When the last run finished (Unix time).", "gauge", [(p, seconds(finishedAt))])
        metric("last_success_timestamp_seconds", "When the last succeeded run finished (Unix time; 0 if none).", "gauge", [(p, seconds(lastSuccessAt))])
        metric("last_run_duration_seconds", "Wall time of the last run.", "gauge", [(p, String(format: "%.3f", elapsedSeconds))])
        metric("last_run_files", "Archives of the last run by outcome.", "gauge", [
            ("\(p),status=\"loaded\"", "\(filesLoaded)"), ("\(p),status=\"partial\"", "\(filesPartial)"),
            ("\(p),status=\"failed\"", "\(filesFailed)"), ("\(p),status=\"skipped\"", "\(skippedAlreadyLoaded.count)"),
            ("\(p),status=\"not_archive\"", "\(notArchives.count)"),
        ])
        metric("last_run_messages", "Messages of the last run: read = loaded + duplicates + rejected + filtered + suppressed.", "gauge", [
            ("\(p),outcome=\"read\"", "\(totals.lines)"), ("\(p),outcome=\"loaded\"", "\(totals.loaded)"),
            ("\(p),outcome=\"duplicates\"", "\(totals.duplicates)"), ("\(p),outcome=\"rejected\"", "\(totals.rejected)"),
            ("\(p),outcome=\"filtered\"", "\(totals.filtered)"), ("\(p),outcome=\"suppressed\"", "\(totals.suppressed)"),
        ])
        metric("last_run_discarded_values", "Values the last run kept out of their column (in _discards).", "gauge", [(p, "\(totals.discarded)")])
        metric("last_run_rows", "Rows the last run wrote, per table.", "gauge",
               rowsPerTable.sorted { $0.key < $1.key }.map { ("\(p),table=\"\(Self.escape($0.key))\"", "\($0.value)") })
        metric("last_run_new_columns", "Columns the last run added to the schema.", "gauge", [(p, "\(newColumns)")])
        metric("last_run_events_past_limit", "Track calls of the last run past the event table limit (in tracks only, properties in _extra).",
               "gauge", [(p, "\(pastLimitCalls)")])
        metric("event_tables", "Event tables in the warehouse after the last run.", "gauge", [(p, "\(eventTables)")])
        return lines.joined(separator: "\n") + "\n"
    }

    package static func escape(_ label: String) -> String {
        label.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}

/// How a warehouse's tables lie over machines (Citus), for the summary, the report and `status`.
public struct WarehouseDistribution: Sendable, Equatable {
    /// The engine that spreads them, with its version ("Citus 13.2-1").
    public var engine: String
    /// The nodes that hold shards.
    public var nodes: Int
    /// The warehouse's tables distributed by a column, copied to every node, and neither.
    public var distributedTables: Int
    public var referenceTables: Int
    public var localTables: Int

    /// The warehouse's distribution, when its database spreads it (nil: one machine).
    package static func read(_ session: any SQLSession) throws -> WarehouseDistribution? {
        guard let query = session.dialect.distributionQuery, let row = try session.rows(query, []).first, let version = row[0].text else { return nil }
        return WarehouseDistribution(engine: version, nodes: Int(row[1].integer ?? 0), distributedTables: Int(row[2].integer ?? 0),
                                     referenceTables: Int(row[3].integer ?? 0), localTables: Int(row[4].integer ?? 0))
    }

    /// "distributed over 2 nodes (Citus 13.2-1): 21 distributed tables, 8 reference tables".
    public var sentence: String {
        var text = "distributed over \(nodes) node\(nodes == 1 ? "" : "s") (\(engine)): \(distributedTables) distributed table\(distributedTables == 1 ? "" : "s"), \(referenceTables) reference table\(referenceTables == 1 ? "" : "s")"
        if localTables > 0 { text += ", \(localTables) not distributed yet (the next run through the coordinator distributes them)" }
        return text
    }

    var json: JSONValue {
        .object([("engine", .string(engine)), ("nodes", .int(Int64(nodes))), ("distributed_tables", .int(Int64(distributedTables))),
                 ("reference_tables", .int(Int64(referenceTables))), ("local_tables", .int(Int64(localTables)))])
    }
}
