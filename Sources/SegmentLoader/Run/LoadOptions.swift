import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SegmentS3
import SegmentStages
import SegmentWarehouse
import SQLiteEngine

/// How a load runs. What to load comes from the paths; these are the knobs.
public struct LoadOptions: Sendable {
    /// An SQLite file's path, or a PostgreSQL URL (`postgresql://` or `postgres://`).
    public var database: String
    /// PostgreSQL: the schema the warehouse's tables go in (nil: `PostgresLocation.defaultSchema`).
    public var schema: String?
    /// Workers that read, inflate, parse and normalize archives in parallel.
    public var jobs: Int
    /// Columns per table for data keys; later keys go to the row's `_extra` JSON.
    public var columnLimit: Int = 1000
    /// Event tables a warehouse may hold; a later event's calls stay in `tracks` (see
    /// `EventTableLimit`).
    public var eventTableLimit: Int = EventTableLimit.defaultLimit
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
    /// The gzip-bomb guard (see `ArchiveReader.maxInflateRatio`): not a setting users have; the
    /// fuzz harness lowers both so that no input it makes can cost more than its time limit.
    public var maxInflateRatio: Int64 = ArchiveReader().maxInflateRatio
    public var bombFloor: Int64 = ArchiveReader().bombFloor
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
    public var pipeline: String = "load"
    /// How many rejected lines the summary lists (all go to `_rejects`).
    public var problemsShown: Int = 20
    /// Told what the run does that a person should know of even without `--verbose` (an
    /// upgrade of the warehouse's format).
    public var announce: @Sendable (String) -> Void = { _ in }
    /// The load's clock; tests fix it.
    public var now: @Sendable () -> Date = { Date() }
    /// Reads the archives whose paths are `s3://` URLs (set when a run has such sources).
    public var objects: S3Client?

    public init(database: String, jobs: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.database = database
        self.jobs = max(1, jobs)
    }
}

/// Faults a test injects into a run, apart from the options a user sets: none in a real run.
/// The command line sets them only from its hidden `--test-*` flags; the product reads no
/// environment variable for them.
public struct TestFaults: Sendable {
    /// The process kills itself (or signals itself) at this point, as an outside kill would.
    public var killPoint: KillPoint?
    /// The warehouse cannot grow past this many pages, as on a full disk.
    public var maxPageCount: Int?
    /// The run's temporary files may hold at most this many bytes, as on a disk that fills up.
    public var temporaryByteLimit: Int64?
    /// The free space the temporary-space check sees.
    public var temporarySpaceAvailable: Int64?
    /// After pass 1, one byte in the middle of each spill file is changed, as a failing disk
    /// or another program would.
    public var damageSpills = false
    /// Runs after pass 1, before pass 2: a test changes an archive there, as another program
    /// would while the run is on it.
    public var betweenPasses: (@Sendable () -> Void)?
    /// The writer waits for a file's next chunk instead of taking it only when it is there, so
    /// that every chunk but a file's last has the next one's ids claimed ahead (a test of that
    /// path cannot depend on how fast this machine parses).
    public var awaitNextChunk = false
    /// Runs on the writer's thread after each chunk of file N (numbered from 1) that loaded
    /// rows, before the file commits: a test does there what another loader would meanwhile.
    public var duringFile: (@Sendable (_ number: Int) -> Void)?

    public init() {}

    public static let none = TestFaults()
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
    /// A step of `forget`: `forget:removed` (rows deleted, not committed), `forget:committed`,
    /// `forget:archive:N` (archive N replaced, `_files` not yet told), `forget:scrub` (before
    /// the file is rewritten).
    case forget(String)

    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        switch (parts.first, parts.count) {
        case ("scan"?, 1): self = .scan
        case ("write"?, 2): guard let n = Int(parts[1]), n >= 1 else { return nil }; self = .write(n)
        case ("commit"?, 2): guard let n = Int(parts[1]), n >= 1 else { return nil }; self = .commit(n)
        case ("interrupt"?, 2): guard let n = Int(parts[1]), n >= 1 else { return nil }; self = .interrupt(n)
        case ("terminate"?, 2): guard let n = Int(parts[1]), n >= 1 else { return nil }; self = .terminate(n)
        case ("forget"?, 2...3): self = .forget(parts.dropFirst().joined(separator: ":"))
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

extension ArchiveReader {
    /// The reader a load uses: its line limit and gzip-bomb guard.
    init(_ options: LoadOptions) {
        self.init(maxLineBytes: options.maxLineBytes)
        (maxInflateRatio, bombFloor) = (options.maxInflateRatio, options.bombFloor)
        objects = options.objects
    }
}
