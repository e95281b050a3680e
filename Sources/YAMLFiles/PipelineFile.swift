import SegmentLoader
import Foundation
import Yams
import YAMLCore
import SegmentCore
import SegmentS3
import SegmentStages
import SegmentWarehouse
import SQLiteEngine
import PostgresEngine

/// Reads a pipeline file strictly: unknown keys, wrong types, bad globs, dates and call types
/// are refused with their line and column before anything is loaded.
public enum PipelineFile {
    public static func load(path: String) throws(PipelineError) -> Pipeline {
        let (text, directory) = try StrictYAML.read(path: path, what: "the pipeline file")
        return try parse(text, file: path, directory: directory)
    }

    /// `file` names the text in messages; relative paths resolve against `directory`.
    public static func parse(_ text: String, file: String, directory: String) throws(PipelineError) -> Pipeline {
        let root = try StrictYAML.compose(text, file: file, what: "the pipeline file")
        var reader = Reader(file: file, directory: directory)
        let pipeline = reader.pipeline(root)
        if !reader.issues.isEmpty || pipeline == nil {
            throw PipelineError(issues: reader.issues.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
        }
        var result = pipeline!
        result.file = URL(fileURLWithPath: directory).appendingPathComponent((file as NSString).lastPathComponent).path
        return result
    }

    struct Reader: StrictYAMLReader {
        let file: String
        let directory: String
        var issues: [PipelineIssue] = []

        mutating func globs(_ node: Node, _ what: String, pathAware: Bool) -> [Glob] {
            var out: [Glob] = []
            for (text, item) in strings(node, what) ?? [] {
                do {
                    out.append(try Glob(text, pathAware: pathAware))
                } catch {
                    globIssue(item, text, error, "bad glob '\(text)' in \(what)")
                }
            }
            return out
        }

        /// Points at the offending character of a glob written as a YAML scalar.
        mutating func globIssue(_ node: Node, _ text: String, _ error: Glob.SyntaxError, _ what: String) {
            var column = node.mark?.column ?? 1
            if case .scalar(let scalar) = node { column += error.offset - (scalar.style == .plain ? 1 : 0) }
            issues.append(PipelineIssue(file: file, line: node.mark?.line ?? 1, column: column, message: "\(what): \(error.message)"))
        }

        func resolve(_ path: String) -> String {
            let expanded = (path as NSString).expandingTildeInPath
            if expanded.hasPrefix("/") { return URL(fileURLWithPath: expanded).standardizedFileURL.path }
            return URL(fileURLWithPath: directory).appendingPathComponent(expanded).standardizedFileURL.path
        }

        mutating func pipeline(_ root: Node) -> Pipeline? {
            guard let top = mapping(root, "the pipeline", allowed: ["version", "name", "sources", "filters", "privacy", "warehouse", "run", "models", "dashboards"],
                                    required: ["version", "name", "sources", "warehouse"]) else { return nil }
            var version: Int?
            if let node = top["version"], let v = int(node, "version", range: 0...Int.max) {
                if v != Pipeline.supportedVersion {
                    fail(node, "version \(v) is not supported; this segment-loader reads pipeline version \(Pipeline.supportedVersion)")
                } else {
                    version = v
                }
            }
            var name: String?
            if let node = top["name"], let n = string(node, "name") {
                if n.isEmpty || n.utf8.count > 100 || !n.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }) {
                    fail(node, "name must be 1-100 letters, digits, '-', '_' or '.' (it names the pipeline in _loads and in metrics), not '\(n)'")
                } else {
                    name = n
                }
            }
            var sources: [Pipeline.Source] = []
            if let node = top["sources"] {
                if case .sequence(let list) = node, !Array(list).isEmpty {
                    for item in list { if let source = source(item) { sources.append(source) } }
                } else {
                    fail(node, "sources must be a non-empty list of sources (each with at least 'path')")
                }
            }
            let warehouse = top["warehouse"].flatMap { warehouseSettings($0) }
            // Every section is read even when an earlier one failed, so that all mistakes are reported at once.
            let filterSettings = top["filters"].map { self.filters($0) }
            let privacySettings = top["privacy"].map { self.privacy($0) }
            let runSettings = top["run"].map { self.runSettings($0) }
            let modelSettings = top["models"].map { self.modelSettings($0) }
            let funnel = top["dashboards"].map { self.dashboardFunnel($0) }
            let endpoints = Set(sources.filter { S3Location.isURL($0.path) }.map { $0.endpoint ?? "" })
            if endpoints.count > 1, let node = top["sources"] {
                fail(node, "the s3:// sources of one pipeline must use the same endpoint (or none); split them into pipelines")
            }
            guard let version, let name, let warehouse else { return nil }
            var pipeline = Pipeline(name: name, sources: sources, warehouse: warehouse)
            pipeline.version = version
            if let filterSettings { pipeline.filters = filterSettings }
            if let privacySettings { pipeline.privacy = privacySettings }
            if let runSettings { pipeline.run = runSettings }
            if let modelSettings { pipeline.models = modelSettings }
            if let funnel { pipeline.dashboardFunnel = funnel }
            return pipeline
        }

