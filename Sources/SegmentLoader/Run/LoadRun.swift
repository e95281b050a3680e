import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a load runs. What to load comes from the paths; these are the knobs.
public struct LoadOptions: Sendable {
    public var database: String
    /// Workers that read, inflate, parse and normalize archives in parallel.
    public var jobs: Int
    /// Columns per table for data keys; later keys go to the row's `_extra` JSON.
    public var columnLimit: Int = 1000
    /// Which messages to keep (a pipeline's `filters`); the others are counted as filtered.
    public var filter = MessageFilter()
    /// Leave out messages that opted out of the Warehouses destination through `integrations`.
    public var skipOptedOut: Bool {
        get { filter.honourOptOuts }
        set { filter.honourOptOuts = newValue }
    }
    /// Fields dropped or hashed before normalizing (its key must be loaded).
    public var privacy = Privacy()
    public var maxLineBytes: Int = 1 << 20
    /// How SQLite journals the run's transactions (`wal` unless a backfill asks otherwise).
    public var journal: JournalMode = .wal
    /// Seconds to wait for another program's write lock on the warehouse before exiting 75.
    public var busyTimeout: Double = Warehouse.defaultBusyTimeout
    /// Told once when the run starts waiting for such a lock (set when stderr is a terminal).
    public var waitNotice: (@Sendable (String) -> Void)?
    /// Create the query indexes after the load (see `Indexes`).
    public var createIndexes = true
    /// Bring the built-in models up to date after the load (see `Models`).
    public var models = ModelOptions()
    /// Set from a signal handler: the run stops after the file being committed.
    public var stop: StopRequest?
    /// Updated as the run goes, for a progress display.
    public var progress: LoadProgress?
    /// For fault tests only: the warehouse cannot grow past this many pages, as on a full disk
    /// (set by the command line's hidden --test-max-pages).
    public var maxPageCount: Int?
    /// For fault tests only: the run's temporary files may hold at most this many bytes, as
    /// on a disk that fills up.
    public var temporaryByteLimit: Int64?
    /// For tests only: the free space the temporary-space check sees.
    public var temporarySpaceAvailable: Int64?
    /// For crash tests only: the process SIGKILLs itself at this point, as an outside kill
    /// would (set by the command line's hidden --test-kill-at).
    public var killPoint: KillPoint?
    public var pipeline: String = "load"
    /// How many rejected lines the summary lists (all go to `_rejects`).
    public var problemsShown: Int = 20
    /// Told what the run does that a person should know of even without `--verbose` (an
    /// upgrade of the warehouse's format).
    public var announce: @Sendable (String) -> Void = { _ in }
    /// The load's clock; tests fix it.
    public var now: @Sendable () -> Date = { Date() }

    public init(database: String, jobs: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.database = database
        self.jobs = max(1, jobs)
    }
}

/// Where a crash test kills the loader: `scan` (after the first archive is scanned),
/// `write:N` (file N's first rows written, not committed), `commit:N` (right after file N commits).
public enum KillPoint: Sendable, Equatable {
    case scan
    case write(Int)
    case commit(Int)
    /// Not a kill: SIGINT (`interrupt:N`) or SIGTERM (`terminate:N`) to itself right after file
    /// N commits, through the real handler.
    case interrupt(Int)
    case terminate(Int)

    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        switch (parts.first, parts.count) {
        case ("scan"?, 1): self = .scan
        case ("write"?, 2): guard let n = Int(parts[1]), n >= 1 else { return nil }; self = .write(n)
        case ("commit"?, 2): guard let n = Int(parts[1]), n >= 1 else { return nil }; self = .commit(n)
        case ("interrupt"?, 2): guard let n = Int(parts[1]), n >= 1 else { return nil }; self = .interrupt(n)
        case ("terminate"?, 2): guard let n = Int(parts[1]), n >= 1 else { return nil }; self = .terminate(n)
        default: return nil
        }
    }

    /// Every point that is "right after file `n` commits".
    func afterCommit(_ n: Int, stop: StopRequest?) {
        for point in [KillPoint.commit(n), .interrupt(n), .terminate(n)] { fire(point, stop: stop) }
    }

    func fire(_ point: KillPoint, stop: StopRequest? = nil) {
        guard point == self else { return }
        switch point {
        case .interrupt, .terminate:
            if case .interrupt = point { kill(getpid(), SIGINT) } else { kill(getpid(), SIGTERM) }
            // The handler runs on another thread; wait for it so the test is deterministic.
            for _ in 0..<200 where stop?.isSet != true { usleep(10_000) }
        default:
            kill(getpid(), SIGKILL)
        }
    }
}

