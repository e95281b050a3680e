import ArgumentParser
import Foundation
import SegmentLoader
import SegmentWarehouse

struct FunnelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "funnel",
        abstract: "Count the people through an ordered funnel of events and pages.",
        discussion: """
            A step is a track event's raw name (as in tracks.event_text) or page:/path (a page \
            view of that path). Step 1 counts the people who did it between --since and --until \
            (UTC days, both included); each later step counts those who then did it at or after \
            the step before, within --within of their first step 1. A person is a \
            blended_user_id, as the models make it (docs/models.md): run the models first. \
            Read-only; safe during a load.
            """)

    @OptionGroup var warehouse: WarehouseOption

    @Argument(help: ArgumentHelp("The steps, in order (at least two).", valueName: "step"))
    var steps: [String]

    @Option(name: .long, help: ArgumentHelp("The window from a person's first step 1: 7d, 36h, 90m (default 7d).", valueName: "duration"))
    var within: String = "7d"

    @Option(name: .long, help: ArgumentHelp("First UTC day of step 1 (YYYY-MM-DD).", valueName: "day"))
    var since: String?

    @Option(name: .long, help: ArgumentHelp("Last UTC day of step 1 (YYYY-MM-DD).", valueName: "day"))
    var until: String?

    func validate() throws {
        if steps.count < 2 { throw ValidationError("give at least two steps (a track event's name, or page:/path)") }
        if steps.count > 20 { throw ValidationError("at most 20 steps") }
        if FunnelReport.window(within) == nil { throw ValidationError("--within must be a duration such as 7d, 36h or 90m, not '\(within)'") }
        for (name, day) in [("--since", since), ("--until", until)] {
            if let day, FunnelReport.day(day) == nil { throw ValidationError("\(name) must be a day YYYY-MM-DD, not '\(day)'") }
        }
        if let since, let until, since > until { throw ValidationError("--since \(since) is after --until \(until)") }
    }

    func run() throws {
        var funnel = Funnel(steps: steps.map(Funnel.Step.init))
        funnel.windowSeconds = FunnelReport.window(within)!
        funnel.since = since
        funnel.until = until
        let shown = WarehouseLocation.display(warehouse.db, schema: warehouse.schema)
        do {
            let people = try FunnelReport.people(database: warehouse.db, schema: warehouse.schema, funnel: funnel)
            print(FunnelReport.render(funnel, people: people, database: shown))
        } catch {
            throw Exit.failing(error, database: shown)
        }
    }
}