        mutating func source(_ node: Node) -> Pipeline.Source? {
            guard let m = mapping(node, "a source", allowed: ["path", "source_ids", "since", "until", "endpoint"], required: ["path"]),
                  let pathNode = m["path"], let path = string(pathNode, "path") else { return nil }
            guard !path.isEmpty else {
                fail(pathNode, "path must not be empty")
                return nil
            }
            if let correction = S3Location.misspelling(path) {
                fail(pathNode, "'\(path)' is not a local path nor an S3 location: \(correction)")
                return nil
            }
            var source = Pipeline.Source(path: resolve(path))
            if S3Location.isURL(path) {
                source.path = path
                if S3Location(path) == nil {
                    fail(pathNode, "'\(path)' is not an S3 location: write s3://BUCKET/PREFIX")
                    return nil
                }
                if path.contains(where: { "*?[".contains($0) }) {
                    fail(pathNode, "an s3:// path is a prefix, not a glob: '\(path)' has a wildcard (select days with since/until, sources with source_ids)")
                    return nil
                }
                if let n = m["endpoint"], let endpoint = string(n, "endpoint") {
                    guard endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else {
                        fail(n, "endpoint must be an http:// or https:// URL (an S3-compatible store), not '\(endpoint)'")
                        return nil
                    }
                    source.endpoint = endpoint
                }
            } else if let n = m["endpoint"] {
                fail(n, "endpoint is for s3:// sources; '\(path)' is a local path")
                return nil
            }
            do {
                _ = try Glob(path)
                let glob = try Glob(source.path)
                if glob.hasWildcards { source.glob = glob }
            } catch {
                globIssue(pathNode, path, error, "bad glob '\(path)'")
                return nil
            }
            if let ids = m["source_ids"] { source.sourceIds = globs(ids, "source_ids", pathAware: true) }
            if let n = m["since"] { source.since = day(n, "since", allowLast: true) }
            if let n = m["until"] { source.until = day(n, "until", allowLast: false) }
            if case .date(let since)? = source.since, case .date(let until)? = source.until, since > until {
                fail(m["until"], "until (\(until)) is before since (\(since)): the range selects no day")
            }
            return source
        }

        mutating func day(_ node: Node, _ what: String, allowLast: Bool) -> DayBound? {
            guard let text = string(node, what) else { return nil }
            if let bound = DayBound.parse(text, allowLast: allowLast) { return bound }
            fail(node, "\(what) must be a date YYYY-MM-DD, 'today', 'yesterday', 'N days ago'\(allowLast ? " or 'last N days'" : ""), not '\(text)'")
            return nil
        }

