import Foundation
import SegmentCore
import SegmentStages
import SegmentWarehouse

/// `segment-loader rejects retry`: runs every line in `_rejects` through today's reader and
/// normalizer again (after a fix to the code or to the data's producer), loads the messages
/// that now pass, and removes their rejects. Lines that still fail stay, with today's reason.
/// Everything happens in one transaction, under the warehouse's lock; the `_files` rows the
/// lines came from are updated so that each file's accounting still balances.
public enum RejectRetry {
    public struct Outcome: Sendable {
        public var loadId: Int64 = 0
        /// Rejects looked at.
        public var retried = 0
        /// Rejects resolved: their messages loaded, were duplicates of rows already loaded, or were filtered.
        public var resolved = 0
        public var stillRejected = 0
        public var messagesLoaded: Int64 = 0
        public var duplicates: Int64 = 0
        public var filtered: Int64 = 0
        /// Messages of people the warehouse forgot, left out (their rejects are removed).
        public var suppressed: Int64 = 0
        /// Track calls loaded past the event table limit (in tracks only, properties in `_extra`).
        public var pastLimitCalls: Int64 = 0
        /// Lines kept without their bytes under privacy rules that this retry could not read
        /// again: no rules given (`--pipeline`), or their archive is gone or changed.
        public var withheldNotRetried = 0
        /// The build of the models after the retry (nil: models off).
        public var models: ModelBuild?

        public func render(database: String) -> String {
            "retried \(retried) rejected line\(retried == 1 ? "" : "s") in \(database) (load \(loadId)): \(resolved) resolved "
                + "(\(messagesLoaded) messages loaded, \(duplicates) duplicates, \(filtered) filtered"
                + (suppressed > 0 ? ", \(suppressed) suppressed" : "") + "), \(stillRejected) still rejected"
                + (pastLimitCalls > 0 ? "\n\(pastLimitCalls) of the messages are track calls past the event table limit: in tracks only, "
                    + "properties in _extra (see _events_past_limit)" : "")
                + (withheldNotRetried > 0 ? "\n\(withheldNotRetried) of them were kept without their bytes under privacy rules and were not retried: "
                    + "retry with --pipeline naming the pipeline whose rules apply, with their archives still in place" : "")
                + (models.map { "\nmodels: " + $0.summaryLine } ?? "")
        }
    }

    struct Row {
        var id: Int64
        var file: String
        var line: Int
        var item: Int?
        var raw: RejectRaw
        var loadId: Int64
        var kind: RejectKind
        var reason: String
    }

    /// The lock a PostgreSQL retry holds for its life ("SEGR"): two retries at once would
    /// both retry the same rejects.
    static let postgresLockKey: Int64 = 0x5345_4752

    public static func run(options: LoadOptions) throws -> Outcome {
        let opened = try WarehouseLocation(options.database, schema: options.schema).openForRetry(options, postgresLockKey: postgresLockKey)
        defer { withExtendedLifetime(opened.lock) {} }
        return try run(opened.target, session: opened.session, options: options)
    }

