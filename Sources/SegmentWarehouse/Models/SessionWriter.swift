import Foundation
import SegmentCore
import SegmentStages

/// Splits one person's activity into sessions and writes them with their page views.
struct SessionWriter {
    let timeoutMilliseconds: Int64
    let insertView: any SQLAppender
    let insertSession: any SQLAppender

    init(db: any SQLSession, timeoutMilliseconds: Int64) throws {
        self.timeoutMilliseconds = timeoutMilliseconds
        insertView = try db.appender("page_views", columns: [
            "id", "anonymous_id", "user_id", "blended_user_id", "timestamp", "received_at", "url", "host", "path", "query",
            "title", "referrer", "referrer_host", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid", "device",
            "session_id", "view_index",
        ])
        insertSession = try db.appender("sessions", columns: [
            "session_id", "blended_user_id", "session_index", "anonymous_id", "user_id", "started_at", "ended_at",
            "duration_seconds", "page_views", "screen_views", "events", "first_url", "last_url", "first_screen", "last_screen", "referrer",
            "referrer_host", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid", "device",
        ])
    }

    /// Sends what is buffered (PostgreSQL's COPY).
    func finish() throws {
        try insertView.finish()
        try insertSession.finish()
    }

    /// A session's id: the first 16 bytes of SHA-256 over the person and the session's first
    /// message id, in hex; the same whenever the same activity is modelled.
    static func sessionId(person: String, firstMessage: String) -> String {
        hexString(SHA256Hasher.hash(person + "\u{1F}" + firstMessage).prefix(16))
    }

    /// Writes the sessions of `rows`, numbered from `kept + 1` (the person's earlier sessions, kept).
    func write(person: String, _ rows: [Activity], after kept: Int64 = 0) throws {
        var start = 0
        var index = kept
        for i in 1...rows.count where i == rows.count || rows[i].milliseconds - rows[i - 1].milliseconds > timeoutMilliseconds {
            index += 1
            try writeSession(person: person, rows[start..<i], index: index)
            start = i
        }
    }

    private func text(_ s: String?) -> SQLValue { s.map { .text($0) } ?? .null }

    private func writeSession(person: String, _ rows: ArraySlice<Activity>, index: Int64) throws {
        let first = rows.first!, last = rows.last!
        let sessionId = Self.sessionId(person: person, firstMessage: first.id)
        var views = 0, screens = 0, events = 0
        // The first page or screen view's source (what the session says it came from).
        var source: VisitSource?, firstURL: String?, lastURL: String?, firstScreen: String?, lastScreen: String?
        var values: [SQLValue] = []
        values.reserveCapacity(24)
        for row in rows {
            switch row.kind {
            case .page:
                views += 1
                if firstURL == nil { firstURL = row.url }
                lastURL = row.url ?? lastURL
                let view = VisitSource(row)
                if source == nil { source = view }
                values.removeAll(keepingCapacity: true)
                values += [.text(row.id), text(row.anonymousId), text(row.userId), .text(person), row.timestamp, row.receivedAt,
                           text(view.url), text(view.host), text(view.path), text(view.query), text(row.title),
                           text(view.referrer), text(view.referrerHost)]
                for utm in view.utm { values.append(text(utm)) }
                values += [text(view.gclid), .text(view.device), .text(sessionId), .integer(Int64(views))]
                try insertView.append(values)
            case .screen:
                screens += 1
                if source == nil { source = VisitSource(row) }
                if firstScreen == nil { firstScreen = row.name }
                lastScreen = row.name ?? lastScreen
            case .track:
                events += 1
            }
        }
        let duration = Double(last.milliseconds - first.milliseconds) / 1000
        values.removeAll(keepingCapacity: true)
        values += [.text(sessionId), .text(person), .integer(index), text(rows.lazy.compactMap(\.anonymousId).first),
                   text(rows.lazy.compactMap(\.userId).first), first.timestamp, last.timestamp, .real(duration),
                   .integer(Int64(views)), .integer(Int64(screens)), .integer(Int64(events)), text(firstURL), text(lastURL),
                   text(firstScreen), text(lastScreen), text(source?.referrer), text(source?.referrerHost)]
        for i in 0..<5 { values.append(text(source?.utm[i])) }
        values += [text(source?.gclid), .text(source?.device ?? first.device)]
        try insertSession.append(values)
    }
}
