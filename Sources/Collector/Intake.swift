import Foundation
import SegmentCore

/// The routes of Segment's HTTP Tracking API the collector answers.
public enum Route: String, Sendable, CaseIterable {
    case track, identify, page, screen, group, alias, batch, `import`

    /// `import` is Segment's older name for batch.
    public var isBatch: Bool { self == .batch || self == .import }
}

/// What one request turns into, before anything is written: the lines to append for a
/// source, or a refusal with its status (HTTP-free, so it is tested without a server).
public enum Decision: Sendable {
    /// `suppressed`: messages of forgotten people left out of `lines` (answered 200 all the same).
    case write(source: String, lines: [[UInt8]], suppressed: Int)
    case refuse(Refusal)
}

public struct SuppressionFileError: Error, CustomStringConvertible {
    public var description: String
}

public struct Refusal: Error, Sendable, Equatable {
    public var status: Int
    /// A short machine name, the `reason` label of the rejection metrics.
    public var reason: String
    /// The sentence the client reads in `{"success":false,"error":...}`.
    public var message: String
    /// The source, when the write key was known before the refusal.
    public var source: String?

    public init(status: Int, reason: String, message: String, source: String? = nil) {
        self.status = status
        self.reason = reason
        self.message = message
        self.source = source
    }
}

/// Authentication, limits and stamping of one request. Answers as Segment's API
/// does: a body that is not JSON, nested too deep or too large gets 400; a missing or unknown
/// write key 401; anything parseable is accepted and written, even a message that breaks the
/// spec (the loader records it in `_rejects`, where nothing is lost, and client libraries do
/// not retry a 4xx).
public struct Intake: Sendable {
    public let config: CollectorConfig
    /// SHA-256 of each write key, compared in constant time (see `source(forKey:)`).
    private let keys: [(digest: [UInt8], source: String)]
    private let stamper = Stamper()
    /// The forgotten people (the file `suppressions` names), swapped whole when it is re-read.
    private let suppression: Locked<SuppressionList>

    public init(config: CollectorConfig, suppression: SuppressionList = SuppressionList()) {
        self.config = config
        keys = config.sources.map { (SHA256Hasher.hash($0.writeKey), $0.sourceId) }
        self.suppression = Locked(suppression)
    }

    /// The suppression list from now on.
    public func replaceSuppression(_ list: SuppressionList) {
        suppression.withLock { $0 = list }
    }

    public var suppressedIds: Int { suppression.withLock { $0.count } }

