import Foundation
import SegmentCore
import SegmentStages

/// Page views and sessions from the activity calls.
extension Builder {
    enum Scope {
        /// Everyone, from the start.
        case all
        /// These people (their ids in temp tables m_person_users and m_person_anons), from the start.
        case people(Set<String>)
        /// These people from their cut (temp tables m_cuts, m_cut_users, m_cut_anons), their
        /// sessions numbered after the ones they keep.
        case from([String: Int64])
    }

    /// Recomputes page views and sessions from the people's pages, screens and tracks, read in
    /// the order of the person, then timestamp, received_at and id. With `keeper`, the same read
    /// also brings their identify, group and alias calls and every call from the rollups' first
    /// counted day on (before a cut when that day starts earlier), for the keeper to count.
    mutating func rebuildActivity(_ scope: Scope, rollups keeper: RollupKeeper? = nil) throws {
        let kinds = activityTables.map { ($0, String($0.dropLast())) }
        let others = keeper == nil ? [] : ["identifies", "groups", "aliases"].filter(callTables.contains)
        guard !kinds.isEmpty || !others.isEmpty else { return }
        var selects: [String] = []
        for (table, kind) in kinds + others.map({ ($0, "other") }) {
            let activity = kind != "other"
            let page = kind == "page"
            let view = kind == "page" || kind == "screen"
            // The device class is computed here: a user agent is long, its class one word.
            let device = !activity ? "NULL" : "CASE " + DeviceClass.names.map { "WHEN \(dialect.contains("x.context_user_agent", $0.text)) THEN '\($0.text)'" }.joined(separator: " ")
                + " ELSE 'other' END"
            // Whether the row is after the cut (read for the rollups only, when not), its UTC
            // day and the name the rollups count it by.
            var inSession = "1"
            if case .from = scope { inSession = "CASE WHEN x.timestamp >= c.cut THEN 1 ELSE 0 END" }
            let counted = keeper == nil ? nil : Rollups.counted(table)
            let columns = [
                "'\(kind)'", "x.id", "x.anonymous_id", "x.user_id", "x.timestamp", "x.received_at",
                page ? "x.url" : "NULL", page ? "x.context_page_url" : "NULL", page ? "x.path" : "NULL",
                page ? "x.title" : "NULL", page ? "x.context_page_title" : "NULL",
                page ? "x.referrer" : "NULL", page ? "x.context_page_referrer" : "NULL",
                view ? "x.name" : "NULL", device,
                view ? "x.context_campaign_source" : "NULL", view ? "x.context_campaign_medium" : "NULL",
                view ? "x.context_campaign_name" : "NULL", view ? "x.context_campaign_term" : "NULL",
                view ? "x.context_campaign_content" : "NULL",
                inSession, counted == nil ? "NULL" : dialect.dayNumber("x.\"timestamp\""), counted?.name ?? "NULL",
            ].joined(separator: ", ")
            // For some people, the join order is written out (CROSS JOIN keeps it): the temp
            // table of people first, then each one's rows through the (id, timestamp) index.
            // Left to itself, SQLite (no statistics) scanned the whole call table, or every
            // anonymous row through the user_id index for `user_id IS NULL`, so a night's
            // models cost in proportion to the history. `unindexed` keeps that index out.
            // Identify, group and alias calls (few, other indexes) are read as the planner likes.
            let anonymous = "\(unindexed("x.user_id")) IS NULL"
            let join = activity ? "CROSS JOIN" : ","
            switch scope {
            case .all:
                selects += [
                    "SELECT coalesce(al.final_id, x.user_id) AS b, \(columns) FROM \(table) x LEFT JOIN _model_aliases al ON al.id = x.user_id WHERE x.user_id IS NOT NULL",
                    "SELECT coalesce(i.user_id, x.anonymous_id) AS b, \(columns) FROM \(table) x LEFT JOIN identities i ON i.anonymous_id = \(dialect.anonymousKey(of: "x")) WHERE \(anonymous) AND x.anonymous_id IS NOT NULL",
                ]
            case .people:
                selects += [
                    "SELECT coalesce(al.final_id, x.user_id) AS b, \(columns) FROM \(temp("m_person_users")) p \(join) \(table) x LEFT JOIN _model_aliases al ON al.id = x.user_id WHERE x.user_id = p.id",
                    "SELECT coalesce(i.user_id, x.anonymous_id) AS b, \(columns) FROM \(temp("m_person_anons")) p \(join) \(table) x LEFT JOIN identities i ON i.anonymous_id = \(dialect.anonymousKey(of: "x")) WHERE x.anonymous_id = p.id AND \(anonymous)",
                ]
            case .from:
                selects += [
                    "SELECT u.person AS b, \(columns) FROM \(temp("m_cut_users")) u CROSS JOIN \(temp("m_cuts")) c \(join) \(table) x WHERE c.person = u.person AND x.user_id = u.id AND x.timestamp >= c.read_from",
                    "SELECT a.person AS b, \(columns) FROM \(temp("m_cut_anons")) a CROSS JOIN \(temp("m_cuts")) c \(join) \(table) x WHERE c.person = a.person AND x.anonymous_id = a.id AND \(anonymous) AND x.timestamp >= c.read_from",
                ]
            }
        }
        // Columns: 0 b, 1 kind, 2 id, 3 anonymous_id, 4 user_id, 5 timestamp, 6 received_at, 7 url, 8 context_page_url,
        // 9 path, 10 title, 11 context_page_title, 12 referrer, 13 context_page_referrer, 14 name, 15 device,
        // 16-20 campaign source, medium, name, term, content, 21 in the session (after the cut), 22 UTC day,
        // 23 the rollups' name.
        let union = selects.joined(separator: " UNION ALL ")
        let (byBytes, nullsFirst) = (dialect.byBytes, dialect.nullsFirst)
        let activity = "SELECT * FROM (\(union)) AS activity ORDER BY b\(byBytes), \"timestamp\"\(nullsFirst), received_at\(nullsFirst), id\(byBytes)"
        let writer = try SessionWriter(db: db, timeoutMilliseconds: timeoutMilliseconds)
        var current: String?
        var rows: [Activity] = []
        func flush() throws {
            guard let current, !rows.isEmpty else { return }
            var kept: Int64 = 0
            if case .from(let offsets) = scope { kept = offsets[current] ?? 0 }
            try writer.write(person: current, rows, after: kept)
            people += 1
        }
        try db.each(activity, []) { activity in
            guard let person = activity.value(at: 0).idText else { return }
            if person != current {
                try flush()
                current = person
                rows.removeAll(keepingCapacity: true)
            }
            // An id whose person is not being rebuilt cannot appear; skip rather than half-write one.
            if case .people(let set) = scope, !set.contains(person) { return }
            let kind = activity.value(at: 1).text ?? "other"
            if let keeper, let day = activity.value(at: 22).integer {
                try keeper.count(person: person, day: day, kind: kind, name: activity.value(at: 23).idText ?? "")
            }
            guard kind != "other", activity.value(at: 21).integer != 0 else { return }
            rows.append(Activity(activity))
        }
        try flush()
        try writer.finish()
    }

