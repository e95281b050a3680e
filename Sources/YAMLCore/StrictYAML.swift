import Foundation
import Yams
import SegmentCore

/// Reading a YAML settings file before its keys are checked: the pipeline files and the
/// collector's configuration share it.
public enum StrictYAML {
    /// The text of the file at `path` and its folder, against which relative paths resolve.
    /// `what` names the file in the message when it cannot be read ("the pipeline file").
    /// A file that is not there, is a folder or cannot be read is said of the whole file (no
    /// line and column), a missing one with the nearest YAML file beside it.
    public static func read(path: String, what: String) throws(PipelineError) -> (text: String, directory: String) {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        func refuse(_ message: String) -> PipelineError {
            PipelineError(issues: [PipelineIssue(file: path, line: 0, column: 0, message: message)])
        }
        let noun = what.hasPrefix("the ") ? String(what.dropFirst(4)) : what
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory) else {
            throw refuse("no such \(noun)" + (nearestYAML(to: path).map { " (did you mean \($0)?)" } ?? ""))
        }
        if isDirectory.boolValue { throw refuse("is a directory, not \(what)") }
        guard let data = FileManager.default.contents(atPath: absolute) else {
            throw refuse("cannot read \(what): \(String(cString: strerror(access(absolute, R_OK) == 0 ? EIO : errno)))")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw refuse("\(what) is not UTF-8 text") }
        return (text, (absolute as NSString).deletingLastPathComponent)
    }

    /// The `.yml`/`.yaml` file in `path`'s folder whose name is nearest to `path`'s (at most 3
    /// edits away), written as `path` is (relative stays relative).
    static func nearestYAML(to path: String) -> String? {
        let url = URL(fileURLWithPath: path)
        let name = url.lastPathComponent
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path) else { return nil }
        let candidates = entries.filter { $0.hasSuffix(".yml") || $0.hasSuffix(".yaml") }.sorted()
        guard let nearest = candidates.min(by: { distance(name, $0) < distance(name, $1) }), distance(name, nearest) <= 3 else { return nil }
        guard let slash = path.lastIndex(of: "/") else { return nearest }
        return String(path[...slash]) + nearest
    }

    /// The root node of `text`; a YAML error, or an empty file, is a mistake with its position.
    public static func compose(_ text: String, file: String, what: String) throws(PipelineError) -> Node {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw PipelineError(issues: [issue(for: error, file: file)])
        } catch {
            throw PipelineError(issues: [PipelineIssue(file: file, line: 1, column: 1, message: "\(error)")])
        }
        guard let root else {
            throw PipelineError(issues: [PipelineIssue(file: file, line: 1, column: 1, message: "\(what) is empty")])
        }
        return root
    }

    static func issue(for error: YamlError, file: String) -> PipelineIssue {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return PipelineIssue(file: file, line: mark.line, column: mark.column, message: "not valid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return PipelineIssue(file: file, line: context.mark.line, column: context.mark.column,
                                 message: "the key \(duplicates.joined(separator: ", ")) is given more than once")
        default:
            return PipelineIssue(file: file, line: 1, column: 1, message: "not valid YAML: \(error)")
        }
    }
}

/// Strict reading of a YAML settings file with the line and column of every mistake: the
/// pipeline files and the collector's configuration share it. A reader lists its mistakes in
/// `issues` and goes on, so that every mistake is reported at once.
public protocol StrictYAMLReader {
    /// The file's name as messages give it.
    var file: String { get }
    var issues: [PipelineIssue] { get set }
}

extension StrictYAMLReader {
    public mutating func fail(_ node: Node?, _ message: String) {
        let mark = node?.mark
        issues.append(PipelineIssue(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, message: message))
    }

    /// The members of a mapping after checking its keys against `allowed`.
    public mutating func mapping(_ node: Node, _ what: String, allowed: [String], required: [String] = []) -> [String: Node]? {
        guard case .mapping(let mapping) = node else {
            fail(node, "\(what) must be a mapping of keys (\(allowed.joined(separator: ", "))), not \(kind(node))")
            return nil
        }
        var members: [String: Node] = [:]
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else {
                fail(key, "keys of \(what) must be plain names")
                continue
            }
            guard allowed.contains(scalar.string) else {
                let hint = allowed.min { distance($0, scalar.string) < distance($1, scalar.string) }
                    .flatMap { distance($0, scalar.string) <= 3 ? " (did you mean \($0)?)" : nil } ?? ""
                fail(key, "unknown key '\(scalar.string)' in \(what)\(hint); known keys: \(allowed.joined(separator: ", "))")
                continue
            }
            members[scalar.string] = value
        }
        for key in required where members[key] == nil {
            fail(node, "\(what) needs '\(key)'")
        }
        return members
    }

    public func kind(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let s):
            if (s.style == .plain && (s.string.isEmpty || s.string == "~" || s.string == "null")) { return "null" }
            return "'\(s.string)'"
        }
    }

    public mutating func string(_ node: Node, _ what: String) -> String? {
        guard case .scalar(let scalar) = node, kind(node) != "null" else {
            fail(node, "\(what) must be a string, not \(kind(node))")
            return nil
        }
        return scalar.string
    }

    public mutating func int(_ node: Node, _ what: String, range: ClosedRange<Int>) -> Int? {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = Int(scalar.string) else {
            fail(node, "\(what) must be a whole number, not \(kind(node))")
            return nil
        }
        guard range.contains(value) else {
            fail(node, "\(what) must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
            return nil
        }
        return value
    }

    public mutating func bool(_ node: Node, _ what: String) -> Bool? {
        if case .scalar(let scalar) = node, scalar.style == .plain {
            switch scalar.string.lowercased() {
            case "true", "yes", "on": return true
            case "false", "no", "off": return false
            default: break
            }
        }
        fail(node, "\(what) must be true or false, not \(kind(node))")
        return nil
    }

    /// A list of strings; a single string counts as a list of one.
    public mutating func strings(_ node: Node, _ what: String) -> [(String, Node)]? {
        if case .scalar = node, let s = string(node, what) { return [(s, node)] }
        guard case .sequence(let sequence) = node else {
            fail(node, "\(what) must be a list of strings, not \(kind(node))")
            return nil
        }
        var out: [(String, Node)] = []
        for item in sequence {
            if let s = string(item, "each entry of \(what)") { out.append((s, item)) }
        }
        return out
    }
}
