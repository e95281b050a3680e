import ArgumentParser
import SegmentLoader
import SQLiteEngine

/// `--db`, for the commands that work on an existing warehouse (status, rejects, models,
/// datasette); `load` says what it does with a missing one.
struct WarehouseOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The warehouse: an SQLite file, or a PostgreSQL URL (postgresql://user@host:port/database).", valueName: "path|url"))
    var db: String

    @Option(name: .long, help: ArgumentHelp("PostgreSQL: the warehouse's schema (default segment).", valueName: "name"))
    var schema: String?

    func validate() throws {
        if schema != nil && !WarehouseLocation.isPostgres(db) { throw ValidationError("--schema is for a PostgreSQL warehouse (--db postgresql://...); an SQLite file has no schemas") }
    }
}

/// `--jobs`, for the commands that load.
struct JobsOption: ParsableArguments {
    @Option(name: .long, help: "Archives read, parsed and normalized in parallel (default: the number of cores; run: run.jobs).")
    var jobs: Int?

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }
}

/// `--journal wal|rollback`, parsed into the mode (the parser lists the modes when it is neither).
extension JournalMode: ExpressibleByArgument {}