/// Pass 1's findings for one archive: its hash and the types its values ask for (its message
/// ids go to the run's `RunIds`).
struct FileScan: Sendable {
    var sha256: String = ""
    var skippedAs: String?
    /// Planned types keyed by `table << 32 | column` (ids in the run's NameTable), from the
    /// gzip members read to their end.
    var types: [Int64: ColumnType] = [:]
    /// The same for the member being read: merged into `types` when it ends, dropped when it
    /// turns out corrupt (zlib says so only at its end). Keeping it apart costs one merge per
    /// member, where a snapshot of `types` per member would copy the whole plan each time.
    private var memberTypes: [Int64: ColumnType] = [:]
    /// The archive could not be read: pass 2 tries it again (as a file that was not spilled)
    /// and records it as failed if it still cannot; the run goes on.
    var error: String?
    /// The run's own storage failed (id runs, spill): the run stops.
    var fatal: TemporaryStorageError?
    /// What reading the archive found at its end, handed to the writer with the last chunk.
    var end = FileEnd()
    /// Pass 1's chunks are in the run's spill file (else pass 2 reads the archive again: a
    /// file with a corrupt gzip member, whose lines pass 1 could only judge at the member's end).
    var spilled = false
    /// Lines of a corrupt gzip member: rejected in pass 2, and no part of the plan.
    var distrust: Distrust?

    /// Widens the planned types of the columns a message's rows need. Common columns have
    /// fixed types; context and payload columns get planned ones.
    mutating func observe(_ message: Message) {
        Splitter.forEachRow(type: message.type, table: message.table) { plan in
            observe(message.context, in: plan.table)
            if plan.withPayload { observe(message.payload, in: plan.table) }
        }
    }

    private mutating func observe(_ fields: [Field], in table: Int32) {
        let high = Int64(table) << 32
        for field in fields {
            guard let type = field.value.columnType else { continue }
            Self.widen(&memberTypes, high | Int64(field.column), with: type)
        }
    }

    /// The member read so far is whole: its types join the plan.
    mutating func endMember() {
        if types.isEmpty {
            swap(&types, &memberTypes)
            return
        }
        for (key, type) in memberTypes { Self.widen(&types, key, with: type) }
        memberTypes.removeAll(keepingCapacity: true)
    }

    /// The member read so far is corrupt: nothing of it is planned on.
    mutating func dropMember() {
        memberTypes.removeAll()
    }

    static func widen(_ types: inout [Int64: ColumnType], _ key: Int64, with type: ColumnType) {
        if let current = types[key] {
            if current != type { types[key] = current.widened(with: type) }
        } else {
            types[key] = type
        }
    }
}

/// Pass 2's work for the writer, in the file's order.
enum Work: Sendable {
    /// The next record of the chunk's `records`.
    case message
    case duplicateInRun
    case filtered
    case reject(line: Int, item: Int?, kind: RejectKind, reason: String, raw: RejectRaw)
}

struct Chunk: Sendable {
    var items: [Work] = []
    /// Archive bytes read for this chunk (progress follows the writer, not the read-ahead).
    var archiveBytes: Int64 = 0
    var records = MessageRecords()
    /// Each record's id key and position, in the records' order (for the winner check).
    var copies: [Copy] = []
    var end: FileEnd?
}

extension Chunk {
    /// Adds what one line yielded: a reject (with the line's bytes as `_rejects` keeps them), a
    /// filtered message, or a message with its copy's key and position. Returns the message
    /// added, for the caller's plan and id collection.
    mutating func add(_ parsed: Parsed, line: Int, bytes: UnsafeBufferPointer<UInt8>, file: Int,
                      processor: LineProcessor, filter: MessageFilter) -> (message: Message, copy: Copy)? {
        switch parsed {
        case .reject(let kind, let reason, let item):
            items.append(.reject(line: line, item: item, kind: kind, reason: reason, raw: processor.rawForReject(bytes)))
            return nil
        case .message(let message, let item):
            if !filter.keeps(message) {
                items.append(.filtered)
                return nil
            }
            let copy = Copy(key: MessageKey(message.id),
                            position: Position(receivedAt: message.receivedAt.milliseconds, file: Int32(file),
                                               line: Int32(clamping: line), item: Int32(item ?? 0)))
            records.append(message)
            copies.append(copy)
            items.append(.message)
            return (message, copy)
        }
    }
}