    /// Reads an exported suppression list; the error names the file and line.
    public static func readSuppression(path: String) throws -> SuppressionList {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw SuppressionFileError(description: "cannot read the suppression list \(path)")
        }
        do { return try SuppressionList.parse(text) } catch {
            throw SuppressionFileError(description: "\(path): \(error)")
        }
    }

    /// The most a request body of `route` may hold (inflated): a batch's limit or a message's.
    public func bodyLimit(_ route: Route) -> Int { route.isBatch ? config.batchLimitBytes : config.messageLimitBytes }

    /// The source whose write key is `key`. Every configured key is compared, each in
    /// constant time over digests of equal length, so the time taken says nothing about how
    /// much of a key was right or which key it was.
    public func source(forKey key: String) -> String? {
        let presented = SHA256Hasher.hash(key)
        var found: String?
        for entry in keys {
            var difference: UInt8 = 0
            for i in 0..<presented.count { difference |= presented[i] ^ entry.digest[i] }
            if difference == 0 && found == nil { found = entry.source }
        }
        return found
    }

    /// The write key of an `Authorization: Basic base64(key:)` header (the password is empty;
    /// a key alone without the colon is taken too); nil when the header is something else.
    public static func basicKey(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
              let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        if let colon = text.firstIndex(of: ":") { return String(text[..<colon]) }
        return text
    }

    /// The client's address: the first `X-Forwarded-For` hop when the configuration trusts a
    /// proxy in front, else the connection's peer.
    public func clientAddress(peer: String?, forwardedFor: String?) -> String? {
        if config.trustForwardedFor, let header = forwardedFor,
           let first = header.split(separator: ",").first?.trimmingCharacters(in: .whitespaces), !first.isEmpty {
            return first
        }
        return peer
    }

    /// Decides one request whose body (at most `bodyLimit(route)` bytes as received) has been read.
    public func decide(route: Route, body raw: [UInt8], gzip: Bool, authorization: String?,
                       client: String?, now: Instant) -> Decision {
        let limit = bodyLimit(route)
        var source: String?
        if let authorization {
            guard let key = Self.basicKey(authorization) else {
                return .refuse(Refusal(status: 401, reason: "bad_auth", message: "the Authorization header must be Basic with the write key as user name"))
            }
            guard let known = self.source(forKey: key) else {
                return .refuse(Refusal(status: 401, reason: "unknown_key", message: "unknown write key"))
            }
            source = known
        }
        var body = raw
        if gzip {
            do throws(GzipMember.InflateFailure) {
                body = try GzipMember.inflate(raw, limit: limit)
            } catch {
                switch error {
                case .tooLarge:
                    return .refuse(Refusal(status: 400, reason: "too_large", message: tooLargeMessage(route), source: source))
                case .corrupt(let why):
                    return .refuse(Refusal(status: 400, reason: "bad_gzip", message: "the body is not valid gzip (Content-Encoding: gzip): \(why)", source: source))
                }
            }
        }
        guard body.count <= limit else {
            return .refuse(Refusal(status: 400, reason: "too_large", message: tooLargeMessage(route), source: source))
        }
        let parsed: JSONValue
        do {
            parsed = try body.withUnsafeBufferPointer { buffer throws(JSONParseError) in
                try JSONParser.parse(buffer, maxDepth: config.maxDepth)
            }
        } catch {
            return .refuse(Refusal(status: 400, reason: "invalid_json", message: "the body is not valid JSON: \(error)", source: source))
        }
        guard case .object = parsed else {
            return .refuse(Refusal(status: 400, reason: "not_object", message: "the body must be a JSON object", source: source))
        }
        if source == nil {
            guard let key = parsed["writeKey"]?.stringValue, !key.isEmpty else {
                return .refuse(Refusal(status: 401, reason: "missing_key", message: "no write key: send it as the Basic auth user name or as writeKey in the body"))
            }
            guard let known = self.source(forKey: key) else {
                return .refuse(Refusal(status: 401, reason: "unknown_key", message: "unknown write key"))
            }
            source = known
        }
        let sourceId = source!
        if route.isBatch {
            guard case .array(let items)? = parsed["batch"] else {
                return .refuse(Refusal(status: 400, reason: "no_batch", message: "a \(route.rawValue) body needs \"batch\": a list of messages", source: sourceId))
            }
            var scratch: [UInt8] = []
            for (index, item) in items.enumerated() {
                scratch.removeAll(keepingCapacity: true)
                JSONWriter.write(item, into: &scratch, sortedKeys: false)
                if scratch.count > config.messageLimitBytes {
                    return .refuse(Refusal(status: 400, reason: "too_large",
                                           message: "message \(index) of the batch is \(scratch.count) bytes; the limit is \(config.messageLimitBytes) bytes per message",
                                           source: sourceId))
                }
            }
        }
        let messages = stamper.messages(in: parsed, route: route.rawValue, source: sourceId, peer: client, now: now)
        let list = suppression.withLock { $0 }
        var lines: [[UInt8]] = []
        var suppressed = 0
        lines.reserveCapacity(messages.count)
        for message in messages {
            // As Segment answers a suppressed user's calls: accepted, and dropped.
            if list.suppresses(message) {
                suppressed += 1
                continue
            }
            var line: [UInt8] = []
            line.reserveCapacity(512)
            JSONWriter.write(Self.withoutWriteKey(message), into: &line, sortedKeys: false)
            lines.append(line)
        }
        return .write(source: sourceId, lines: lines, suppressed: suppressed)
    }

    public func tooLargeMessage(_ route: Route) -> String {
        route.isBatch
            ? "the batch is larger than \(config.batchLimitBytes) bytes; send fewer messages per request"
            : "the message is larger than \(config.messageLimitBytes) bytes"
    }

    /// The write key is a credential: it is not written into the archives.
    static func withoutWriteKey(_ message: JSONValue) -> JSONValue {
        guard case .object(var members) = message, members.contains(where: { $0.key == "writeKey" }) else { return message }
        members.removeAll { $0.key == "writeKey" }
        return .object(members)
    }

    /// The JSON body of an answer: `{"success":true}` or `{"success":false,"error":...}`.
    public static func answer(_ refusal: Refusal?) -> [UInt8] {
        guard let refusal else { return Array(#"{"success":true}"#.utf8) }
        var out: [UInt8] = Array(#"{"success":false,"error":"#.utf8)
        JSONWriter.writeString(refusal.message, into: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The CORS headers for a request from `origin`: none when it is not allowed.
    public func corsOrigin(_ origin: String?) -> String? {
        guard let origin, !config.allowedOrigins.isEmpty else { return nil }
        if config.allowedOrigins.contains("*") { return "*" }
        return config.allowedOrigins.contains(origin) ? origin : nil
    }
}
