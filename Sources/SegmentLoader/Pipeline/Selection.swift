import Foundation
import SegmentS3
import SegmentStages
import SegmentWarehouse

/// What a pipeline loads when it runs at a given time: the archives of its sources, narrowed
/// to the source ids and days it asks for.
public struct Selection: Sendable {
    public var found = Discovery.Result()
    /// Archives under the sources that the pipeline's source ids or day range leave out.
    public var excluded: [SkippedFile] = []
    /// The day range of each source as it resolved at run time (`since..until`), for people.
    public var ranges: [String] = []
}

extension Pipeline {
    /// What `run` would refuse before loading anything, in its words: a source path (or the
    /// folder a glob starts in) that does not exist, a warehouse folder that does not exist or
    /// cannot be written, a database that is not a warehouse of this format or older.
    /// `absent` holds the places named that are not on this machine at all (a source folder,
    /// the warehouse's folder): a pipeline written for another machine, such as the shipped
    /// examples on a fresh clone. `others` holds the rest, each one sentence.
    public func refusals() -> (absent: [String], others: [String]) {
        var absent: [String] = []
        var others: [String] = []
        for source in sources where !S3Location.isURL(source.path) {
            let path = source.glob.map { $0.literalPrefix.isEmpty ? "/" : $0.literalPrefix } ?? source.path
            if !FileManager.default.fileExists(atPath: path) { absent.append(path) }
        }
        if !WarehouseLocation.isPostgres(warehouse.path) && WarehouseURL.typo(warehouse.path) == nil {
            let folder = URL(fileURLWithPath: warehouse.path).deletingLastPathComponent().path
            if !FileManager.default.fileExists(atPath: folder) {
                absent.append(folder + "/")
                return (absent, others)
            }
        }
        do { _ = try WarehouseLocation(warehouse.path, schema: warehouse.schema).check() } catch { others.append("\(error)") }
        return (absent, others)
    }

    /// Finds the archives of every source; a path that does not exist is an error, a glob or
    /// a folder with nothing in range is not (a nightly run on a quiet day loads nothing).
    /// Whether a source is in S3 (the run then needs `objectStore()`).
    public var readsS3: Bool { sources.contains { S3Location.isURL($0.path) } }

    /// The client that lists and reads the pipeline's s3:// sources (one endpoint for all of
    /// them, which the pipeline file checks), with the credentials the AWS tools would use.
    public func objectStore() throws -> S3Client {
        try S3Client.fromEnvironment(endpoint: sources.lazy.compactMap(\.endpoint).first)
    }

    public func select(now: Date = Date(), objects: S3Client? = nil) throws -> Selection {
        var selection = Selection()
        var seen = Set<String>()
        for source in sources {
            let since = source.since?.day(now: now)
            let until = source.until?.day(now: now)
            // An S3 source with a day range never lists the day folders outside it.
            let keepDay: ((String) -> Bool)? = source.selectsDays
                ? { day in (since.map { day >= $0 } ?? true) && (until.map { day <= $0 } ?? true) } : nil
            let found = try source.glob.map { try Discovery.find(glob: $0) } ?? Discovery.find([source.path], objects: objects, keepDay: keepDay)
            if source.selectsDays || !source.sourceIds.isEmpty {
                var parts: [String] = []
                if !source.sourceIds.isEmpty { parts.append("source ids \(source.sourceIds.map(\.pattern).joined(separator: ", "))") }
                if source.selectsDays { parts.append("days \(since ?? "any")..\(until ?? "any")") }
                selection.ranges.append("\(source.path): " + parts.joined(separator: ", "))
            }
            func reason(path: String, sourceId: String?, day: String?) -> String? {
                if !source.sourceIds.isEmpty {
                    guard let sourceId else { return "not in Segment's S3 layout, so it has no source id for source_ids" }
                    if !source.sourceIds.contains(where: { $0.matches(sourceId) }) { return "source id \(sourceId) is not in source_ids" }
                }
                if source.selectsDays {
                    guard let day else { return "no S3 day folder in its path, so since/until cannot place it" }
                    if let since, day < since { return "day \(day) is before since (\(since))" }
                    if let until, day > until { return "day \(day) is after until (\(until))" }
                }
                return nil
            }
            for archive in found.archives where seen.insert(archive.path).inserted {
                if let why = reason(path: archive.path, sourceId: archive.sourceId, day: archive.day) {
                    selection.excluded.append(SkippedFile(path: archive.path, reason: why))
                } else {
                    selection.found.archives.append(archive)
                }
            }
            for file in found.skipped where seen.insert(file.path).inserted {
                let layout = Discovery.s3Layout(file.path)
                if reason(path: file.path, sourceId: layout?.source, day: layout?.day) == nil {
                    selection.found.skipped.append(file)
                }
            }
        }
        selection.found.archives.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        return selection
    }

    /// The load options this pipeline asks for (flags may still change the knobs).
    public func loadOptions() -> LoadOptions {
        var options = LoadOptions(database: warehouse.path, jobs: run.jobs ?? ProcessInfo.processInfo.activeProcessorCount)
        options.pipeline = name
        options.schema = warehouse.schema
        options.columnLimit = warehouse.columnLimit
        options.eventTableLimit = warehouse.eventTableLimit
        options.maxLineBytes = warehouse.maxLineBytes
        options.createIndexes = warehouse.indexes
        options.journal = warehouse.journal
        options.busyTimeout = warehouse.busyTimeout
        options.filter = filters
        options.privacy = privacy
        options.models = models
        return options
    }
}
