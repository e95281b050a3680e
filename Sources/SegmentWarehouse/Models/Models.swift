import Foundation
import SegmentCore
import SegmentStages

/// The built-in models (`identities`, `page_views`, `sessions`; see docs/models.md), derived
/// from the call tables and kept equal to a full rebuild after every load: each load records
/// the ids it touched (`ModelTouches`, in the file's transaction), and `build` recomputes only
/// the people those ids belong to, before and after the load.
public enum Models {
    public static let tables = ["identities", "page_views", "sessions"]
    /// The models' indexes are named `_model_idx_<table>_<column>`, apart from the loader's `_idx_`
    /// ones, which a bulk load drops and builds again.
    public static let indexPrefix = Names.modelIndexPrefix

    /// The models' tables, their bookkeeping (`_models`, the alias chains they resolved, the
    /// touched ids) and their indexes.
    package static let definitions: [TableDefinition] = [
        TableDefinition("identities", key: .columns(["anonymous_id"], ordered: false), TableDefinition.columns(
            "anonymous_id TEXT,user_id TEXT NOT NULL,first_linked_at TIMESTAMP,last_linked_at TIMESTAMP,user_ids INTEGER NOT NULL")),
        TableDefinition("page_views", TableDefinition.columns("""
            id TEXT NOT NULL,anonymous_id TEXT,user_id TEXT,blended_user_id TEXT NOT NULL,timestamp TIMESTAMP,\
            received_at TIMESTAMP,url TEXT,host TEXT,path TEXT,query TEXT,title TEXT,referrer TEXT,referrer_host TEXT,\
            utm_source TEXT,utm_medium TEXT,utm_campaign TEXT,utm_term TEXT,utm_content TEXT,gclid TEXT,device TEXT,\
            session_id TEXT NOT NULL,view_index INTEGER NOT NULL
            """)),
        TableDefinition("sessions", TableDefinition.columns("""
            session_id TEXT NOT NULL,blended_user_id TEXT NOT NULL,session_index INTEGER NOT NULL,anonymous_id TEXT,\
            user_id TEXT,started_at TIMESTAMP,ended_at TIMESTAMP,duration_seconds REAL,page_views INTEGER NOT NULL,\
            screen_views INTEGER NOT NULL,events INTEGER NOT NULL,first_url TEXT,last_url TEXT,first_screen TEXT,\
            last_screen TEXT,referrer TEXT,referrer_host TEXT,utm_source TEXT,utm_medium TEXT,utm_campaign TEXT,\
            utm_term TEXT,utm_content TEXT,gclid TEXT,device TEXT
            """)),
        TableDefinition("_model_aliases", key: .columns(["id"], ordered: true), TableDefinition.columns("id TEXT,final_id TEXT NOT NULL"),
                        indexes: [("_model_idx_aliases_final_id", ["final_id"])]),
        TableDefinition("_models", key: .generated, TableDefinition.columns("""
            id INTEGER,load_id INTEGER,built_at TEXT NOT NULL,mode TEXT NOT NULL,\
            session_timeout_minutes INTEGER NOT NULL,people INTEGER NOT NULL,identities INTEGER NOT NULL,\
            page_views INTEGER NOT NULL,sessions INTEGER NOT NULL,seconds REAL NOT NULL
            """)),
        BookkeepingSchema.modelPending,
    ]

    /// The models' tables and indexes, created where missing.
    package static func schema(_ dialect: any SQLDialect) -> [String] {
        (definitions + Rollups.definitions).flatMap { dialect.createPlaced($0, ifMissing: true) } + indexes(dialect)
            + Rollups.viewStatements(dialect)
    }

    /// The models' indexes: a full build drops them and builds them again after the rows.
    package static func indexes(_ dialect: any SQLDialect) -> [String] {
        let session = dialect.uniqueKey(["session_id"], of: "sessions").joined(separator: ", ")
        return [
            "CREATE INDEX IF NOT EXISTS _model_idx_identities_user_id ON identities (user_id)",
            "CREATE INDEX IF NOT EXISTS _model_idx_page_views_blended_user_id ON page_views (blended_user_id, timestamp)",
            "CREATE INDEX IF NOT EXISTS _model_idx_page_views_session_id ON page_views (session_id)",
            "CREATE INDEX IF NOT EXISTS _model_idx_page_views_timestamp ON page_views (timestamp)",
            "CREATE UNIQUE INDEX IF NOT EXISTS _model_idx_sessions_session_id ON sessions (\(session))",
            "CREATE INDEX IF NOT EXISTS _model_idx_sessions_blended_user_id ON sessions (blended_user_id, started_at)",
            "CREATE INDEX IF NOT EXISTS _model_idx_sessions_started_at ON sessions (started_at)",
        ]
    }

    /// Whether the models were ever built in this warehouse. Until they are, the first build
    /// is a full one, so a load records no touched ids (`_model_pending`): a first load of a
    /// backfill wrote a row per id for a build that never read them.
    package static func everBuilt(_ db: any SQLSession) throws -> Bool {
        try db.tableExists("_models") && db.value("SELECT EXISTS (SELECT 1 FROM _models)")?.integer == 1
    }

    package static func build(session db: any SQLSession, options: ModelOptions = ModelOptions(), rebuild: Bool = false,
                      loadId: Int64? = nil, now: Date = Date()) throws -> ModelBuild {
        let started = Date()
        return try db.inTransaction {
            for statement in db.dialect.modelsBuildPreamble { try db.execute(statement) }
            // Warehouses whose models predate the rollups, or their layout, get them in full, once.
            let hadRollups = try Rollups.current(db)
            if !hadRollups {
                try db.execute(each: Rollups.views.map { "DROP VIEW IF EXISTS \($0)" }
                               + (Rollups.tables + Rollups.retiredTables).map { "DROP TABLE IF EXISTS \($0)" })
            }
            try db.execute(each: schema(db.dialect))
            // Until December 2026 page_views had a unique index on id (the message id): random
            // keys, so every night rewrote most of its pages, for a lookup nothing made.
            try db.execute("DROP INDEX IF EXISTS _model_idx_page_views_id")
            let lastTimeout = try db.value("SELECT session_timeout_minutes FROM _models ORDER BY id DESC LIMIT 1")?.integer
            let timeout = options.sessionTimeoutMinutes ?? lastTimeout.map { Int($0) } ?? ModelOptions.defaultSessionTimeoutMinutes
            let full = rebuild || lastTimeout == nil || lastTimeout != Int64(timeout)
            var builder = try Builder(db: db, timeoutMilliseconds: Int64(timeout) * 60_000)
            builder.keepsRollups = hadRollups
            // When the loads touched ids on the order of the sessions there are (a backfill, a
            // first big load), recomputing them one person at a time, with every index kept row
            // by row, costs more than building everything again; the result is the same.
            // Rows, not distinct ids (an id touched by several files has a row each): cheap, and
            // an upper bound is what the choice needs.
            let pending = try db.value("SELECT count(*) FROM _model_pending")?.integer ?? 0
            let sessions = try db.value("SELECT count(*) FROM sessions")?.integer ?? 0
            let wide = options.rebuildsInFull(pending: pending, sessions: sessions, roundTrips: db.dialect.roundTripsPerPerson)
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
            if !hadRollups && mode != "full" { try Rollups.rebuild(db) }
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
