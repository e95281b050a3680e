import Foundation
import SegmentCore
import SegmentS3
import SegmentStages
import SegmentWarehouse

/// What a run shares between its passes: its clock, names, options and instruments.
struct RunContext: Sendable {
    let options: LoadOptions
    let faults: TestFaults
    let loadTime: Instant
    let names: NameTable
    let times: StageTimes
    let reader: ArchiveReader

    var progress: LoadProgress? { options.progress }
    var stop: StopRequest? { options.stop }
}

/// Pass 1 of a run: every archive (in parallel) hashed, and unless already loaded, read,
/// normalized once and spilled beside the warehouse, with its message ids' copies collected
/// and its column types observed; then the plan: one type per new column over the whole run,
/// one winning copy per message id, and a file whose bytes another file already has skipped.
struct ScanPass {
    /// What pass 2 needs.
    struct Plan {
        var scans: [Int: FileScan]
        /// The archives to load, by index, in path order.
        var toLoad: [Int]
        var types: [Int64: ColumnType] = [:]
        var winners: [MessageKey: Position] = [:]
        /// Track calls per event table over the run's archives (every copy counted).
        var eventCounts: [Int32: Int64] = [:]
        /// The event tables the run does not create (the event table limit): their calls'
        /// full rows go to `tracks`. Decided with the destination after the scan.
        var pastLimit: Set<Int32> = []
    }

    let archives: [Archive]
    let context: RunContext
    let runIds: RunIds
    let budget: TemporaryBudget

    /// Scans every archive; nil when a signal stopped the scan (nothing is loaded then).
    func run(known: [String: String], loadedFiles: [String: LoadedFile], summary: inout RunSummary, log: (String) -> Void) throws -> Plan? {
        let scans = Locked<[Int: FileScan]>([:])
        let started = monotonicNanoseconds()
        let (archives, context, runIds, budget) = (archives, context, runIds, budget)
        context.progress?.begin(.scanning, files: archives.count, bytes: archives.reduce(0) { $0 + $1.size })
        startWorkers(jobs: Self.workers(for: archives, jobs: context.options.jobs), count: archives.count, label: "scan") { i in
            let scan = Self.scan(archives[i], index: i, known: known, loadedFiles: loadedFiles, context: context, runIds: runIds, budget: budget)
            scans.withLock { $0[i] = scan }
            context.faults.killPoint?.fire(.scan)
        }.wait()
        var results = scans.withLock { $0 }
        // The run's own storage failing is the run's failure, whichever file met it.
        if let fatal = archives.indices.lazy.compactMap({ results[$0]?.fatal }).first { throw fatal }
        summary.stages.scanWall = Double(monotonicNanoseconds() - started) / 1e9
        if context.stop?.isSet == true {
            log("stopped while scanning: nothing was loaded")
            return nil
        }
        if context.faults.damageSpills {
            for i in archives.indices where results[i]?.spilled == true { Self.damage(runIds.spillPath(i)) }
        }
        context.faults.betweenPasses?()

        var plan = Plan(scans: [:], toLoad: [])
        // The winning copy of each id that occurs more than once; an id seen once needs none.
        var excluded: [Int32: Int32] = [:]
        for (i, scan) in results { if let distrust = scan.distrust { excluded[Int32(i)] = Int32(clamping: distrust.fromLine) } }
        plan.winners = try runIds.duplicateWinners(excluding: excluded)
        runIds.removeRuns()
        var firstPathOfHash: [String: String] = [:]
        for i in archives.indices {
            guard var scan = results[i] else { continue }
            if scan.skippedAs == nil && scan.error == nil && scan.notArchive == nil {
                if let earlier = firstPathOfHash[scan.sha256] {
                    scan.skippedAs = earlier
                    results[i] = scan
                    continue
                }
                firstPathOfHash[scan.sha256] = archives[i].path
            }
            if scan.skippedAs != nil || scan.notArchive != nil { continue }
            for (key, type) in scan.types {
                plan.types[key] = plan.types[key].map { $0.widened(with: type) } ?? type
            }
            plan.eventCounts.merge(scan.eventCounts, uniquingKeysWith: +)
        }
        plan.scans = results
        plan.toLoad = archives.indices.filter { results[$0]?.skippedAs == nil && results[$0]?.notArchive == nil }
        for i in archives.indices {
            if let reason = results[i]?.notArchive { summary.notArchives.append(SkippedFile(path: archives[i].path, reason: reason)) }
        }
        for i in archives.indices {
            if let earlier = results[i]?.skippedAs { summary.skippedAlreadyLoaded.append((archives[i].path, earlier)) }
        }
        log("scanned \(archives.count) archives: \(plan.toLoad.count) to load, \(plan.winners.count) message ids with more than one copy")
        return plan
    }

