import SegmentCore

/// How a run ended: one value, mapped once to the word `_loads` and the report record, to the
/// summary's verb, and to the exit status.
public enum RunOutcome: Sendable, Equatable {
    case running
    /// Every file loaded.
    case loaded
    /// Some file loaded in part or not at all; the others loaded.
    case partial
    /// Stopped by a signal between files; the next run loads the rest.
    case interrupted
    /// Another program held the warehouse's write lock past the busy timeout.
    case lockedOut(String)
    /// The warehouse or the run's files beside it could not be written (disk full, read-only).
    case storageFailure(String)
    /// Stopped by the warehouse's server or its connection, with the exit status it stands for
    /// (PostgreSQL: 75 the connection was lost or the server is shutting down, 77 permission
    /// denied, 66 no such database, 69 no server answers).
    case unavailable(String, status: Int32)
    /// Stopped on any other error.
    case failed(String)

    /// Decides how a run ended from what stopped it (if anything), whether a signal did, and
    /// whether every file loaded.
    package static func of(error: RunOutcome?, interrupted: Bool, filesNotLoaded: Int) -> RunOutcome {
        if let error { return error }
        if interrupted { return .interrupted }
        return filesNotLoaded > 0 ? .partial : .loaded
    }

    /// The word in `_loads.status` and the report.
    public var status: String {
        switch self {
        case .running: return "running"
        case .loaded: return "succeeded"
        case .partial: return "partial"
        case .interrupted: return "interrupted"
        case .lockedOut, .storageFailure, .unavailable, .failed: return "failed"
        }
    }

    /// What stopped the run, for people.
    public var error: String? {
        switch self {
        case .lockedOut(let why), .storageFailure(let why), .unavailable(let why, _), .failed(let why): return why
        default: return nil
        }
    }

    /// The summary's verb: "loaded 4 files", "interrupted after 2 files", ...
    package var verb: String {
        switch self {
        case .lockedOut, .storageFailure, .unavailable, .failed: return "stopped while loading"
        case .interrupted: return "interrupted after"
        default: return "loaded"
        }
    }

    public func exitStatus(signal: Int32) -> Int32 {
        switch self {
        case .running, .loaded: return ExitStatus.ok
        case .partial: return ExitStatus.dataProblem
        case .interrupted: return ExitStatus.interrupted(by: signal)
        case .lockedOut: return ExitStatus.locked
        case .storageFailure: return ExitStatus.storage
        case .unavailable(_, let status): return status
        case .failed: return ExitStatus.failure
        }
    }
}