struct FileEnd: Sendable {
    var sha256: String?
    var physicalLines: Int = 0
    var streamError: String?
    var readError: String?
    var inflatedBytes: Int64 = 0
    /// The run's own storage failed while handing this file on: the run stops.
    var fatal: TemporaryStorageError?
}

/// A whole load: discover → pass 1 (in parallel: hash, read → normalize each archive once,
/// plan column types, collect every id's copies, spill the packed records beside the
/// warehouse) → rank duplicate copies → pass 2 (the spills, minus the copies that lost, handed
/// to one writer committing file by file in path order). Pass 2 writes what pass 1 parsed, so
/// what pass 1 planned is exactly what is written, and the result does not depend on file
/// order or thread timing.
public enum LoadRun {
    public static func run(paths: [String], options: LoadOptions, log: (String) -> Void = { _ in }) throws -> RunSummary {
        try run(found: try Discovery.find(paths), options: options, log: log)
    }

    /// Loads archives already found (a pipeline's selection). The caller holds the warehouse's
    /// `WarehouseLock`.
    public static func run(found: Discovery.Result, options: LoadOptions, log: (String) -> Void = { _ in }) throws -> RunSummary {
        // A database that is not ours is refused before the lock file appears beside it.
        try Warehouse.check(path: options.database)
        let lock = try WarehouseLock(database: options.database)
        defer { withExtendedLifetime(lock) {} }
        let clock = ContinuousClock()
        let started = clock.now
        let startDate = options.now()
        let loadTime = Instant(date: startDate)
        let uuidTs = Timestamp.format(loadTime)

        let warehouse = try Warehouse(path: options.database, journal: options.journal, busyTimeout: options.busyTimeout,
                                      waitNotice: options.waitNotice, announce: options.announce)
        if let pages = options.maxPageCount { try warehouse.db.execute("PRAGMA max_page_count=\(pages)") }
        var summary = RunSummary()
        summary.pipeline = options.pipeline
        summary.database = options.database
        summary.upgradedFrom = warehouse.upgradedFrom
        summary.startedAt = uuidTs
        summary.notArchives = found.skipped
        let loadId = try warehouse.beginLoad(pipeline: options.pipeline, startedAt: uuidTs)
        summary.loadId = loadId

        do {
            try load(found.archives, warehouse: warehouse, loadId: loadId, loadTime: loadTime, uuidTs: uuidTs,
                     options: options, summary: &summary, log: log)
            // The models follow what the committed files touched; an interrupted run leaves
            // them to the next one (what the files touched stays recorded until then).
            if options.models.enabled && !summary.interrupted && options.stop?.isSet != true {
                summary.models = try Models.build(in: warehouse.db, options: options.models, loadId: loadId, now: options.now())
            }
        } catch {
            if let temporary = error as? TemporaryStorageError {
                summary.storageFailure = true
                summary.fatalError = "\(temporary). Every file committed before is kept; free space and run again to resume."
            } else if let sqlite = error as? SQLiteError, sqlite.isBusy {
                summary.lockedOut = true
                summary.fatalError = WarehouseLockedOut(seconds: options.busyTimeout).description
            } else if let sqlite = error as? SQLiteError, sqlite.isDiskProblem {
                summary.storageFailure = true
                summary.fatalError = "cannot write to the warehouse (\(sqlite.message)): the disk is full or the file or its folder is not writable. "
                    + "Every file committed before is kept and the file being written was rolled back; free space or fix permissions and run again to resume."
            } else {
                summary.fatalError = "\(error)"
            }
        }
        summary.elapsedSeconds = durationSeconds(clock.now - started)
        summary.finishedAt = Timestamp.format(Instant(date: options.now()))
        if summary.fatalError != nil {
            summary.status = "failed"
        } else if summary.interrupted {
            summary.status = "interrupted"
        } else if summary.filesPartial + summary.filesFailed > 0 {
            summary.status = "partial"
        } else {
            summary.status = "succeeded"
        }
        try? warehouse.finishLoad(id: loadId, summary: summary, status: summary.status, error: summary.fatalError)
        summary.lastSuccessAt = try? warehouse.lastSuccess(pipeline: options.pipeline)
        warehouse.truncateLog()
        return summary
    }

