/// A mistake in a pipeline file, where it is.
public struct PipelineIssue: Sendable, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String
    /// `line` 0: the mistake is the whole file's (it is missing or cannot be read).
    public var description: String { line == 0 ? "\(file): \(message)" : "\(file):\(line):\(column): \(message)" }

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }
}

/// Every mistake found in a pipeline file: all of them are reported at once.
public struct PipelineError: Error, Sendable, CustomStringConvertible {
    public var issues: [PipelineIssue]
    public var description: String { issues.map(\.description).joined(separator: "\n") }

    public init(issues: [PipelineIssue]) { self.issues = issues }

    /// The file could not be read at all (missing, a folder, unreadable): nothing in it was
    /// judged, so it is not said to be "not valid".
    public var unreadable: Bool { issues.count == 1 && issues[0].line == 0 }

    /// What `run` and `rejects retry` print before exiting 64.
    public var refusal: String { unreadable ? description : "the pipeline is not valid:\n\(description)" }
}
