import Foundation
import SegmentCore
import SegmentStages

/// Knobs of the built-in models (a pipeline's `models` key, `--no-models`).
public struct ModelOptions: Sendable, Equatable {
    /// Build the models at the end of every run and load.
    public var enabled = true
    /// A gap of more than this many minutes between two activities of a person starts a new
    /// session; nil keeps what the warehouse's last build used (30 the first time). A change
    /// rebuilds the models in full.
    public var sessionTimeoutMinutes: Int?

    public static let defaultSessionTimeoutMinutes = 30

    /// A build whose touched ids number more than the sessions divided by this rebuilds in
    /// full (same result, cheaper than person by person); 0 always updates person by person.
    /// PostgreSQL multiplies it by `postgresRoundTrips` (see `rebuildsInFull`).
    public var wideBuildFactor = 4

    /// Person by person, a build makes a few statements per person: in SQLite calls into the
    /// same process, in PostgreSQL round trips to the server, which cost that much more
    /// against a full rebuild's few large statements (on the benchmark's warehouse the people
    /// of one of its eight files took over two minutes person by person; a full rebuild of
    /// everyone, 415,611 sessions, about 18 s).
    public static let postgresRoundTrips = 10

    /// Whether `pending` touched ids (rows of `_model_pending`) against `sessions` are better
    /// rebuilt in full.
    package func rebuildsInFull(pending: Int64, sessions: Int64, dialect: SQLDialect) -> Bool {
        guard wideBuildFactor > 0 else { return false }
        let factor = Int64(wideBuildFactor) * (dialect == .postgres ? Int64(Self.postgresRoundTrips) : 1)
        return pending * factor > sessions
    }

    public init(enabled: Bool = true, sessionTimeoutMinutes: Int? = nil) {
        self.enabled = enabled
        self.sessionTimeoutMinutes = sessionTimeoutMinutes
    }
}

/// What one build of the models did (`_models` keeps a row per build).
public struct ModelBuild: Sendable, Equatable, Codable {
    /// `full` (everything from the call tables), `incremental` (what the loads since the last
    /// build touched) or `none` (nothing new).
    public var mode: String
    /// People (blended user ids) whose page views and sessions were recomputed.
    public var people: Int
    /// Row counts after the build.
    public var identities: Int64
    public var pageViews: Int64
    public var sessions: Int64
    public var seconds: Double
    public var sessionTimeoutMinutes: Int = ModelOptions.defaultSessionTimeoutMinutes
}

extension ModelBuild {
    /// One line for a person: what was rebuilt and how many rows the models hold.
    public var summaryLine: String {
        let rows = "identities \(identities), page_views \(pageViews), sessions \(sessions)"
        switch mode {
        case "none": return "up to date (nothing new touched them): " + rows
        case "full": return "rebuilt in full (\(people) \(people == 1 ? "person" : "people")) in \(String(format: "%.2f", seconds)) s: " + rows
        default: return "updated for \(people) \(people == 1 ? "person" : "people") in \(String(format: "%.2f", seconds)) s: " + rows
        }
    }
}