    private static func run(_ warehouse: any LoadTarget, session db: any SQLSession, options: LoadOptions) throws -> Outcome {
        var rows: [Row] = []
        for r in try db.rows("SELECT id, file, line, item, raw, redacted, load_id, kind, reason FROM _rejects ORDER BY id") {
            let bytes: [UInt8]
            switch r[4] {
            case .text(let s): bytes = Array(s.utf8)
            case .blob(let b): bytes = b
            default: bytes = []
            }
            guard case .text(let file) = r[1] else { continue }
            rows.append(Row(id: r[0].integer ?? 0, file: file, line: Int(r[2].integer ?? 0), item: r[3].integer.map { Int($0) },
                            raw: RejectRaw(code: r[5].integer ?? 0, bytes: bytes), loadId: r[6].integer ?? 0,
                            // A kind this build does not know came from a newer one: not retried.
                            kind: r[7].text.flatMap(RejectKind.init(rawValue:)) ?? .bomb,
                            reason: r[8].text ?? ""))
        }
        var outcome = Outcome()
        outcome.retried = rows.count
        let now = options.now()
        let loadTime = Instant(date: now)
        let uuidTs = Timestamp.format(loadTime)
        let loadId = try warehouse.beginLoad(pipeline: "rejects retry", startedAt: uuidTs)
        outcome.loadId = loadId
        guard !rows.isEmpty else {
            var summary = RunSummary()
            summary.finishedAt = uuidTs
            summary.outcome = .loaded
            if let problem = warehouse.recordEnd(id: loadId, summary: summary) { throw WarehouseError(message: problem) }
            return outcome
        }

        // Each reject again: the messages it yields now, or why it still fails.
        let names = NameTable()
        var processor = LineProcessor(loadTime: loadTime, names: names, privacy: options.privacy)
        var filter = options.filter
        filter.suppression = try Suppressions.list(db)
        let splitter = LineSplitter(maxLineBytes: options.maxLineBytes)
        struct Retried {
            var row: Row
            var messages: [Message] = []
            var filtered = 0
            var suppressed = 0
            var kind: RejectKind = .spec
            var reason: String?
        }
        var retried: [Retried] = []
        var scan = FileScan()
        // Lines withheld under privacy rules come from their archives, read once each, and
        // only when the rules are given: read again, they get the rules exactly once.
        let fromArchives = options.privacy.isEmpty ? [:]
            : try withheldLines(rows.filter { $0.raw == .withheld && $0.kind.isRetryable }, db: db, maxLineBytes: options.maxLineBytes)
        for row in rows {
            var entry = Retried(row: row)
            var line = row.raw.bytes
            var hashing = row.raw.redactedCode == 0
            if row.raw == .withheld && row.kind.isRetryable {
                guard let original = fromArchives[row.id] else {
                    outcome.withheldNotRetried += 1
                    entry.kind = row.kind
                    entry.reason = row.reason
                    retried.append(entry)
                    continue
                }
                line = original
                hashing = true
            }
            // A line cut at the length limit, torn by a damaged archive or made by zlib from
            // corrupt data is not all there or not to be trusted, even when it parses: only
            // the archive itself can give it again.
            guard row.kind.isRetryable else {
                entry.kind = row.kind
                entry.reason = row.reason
                retried.append(entry)
                continue
            }
            let problem: LineProblem? = line.count > splitter.maxLineBytes ? LineProblem(kind: .tooLong, reason: "line longer than the limit of \(splitter.maxLineBytes) bytes") : nil
            let results = line.withUnsafeBufferPointer { processor.process($0, problem: problem, hashing: hashing) }
            for result in results {
                switch result {
                case .reject(let kind, let reason, let item):
                    if (row.item == nil || item == row.item) && entry.reason == nil {
                        entry.kind = kind
                        entry.reason = reason
                    }
                case .message(let message, let item):
                    guard row.item == nil || item == row.item else { continue }
                    switch filter.verdict(message) {
                    case .keep: entry.messages.append(message)
                    case .filtered: entry.filtered += 1
                    case .suppressed: entry.suppressed += 1
                    }
                }
            }
            if entry.reason == nil && entry.messages.isEmpty && entry.filtered == 0 && entry.suppressed == 0 {
                entry.reason = "batch item \(row.item ?? 0) is no longer in the line"
            }
            if entry.reason == nil {
                for message in entry.messages { scan.observe(message) }
            }
            retried.append(entry)
        }

        let destination = try warehouse.destination(names: names, loadId: loadId, uuidTs: uuidTs,
                                                        columnLimit: options.columnLimit, eventTableLimit: options.eventTableLimit)
        scan.endMember()
        destination.catalog.plannedTypes = scan.types
        let pastLimit = destination.catalog.eventTablesPastLimit(counts: scan.eventCounts)
        let stages = WriteStages(destination: destination)
        var summary = RunSummary()
        summary.pipeline = "rejects retry"
        summary.loadId = loadId
        do {
            try stages.file {
                for entry in retried {
                    if let reason = entry.reason {
                        outcome.stillRejected += 1
                        try destination.bookkeeping.keepReject(id: entry.row.id, kind: entry.kind, reason: reason)
                        continue
                    }
                    var records = MessageRecords()
                    for message in entry.messages { records.append(message) }
                    records.markPastLimit(pastLimit)
                    var loaded: Int64 = 0, duplicates: Int64 = 0
                    for written in try stages.load(records) {
                        if written { loaded += 1 } else { duplicates += 1 }
                    }
                    outcome.resolved += 1
                    outcome.messagesLoaded += loaded
                    outcome.duplicates += duplicates
                    outcome.filtered += Int64(entry.filtered)
                    outcome.suppressed += Int64(entry.suppressed)
                    try destination.bookkeeping.resolveReject(id: entry.row.id, file: entry.row.file, loadId: entry.row.loadId,
                                                  produced: Int64(entry.messages.count + entry.filtered + entry.suppressed),
                                                  loaded: loaded, duplicates: duplicates, filtered: Int64(entry.filtered),
                                                  suppressed: Int64(entry.suppressed))
                }
            }
            summary.totals.lines = Int64(outcome.retried)
            summary.totals.loaded = outcome.messagesLoaded
            summary.totals.duplicates = outcome.duplicates
            summary.totals.rejected = Int64(outcome.stillRejected)
            summary.totals.filtered = outcome.filtered
            summary.totals.suppressed = outcome.suppressed
            let statistics = destination.statistics
            summary.newTables = statistics.newTables
            summary.newColumns = statistics.newColumns
            outcome.pastLimitCalls = statistics.pastLimitCalls
            // The retried messages touch the models like a load's.
            if options.models.enabled {
                outcome.models = try destination.buildModels(options.models, loadId: loadId, now: options.now())
            }
        } catch {
            summary.finishedAt = Timestamp.format(Instant(date: options.now()))
            summary.outcome = LoadRun.failure(of: error, in: warehouse, options: options)
            _ = warehouse.recordEnd(id: loadId, summary: summary)
            throw error
        }
        summary.finishedAt = Timestamp.format(Instant(date: options.now()))
        summary.outcome = .loaded
        if let problem = warehouse.recordEnd(id: loadId, summary: summary) {
            throw WarehouseError(message: "the retry was committed, but \(problem)")
        }
        return outcome
    }

