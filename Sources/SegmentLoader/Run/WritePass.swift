import Foundation
import SegmentCore
import SegmentS3
import SegmentStages
import SegmentWarehouse

/// Pass 2 of a run: the files to load, in path order, each in one transaction of the
/// destination. Workers read each file's spill (or, for a file with a corrupt gzip member, the
/// archive again), drop the copies that lost within the run and find what the rest need of
/// the schema; the writer's thread runs the write stages on them and commits file by file,
/// or, when `groupFiles` (a run much smaller than its warehouse), every file in one transaction.
struct WritePass {
    let archives: [Archive]
    let plan: ScanPass.Plan
    let context: RunContext
    let runIds: RunIds
    let stages: WriteStages
    /// One transaction for the whole pass: a night's few files then write the pages of the
    /// random-key indexes they share once, not once per file. A kill loses the whole pass (the
    /// next run loads its files again). A file that cannot be read rolls the whole group back,
    /// and the pass runs again one transaction per file, which records it as failed: files
    /// are not savepoints in the group, whose page images SQLite would keep in memory.
    var groupFiles = false

    /// A file could not be read inside the group: everything of it is rolled back.
    private struct Regroup: Error {}

    var destination: any Destination { stages.destination }

    /// Writes every file; returns false when a signal stopped the run between two files.
    func run(summary: inout RunSummary, log: (String) -> Void) throws -> Bool {
        guard groupFiles else { return try attempt(grouped: false, summary: &summary, log: log) }
        let before = summary
        do {
            return try attempt(grouped: true, summary: &summary, log: log)
        } catch is Regroup {
            summary = before
            log("a file could not be read inside the run's one transaction, so nothing of it was kept: loading the files again, one transaction each")
            return try attempt(grouped: false, summary: &summary, log: log)
        } catch {
            // Nothing of the group was committed.
            summary = before
            throw error
        }
    }

    private func attempt(grouped: Bool, summary: inout RunSummary, log: (String) -> Void) throws -> Bool {
        let (archives, plan, context, runIds) = (archives, plan, context, runIds)
        let toLoad = plan.toLoad
        // Read-ahead: about 64 chunks of 1024 messages (~2 MB each) in flight across the
        // workers, whatever --jobs is. With fewer the writer waits on the one worker reading
        // its file while the others sit on full channels; more only costs memory.
        let readAhead = max(4, 64 / max(1, context.options.jobs))
        let channels = toLoad.map { _ in Channel<Chunk>(capacity: readAhead) }
        let stopWorkers = StopFlag()
        let scans = toLoad.map { plan.scans[$0]! }
        let feedFile: @Sendable (Int, Channel<Chunk>) -> Void = { k, channel in
            let i = toLoad[k]
            if scans[k].spilled {
                Self.feed(spill: runIds.spillPath(i), index: i, scan: scans[k], winners: plan.winners, pastLimit: plan.pastLimit,
                          channel: channel, stop: stopWorkers)
            } else {
                Self.produce(archives[i], index: i, winners: plan.winners, pastLimit: plan.pastLimit, context: context, distrust: scans[k].distrust,
                             channel: channel, stop: stopWorkers)
            }
        }
        let group = startWorkers(jobs: context.options.jobs, count: toLoad.count, label: "load") { k in feedFile(k, channels[k]) }
        // A file written again (its transaction lost a deadlock to another loader's) is read
        // again from its spill by a feeder of its own.
        let again = Refeeds(capacity: readAhead, feed: feedFile)
        defer {
            stopWorkers.set()
            channels.forEach { $0.close() }
            again.closeAll()
            group.wait()
            again.wait()
        }

        context.progress?.begin(.loading, files: toLoad.count, bytes: toLoad.reduce(0) { $0 + archives[$1].size })
        guard grouped else { return try writeFiles(toLoad, scans: scans, channels: channels, again: again, grouped: false, summary: &summary, log: log) }
        return try stages.group { try writeFiles(toLoad, scans: scans, channels: channels, again: again, grouped: true, summary: &summary, log: log) }
    }

