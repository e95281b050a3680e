import ArgumentParser
import Foundation
import SegmentLoader
import YAMLFiles
import SegmentS3

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the load a pipeline file describes (see pipelines/README.md).",
        discussion: """
            Files already loaded with the same SHA-256 are skipped and every messageId is \
            loaded once, so a pipeline can run every night over the same folders. A source can \
            be an S3 prefix (path: s3://bucket/prefix/): objects with the key, size and ETag of \
            one already loaded are skipped without being read (docs/operations.md). One run per \
            warehouse at a time; SIGINT or SIGTERM stops after the file being committed, and the \
            next run goes on from there.

            Exit status: 0 when every file loaded (rejected lines are counted, not failures, \
            unless run.strict or --strict), 65 when a file was partial or failed, 64 for usage \
            or pipeline errors or a database that is not a warehouse, 74 when the warehouse cannot be \
            written (disk full, read-only), 75 when another run holds the warehouse's lock or another program its write lock past the busy timeout, 130/143 when \
            stopped by SIGINT/SIGTERM, 1 for anything else. PostgreSQL and S3: 77 when a \
            password, credentials or a permission is refused, 66 for a database, bucket or \
            prefix that does not exist, 69 when no server answers.
            """
    )

    @Argument(help: ArgumentHelp("The pipeline file, e.g. pipelines/nightly.yml.", valueName: "pipeline"))
    var pipeline: String

    @Flag(name: .long, help: "Print what would be loaded (files, days, sizes) and change nothing.")
    var dryRun = false

    @OptionGroup var jobsOption: JobsOption
    var jobs: Int? { jobsOption.jobs }

    @Flag(name: .long, help: "Rejected lines make the run fail with exit code 65 (same as run.strict).")
    var strict = false

    @Option(name: .long, help: ArgumentHelp("Override warehouse.busy_timeout: seconds to wait for another program's write lock before exiting 75.", valueName: "seconds"))
    var busyTimeout: Double?

    @OptionGroup var modelFlags: ModelFlags

    @OptionGroup var output: OutputOptions

    @OptionGroup var seams: TestSeams

    func run() throws {
        var pipeline: Pipeline
        do {
            pipeline = try PipelineFile.load(path: self.pipeline)
        } catch {
            printError(error.refusal)
            throw ExitCode(Exit.usage)
        }
        if let problem = pipeline.privacy.loadKey() {
            printError("\(self.pipeline): \(problem)")
            throw ExitCode(Exit.usage)
        }
        let selection: Selection
        var objects: S3Client?
        do {
            if pipeline.readsS3 { objects = try pipeline.objectStore() }
            selection = try pipeline.select(objects: objects)
        } catch let s3 as S3Error {
            printError("\(self.pipeline): \(s3.message)")
            throw ExitCode(s3.exitStatus)
        } catch {
            printError("\(self.pipeline): \(error)")
            throw ExitCode(Exit.usage)
        }
        if dryRun {
            do {
                let plan = try DryRun.plan(selection, database: pipeline.warehouse.path, schema: pipeline.warehouse.schema)
                print(plan.render(database: WarehouseLocation.display(pipeline.warehouse.path, schema: pipeline.warehouse.schema)))
            } catch {
                throw Exit.failing(error, database: WarehouseLocation.display(pipeline.warehouse.path, schema: pipeline.warehouse.schema))
            }
            return
        }
        var options = pipeline.loadOptions()
        options.objects = objects
        if let jobs { options.jobs = jobs }
        options.models = modelFlags.apply(to: pipeline.models)
        if let busyTimeout { options.busyTimeout = max(0, busyTimeout) }
        try Execution(options: options, output: output, report: pipeline.run.report, metrics: pipeline.run.metrics,
                      strict: strict || pipeline.run.strict, seams: seams)
            .run { selection.found }
    }
}
