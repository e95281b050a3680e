import SegmentCore

/// The product-analytics views (docs/models.md, Product analytics): `active_people`,
/// `daily_events`, `weekly_retention`, over `person_calls` (every call with its person and UTC
/// day). Made again at the end of each models build that changed something, over the call
/// tables the warehouse has then, so that any SQL client or BI tool reads the same figures
/// `segment-loader funnel` and the dashboards use.
package enum AnalyticsViews {
    package static let names = ["weekly_retention", "active_people", "daily_events", "person_calls"]

    /// Every call of the six kinds: its person (blended, as the models make it), its UTC day,
    /// and for daily_events its event (a track's raw name, `page`, `screen`; NULL for the rest).
    static func personCalls(_ db: any SQLSession) throws -> String? {
        let dialect = db.dialect
        var selects: [String] = []
        for table in ["tracks", "pages", "screens", "identifies", "groups", "aliases"] where try db.tableExists(table) {
            let event = table == "tracks" ? "x.event_text" : table == "pages" ? "'page'" : table == "screens" ? "'screen'" : "CAST(NULL AS TEXT)"
            let day = dialect.utcDay("x.\"timestamp\"")
            selects.append("""
                SELECT coalesce(al.final_id, x.user_id) AS person, \(day) AS day, \(event) AS event FROM \(table) x
                  LEFT JOIN _model_aliases al ON al.id = x.user_id WHERE x.user_id IS NOT NULL AND x."timestamp" IS NOT NULL
                """)
            selects.append("""
                SELECT coalesce(i.user_id, x.anonymous_id) AS person, \(day) AS day, \(event) AS event FROM \(table) x
                  LEFT JOIN identities i ON i.anonymous_id = \(dialect.anonymousKey(of: "x")) WHERE x.user_id IS NULL AND x.anonymous_id IS NOT NULL AND x."timestamp" IS NOT NULL
                """)
        }
        return selects.isEmpty ? nil : selects.joined(separator: "\nUNION ALL\n")
    }

    /// The views, made again (dropped first, the dependent ones first).
    package static func create(_ db: any SQLSession) throws {
        let d = db.dialect
        for name in names { try db.execute("DROP VIEW IF EXISTS \(name)") }
        guard let calls = try personCalls(db) else { return }
        try db.execute("CREATE VIEW person_calls AS\n" + calls)
        try db.execute("""
            CREATE VIEW daily_events AS
            SELECT day, event, count(*) AS calls, count(DISTINCT person) AS people FROM person_calls
            WHERE event IS NOT NULL GROUP BY day, event
            """)
        try db.execute("""
            CREATE VIEW active_people AS
            WITH pd AS (SELECT DISTINCT person, day FROM person_calls),
                 firsts AS (SELECT person, min(day) AS first_day FROM pd GROUP BY person),
                 days AS (SELECT DISTINCT day FROM pd)
            SELECT d.day,
              (SELECT count(*) FROM pd WHERE pd.day = d.day) AS dau,
              (SELECT count(DISTINCT pd.person) FROM pd WHERE pd.day > \(d.daysBefore("d.day", 7)) AND pd.day <= d.day) AS wau,
              (SELECT count(DISTINCT pd.person) FROM pd WHERE pd.day > \(d.daysBefore("d.day", 30)) AND pd.day <= d.day) AS mau,
              (SELECT count(*) FROM firsts f WHERE f.first_day = d.day) AS new_people
            FROM days d
            """)
        try db.execute("""
            CREATE VIEW weekly_retention AS
            WITH pd AS (SELECT DISTINCT person, day FROM person_calls),
                 cohorts AS (SELECT person, \(d.weekStart("min(day)")) AS cohort_week FROM pd GROUP BY person),
                 sizes AS (SELECT cohort_week, count(*) AS cohort_people FROM cohorts GROUP BY cohort_week),
                 weeks AS (SELECT DISTINCT person, \(d.weekStart("day")) AS week FROM pd)
            SELECT c.cohort_week, \(d.weeksBetween("c.cohort_week", "w.week")) AS week_number, s.cohort_people,
                   count(*) AS retained_people
            FROM cohorts c JOIN weeks w ON w.person = c.person JOIN sizes s ON s.cohort_week = c.cohort_week
            GROUP BY c.cohort_week, w.week, s.cohort_people
            """)
    }
}
