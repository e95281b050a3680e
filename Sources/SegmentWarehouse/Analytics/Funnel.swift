import SegmentCore

/// An ordered funnel (docs/models.md, Product analytics): the people who did step 1 in the
/// range, and of them those who then did each later step at or after the step before, within
/// the window from their first step 1 in the range. A person is a `blended_user_id`, as the
/// models make it (a user id through its alias chain; an anonymous id through `identities`).
public struct Funnel: Sendable, Equatable {
    /// A track event's raw name (`tracks.event_text`), or `page:/path` (`pages.path`).
    public enum Step: Sendable, Equatable, CustomStringConvertible {
        case event(String)
        case page(String)

        public init(_ text: String) {
            if text.hasPrefix("page:") { self = .page(String(text.dropFirst(5))) } else { self = .event(text) }
        }

        public var description: String {
            switch self {
            case .event(let name): return name
            case .page(let path): return "page:" + path
            }
        }
    }

    public var steps: [Step]
    /// The window from a person's first step 1, in seconds (default 7 days).
    public var windowSeconds: Int = 7 * 86_400
    /// First and last UTC day (`YYYY-MM-DD`) of step 1; nil: from the first, to the last.
    public var since: String?
    public var until: String?

    public init(steps: [Step]) {
        self.steps = steps
    }

    /// One SELECT whose single row holds each step's people, in order, with its parameters.
    package func query(_ dialect: any SQLDialect) -> (sql: String, arguments: [SQLValue]) {
        var arguments: [SQLValue] = []
        var range: [String] = []
        if since != nil {
            range.append(" AND r.ts >= \(dialect.timestampParameter)")
        }
        if until != nil {
            range.append(" AND r.ts < \(dialect.plusSeconds(dialect.timestampParameter, 86_400))")
        }
        let ctes = stepTables(dialect, range: range.joined()) { text in
            arguments.append(.text(text))
            return "?"
        }
        // The range's parameters follow step 1's two.
        var ordered = Array(arguments.prefix(2))
        if let since { ordered.append(.text(since + " 00:00:00.000")) }
        if let until { ordered.append(.text(until + " 00:00:00.000")) }
        ordered += arguments.dropFirst(2)
        let counts = (1...steps.count).map { "(SELECT count(*) FROM s\($0))" }.joined(separator: ", ")
        return (ctes + "\nSELECT " + counts, ordered)
    }

    /// The funnel for a datasette-dashboards chart on SQLite: one row per step (`step_number`,
    /// `step`, `people`, `pct_of_step_1`), the steps as literals, the range from the dashboard's
    /// optional `date_start` and `date_end` filters.
    package func dashboardQuery(_ dialect: any SQLDialect) -> String {
        func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
        let range = " [[ AND r.ts >= :date_start ]] [[ AND r.ts < \(dialect.plusSeconds(":date_end", 86_400)) ]]"
        let ctes = stepTables(dialect, range: range, value: literal)
        let rows = steps.enumerated().map { i, step in
            "SELECT \(i + 1) AS step_number, \(literal("\(i + 1). \(step)")) AS step, (SELECT count(*) FROM s\(i + 1)) AS people, "
                + "round(100.0 * (SELECT count(*) FROM s\(i + 1)) / max(1, (SELECT count(*) FROM s1)), 1) AS pct_of_step_1"
        }
        return ctes + "\n" + rows.joined(separator: "\nUNION ALL ")
    }

    /// `WITH s1 AS (...), s2 AS (...)`: each step's people (and times), `range` added to step 1's
    /// condition, each step's name or path written by `value`.
    func stepTables(_ dialect: any SQLDialect, range: String, value: (String) -> String) -> String {
        func rows(_ step: Step) -> String {
            let (table, column, text): (String, String, String)
            switch step {
            case .event(let name): (table, column, text) = ("tracks", "x.event_text", name)
            case .page(let path): (table, column, text) = ("pages", "x.path", path)
            }
            let users = value(text), anons = value(text)
            return """
                SELECT coalesce(al.final_id, x.user_id) AS person, x."timestamp" AS ts FROM \(table) x
                  LEFT JOIN _model_aliases al ON al.id = x.user_id WHERE \(column) = \(users) AND x.user_id IS NOT NULL AND x."timestamp" IS NOT NULL
                UNION ALL
                SELECT coalesce(i.user_id, x.anonymous_id) AS person, x."timestamp" AS ts FROM \(table) x
                  LEFT JOIN identities i ON i.anonymous_id = \(dialect.anonymousKey(of: "x")) WHERE \(column) = \(anons) AND x.user_id IS NULL AND x.anonymous_id IS NOT NULL AND x."timestamp" IS NOT NULL
                """
        }
        var ctes = ["s1 AS (SELECT r.person, min(r.ts) AS t1, min(r.ts) AS t FROM (\(rows(steps[0]))) r WHERE true\(range) GROUP BY r.person)"]
        for k in 1..<steps.count {
            ctes.append("""
                s\(k + 1) AS (SELECT p.person, p.t1, min(r.ts) AS t FROM s\(k) p JOIN (\(rows(steps[k]))) r ON r.person = p.person
                  AND r.ts >= p.t AND r.ts <= \(dialect.plusSeconds("p.t1", windowSeconds)) GROUP BY p.person, p.t1)
                """)
        }
        return "WITH " + ctes.joined(separator: ",\n")
    }

    /// Each step's people.
    package func run(_ db: any SQLSession) throws -> [Int64] {
        guard !steps.isEmpty else { return [] }
        for table in ["identities", "_model_aliases"] where try !db.tableExists(table) {
            throw WarehouseError(message: "the funnel counts people as the models make them, and this warehouse has no \(table) yet: run segment-loader models --db first")
        }
        for step in steps {
            let table: String
            switch step {
            case .event: table = "tracks"
            case .page: table = "pages"
            }
            if try !db.tableExists(table) { return steps.map { _ in 0 } }
        }
        let (sql, arguments) = query(db.dialect)
        guard let row = try db.rows(sql, arguments).first else { return steps.map { _ in 0 } }
        return row.map { $0.integer ?? 0 }
    }
}
