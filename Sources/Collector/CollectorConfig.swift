import Foundation
import YAMLCore
import Yams
import SegmentCore

/// What `segment-collector` runs with: from `--config FILE` (YAML, read strictly with the
/// position of every mistake) and/or the quick-start flags, which override the file.
public struct CollectorConfig: Sendable {
    /// A write key and the source id its messages are archived under.
    public struct Source: Sendable, Equatable {
        public var writeKey: String
        public var sourceId: String
        public init(writeKey: String, sourceId: String) {
            self.writeKey = writeKey
            self.sourceId = sourceId
        }
    }

    public var host = "127.0.0.1"
    public var port = 8088
    /// The folder that receives `segment-logs/` (and `.incoming/` while archives are open).
    public var out: String?
    public var sources: [Source] = []
    /// Segment's limits: 32 KB per message (a single call, or each message of a batch) and
    /// 500 KB per batch request, measured on the inflated body.
    public var messageLimitBytes = 32 * 1024
    public var batchLimitBytes = 500 * 1024
    /// JSON nesting deeper than this is refused (400).
    public var maxDepth = 64
    /// A connection idle this long, or a body still arriving after this long, is cut off.
    public var readTimeoutSeconds = 30
    /// Open connections at once; more wait in the listen backlog. An idle keep-alive
    /// connection costs a descriptor and a few KB, so this is high; the start raises the
    /// process's descriptor limit to fit it.
    public var maxConnections = 10_000
    /// Request bodies being read at once; more requests wait for one to finish. With the body
    /// limit this bounds the memory bodies take (bodies × batch limit: 125 MB by default).
    public var maxBodies = 256
    /// Seconds a 503 asks the client to wait (Retry-After).
    public var retryAfterSeconds = 5
    /// Take the client address from the first `X-Forwarded-For` hop (behind a proxy you run).
    public var trustForwardedFor = false
    /// Origins browsers may post from (`*` for any); none: no CORS headers are sent.
    public var allowedOrigins: [String] = []
    public var commit = GroupCommitter.Settings()
    /// The suppression list `segment-loader suppressions export` writes: messages of the people
    /// it names are answered 200, counted and never written (re-read on SIGHUP).
    public var suppressions: String?

    public init() {}

    /// The listening address as `host:port`.
    public var listen: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The source ids are folder names in `segment-logs/`: letters, digits, `-`, `_`, `.`,
    /// not starting with a dot.
    public static func isValidSourceId(_ id: String) -> Bool {
        guard let first = id.utf8.first, first != UInt8(ascii: "."), id.utf8.count <= 200 else { return false }
        return id.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
        }
    }

    /// `host:port`, `[v6]:port` or `:port` (127.0.0.1); nil when malformed.
    public static func parseListen(_ text: String) -> (host: String, port: Int)? {
        let host: Substring, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (host.isEmpty ? "127.0.0.1" : String(host), port)
    }

    /// `WRITEKEY=SOURCE_ID`, as `--source` takes it.
    public static func parseSource(_ text: String) -> Source? {
        guard let eq = text.lastIndex(of: "=") else { return nil }
        let key = String(text[..<eq]), id = String(text[text.index(after: eq)...])
        guard !key.isEmpty, isValidSourceId(id) else { return nil }
        return Source(writeKey: key, sourceId: id)
    }

    /// What makes the configuration unusable once files and flags are combined.
    public func problems() -> [String] {
        var problems: [String] = []
        if out == nil { problems.append("no output folder: give --out DIR or 'out:' in the configuration") }
        if sources.isEmpty { problems.append("no sources: give --source WRITEKEY=SOURCE_ID or 'sources:' in the configuration") }
        var seen = Set<String>()
        for source in sources where !seen.insert(source.writeKey).inserted {
            problems.append("the write key of source '\(source.sourceId)' is given more than once")
        }
        return problems
    }
}

/// Reads a collector configuration file strictly (unknown keys, wrong types, out-of-range
/// numbers, bad source ids, duplicate write keys), every mistake with its line and column.
public enum CollectorConfigFile {
    public static let example = """
        listen: 127.0.0.1:8088
        out: /var/lib/segment-collector
        sources:
          - write_key: WRITE_KEY_OF_THE_WEB_APP
            source_id: web
        """

    public static func load(path: String) throws(PipelineError) -> CollectorConfig {
        let (text, directory) = try StrictYAML.read(path: path, what: "the configuration")
        return try parse(text, file: path, directory: directory)
    }

