import Foundation
import SegmentCore
import SegmentStages

/// Knobs of the built-in models (a pipeline's `models` key, `--no-models`).
public struct ModelOptions: Sendable, Equatable {
    /// Build the models at the end of every run and load.
    public var enabled = true
    /// A gap of more than this many minutes between two activities of a person starts a new
    /// session; nil keeps what the warehouse's last build used (30 the first time). A change
    /// rebuilds the models in full.
    public var sessionTimeoutMinutes: Int?

    public static let defaultSessionTimeoutMinutes = 30

    /// A build whose touched ids number more than the sessions divided by this rebuilds in
    /// full (same result, cheaper than person by person); 0 always updates person by person.
    /// PostgreSQL multiplies it by `postgresRoundTrips` (see `rebuildsInFull`).
    public var wideBuildFactor = 4

    /// Person by person, a build makes a few statements per person: in SQLite calls into the
    /// same process, in PostgreSQL round trips to the server, which cost that much more
    /// against a full rebuild's few large statements (on the benchmark's warehouse the people
    /// of one of its eight files took over two minutes person by person; a full rebuild of
    /// everyone, 415,611 sessions, about 18 s).
    public static let postgresRoundTrips = 10

    /// Whether `pending` touched ids (rows of `_model_pending`) against `sessions` are better
    /// rebuilt in full.
    func rebuildsInFull(pending: Int64, sessions: Int64, dialect: SQLDialect) -> Bool {
        guard wideBuildFactor > 0 else { return false }
        let factor = Int64(wideBuildFactor) * (dialect == .postgres ? Int64(Self.postgresRoundTrips) : 1)
        return pending * factor > sessions
    }

    public init(enabled: Bool = true, sessionTimeoutMinutes: Int? = nil) {
        self.enabled = enabled
        self.sessionTimeoutMinutes = sessionTimeoutMinutes
    }
}

/// What one build of the models did (`_models` keeps a row per build).
public struct ModelBuild: Sendable, Equatable, Codable {
    /// `full` (everything from the call tables), `incremental` (what the loads since the last
    /// build touched) or `none` (nothing new).
    public var mode: String
    /// People (blended user ids) whose page views and sessions were recomputed.
    public var people: Int
    /// Row counts after the build.
    public var identities: Int64
    public var pageViews: Int64
    public var sessions: Int64
    public var seconds: Double
    public var sessionTimeoutMinutes: Int = ModelOptions.defaultSessionTimeoutMinutes
}

extension ModelBuild {
    /// One line for a person: what was rebuilt and how many rows the models hold.
    public var summaryLine: String {
        let rows = "identities \(identities), page_views \(pageViews), sessions \(sessions)"
        switch mode {
        case "none": return "up to date (nothing new touched them): " + rows
        case "full": return "rebuilt in full (\(people) \(people == 1 ? "person" : "people")) in \(String(format: "%.2f", seconds)) s: " + rows
        default: return "updated for \(people) \(people == 1 ? "person" : "people") in \(String(format: "%.2f", seconds)) s: " + rows
        }
    }
}

/// The built-in models (`identities`, `page_views`, `sessions`; see docs/models.md), derived
/// from the call tables and kept equal to a full rebuild after every load: each load records
/// the ids it touched (`ModelTouches`, in the file's transaction), and `build` recomputes only
/// the people those ids belong to, before and after the load.
public enum Models {
    public static let tables = ["identities", "page_views", "sessions"]
    /// The models' indexes are named `_model_idx_<table>_<column>`, apart from the loader's `_idx_`
    /// ones, which a bulk load drops and builds again.
    public static let indexPrefix = Names.modelIndexPrefix

