import ArgumentParser
import Foundation
import SegmentLoader

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the load a pipeline file describes (see pipelines/README.md).",
        discussion: """
            Files already loaded with the same SHA-256 are skipped and every messageId is \
            loaded once, so a pipeline can run every night over the same folders. One run per \
            warehouse at a time; SIGINT or SIGTERM stops after the file being committed, and the \
            next run goes on from there.

            Exit status: 0 when every file loaded (rejected lines are counted, not failures, \
            unless run.strict or --strict), 65 when a file was partial or failed, 64 for usage \
            or pipeline errors or a database that is not a warehouse, 74 when the warehouse cannot be \
            written (disk full, read-only), 75 when another run holds the warehouse's lock or another program its write lock past the busy timeout, 130/143 when \
            stopped by SIGINT/SIGTERM, 1 for anything else.
            """
    )

    @Argument(help: ArgumentHelp("The pipeline file, e.g. pipelines/nightly.yml.", valueName: "pipeline"))
    var pipeline: String

    @Flag(name: .long, help: "Print what would be loaded (files, days, sizes) and change nothing.")
    var dryRun = false

    @Option(name: .long, help: "Override run.jobs: archives read, parsed and normalized in parallel.")
    var jobs: Int?

    @Flag(name: .long, help: "Rejected lines make the run fail with exit code 65 (same as run.strict).")
    var strict = false

    @Option(name: .long, help: ArgumentHelp("Override warehouse.busy_timeout: seconds to wait for another program's write lock before exiting 75.", valueName: "seconds"))
    var busyTimeout: Double?

    @OptionGroup var modelFlags: ModelFlags

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }

    func run() throws {
        var pipeline: Pipeline
        do {
            pipeline = try PipelineFile.load(path: self.pipeline)
        } catch {
            printError("the pipeline is not valid:\n\(error)")
            throw ExitCode(Exit.usage)
        }
        if let problem = pipeline.privacy.loadKey() {
            printError("\(self.pipeline): \(problem)")
            throw ExitCode(Exit.usage)
        }
        let selection: Selection
        do {
            selection = try pipeline.select()
        } catch {
            printError("\(self.pipeline): \(error)")
            throw ExitCode(Exit.usage)
        }
        if dryRun {
            do {
                let plan = try DryRun.plan(selection, database: pipeline.warehouse.path)
                print(plan.render(database: pipeline.warehouse.path))
            } catch {
                throw Exit.failing(error, database: pipeline.warehouse.path)
            }
            return
        }
        var options = pipeline.loadOptions()
        if let jobs { options.jobs = jobs }
        options.models = modelFlags.apply(to: pipeline.models)
        if let busyTimeout { options.busyTimeout = max(0, busyTimeout) }
        try Execution(options: options, output: output, report: pipeline.run.report, metrics: pipeline.run.metrics,
                      strict: strict || pipeline.run.strict)
            .run { selection.found }
    }
}

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check pipeline files without loading anything.",
        discussion: "Prints each mistake as file:line:column: message, and what a run would refuse before loading (a source path or warehouse folder that does not exist, a folder it cannot write in, a database that is not a warehouse). Exit status 0 when every file is valid, 64 otherwise."
    )

    @Argument(help: ArgumentHelp("Pipeline files.", valueName: "pipeline"))
    var pipelines: [String]

    func run() throws {
        var valid = true
        for path in pipelines {
            do {
                let pipeline = try PipelineFile.load(path: path)
                let refusals = pipeline.refusals()
                if !refusals.isEmpty {
                    valid = false
                    for refusal in refusals { FileHandle.standardError.write(Data("\(path): a run would refuse it: \(refusal)\n".utf8)) }
                    continue
                }
                var notes: [String] = []
                notes.append("\(pipeline.sources.count) source\(pipeline.sources.count == 1 ? "" : "s")")
                notes.append("warehouse \(pipeline.warehouse.path)")
                if pipeline.privacy.hashKeyVariable != nil, !pipeline.privacy.hash.isEmpty {
                    var privacy = pipeline.privacy
                    if let problem = privacy.loadKey() { notes.append("warning: \(problem)") }
                }
                print("\(path): ok (pipeline \(pipeline.name); \(notes.joined(separator: "; ")))")
            } catch {
                valid = false
                FileHandle.standardError.write(Data("\(error)\n".utf8))
            }
        }
        if !valid { throw ExitCode(Exit.usage) }
    }
}
