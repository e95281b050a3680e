import ArgumentParser
import Foundation
import SegmentLoader
import SegmentS3
import SegmentStages
import SegmentWarehouse
import SQLiteEngine
import SegmentCore

struct LoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load archives from files and directories (searched recursively) or S3 prefixes into a warehouse.",
        discussion: """
            Files are recognised by their first bytes: gzip (several members are fine) or plain \
            newline-delimited JSON; anything else is skipped and reported. Files already loaded \
            with the same SHA-256 are skipped, and every messageId is loaded at most once, so \
            running the same load again adds nothing.

            For loads you repeat (nightly, backfills), describe them in a pipeline file and use \
            `segment-loader run`.

            Exit status: 0 when every file loaded (rejected lines are counted, not failures, \
            unless --strict), 65 when a file was partial or failed, 64 for usage errors or a database that \
            is not a warehouse, 74 when the warehouse cannot be written (disk full, read-only), 75 when \
            another run holds the warehouse's lock or another program its write lock past \
            --busy-timeout, 130/143 when stopped by SIGINT/SIGTERM (after \
            the file being committed), 1 for anything else. With PostgreSQL: 77 when the password or \
            a permission is refused, 66 for a database that does not exist, 69 when no server answers, \
            75 when the connection is lost during the run (docs/postgresql.md). With s3:// sources: 77 when \
            the credentials are refused or lack s3:ListBucket/s3:GetObject, 66 for a bucket or prefix \
            that does not exist, 69 when the store does not answer after retries.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The warehouse to load into (created if missing): an SQLite file, or a PostgreSQL URL (postgresql://user@host:port/database; the PG* variables and ~/.pgpass work as for psql); a database with the Citus extension gets a distributed warehouse (docs/scaling.md).", valueName: "path|url"))
    var db: String

    @Option(name: .long, help: ArgumentHelp("PostgreSQL: the schema the warehouse's tables go in (default segment; created if missing).", valueName: "name"))
    var schema: String?

    @OptionGroup var jobsOption: JobsOption
    var jobs: Int? { jobsOption.jobs }

    @Option(name: .long, help: "Columns per table for properties and traits; later keys go to the row's _extra JSON.")
    var columnLimit: Int = 1000

    @Option(name: .long, help: "Event tables the warehouse may hold; the calls of later events stay in tracks, their properties in _extra.")
    var eventTableLimit: Int = EventTableLimit.defaultLimit

    @Option(name: .long, help: "Lines longer than this many bytes are rejected.")
    var maxLineBytes: Int = 1 << 20

    @Flag(name: .long, help: "Leave out messages whose integrations opt out of the Warehouses destination (counted as filtered).")
    var skipOptedOut = false

    @Option(name: .long, help: ArgumentHelp("Also write the run as a JSON report to this file (replaced atomically).", valueName: "file"))
    var report: String?

    @Option(name: .long, help: ArgumentHelp("Also write Prometheus metrics (node_exporter textfile format) to this file, atomically.", valueName: "file"))
    var metrics: String?

    @Flag(name: .long, help: "Rejected lines make the run fail with exit code 65 (by default they are counted, not failures).")
    var strict = false

    @Flag(name: .long, help: "Do not create the query indexes (received_at, user_id, anonymous_id) after the load.")
    var noIndexes = false

    @Option(name: .long, help: ArgumentHelp("wal (default; readers never block the load) or rollback (faster bulk loads; for a warehouse nobody reads meanwhile).", valueName: "mode"))
    var journal: JournalMode = .wal

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for another program's write lock on the warehouse before exiting 75.", valueName: "seconds"))
    var busyTimeout: Double = Warehouse.defaultBusyTimeout

    @OptionGroup var modelFlags: ModelFlags

    @OptionGroup var output: OutputOptions

    @OptionGroup var seams: TestSeams

    @Argument(help: ArgumentHelp("Archive files or directories, or s3://BUCKET/PREFIX (credentials, region and AWS_ENDPOINT_URL as the AWS tools read them; docs/operations.md).", valueName: "path|s3-url"))
    var paths: [String]

    func validate() throws {
        if schema != nil && !WarehouseLocation.isPostgres(db) { throw ValidationError("--schema is for a PostgreSQL warehouse (--db postgresql://...); an SQLite file has no schemas") }
        guard (1...1900).contains(columnLimit) else { throw ValidationError("--column-limit must be between 1 and 1900 (SQLite allows 2000 columns)") }
        guard (0...EventTableLimit.maximum).contains(eventTableLimit) else {
            throw ValidationError("--event-table-limit must be between 0 and \(EventTableLimit.maximum)")
        }
        guard maxLineBytes >= 1024 else { throw ValidationError("--max-line-bytes must be at least 1024") }
        guard busyTimeout >= 0 && busyTimeout <= 86_400 else { throw ValidationError("--busy-timeout must be between 0 and 86400 seconds") }
    }

    func run() throws {
        var options = LoadOptions(database: db, jobs: jobs ?? ProcessInfo.processInfo.activeProcessorCount)
        options.columnLimit = columnLimit
        options.eventTableLimit = eventTableLimit
        options.maxLineBytes = maxLineBytes
        options.skipOptedOut = skipOptedOut
        options.createIndexes = !noIndexes
        options.journal = journal
        options.models = modelFlags.apply(to: ModelOptions())
        options.busyTimeout = busyTimeout
        options.schema = schema
        let paths = self.paths
        // s3:// sources: credentials, region and endpoint as the AWS tools find them.
        if paths.contains(where: S3Location.isURL) {
            do { options.objects = try S3Client.fromEnvironment() } catch { throw Exit.failing(error, database: db) }
        }
        let objects = options.objects
        try Execution(options: options, output: output, report: report, metrics: metrics, strict: strict, seams: seams)
            .run { try Discovery.find(paths, objects: objects) }
    }
}