    /// (Re)creates temp table `name` holding `ids`.
    func fill(_ name: String, _ ids: Set<String>) throws {
        try db.fillTemporaryIds(name, ids)
    }
}

/// One page, screen or track call, as the sessions read it.
struct Activity {
    enum Kind { case page, screen, track }
    var kind: Kind
    var id: String
    var anonymousId: String?
    var userId: String?
    var timestamp: SQLValue
    var receivedAt: SQLValue
    var milliseconds: Int64
    var url: String?
    var pathProperty: String?
    var title: String?
    var referrer: String?
    var name: String?
    var device: String
    var campaign: [String?] = []

    /// The clock sessions are split by (the update's choice of cut compares on it too).
    static func milliseconds(_ time: Instant) -> Int64 { time.seconds * 1000 + time.nanos / 1_000_000 }

    init(_ s: any SQLRow) {
        kind = s.value(at: 1).text == "page" ? .page : s.value(at: 1).text == "screen" ? .screen : .track
        id = s.value(at: 2).idText ?? ""
        anonymousId = s.value(at: 3).idText
        userId = s.value(at: 4).idText
        timestamp = s.value(at: 5)
        receivedAt = s.value(at: 6)
        let time = timestamp.text.flatMap(Timestamp.parse) ?? receivedAt.text.flatMap(Timestamp.parse)
        milliseconds = time.map(Self.milliseconds) ?? 0
        device = s.value(at: 15).text ?? "other"
        guard kind != .track else { return }  // a track counts; its other fields are never read
        url = s.value(at: 7).text ?? s.value(at: 8).text
        pathProperty = s.value(at: 9).text
        title = s.value(at: 10).text ?? s.value(at: 11).text
        referrer = s.value(at: 12).text ?? s.value(at: 13).text
        name = s.value(at: 14).text
        campaign = (16...20).map { s.value(at: Int32($0)).text }
    }
}

/// What a page view or a session's first view says about where the visit came from.
struct VisitSource {
    var url: String?
    var host: String?
    var path: String?
    var query: String?
    var referrer: String?
    var referrerHost: String?
    /// source, medium, campaign, term, content: from `context.campaign`, else from the URL's query.
    var utm: [String?]
    var gclid: String?
    var device: String

    init(_ a: Activity) {
        url = a.url
        let parsed = a.url.map(ParsedURL.init)
        host = parsed?.host
        path = parsed?.path ?? a.pathProperty
        query = parsed?.query
        referrer = a.referrer
        referrerHost = a.referrer.flatMap { ParsedURL($0).host }
        let fromURL = parsed?.parameters(Self.parameters) ?? Array(repeating: nil, count: Self.parameters.count)
        utm = (0..<5).map { i in a.campaign[i] ?? fromURL[i] }
        gclid = fromURL[5]
        device = a.device
    }

    /// The query parameters read from a URL: the five UTM ones, then Google's click id.
    static let parameters = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid"]
}
