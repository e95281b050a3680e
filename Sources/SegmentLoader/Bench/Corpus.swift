import Foundation
import SegmentCore
import SegmentStages

/// A deterministic synthetic corpus for the benchmark: Segment-like traffic with realistic
/// context, 3-15 properties of every JSON type, keys that first appear part-way through, and
/// about 1% of messages sent again in a later file.
public struct CorpusSpec: Sendable, Hashable {
    public var events: Int
    public var files: Int
    public var seed: UInt64
    /// The first file's day, counted from 2024-01-01 (file `f` holds day `firstDay + f`): a
    /// negative value makes a corpus of the days before the default one, the history a
    /// warehouse holds before a night's new archives arrive.
    public var firstDay: Int
    /// 0: the usual mix of calls over 40 event names. Otherwise every message is a track call
    /// named "Viewed Product <n>", n cycling through this many values in message order (a
    /// product id inside the event name, a common instrumentation mistake): with at least as
    /// many events as names, every name occurs.
    public var eventNames: Int

    public init(events: Int = 500_000, files: Int = 8, seed: UInt64 = 1, firstDay: Int = 0, eventNames: Int = 0) {
        self.events = events
        self.files = files
        self.seed = seed
        self.firstDay = firstDay
        self.eventNames = eventNames
    }

    public var folderName: String {
        "corpus-e\(events)-f\(files)-s\(seed)" + (firstDay == 0 ? "" : "-d\(firstDay)") + (eventNames == 0 ? "" : "-n\(eventNames)")
    }

    func eventsIn(file: Int) -> Int {
        events / files + (file < events % files ? 1 : 0)
    }
}

/// SplitMix64: small, fast and the same on every machine.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(_ range: Range<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    mutating func pick<T>(_ items: [T]) -> T { items[int(0..<items.count)] }
}

public enum Corpus {
    /// Writes the corpus's gzip files into `folder` (created), `jobs` files at a time, and a hidden
    /// `.manifest.json` last (hidden, so loading the folder skips it); an existing folder with a manifest is reused.
    public static func generate(_ spec: CorpusSpec, into folder: URL, jobs: Int) throws -> [URL] {
        let fm = FileManager.default
        let files = (0..<spec.files).map { folder.appendingPathComponent(String(format: "part-%03d.ndjson.gz", $0)) }
        let manifest = folder.appendingPathComponent(".manifest.json")
        if fm.fileExists(atPath: manifest.path) { return files }
        try? fm.removeItem(at: folder)
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        let failures = Locked<[String]>([])
        startWorkers(jobs: jobs, count: spec.files, label: "corpus") { f in
            do {
                let writer = try GzipWriter(path: files[f].path)
                var buffer: [UInt8] = []
                buffer.reserveCapacity(1 << 20)
                for i in 0..<spec.eventsIn(file: f) {
                    JSONWriter.write(message(spec, file: f, index: i), into: &buffer, sortedKeys: false)
                    buffer.append(0x0a)
                    if buffer.count >= 1 << 20 {
                        try writer.write(buffer)
                        buffer.removeAll(keepingCapacity: true)
                    }
                }
                try writer.write(buffer)
                try writer.finish()
            } catch {
                failures.withLock { $0.append("\(files[f].path): \(error)") }
            }
        }.wait()
        if let failure = failures.withLock({ $0.first }) { throw ReadError(path: folder.path, message: failure) }
        let text = "{\"events\":\(spec.events),\"files\":\(spec.files),\"seed\":\(spec.seed),\"event_names\":\(spec.eventNames)}\n"
        try Data(text.utf8).write(to: manifest)
        return files
    }

    static let eventNames: [String] = [
        "Application Enabled", "Application Disabled", "Cluster Provisioning Success", "Cluster Provisioning Failed",
        "Order Completed", "Order Refunded", "Product Viewed", "Product Added", "Product Removed", "Cart Viewed",
        "Checkout Started", "Checkout Step Completed", "Payment Info Entered", "Coupon Applied", "Signed Up",
        "Signed In", "Signed Out", "Invite Sent", "Invite Accepted", "Trial Started", "Trial Ended",
        "Subscription Upgraded", "Subscription Downgraded", "Feature Flag Evaluated", "Search Performed",
        "Video Playback Started", "Video Playback Completed", "File Uploaded", "File Downloaded", "Report Exported",
        "project:created", "project:deployed", "project:deleted", "cli:login", "cli:command", "api_key_created",
        "Webhook Delivered", "Webhook Failed", "Dashboard Shared", "Notification Clicked",
    ]