        mutating func filters(_ node: Node) -> MessageFilter {
            var filter = MessageFilter()
            guard let m = mapping(node, "filters", allowed: ["types", "events", "honour_opt_outs"]) else { return filter }
            if let n = m["types"], let t = mapping(n, "filters.types", allowed: ["include", "exclude"]) {
                if let inc = t["include"] { filter.includeTypes = Set(callTypes(inc, "filters.types.include")) }
                if let exc = t["exclude"] { filter.excludeTypes = Set(callTypes(exc, "filters.types.exclude")) }
            }
            if let n = m["events"], let e = mapping(n, "filters.events", allowed: ["include", "exclude"]) {
                if let inc = e["include"] { filter.includeEvents = globs(inc, "filters.events.include", pathAware: false) }
                if let exc = e["exclude"] { filter.excludeEvents = globs(exc, "filters.events.exclude", pathAware: false) }
            }
            if let n = m["honour_opt_outs"], let b = bool(n, "filters.honour_opt_outs") { filter.honourOptOuts = b }
            return filter
        }

        mutating func callTypes(_ node: Node, _ what: String) -> [CallType] {
            var out: [CallType] = []
            for (text, item) in strings(node, what) ?? [] {
                if let type = CallType(rawValue: text.lowercased()) {
                    out.append(type)
                } else {
                    fail(item, "'\(text)' in \(what) is not a call type; use \(CallType.allCases.map(\.rawValue).joined(separator: ", "))")
                }
            }
            return out
        }

