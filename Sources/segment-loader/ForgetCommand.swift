import ArgumentParser
import Foundation
import SegmentLoader
import SegmentCore
import SegmentS3
import SegmentWarehouse
import YAMLFiles

struct ForgetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget",
        abstract: "Erase people from a warehouse (and their archives), and keep them out of later loads.",
        discussion: """
            A user id stands for every anonymous id its calls carry and every id an alias joined \
            to it. Their rows leave every call, event, profile and model table, _discards and \
            the _rejects whose line holds one of their ids; accounts and models are derived again \
            without them; their ids are kept only as SHA-256 digests in _suppressions, and later \
            loads, `rejects retry` and the collector leave their messages out (counted as \
            suppressed). SQLite: the file is then rewritten (VACUUM) and its write-ahead log \
            emptied, so no byte of theirs is left in it; PostgreSQL: the tables are vacuumed. \
            Each request is a row of _erasures. Ids are exact text, never patterns. Exit status \
            0 (also when the ids match nobody), 65 when an archive could not be rewritten (said \
            which; its lines stay suppressed), 75 when another run holds the warehouse or a \
            reader kept the file from being scrubbed (then run it again with --resume).
            """)

    @OptionGroup var target: PipelineOrWarehouse

    @Option(name: .customLong("user-id"), parsing: .upToNextOption, help: ArgumentHelp("User ids to forget.", valueName: "id"))
    var userIds: [String] = []

    @Option(name: .customLong("anonymous-id"), parsing: .upToNextOption, help: ArgumentHelp("Anonymous ids to forget.", valueName: "id"))
    var anonymousIds: [String] = []

    @Option(name: .long, help: ArgumentHelp("A file of requests: one id per line, user_id:<id> or anonymous_id:<id>.", valueName: "file"))
    var from: String?

    @Flag(name: .long, help: "Also rewrite the archives (local or s3://) that hold their lines, without those lines: the files of the loads that brought their messages and of their rejects.")
    var archives = false

    @Flag(name: .customLong("dry-run"), help: "Say what would be removed; change nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Only finish requests an earlier run left pending (archives, scrub).")
    var resume = false

    @OptionGroup var seams: TestSeams

    func validate() throws {
        if userIds.isEmpty && anonymousIds.isEmpty && from == nil && !resume {
            throw ValidationError("give --user-id, --anonymous-id or --from (or --resume)")
        }
    }

    func run() throws {
        var request = Forget.Request()
        request.users = userIds
        request.anons = anonymousIds
        request.archives = archives
        request.dryRun = dryRun
        if let from {
            guard let text = try? String(contentsOfFile: from, encoding: .utf8) else {
                printError("cannot read \(from)")
                throw ExitCode(Exit.usage)
            }
            do { try request.add(list: text, file: from) } catch let refused as WarehouseError {
                printError(refused.message)
                throw ExitCode(Exit.usage)
            }
        }
        var (options, pipeline) = try target.loadOptions()
        // A pipeline that hashes ids (privacy.hash) stored their digests: those are looked for.
        if let privacy = pipeline?.privacy, !privacy.isEmpty {
            request.givenAsTyped = request.users + request.anons
            request.users = request.users.map { privacy.stored($0, field: "userId") }
            request.anons = request.anons.map { privacy.stored($0, field: "anonymousId") }
        }
        options.objects = pipeline?.readsS3 == true ? try? pipeline?.objectStore() : try? S3Client.fromEnvironment()
        let shown = WarehouseLocation.display(options.database, schema: options.schema)
        do {
            let outcome = try Forget.run(request, options: options, faults: seams.faults)
            print(outcome.render(database: shown))
            if outcome.scrubNote != nil { throw ExitCode(Exit.locked) }
            // Archives that could not be rewritten: the rows are gone, the lines are not.
            if !outcome.archiveProblems.isEmpty { throw ExitCode(Exit.dataProblem) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw Exit.failing(error, database: shown)
        }
    }
}

struct SuppressionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suppressions",
        abstract: "The digests of the ids a warehouse forgot.",
        subcommands: [Export.self],
        defaultSubcommand: Export.self)

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the suppression list for the collector (its `suppressions:` setting; re-read on SIGHUP).")

        @OptionGroup var warehouse: WarehouseOption

        @Option(name: .shortAndLong, help: ArgumentHelp("Write to this file (atomically), else to standard output.", valueName: "file"))
        var output: String?

        func run() throws {
            let shown = WarehouseLocation.display(warehouse.db, schema: warehouse.schema)
            do {
                let list = try SuppressionExport.list(database: warehouse.db, schema: warehouse.schema)
                let text = list.exported()
                if let output {
                    let temporary = output + ".tmp-\(getpid())"
                    try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
                    guard rename(temporary, output) == 0 else { throw WarehouseError(message: "cannot write \(output)") }
                    printError("wrote \(list.count) digest\(list.count == 1 ? "" : "s") to \(output)")
                } else {
                    print(text, terminator: "")
                }
            } catch {
                throw Exit.failing(error, database: shown)
            }
        }
    }
}
