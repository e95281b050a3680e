import Foundation
import SegmentCore
import SegmentWarehouse
import SQLiteEngine

/// The "Product analytics" dashboard for datasette-dashboards 0.8 (its metadata under
/// `plugins`): every chart one SQL query over the analytics views, the rollups or the models
/// (docs/models.md, Product analytics), drawn with the Vega-Lite it bundles, so it works offline.
/// The date range filters (`date_start`, `date_end`, UTC days) narrow every chart.
public enum DatasetteDashboard {
    public static let slug = "product-analytics"

    /// Why a warehouse gets no dashboard, or nil when it gets one.
    static func missing(_ db: Database) throws -> String? {
        let views = Set(try db.query("SELECT name FROM sqlite_master WHERE type = 'view'").compactMap { $0[0].text })
        return Rollups.views.allSatisfy(views.contains) ? nil : "the models were never built (segment-loader models --db)"
    }

    /// The funnel's steps when none are given: the three track events with the most calls, in
    /// the order their people first did them (the mean of each person's first day of it).
    static func defaultFunnel(_ db: Database) throws -> [String] {
        let top = try db.query("""
            SELECT event FROM _model_daily_events WHERE event NOT IN ('page', 'screen')
            GROUP BY event ORDER BY sum(calls) DESC, event LIMIT 3
            """).compactMap { $0[0].text }
        guard !top.isEmpty else { return [] }
        let list = top.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" }.joined(separator: ", ")
        return try db.query("""
            SELECT name FROM (SELECT person, name, min(day) AS first_day FROM _model_person_events
                              WHERE kind = 'track' AND name IN (\(list)) GROUP BY person, name)
            GROUP BY name ORDER BY avg(first_day), name
            """).compactMap { $0[0].text }
    }

    /// A day filter on an integer day-number column (days since 1970-01-01).
    static func dayRange(_ column: String) -> String {
        "[[ AND \(column) >= CAST(julianday(:date_start) - 2440587.5 AS INTEGER) ]] [[ AND \(column) <= CAST(julianday(:date_end) - 2440587.5 AS INTEGER) ]]"
    }

    /// A day filter on a `YYYY-MM-DD` text column.
    static let textDayRange = "[[ AND day >= :date_start ]] [[ AND day <= :date_end ]]"

