import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentWarehouse
@testable import SQLiteEngine
@testable import PostgresEngine

/// The built-in models (identities, page_views, sessions) against hand-computed truth,
/// and equal to a full rebuild whatever the split of the archives into loads and their order.
final class ModelTests: XCTestCase {
    var dir: URL!
    var db: URL!

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
        db = dir.appendingPathComponent("w.sqlite")
    }

    static let iPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
    static let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36"
    static let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36"

    /// A call as a client library sends it: `at` is when it happened; `sent` (default `at`) when the
    /// client sent it, which is also when the collector received it.
    func call(_ type: String, _ id: String, anon: String? = nil, user: String? = nil, at: String, sent: String? = nil,
              agent: String? = nil, _ fields: [String: Any] = [:]) -> [String: Any] {
        var message: [String: Any] = ["type": type, "messageId": id, "originalTimestamp": at, "sentAt": sent ?? at, "receivedAt": sent ?? at]
        if let anon { message["anonymousId"] = anon }
        if let user { message["userId"] = user }
        if let agent { message["context"] = ["userAgent": agent] }
        for (k, v) in fields { message[k] = v }
        return message
    }

    func page(_ id: String, anon: String? = nil, user: String? = nil, at: String, agent: String? = nil, url: String,
              title: String? = nil, referrer: String? = nil, campaign: [String: Any]? = nil) -> [String: Any] {
        var properties: [String: Any] = ["url": url]
        if let title { properties["title"] = title }
        if let referrer { properties["referrer"] = referrer }
        var message = call("page", id, anon: anon, user: user, at: at, agent: agent, ["properties": properties])
        if let campaign {
            var context = message["context"] as? [String: Any] ?? [:]
            context["campaign"] = campaign
            message["context"] = context
        }
        return message
    }

    /// The day's web traffic, in two archives: the second arrives a day later with an event
    /// that happened on the first day, and the alias that merges two people.
    func webArchives() throws -> (first: URL, later: URL) {
        let day = "2024-05-01T"
        let first: [[String: Any]] = [
            // a1: gaps of 29:59 (same session) and 30:01 (a new one); UTM only in the URL.
            page("p1", anon: "a1", at: day + "10:00:00.000Z", agent: Self.iPhone,
                 url: "https://shop.example/landing?utm_source=news&utm_medium=email&utm_campaign=spring&gclid=G1",
                 title: "Landing", referrer: "https://www.google.com/search?q=shoes"),
            page("p2", anon: "a1", at: day + "10:29:59.000Z", agent: Self.iPhone, url: "https://shop.example/shoes"),
            page("p3", anon: "a1", at: day + "11:00:00.000Z", agent: Self.iPhone, url: "https://shop.example/cart"),
            // a2 logs in as u2 in the middle of a session.
            page("p4", anon: "a2", at: day + "12:00:00.000Z", agent: Self.mac, url: "https://shop.example/",
                 campaign: ["source": "ads", "medium": "cpc", "name": "brand"]),
            call("identify", "i1", anon: "a2", user: "u2", at: day + "12:05:00.000Z", ["traits": ["email": "u2@example.com"]]),
            page("p5", anon: "a2", user: "u2", at: day + "12:10:00.000Z", agent: Self.mac, url: "https://shop.example/account"),
            // u3old before the alias that makes it u3.
            page("p6", anon: "a3", user: "u3old", at: day + "09:00:00.000Z", agent: Self.mac, url: "https://shop.example/"),
            page("p7", anon: "a4", user: "u3", at: day + "15:00:00.000Z", agent: Self.mac, url: "https://shop.example/pricing"),
            // A device two people share: s2 is the latest.
            call("identify", "i2", anon: "d1", user: "s1", at: day + "08:00:00.000Z"),
            call("identify", "i3", anon: "d1", user: "s2", at: day + "20:00:00.000Z"),
            page("p8", anon: "d1", at: day + "21:00:00.000Z", agent: Self.mac, url: "https://shop.example/"),
            // u5: 50 minutes apart, two sessions until the late event arrives.
            page("p9", user: "u5", at: day + "10:00:00.000Z", agent: Self.mac, url: "https://shop.example/a"),
            page("p10", user: "u5", at: day + "10:50:00.000Z", agent: Self.mac, url: "https://shop.example/b"),
            // A phone app: screens and an event.
            call("screen", "s1", anon: "m1", at: day + "07:00:00.000Z", agent: Self.android, ["name": "Home"]),
            call("screen", "s2", anon: "m1", at: day + "07:05:00.000Z", agent: Self.android, ["name": "Cart"]),
            call("track", "t1", anon: "m1", at: day + "07:06:00.000Z", agent: Self.android, ["event": "Checkout Started"]),
        ]
        let later: [[String: Any]] = [
            call("track", "t2", user: "u5", at: day + "10:25:00.000Z", sent: "2024-05-02T09:00:00.000Z", ["event": "Product Viewed"]),
            call("alias", "al1", user: "u3", at: "2024-05-02T09:30:00.000Z", ["previousId": "u3old"]),
        ]
        let a = try write(gzip(ndjson(first)), to: dir.appendingPathComponent("in/2024-05-01.gz"))
        let b = try write(gzip(ndjson(later)), to: dir.appendingPathComponent("in/2024-05-02.gz"))
        return (a, b)
    }

    /// Small test loads touch many ids for the sessions there are: without this the builds
    /// would rebuild in full (`wideBuildFactor`), and the person-by-person path go untested.
    static func personByPerson(_ options: inout LoadOptions) { options.models.wideBuildFactor = 0 }

    func models(_ db: URL) throws -> String { try modelsDump(db) }

    func testModelsMatchHandComputedTruthAfterTwoLoads() throws {
        let (first, later) = try webArchives()
        let one = try load([first], into: db, configure: Self.personByPerson)
        XCTAssertEqual(one.models?.mode, "full", "the first build is a full one")
        XCTAssertEqual(try rows(db, "SELECT blended_user_id, count(*) FROM sessions WHERE blended_user_id = 'u5'"), [["u5", "2"]],
                       "before the late event, u5's views 50 minutes apart are two sessions")
        let two = try load([later], into: db, configure: Self.personByPerson)
        XCTAssertEqual(two.models?.mode, "incremental")

        // identities: one row per anonymous id seen with a user (or an alias's previous id).
        XCTAssertEqual(try rows(db, "SELECT anonymous_id, user_id, first_linked_at, last_linked_at, user_ids FROM identities ORDER BY 1"), [
            ["a2", "u2", "2024-05-01 12:05:00.000", "2024-05-01 12:10:00.000", "1"],
            ["a3", "u3", "2024-05-01 09:00:00.000", "2024-05-01 09:00:00.000", "1"],
            ["a4", "u3", "2024-05-01 15:00:00.000", "2024-05-01 15:00:00.000", "1"],
            ["d1", "s2", "2024-05-01 08:00:00.000", "2024-05-01 20:00:00.000", "2"],
            ["u3old", "u3", "2024-05-02 09:30:00.000", "2024-05-02 09:30:00.000", "1"],
        ])

        XCTAssertEqual(try rows(db, """
            SELECT blended_user_id, session_index, anonymous_id, user_id, started_at, ended_at, duration_seconds,
                   page_views, screen_views, events, first_url, last_url, first_screen, last_screen, referrer_host,
                   utm_source, utm_medium, utm_campaign, gclid, device
            FROM sessions ORDER BY blended_user_id, session_index
            """), [
            ["a1", "1", "a1", "NULL", "2024-05-01 10:00:00.000", "2024-05-01 10:29:59.000", "1799.0", "2", "0", "0",
             "https://shop.example/landing?utm_source=news&utm_medium=email&utm_campaign=spring&gclid=G1", "https://shop.example/shoes",
             "NULL", "NULL", "www.google.com", "news", "email", "spring", "G1", "iPhone"],
            ["a1", "2", "a1", "NULL", "2024-05-01 11:00:00.000", "2024-05-01 11:00:00.000", "0.0", "1", "0", "0",
             "https://shop.example/cart", "https://shop.example/cart", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "iPhone"],
            ["m1", "1", "m1", "NULL", "2024-05-01 07:00:00.000", "2024-05-01 07:06:00.000", "360.0", "0", "2", "1",
             "NULL", "NULL", "Home", "Cart", "NULL", "NULL", "NULL", "NULL", "NULL", "Android"],
            ["s2", "1", "d1", "NULL", "2024-05-01 21:00:00.000", "2024-05-01 21:00:00.000", "0.0", "1", "0", "0",
             "https://shop.example/", "https://shop.example/", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "Mac"],
            ["u2", "1", "a2", "u2", "2024-05-01 12:00:00.000", "2024-05-01 12:10:00.000", "600.0", "2", "0", "0",
             "https://shop.example/", "https://shop.example/account", "NULL", "NULL", "NULL", "ads", "cpc", "brand", "NULL", "Mac"],
            ["u3", "1", "a3", "u3old", "2024-05-01 09:00:00.000", "2024-05-01 09:00:00.000", "0.0", "1", "0", "0",
             "https://shop.example/", "https://shop.example/", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "Mac"],
            ["u3", "2", "a4", "u3", "2024-05-01 15:00:00.000", "2024-05-01 15:00:00.000", "0.0", "1", "0", "0",
             "https://shop.example/pricing", "https://shop.example/pricing", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "Mac"],
            ["u5", "1", "NULL", "u5", "2024-05-01 10:00:00.000", "2024-05-01 10:50:00.000", "3000.0", "2", "0", "1",
             "https://shop.example/a", "https://shop.example/b", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "Mac"],
        ])

        XCTAssertEqual(try rows(db, """
            SELECT p.id, p.blended_user_id, p.host, p.path, p.query, p.title, p.referrer_host, p.utm_source, p.utm_campaign, p.gclid,
                   p.device, s.session_index, p.view_index
            FROM page_views p JOIN sessions s USING (session_id) WHERE p.id IN ('p1', 'p2', 'p3', 'p4', 'p6') ORDER BY p.id
            """), [
            ["p1", "a1", "shop.example", "/landing", "utm_source=news&utm_medium=email&utm_campaign=spring&gclid=G1", "Landing",
             "www.google.com", "news", "spring", "G1", "iPhone", "1", "1"],
            ["p2", "a1", "shop.example", "/shoes", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "iPhone", "1", "2"],
            ["p3", "a1", "shop.example", "/cart", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "iPhone", "2", "1"],
            ["p4", "u2", "shop.example", "/", "NULL", "NULL", "NULL", "ads", "brand", "NULL", "Mac", "1", "1"],
            ["p6", "u3", "shop.example", "/", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "Mac", "1", "1"],
        ])
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM page_views"), "10")
        // The session id is a digest of the person and the session's first message.
        XCTAssertEqual(try scalar(db, "SELECT session_id FROM sessions WHERE blended_user_id = 'u2'"),
                       SessionWriter.sessionId(person: "u2", firstMessage: "p4"))

        // Built load by load, the models equal a full rebuild.
        let incremental = try models(db)
        _ = try Models.build(in: try Warehouse(path: db.path).db, rebuild: true)
        XCTAssertEqual(try models(db), incremental)
    }

    func testAnAliasCycleEndsAtItsSmallestIdWhateverTheOrder() throws {
        for order in [["x", "y"], ["y", "x"]] {
            let folder = dir.appendingPathComponent("cycle-\(order.joined())")
            let db = folder.appendingPathComponent("w.sqlite")
            let aliases = [
                call("alias", "al-x", user: "uy", at: "2024-05-01T10:00:00.000Z", ["previousId": "ux"]),
                call("alias", "al-y", user: "ux", at: "2024-05-01T11:00:00.000Z", ["previousId": "uy"]),
                call("page", "pv", user: "uy", at: "2024-05-01T12:00:00.000Z", ["properties": ["url": "https://a.example/"]]),
            ]
            let files = try order.map { name -> URL in
                let pick = name == "x" ? [aliases[0], aliases[2]] : [aliases[1]]
                return try write(ndjson(pick), to: folder.appendingPathComponent("\(name).ndjson"))
            }
            for file in files { try load([file], into: db, configure: Self.personByPerson) }
            XCTAssertEqual(try rows(db, "SELECT blended_user_id FROM page_views"), [["ux"]], "order \(order)")
            XCTAssertEqual(try rows(db, "SELECT anonymous_id, user_id FROM identities ORDER BY 1"), [["ux", "ux"], ["uy", "ux"]], "order \(order)")
        }
    }

    func testModelsCanBeTurnedOffAndCaughtUpLater() throws {
        let (first, later) = try webArchives()
        let off = try load([first], into: db) { $0.models.enabled = false }
        XCTAssertNil(off.models)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = 'sessions'"), "0")
        // Never built: the first build is a full one, which reads no touched ids, so none are kept.
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _model_pending"), "0")
        let firstBuild = try runSegmentLoader(["models", "--db", db.path])
        XCTAssertEqual(firstBuild.status, 0, firstBuild.stderr)
        XCTAssertTrue(firstBuild.stdout.contains("rebuilt in full"), firstBuild.stdout)
        // Built once: what a load without the models touched is kept for the next build.
        XCTAssertNil(try load([later], into: db) { $0.models.enabled = false }.models)
        XCTAssertGreaterThan(Int(try scalar(db, "SELECT count(*) FROM _model_pending"))!, 0, "what the files touched is kept for the build")
        let missing = try runSegmentLoader(["models", "--db", dir.appendingPathComponent("none.sqlite").path])
        XCTAssertEqual(missing.status, 64, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("there is no warehouse at"), missing.stderr)
        let build = try runSegmentLoader(["models", "--db", db.path])
        XCTAssertEqual(build.status, 0, build.stderr)
        XCTAssertTrue(build.stdout.contains("rebuilt in full") || build.stdout.contains("updated for"), build.stdout)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM sessions"), "8")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _model_pending"), "0")
        let status = try runSegmentLoader(["status", "--db", db.path])
        XCTAssertTrue(status.stdout.contains("sessions    8 rows"), status.stdout)

        // A new session timeout rebuilds in full: with 60 minutes u5's and a1's views merge.
        let wider = try runSegmentLoader(["models", "--db", db.path, "--session-timeout", "60"])
        XCTAssertEqual(wider.status, 0, wider.stderr)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM sessions WHERE blended_user_id = 'a1'"), "1")
        XCTAssertEqual(try scalar(db, "SELECT session_timeout_minutes FROM _models ORDER BY id DESC LIMIT 1"), "60")
    }

    /// Random web traffic, split into loads at random and loaded in random orders (late data,
    /// aliases and logins landing in any load), always gives the models of one full rebuild.
    func testAnySplitAndOrderOfLoadsGivesTheFullRebuild() throws {
        var rng = SplitMix64(seed: 11)
        var messages: [[String: Any]] = []
        let base = 1_714_550_400  // 2024-05-01
        for person in 0..<30 {
            let anon = "anon-\(person)", user = "user-\(person % 20)"
            var t = base + rng.int(0..<86_400)
            for n in 0..<rng.int(3..<12) {
                t += rng.chance(0.3) ? rng.int(1_790..<1_810) : rng.int(10..<900)
                let at = Timestamp.iso8601(Instant(seconds: Int64(t), nanos: 0))
                let sent = rng.chance(0.1) ? Timestamp.iso8601(Instant(seconds: Int64(t + 86_400), nanos: 0)) : at
                let loggedIn = rng.chance(0.4)
                let id = "m-\(person)-\(n)"
                switch rng.int(0..<10) {
                case 0..<5:
                    messages.append(page(id, anon: anon, user: loggedIn ? user : nil, at: at,
                                         agent: rng.pick([Self.iPhone, Self.mac, Self.android]),
                                         url: "https://shop.example/\(rng.int(0..<5))?utm_source=s\(rng.int(0..<3))"))
                    messages[messages.count - 1]["sentAt"] = sent
                    messages[messages.count - 1]["receivedAt"] = sent
                case 5..<7: messages.append(call("track", id, anon: anon, user: loggedIn ? user : nil, at: at, sent: sent, ["event": "Clicked"]))
                case 7: messages.append(call("screen", id, anon: anon, user: loggedIn ? user : nil, at: at, sent: sent, ["name": "Home"]))
                case 8: messages.append(call("identify", id, anon: anon, user: user, at: at, sent: sent))
                default:
                    if rng.chance(0.25) {
                        messages.append(call("alias", id, user: "user-\(rng.int(0..<20))", at: at, sent: sent, ["previousId": user]))
                    } else {
                        messages.append(call("track", id, anon: anon, at: at, sent: sent, ["event": "Scrolled"]))
                    }
                }
            }
        }
        // The reference: everything in one load.
        let all = try write(ndjson(messages), to: dir.appendingPathComponent("all/all.ndjson"))
        let reference = dir.appendingPathComponent("reference.sqlite")
        try load([all], into: reference)
        let truth = try models(reference)
        XCTAssertGreaterThan(Int(try scalar(reference, "SELECT count(*) FROM sessions"))!, 20)
        XCTAssertGreaterThan(Int(try scalar(reference, "SELECT count(*) FROM _model_aliases"))!, 0)
        XCTAssertGreaterThan(Int(try scalar(reference, "SELECT count(*) FROM identities"))!, 5)

        for trial in 0..<4 {
            var shuffled = messages
            for i in stride(from: shuffled.count - 1, to: 0, by: -1) { shuffled.swapAt(i, rng.int(0..<(i + 1))) }
            let parts = rng.int(2..<7)
            let folder = dir.appendingPathComponent("trial-\(trial)")
            let db = folder.appendingPathComponent("w.sqlite")
            var files: [URL] = []
            for p in 0..<parts {
                let slice = shuffled.enumerated().filter { $0.offset % parts == p }.map(\.element)
                files.append(try write(ndjson(slice), to: folder.appendingPathComponent("part-\(p).ndjson")))
            }
            // Loads of one or two files at a time, in the shuffled order.
            var k = 0
            while k < files.count {
                let take = min(files.count - k, rng.int(1..<3))
                try load(Array(files[k..<(k + take)]), into: db, configure: Self.personByPerson)
                k += take
            }
            XCTAssertEqual(try models(db), truth, "trial \(trial): \(parts) parts")
        }
    }

    /// A page fixed in `_rejects` and retried joins its person's session like a loaded one.
    func testRejectsRetryUpdatesTheModels() throws {
        let lines = ndjson([
            page("r1", anon: "v1", at: "2024-05-01T10:00:00.000Z", url: "https://shop.example/a"),
            page("r3", anon: "v1", at: "2024-05-01T10:40:00.000Z", url: "https://shop.example/c"),
        ]) + jsonLine(page("r2", anon: "v1", at: "2024-05-01T10:20:00.000Z", url: "https://shop.example/b"))
            .replacingOccurrences(of: #""type":"page""#, with: #""type":"paeg""#) + "\n"
        try load([try write(lines, to: dir.appendingPathComponent("v.ndjson"))], into: db)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM sessions"), "2", "40 minutes apart without the rejected page")
        let database = try Database(path: db.path)
        try database.execute(#"UPDATE _rejects SET raw = replace(raw, '"type":"paeg"', '"type":"page"')"#)
        let retry = try runSegmentLoader(["rejects", "retry", "--db", db.path])
        XCTAssertEqual(retry.status, 0, retry.stdout + retry.stderr)
        XCTAssertTrue(retry.stdout.contains("\nmodels: "), retry.stdout)
        XCTAssertEqual(try rows(db, "SELECT page_views, first_url, last_url FROM sessions"), [["3", "https://shop.example/a", "https://shop.example/c"]])
    }

    /// A load that touches many ids for the sessions there are rebuilds in full: the same models.
    func testAWideLoadRebuildsInFull() throws {
        let (first, later) = try webArchives()
        try load([first], into: db)
        let two = try load([later], into: db)
        XCTAssertEqual(two.models?.mode, "full", "4 ids touched against 8 sessions")
        let wide = try models(db)
        let other = dir.appendingPathComponent("other.sqlite")
        try load([first], into: other, configure: Self.personByPerson)
        let narrow = try load([later], into: other, configure: Self.personByPerson)
        XCTAssertEqual(narrow.models?.mode, "incremental")
        XCTAssertEqual(try models(other), wide)
    }

    /// A device linked to a user by a later load brings its earlier anonymous visits into the
    /// user's history, before the user's own sessions, which are numbered again.
    func testALaterLinkBringsEarlierAnonymousVisitsIntoTheUsersHistory() throws {
        let first = try write(ndjson([
            page("v1", anon: "dev9", at: "2024-05-01T08:00:00.000Z", url: "https://shop.example/"),
            page("w1", user: "w9", at: "2024-05-01T09:00:00.000Z", url: "https://shop.example/a"),
            page("w2", user: "w9", at: "2024-05-01T11:00:00.000Z", url: "https://shop.example/b"),
        ]), to: dir.appendingPathComponent("one.ndjson"))
        let later = try write(ndjson([
            call("identify", "i9", anon: "dev9", user: "w9", at: "2024-05-01T12:00:00.000Z"),
        ]), to: dir.appendingPathComponent("two.ndjson"))
        try load([first], into: db, configure: Self.personByPerson)
        XCTAssertEqual(try rows(db, "SELECT blended_user_id, session_index FROM sessions ORDER BY started_at"),
                       [["dev9", "1"], ["w9", "1"], ["w9", "2"]])
        let two = try load([later], into: db, configure: Self.personByPerson)
        XCTAssertEqual(two.models?.mode, "incremental")
        XCTAssertEqual(try rows(db, "SELECT blended_user_id, session_index, first_url FROM sessions ORDER BY started_at"), [
            ["w9", "1", "https://shop.example/"], ["w9", "2", "https://shop.example/a"], ["w9", "3", "https://shop.example/b"],
        ])
        XCTAssertEqual(try rows(db, "SELECT id, blended_user_id FROM page_views ORDER BY id"), [["v1", "w9"], ["w1", "w9"], ["w2", "w9"]])
    }
}

/// The models' URL reading, byte by byte: what `VisitSource` takes out of a URL.
final class WebFieldsTests: XCTestCase {
    func testAURLsPartsAndParameters() {
        let url = ParsedURL("HTTPS://user@Shop.Example:8443/a/b?utm_source=news&utm_source=later&utm%5Fmedium=e+mail&gclid=&utm_campaign=spring%20sale&q#top?x")
        XCTAssertEqual(url.host, "shop.example")
        XCTAssertEqual(url.path, "/a/b")
        XCTAssertEqual(url.query, "utm_source=news&utm_source=later&utm%5Fmedium=e+mail&gclid=&utm_campaign=spring%20sale&q")
        // The first occurrence decides (an empty one is nil); keys are percent-decoded.
        XCTAssertEqual(url.parameters(VisitSource.parameters), ["news", "e mail", "spring sale", nil, nil, nil])
        XCTAssertEqual(VisitSource.parameters.map(url.parameter), url.parameters(VisitSource.parameters))
        let relative = ParsedURL("/pricing?a=1")
        XCTAssertEqual([relative.host, relative.path, relative.query], [nil, "/pricing", "a=1"])
        XCTAssertEqual(ParsedURL("//cdn.example:80/x.js").host, "cdn.example")
        XCTAssertEqual(ParsedURL("http://[::1]:8080").host, "[::1]")
        XCTAssertEqual(ParsedURL("http://[::1]:8080").path, "/")
        XCTAssertEqual(ParsedURL("https://ex.ample/caf\u{e9}?n=%C3%A9").parameter("n"), "\u{e9}")
        XCTAssertEqual(ParsedURL("").path, nil)
    }
}

/// When a build rebuilds in full instead of person by person.
final class WideBuildTests: XCTestCase {
    func testPostgresRebuildsInFullSoonerThanSQLite() {
        let options = ModelOptions()
        // SQLite: touched ids over a quarter of the sessions.
        XCTAssertFalse(options.rebuildsInFull(pending: 25_000, sessions: 100_000, roundTrips: SQLiteDialect.sqlite.roundTripsPerPerson))
        XCTAssertTrue(options.rebuildsInFull(pending: 25_001, sessions: 100_000, roundTrips: SQLiteDialect.sqlite.roundTripsPerPerson))
        // PostgreSQL: a person costs round trips, so over a fortieth.
        XCTAssertFalse(options.rebuildsInFull(pending: 2_500, sessions: 100_000, roundTrips: PostgresDialect.postgres.roundTripsPerPerson))
        XCTAssertTrue(options.rebuildsInFull(pending: 2_501, sessions: 100_000, roundTrips: PostgresDialect.postgres.roundTripsPerPerson))
        var personByPerson = options
        personByPerson.wideBuildFactor = 0
        XCTAssertFalse(personByPerson.rebuildsInFull(pending: 1_000_000, sessions: 1, roundTrips: PostgresDialect.postgres.roundTripsPerPerson))
    }
}
