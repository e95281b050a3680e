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
    /// The dialect multiplies it by its `roundTripsPerPerson` (see `rebuildsInFull`).
    public var wideBuildFactor = 4

    /// Whether `pending` touched ids (rows of `_model_pending`) against `sessions` are better
    /// rebuilt in full, where recomputing one person costs `roundTrips` times their share of a
    /// full rebuild (`SQLDialect.roundTripsPerPerson`).
    package func rebuildsInFull(pending: Int64, sessions: Int64, roundTrips: Int) -> Bool {
        guard wideBuildFactor > 0 else { return false }
        let factor = Int64(wideBuildFactor) * Int64(roundTrips)
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
