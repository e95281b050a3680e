/// Exit statuses (sysexits where one fits), as README and `--help` document them.
public enum ExitStatus {
    public static let ok: Int32 = 0
    public static let failure: Int32 = 1
    public static let usage: Int32 = 64
    /// A file partial or failed (or, with --strict, a rejected line).
    public static let dataProblem: Int32 = 65
    /// The warehouse, or the run's own files beside it, cannot be written.
    public static let storage: Int32 = 74
    /// Another program holds the warehouse's lock.
    public static let locked: Int32 = 75
    /// The warehouse's server or the archives' store does not exist: no such database, bucket
    /// or prefix (EX_NOINPUT).
    public static let noInput: Int32 = 66
    /// No server or store answers (EX_UNAVAILABLE).
    public static let unavailable: Int32 = 69
    /// A password, credentials or a permission was refused (EX_NOPERM).
    public static let noPermission: Int32 = 77
    /// 128 + the signal, as shells report a process stopped by it.
    public static func interrupted(by signal: Int32) -> Int32 { 128 + signal }
}

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
    static func of(error: RunOutcome?, interrupted: Bool, filesNotLoaded: Int) -> RunOutcome {
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
    var verb: String {
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