    static let schema = """
        CREATE TABLE IF NOT EXISTS identities (
            anonymous_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, first_linked_at TIMESTAMP, last_linked_at TIMESTAMP,
            user_ids INTEGER NOT NULL);

        CREATE TABLE IF NOT EXISTS page_views (
            id TEXT NOT NULL, anonymous_id TEXT, user_id TEXT, blended_user_id TEXT NOT NULL, timestamp TIMESTAMP,
            received_at TIMESTAMP, url TEXT, host TEXT, path TEXT, query TEXT, title TEXT, referrer TEXT, referrer_host TEXT,
            utm_source TEXT, utm_medium TEXT, utm_campaign TEXT, utm_term TEXT, utm_content TEXT, gclid TEXT, device TEXT,
            session_id TEXT NOT NULL, view_index INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS sessions (
            session_id TEXT NOT NULL, blended_user_id TEXT NOT NULL, session_index INTEGER NOT NULL, anonymous_id TEXT,
            user_id TEXT, started_at TIMESTAMP, ended_at TIMESTAMP, duration_seconds REAL, page_views INTEGER NOT NULL,
            screen_views INTEGER NOT NULL, events INTEGER NOT NULL, first_url TEXT, last_url TEXT, first_screen TEXT,
            last_screen TEXT, referrer TEXT, referrer_host TEXT, utm_source TEXT, utm_medium TEXT, utm_campaign TEXT,
            utm_term TEXT, utm_content TEXT, gclid TEXT, device TEXT);
        CREATE TABLE IF NOT EXISTS _model_aliases (id TEXT PRIMARY KEY, final_id TEXT NOT NULL) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS _model_idx_aliases_final_id ON _model_aliases (final_id);
        CREATE TABLE IF NOT EXISTS _models (
            id INTEGER PRIMARY KEY, load_id INTEGER, built_at TEXT NOT NULL, mode TEXT NOT NULL,
            session_timeout_minutes INTEGER NOT NULL, people INTEGER NOT NULL, identities INTEGER NOT NULL,
            page_views INTEGER NOT NULL, sessions INTEGER NOT NULL, seconds REAL NOT NULL);
        """ + ";\n" + ModelTouches.schema + ";\n" + indexes

    /// The models' indexes: a full build drops them and builds them again after the rows.
    static let indexes = """
        CREATE INDEX IF NOT EXISTS _model_idx_identities_user_id ON identities (user_id);
        CREATE INDEX IF NOT EXISTS _model_idx_page_views_blended_user_id ON page_views (blended_user_id, timestamp);
        CREATE INDEX IF NOT EXISTS _model_idx_page_views_session_id ON page_views (session_id);
        CREATE INDEX IF NOT EXISTS _model_idx_page_views_timestamp ON page_views (timestamp);
        CREATE UNIQUE INDEX IF NOT EXISTS _model_idx_sessions_session_id ON sessions (session_id);
        CREATE INDEX IF NOT EXISTS _model_idx_sessions_blended_user_id ON sessions (blended_user_id, started_at);
        CREATE INDEX IF NOT EXISTS _model_idx_sessions_started_at ON sessions (started_at);
        """

    /// Brings the models up to date in one transaction: a full rebuild when asked, when they
    /// were never built or when the session timeout changed; else the people touched since the
    /// last build. Returns what it did (`none` when nothing was touched).
    public static func build(in db: Database, options: ModelOptions = ModelOptions(), rebuild: Bool = false,
                             loadId: Int64? = nil, now: Date = Date()) throws -> ModelBuild {
        // Sorting a whole warehouse's activity spills to a temporary file, not memory.
        try db.execute("PRAGMA temp_store=FILE")
        defer { try? db.execute("PRAGMA temp_store=MEMORY") }
        return try build(session: db, options: options, rebuild: rebuild, loadId: loadId, now: now)
    }

    /// `segment-loader models` on a PostgreSQL warehouse (which must exist).
    public static func build(postgres database: String, schema: String?, options: ModelOptions, rebuild: Bool) throws -> ModelBuild {
        let warehouse = try PostgresWarehouse(existing: PostgresLocation(database, schema: schema))
        return try build(session: warehouse.connection, options: options, rebuild: rebuild)
    }

    /// Whether the models were ever built in this warehouse. Until they are, the first build
    /// is a full one, so a load records no touched ids (`_model_pending`): a first load of a
    /// backfill wrote a row per id for a build that never read them.
    static func everBuilt(_ db: any SQLSession) throws -> Bool {
        try WarehouseAccess.tableExists(db, "_models") && db.value("SELECT EXISTS (SELECT 1 FROM _models)")?.integer == 1
    }

    /// The advisory lock a PostgreSQL models build holds ("SEGO"), exclusive, and each file's
    /// transaction shared before it commits: a build sees one set of committed files, and
    /// two runs ending together build one after the other.
    static let postgresLockKey: Int64 = 0x5345_474F

