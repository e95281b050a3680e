import Foundation
import SegmentCore
import SegmentS3
import SegmentStages
import SegmentWarehouse

/// A whole load: discover → pass 1 (`ScanPass`, in parallel: hash, read → normalize each
/// archive once, plan column types, collect every id's copies, spill the packed records beside
/// the warehouse) → rank duplicate copies → pass 2 (`WritePass`: the spills, minus the copies
/// that lost, written by one writer through the `Destination`, file by file in path order) →
/// query indexes and models. Pass 2 writes what pass 1 parsed, so what pass 1 planned is
/// exactly what is written, and the result does not depend on file order or thread timing.
public enum LoadRun {
    public static func run(paths: [String], options: LoadOptions, faults: TestFaults = .none,
                           log: (String) -> Void = { _ in }) throws -> RunSummary {
        try run(found: try Discovery.find(paths), options: options, faults: faults, log: log)
    }

    /// Loads archives already found (a pipeline's selection). The caller holds the warehouse's
    /// `WarehouseLock` (SQLite).
    public static func run(found: Discovery.Result, options: LoadOptions, faults: TestFaults = .none,
                           log: (String) -> Void = { _ in }) throws -> RunSummary {
        let opened = try WarehouseLocation(options.database, schema: options.schema).openForLoad(options, faults: faults)
        defer { withExtendedLifetime(opened.lock) {} }
        if let said = Forget.resumeBeforeLoad(opened.target, options: options) { log(said) }
        return try run(found: found, into: opened.target, options: options, faults: faults, log: log)
    }

    private static func run(found: Discovery.Result, into warehouse: any LoadTarget, options: LoadOptions, faults: TestFaults,
                            log: (String) -> Void) throws -> RunSummary {
        let clock = ContinuousClock()
        let started = clock.now
        let loadTime = Instant(date: options.now())
        let uuidTs = Timestamp.format(loadTime)

        var summary = RunSummary()
        summary.pipeline = options.pipeline
        summary.database = warehouse.displayName
        summary.upgradedFrom = warehouse.upgradedFrom
        summary.startedAt = uuidTs
        summary.notArchives = found.skipped
        let loadId = try warehouse.beginLoad(pipeline: options.pipeline, startedAt: uuidTs)
        summary.loadId = loadId

        var stopped: RunOutcome?
        var complete = false
        do {
            let names = NameTable()
            let target = try warehouse.destination(names: names, loadId: loadId, uuidTs: uuidTs,
                                                   columnLimit: options.columnLimit, eventTableLimit: options.eventTableLimit)
            // The people the warehouse forgot, read once the run holds the warehouse (on
            // PostgreSQL a forget waits for running loads, and new loads for it).
            var options = options
            options.filter.suppression = try Suppressions.list(target.bookkeeping.session)
            let context = RunContext(options: options, faults: faults, loadTime: loadTime, names: names, times: StageTimes(),
                                     reader: ArchiveReader(options))
            complete = try load(found.archives, into: target, existing: warehouse.storedBytes, workFolder: warehouse.runFolder(),
                                context: context, summary: &summary, log: log)
            // The models follow what the committed files touched; an interrupted run leaves
            // them to the next one (what the files touched stays recorded until then).
            if options.models.enabled && complete && options.stop?.isSet != true {
                summary.models = try target.buildModels(options.models, loadId: loadId, now: options.now())
            }
        } catch {
            stopped = failure(of: error, in: warehouse, options: options)
        }
        if let objects = options.objects {
            let counts = objects.requestCounts
            summary.s3 = (counts["list"] ?? 0, counts["get"] ?? 0, Int64(counts["bytes"] ?? 0))
        }
        summary.elapsedSeconds = durationSeconds(clock.now - started)
        summary.finishedAt = Timestamp.format(Instant(date: options.now()))
        summary.outcome = RunOutcome.of(error: stopped, interrupted: !complete && stopped == nil,
                                        filesNotLoaded: summary.filesPartial + summary.filesFailed)
        if let problem = warehouse.recordEnd(id: loadId, summary: summary) {
            if case .unavailable = summary.outcome {
                // The server went away: that is what the run says, with the record's fate.
                summary.outcome = .unavailable([summary.fatalError, problem].compactMap { $0 }.joined(separator: "; "),
                                               status: summary.outcome.exitStatus(signal: 0))
            } else {
                summary.outcome = .failed([summary.fatalError, problem].compactMap { $0 }.joined(separator: "; "))
            }
        }
        summary.lastSuccessAt = try? warehouse.lastSuccess(pipeline: options.pipeline)
        summary.distribution = warehouse.distribution()
        warehouse.finish()
        return summary
    }

