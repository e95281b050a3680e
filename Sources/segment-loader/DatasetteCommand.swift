import ArgumentParser
import Foundation
import SegmentLoader
import YAMLFiles
import SegmentCore

struct DatasetteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "datasette",
        abstract: "Write Datasette metadata for a warehouse: bookkeeping hidden, events titled, columns described.",
        discussion: """
            Then: datasette warehouse.sqlite -m datasette.yml

            Event tables get their raw event names as titles; the time columns, and columns whose \
            source keys are not plain from their name (context.userAgent, several keys sharing \
            one column, renames), get descriptions from _schema_columns; call and event tables \
            open sorted by timestamp, newest first (users and accounts by received_at). The \
            bookkeeping tables are hidden from the lists but stay queryable. Written for \
            Datasette 0.65. Run it again after a load that added tables or columns.
            """)

    @OptionGroup var warehouse: WarehouseOption
    var db: String { warehouse.db }

    @Option(name: .shortAndLong, help: ArgumentHelp("Write to this file (default: standard output).", valueName: "file"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("yaml or json (default: from the output file's extension, else yaml).", valueName: "format"))
    var format: String?

    @Option(name: .long, help: ArgumentHelp("The database's name in Datasette (default: the file name without extension).", valueName: "name"))
    var name: String?

    func validate() throws {
        if let format, DatasetteMetadata.Format(rawValue: format) == nil {
            throw ValidationError("--format must be yaml or json, not '\(format)'")
        }
    }

    func run() throws {
        if WarehouseLocation.isPostgres(db) {
            printError("datasette serves SQLite files; a PostgreSQL warehouse is read with psql or any PostgreSQL client (docs/postgresql.md)")
            throw ExitCode(Exit.usage)
        }
        let chosen = format.flatMap(DatasetteMetadata.Format.init(rawValue:))
            ?? (output.map { $0.lowercased().hasSuffix(".json") } == true ? .json : .yaml)
        let text: String
        do {
            text = try DatasetteMetadata.render(database: db, name: name, format: chosen)
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
