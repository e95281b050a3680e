import ArgumentParser
import Foundation
import SegmentLoader
import SegmentCore
import SegmentWarehouse
import SQLiteEngine

/// `--session-timeout`, for every command that builds the models.
struct SessionTimeoutOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Minutes of inactivity that end a session (default: what the warehouse's models last used, else 30; a change rebuilds them).", valueName: "minutes"))
    var sessionTimeout: Int?

    func validate() throws {
        if let sessionTimeout, !(1...10_080).contains(sessionTimeout) {
            throw ValidationError("--session-timeout must be between 1 and 10080 minutes")
        }
    }
}

/// `--no-models` and `--session-timeout`, shared by the commands that load.
struct ModelFlags: ParsableArguments {
    @Flag(name: .long, help: "Do not bring the models (identities, page_views, sessions) up to date after the load; the next run that builds them catches up.")
    var noModels = false

    @OptionGroup var timeout: SessionTimeoutOption

    /// `base` (a pipeline's `models:`) with the flags applied.
    func apply(to base: ModelOptions) -> ModelOptions {
        var options = base
        if noModels { options.enabled = false }
        if let minutes = timeout.sessionTimeout { options.sessionTimeoutMinutes = minutes }
        return options
    }
}

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Bring the built-in models (identities, page_views, sessions) up to date, or rebuild them.",
        discussion: """
            `run` and `load` do this at the end of every load; this command is for a warehouse \
            loaded with --no-models, for a new session timeout, or to check that the models equal \
            a full rebuild (--rebuild). docs/models.md defines every column.

            Exit status: 0 when built, 64 for usage errors or a database that is not a warehouse, \
            74 when the warehouse cannot be written, 75 when a run holds the warehouse's lock, 1 \
            for anything else.
            """
    )

    @OptionGroup var warehouse: WarehouseOption
    var db: String { warehouse.db }

    @Flag(name: .long, help: "Rebuild everything from the call tables instead of what the loads since the last build touched.")
    var rebuild = false

    @OptionGroup var timeout: SessionTimeoutOption

    func run() throws {
        if WarehouseLocation.isPostgres(db) {
            do {
                let build = try Models.build(postgres: db, schema: warehouse.schema,
                                             options: ModelOptions(sessionTimeoutMinutes: timeout.sessionTimeout), rebuild: rebuild)
                print("\(WarehouseLocation.display(db, schema: warehouse.schema)): models " + build.summaryLine)
            } catch {
                throw Exit.failing(error, database: WarehouseLocation.display(db, schema: warehouse.schema))
            }
            return
        }
        do {
            try Warehouse.check(path: db, mustExist: true)
            let lock = try WarehouseLock(database: db)
            defer { withExtendedLifetime(lock) {} }
            let warehouse = try Warehouse(path: db, announce: { printError($0) })
            let build = try Models.build(in: warehouse.db, options: ModelOptions(sessionTimeoutMinutes: timeout.sessionTimeout), rebuild: rebuild)
            print("\(db): models " + build.summaryLine)
        } catch {
            throw Exit.failing(error, database: db)
        }
    }
}
