import ArgumentParser
import Foundation
import SegmentLoader
import YAMLFiles

struct RejectsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rejects",
        abstract: "List the lines a warehouse could not load, or retry them after a fix.",
        subcommands: [List.self, Retry.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List rejected lines: file, line (and batch item), reason. The raw lines are in _rejects.raw.")

        @OptionGroup var warehouse: WarehouseOption
        var db: String { warehouse.db }

        @Option(name: .long, help: "At most this many (0: all).")
        var limit: Int = 100

        @Flag(name: .long, help: "Also print each raw line (as stored, cut to 200 characters).")
        var raw = false

        func run() throws {
            do {
                let lines = try RejectList.render(database: db, schema: warehouse.schema, limit: limit, raw: raw)
                print(lines)
            } catch {
                throw Exit.failing(error, database: WarehouseLocation.display(db, schema: warehouse.schema))
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-process every rejected line; load what now loads and remove those rejects.",
            discussion: """
                Give --pipeline to apply that pipeline's filters and privacy rules (and its \
                warehouse), as the original load did. Lines that still fail stay in _rejects with \
                today's reason; nothing is lost either way. Exit status 0, or 65 when some lines \
                still fail, 75 when another run holds the lock.
                """)

        @OptionGroup var target: PipelineOrWarehouse

        @OptionGroup var modelFlags: ModelFlags

        func run() throws {
            var (options, _) = try target.loadOptions()
            options.models = modelFlags.apply(to: options.models)
            let shown = WarehouseLocation.display(options.database, schema: options.schema)
            do {
                let outcome = try RejectRetry.run(options: options)
                print(outcome.render(database: shown))
                if outcome.stillRejected > 0 { throw ExitCode(Exit.dataProblem) }
            } catch let exit as ExitCode {
                throw exit
            } catch {
                throw Exit.failing(error, database: shown)
            }
        }
    }
}
