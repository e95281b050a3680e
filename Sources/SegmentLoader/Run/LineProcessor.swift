import SegmentCore
import SegmentStages

/// What one line yields: messages (a batch envelope yields several) or reasons it cannot be used.
enum Parsed {
    case message(Message, item: Int?)
    case reject(RejectKind, String, item: Int?)
}

/// Read → normalize for one line: parses the JSON, unwraps a batch envelope, normalizes each
/// message. Each worker owns one.
struct LineProcessor {
    var normalizer: Normalizer
    let privacy: Privacy
    /// Nanoseconds spent parsing and normalizing, for the benchmark's stage times.
    private(set) var nanoseconds: UInt64 = 0

    /// `hashing: false` for lines whose hashed fields are hashed already (a retried reject).
    init(loadTime: Instant, names: NameTable, privacy: Privacy = Privacy()) {
        normalizer = Normalizer(loadTime: loadTime, names: names)
        self.privacy = privacy
    }

    /// What `_rejects` keeps of a rejected line, and whether the privacy rules were applied to
    /// it: the line itself without rules; with rules, the line with them applied when it is a
    /// JSON object, else nothing (no plain value of a dropped or hashed field is ever stored).
    func rawForReject(_ bytes: UnsafeBufferPointer<UInt8>) -> RejectRaw {
        guard !privacy.isEmpty else { return .asRead(Array(bytes)) }
        guard let json = try? JSONParser.parse(bytes), case .object = json else { return .withheld }
        var out: [UInt8] = []
        JSONWriter.write(privacy.applyToLine(json), into: &out, sortedKeys: false)
        return .redacted(out)
    }

    mutating func process(_ line: UnsafeBufferPointer<UInt8>, problem: LineProblem?, hashing: Bool = true) -> [Parsed] {
        let started = monotonicNanoseconds()
        defer { nanoseconds &+= monotonicNanoseconds() &- started }
        if let problem { return [.reject(problem.kind, problem.reason, item: nil)] }
        let json: JSONValue
        var replaced = 0
        do {
            json = try JSONParser.parse(line, replacedSurrogates: &replaced)
        } catch {
            return [.reject(.json, error.description, item: nil)]
        }
        if replaced > 0 {
            // Not valid Unicode, so not storable as text: the rows get U+FFFD, and the original
            // line goes to _discards with the first message, so nothing is lost.
            var results = parseMessages(json, hashing: hashing)
            if let first = results.firstIndex(where: { if case .message = $0 { return true } else { return false } }),
               case .message(var message, let item) = results[first] {
                let original = String(decoding: rawForReject(line).bytes, as: UTF8.self)
                message.discards.append(PendingDiscard(
                    column: NameTable.extra, key: nil, value: JSONWriter.string(.string(original)),
                    reason: "\(replaced) lone UTF-16 surrogate escape\(replaced == 1 ? "" : "s") (not valid Unicode) replaced by U+FFFD; the value is the original line"))
                results[first] = .message(message, item: item)
            }
            return results
        }
        return parseMessages(json, hashing: hashing)
    }

    private mutating func parseMessages(_ json: JSONValue, hashing: Bool) -> [Parsed] {
        let messages = Envelope.messages(in: json)
        if case .array? = json["batch"] {
            if messages.isEmpty { return [.reject(.spec, "batch envelope with no messages", item: nil)] }
            return messages.enumerated().map { offset, item in normalize(redact(item, hashing), item: offset + 1) }
        }
        return [normalize(redact(json, hashing), item: nil)]
    }

    private func redact(_ message: JSONValue, _ hashing: Bool) -> JSONValue {
        privacy.isEmpty ? message : privacy.apply(to: message, hashing: hashing)
    }

    private mutating func normalize(_ json: JSONValue, item: Int?) -> Parsed {
        do {
            return .message(try normalizer.normalize(json), item: item)
        } catch {
            return .reject(.spec, item.map { "batch item \($0): \(error.description)" } ?? error.description, item: item)
        }
    }
}