    private static func load(
        _ archives: [Archive], warehouse: Warehouse, loadId: Int64, loadTime: Instant, uuidTs: String,
        options: LoadOptions, summary: inout RunSummary, log: (String) -> Void
    ) throws {
        let known = try warehouse.loadedHashes()
        let names = NameTable()

        let times = StageTimes()
        let scanStarted = monotonicNanoseconds()
        defer {
            let (inflate, parse, write) = times.seconds
            summary.stages.inflate = inflate
            summary.stages.parseAndNormalize = parse
            summary.stages.write = write
        }

        // Pass 1: scan. Every copy of every message id goes to sorted runs on disk beside the
        // warehouse, so memory does not grow with the run.
        let scans = Locked<[Int: FileScan]>([:])
        let runIds = try RunIds(directory: URL(fileURLWithPath: options.database + ".run-ids"))
        defer { runIds.remove() }
        // Pass 1 keeps every archive it parses on disk until pass 2 has written it. (An
        // archive already loaded under its path with its size is counted out: it is skipped.)
        let loaded = try warehouse.loadedPathsAndSizes()
        let needed = TemporaryBudget.estimate(for: archives.filter { loaded[$0.path] != $0.size })
        try TemporaryBudget.check(folder: runIds.directory.deletingLastPathComponent().path, needed: needed,
                                  available: options.temporarySpaceAvailable)
        let budget = TemporaryBudget(limit: options.temporaryByteLimit)
        defer {
            summary.temporaryBytes = budget.bytesUsed
            if budget.bytesUsed > 0 { log("kept \(budget.bytesUsed >> 20) MB of parsed archives beside the warehouse during the run (estimated \(needed >> 20) MB); removed") }
        }
        let filter = options.filter
        let privacy = options.privacy
        let killPoint = options.killPoint
        let progress = options.progress
        let stop = options.stop
        let reader = ArchiveReader(maxLineBytes: options.maxLineBytes)
        progress?.begin(.scanning, files: archives.count, bytes: archives.reduce(0) { $0 + $1.size })
        startWorkers(jobs: options.jobs, count: archives.count, label: "scan") { i in
            let scan = Self.scan(archives[i], index: i, known: known, reader: reader, loadTime: loadTime, names: names,
                                 filter: filter, privacy: privacy, runIds: runIds, budget: budget, times: times, progress: progress, stop: stop)
            scans.withLock { $0[i] = scan }
            killPoint?.fire(.scan)
        }.wait()
        var results = scans.withLock { $0 }
        // The run's own storage failing is the run's failure, whichever file met it.
        if let fatal = archives.indices.lazy.compactMap({ results[$0]?.fatal }).first { throw fatal }
        summary.stages.scanWall = Double(monotonicNanoseconds() - scanStarted) / 1e9
        if stop?.isSet == true {
            summary.interrupted = true
            log("stopped while scanning: nothing was loaded")
            return
        }
        let loadStarted = monotonicNanoseconds()
        defer { summary.stages.loadWall = Double(monotonicNanoseconds() - loadStarted) / 1e9 }

        // Plan: one type per new column over the whole run; one winning copy per message id;
        // a file whose bytes another file of this run already has is skipped.
        var planned: [Int64: ColumnType] = [:]
        // The winning copy of each id that occurs more than once; an id seen once needs none.
        var excluded: [Int32: Int32] = [:]
        for (i, scan) in results { if let distrust = scan.distrust { excluded[Int32(i)] = Int32(clamping: distrust.fromLine) } }
        let winners = try runIds.duplicateWinners(excluding: excluded)
        runIds.removeRuns()
        var firstPathOfHash: [String: String] = [:]
        for i in archives.indices {
            guard var scan = results[i] else { continue }
            if scan.skippedAs == nil && scan.error == nil {
                if let earlier = firstPathOfHash[scan.sha256] {
                    scan.skippedAs = earlier
                    results[i] = scan
                    continue
                }
                firstPathOfHash[scan.sha256] = archives[i].path
            }
            if scan.skippedAs != nil { continue }
            for (key, type) in scan.types {
                planned[key] = planned[key].map { $0.widened(with: type) } ?? type
            }
        }
        let toLoad = archives.indices.filter { results[$0]?.skippedAs == nil }
        for i in archives.indices {
            if let earlier = results[i]?.skippedAs { summary.skippedAlreadyLoaded.append((archives[i].path, earlier)) }
        }
        log("scanned \(archives.count) archives: \(toLoad.count) to load, \(winners.count) message ids with more than one copy")

        // A run that brings more than the warehouse holds already loads faster without the
        // query indexes and builds them once at the end.
        let incoming = toLoad.reduce(Int64(0)) { $0 + archives[$1].size }
        let existing = ((try? FileManager.default.attributesOfItem(atPath: options.database)[.size]) as? NSNumber)?.int64Value ?? 0
        if options.createIndexes && incoming > existing {
            let dropped = try Indexes.dropForBulkLoad(in: warehouse.db)
            if dropped > 0 { log("bulk load (\(incoming) archive bytes into a \(existing)-byte warehouse): \(dropped) query indexes dropped, rebuilt at the end") }
        }

        // Pass 2: load, files committed one by one in path order.
        let writer = try Writer(warehouse: warehouse, names: names, loadId: loadId, uuidTs: uuidTs, columnLimit: options.columnLimit)
        writer.plannedTypes = planned
        let stages = try WriteStages(writer: writer)
        // Read-ahead: about 64 chunks of 1024 messages (~2 MB each) in flight across the
        // workers, whatever --jobs is. With fewer the writer waits on the one worker reading
        // its file while the others sit on full channels; more only costs memory.
        let readAhead = max(4, 64 / max(1, options.jobs))
        let channels = toLoad.map { _ in Channel<Chunk>(capacity: readAhead) }
        let stopWorkers = StopFlag()
        let shared = winners
        let scansToLoad = toLoad.map { results[$0]! }
        let group = startWorkers(jobs: options.jobs, count: toLoad.count, label: "load") { k in
            let i = toLoad[k]
            if scansToLoad[k].spilled {
                Self.feed(spill: runIds.spillPath(i), index: i, scan: scansToLoad[k], winners: shared, channel: channels[k], stop: stopWorkers)
            } else {
                Self.produce(archives[i], index: i, winners: shared, reader: reader, loadTime: loadTime, names: names,
                             filter: filter, privacy: privacy, distrust: scansToLoad[k].distrust, channel: channels[k], stop: stopWorkers,
                             times: times, progress: progress)
            }
        }
        defer {
            stopWorkers.set()
            channels.forEach { $0.close() }
            group.wait()
        }

        progress?.begin(.loading, files: toLoad.count, bytes: toLoad.reduce(0) { $0 + archives[$1].size })
        for (k, i) in toLoad.enumerated() {
            if stop?.isSet == true {
                summary.interrupted = true
                summary.notStarted = toLoad[k...].map { archives[$0].path }
                log("stopped: \(toLoad.count - k) archives left for the next run")
                break
            }
            let archive = archives[i]
            var counts = Counts()
            try stages.beginFile()
            var end: FileEnd?
            do {
                while end == nil {
                    let chunk = channels[k].receive()
                    let writeStarted = monotonicNanoseconds()
                    defer { times.add(write: monotonicNanoseconds() - writeStarted) }
                    for work in chunk.items {
                        counts.lines += 1
                        switch work {
                        case .message:
                            break
                        case .duplicateInRun:
                            counts.duplicates += 1
                        case .filtered:
                            counts.filtered += 1
                        case .reject(let line, let item, let kind, let reason, let raw):
                            counts.rejected += 1
                            try writer.reject(file: archive.path, line: line, item: item, kind: kind, reason: reason, raw: raw)
                            summary.problemCount += 1
                            if summary.problems.count < options.problemsShown {
                                summary.problems.append(Problem(file: archive.path, line: line, reason: reason))
                            }
                        }
                    }
                    for written in try stages.load(chunk.records) {
                        if written { counts.loaded += 1 } else { counts.duplicates += 1 }
                    }
                    if counts.loaded > 0 { killPoint?.fire(.write(k + 1)) }
                    progress?.add(bytes: chunk.archiveBytes, messages: Int64(chunk.items.count))
                    end = chunk.end
                }
            } catch {
                try? stages.rollbackFile()
                throw error
            }
            channels[k].finish()
            let fileEnd = end!
            if let fatal = fileEnd.fatal {
                try? stages.rollbackFile()
                throw fatal
            }
            if let failure = fileEnd.readError ?? (fileEnd.sha256 != scansToLoad[k].sha256 ? "the file changed while it was being loaded; run again" : nil) {
                try stages.rollbackFile()
                try writer.recordFailedFile(archive, sha256: fileEnd.sha256 ?? scansToLoad[k].sha256, error: failure)
                summary.files.append(FileResult(path: archive.path, status: .failed, counts: Counts(), error: failure))
                continue
            }
            counts.discarded = writer.discardsInFile
            var status = FileResult.Status.loaded
            if fileEnd.streamError != nil {
                status = counts.loaded + counts.duplicates + counts.filtered > 0 ? .partial : .failed
            }
            let commitStarted = monotonicNanoseconds()
            defer { times.add(write: monotonicNanoseconds() - commitStarted) }
            do {
                try stages.commitFile(archive, sha256: scansToLoad[k].sha256, physicalLines: fileEnd.physicalLines, status: status,
                                      counts: counts, error: fileEnd.streamError)
            } catch {
                try? stages.rollbackFile()
                throw error
            }
            summary.totals += counts
            summary.inflatedBytes += fileEnd.inflatedBytes
            summary.files.append(FileResult(path: archive.path, status: status, counts: counts, error: fileEnd.streamError))
            killPoint?.afterCommit(k + 1, stop: stop)
            progress?.fileDone()
            log("\(status.rawValue) \(archive.path): \(counts.lines) messages, \(counts.loaded) loaded")
        }
        summary.rowsPerTable = writer.rowsPerTable
        summary.newTables = writer.newTables
        summary.newColumns = writer.newColumns
        summary.overflowValues = writer.overflowValues
        if options.createIndexes && !summary.interrupted {
            let started = monotonicNanoseconds()
            summary.indexesCreated = try Indexes.create(in: warehouse.db)
            times.add(write: monotonicNanoseconds() - started)
        }
    }