    static func build(session db: any SQLSession, options: ModelOptions = ModelOptions(), rebuild: Bool = false,
                      loadId: Int64? = nil, now: Date = Date()) throws -> ModelBuild {
        let started = Date()
        return try db.inTransaction {
            if db.dialect == .postgres {
                try db.run("SELECT pg_advisory_xact_lock(\(postgresLockKey))")
                // The activity of many people is sorted in one query: in memory up to 64 MB
                // (the server's default, 4 MB, sorts a backfill's on disk).
                try db.execute("SET LOCAL work_mem = '64MB'")
            }
            try db.execute(db.dialect.ddl(schema))
            // Until December 2026 page_views had a unique index on id (the message id): random
            // keys, so every night rewrote most of its pages, for a lookup nothing made.
            try db.execute("DROP INDEX IF EXISTS _model_idx_page_views_id")
            let lastTimeout = try db.value("SELECT session_timeout_minutes FROM _models ORDER BY id DESC LIMIT 1")?.integer
            let timeout = options.sessionTimeoutMinutes ?? lastTimeout.map { Int($0) } ?? ModelOptions.defaultSessionTimeoutMinutes
            let full = rebuild || lastTimeout == nil || lastTimeout != Int64(timeout)
            var builder = try Builder(db: db, timeoutMilliseconds: Int64(timeout) * 60_000)
            // When the loads touched ids on the order of the sessions there are (a backfill, a
            // first big load), recomputing them one person at a time, with every index kept row
            // by row, costs more than building everything again; the result is the same.
            // Rows, not distinct ids (an id touched by several files has a row each): cheap, and
            // an upper bound is what the choice needs.
            let pending = try db.value("SELECT count(*) FROM _model_pending")?.integer ?? 0
            let sessions = try db.value("SELECT count(*) FROM sessions")?.integer ?? 0
            let wide = options.rebuildsInFull(pending: pending, sessions: sessions, dialect: db.dialect)
            let mode: String
            if full || wide {
                try builder.rebuildAll()
                mode = "full"
            } else if pending == 0 {
                mode = "none"
            } else {
                var users: [String: String] = [:], anons: [String: String] = [:]
                for row in try db.rows("SELECT kind, id, min(since) FROM _model_pending GROUP BY kind, id") {
                    guard let id = row[1].text else { continue }
                    let since = row[2].text ?? ""
                    if row[0].text == "user" { users[id] = since } else { anons[id] = since }
                }
                try builder.update(users: users, anons: anons)
                mode = "incremental"
            }
            try db.execute("DELETE FROM _model_pending")
            var result = ModelBuild(
                mode: mode, people: builder.people,
                identities: try db.value("SELECT count(*) FROM identities")?.integer ?? 0,
                pageViews: try db.value("SELECT count(*) FROM page_views")?.integer ?? 0,
                sessions: try db.value("SELECT count(*) FROM sessions")?.integer ?? 0,
                seconds: 0)
            result.seconds = (Date().timeIntervalSince(started) * 1000).rounded() / 1000
            result.sessionTimeoutMinutes = timeout
            if mode != "none" {
                try db.run("""
                    INSERT INTO _models (load_id, built_at, mode, session_timeout_minutes, people, identities, page_views, sessions, seconds)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, [loadId.map { .integer($0) } ?? .null, .text(Timestamp.format(Instant(date: now))), .text(mode),
                              .integer(Int64(timeout)), .integer(Int64(result.people)),
                              .integer(result.identities), .integer(result.pageViews), .integer(result.sessions), .real(result.seconds)])
            }
            return result
        }
    }
}

/// One build's work, inside `Models.build`'s transaction.
private struct Builder {
    let db: any SQLSession
    let timeoutMilliseconds: Int64
    let callTables: Set<String>
    var graph: AliasGraph
    private(set) var people = 0

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
    private var activityTables: [String] { ["pages", "screens", "tracks"].filter(callTables.contains) }

    // MARK: Identities

    /// The tables whose rows link an anonymous id to a user id (`aliases` by its previous id).
    private var linkTables: [String] {
        ["identifies", "tracks", "pages", "screens", "groups", "aliases"].filter(callTables.contains)
    }

    private func writeAliases(_ pairs: [(id: String, final: String)]) throws {
        let insert = try db.appender("_model_aliases", columns: ["id", "final_id"])
        for pair in pairs { try insert.append([.text(pair.id), .text(pair.final)]) }
        try insert.finish()
    }

    /// Recomputes the `identities` rows of the anonymous ids in temp table `restriction` (all
    /// when nil): every call that carries both ids links them; an alias links its previous id.
    private func rebuildIdentities(restrictedTo restriction: String?) throws {
        let tables = linkTables
        guard !tables.isEmpty else { return }
        if let restriction { try db.execute(sql("DELETE FROM identities WHERE anonymous_id IN (SELECT id FROM temp.\(restriction))")) }
        let selects = tables.map { table -> String in
            let anon = table == "aliases" ? "previous_id" : "anonymous_id"
            var sql = "SELECT \(anon) AS a, user_id AS u, timestamp AS t, received_at AS r, id FROM \(table) WHERE \(anon) IS NOT NULL AND +user_id IS NOT NULL"
            if table == "aliases" { sql += " AND previous_id <> user_id" }
            if let restriction { sql += " AND \(anon) IN (SELECT id FROM temp.\(restriction))" }
            return self.sql(sql)
        }
        let (byBytes, nullsFirst) = (db.dialect.byBytes, db.dialect.nullsFirst)
        if db.dialect == .postgres {
            // The same rule in one statement, in the server: the link last in the order below
            // (its user's chain's end), the first link's time (NULL when any link has none), the
            // last one's, and how many chain ends. No link travels to the loader. Window
            // functions over one sort of the links: an aggregate's ORDER BY or DISTINCT sorts
            // every anonymous id's links apart (PostgreSQL 15), and most ids have one or two.
            // The ids are grouped in bytes' order: the same groups as the database's collation
            // (equal is equal), sorted with memcmp instead of strcoll (1.8 s instead of 3.0 s for
            // the bench's 396,383 ids).
            let order = "l.t DESC NULLS LAST, l.r DESC NULLS LAST, l.id\(byBytes) DESC"
            // A whole rebuild fills the empty table without its primary key and builds that
            // after, from the sorted rows, as the other model indexes are built: keeping it row
            // by row was half of the statement (5.1 s against 3.1 s with the key built after).
            let primaryKey = try restriction == nil ? db.value("""
                SELECT conname FROM pg_constraint WHERE conrelid = 'identities'::regclass AND contype = 'p'
                """)?.text : nil
            if let primaryKey { try db.execute("ALTER TABLE identities DROP CONSTRAINT \(quoteIdentifier(primaryKey))") }
            try db.execute("""
                INSERT INTO identities (anonymous_id, user_id, first_linked_at, last_linked_at, user_ids)
                SELECT DISTINCT ON (l.a\(byBytes)) l.a, l.f,
                       CASE WHEN bool_or(l.t IS NULL) OVER anon THEN NULL ELSE min(l.t) OVER anon END, max(l.t) OVER anon,
                       count(*) FILTER (WHERE l.first_of_chain_end) OVER anon
                FROM (SELECT links.*, row_number() OVER (PARTITION BY links.a\(byBytes), links.f\(byBytes)) = 1 AS first_of_chain_end
                      FROM (SELECT l.a, coalesce(al.final_id, l.u) AS f, l.t, l.r, l.id
                            FROM (\(selects.joined(separator: " UNION ALL "))) AS l LEFT JOIN _model_aliases al ON al.id = l.u) AS links) AS l
                WINDOW anon AS (PARTITION BY l.a\(byBytes) ORDER BY \(order) ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
                ORDER BY l.a\(byBytes), \(order)
                """)
            if let primaryKey { try db.execute("ALTER TABLE identities ADD CONSTRAINT \(quoteIdentifier(primaryKey)) PRIMARY KEY (anonymous_id)") }
            return
        }
        let links = "SELECT a, u, t FROM (\(selects.joined(separator: " UNION ALL "))) AS links ORDER BY a\(byBytes), t\(nullsFirst), r\(nullsFirst), id\(byBytes)"
        let insert = try db.appender("identities", columns: ["anonymous_id", "user_id", "first_linked_at", "last_linked_at", "user_ids"])
        var current: String?
        var latest = "", first = SQLValue.null, last = SQLValue.null
        var finals = Set<String>()
        func flush() throws {
            guard let anon = current else { return }
            try insert.append([.text(anon), .text(latest), first, last, .integer(Int64(finals.count))])
        }
        try db.each(links, []) { links in
            guard let anon = links.value(at: 0).idText, let user = links.value(at: 1).idText else { return }
            let time = links.value(at: 2)
            if anon != current {
                try flush()
                current = anon
                first = time
                finals.removeAll()
            }
            let final = graph.final(user)
            latest = final
            last = time
            finals.insert(final)
        }
        try flush()
        try insert.finish()
    }

    // MARK: Page views and sessions

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
    /// the order of the person, then timestamp, received_at and id.
    private mutating func rebuildActivity(_ scope: Scope) throws {
        let kinds = activityTables.map { ($0, String($0.dropLast())) }
        guard !kinds.isEmpty else { return }
        var selects: [String] = []
        for (table, kind) in kinds {
            let page = kind == "page"
            let view = kind != "track"
            // The device class is computed here: a user agent is long, its class one word.
            let contains = db.dialect == .postgres ? "strpos(x.context_user_agent, '%@') > 0" : "instr(x.context_user_agent, '%@')"
            let device = "CASE " + DeviceClass.names.map { "WHEN \(contains.replacingOccurrences(of: "%@", with: $0.text)) THEN '\($0.text)'" }.joined(separator: " ")
                + " ELSE 'other' END"
            let columns = [
                "'\(kind)'", "x.id", "x.anonymous_id", "x.user_id", "x.timestamp", "x.received_at",
                page ? "x.url" : "NULL", page ? "x.context_page_url" : "NULL", page ? "x.path" : "NULL",
                page ? "x.title" : "NULL", page ? "x.context_page_title" : "NULL",
                page ? "x.referrer" : "NULL", page ? "x.context_page_referrer" : "NULL",
                view ? "x.name" : "NULL", device,
                view ? "x.context_campaign_source" : "NULL", view ? "x.context_campaign_medium" : "NULL",
                view ? "x.context_campaign_name" : "NULL", view ? "x.context_campaign_term" : "NULL",
                view ? "x.context_campaign_content" : "NULL",
            ].joined(separator: ", ")
            // For some people, the join order is written out (CROSS JOIN keeps it): the temp
            // table of people first, then each one's rows through the (id, timestamp) index.
            // Left to itself, SQLite (no statistics) scanned the whole call table, or every
            // anonymous row through the user_id index for `user_id IS NULL`, so a night's
            // models cost in proportion to the history. `+x.user_id` keeps that index out.
            switch scope {
            case .all:
                selects += [
                    "SELECT coalesce(al.final_id, x.user_id) AS b, \(columns) FROM \(table) x LEFT JOIN _model_aliases al ON al.id = x.user_id WHERE x.user_id IS NOT NULL",
                    "SELECT coalesce(i.user_id, x.anonymous_id) AS b, \(columns) FROM \(table) x LEFT JOIN identities i ON i.anonymous_id = x.anonymous_id WHERE +x.user_id IS NULL AND x.anonymous_id IS NOT NULL",
                ]
            case .people:
                selects += [
                    "SELECT coalesce(al.final_id, x.user_id) AS b, \(columns) FROM temp.m_person_users p CROSS JOIN \(table) x LEFT JOIN _model_aliases al ON al.id = x.user_id WHERE x.user_id = p.id",
                    "SELECT coalesce(i.user_id, x.anonymous_id) AS b, \(columns) FROM temp.m_person_anons p CROSS JOIN \(table) x LEFT JOIN identities i ON i.anonymous_id = x.anonymous_id WHERE x.anonymous_id = p.id AND +x.user_id IS NULL",
                ]
            case .from:
                selects += [
                    "SELECT u.person AS b, \(columns) FROM temp.m_cut_users u CROSS JOIN temp.m_cuts c CROSS JOIN \(table) x WHERE c.person = u.person AND x.user_id = u.id AND x.timestamp >= c.cut",
                    "SELECT a.person AS b, \(columns) FROM temp.m_cut_anons a CROSS JOIN temp.m_cuts c CROSS JOIN \(table) x WHERE c.person = a.person AND x.anonymous_id = a.id AND +x.user_id IS NULL AND x.timestamp >= c.cut",
                ]
            }
        }
        // Columns: 0 b, 1 kind, 2 id, 3 anonymous_id, 4 user_id, 5 timestamp, 6 received_at, 7 url, 8 context_page_url,
        // 9 path, 10 title, 11 context_page_title, 12 referrer, 13 context_page_referrer, 14 name, 15 device,
        // 16-20 campaign source, medium, name, term, content.
        let union = selects.map(sql).joined(separator: " UNION ALL ")
        let (byBytes, nullsFirst) = (db.dialect.byBytes, db.dialect.nullsFirst)
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
            rows.append(Activity(activity))
        }
        try flush()
        try writer.finish()
    }

    /// (Re)creates temp table `name` holding `ids`.
    private func fill(_ name: String, _ ids: Set<String>) throws {
        try db.execute(sql(db.dialect.ddl("DROP TABLE IF EXISTS temp.\(name); CREATE TEMP TABLE \(name) (id TEXT PRIMARY KEY) WITHOUT ROWID")))
        let insert = try db.appender(sql("temp.\(name)"), columns: ["id"])
        for id in ids.sorted() { try insert.append([.text(id)]) }
        try insert.finish()
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