    public static func parse(_ text: String, file: String, directory: String) throws(PipelineError) -> CollectorConfig {
        let root = try StrictYAML.compose(text, file: file, what: "the configuration")
        var reader = Reader(file: file, directory: directory)
        let config = reader.config(root)
        if !reader.issues.isEmpty {
            throw PipelineError(issues: reader.issues.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
        }
        return config
    }

    struct Reader: StrictYAMLReader {
        let file: String
        let directory: String
        var issues: [PipelineIssue] = []

        mutating func config(_ root: Node) -> CollectorConfig {
            var config = CollectorConfig()
            guard let m = mapping(root, "the configuration",
                                  allowed: ["listen", "out", "sources", "limits", "flush", "archives", "cors", "proxy", "suppressions"]) else { return config }
            if let n = m["listen"], let text = string(n, "listen") {
                if let (host, port) = CollectorConfig.parseListen(text) {
                    config.host = host
                    config.port = port
                } else {
                    fail(n, "listen must be HOST:PORT (e.g. 127.0.0.1:8088), not '\(text)'")
                }
            }
            if let n = m["out"], let text = string(n, "out") {
                config.out = text.hasPrefix("/") ? text : URL(fileURLWithPath: directory).appendingPathComponent(text).standardizedFileURL.path
            }
            if let n = m["sources"] { config.sources = sources(n) }
            if let n = m["suppressions"], let text = string(n, "suppressions") {
                config.suppressions = text.hasPrefix("/") ? text : URL(fileURLWithPath: directory).appendingPathComponent(text).standardizedFileURL.path
            }
            if let n = m["limits"], let l = mapping(n, "limits", allowed: ["message_bytes", "batch_bytes", "json_depth", "read_timeout_seconds", "retry_after_seconds", "max_connections", "max_bodies"]) {
                if let v = l["message_bytes"].flatMap({ int($0, "limits.message_bytes", range: 1024...(16 << 20)) }) { config.messageLimitBytes = v }
                if let v = l["batch_bytes"].flatMap({ int($0, "limits.batch_bytes", range: 1024...(64 << 20)) }) { config.batchLimitBytes = v }
                if let v = l["json_depth"].flatMap({ int($0, "limits.json_depth", range: 4...JSONParser.defaultMaxDepth) }) { config.maxDepth = v }
                if let v = l["read_timeout_seconds"].flatMap({ int($0, "limits.read_timeout_seconds", range: 1...3600) }) { config.readTimeoutSeconds = v }
                if let v = l["max_connections"].flatMap({ int($0, "limits.max_connections", range: 1...1_000_000) }) { config.maxConnections = v }
                if let v = l["max_bodies"].flatMap({ int($0, "limits.max_bodies", range: 1...100_000) }) { config.maxBodies = v }
                if let v = l["retry_after_seconds"].flatMap({ int($0, "limits.retry_after_seconds", range: 1...3600) }) { config.retryAfterSeconds = v }
                if config.batchLimitBytes < config.messageLimitBytes, let n = l["batch_bytes"] ?? l["message_bytes"] {
                    fail(n, "limits.batch_bytes (\(config.batchLimitBytes)) must not be less than limits.message_bytes (\(config.messageLimitBytes))")
                }
            }
            if let n = m["flush"], let f = mapping(n, "flush", allowed: ["interval_ms", "bytes", "queue_bytes"]) {
                if let v = f["interval_ms"].flatMap({ int($0, "flush.interval_ms", range: 1...10_000) }) { config.commit.intervalMilliseconds = v }
                if let v = f["bytes"].flatMap({ int($0, "flush.bytes", range: 1024...(256 << 20)) }) { config.commit.flushBytes = v }
                if let v = f["queue_bytes"].flatMap({ int($0, "flush.queue_bytes", range: 1024...(4 << 30)) }) { config.commit.queueLimitBytes = v }
            }
            if let n = m["archives"], let a = mapping(n, "archives", allowed: ["max_bytes", "max_age_seconds", "gzip_level"]) {
                if let v = a["max_bytes"].flatMap({ int($0, "archives.max_bytes", range: 1024...(16 << 30)) }) { config.commit.archiveMaxBytes = Int64(v) }
                if let v = a["max_age_seconds"].flatMap({ int($0, "archives.max_age_seconds", range: 1...86_400) }) { config.commit.archiveMaxAgeSeconds = Int64(v) }
                if let v = a["gzip_level"].flatMap({ int($0, "archives.gzip_level", range: 1...9) }) { config.commit.gzipLevel = Int32(v) }
            }
            if let n = m["cors"], let c = mapping(n, "cors", allowed: ["allowed_origins"]), let o = c["allowed_origins"] {
                for (origin, node) in strings(o, "cors.allowed_origins") ?? [] {
                    if origin == "*" || origin.hasPrefix("http://") || origin.hasPrefix("https://") {
                        config.allowedOrigins.append(origin.hasSuffix("/") ? String(origin.dropLast()) : origin)
                    } else {
                        fail(node, "an allowed origin is '*' or a scheme and host such as https://www.example.com, not '\(origin)'")
                    }
                }
            }
            if let n = m["proxy"], let p = mapping(n, "proxy", allowed: ["trust_forwarded_for"]),
               let v = p["trust_forwarded_for"].flatMap({ bool($0, "proxy.trust_forwarded_for") }) {
                config.trustForwardedFor = v
            }
            return config
        }

        mutating func sources(_ node: Node) -> [CollectorConfig.Source] {
            guard case .sequence(let items) = node else {
                fail(node, "sources must be a list of {write_key, source_id}, not \(kind(node))")
                return []
            }
            var out: [CollectorConfig.Source] = []
            var keys: [String: Node] = [:]
            for item in items {
                guard let s = mapping(item, "each source", allowed: ["write_key", "source_id"], required: ["write_key", "source_id"]),
                      let keyNode = s["write_key"], let idNode = s["source_id"],
                      let key = string(keyNode, "write_key"), let id = string(idNode, "source_id") else { continue }
                if key.isEmpty { fail(keyNode, "write_key must not be empty"); continue }
                if let earlier = keys[key] {
                    fail(keyNode, "this write key is already given at line \(earlier.mark?.line ?? 0): a key names one source")
                    continue
                }
                keys[key] = keyNode
                guard CollectorConfig.isValidSourceId(id) else {
                    fail(idNode, "source_id '\(id)' must be letters, digits, '-', '_' or '.', not starting with '.': it names a folder in segment-logs/")
                    continue
                }
                out.append(.init(writeKey: key, sourceId: id))
            }
            if items.isEmpty { fail(node, "sources is empty: give at least one {write_key, source_id}") }
            return out
        }
    }
}
