import Foundation
import SegmentS3
import SegmentStages
import SegmentWarehouse
import SQLiteEngine
import SegmentCore

/// What a run would do with each selected archive, worked out without changing anything: the
/// warehouse (if it exists) is opened read-only and no lock is taken.
public struct DryRun: Sendable {
    public enum Status: Sendable, Equatable {
        case new
        /// Loaded before with the same SHA-256 (possibly under another path): skipped.
        case alreadyLoaded(as: String)
        /// This path was loaded before with other content: loaded again, deduplicated.
        case changed
        /// A previous attempt failed: tried again.
        case retry
    }

    public struct File: Sendable {
        public var archive: Archive
        public var status: Status
    }

    public var files: [File] = []
    public var notArchives: [SkippedFile] = []
    public var excluded: [SkippedFile] = []
    public var ranges: [String] = []
    public var warehouseExists = false

    public static func plan(_ selection: Selection, database: String, schema: String? = nil) throws -> DryRun {
        var plan = DryRun()
        plan.notArchives = selection.found.skipped
        plan.excluded = selection.excluded
        plan.ranges = selection.ranges
        var loaded: [String: String] = [:]
        var pathStatus: [String: String] = [:]
        var objects: [String: LoadedFile] = [:]
        // What a run would refuse, a dry run refuses, in the same words.
        if try WarehouseLocation(database, schema: schema).check() {
            plan.warehouseExists = true
            let db: any SQLSession
            var isWarehouse = true
            if WarehouseLocation.isPostgres(database) {
                db = try WarehouseLocation(database, schema: schema).reading()
            } else {
                let lite = try Database(path: database, readOnly: true)
                isWarehouse = Int32(truncatingIfNeeded: try lite.scalar("PRAGMA application_id")?.integer ?? 0) == Warehouse.applicationID
                db = lite
            }
            if isWarehouse {
                for row in try db.rows("SELECT sha256, path, status FROM _files ORDER BY id") {
                    guard case .text(let sha) = row[0], case .text(let path) = row[1], case .text(let status) = row[2] else { continue }
                    if status != "failed", loaded[sha] == nil { loaded[sha] = path }
                    pathStatus[path] = status
                }
                objects = try LoadRecords.loadedPathsAndSizes(db)
            }
        }
        var seenHashes: [String: String] = [:]
        for archive in selection.found.archives {
            let earlier: String?
            if archive.source == .s3Object {
                // An object is not read: a run skips it unread when its key, size and ETag were
                // loaded, and reads it otherwise.
                earlier = objects[archive.path]?.isSameObject(as: archive) == true ? archive.path : nil
            } else {
                let (sha, _) = try ArchiveReader.sha256(path: archive.path)
                earlier = loaded[sha] ?? seenHashes[sha]
                if seenHashes[sha] == nil { seenHashes[sha] = archive.path }
            }
            let status: Status
            if let earlier {
                status = .alreadyLoaded(as: earlier)
            } else if pathStatus[archive.path] == "failed" {
                status = .retry
            } else if pathStatus[archive.path] != nil {
                status = .changed
            } else {
                status = .new
            }
            plan.files.append(File(archive: archive, status: status))
        }
        return plan
    }

    public func render(database: String) -> String {
        var out: [String] = []
        let toLoad = files.filter { if case .alreadyLoaded = $0.status { return false } else { return true } }
        let bytes = toLoad.reduce(Int64(0)) { $0 + $1.archive.size }
        // Paths as the run prints them: relative to the working directory when below it.
        let shown = PathDisplay()
        out.append("dry run: nothing is changed. Warehouse \(shown(database))\(warehouseExists ? "" : " (does not exist yet; a run creates it)")")
        for range in ranges { out.append("  selection: \(range)") }
        for file in files {
            let a = file.archive
            var where_ = ""
            if let source = a.sourceId { where_ += " source \(source)" }
            if let day = a.day { where_ += " day \(day)" }
            let what: String
            switch file.status {
            case .new: what = "load"
            case .changed: what = "load (changed since it was loaded; duplicates are skipped)"
            case .retry: what = "load (failed before)"
            case .alreadyLoaded(let path): what = path == a.path ? "skip (already loaded)" : "skip (same content as \(shown(path)))"
            }
            out.append("  \(what): \(shown(a.path)) (\(formatBytes(a.size))\(where_))")
        }
        for skip in notArchives { out.append("  skip (not an archive: \(skip.reason)): \(shown(skip.path))") }
        let days = Set(toLoad.compactMap(\.archive.day)).sorted()
        var total = "would load \(toLoad.count) of \(files.count) archive\(files.count == 1 ? "" : "s"), \(formatBytes(bytes))"
        if let first = days.first, let last = days.last { total += ", days \(first)..\(last) (\(days.count))" }
        if !excluded.isEmpty {
            total += "; \(excluded.count) archive\(excluded.count == 1 ? "" : "s") outside the selection"
            var reasons: [String: Int] = [:]
            for file in excluded {
                let key = file.reason.hasPrefix("day ") ? (file.reason.contains("before") ? "before since" : "after until") : file.reason
                reasons[key, default: 0] += 1
            }
            out.append(total)
            for (reason, count) in reasons.sorted(by: { $0.key < $1.key }) { out.append("  outside the selection: \(count) (\(reason))") }
            return out.joined(separator: "\n")
        }
        out.append(total)
        return out.joined(separator: "\n")
    }
}

func formatBytes(_ bytes: Int64) -> String {
    if bytes < 1_000 { return "\(bytes) B" }
    if bytes < 1_000_000 { return String(format: "%.1f kB", Double(bytes) / 1e3) }
    if bytes < 1_000_000_000 { return String(format: "%.1f MB", Double(bytes) / 1e6) }
    return String(format: "%.2f GB", Double(bytes) / 1e9)
}