    private func writeFiles(_ toLoad: [Int], scans: [FileScan], channels: [Channel<Chunk>], again: Refeeds, grouped: Bool,
                            summary: inout RunSummary, log: (String) -> Void) throws -> Bool {
        // A file another loader is writing now is put off to the end of the pass (its feeder
        // stopped), and then waited for: two loaders given the same files share them out.
        var queue = Array(toLoad.indices)
        var putOff = Set<Int>()
        var head = 0
        while head < queue.count {
            let k = queue[head]
            head += 1
            let late = putOff.contains(k)
            let i = toLoad[k]
            if context.stop?.isSet == true {
                summary.notStarted = queue[(head - 1)...].map { archives[toLoad[$0]].path }
                log("stopped: \(summary.notStarted.count) archives left for the next run")
                return false
            }
            var channel = late ? again.start(k) : channels[k]
            var attempts = 0
            let result: FileResult?, readable: Bool
            while true {
                do {
                    (result, readable) = try write(archives[i], number: k + 1, scan: scans[k], from: channel, grouped: grouped,
                                                   wait: late, summary: &summary, log: log)
                    break
                } catch is Busy {
                    channel.close()
                    putOff.insert(k)
                    queue.append(k)
                    log("\(archives[i].path) is being loaded by another loader: put off to the end of the run")
                    result = nil
                    readable = false
                    break
                } catch where (destination as? any SharedLoading)?.isRetryable(error) == true && attempts < Self.retries {
                    // Lost a deadlock (or a serialization conflict) to another loader: nothing
                    // of the file stayed; after a pause, it is written again from the start.
                    attempts += 1
                    channel.close()
                    log("\(archives[i].path) is written again (attempt \(attempts + 1)): \(error)")
                    usleep(UInt32.random(in: 20_000...100_000) * UInt32(attempts))
                    channel = again.start(k)
                }
            }
            guard let result else { continue }
            summary.files.append(result)
            guard readable else { continue }
            context.faults.killPoint?.afterCommit(k + 1, stop: context.stop)
            context.progress?.fileDone()
            log("\(result.status.rawValue) \(archives[i].path): \(result.counts.lines) messages, \(result.counts.loaded) loaded")
        }
        return true
    }

    /// How many times a file is written again after losing a deadlock to another loader.
    static let retries = 8

    /// A file that could not be read: its rows are rolled back, and it is recorded as failed.
    private struct Unreadable: Error { var reason: String; var sha256: String }

    /// Another loader committed the same bytes since this run looked.
    private struct LoadedElsewhere: Error { var path: String }

    /// Another loader is writing the same bytes now.
    private struct Busy: Error {}