    /// The lines of withheld rejects, read from their archives, keyed by reject id: only from an
    /// archive still at its path with the SHA-256 its `_files` row recorded.
    static func withheldLines(_ rows: [Row], db: any SQLSession, maxLineBytes: Int) throws -> [Int64: [UInt8]] {
        var found: [Int64: [UInt8]] = [:]
        let byFile = Dictionary(grouping: rows) { "\($0.file)\u{0}\($0.loadId)" }
        for group in byFile.values {
            let file = group[0].file
            guard let sha = try db.value("SELECT sha256 FROM _files WHERE path = ? AND load_id = ? ORDER BY id DESC LIMIT 1",
                                          [.text(file), .integer(group[0].loadId)])?.text,
                  case .archive(let format, _) = Discovery.sniff(file) else { continue }
            let wanted = Dictionary(grouping: group, by: \.line)
            var lines: [Int64: [UInt8]] = [:]
            let reader = ArchiveReader(maxLineBytes: maxLineBytes)
            guard let outcome = try? reader.read(path: file, format: format, body: { number, bytes, _ in
                for row in wanted[number] ?? [] { lines[row.id] = Array(bytes) }
            }), outcome.sha256 == sha else { continue }
            found.merge(lines) { a, _ in a }
        }
        return found
    }
}