    static let propertyKeys: [String] = [
        "plan", "seats", "price", "currency", "orderId", "productId", "sku", "quantity", "discount", "coupon",
        "category", "brand", "variant", "position", "url", "region", "durationMs", "nodeCount", "ha", "projectId",
        "clusterId", "revenue", "tax", "shipping", "query", "resultsCount", "flag", "enabled", "retries", "source",
    ]

    static let userAgents = [
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    ]

    static func uuid(_ rng: inout SplitMix64) -> String {
        let a = rng.next(), b = rng.next()
        let hex = String(a, radix: 16).leftPadded(16) + String(b, radix: 16).leftPadded(16)
        let u = Array(hex)
        return String(u[0..<8]) + "-" + String(u[8..<12]) + "-4" + String(u[13..<16]) + "-a" + String(u[17..<20]) + "-" + String(u[20..<32])
    }

    /// Message `index` of file `file`: a pure function of the spec and position, so a
    /// duplicate can be produced again exactly.
    static func message(_ spec: CorpusSpec, file: Int, index: Int) -> JSONValue {
        var pick = SplitMix64(seed: spec.seed &* 0x1000_0000_01B3 ^ UInt64(file) << 40 ^ UInt64(index))
        _ = pick.next()
        if file > 0, index > 0, pick.chance(0.01) {
            // A retry: the same message as one of the previous file's.
            return message(spec, file: file - 1, index: pick.int(0..<spec.eventsIn(file: file - 1)))
        }
        var rng = pick
        let dayStart = 1_704_067_200 + Int64(spec.firstDay + file) * 86_400  // 2024-01-01 + firstDay + file days
        let t = Instant(seconds: dayStart + Int64(index) * 86_400 / Int64(max(1, spec.eventsIn(file: file))), nanos: Int64(rng.int(0..<1000)) * 1_000_000)
        let sent = t + Instant(seconds: 0, nanos: Int64(rng.int(20..<500)) * 1_000_000)
        let received = sent + Instant(seconds: Int64(rng.int(0..<3)), nanos: Int64(rng.int(0..<1000)) * 1_000_000)
        let mobile = rng.chance(0.3)
        var context: [(key: String, value: JSONValue)] = [
            ("library", .object([("name", .string(mobile ? "analytics-ios" : "analytics.js")), ("version", .string(mobile ? "4.1.8" : "2.11.1"))])),
            ("ip", .string("203.0.\(rng.int(0..<255)).\(rng.int(1..<255))")),
            ("locale", .string(rng.pick(["en-US", "en-GB", "de-DE", "fr-FR", "ja-JP"]))),
            ("userAgent", .string(rng.pick(userAgents))),
        ]
        if mobile {
            context += [
                ("device", .object([("id", .string(uuid(&rng))), ("manufacturer", .string("Apple")), ("model", .string(rng.pick(["iPhone14,2", "iPhone15,3", "iPad13,1"]))), ("type", .string("ios"))])),
                ("os", .object([("name", .string("iOS")), ("version", .string(rng.pick(["16.6", "17.0", "17.1"])))])),
                ("app", .object([("name", .string("Acme")), ("version", .string("4.2.\(rng.int(0..<9))")), ("build", .string("\(400 + rng.int(0..<30))")), ("namespace", .string("com.acme.app"))])),
                ("screen", .object([("width", .int(390)), ("height", .int(844)), ("density", .int(3))])),
                ("network", .object([("wifi", .bool(rng.chance(0.6))), ("carrier", .string(rng.pick(["T-Mobile", "Verizon", "AT&T"])))])),
                ("timezone", .string("America/New_York")),
            ]
        } else {
            let path = "/" + rng.pick(["", "pricing", "docs/install", "dashboard", "settings/billing", "blog/launch-week"])
            context.append(("page", .object([
                ("path", .string(path)), ("referrer", .string(rng.pick(["", "https://www.google.com/", "https://news.ycombinator.com/"]))),
                ("search", .string("")), ("title", .string("Acme Cloud: \(path)")), ("url", .string("https://app.acme.example" + path)),
            ])))
        }
        let userId: JSONValue = rng.chance(0.8) ? .string("user_\(rng.int(0..<20_000))") : .null
        var members: [(key: String, value: JSONValue)] = [
            ("anonymousId", .string(uuid(&rng))), ("messageId", .string(uuid(&rng))), ("userId", userId),
            ("channel", .string(mobile ? "mobile" : "client")), ("context", .object(context)), ("integrations", .object([])),
            ("originalTimestamp", .string(Timestamp.iso8601(t))), ("sentAt", .string(Timestamp.iso8601(sent))),
            ("receivedAt", .string(Timestamp.iso8601(received))), ("timestamp", .string(Timestamp.iso8601(received - (sent - t)))),
            ("projectId", .string("bench")), ("version", .int(2)),
        ]
        let roll = spec.eventNames > 0 ? 0 : rng.int(0..<100)
        let late = file >= spec.files / 2
        switch roll {
        case 0..<70 where spec.eventNames > 0:
            let position = (0..<file).reduce(0) { $0 + spec.eventsIn(file: $1) } + index
            let product = position % spec.eventNames
            members.insert(("type", .string("track")), at: 0)
            members.append(("event", .string("Viewed Product \(10_000 + product)")))
            members.append(("properties", .object(properties(&rng, event: product % eventNames.count, late: late))))
        case 0..<70:
            let eventIndex = rng.int(0..<eventNames.count)
            members.insert(("type", .string("track")), at: 0)
            members.append(("event", .string(eventNames[eventIndex])))
            members.append(("properties", .object(properties(&rng, event: eventIndex, late: late))))
        case 70..<82:
            members.insert(("type", .string("page")), at: 0)
            members.append(("name", .string(rng.pick(["Home", "Pricing", "Docs", "Dashboard"]))))
            members.append(("properties", .object([("path", .string("/")), ("title", .string("Acme")), ("url", .string("https://app.acme.example/")), ("referrer", .string(""))])))
        case 82..<90:
            members.insert(("type", .string("identify")), at: 0)
            var traits: [(key: String, value: JSONValue)] = [
                ("email", .string("user\(rng.int(0..<20_000))@example.com")), ("name", .string("User \(rng.int(0..<20_000))")),
                ("plan", .string(rng.pick(["free", "team", "enterprise"]))), ("logins", .int(Int64(rng.int(1..<500)))),
                ("createdAt", .string(Timestamp.iso8601(Instant(seconds: 1_600_000_000 + Int64(rng.int(0..<90_000_000)))))),
                ("company", .object([("name", .string(rng.pick(["Acme", "Initech", "Globex"]))), ("employees", .int(Int64(rng.int(1..<5000))))])),
            ]
            if late { traits.append(("beta_features", .array([.string("sql"), .string("exports")]))) }
            members.append(("traits", .object(traits)))
        case 90..<95:
            members.insert(("type", .string("screen")), at: 0)
            members.append(("name", .string(rng.pick(["Dashboard", "Settings", "Cluster Detail"]))))
            members.append(("properties", .object([("from_push", .bool(rng.chance(0.2))), ("variant", .string(rng.pick(["a", "b"])))])))
        case 95..<98:
            members.insert(("type", .string("group")), at: 0)
            members.append(("groupId", .string("org_\(rng.int(0..<2000))")))
            members.append(("traits", .object([("name", .string(rng.pick(["Acme", "Initech", "Globex"]))), ("industry", .string("Software")),
                                               ("employees", .int(Int64(rng.int(1..<5000)))), ("plan", .string(rng.pick(["team", "enterprise"])))])))
        default:
            members.insert(("type", .string("alias")), at: 0)
            members.append(("previousId", .string(uuid(&rng))))
        }
        return .object(members)
    }

