import ArgumentParser
import Foundation
import SegmentLoader

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what a warehouse holds: recent runs, files, tables, rejects, discards, name collisions.",
        discussion: "Read-only: safe while a run is loading."
    )

    @OptionGroup var warehouse: WarehouseOption
    var db: String { warehouse.db }

    @Option(name: .long, help: "How many recent runs to list.")
    var runs: Int = 10

    func run() throws {
        do {
            print(try WarehouseStatus.render(database: db, schema: warehouse.schema, runs: max(1, runs)))
        } catch {
            throw Exit.failing(error, database: WarehouseLocation.display(db, schema: warehouse.schema))
        }
    }
}