    /// The two passes, then the query indexes. Returns false when a signal stopped the run
    /// before every file was written.
    /// `existing`: about how many bytes the warehouse holds before the run.
    private static func load(_ archives: [Archive], into destination: any Destination, existing: Int64, workFolder: String, context: RunContext,
                             summary: inout RunSummary, log: (String) -> Void) throws -> Bool {
        let times = context.times
        defer {
            let (inflate, parse, write) = times.seconds
            summary.stages.inflate = inflate
            summary.stages.parseAndNormalize = parse
            summary.stages.write = write
        }
        // Every copy of every message id goes to sorted runs on disk beside the warehouse, so
        // memory does not grow with the run; pass 1 keeps every archive it parses there until
        // pass 2 has written it. (An archive already loaded under its path with its size is
        // counted out: it is skipped.)
        let options = context.options
        let runIds = try RunIds(directory: URL(fileURLWithPath: workFolder))
        defer { runIds.remove() }
        let loaded = try destination.bookkeeping.loadedPathsAndSizes()
        let needed = TemporaryBudget.estimate(for: archives.filter { loaded[$0.path]?.size != $0.size })
        try TemporaryBudget.check(folder: runIds.directory.deletingLastPathComponent().path, needed: needed,
                                  available: context.faults.temporarySpaceAvailable)
        let budget = TemporaryBudget(limit: context.faults.temporaryByteLimit)
        defer {
            summary.temporaryBytes = budget.bytesUsed
            if budget.bytesUsed > 0 { log("kept \(budget.bytesUsed >> 20) MB of parsed archives beside the warehouse during the run (estimated \(needed >> 20) MB); removed") }
        }

        // Pass 1.
        let scan = ScanPass(archives: archives, context: context, runIds: runIds, budget: budget)
        guard var plan = try scan.run(known: try destination.bookkeeping.loadedHashes(), loadedFiles: loaded, summary: &summary, log: log) else { return false }
        plan.pastLimit = destination.catalog.eventTablesPastLimit(counts: plan.eventCounts)
        if !plan.pastLimit.isEmpty {
            log("\(plan.pastLimit.count) of the run's \(plan.eventCounts.count) events get no table (event table limit \(options.eventTableLimit)): their calls go to tracks only")
        }

        // Pass 2.
        let started = monotonicNanoseconds()
        defer { summary.stages.loadWall = Double(monotonicNanoseconds() - started) / 1e9 }
        destination.catalog.plannedTypes = plan.types
        // A run that brings more than the warehouse holds already loads faster without the
        // query indexes and builds them once at the end.
        let incoming = plan.toLoad.reduce(Int64(0)) { $0 + archives[$1].size }
        if options.createIndexes && incoming > existing, let bulk = destination as? any BulkIndexes {
            let dropped = try bulk.dropQueryIndexes()
            if dropped > 0 { log("bulk load (\(incoming) archive bytes into a \(existing)-byte warehouse): \(dropped) query indexes dropped, rebuilt at the end") }
        }
        var write = WritePass(archives: archives, plan: plan, context: context, runIds: runIds,
                              stages: WriteStages(destination: destination))
        // A night's few files into a warehouse many times their size: one transaction, so the
        // index pages they all touch are written once (a kill loses the run, not a file).
        if destination is any GroupedFiles && incoming > 0 && incoming * Self.groupRatio <= existing && plan.toLoad.count > 1 {
            write.groupFiles = true
            log("\(plan.toLoad.count) files (\(incoming) archive bytes into a \(existing)-byte warehouse) in one transaction")
        }
        let complete = try write.run(summary: &summary, log: log)
        let statistics = destination.statistics
        summary.rowsPerTable = statistics.rowsPerTable
        summary.newTables = statistics.newTables
        summary.newColumns = statistics.newColumns
        summary.overflowValues = statistics.overflowValues
        summary.eventTables = statistics.eventTables
        summary.eventTableLimit = statistics.eventTableLimit
        summary.pastLimitCalls = statistics.pastLimitCalls
        summary.pastLimitNames = statistics.pastLimitNames
        if options.createIndexes && complete {
            let started = monotonicNanoseconds()
            summary.indexesCreated = try destination.createQueryIndexes()
            times.add(write: monotonicNanoseconds() - started)
        }
        return complete
    }

    /// A run whose archives (compressed) are at most the warehouse's size over this loads its
    /// files in one transaction.
    static let groupRatio: Int64 = 8

    /// How an error ends the run: the run's own temporary storage, the destination's lock or
    /// storage, or anything else.
    static func failure(of error: any Error, in warehouse: any LoadTarget, options: LoadOptions) -> RunOutcome {
        let cause = (error as? RollbackFailure)?.cause ?? error
        if let temporary = cause as? TemporaryStorageError {
            return .storageFailure("\(temporary). Every file committed before is kept; free space and run again to resume.")
        }
        if let s3 = cause as? S3Error {
            return .unavailable("\(s3.message). Every file committed before is kept.", status: s3.exitStatus)
        }
        return warehouse.failure(of: error, busyTimeout: options.busyTimeout) ?? .failed("\(error)")
    }

    static func durationSeconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