        mutating func privacy(_ node: Node) -> Privacy {
            var privacy = Privacy()
            guard let m = mapping(node, "privacy", allowed: ["drop", "hash", "hash_key_env"]) else { return privacy }
            func paths(_ node: Node, _ what: String, into reader: inout Reader) -> [[String]] {
                var out: [[String]] = []
                for (text, item) in reader.strings(node, what) ?? [] {
                    let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                    if parts.contains(where: \.isEmpty) {
                        reader.fail(item, "'\(text)' in \(what) is not a field path; write keys joined by dots, like context.ip or traits.email")
                    } else {
                        out.append(parts)
                    }
                }
                return out
            }
            if let n = m["drop"] { privacy.drop = paths(n, "privacy.drop", into: &self) }
            if let n = m["hash"] { privacy.hash = paths(n, "privacy.hash", into: &self) }
            if let n = m["hash_key_env"], let v = string(n, "privacy.hash_key_env") {
                if v.isEmpty || !v.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }) {
                    fail(n, "privacy.hash_key_env must name an environment variable (letters, digits, _), not '\(v)'")
                } else {
                    privacy.hashKeyVariable = v
                }
            }
            if !privacy.hash.isEmpty && privacy.hashKeyVariable == nil && m["hash_key_env"] == nil {
                fail(m["hash"], "privacy.hash needs privacy.hash_key_env: the environment variable that holds the hashing key")
            }
            return privacy
        }

        mutating func warehouseSettings(_ node: Node) -> Pipeline.WarehouseSettings? {
            guard let m = mapping(node, "warehouse", allowed: ["path", "url", "schema", "column_limit", "event_table_limit", "max_line_bytes", "indexes", "journal", "busy_timeout"]) else { return nil }
            // An SQLite file (`path`) or a PostgreSQL database (`url`, and its `schema`).
            if m["path"] != nil && m["url"] != nil {
                fail(m["url"], "warehouse takes path (an SQLite file) or url (PostgreSQL), not both")
                return nil
            }
            guard let pathNode = m["path"] ?? m["url"] else {
                fail(node, "warehouse needs path (an SQLite file) or url (a PostgreSQL database: postgresql://user@host:port/database)")
                return nil
            }
            let key = m["url"] != nil ? "warehouse.url" : "warehouse.path"
            guard let path = string(pathNode, key) else { return nil }
            guard !path.isEmpty else {
                fail(pathNode, "\(key) must not be empty")
                return nil
            }
            let isURL = PostgresLocation.isPostgres(path)
            if m["url"] != nil && !isURL {
                fail(pathNode, "warehouse.url must be a PostgreSQL URL (postgresql:// or postgres://); an SQLite file is warehouse.path")
                return nil
            }
            if m["path"] != nil && isURL {
                fail(pathNode, "warehouse.path is an SQLite file; a PostgreSQL URL goes in warehouse.url")
                return nil
            }
            var settings = Pipeline.WarehouseSettings(path: isURL ? path : resolve(path))
            if let n = m["schema"], let v = string(n, "warehouse.schema") {
                if !isURL { fail(n, "warehouse.schema is for a PostgreSQL warehouse (warehouse.url)") }
                settings.schema = v
            }
            if isURL {
                // What libpq cannot read, or a schema name that is not plain, said at its line.
                do { _ = try PostgresLocation(path, schema: settings.schema) } catch { fail(pathNode, "\(error)") }
            }
            if let n = m["column_limit"], let v = int(n, "warehouse.column_limit", range: 1...1900) { settings.columnLimit = v }
            if let n = m["event_table_limit"], let v = int(n, "warehouse.event_table_limit", range: 0...EventTableLimit.maximum) {
                settings.eventTableLimit = v
            }
            if let n = m["max_line_bytes"], let v = int(n, "warehouse.max_line_bytes", range: 1024...(1 << 30)) { settings.maxLineBytes = v }
            if let n = m["indexes"], let v = bool(n, "warehouse.indexes") { settings.indexes = v }
            if let n = m["busy_timeout"], let v = int(n, "warehouse.busy_timeout", range: 0...86_400) { settings.busyTimeout = Double(v) }
            if let n = m["journal"], let v = string(n, "warehouse.journal") {
                if let mode = JournalMode(rawValue: v) {
                    settings.journal = mode
                } else {
                    fail(n, "warehouse.journal must be wal or rollback, not '\(v)'")
                }
            }
            return settings
        }

        mutating func modelSettings(_ node: Node) -> ModelOptions {
            var settings = ModelOptions()
            guard let m = mapping(node, "models", allowed: ["enabled", "session_timeout_minutes"]) else { return settings }
            if let n = m["enabled"], let v = bool(n, "models.enabled") { settings.enabled = v }
            if let n = m["session_timeout_minutes"], let v = int(n, "models.session_timeout_minutes", range: 1...10_080) {
                settings.sessionTimeoutMinutes = v
            }
            return settings
        }

        /// `dashboards: {funnel: [STEP, ...]}`: 2 to 10 steps, each a track event's raw name or `page:/path`.
        mutating func dashboardFunnel(_ node: Node) -> [String] {
            guard let m = mapping(node, "dashboards", allowed: ["funnel"]), let list = m["funnel"] else { return [] }
            guard case .sequence(let items) = list else {
                fail(list, "dashboards.funnel must be a list of steps (track event names, or page:/path)")
                return []
            }
            var steps: [String] = []
            for item in items {
                guard let step = string(item, "a dashboards.funnel step") else { continue }
                if step.isEmpty || step == "page:" { fail(item, "a dashboards.funnel step must not be empty") } else { steps.append(step) }
            }
            if !(2...10).contains(Array(items).count) { fail(list, "dashboards.funnel has \(Array(items).count) steps; give 2 to 10") }
            return steps
        }

        mutating func runSettings(_ node: Node) -> Pipeline.RunSettings {
            var settings = Pipeline.RunSettings()
            guard let m = mapping(node, "run", allowed: ["jobs", "report", "metrics", "strict"]) else { return settings }
            if let n = m["jobs"], let v = int(n, "run.jobs", range: 1...256) { settings.jobs = v }
            if let n = m["report"], let v = string(n, "run.report") { settings.report = resolve(v) }
            if let n = m["metrics"], let v = string(n, "run.metrics") { settings.metrics = resolve(v) }
            if let n = m["strict"], let v = bool(n, "run.strict") { settings.strict = v }
            return settings
        }
    }
}