    /// Pass 1 for one archive: hashes it (a file already loaded is skipped), reads and
    /// normalizes every line once, plans the column types, collects the copies of every id,
    /// and spills the chunks the writer will be handed.
    static func scan(_ archive: Archive, index: Int, known: [String: String], reader: ArchiveReader,
                     loadTime: Instant, names: NameTable, filter: MessageFilter, privacy: Privacy, runIds: RunIds,
                     budget: TemporaryBudget, times: StageTimes, progress: LoadProgress?, stop: StopRequest?) -> FileScan {
        var scan = FileScan()
        var ids = runIds.collector()
        var spill: SpillWriter?
        defer { spill?.close() }
        struct Stopped: Error {}
        do {
            if stop?.isSet == true { return scan }
            let (sha, _) = try ArchiveReader.sha256(path: archive.path)
            scan.sha256 = sha
            if let earlier = known[sha] {
                scan.skippedAs = earlier
                progress?.add(bytes: archive.size)
                progress?.fileDone()
                return scan
            }
            spill = try SpillWriter(path: runIds.spillPath(index), budget: budget)
            var processor = LineProcessor(loadTime: loadTime, names: names, privacy: privacy)
            defer { times.add(parse: processor.nanoseconds) }
            var chunk = Chunk()
            chunk.items.reserveCapacity(1024)
            var pendingBytes: Int64 = 0
            let outcome = try reader.read(path: archive.path, format: archive.format,
                                          onBlock: { progress?.add(bytes: Int64($0)); pendingBytes += Int64($0) },
                                          onMemberStart: { _ in scan.endMember() }) { line, bytes, problem in
                if stop?.isSet == true { throw Stopped() }
                for parsed in processor.process(bytes, problem: problem) {
                    guard let (message, copy) = chunk.add(parsed, line: line, bytes: bytes, file: index, processor: processor, filter: filter)
                    else { continue }
                    try ids.add(copy.key, at: copy.position)
                    scan.observe(message)
                }
                if chunk.items.count >= 1024 {
                    chunk.archiveBytes = pendingBytes
                    pendingBytes = 0
                    try spill!.write(chunk)
                    chunk = Chunk()
                    chunk.items.reserveCapacity(1024)
                }
            }
            chunk.archiveBytes = pendingBytes
            try spill!.write(chunk)
            times.add(inflate: outcome.inflateNanoseconds)
            scan.end = FileEnd(sha256: outcome.sha256, physicalLines: outcome.physicalLines, streamError: outcome.streamError,
                               inflatedBytes: outcome.inflatedBytes)
            if let from = outcome.corruptFromLine, let error = outcome.streamError {
                // zlib noticed the damage only now: what the member gave so far is not planned
                // on, and pass 2 reads the file again to reject those lines with their bytes.
                scan.dropMember()
                scan.distrust = Distrust(fromLine: from, reason: "from a gzip member that is corrupt (\(error)): zlib made this line from damaged data, so it is kept here, not loaded")
            } else {
                scan.spilled = true
            }
            scan.endMember()
            try ids.flush()
            progress?.fileDone()
        } catch is Stopped {
            return scan
        } catch let error as TemporaryStorageError {
            scan.fatal = error
        } catch {
            scan.error = "\(error)"
        }
        return scan
    }

