import ArgumentParser
import Foundation
import SegmentLoader
import YAMLFiles

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
                notes.append("warehouse \(WarehouseAccess.display(pipeline.warehouse.path, schema: pipeline.warehouse.schema))")
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
