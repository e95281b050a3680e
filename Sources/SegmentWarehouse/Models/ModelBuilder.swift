import Foundation
import SegmentCore
import SegmentStages

/// One build's work, inside `Models.build`'s transaction.
struct Builder {
    let db: any SQLSession
    let timeoutMilliseconds: Int64
    let callTables: Set<String>
    var graph: AliasGraph
    var people = 0

    init(db: any SQLSession, timeoutMilliseconds: Int64) throws {
        self.db = db
        self.timeoutMilliseconds = timeoutMilliseconds
        callTables = Set(try db.rows("SELECT table_name FROM _schema_tables WHERE call_type <> 'profile'").compactMap { $0[0].text })
        graph = try AliasGraph(db: db, hasAliases: callTables.contains("aliases"))
    }

    /// The models' SQL, written in SQLite's words, in the session's: PostgreSQL's temporary
    /// tables are in `pg_temp`, `INSERT OR IGNORE` is `ON CONFLICT DO NOTHING`, and the `+`
    /// that keeps SQLite's planner off an index is not needed (PostgreSQL has statistics).
    func sql(_ text: String) -> String {
        guard db.dialect == .postgres else { return text }
        var out = text.replacingOccurrences(of: "temp.", with: "pg_temp.")
            .replacingOccurrences(of: "+x.user_id", with: "x.user_id").replacingOccurrences(of: "+user_id", with: "user_id")
        guard out.contains("INSERT OR IGNORE INTO") else { return out }
        out = out.split(separator: ";", omittingEmptySubsequences: false).map { statement -> String in
            guard statement.contains("INSERT OR IGNORE INTO") else { return String(statement) }
            let trimmed = statement.trimmingCharacters(in: .whitespacesAndNewlines)
            return " " + trimmed.replacingOccurrences(of: "INSERT OR IGNORE INTO", with: "INSERT INTO") + " ON CONFLICT DO NOTHING"
        }.joined(separator: ";")
        return out
    }

    /// Everything again, from the call tables.
    mutating func rebuildAll() throws {
        try db.execute("DELETE FROM identities; DELETE FROM page_views; DELETE FROM sessions; DELETE FROM _model_aliases")
        // Building an index once over the rows is cheaper than keeping it row by row.
        let modelIndexes = db.dialect == .sqlite
            ? "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '\\_model\\_idx\\_%' ESCAPE '\\' AND tbl_name IN ('identities', 'page_views', 'sessions')"
            : "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexname LIKE '\\_model\\_idx\\_%' AND tablename IN ('identities', 'page_views', 'sessions')"
        for row in try db.rows(modelIndexes) {
            if let name = row[0].text { try db.execute("DROP INDEX \(quoteIdentifier(name))") }
        }
        try writeAliases(graph.aliased)
        try rebuildIdentities(restrictedTo: nil)
        try rebuildActivity(.all)
        try db.execute(Models.indexes)
    }

