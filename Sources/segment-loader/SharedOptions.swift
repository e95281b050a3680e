import ArgumentParser
import SegmentLoader
import SQLiteEngine
import YAMLFiles

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

/// `--db` (with `--schema`) or `--pipeline`, for the commands that work on a pipeline's
/// warehouse with its rules (`rejects retry`, `forget`).
struct PipelineOrWarehouse: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The warehouse: an SQLite file or a PostgreSQL URL (or give --pipeline).", valueName: "path|url"))
    var db: String?

    @Option(name: .long, help: ArgumentHelp("PostgreSQL: the warehouse's schema.", valueName: "name"))
    var schema: String?

    @Option(name: .long, help: ArgumentHelp("The pipeline whose warehouse and rules (filters, privacy, S3 endpoint) apply.", valueName: "file"))
    var pipeline: String?

    func validate() throws {
        if db == nil && pipeline == nil { throw ValidationError("give --db or --pipeline") }
        if schema != nil, let db, !WarehouseLocation.isPostgres(db) { throw ValidationError("--schema is for a PostgreSQL warehouse (--db postgresql://...); an SQLite file has no schemas") }
    }

    /// The options the pipeline gives (its warehouse unless --db says another), or those of
    /// --db alone; a pipeline that cannot be read, or whose hashing key is missing, exits 64.
    func loadOptions() throws -> (options: LoadOptions, pipeline: Pipeline?) {
        var options: LoadOptions
        var loaded: Pipeline?
        if let pipeline {
            do { loaded = try PipelineFile.load(path: pipeline) } catch {
                printError(error.refusal)
                throw ExitCode(Exit.usage)
            }
            if let problem = loaded!.privacy.loadKey() {
                printError("\(pipeline): \(problem)")
                throw ExitCode(Exit.usage)
            }
            options = loaded!.loadOptions()
            if let db { options.database = db }
        } else {
            options = LoadOptions(database: db!)
        }
        if let schema { options.schema = schema }
        return (options, loaded)
    }
}