    /// Workers of the scan: `jobs`, or for a run with S3 objects `objectsPerJob` times as many,
    /// so that while some wait for an object's first bytes (tens of milliseconds on a real
    /// bucket, per object) the others parse. The result does not depend on the number.
    static func workers(for archives: [Archive], jobs: Int) -> Int {
        archives.contains { $0.source == .s3Object } ? min(jobs * objectsPerJob, 32) : jobs
    }

    static let objectsPerJob = 4

    /// Changes one byte in the middle of a file (the `damageSpills` fault).
    private static func damage(_ path: String) {
        guard let handle = FileHandle(forUpdatingAtPath: path) else { return }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd(), size > 16 else { return }
        try? handle.seek(toOffset: size / 2)
        let byte = (try? handle.read(upToCount: 1))?.first ?? 0
        try? handle.seek(toOffset: size / 2)
        try? handle.write(contentsOf: Data([byte ^ 0xFF]))
    }

    /// Pass 1 for one archive: hashes it (a file already loaded is skipped), reads and
    /// normalizes every line once, plans the column types, collects the copies of every id,
    /// and spills the chunks the writer will be handed.
    static func scan(_ archive: Archive, index: Int, known: [String: String], loadedFiles: [String: LoadedFile], context: RunContext,
                     runIds: RunIds, budget: TemporaryBudget) -> FileScan {
        let (reader, progress, stop, times) = (context.reader, context.progress, context.stop, context.times)
        let filter = context.options.filter
        var scan = FileScan()
        var ids = runIds.collector()
        var spill: SpillWriter?
        defer { spill?.close() }
        struct Stopped: Error {}
        do {
            if stop?.isSet == true { return scan }
            // An S3 object is read once, hashed on the way: one with the key, size and ETag of
            // an object loaded before is skipped unread; one whose bytes turn out loaded under
            // another key is skipped after its read. A local file is hashed first.
            let isObject = archive.source == .s3Object
            if isObject {
                if loadedFiles[archive.path]?.isSameObject(as: archive) == true { scan.skippedAs = archive.path }
            } else {
                let (sha, _) = try ArchiveReader.sha256(path: archive.path)
                scan.sha256 = sha
                scan.skippedAs = known[sha]
            }
            if scan.skippedAs != nil {
                progress?.add(bytes: archive.size)
                progress?.fileDone()
                return scan
            }
            spill = try SpillWriter(path: runIds.spillPath(index), budget: budget)
            var processor = LineProcessor(loadTime: context.loadTime, names: context.names, privacy: context.options.privacy)
            defer { times.add(parse: processor.nanoseconds) }
            var chunk = Chunk()
            chunk.items.reserveCapacity(1024)
            var pendingBytes: Int64 = 0
            let outcome = try reader.read(path: archive.path, format: archive.format, source: archive.source,
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
            if isObject {
                scan.sha256 = outcome.sha256
                if let earlier = known[outcome.sha256] {
                    scan.skippedAs = earlier
                    progress?.fileDone()
                    return scan
                }
            }
            chunk.archiveBytes = pendingBytes
            try spill!.write(chunk)
            try spill!.finish()
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
        } catch let error as S3Error {
            // Refused credentials or permissions: no object of the run can be read.
            scan.fatal = S3Error(kind: error.kind, message: "\(archive.path): \(error.message)")
        } catch let error as NotAnArchive {
            scan.notArchive = error.reason
        } catch {
            scan.error = "\(error)"
        }
        return scan
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
    /// Track calls per event table (for the event table limit), kept per member as the types are.
    var eventCounts: [Int32: Int64] = [:]
    private var memberEventCounts: [Int32: Int64] = [:]
    /// The archive could not be read: pass 2 tries it again (as a file that was not spilled)
    /// and records it as failed if it still cannot; the run goes on.
    var error: String?
    /// The run's own storage failed (id runs, spill), or S3 refused the run's credentials:
    /// the run stops.
    var fatal: (any Error & Sendable)?
    /// An S3 object whose first bytes are neither gzip nor JSON: skipped and reported.
    var notArchive: String?
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
        if message.type == .track { memberEventCounts[message.table, default: 0] += 1 }
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
        eventCounts.merge(memberEventCounts, uniquingKeysWith: +)
        memberEventCounts.removeAll(keepingCapacity: true)
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
        memberEventCounts.removeAll()
    }

    static func widen(_ types: inout [Int64: ColumnType], _ key: Int64, with type: ColumnType) {
        if let current = types[key] {
            if current != type { types[key] = current.widened(with: type) }
        } else {
            types[key] = type
        }
    }
}

