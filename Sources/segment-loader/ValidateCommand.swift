import ArgumentParser
import Foundation
import SegmentLoader
import YAMLFiles
import SegmentCore

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check pipeline files without loading anything.",
        discussion: """
            Prints each mistake as file:line:column: message, and what a run would refuse before loading \
            (a folder it cannot write in, a database that is not a warehouse). A valid file whose source \
            or warehouse folders are not on this machine (written for another one, as the examples \
            backfill.yml and nightly.yml are on a fresh clone) is said so in one line.

            Exit status: 0 when every file is valid and could run here; 64 when a file has a mistake or a \
            run would refuse it; 66 when the files are valid but name folders this machine does not have.
            """
    )

    @Argument(help: ArgumentHelp("Pipeline files.", valueName: "pipeline"))
    var pipelines: [String]

    func run() throws {
        var valid = true
        var elsewhere = false
        for path in pipelines {
            do {
                let pipeline = try PipelineFile.load(path: path)
                let refusals = pipeline.refusals()
                if !refusals.others.isEmpty {
                    valid = false
                    for refusal in refusals.others { FileHandle.standardError.write(Data("\(path): a run would refuse it: \(refusal)\n".utf8)) }
                    continue
                }
                if !refusals.absent.isEmpty {
                    elsewhere = true
                    let places = refusals.absent.joined(separator: ", ")
                    let verb = refusals.absent.count == 1 ? "is" : "are"
                    FileHandle.standardError.write(Data("\(path): valid, for another machine: \(places) \(verb) not on this one (a run here would refuse it)\n".utf8))
                    continue
                }
                var notes: [String] = []
                notes.append("\(pipeline.sources.count) source\(pipeline.sources.count == 1 ? "" : "s")")
                notes.append("warehouse \(WarehouseLocation.display(pipeline.warehouse.path, schema: pipeline.warehouse.schema))")
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
        if elsewhere { throw ExitCode(ExitStatus.noInput) }
    }
}