    /// The dashboard's metadata, for the database Datasette calls `database`.
    static func build(_ db: Database, database: String, funnel given: [String]) throws -> JSONValue {
        let steps = given.isEmpty ? try defaultFunnel(db) : given
        var funnel = Funnel(steps: steps.map(Funnel.Step.init))
        funnel.windowSeconds = 7 * 86_400
        let utcDay = #"{"field": "day", "type": "temporal", "timeUnit": "utcyearmonthdate", "title": "day (UTC)"}"#

        var charts: [(key: String, value: JSONValue)] = []
        func chart(_ slug: String, _ title: String, _ query: String, _ display: String) throws {
            var spec = try JSONParser.parse(display)
            // SVG marks carry their values (aria-label), for people with screen readers and for the tests.
            if case .object(var members) = spec {
                members.append(("usermeta", .object([("embedOptions", .object([("renderer", .string("svg")), ("actions", .bool(false))]))])))
                spec = .object(members)
            }
            charts.append((slug, .object([
                ("title", .string(title)), ("db", .string(database)), ("query", .string(query)),
                ("library", .string("vega-lite")), ("display", spec),
            ])))
        }
        charts.append(("about", .object([("library", .string("markdown")), ("display", .string("""
            People are blended user ids (a device's anonymous calls count as its user's once any call links them); \
            days and ISO weeks are UTC; a person is active on a day with any call that day. The figures come from \
            the views `active_people`, `daily_events` and `weekly_retention`, the `sessions` model and the rollups \
            the models keep, updated by every load (docs/models.md, Product analytics).
            """))])))

        try chart("active-people", "Active people: DAU, WAU, MAU",
                  "SELECT day, dau AS DAU, wau AS WAU, mau AS MAU FROM active_people WHERE true \(textDayRange) ORDER BY day", """
            {"transform": [{"fold": ["DAU", "WAU", "MAU"], "as": ["measure", "people"]}],
             "mark": {"type": "line", "point": true, "tooltip": true},
             "encoding": {"x": \(utcDay), "y": {"field": "people", "type": "quantitative"},
                          "color": {"field": "measure", "type": "nominal", "sort": ["DAU", "WAU", "MAU"], "title": null}}}
            """)
        try chart("new-returning", "New and returning people per day",
                  "SELECT day, new_people, dau - new_people AS returning_people FROM active_people WHERE true \(textDayRange) ORDER BY day", """
            {"transform": [{"fold": ["new_people", "returning_people"], "as": ["people_kind", "people"]},
                           {"calculate": "datum.people_kind == 'new_people' ? 'new people' : 'returning people'", "as": "people_kind"}],
             "mark": {"type": "bar", "tooltip": true},
             "encoding": {"x": \(utcDay), "y": {"field": "people", "type": "quantitative", "stack": "zero"},
                          "color": {"field": "people_kind", "type": "nominal", "title": null}}}
            """)
        try chart("events", "Events over time (the five with the most calls in the range)", """
            SELECT day, event, calls, people FROM daily_events
            WHERE event IN (SELECT event FROM daily_events WHERE true \(textDayRange) GROUP BY event ORDER BY sum(calls) DESC, event LIMIT 5)
            \(textDayRange) ORDER BY day, event
            """, """
            {"mark": {"type": "line", "point": true, "tooltip": true},
             "encoding": {"x": \(utcDay), "y": {"field": "calls", "type": "quantitative"},
                          "color": {"field": "event", "type": "nominal"}}}
            """)
        if steps.count >= 2 {
            try chart("funnel", "Funnel: \(steps.joined(separator: " → ")) (within 7 days of step 1)", funnel.dashboardQuery(db.dialect), """
                {"mark": {"type": "bar", "tooltip": true},
                 "encoding": {"y": {"field": "step", "type": "ordinal", "sort": null, "title": null},
                              "x": {"field": "people", "type": "quantitative"}}}
                """)
        }
        try chart("retention", "Weekly retention: % of each cohort (ISO week of first activity) active k weeks later", """
            SELECT cohort_week, week_number, cohort_people, retained_people,
                   round(100.0 * retained_people / cohort_people, 1) AS retained_pct
            FROM weekly_retention WHERE true [[ AND cohort_week >= date(:date_start, '-6 days') ]] [[ AND cohort_week <= :date_end ]]
            ORDER BY cohort_week, week_number
            """, """
            {"mark": {"type": "rect", "tooltip": true},
             "encoding": {"x": {"field": "week_number", "type": "ordinal", "title": "weeks after the cohort's first"},
                          "y": {"field": "cohort_week", "type": "ordinal", "title": "cohort (Monday, UTC)"},
                          "color": {"field": "retained_pct", "type": "quantitative", "title": "% retained", "scale": {"scheme": "blues"}}}}
            """)
        try chart("sessions", "Sessions per day and their median duration", """
            WITH s AS (SELECT date(started_at) AS day, duration_seconds AS d,
                              row_number() OVER (PARTITION BY date(started_at) ORDER BY duration_seconds) AS k,
                              count(*) OVER (PARTITION BY date(started_at)) AS n
                       FROM sessions WHERE true [[ AND started_at >= :date_start ]] [[ AND started_at < date(:date_end, '+1 day') ]])
            SELECT day, n AS sessions, avg(d) AS median_seconds FROM s WHERE k IN ((n + 1) / 2, (n + 2) / 2) GROUP BY day, n ORDER BY day
            """, """
            {"encoding": {"x": \(utcDay)},
             "layer": [
               {"mark": {"type": "bar", "tooltip": true, "opacity": 0.6},
                "encoding": {"y": {"field": "sessions", "type": "quantitative"}}},
               {"mark": {"type": "line", "point": true, "color": "#e45756", "tooltip": true},
                "encoding": {"y": {"field": "median_seconds", "type": "quantitative", "title": "median seconds"}}}],
             "resolve": {"scale": {"y": "independent"}}}
            """)
        try chart("pages", "Top pages by views (and the people who viewed them)", """
            SELECT CASE WHEN name = '' THEN '(no path)' ELSE name END AS path, sum(calls) AS views, count(DISTINCT person) AS people
            FROM _model_person_events WHERE kind = 'page' \(dayRange("day"))
            GROUP BY name ORDER BY views DESC, path LIMIT 10
            """, """
            {"mark": {"type": "bar", "tooltip": true},
             "encoding": {"y": {"field": "path", "type": "nominal", "sort": "-x", "title": null},
                          "x": {"field": "views", "type": "quantitative"}}}
            """)
        try chart("sources", "New people by first-touch source (utm_source, else the referrer's domain, else direct)", """
            WITH people AS (SELECT first_day, source FROM _model_people WHERE true \(dayRange("first_day"))),
                 top AS (SELECT source FROM people GROUP BY source ORDER BY count(*) DESC, source LIMIT 7)
            SELECT date(first_day * 86400, 'unixepoch') AS day,
                   CASE WHEN source IN (SELECT source FROM top) THEN source ELSE 'other' END AS source, count(*) AS people
            FROM people GROUP BY 1, 2 ORDER BY 1, 2
            """, """
            {"mark": {"type": "bar", "tooltip": true},
             "encoding": {"x": \(utcDay), "y": {"field": "people", "type": "quantitative", "stack": "zero"},
                          "color": {"field": "source", "type": "nominal"}}}
            """)

        let layout: [[String]] = [
            ["about", "about"],
            ["active-people", "new-returning"],
            ["events", steps.count >= 2 ? "funnel" : "events"],
            ["retention", "sessions"],
            ["pages", "sources"],
        ]
        return .object([
            ("title", .string("Product analytics")),
            ("description", .string("Active people, events, a funnel, retention, sessions, pages and sources, from the warehouse's models")),
            ("layout", .array(layout.map { .array($0.map { .string($0) }) })),
            ("filters", .object([
                ("date_start", .object([("name", .string("From (UTC day)")), ("type", .string("date"))])),
                ("date_end", .object([("name", .string("To (UTC day)")), ("type", .string("date"))])),
            ])),
            ("charts", .object(charts)),
        ])
    }
}
