import ArgumentParser
import Foundation
import SegmentLoader
import YAMLFiles
import SegmentCore

struct DatasetteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "datasette",
        abstract: "Write Datasette metadata for a warehouse: bookkeeping hidden, events titled, columns described, a product-analytics dashboard.",
        discussion: """
            Then: datasette warehouse.sqlite -m datasette.yml
            (the dashboard, at /-/dashboards/product-analytics, needs: pip install datasette-dashboards)

            Event tables get their raw event names as titles; the time columns, and columns whose \
            source keys are not plain from their name (context.userAgent, several keys sharing \
            one column, renames), get descriptions from _schema_columns; call and event tables \
            open sorted by timestamp, newest first (users and accounts by received_at). The \
            bookkeeping tables are hidden from the lists but stay queryable. Written for \
            Datasette 0.65. Run it again after a load that added tables or columns.

            Once the models are built, the metadata also holds the "Product analytics" dashboard for \
            datasette-dashboards 0.8: active people, new and returning people, the top events, a \
            funnel, weekly retention, sessions, top pages and first-touch sources, with a date \
            range filter (docs/models.md, Product analytics). The funnel's steps are --funnel's, \
            else the pipeline's dashboards.funnel, else the three events with the most calls in \
            the order people first do them.
            """)

    @Option(name: .long, help: ArgumentHelp("The warehouse, an SQLite file (or give --pipeline).", valueName: "path"))
    var db: String?

    @Option(name: .long, help: ArgumentHelp("The pipeline whose warehouse (and dashboards.funnel) to describe.", valueName: "file"))
    var pipeline: String?

    @Option(name: .long, parsing: .upToNextOption,
            help: ArgumentHelp("The dashboard funnel's steps: track event names, or page:/path (2 to 10).", valueName: "step"))
    var funnel: [String] = []

    @Option(name: .shortAndLong, help: ArgumentHelp("Write to this file (default: standard output).", valueName: "file"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("yaml or json (default: from the output file's extension, else yaml).", valueName: "format"))
    var format: String?

    @Option(name: .long, help: ArgumentHelp("The database's name in Datasette (default: the file name without extension).", valueName: "name"))
    var name: String?

    func validate() throws {
        if db == nil && pipeline == nil { throw ValidationError("give --db or --pipeline") }
        if !funnel.isEmpty && !(2...10).contains(funnel.count) { throw ValidationError("--funnel takes 2 to 10 steps, not \(funnel.count)") }
        if let format, DatasetteMetadata.Format(rawValue: format) == nil {
            throw ValidationError("--format must be yaml or json, not '\(format)'")
        }
    }

    func run() throws {
        var steps = funnel
        var database = db ?? ""
        if let pipeline {
            let loaded: Pipeline
            do { loaded = try PipelineFile.load(path: pipeline) } catch {
                printError(error.refusal)
                throw ExitCode(Exit.usage)
            }
            if db == nil { database = loaded.loadOptions().database }
            if steps.isEmpty { steps = loaded.dashboardFunnel }
        }
        let db = database
        if WarehouseLocation.isPostgres(db) {
            printError("datasette serves SQLite files; a PostgreSQL warehouse is read with psql or any PostgreSQL client (docs/postgresql.md)")
            throw ExitCode(Exit.usage)
        }
        let chosen = format.flatMap(DatasetteMetadata.Format.init(rawValue:))
            ?? (output.map { $0.lowercased().hasSuffix(".json") } == true ? .json : .yaml)
        let text: String
        do {
            text = try DatasetteMetadata.render(database: db, name: name, format: chosen, funnel: steps)
        } catch {
            printError("\(error)")
            throw ExitCode(error is WarehouseError ? Exit.usage : Exit.failure)
        }
        guard let output else {
            print(text, terminator: text.hasSuffix("\n") ? "" : "\n")
            return
        }
        do {
            try writeAtomically(text.hasSuffix("\n") ? text : text + "\n", to: output)
        } catch {
            printError("cannot write \(output): \(error.localizedDescription)")
            throw ExitCode(Exit.failure)
        }
    }
}
