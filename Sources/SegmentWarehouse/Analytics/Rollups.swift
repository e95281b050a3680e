import Foundation
import SegmentCore

/// The product-analytics rollups behind the views `active_people`, `daily_events` and
/// `weekly_retention` (docs/models.md, Product analytics), kept by the models build inside its
/// transaction and equal to a rebuild after any sequence of loads.
///
/// `_model_person_days` holds each person's active UTC days (days as whole days since
/// 1970-01-01) with their calls, `_model_person_events` the calls of each day by kind: `track`
/// with the event's raw name, `page` with the path, `screen` with the screen's name, `other`
/// (name '') for identify, group and alias calls. `_model_people` holds
/// each person's first day and first-touch source. The aggregates hold what the views add up:
/// `_model_active_days` the changes of DAU, WAU and MAU from one day to the next (a person's
/// active days as runs of covered days: +1 where a run starts, -1 where it ends), so that a
/// person's new day moves two rows, not thirty; `_model_daily_events` calls and people per day
/// and event; `_model_retention` people per cohort week and week number.
///
/// An incremental build recomputes each touched person's days from the day of their earliest
/// touched call (all of their days when an id joined or left them), and moves the aggregates by
/// the difference between the person's rows before and after, read from the 29 days before that
/// day on (what a 30-day window of those days can see). A night costs in proportion to the
/// people it touched, not to the history.
package enum Rollups {
    /// The views over the rollups: names reserved like the models' tables.
    package static let views = ["active_people", "daily_events", "weekly_retention"]
    /// The rollups' own tables (bookkeeping: hidden in Datasette, reserved).
    package static let tables = ["_model_person_days", "_model_person_events", "_model_people", "_model_active_days", "_model_daily_events",
                                 "_model_retention"]

    /// A `since` before any timestamp: the person's whole history.
    static let beginning = "0001-01-01 00:00:00.000"
    /// Its day number (any day number before the first timestamp a warehouse can hold).
    static let always: Int64 = -1_000_000
    /// The longest window a day's figure looks back over (MAU), in days.
    static let window: Int64 = 30

    package static let definitions: [TableDefinition] = [
        // Stored in key order (SQLite: WITHOUT ROWID), one tree each: a person's days side by
        // side (a build reads a window of them per person), and the calls by day first, so that
        // a night's rows go at the end of the tree instead of into pages all over it.
        TableDefinition("_model_person_days", key: .columns(["person", "day"], ordered: true), TableDefinition.columns(
            "person TEXT NOT NULL,day INTEGER NOT NULL,calls INTEGER NOT NULL")),
        TableDefinition("_model_person_events", key: .columns(["day", "person", "kind", "name"], ordered: true), TableDefinition.columns(
            "day INTEGER NOT NULL,person TEXT NOT NULL,kind TEXT NOT NULL,name TEXT NOT NULL,calls INTEGER NOT NULL")),
        TableDefinition("_model_people", key: .columns(["person"], ordered: false), TableDefinition.columns(
            "person TEXT,first_day INTEGER NOT NULL,source TEXT NOT NULL"), indexes: [("_model_idx_people_first_day", ["first_day"])]),
        TableDefinition("_model_active_days", key: .columns(["day"], ordered: true), TableDefinition.columns(
            "day INTEGER,dau_change INTEGER NOT NULL,wau_change INTEGER NOT NULL,mau_change INTEGER NOT NULL")),
        TableDefinition("_model_daily_events", key: .columns(["day", "event"], ordered: true), TableDefinition.columns(
            "day INTEGER NOT NULL,event TEXT NOT NULL,calls INTEGER NOT NULL,people INTEGER NOT NULL")),
        TableDefinition("_model_retention", key: .columns(["cohort_week", "week_number"], ordered: true), TableDefinition.columns(
            "cohort_week INTEGER NOT NULL,week_number INTEGER NOT NULL,people INTEGER NOT NULL")),
    ]

    /// The call tables and what a row of each counts as.
    static let sources: [(table: String, kind: String, name: String)] = [
        ("tracks", "'track'", "coalesce(x.event_text, '')"), ("pages", "'page'", "coalesce(x.path, '')"), ("screens", "'screen'", "coalesce(x.name, '')"),
        ("identifies", "'other'", "''"), ("groups", "'other'", "''"), ("aliases", "'other'", "''"),
    ]

    // The build's temporary tables.
    static let people = TableDefinition("m_r", key: .columns(["person"], ordered: true), [
        .init("person", .text), .init("since_day", .integer, "NOT NULL"), .init("since_ts", .timestamp, "NOT NULL")])
    static func firsts(_ name: String) -> TableDefinition {
        TableDefinition(name, key: .columns(["person"], ordered: true), [.init("person", .text), .init("first_day", .integer, "NOT NULL")])
    }
    static func events(_ name: String) -> TableDefinition {
        TableDefinition(name, TableDefinition.columns("person TEXT NOT NULL,day INTEGER NOT NULL,kind TEXT NOT NULL,name TEXT NOT NULL,calls INTEGER NOT NULL"))
    }
    static func days(_ name: String) -> TableDefinition {
        TableDefinition(name, TableDefinition.columns("person TEXT NOT NULL,day INTEGER NOT NULL,calls INTEGER NOT NULL"))
    }
    static let segments = TableDefinition("m_r_segments", TableDefinition.columns(
        "person TEXT NOT NULL,day INTEGER NOT NULL,next_day INTEGER,since_day INTEGER NOT NULL,weight INTEGER NOT NULL"))
    static let temporaryTables = ["m_r", "m_r_users", "m_r_anons", "m_r_old", "m_r_new", "m_r_old_days", "m_r_new_days",
                                  "m_r_first_old", "m_r_first_new", "m_r_segments"]

    /// The Monday of a day's ISO week, as a day number (1970-01-01 was a Thursday).
    static func week(_ day: String) -> String { "(\(day) - (((\(day) + 3) % 7) + 7) % 7)" }

    /// The views, where missing.
    package static func viewStatements(_ d: any SQLDialect) -> [String] {
        let series = d.daySeries()
        return d.createView("active_people", """
            WITH \(series.recursive ? "RECURSIVE " : "")bounds AS (SELECT min(day) AS first_day, max(day) - 1 AS last_day FROM _model_active_days WHERE dau_change <> 0),
            days (day) AS (\(series.select)),
            figures AS (SELECT days.day,
                               CAST(sum(coalesce(a.dau_change, 0)) OVER (ORDER BY days.day ROWS UNBOUNDED PRECEDING) AS BIGINT) AS dau,
                               CAST(sum(coalesce(a.wau_change, 0)) OVER (ORDER BY days.day ROWS UNBOUNDED PRECEDING) AS BIGINT) AS wau,
                               CAST(sum(coalesce(a.mau_change, 0)) OVER (ORDER BY days.day ROWS UNBOUNDED PRECEDING) AS BIGINT) AS mau
                        FROM days LEFT JOIN _model_active_days a ON a.day = days.day),
            newcomers AS (SELECT first_day, count(*) AS people FROM _model_people GROUP BY first_day)
            SELECT \(d.dayText("f.day")) AS day, f.dau, f.wau, f.mau, coalesce(n.people, 0) AS new_people
            FROM figures f LEFT JOIN newcomers n ON n.first_day = f.day
            """)
        + d.createView("daily_events", "SELECT \(d.dayText("day")) AS day, event, calls, people FROM _model_daily_events")
        + d.createView("weekly_retention", """
            SELECT \(d.dayText("r.cohort_week")) AS cohort_week, r.week_number, c.people AS cohort_people, r.people AS retained_people
            FROM _model_retention r JOIN _model_retention c ON c.cohort_week = r.cohort_week AND c.week_number = 0
            """)
    }

    /// The day number of a `since` timestamp (text), `always` for one that does not parse.
    static func day(of since: String) -> Int64 {
        guard since > beginning, let instant = Timestamp.parse(since) else { return always }
        let seconds = instant.seconds
        return seconds >= 0 ? seconds / 86_400 : -((-seconds + 86_399) / 86_400)
    }

    /// Everything again, from the call tables (the rollup tables are emptied first).
    package static func rebuild(_ db: any SQLSession) throws {
        let d = db.dialect
        try db.execute(tables.map { "DELETE FROM \($0)" }.joined(separator: "; "))
        var selects: [String] = []
        for (table, kind, name) in try present(db) {
            let dayOf = d.dayNumber("x.\"timestamp\"")
            selects.append("""
                SELECT coalesce(al.final_id, x.user_id) AS person, \(dayOf) AS day, \(kind) AS kind, \(name) AS name FROM \(table) x
                  LEFT JOIN _model_aliases al ON al.id = x.user_id WHERE x.user_id IS NOT NULL AND x."timestamp" IS NOT NULL
                """)
            selects.append("""
                SELECT coalesce(i.user_id, x.anonymous_id) AS person, \(dayOf) AS day, \(kind) AS kind, \(name) AS name FROM \(table) x
                  LEFT JOIN identities i ON i.anonymous_id = \(d.anonymousKey(of: "x")) WHERE x.user_id IS NULL AND x.anonymous_id IS NOT NULL AND x."timestamp" IS NOT NULL
                """)
        }
        if !selects.isEmpty {
            try db.execute("""
                INSERT INTO _model_person_events (person, day, kind, name, calls)
                SELECT person, day, kind, name, count(*) FROM (\(selects.joined(separator: "\nUNION ALL\n"))) AS calls
                GROUP BY person, day, kind, name ORDER BY day, person, kind, name
                """)
        }
        try db.execute("INSERT INTO _model_person_days (person, day, calls) SELECT person, day, sum(calls) FROM _model_person_events GROUP BY person, day ORDER BY person, day")
        // Every person, from the start, against nothing before.
        try createTemporaries(db)
        try db.run("INSERT INTO \(d.temporary("m_r")) (person, since_day, since_ts) SELECT DISTINCT person, \(always), \(d.timestampParameter) FROM _model_person_days",
                   [.text(beginning)])
        try db.execute("""
            INSERT INTO \(d.temporary("m_r_new")) (person, day, kind, name, calls) SELECT person, day, kind, name, calls FROM _model_person_events;
            INSERT INTO \(d.temporary("m_r_new_days")) (person, day, calls) SELECT person, day, calls FROM _model_person_days
            """)
        try apply(db, from: always)
    }

    /// Brings the rollups up to date for these people (person → the earliest touched call's
    /// `timestamp`, or `beginning` for all of their history), after the models' tables.
    package static func update(_ db: any SQLSession, people: [String: String]) throws {
        guard !people.isEmpty else { return }
        let d = db.dialect
        func t(_ name: String) -> String { d.temporary(name) }
        try createTemporaries(db)
        let insert = try db.appender(t("m_r"), columns: ["person", "since_day", "since_ts"])
        var starts: [(person: String, day: Int64)] = []
        for (person, since) in people.sorted(by: { $0.key < $1.key }) {
            let day = day(of: since)
            starts.append((person, day))
            let start = day == always ? beginning : Timestamp.format(Instant(seconds: day * 86_400))
            try insert.append([.text(person), .integer(day), .text(start)])
        }
        try insert.finish()

        // Before: their first days, and their rows a window before their change on.
        try db.execute("""
            INSERT INTO \(t("m_r_first_old")) (person, first_day)
              SELECT p.person, p.first_day FROM _model_people p WHERE p.person IN (SELECT person FROM \(t("m_r")));
            INSERT INTO \(t("m_r_old_days")) (person, day, calls)
              SELECT p.person, p.day, p.calls FROM \(t("m_r")) r CROSS JOIN _model_person_days p
              WHERE p.person = r.person AND p.day >= r.since_day - \(window - 1);
            INSERT INTO \(t("m_r_old")) (person, day, kind, name, calls)
              SELECT p.person, p.day, p.kind, p.name, p.calls FROM \(t("m_r")) r CROSS JOIN \(t("m_r_old_days")) o CROSS JOIN _model_person_events p
              WHERE o.person = r.person AND o.day >= r.since_day AND p.day = o.day AND p.person = o.person
            """)
        let dropDays = try db.prepared("DELETE FROM _model_person_days WHERE person = ? AND day >= ?")
        let dropEvents = try db.prepared("DELETE FROM _model_person_events WHERE day = ? AND person = ?")
        for row in try db.rows("SELECT o.day, o.person FROM \(t("m_r_old_days")) o JOIN \(t("m_r")) r ON r.person = o.person WHERE o.day >= r.since_day") {
            try dropEvents.perform([row[0], row[1]])
        }
        for start in starts { try dropDays.perform([.text(start.person), .integer(start.day)]) }
        try db.execute("DELETE FROM _model_people WHERE person IN (SELECT person FROM \(t("m_r")))")

        // Their ids (as the models blend them), then their calls from the day of the change on.
        let (users, anons, them) = (t("m_r_users"), t("m_r_anons"), t("m_r"))
        try db.execute([
            d.insertSkippingDuplicates(into: users, "SELECT person, person FROM \(them) WHERE person NOT IN (SELECT id FROM _model_aliases)"),
            d.insertSkippingDuplicates(into: users, "SELECT a.id, a.final_id FROM _model_aliases a JOIN \(them) r ON r.person = a.final_id"),
            d.insertSkippingDuplicates(into: anons, "SELECT i.anonymous_id, i.user_id FROM identities i JOIN \(them) r ON r.person = i.user_id"),
            d.insertSkippingDuplicates(into: anons, "SELECT person, person FROM \(them) WHERE person NOT IN (SELECT anonymous_id FROM identities)"),
        ].joined(separator: ";\n"))
        var selects: [String] = []
        for (table, kind, name) in try present(db) {
            let dayOf = d.dayNumber("x.\"timestamp\"")
            // The call tables with a (user_id, timestamp) and an (anonymous_id, timestamp) index
            // are read person by person through them (CROSS JOIN keeps that order in SQLite);
            // the others (identify, group, alias: few rows, other indexes) as the planner likes.
            let indexed = ["tracks", "pages", "screens"].contains(table)
            let join = indexed ? "CROSS JOIN" : ","
            selects.append("""
                SELECT u.person AS person, \(dayOf) AS day, \(kind) AS kind, \(name) AS name
                FROM \(users) u CROSS JOIN \(them) r \(join) \(table) x
                WHERE r.person = u.person AND x.user_id = u.id AND x."timestamp" >= r.since_ts
                """)
            selects.append("""
                SELECT a.person AS person, \(dayOf) AS day, \(kind) AS kind, \(name) AS name
                FROM \(anons) a CROSS JOIN \(them) r \(join) \(table) x
                WHERE r.person = a.person AND x.anonymous_id = a.id AND \(d.unindexed("x.user_id")) IS NULL AND x."timestamp" >= r.since_ts
                """)
        }
        // After: the new rows, made once in the build's own table, then written in key order;
        // their days, with the unchanged days of the window before.
        if !selects.isEmpty {
            try db.execute("""
                INSERT INTO \(t("m_r_new")) (person, day, kind, name, calls)
                SELECT person, day, kind, name, count(*) FROM (\(selects.joined(separator: "\nUNION ALL\n"))) AS calls GROUP BY person, day, kind, name
                """)
        }
        try db.execute("""
            INSERT INTO _model_person_events (person, day, kind, name, calls)
              SELECT person, day, kind, name, calls FROM \(t("m_r_new")) ORDER BY day, person, kind, name;
            INSERT INTO \(t("m_r_new_days")) (person, day, calls)
              SELECT person, day, sum(calls) FROM \(t("m_r_new")) GROUP BY person, day;
            INSERT INTO _model_person_days (person, day, calls) SELECT person, day, calls FROM \(t("m_r_new_days")) ORDER BY person, day;
            INSERT INTO \(t("m_r_new_days")) (person, day, calls)
              SELECT o.person, o.day, o.calls FROM \(t("m_r_old_days")) o JOIN \(t("m_r")) r ON r.person = o.person WHERE o.day < r.since_day
            """)
        try apply(db, from: starts.map(\.day).min() ?? always)
    }

    /// The six call tables the warehouse has, with what each row counts as.
    static func present(_ db: any SQLSession) throws -> [(table: String, kind: String, name: String)] {
        try sources.filter { try db.tableExists($0.table) }
    }

    static func createTemporaries(_ db: any SQLSession) throws {
        let d = db.dialect
        try db.execute([
            d.recreateTemporary(people), d.recreateTemporary(firsts("m_r_first_old")), d.recreateTemporary(firsts("m_r_first_new")),
            d.recreateTemporary(events("m_r_old")), d.recreateTemporary(events("m_r_new")), d.recreateTemporary(segments),
            d.recreateTemporary(days("m_r_old_days")), d.recreateTemporary(days("m_r_new_days")),
            d.recreateTemporary(Builder.personMap("m_r_users")), d.recreateTemporary(Builder.personMap("m_r_anons")),
        ].joined(separator: ";\n"))
    }

    /// From the people's rows before (`m_r_old`, `m_r_first_old`) and after (`m_r_new`; every
    /// row of theirs from `since_day` - 29 on): their `_model_people` rows, and the aggregates
    /// moved by the difference.
    /// `from`: the earliest day of a change (where rows emptied by it can be).
    static func apply(_ db: any SQLSession, from: Int64) throws {
        let d = db.dialect
        func t(_ name: String) -> String { d.temporary(name) }
        let (them, old, new) = (t("m_r"), t("m_r_old"), t("m_r_new"))
        let (oldDays, newDays) = (t("m_r_old_days"), t("m_r_new_days"))

        // First days after: unchanged where the person has days before the change (those rows
        // are the same), else the first of their new rows. The source: their first session's.
        try db.execute("""
            INSERT INTO \(t("m_r_first_new")) (person, first_day)
              SELECT f.person, f.first_day FROM \(t("m_r_first_old")) f JOIN \(them) r ON r.person = f.person WHERE f.first_day < r.since_day;
            INSERT INTO \(t("m_r_first_new")) (person, first_day)
              SELECT n.person, min(n.day) FROM \(newDays) n WHERE n.person NOT IN (SELECT person FROM \(t("m_r_first_new"))) GROUP BY n.person;
            INSERT INTO _model_people (person, first_day, source)
              SELECT f.person, f.first_day, coalesce(s.utm_source, s.referrer_host, 'direct') FROM \(t("m_r_first_new")) f
              LEFT JOIN sessions s ON s.blended_user_id = f.person AND s.session_index = 1
            """)

        // Calls and people per day and event (a page view is the event `page`, a screen view
        // `screen`), from the day of the change on.
        func events(_ rows: String, _ sign: String) -> String {
            """
            SELECT day, event, \(sign)sum(calls) AS calls, \(sign)count(*) AS people FROM (
              SELECT x.person, x.day, CASE WHEN x.kind = 'track' THEN x.name ELSE x.kind END AS event, sum(x.calls) AS calls
              FROM \(rows) x WHERE x.kind <> 'other' AND NOT (x.kind = 'track' AND x.name = '')
              GROUP BY x.person, x.day, CASE WHEN x.kind = 'track' THEN x.name ELSE x.kind END) AS per_person
            GROUP BY day, event
            """
        }
        try db.execute("""
            INSERT INTO _model_daily_events (day, event, calls, people)
            SELECT day, event, sum(calls), sum(people) FROM (\(events(old, "-")) UNION ALL \(events(new, ""))) AS changes
            WHERE true GROUP BY day, event HAVING sum(calls) <> 0 OR sum(people) <> 0
            ON CONFLICT (day, event) DO UPDATE SET calls = _model_daily_events.calls + excluded.calls, people = _model_daily_events.people + excluded.people
            """)
        try db.run("DELETE FROM _model_daily_events WHERE people = 0 AND day >= ?", [.integer(from)])

        // DAU, WAU, MAU: each active day covers itself and the days after it up to the window,
        // or up to the person's next active day; +1 where that run starts, -1 where it ends,
        // counted from the day of the change on.
        try db.execute("""
            INSERT INTO \(t("m_r_segments")) (person, day, next_day, since_day, weight)
              SELECT p.person, p.day, lead(p.day) OVER (PARTITION BY p.person ORDER BY p.day), r.since_day, -1
              FROM \(oldDays) p JOIN \(them) r ON r.person = p.person;
            INSERT INTO \(t("m_r_segments")) (person, day, next_day, since_day, weight)
              SELECT p.person, p.day, lead(p.day) OVER (PARTITION BY p.person ORDER BY p.day), r.since_day, 1
              FROM \(newDays) p JOIN \(them) r ON r.person = p.person
            """)
        var changes: [String] = []
        for (w, column) in [(1, 0), (7, 1), (30, 2)] {
            func columns(_ value: String) -> String { (0..<3).map { "\($0 == column ? value : "0") AS c\($0 + 1)" }.joined(separator: ", ") }
            let runs = """
                SELECT CASE WHEN day < since_day THEN since_day ELSE day END AS run_start,
                       CASE WHEN next_day IS NOT NULL AND next_day < day + \(w) THEN next_day ELSE day + \(w) END AS run_end, weight
                FROM \(t("m_r_segments"))
                """
            changes.append("SELECT run_start AS day, \(columns("weight")) FROM (\(runs)) AS runs WHERE run_end > run_start")
            changes.append("SELECT run_end AS day, \(columns("-weight")) FROM (\(runs)) AS runs WHERE run_end > run_start")
        }
        try db.execute("""
            INSERT INTO _model_active_days (day, dau_change, wau_change, mau_change)
            SELECT day, sum(c1), sum(c2), sum(c3) FROM (\(changes.joined(separator: "\nUNION ALL\n"))) AS changes
            WHERE true GROUP BY day HAVING sum(c1) <> 0 OR sum(c2) <> 0 OR sum(c3) <> 0
            ON CONFLICT (day) DO UPDATE SET dau_change = _model_active_days.dau_change + excluded.dau_change,
              wau_change = _model_active_days.wau_change + excluded.wau_change, mau_change = _model_active_days.mau_change + excluded.mau_change
            """)
        try db.run("DELETE FROM _model_active_days WHERE dau_change = 0 AND wau_change = 0 AND mau_change = 0 AND day >= ?", [.integer(from)])

        // Retention: the person's (cohort, week) pairs from the week of the change on (a
        // cohort that changed has no rows before the change at all).
        func pairs(_ rows: String, _ firsts: String, _ sign: String) -> String {
            """
            SELECT cohort_week, (week - cohort_week) / 7 AS week_number, \(sign)count(*) AS people FROM (
              SELECT DISTINCT x.person, \(week("f.first_day")) AS cohort_week, \(week("x.day")) AS week
              FROM \(rows) x JOIN \(them) r ON r.person = x.person JOIN \(firsts) f ON f.person = x.person
              WHERE x.day >= \(week("r.since_day"))) AS weeks
            GROUP BY cohort_week, week
            """
        }
        try db.execute("""
            INSERT INTO _model_retention (cohort_week, week_number, people)
            SELECT cohort_week, week_number, sum(people) FROM (\(pairs(oldDays, t("m_r_first_old"), "-")) UNION ALL \(pairs(newDays, t("m_r_first_new"), ""))) AS changes
            WHERE true GROUP BY cohort_week, week_number HAVING sum(people) <> 0
            ON CONFLICT (cohort_week, week_number) DO UPDATE SET people = _model_retention.people + excluded.people
            """)
        try db.execute("DELETE FROM _model_retention WHERE people = 0")
        try db.execute(temporaryTables.map { "DROP TABLE IF EXISTS \(t($0))" }.joined(separator: "; "))
    }
}