    /// Pass 2 for an archive pass 1 spilled: its chunks, less the copies that lost to another
    /// copy of their id, through `channel`; the last one carries the file's end.
    static func feed(spill path: String, index: Int, scan: FileScan, winners: [MessageKey: Position],
                     channel: Channel<Chunk>, stop: StopFlag) {
        var end = scan.end
        var pending: Chunk?
        do {
            var reader = try SpillReader(path: path, file: Int32(index))
            defer { reader.close() }
            while var chunk = try reader.next() {
                if stop.isSet { return }
                chunk.dropLosers(winners: winners)
                if let previous = pending, !channel.send(previous) { return }
                pending = chunk
            }
        } catch let error as TemporaryStorageError {
            end.fatal = error
            pending = nil
        } catch {
            end.fatal = TemporaryStorageError(path: path, message: "\(error)")
            pending = nil
        }
        var last = pending ?? Chunk()
        last.end = end
        if channel.send(last) { channel.waitUntilFinished() }
    }

    /// Pass 2 for an archive pass 1 could not spill (a corrupt gzip member): read, normalize
    /// and hand on again, rejecting the lines of the corrupt member (`distrust`).
    static func produce(_ archive: Archive, index: Int, winners: [MessageKey: Position], reader: ArchiveReader,
                        loadTime: Instant, names: NameTable, filter: MessageFilter, privacy: Privacy, distrust: Distrust?,
                        channel: Channel<Chunk>, stop: StopFlag, times: StageTimes, progress: LoadProgress?) {
        var processor = LineProcessor(loadTime: loadTime, names: names, privacy: privacy)
        defer { times.add(parse: processor.nanoseconds) }
        var chunk = Chunk()
        chunk.items.reserveCapacity(1024)
        var end = FileEnd()
        struct Stopped: Error {}
        do {
            var pendingBytes: Int64 = 0
            let outcome = try reader.read(path: archive.path, format: archive.format,
                                          onBlock: { pendingBytes += Int64($0) }, distrust: distrust) { line, bytes, problem in
                if stop.isSet { throw Stopped() }
                for parsed in processor.process(bytes, problem: problem) {
                    _ = chunk.add(parsed, line: line, bytes: bytes, file: index, processor: processor, filter: filter)
                }
                if chunk.items.count >= 1024 {
                    chunk.archiveBytes = pendingBytes
                    pendingBytes = 0
                    chunk.dropLosers(winners: winners)
                    if !channel.send(chunk) { throw Stopped() }
                    chunk = Chunk()
                    chunk.items.reserveCapacity(1024)
                }
            }
            chunk.archiveBytes = pendingBytes
            end.sha256 = outcome.sha256
            end.physicalLines = outcome.physicalLines
            end.streamError = outcome.streamError
            end.inflatedBytes = outcome.inflatedBytes
            times.add(inflate: outcome.inflateNanoseconds)
        } catch is Stopped {
            return
        } catch {
            end.readError = "\(error)"
            chunk = Chunk()
        }
        chunk.dropLosers(winners: winners)
        chunk.end = end
        if channel.send(chunk) { channel.waitUntilFinished() }
    }

    static func durationSeconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
