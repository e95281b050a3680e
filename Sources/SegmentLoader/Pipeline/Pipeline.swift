import Foundation
import SegmentCore
import SegmentStages
import SegmentWarehouse
import SQLiteEngine

/// One load described in a pipeline file (`pipelines/*.yml`; every key is documented in
/// `pipelines/README.md`). Relative paths in the file are relative to the file's folder, so
/// the pipeline means the same thing from cron as from a shell.
public struct Pipeline: Sendable {
    public static let supportedVersion = 1

    public var version: Int = Pipeline.supportedVersion
    public var name: String
    /// The file it came from (absolute), or nil when built in code.
    public var file: String?
    public var sources: [Source]
    public var filters = MessageFilter()
    public var privacy = Privacy()
    public var warehouse: WarehouseSettings
    public var run = RunSettings()
    /// The built-in models (`models:`; on by default).
    public var models = ModelOptions()
    /// The dashboard's funnel steps (`dashboards.funnel`), for `segment-loader datasette`.
    public var dashboardFunnel: [String] = []

    public init(name: String, sources: [Source], warehouse: WarehouseSettings) {
        self.name = name
        self.sources = sources
        self.warehouse = warehouse
    }

    /// Where archives come from: a file, a folder (searched recursively) or a glob, optionally
    /// narrowed to S3-layout source ids and a range of received days.
    public struct Source: Sendable {
        public var path: String
        public var glob: Glob?
        public var sourceIds: [Glob] = []
        public var since: DayBound?
        public var until: DayBound?
        /// An S3-compatible store's URL for an `s3://` source (else AWS_ENDPOINT_URL or AWS).
        public var endpoint: String?

        public init(path: String) {
            self.path = path
        }

        public var selectsDays: Bool { since != nil || until != nil }
    }

    public struct WarehouseSettings: Sendable {
        /// An SQLite file's path, or a PostgreSQL URL (`url:` in the pipeline file).
        public var path: String
        /// PostgreSQL: the schema the tables go in (nil: `PostgresLocation.defaultSchema`).
        public var schema: String?
        public var columnLimit = 1000
        public var eventTableLimit = EventTableLimit.defaultLimit
        public var maxLineBytes = 1 << 20
        /// Create the query indexes (received_at, user_id, anonymous_id) after each load.
        public var indexes = true
        /// `rollback` for backfills into a warehouse nobody reads meanwhile (see `JournalMode`).
        public var journal = JournalMode.wal
        /// Seconds to wait for another program's write lock before exiting 75.
        public var busyTimeout = Warehouse.defaultBusyTimeout

        public init(path: String) {
            self.path = path
        }
    }

    public struct RunSettings: Sendable {
        public var jobs: Int?
        public var report: String?
        public var metrics: String?
        /// Rejected lines make the run fail (exit 65) instead of being only counted.
        public var strict = false

        public init() {}
    }
}

/// A day given in a pipeline: a date, or relative to the day the pipeline runs (UTC, as
/// Segment's S3 day folders are).
public enum DayBound: Sendable, Equatable, CustomStringConvertible {
    case date(String)
    /// `today` is 0, `yesterday` 1, `N days ago` N.
    case daysAgo(Int)

    /// `YYYY-MM-DD`, `today`, `yesterday`, `N days ago`, or (for `since`) `last N days`: today
    /// and the N-1 days before it.
    public static func parse(_ text: String, allowLast: Bool) -> DayBound? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "today" { return .daysAgo(0) }
        if t == "yesterday" { return .daysAgo(1) }
        let words = t.split(separator: " ")
        if words.count == 3, words[1] == "days" || words[1] == "day", words[2] == "ago", let n = Int(words[0]), n >= 0 {
            return .daysAgo(n)
        }
        if allowLast, words.count == 3, words[0] == "last", words[2] == "days" || words[2] == "day", let n = Int(words[1]), n >= 1 {
            return .daysAgo(n - 1)
        }
        if Timestamp.isCalendarDay(t) { return .date(t) }
        return nil
    }

    /// The `YYYY-MM-DD` this bound names when the pipeline runs at `now`.
    public func day(now: Date) -> String {
        switch self {
        case .date(let day):
            return day
        case .daysAgo(let n):
            let midnight = Int64((now.timeIntervalSince1970 / 86_400).rounded(.down)) * 86_400_000
            return Timestamp.day(fromEpochMilliseconds: midnight - Int64(n) * 86_400_000)
        }
    }

    public var description: String {
        switch self {
        case .date(let day): return day
        case .daysAgo(0): return "today"
        case .daysAgo(1): return "yesterday"
        case .daysAgo(let n): return "\(n) days ago"
        }
    }
}
