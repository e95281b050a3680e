import Foundation
import SegmentCore

/// The product-analytics rollups behind the views `active_people`, `daily_events` and
/// `weekly_retention` (docs/models.md, Product analytics), kept by the models build inside its
/// transaction and equal to a rebuild after any sequence of loads.
///
/// `_model_person_events` holds each person's calls of each UTC day (days as whole days since
/// 1970-01-01) by kind: `track` with the event's raw name, `page` with the path, `screen` with
/// the screen's name, `other` (name '') for identify, group and alias calls; a person is active
/// on the days they have rows. `_model_people` holds each person's first and last active day and
/// first-touch source. The aggregates hold what the views add up:
/// `_model_active_days` the changes of DAU, WAU and MAU from one day to the next (a person's
/// active days as runs of covered days: +1 where a run starts, -1 where it ends), so that a
/// person's new day moves two rows, not thirty; `_model_daily_events` calls and people per day
/// and event; `_model_retention` people per cohort week and week number.
///
/// An incremental build counts each touched person's calls from the day of their earliest
/// touched call (all of them when an id joined or left them) in the same read of the call
/// tables that makes their sessions, and `RollupKeeper` moves the aggregates by the difference
/// between the person's rows before and after: their rows from that day on, and their last active
/// day before it (the only earlier day whose runs and weeks can change). A night costs in
/// proportion to the people it touched, not to the history.
package enum Rollups {
    /// The views over the rollups: names reserved like the models' tables.
    package static let views = ["active_people", "daily_events", "weekly_retention"]
    /// The rollups' own tables (bookkeeping: hidden in Datasette, reserved).
    package static let tables = ["_model_person_events", "_model_people", "_model_active_days", "_model_daily_events", "_model_retention"]
    /// Rollups of an earlier layout (December 2026: each person's days, a tree keyed at random
    /// that every night wrote all over), dropped when the rollups are made again.
    package static let retiredTables = ["_model_person_days"]
    /// Whether a warehouse's rollups are of this layout (else they are made again in full).
    package static func current(_ db: any SQLSession) throws -> Bool {
        try db.tableExists("_model_people") && db.columnExists("_model_people", "last_day")
    }

    /// A `since` before any timestamp: the person's whole history.
    static let beginning = "0001-01-01 00:00:00.000"
    /// Its day number (any day number before the first timestamp a warehouse can hold).
    static let always: Int64 = -1_000_000
    /// The longest window a day's figure looks back over (MAU), in days.
    static let window: Int64 = 30

    package static let definitions: [TableDefinition] = [
        // Stored in key order (SQLite: WITHOUT ROWID), by day first, so that a night's rows go
        // at the end of the tree instead of into pages all over it.
        TableDefinition("_model_person_events", key: .columns(["day", "person", "kind", "name"], ordered: true), TableDefinition.columns(
            "day INTEGER NOT NULL,person TEXT NOT NULL,kind TEXT NOT NULL,name TEXT NOT NULL,calls INTEGER NOT NULL")),
        TableDefinition("_model_people", key: .columns(["person"], ordered: false), TableDefinition.columns(
            "person TEXT,first_day INTEGER NOT NULL,last_day INTEGER NOT NULL,source TEXT NOT NULL"), indexes: [("_model_idx_people_first_day", ["first_day"])]),
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


    /// The Monday of a day's ISO week, as a day number (1970-01-01 was a Thursday).
    static func week(_ day: Int64) -> Int64 { day - (((day + 3) % 7) + 7) % 7 }

    /// What a call of `table` counts as in the rollups: its kind, and the SQL of its name (over
    /// the call table's alias `x`); nil for a table the rollups do not read.
    static func counted(_ table: String) -> (kind: String, name: String)? {
        sources.first { $0.table == table }.map { (String($0.kind.dropFirst().dropLast()), $0.name) }
    }

    /// Everything again, from the call tables (the rollup tables are emptied first): each
    /// person's calls per day, kind and name in one statement, then the people and the
    /// aggregates from them, person by person, as an incremental build makes them.
    package static func rebuild(_ db: any SQLSession) throws {
        let d = db.dialect
        try db.execute(tables.map { "DELETE FROM \($0)" }.joined(separator: "; "))
        for table in retiredTables { try db.execute("DROP TABLE IF EXISTS \(table)") }
        var selects: [String] = []
        for (table, kind, name) in try sources.filter({ try db.tableExists($0.table) }) {
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
        guard !selects.isEmpty else { return }
        try db.execute("""
            INSERT INTO _model_person_events (person, day, kind, name, calls)
            SELECT person, day, kind, name, count(*) FROM (\(selects.joined(separator: "\nUNION ALL\n"))) AS calls
            GROUP BY person, day, kind, name ORDER BY day, person, kind, name
            """)
        let keeper = try RollupKeeper(rebuilding: db)
        try db.each("SELECT person, day, kind, name, calls FROM _model_person_events ORDER BY person\(d.byBytes), day", []) { row in
            guard let person = row.value(at: 0).idText, let day = row.value(at: 1).integer else { return }
            try keeper.count(person: person, day: day, kind: row.value(at: 2).text ?? "other", name: row.value(at: 3).idText ?? "",
                             calls: row.value(at: 4).integer ?? 0)
        }
        try keeper.finish()
    }
}

/// Keeps the rollups of the people one models build touches, inside its transaction.
///
/// The build's activity stream hands it each person's calls from the first day it keeps for
/// them (`count`, a person's calls together, people one after another). A few thousand people
/// at a time, it reads what the rollups held for them (their days from 29 days before that day
/// on, their calls from that day on, their first day), writes the rows that differ, and moves
/// the aggregates by the difference; at `finish` the people no call reached (an id left them),
/// the aggregates' changes in one statement each, and the people's first-touch rows.
///
/// Memory: the waiting people's calls and rows (a chunk) and the aggregates' changes (written
/// out when they pass a limit), whatever the history.
package final class RollupKeeper {
    struct Call: Hashable {
        var day: Int64
        var kind: String
        var name: String
    }
    struct DayEvent: Hashable {
        var day: Int64
        var event: String
    }
    struct CohortWeek: Hashable {
        var cohort: Int64
        var number: Int64
    }

    private let db: any SQLSession
    /// Each kept person's first counted day (`Rollups.always`: all of their history). Nil when
    /// rebuilding: everyone from the start, nothing held before, the person tables written already.
    private let since: [String: Int64]?
    /// People whose `_model_people` row is made again even when their first day stays: their
    /// first session was written again, so their first-touch source may have changed.
    private let rewritten: Set<String>
    private var current: String?
    private var counts: [Call: Int64] = [:]
    private var waiting: [(person: String, calls: [Call: Int64])] = []
    private var waitingCalls = 0
    /// Incremental builds: the people whose calls were settled (each must come once).
    private var done = Set<String>()
    private var activeChanges: [Int64: (dau: Int64, wau: Int64, mau: Int64)] = [:]
    private var eventChanges: [DayEvent: (calls: Int64, people: Int64)] = [:]
    private var retentionChanges: [CohortWeek: Int64] = [:]
    /// The earliest day a change reached (rows emptied by it are deleted from it on).
    private var from = Int64.max
    private let peopleRows: any SQLAppender

    /// People and calls a chunk holds before it is settled; aggregate changes held before
    /// they are written.
    static let chunkPeople = 5_000
    static let chunkCalls = 50_000
    static let heldChanges = 100_000

    static let temporaryTables = ["m_r", "m_r_people", "m_r_active", "m_r_events", "m_r_weeks"]

    /// For a build that touched these people (person → the `timestamp` of their earliest touched
    /// call, or `Rollups.beginning`); `rewritten`: see the property.
    package init(db: any SQLSession, since people: [String: String], rewritten: Set<String>) throws {
        self.db = db
        since = people.mapValues(Rollups.day(of:))
        self.rewritten = rewritten
        peopleRows = try Self.begin(db)
    }

    /// For a rebuild: every person counted, nothing before.
    init(rebuilding db: any SQLSession) throws {
        self.db = db
        since = nil
        rewritten = []
        peopleRows = try Self.begin(db)
    }

    private static func begin(_ db: any SQLSession) throws -> any SQLAppender {
        let d = db.dialect
        try db.execute(d.recreateTemporary(TableDefinition("m_r_people", key: .columns(["person"], ordered: true), [
            .init("person", .text), .init("first_day", .integer), .init("last_day", .integer)])))
        return try db.appender(d.temporary("m_r_people"), columns: ["person", "first_day", "last_day"])
    }

    /// The first day counted for `person` (nil: not kept by this build).
    package func firstDay(of person: String) -> Int64? {
        guard let since else { return Rollups.always }
        return since[person]
    }

    /// Where the build must read a kept person's calls from for the rollups: the start of their
    /// first counted day (`Rollups.beginning`: all of them), nil for a person not kept.
    package func readFrom(_ person: String) -> String? {
        guard let day = firstDay(of: person) else { return nil }
        return day == Rollups.always ? Rollups.beginning : Timestamp.format(Instant(seconds: day * 86_400))
    }

    /// Counts `calls` calls of `person` on `day` (a kind of `Rollups.sources` and the call's
    /// name); calls before the person's first counted day and of people not kept are ignored.
    package func count(person: String, day: Int64, kind: String, name: String, calls: Int64 = 1) throws {
        guard let first = firstDay(of: person), day >= first else { return }
        if person != current {
            try close()
            if since != nil && done.contains(person) {
                throw WarehouseError(message: "models: the calls of \(person) were read apart (the build reads them in the order of the person)")
            }
            current = person
        }
        counts[Call(day: day, kind: kind, name: name), default: 0] += calls
    }

    /// The current person's calls are all counted.
    private func close() throws {
        guard let person = current else { return }
        if since != nil { done.insert(person) }
        waiting.append((person, counts))
        waitingCalls += counts.count
        counts = [:]
        current = nil
        if waiting.count >= Self.chunkPeople || waitingCalls >= Self.chunkCalls { try settle() }
    }

    /// Everything counted goes in; then the aggregates, the people, and the temporary tables.
    package func finish() throws {
        try close()
        try settle()
        if let since {
            for person in since.keys.sorted() where !done.contains(person) {
                waiting.append((person, [:]))
                if waiting.count >= Self.chunkPeople { try settle() }
            }
            try settle()
        }
        try writeChanges()
        try peopleRows.finish()
        let d = db.dialect
        let people = d.temporary("m_r_people")
        try db.execute("""
            DELETE FROM _model_people WHERE person IN (SELECT person FROM \(people));
            INSERT INTO _model_people (person, first_day, last_day, source)
              SELECT f.person, f.first_day, f.last_day, coalesce(s.utm_source, s.referrer_host, 'direct') FROM \(people) f
              LEFT JOIN sessions s ON s.blended_user_id = f.person AND s.session_index = 1 WHERE f.first_day IS NOT NULL
            """)
        if from != Int64.max {
            try db.run("DELETE FROM _model_daily_events WHERE people = 0 AND day >= ?", [.integer(from)])
            try db.run("DELETE FROM _model_active_days WHERE dau_change = 0 AND wau_change = 0 AND mau_change = 0 AND day >= ?", [.integer(from)])
            try db.execute("DELETE FROM _model_retention WHERE people = 0")
        }
        try db.execute(Self.temporaryTables.map { "DROP TABLE IF EXISTS \(d.temporary($0))" }.joined(separator: "; "))
    }

    /// The waiting people: what the rollups held for them, against what was counted.
    private func settle() throws {
        guard !waiting.isEmpty else { return }
        let chunk = waiting
        waiting = []
        waitingCalls = 0
        let d = db.dialect
        var old: [String: Before] = [:]
        var writes = Writes()
        if let since {
            let them = d.temporary("m_r")
            try db.execute(d.recreateTemporary(TableDefinition("m_r", key: .columns(["person"], ordered: true), [
                .init("person", .text), .init("since_day", .integer, "NOT NULL")])))
            let insert = try db.appender(them, columns: ["person", "since_day"])
            for (person, _) in chunk { try insert.append([.text(person), .integer(since[person] ?? Rollups.always)]) }
            try insert.finish()
            for row in try db.rows("SELECT p.person, p.first_day, p.last_day FROM _model_people p WHERE p.person IN (SELECT person FROM \(them))") {
                guard let person = row[0].idText, let first = row[1].integer, let last = row[2].integer else { continue }
                old[person] = Before(first: first, last: last)
            }
            // Their rows from the first counted day on, and their last active day before it:
            // a night's people mostly have neither to look for (their new day is after their
            // last), the others a lookup a day.
            let callsOfDay = try db.prepared("SELECT kind, name, calls FROM _model_person_events WHERE day = ? AND person = ?")
            for (person, var before) in old {
                let first = since[person] ?? Rollups.always
                if before.last < first {
                    before.days = [before.last]
                } else {
                    var day = before.last
                    while day >= max(first, before.first) {
                        let rows = try callsOfDay.rows([.integer(day), .text(person)])
                        if !rows.isEmpty { before.days.append(day) }
                        for row in rows {
                            before.calls[Call(day: day, kind: row[0].text ?? "other", name: row[1].idText ?? "")] = row[2].integer ?? 0
                        }
                        day -= 1
                    }
                    // The last active day before the first counted one, within the window.
                    day = first - 1
                    while day >= max(first - (Rollups.window - 1), before.first) {
                        if try !callsOfDay.rows([.integer(day), .text(person)]).isEmpty { before.days.append(day); break }
                        day -= 1
                    }
                    before.days.sort()
                }
                old[person] = before
            }
        }
        for (person, calls) in chunk { try apply(person, calls, before: old[person], into: &writes) }
        guard since != nil else { return }
        // The rows that differ: the old ones out, the new ones in, in the table's key order.
        let dropCall = try db.prepared("DELETE FROM _model_person_events WHERE day = ? AND person = ? AND kind = ? AND name = ?")
        for (person, call) in writes.droppedCalls {
            try dropCall.perform([.integer(call.day), .text(person), .text(call.kind), .text(call.name)])
        }
        let setLast = try db.prepared("UPDATE _model_people SET last_day = ? WHERE person = ?")
        for (person, day) in writes.lastDays { try setLast.perform([.integer(day), .text(person)]) }
        let insertCall = try db.appender("_model_person_events", columns: ["day", "person", "kind", "name", "calls"])
        for row in writes.calls.sorted(by: Writes.callOrder) {
            try insertCall.append([.integer(row.call.day), .text(row.person), .text(row.call.kind), .text(row.call.name), .integer(row.calls)])
        }
        try insertCall.finish()
        if activeChanges.count + eventChanges.count + retentionChanges.count > Self.heldChanges { try writeChanges() }
    }

    /// What the rollups held for a person: their first and last active day, their active days
    /// from the first counted day on with the last one before it, their calls from that day on.
    struct Before {
        var first: Int64
        var last: Int64
        var days: [Int64] = []
        var calls: [Call: Int64] = [:]
    }

    /// The rows a chunk changes (besides the people made again at `finish`).
    struct Writes {
        var droppedCalls: [(person: String, call: Call)] = []
        var calls: [(person: String, call: Call, calls: Int64)] = []
        var lastDays: [(person: String, day: Int64)] = []

        /// Byte order, as the tables' keys are stored (SQLite's BINARY collation).
        static func before(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }
        static func callOrder(_ a: (person: String, call: Call, calls: Int64), _ b: (person: String, call: Call, calls: Int64)) -> Bool {
            if a.call.day != b.call.day { return a.call.day < b.call.day }
            if a.person != b.person { return before(a.person, b.person) }
            if a.call.kind != b.call.kind { return before(a.call.kind, b.call.kind) }
            return before(a.call.name, b.call.name)
        }
    }

    /// One person: their rows that differ, their first and last day, and the aggregates' changes
    /// (their figures after, less their figures before, from their first counted day on). The
    /// days before it other than the last one are the same before and after, and so are their
    /// runs and weeks: left out of both.
    private func apply(_ person: String, _ new: [Call: Int64], before old: Before?, into writes: inout Writes) throws {
        let first = firstDay(of: person) ?? Rollups.always
        from = min(from, first)
        let oldCalls = old?.calls ?? [:]
        if since != nil {
            for (call, calls) in oldCalls where new[call] != calls { writes.droppedCalls.append((person, call)) }
            for (call, calls) in new where oldCalls[call] != calls { writes.calls.append((person, call, calls)) }
        }
        let before = old?.days ?? []
        let after = before.filter { $0 < first } + Set(new.keys.map(\.day)).sorted()
        let oldFirst = old?.first

        // Calls and people per day and event: a page view is the event `page`, a screen view
        // `screen`; identify, group and alias calls and unnamed tracks are no event.
        func events(_ calls: [Call: Int64]) -> [DayEvent: Int64] {
            var out: [DayEvent: Int64] = [:]
            for (call, n) in calls where call.kind != "other" && !(call.kind == "track" && call.name.isEmpty) {
                out[DayEvent(day: call.day, event: call.kind == "track" ? call.name : call.kind), default: 0] += n
            }
            return out
        }
        for (key, calls) in events(oldCalls) { moveEvent(key, calls: -calls, people: -1) }
        for (key, calls) in events(new) { moveEvent(key, calls: calls, people: 1) }

        // DAU, WAU, MAU: each active day covers itself and the days after it up to the window,
        // or up to the person's next active day; +1 where that run starts, -1 where it ends,
        // counted from the first counted day on.
        func runs(_ days: [Int64], _ weight: Int64) {
            for (i, day) in days.enumerated() {
                let next = i + 1 < days.count ? days[i + 1] : nil
                let start = max(day, first)
                var change = [Int64](repeating: 0, count: 3)
                for (column, width) in [Int64(1), 7, Rollups.window].enumerated() {
                    let end = next.map { min($0, day + width) } ?? day + width
                    guard end > start else { continue }
                    change[column] = weight
                    moveActive(start, change)
                    change[column] = -weight
                    moveActive(end, change)
                    change[column] = 0
                }
            }
        }
        runs(before, -1)
        runs(after, 1)

        // The first day: unchanged when the person had days before the first counted one.
        let firstAfter = oldFirst.flatMap { $0 < first ? $0 : nil } ?? after.first

        // Retention: the person's (cohort, week) pairs from the week of the first counted day on
        // (a cohort that changed has no rows before it at all).
        func pairs(_ days: [Int64], cohortDay: Int64, _ weight: Int64) {
            let cohort = Rollups.week(cohortDay), from = Rollups.week(first)
            var seen = Set<Int64>()
            for day in days where Rollups.week(day) >= from && seen.insert(Rollups.week(day)).inserted {
                retentionChanges[CohortWeek(cohort: cohort, number: (Rollups.week(day) - cohort) / 7), default: 0] += weight
            }
        }
        if let oldFirst { pairs(before, cohortDay: oldFirst, -1) }
        if let firstAfter { pairs(after, cohortDay: firstAfter, 1) }

        if since == nil || firstAfter != oldFirst || rewritten.contains(person) {
            try peopleRows.append([.text(person), firstAfter.map { .integer($0) } ?? .null, after.last.map { .integer($0) } ?? .null])
        } else if let last = after.last, last != old?.last {
            writes.lastDays.append((person, last))
        }
    }

    private func moveEvent(_ key: DayEvent, calls: Int64, people: Int64) {
        let was = eventChanges[key] ?? (0, 0)
        eventChanges[key] = (was.calls + calls, was.people + people)
    }

    private func moveActive(_ day: Int64, _ change: [Int64]) {
        let was = activeChanges[day] ?? (0, 0, 0)
        activeChanges[day] = (was.dau + change[0], was.wau + change[1], was.mau + change[2])
    }

    /// The aggregates' changes held so far, added to their rows (one statement a table).
    private func writeChanges() throws {
        let d = db.dialect
        func t(_ name: String) -> String { d.temporary(name) }
        try db.execute([
            d.recreateTemporary(TableDefinition("m_r_active", TableDefinition.columns(
                "day INTEGER NOT NULL,dau_change INTEGER NOT NULL,wau_change INTEGER NOT NULL,mau_change INTEGER NOT NULL"))),
            d.recreateTemporary(TableDefinition("m_r_events", TableDefinition.columns(
                "day INTEGER NOT NULL,event TEXT NOT NULL,calls INTEGER NOT NULL,people INTEGER NOT NULL"))),
            d.recreateTemporary(TableDefinition("m_r_weeks", TableDefinition.columns(
                "cohort_week INTEGER NOT NULL,week_number INTEGER NOT NULL,people INTEGER NOT NULL"))),
        ].joined(separator: ";\n"))
        let active = try db.appender(t("m_r_active"), columns: ["day", "dau_change", "wau_change", "mau_change"])
        for (day, change) in activeChanges.sorted(by: { $0.key < $1.key }) where change != (0, 0, 0) {
            try active.append([.integer(day), .integer(change.dau), .integer(change.wau), .integer(change.mau)])
        }
        try active.finish()
        let events = try db.appender(t("m_r_events"), columns: ["day", "event", "calls", "people"])
        for (key, change) in eventChanges where change != (0, 0) {
            try events.append([.integer(key.day), .text(key.event), .integer(change.calls), .integer(change.people)])
        }
        try events.finish()
        let weeks = try db.appender(t("m_r_weeks"), columns: ["cohort_week", "week_number", "people"])
        for (key, people) in retentionChanges where people != 0 {
            try weeks.append([.integer(key.cohort), .integer(key.number), .integer(people)])
        }
        try weeks.finish()
        activeChanges = [:]
        eventChanges = [:]
        retentionChanges = [:]
        // WHERE true: SQLite's parser needs it between a SELECT and ON CONFLICT.
        try db.execute("""
            INSERT INTO _model_active_days (day, dau_change, wau_change, mau_change)
              SELECT day, dau_change, wau_change, mau_change FROM \(t("m_r_active")) WHERE true
              ON CONFLICT (day) DO UPDATE SET dau_change = _model_active_days.dau_change + excluded.dau_change,
                wau_change = _model_active_days.wau_change + excluded.wau_change, mau_change = _model_active_days.mau_change + excluded.mau_change;
            INSERT INTO _model_daily_events (day, event, calls, people)
              SELECT day, event, calls, people FROM \(t("m_r_events")) WHERE true
              ON CONFLICT (day, event) DO UPDATE SET calls = _model_daily_events.calls + excluded.calls, people = _model_daily_events.people + excluded.people;
            INSERT INTO _model_retention (cohort_week, week_number, people)
              SELECT cohort_week, week_number, people FROM \(t("m_r_weeks")) WHERE true
              ON CONFLICT (cohort_week, week_number) DO UPDATE SET people = _model_retention.people + excluded.people
            """)
    }
}
