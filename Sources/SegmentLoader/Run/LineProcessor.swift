/// What one line yields: messages (a batch envelope yields several) or reasons it cannot be used.
enum Parsed {
    case message(Message, item: Int?)
    case reject(String, item: Int?)
}

/// Read → normalize for one line: parses the JSON, unwraps a batch envelope, normalizes each
/// message. Each worker owns one.
struct LineProcessor {
    var normalizer: Normalizer
    /// Nanoseconds spent parsing and normalizing, for the benchmark's stage times.
    private(set) var nanoseconds: UInt64 = 0

    init(loadTime: Instant, names: NameTable) {
        normalizer = Normalizer(loadTime: loadTime, names: names)
    }

    mutating func process(_ line: UnsafeBufferPointer<UInt8>, problem: LineProblem?) -> [Parsed] {
        let started = monotonicNanoseconds()
        defer { nanoseconds &+= monotonicNanoseconds() &- started }
        if let problem { return [.reject(problem.reason, item: nil)] }
        let json: JSONValue
        do {
            json = try JSONParser.parse(line)
        } catch {
            return [.reject(error.description, item: nil)]
        }
        let messages = Envelope.messages(in: json)
        if case .array? = json["batch"] {
            if messages.isEmpty { return [.reject("batch envelope with no messages", item: nil)] }
            return messages.enumerated().map { offset, item in normalize(item, item: offset + 1) }
        }
        return [normalize(json, item: nil)]
    }

    private mutating func normalize(_ json: JSONValue, item: Int?) -> Parsed {
        do {
            return .message(try normalizer.normalize(json), item: item)
        } catch {
            return .reject(item.map { "batch item \($0): \(error.description)" } ?? error.description, item: item)
        }
    }
}