    /// What the ids touched since the last build change (each with the `timestamp` of its
    /// earliest new call). A person some id left or joined (a new alias at the end of a chain,
    /// a device linked to a user for the first time or to another one) is recomputed from all of
    /// their activity. A person who only has new activity is recomputed from the start of their
    /// last session that began at or before it: earlier sessions cannot change.
    mutating func update(users touchedUsers: [String: String], anons touchedAnons: [String: String]) throws {
        // Users whose alias chain now ends elsewhere.
        var components = Set<String>()
        for user in touchedUsers.keys where !components.contains(user) { components.formUnion(graph.component(of: user)) }
        try fill("m_users", components)
        var oldFinal: [String: String] = [:]
        for row in try db.rows(sql("SELECT id, final_id FROM _model_aliases WHERE id IN (SELECT id FROM temp.m_users)")) {
            if let id = row[0].text, let final = row[1].text { oldFinal[id] = final }
        }
        let changedUsers = components.filter { (oldFinal[$0] ?? $0) != graph.final($0) }
        try db.execute(sql("DELETE FROM _model_aliases WHERE id IN (SELECT id FROM temp.m_users)"))
        try writeAliases(components.sorted().compactMap { user in graph.final(user) == user ? nil : (user, graph.final(user)) })

        // Anonymous ids whose identities row may change: new links, links to a user whose chain
        // changed, and aliased ids (listed as linked to the end of their chain).
        var anons = Set(touchedAnons.keys)
        for user in changedUsers where graph.next[user] != nil { anons.insert(user) }
        try fill("m_changed_users", Set(changedUsers))
        for table in linkTables {
            let column = table == "aliases" ? "previous_id" : "anonymous_id"
            for row in try db.rows(sql("SELECT DISTINCT \(column) FROM \(table) WHERE user_id IN (SELECT id FROM temp.m_changed_users) AND \(column) IS NOT NULL")) {
                if let id = row[0].idText { anons.insert(id) }
            }
        }
        try fill("m_anons", anons)
        let linkedSQL = sql("SELECT m.id, i.user_id FROM temp.m_anons m JOIN identities i ON i.anonymous_id = m.id")
        let linkedUser = { [db] () throws -> [String: String] in
            var out: [String: String] = [:]
            for row in try db.rows(linkedSQL) {
                if let id = row[0].text, let user = row[1].text { out[id] = user }
            }
            return out
        }
        let before = try linkedUser()
        try rebuildIdentities(restrictedTo: "m_anons")
        let after = try linkedUser()

        // A person an id left loses rows anywhere in their history: in full. A person an id
        // joined gains that id's activity: from the earliest of it. Everyone else with new
        // activity: from the earliest new call.
        var full = Set<String>()
        var since: [String: String] = [:]
        func note(_ person: String, _ time: String) { since[person] = min(since[person] ?? time, time) }
        let earliest = try activityTables.map { table in
            (user: try db.prepared(sql("SELECT min(timestamp) FROM \(table) WHERE user_id = ?")),
             anon: try db.prepared(sql("SELECT min(timestamp) FROM \(table) WHERE anonymous_id = ? AND +user_id IS NULL")))
        }
        func earliestActivity(user: String?, anon: String?) throws -> String? {
            var first: String?
            for statements in earliest {
                let statement = user != nil ? statements.user : statements.anon
                if let time = try statement.rows([.text(user ?? anon!)]).first?[0].text { first = min(first ?? time, time) }
            }
            return first
        }
        for user in changedUsers {
            full.insert(oldFinal[user] ?? user)
            if let time = try earliestActivity(user: user, anon: nil) { note(graph.final(user), time) }
        }
        for anon in anons where before[anon] != after[anon] {
            full.insert(before[anon] ?? anon)
            if let time = try earliestActivity(user: nil, anon: anon) { note(after[anon] ?? anon, time) }
        }
        for (user, time) in touchedUsers { note(graph.final(user), time) }
        for (anon, time) in touchedAnons { note(after[anon] ?? anon, time) }
        let lastStart = try db.prepared("SELECT max(started_at), count(*), max(ended_at) FROM sessions WHERE blended_user_id = ? AND started_at <= ?")
        var cuts: [(person: String, cut: String, kept: Int64)] = []
        func milliseconds(_ text: String?) -> Int64? { text.flatMap(Timestamp.parse).map(Activity.milliseconds) }
        for (person, time) in since.sorted(by: { $0.key < $1.key }) where !full.contains(person) {
            let row = try lastStart.rows([.text(person), .text(time)]).first ?? [.null, .null, .null]
            let cut = row[0].text
            let upTo = row[1].integer ?? 0
            let ended = row[2].text
            // No session began before the new activity: the person has no activity before it
            // (it would be in a session), so everything from it on is modelled, numbered from 1.
            guard let cut else { cuts.append((person, time, 0)); continue }
            // A person back after a pause longer than the session timeout (most people on a
            // night): every session that began before the new activity also ended more than
            // a timeout before it, so none of them can change; only what follows is modelled,
            // numbered after them. Rewriting their last session anyway cost most of a night.
            if let end = milliseconds(ended), let start = milliseconds(time), start - end > timeoutMilliseconds {
                cuts.append((person, time, upTo))
                continue
            }
            cuts.append((person, cut, upTo - 1))
        }

        if !full.isEmpty {
            try fill("m_people", full)
            try fill("m_person_users", full)
            try db.execute(sql("INSERT OR IGNORE INTO temp.m_person_users SELECT id FROM _model_aliases WHERE final_id IN (SELECT id FROM temp.m_people)"))
            try fill("m_person_anons", [])
            try db.execute(sql("""
                INSERT OR IGNORE INTO temp.m_person_anons SELECT anonymous_id FROM identities WHERE user_id IN (SELECT id FROM temp.m_people);
                INSERT OR IGNORE INTO temp.m_person_anons SELECT id FROM temp.m_people WHERE id NOT IN (SELECT anonymous_id FROM identities);
                DELETE FROM sessions WHERE blended_user_id IN (SELECT id FROM temp.m_people);
                DELETE FROM page_views WHERE blended_user_id IN (SELECT id FROM temp.m_people);
                """))
            try rebuildActivity(.people(full))
        }
        if !cuts.isEmpty {
            try db.execute(sql(db.dialect.ddl("""
                DROP TABLE IF EXISTS temp.m_cuts; CREATE TEMP TABLE m_cuts (person TEXT PRIMARY KEY, cut TIMESTAMP NOT NULL) WITHOUT ROWID;
                DROP TABLE IF EXISTS temp.m_cut_users; CREATE TEMP TABLE m_cut_users (id TEXT PRIMARY KEY, person TEXT NOT NULL) WITHOUT ROWID;
                DROP TABLE IF EXISTS temp.m_cut_anons; CREATE TEMP TABLE m_cut_anons (id TEXT PRIMARY KEY, person TEXT NOT NULL) WITHOUT ROWID;
                """)))
            let insertCut = try db.prepared(sql("INSERT INTO temp.m_cuts (person, cut) VALUES (?, ?)"))
            let dropSessions = try db.prepared("DELETE FROM sessions WHERE blended_user_id = ? AND started_at >= ?")
            let dropViews = try db.prepared("DELETE FROM page_views WHERE blended_user_id = ? AND timestamp >= ?")
            for c in cuts {
                try insertCut.perform([.text(c.person), .text(c.cut)])
                try dropSessions.perform([.text(c.person), .text(c.cut)])
                try dropViews.perform([.text(c.person), .text(c.cut)])
            }
            try db.execute(sql("""
                INSERT OR IGNORE INTO temp.m_cut_users SELECT person, person FROM temp.m_cuts;
                INSERT OR IGNORE INTO temp.m_cut_users SELECT a.id, a.final_id FROM _model_aliases a JOIN temp.m_cuts c ON c.person = a.final_id;
                INSERT OR IGNORE INTO temp.m_cut_anons SELECT i.anonymous_id, i.user_id FROM identities i JOIN temp.m_cuts c ON c.person = i.user_id;
                INSERT OR IGNORE INTO temp.m_cut_anons SELECT person, person FROM temp.m_cuts WHERE person NOT IN (SELECT anonymous_id FROM identities);
                """))
            try rebuildActivity(.from(Dictionary(uniqueKeysWithValues: cuts.map { ($0.person, $0.kept) })))
        }
        try db.execute(sql("""
            DROP TABLE IF EXISTS temp.m_users; DROP TABLE IF EXISTS temp.m_changed_users; DROP TABLE IF EXISTS temp.m_anons;
            DROP TABLE IF EXISTS temp.m_people; DROP TABLE IF EXISTS temp.m_person_users; DROP TABLE IF EXISTS temp.m_person_anons;
            DROP TABLE IF EXISTS temp.m_cuts; DROP TABLE IF EXISTS temp.m_cut_users; DROP TABLE IF EXISTS temp.m_cut_anons;
            """))
    }

    /// The tables whose calls are activity (sessions are made of them).
    var activityTables: [String] { ["pages", "screens", "tracks"].filter(callTables.contains) }

}