    /// Writes one file in one transaction, from the chunks its worker hands on; `readable`
    /// is false for a file that could not be read, recorded as failed in a transaction of its
    /// own; no result for a file another loader loaded meanwhile (then a skip).
    private func write(_ archive: Archive, number: Int, scan: FileScan, from channel: Channel<Chunk>, grouped: Bool, wait: Bool,
                       summary: inout RunSummary, log: (String) -> Void) throws -> (result: FileResult?, readable: Bool) {
        let times = context.times
        var bodyDone: UInt64 = 0
        var problems: [Problem] = []
        var problemCount: Int64 = 0
        var inflated: Int64 = 0
        do {
            let result = try stages.file { () throws -> FileResult in
                // One loader at a time (SQLite's lock) loads every archive it chose.
                switch try (destination as? any SharedLoading)?.claimArchive(sha256: scan.sha256, wait: wait) ?? .mine {
                case .mine: break
                case .busy: throw Busy()
                case .loadedElsewhere(let earlier): throw LoadedElsewhere(path: earlier)
                }
                var counts = Counts()
                var end: FileEnd?
                var following: Chunk?
                while end == nil {
                    let chunk = following ?? channel.receive()
                    following = nil
                    let started = monotonicNanoseconds()
                    defer { times.add(write: monotonicNanoseconds() - started) }
                    // The next chunk, if it is here: its ids are claimed while this one's rows are built.
                    if chunk.end == nil { following = context.faults.awaitNextChunk ? channel.receive() : channel.tryReceive() }
                    for work in chunk.items {
                        counts.lines += 1
                        switch work {
                        case .message: break
                        case .duplicateInRun: counts.duplicates += 1
                        case .filtered: counts.filtered += 1
                        case .suppressed: counts.suppressed += 1
                        case .reject(let line, let item, let kind, let reason, let raw):
                            counts.rejected += 1
                            try destination.bookkeeping.reject(file: archive.path, line: line, item: item, kind: kind, reason: reason, raw: raw)
                            problemCount += 1
                            if summary.problems.count + problems.count < context.options.problemsShown {
                                problems.append(Problem(file: archive.path, line: line, reason: reason))
                            }
                        }
                    }
                    for written in try stages.load(chunk.records, needs: chunk.needs, next: following?.records) {
                        if written { counts.loaded += 1 } else { counts.duplicates += 1 }
                    }
                    if counts.loaded > 0 {
                        context.faults.killPoint?.fire(.write(number))
                        context.faults.duringFile?(number)
                    }
                    context.progress?.add(bytes: chunk.archiveBytes, messages: Int64(chunk.items.count))
                    end = chunk.end
                }
                channel.finish()
                let fileEnd = end!
                if let fatal = fileEnd.fatal { throw fatal }
                // An S3 object that pass 1 could not read has no hash yet: this read gives it.
                let sha256 = scan.sha256.isEmpty && archive.source == .s3Object ? fileEnd.sha256 ?? "" : scan.sha256
                if let failure = fileEnd.readError ?? (fileEnd.sha256 != sha256 ? "the file changed while it was being loaded; run again" : nil) {
                    throw Unreadable(reason: failure, sha256: fileEnd.sha256 ?? sha256)
                }
                counts.discarded = destination.bookkeeping.discardsInFile
                var status = FileResult.Status.loaded
                if fileEnd.streamError != nil {
                    status = counts.loaded + counts.duplicates + counts.filtered + counts.suppressed > 0 ? .partial : .failed
                }
                try destination.bookkeeping.record(FileRecord(archive: archive, sha256: sha256, physicalLines: fileEnd.physicalLines,
                                                  status: status, counts: counts, error: fileEnd.streamError))
                inflated = fileEnd.inflatedBytes
                bodyDone = monotonicNanoseconds()
                return FileResult(path: archive.path, status: status, counts: counts, error: fileEnd.streamError)
            }
            // The profiles derived, the touched ids recorded and the commit.
            times.add(write: monotonicNanoseconds() - bodyDone)
            summary.totals += result.counts
            summary.inflatedBytes += inflated
            summary.problems += problems
            summary.problemCount += problemCount
            return (result, true)
        } catch let elsewhere as LoadedElsewhere {
            channel.close()
            summary.skippedAlreadyLoaded.append((archive.path, elsewhere.path))
            log("skipped \(archive.path): another loader loaded the same bytes meanwhile (as \(elsewhere.path))")
            return (nil, false)
        } catch let unreadable as Unreadable {
            if grouped { throw Regroup() }
            // Its own transaction: the rows read before the failure are gone with the file's.
            try stages.file { try destination.bookkeeping.record(.failed(archive, sha256: unreadable.sha256, error: unreadable.reason)) }
            return (FileResult(path: archive.path, status: .failed, counts: Counts(), error: unreadable.reason), false)
        }
    }

