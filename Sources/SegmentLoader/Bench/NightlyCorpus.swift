import Foundation
import SegmentCore
import SegmentStages

/// A month of web traffic from a returning population, night by night, for `bench --nightly`:
/// what a nightly cron run meets, where the 500k corpus has a new anonymous id per message and
/// an empty warehouse.
///
/// - `people` people, each with one stable anonymous id (one browser) for the whole month.
/// - Each night a person is active with probability `activeShare` (a pure function of seed,
///   night and person, so the nights differ and every night is the same size on average).
/// - An active person has 1 session (2 in a third of the cases), 30 minutes to 8 hours apart;
///   a session is 2 to 6 page views and 0 to 4 track events (10 to 120 s apart), with a referrer
///   and, on a fifth of first pages, UTM parameters.
/// - A third of the people have an account: each logs in on one night of the month (or before
///   it, for a quarter of them), with an identify carrying traits at their first session that
///   night; from then on their calls carry the user id, and 1 in 10 of their sessions sends an
///   identify with changed traits.
/// - A night's messages go into `files` archives by the hour their session starts.
///
/// With the defaults (40,000 people, 15%, 30 nights, 4 files) a night holds about 47,000
/// messages from about 6,000 people.
public struct NightlySpec: Sendable, Hashable {
    public var people: Int
    public var activeShare: Double
    public var nights: Int
    public var files: Int
    public var seed: UInt64

    public init(people: Int = 40_000, activeShare: Double = 0.15, nights: Int = 30, files: Int = 4, seed: UInt64 = 1) {
        self.people = people
        self.activeShare = activeShare
        self.nights = nights
        self.files = files
        self.seed = seed
    }

    public var folderName: String {
        "nightly-p\(people)-a\(Int((activeShare * 1000).rounded()))-n\(nights)-f\(files)-s\(seed)"
    }

    /// The folder of night `n` (0-based) inside the corpus folder.
    public static func nightFolder(_ n: Int) -> String { String(format: "night-%02d", n + 1) }
}

public enum NightlyCorpus {
    static let firstNight: Int64 = 1_717_200_000 - 1_717_200_000 % 86_400  // 2024-06-01 00:00 UTC

    /// Writes every night's archives under `folder` (reused when its manifest exists); returns
    /// the night folders in order.
    public static func generate(_ spec: NightlySpec, into folder: URL, jobs: Int) throws -> [URL] {
        let fm = FileManager.default
        let nights = (0..<spec.nights).map { folder.appendingPathComponent(NightlySpec.nightFolder($0)) }
        let manifest = folder.appendingPathComponent(".manifest.json")
        if fm.fileExists(atPath: manifest.path) { return nights }
        try? fm.removeItem(at: folder)
        let failures = Locked<[String]>([])
        startWorkers(jobs: jobs, count: spec.nights, label: "nightly") { n in
            do {
                try fm.createDirectory(at: nights[n], withIntermediateDirectories: true)
                var buffers = Array(repeating: [UInt8](), count: spec.files)
                for message in messages(spec, night: n) {
                    let file = min(spec.files - 1, message.hour * spec.files / 24)
                    JSONWriter.write(message.json, into: &buffers[file], sortedKeys: false)
                    buffers[file].append(0x0a)
                }
                for (f, buffer) in buffers.enumerated() {
                    let writer = try GzipWriter(path: nights[n].appendingPathComponent(String(format: "part-%d.ndjson.gz", f)).path)
                    try writer.write(buffer)
                    try writer.finish()
                }
            } catch {
                failures.withLock { $0.append("\(nights[n].path): \(error)") }
            }
        }.wait()
        if let failure = failures.withLock({ $0.first }) { throw ReadError(path: folder.path, message: failure) }
        let text = "{\"people\":\(spec.people),\"active_share\":\(spec.activeShare),\"nights\":\(spec.nights),\"files\":\(spec.files),\"seed\":\(spec.seed)}\n"
        try Data(text.utf8).write(to: manifest)
        return nights
    }

    struct Generated {
        var hour: Int
        var json: JSONValue
    }

    /// A stable random stream for one (night, person, purpose).
    static func rng(_ spec: NightlySpec, _ a: Int, _ b: Int, _ c: Int) -> SplitMix64 {
        var r = SplitMix64(seed: spec.seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(a) << 42 ^ UInt64(b) << 12 ^ UInt64(c))
        _ = r.next()
        return r
    }

    /// The night a person with an account logs in (negative: before the month), or nil.
    static func loginNight(_ spec: NightlySpec, person: Int) -> Int? {
        guard person % 3 == 0 else { return nil }
        var r = rng(spec, 0, person, 1)
        return r.chance(0.25) ? -1 : r.int(0..<max(1, spec.nights))
    }

    static func anonymousId(_ spec: NightlySpec, person: Int) -> String {
        var r = rng(spec, 0, person, 2)
        return Corpus.uuid(&r)
    }