    /// 3 to 15 properties; each (event, key) pair has one JSON type, keys past the 12th of an
    /// event's list only in the second half of the files.
    static func properties(_ rng: inout SplitMix64, event: Int, late: Bool) -> [(key: String, value: JSONValue)] {
        var result: [(key: String, value: JSONValue)] = []
        let count = rng.int(3..<16)
        for k in 0..<count {
            if k >= 12 && !late { break }
            let keyIndex = (event * 7 + k) % propertyKeys.count
            let key = propertyKeys[keyIndex]
            let value: JSONValue
            switch (event + keyIndex) % 7 {
            case 0: value = .int(Int64(rng.int(0..<100_000)))
            case 1: value = .double(Double(rng.int(0..<1_000_000)) / 100)
            case 2: value = .bool(rng.chance(0.5))
            case 3: value = .array([.string("tag\(rng.int(0..<20))"), .string("tag\(rng.int(0..<20))")])
            case 4: value = .object([("id", .string("obj_\(rng.int(0..<1000))")), ("score", .int(Int64(rng.int(0..<100))))])
            case 5: value = .string(Timestamp.iso8601(Instant(seconds: 1_700_000_000 + Int64(rng.int(0..<9_000_000)))))
            default: value = .string("value-\(rng.int(0..<500))-" + String(repeating: "x", count: rng.int(0..<24)))
            }
            result.append((key, value))
        }
        return result
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