    /// Pass 2 for an archive pass 1 spilled: its chunks, less the copies that lost to another
    /// copy of their id, through `channel`; the last one carries the file's end.
    static func feed(spill path: String, index: Int, scan: FileScan, winners: [MessageKey: Position], pastLimit: Set<Int32>,
                     channel: Channel<Chunk>, stop: StopFlag) {
        var end = scan.end
        var pending: Chunk?
        do {
            var reader = try SpillReader(path: path, file: Int32(index))
            defer { reader.close() }
            while var chunk = try reader.next() {
                if stop.isSet { return }
                chunk.prepare(winners: winners, pastLimit: pastLimit)
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
    static func produce(_ archive: Archive, index: Int, winners: [MessageKey: Position], pastLimit: Set<Int32>, context: RunContext, distrust: Distrust?,
                        channel: Channel<Chunk>, stop: StopFlag) {
        let (reader, times, filter) = (context.reader, context.times, context.options.filter)
        var processor = LineProcessor(loadTime: context.loadTime, names: context.names, privacy: context.options.privacy)
        defer { times.add(parse: processor.nanoseconds) }
        var chunk = Chunk()
        chunk.items.reserveCapacity(1024)
        var end = FileEnd()
        struct Stopped: Error {}
        do {
            var pendingBytes: Int64 = 0
            let outcome = try reader.read(path: archive.path, format: archive.format, source: archive.source,
                                          onBlock: { pendingBytes += Int64($0) }, distrust: distrust) { line, bytes, problem in
                if stop.isSet { throw Stopped() }
                for parsed in processor.process(bytes, problem: problem) {
                    _ = chunk.add(parsed, line: line, bytes: bytes, file: index, processor: processor, filter: filter)
                }
                if chunk.items.count >= 1024 {
                    chunk.archiveBytes = pendingBytes
                    pendingBytes = 0
                    chunk.prepare(winners: winners, pastLimit: pastLimit)
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
        chunk.prepare(winners: winners, pastLimit: pastLimit)
        chunk.end = end
        if channel.send(chunk) { channel.waitUntilFinished() }
    }
}

/// Pass 2's work for the writer, in the file's order.
enum Work: Sendable {
    /// The next record of the chunk's `records`.
    case message
    case duplicateInRun
    case filtered
    case suppressed
    case reject(line: Int, item: Int?, kind: RejectKind, reason: String, raw: RejectRaw)
}

struct Chunk: Sendable {
    var items: [Work] = []
    /// Archive bytes read for this chunk (progress follows the writer, not the read-ahead).
    var archiveBytes: Int64 = 0
    var records = MessageRecords()
    /// Each record's id key and position, in the records' order (for the winner check).
    var copies: [Copy] = []
    /// What the records need of the schema (set once the losers are dropped).
    var needs: SchemaNeeds?
    var end: FileEnd?
}

extension Chunk {
    /// Readies a chunk for the writer, off its thread: the copies that lost within the run
    /// dropped, the track calls of events past the event table limit marked, and what the rest
    /// need of the schema found.
    mutating func prepare(winners: [MessageKey: Position], pastLimit: Set<Int32>) {
        dropLosers(winners: winners)
        records.markPastLimit(pastLimit)
        needs = records.bytes.withUnsafeBytes { SchemaNeeds.of(RecordCursor.headers(of: records.count, in: $0), in: $0) }
    }

    /// Adds what one line yielded: a reject (with the line's bytes as `_rejects` keeps them), a
    /// filtered message, or a message with its copy's key and position. Returns the message
    /// added, for the caller's plan and id collection.
    mutating func add(_ parsed: Parsed, line: Int, bytes: UnsafeBufferPointer<UInt8>, file: Int,
                      processor: LineProcessor, filter: MessageFilter) -> (message: Message, copy: Copy)? {
        switch parsed {
        case .reject(let kind, let reason, let item):
            if filter.suppression.mentioned(in: bytes) {
                items.append(.suppressed)
                return nil
            }
            items.append(.reject(line: line, item: item, kind: kind, reason: reason, raw: processor.rawForReject(bytes)))
            return nil
        case .message(let message, let item):
            switch filter.verdict(message) {
            case .keep: break
            case .filtered:
                items.append(.filtered)
                return nil
            case .suppressed:
                items.append(.suppressed)
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