    static let pages: [(path: String, title: String)] = [
        ("/", "Acme Cloud"), ("/pricing", "Pricing"), ("/docs", "Docs"), ("/docs/install", "Install"), ("/blog", "Blog"),
        ("/blog/launch-week", "Launch week"), ("/dashboard", "Dashboard"), ("/settings/billing", "Billing"),
        ("/product/databases", "Databases"), ("/product/functions", "Functions"), ("/customers", "Customers"), ("/signup", "Sign up"),
    ]
    static let events = ["Product Viewed", "Signup Started", "Cluster Created", "Search Performed", "Docs Copied", "Invite Sent",
                         "Plan Upgraded", "Query Run"]
    static let referrers = ["", "", "https://www.google.com/", "https://news.ycombinator.com/", "https://twitter.com/", "https://duckduckgo.com/"]

    /// Night `night`'s messages, in no particular order.
    static func messages(_ spec: NightlySpec, night: Int) -> [Generated] {
        var out: [Generated] = []
        out.reserveCapacity(Int(Double(spec.people) * spec.activeShare * 9))
        let dayStart = firstNight + Int64(night) * 86_400
        for person in 0..<spec.people {
            var r = rng(spec, night + 1, person, 3)
            guard r.chance(spec.activeShare) else { continue }
            let anon = anonymousId(spec, person: person)
            let login = loginNight(spec, person: person)
            let sessions = r.chance(1.0 / 3) ? 2 : 1
            var start = dayStart + Int64(r.int(0..<(16 * 3600)))
            let ua = Corpus.userAgents[person % Corpus.userAgents.count]
            let ip = "198.51.\(person / 250 % 256).\(person % 250 + 1)"
            for s in 0..<sessions {
                if s > 0 { start += Int64(r.int(1800..<(8 * 3600))) }
                var t = start
                let hour = Int((start - dayStart) / 3600)
                let loggedIn = login.map { $0 <= night } ?? false
                let userId: JSONValue = loggedIn ? .string("user_\(person)") : .null
                var index = 0
                func emit(_ type: String, _ extra: [(key: String, value: JSONValue)], page: (path: String, title: String), referrer: String) {
                    var idr = rng(spec, night + 1, person, 1000 + s * 100 + index)
                    let at = Instant(seconds: t, nanos: Int64(idr.int(0..<1000)) * 1_000_000)
                    let received = at + Instant(seconds: 1, nanos: Int64(idr.int(0..<900)) * 1_000_000)
                    let url = "https://www.acme.example" + page.path
                    var context: [(key: String, value: JSONValue)] = [
                        ("ip", .string(ip)), ("userAgent", .string(ua)), ("locale", .string("en-US")),
                        ("library", .object([("name", .string("analytics.js")), ("version", .string("5.2.0"))])),
                        ("page", .object([("path", .string(page.path)), ("referrer", .string(referrer)), ("search", .string("")),
                                          ("title", .string(page.title)), ("url", .string(url))])),
                    ]
                    if index == 0, s == 0, (person + night) % 5 == 0 {
                        context.append(("campaign", .object([("source", .string("newsletter")), ("medium", .string("email")),
                                                             ("name", .string("june-\(night / 7)"))])))
                    }
                    var members: [(key: String, value: JSONValue)] = [
                        ("type", .string(type)), ("anonymousId", .string(anon)), ("messageId", .string(Corpus.uuid(&idr))),
                        ("userId", userId), ("context", .object(context)),
                        ("originalTimestamp", .string(Timestamp.iso8601(at))), ("sentAt", .string(Timestamp.iso8601(at))),
                        ("receivedAt", .string(Timestamp.iso8601(received))), ("timestamp", .string(Timestamp.iso8601(at))),
                    ]
                    members += extra
                    out.append(Generated(hour: hour, json: .object(members)))
                    index += 1
                    t += Int64(idr.int(10..<120))
                }
                let views = 2 + r.int(0..<5)
                let trackCount = r.int(0..<5)
                var referrer = referrers[r.int(0..<referrers.count)]
                var page = pages[r.int(0..<pages.count)]
                for v in 0..<views {
                    if v > 0 {
                        referrer = "https://www.acme.example" + page.path
                        page = pages[r.int(0..<pages.count)]
                    }
                    emit("page", [("name", .string(page.title)), ("properties", .object([
                        ("path", .string(page.path)), ("title", .string(page.title)), ("url", .string("https://www.acme.example" + page.path)),
                        ("referrer", .string(referrer)),
                    ]))], page: page, referrer: referrer)
                    if v == 0, s == 0, login == night || (loggedIn && r.chance(0.1)) {
                        emit("identify", [("traits", .object([
                            ("email", .string("person\(person)@example.com")), ("name", .string("Person \(person)")),
                            ("plan", .string(["free", "team", "enterprise"][(person + night) % 3])), ("logins", .int(Int64(night + 1))),
                        ]))], page: page, referrer: referrer)
                    }
                    if v < trackCount {
                        let event = events[r.int(0..<events.count)]
                        emit("track", [("event", .string(event)), ("properties", .object([
                            ("path", .string(page.path)), ("value", .int(Int64(r.int(0..<1000)))), ("plan", .string(["free", "team"][person % 2])),
                        ]))], page: page, referrer: referrer)
                    }
                }
            }
        }
        return out
    }
}
