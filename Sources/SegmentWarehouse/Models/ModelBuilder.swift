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
    /// Whether the rollups are kept person by person (false: they are rebuilt after the update).
    var keepsRollups = true

    init(db: any SQLSession, timeoutMilliseconds: Int64) throws {
        self.db = db
        self.timeoutMilliseconds = timeoutMilliseconds
        callTables = Set(try db.rows("SELECT table_name FROM _schema_tables WHERE call_type <> 'profile'").compactMap { $0[0].text })
        graph = try AliasGraph(db: db, hasAliases: callTables.contains("aliases"))
    }

    /// The words the session's database spells its own way.
    var dialect: any SQLDialect { db.dialect }
    /// A temporary table of this build, by name.
    func temp(_ name: String) -> String { dialect.temporary(name) }
    /// `column` kept from the planner's choice of index (see `SQLDialect.unindexed`).
    func unindexed(_ column: String) -> String { dialect.unindexed(column) }

    /// The build's temporary tables of ids each mapped to their person (sets of ids: `fill`).
    static func personMap(_ name: String) -> TableDefinition {
        TableDefinition(name, key: .columns(["id"], ordered: true), [.init("id", .text), .init("person", .text, "NOT NULL")])
    }
    /// The people modelled from a cut: their sessions from `cut` on, their calls from
    /// `read_from` on (the start of the rollups' first counted day, when earlier).
    static let cuts = TableDefinition("m_cuts", key: .columns(["person"], ordered: true),
                                      [.init("person", .text), .init("cut", .timestamp, "NOT NULL"), .init("read_from", .timestamp, "NOT NULL")])
    /// A cut no call reaches.
    static let afterAnyTime = "9999-12-31 23:59:59.999"
    static let temporaryTables = ["m_users", "m_changed_users", "m_anons", "m_people", "m_person_users", "m_person_anons",
                                  "m_cuts", "m_cut_users", "m_cut_anons"]

    /// Everything again, from the call tables.
    mutating func rebuildAll() throws {
        try db.execute("DELETE FROM identities; DELETE FROM page_views; DELETE FROM sessions; DELETE FROM _model_aliases")
        // Building an index once over the rows is cheaper than keeping it row by row.
        for row in try db.rows(dialect.indexesQuery) {
            guard let name = row[0].text, let table = row[1].text, name.hasPrefix(Models.indexPrefix), Models.tables.contains(table) else { continue }
            try db.execute("DROP INDEX \(quoteIdentifier(name))")
        }
        try writeAliases(graph.aliased)
        try rebuildIdentities(restrictedTo: nil)
        try rebuildActivity(.all)
        try db.execute(each: Models.indexes(dialect))
        try Rollups.rebuild(db)
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
        for row in try db.rows("SELECT id, final_id FROM _model_aliases WHERE id IN (SELECT id FROM \(temp("m_users")))") {
            if let id = row[0].text, let final = row[1].text { oldFinal[id] = final }
        }
        let changedUsers = components.filter { (oldFinal[$0] ?? $0) != graph.final($0) }
        try db.execute("DELETE FROM _model_aliases WHERE id IN (SELECT id FROM \(temp("m_users")))")
        try writeAliases(components.sorted().compactMap { user in graph.final(user) == user ? nil : (user, graph.final(user)) })

        // Anonymous ids whose identities row may change: new links, links to a user whose chain
        // changed, and aliased ids (listed as linked to the end of their chain).
        var anons = Set(touchedAnons.keys)
        for user in changedUsers where graph.next[user] != nil { anons.insert(user) }
        try fill("m_changed_users", Set(changedUsers))
        for table in linkTables {
            let column = table == "aliases" ? "previous_id" : "anonymous_id"
            for row in try db.rows("SELECT DISTINCT \(column) FROM \(table) WHERE user_id IN (SELECT id FROM \(temp("m_changed_users"))) AND \(column) IS NOT NULL") {
                if let id = row[0].idText { anons.insert(id) }
            }
        }
        try fill("m_anons", anons)
        let linkedSQL = "SELECT m.id, i.user_id FROM \(temp("m_anons")) m JOIN identities i ON i.anonymous_id = m.id"
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
            (user: try db.prepared("SELECT min(timestamp) FROM \(table) WHERE user_id = ?"),
             anon: try db.prepared("SELECT min(timestamp) FROM \(table) WHERE anonymous_id = ? AND \(unindexed("user_id")) IS NULL"))
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

        // The rollups count every kind of call, identify, group and alias too (sessions only
        // activity): a person an id joined or left is counted again from the start, everyone
        // else with new calls from the day of the earliest. They are counted in the reads below.
        var keeper: RollupKeeper?
        if keepsRollups {
            var rollup = since
            for person in full { rollup[person] = Rollups.beginning }
            for user in changedUsers { rollup[graph.final(user)] = Rollups.beginning }
            for anon in anons where before[anon] != after[anon] { rollup[after[anon] ?? anon] = Rollups.beginning }
            // A person whose new or changed calls are no activity (an identify linking a device,
            // say) has sessions that stay as they are: a cut after any time reads their calls
            // for the rollups only.
            let read = full.union(cuts.map(\.person))
            for person in rollup.keys.sorted() where !read.contains(person) { cuts.append((person, Self.afterAnyTime, 1)) }
            // Their first session is written again (so may their first-touch source be) unless
            // the cut keeps sessions before it.
            let keptFirst = Set(cuts.filter { $0.kept > 0 }.map(\.person))
            keeper = try RollupKeeper(db: db, since: rollup, rewritten: Set(rollup.keys.filter { !keptFirst.contains($0) }))
        }

        if !full.isEmpty {
            try fill("m_people", full)
            try fill("m_person_users", full)
            let people = "SELECT id FROM \(temp("m_people"))"
            try db.execute(dialect.insertSkippingDuplicates(into: temp("m_person_users"), "SELECT id FROM _model_aliases WHERE final_id IN (\(people))"))
            try fill("m_person_anons", [])
            try db.execute([
                dialect.insertSkippingDuplicates(into: temp("m_person_anons"), "SELECT anonymous_id FROM identities WHERE user_id IN (\(people))"),
                dialect.insertSkippingDuplicates(into: temp("m_person_anons"), "SELECT id FROM \(temp("m_people")) WHERE id NOT IN (SELECT anonymous_id FROM identities)"),
                "DELETE FROM sessions WHERE blended_user_id IN (\(people))",
                "DELETE FROM page_views WHERE blended_user_id IN (\(people))",
            ].joined(separator: ";\n"))
            try rebuildActivity(.people(full), rollups: keeper)
        }
        if !cuts.isEmpty {
            try db.execute([dialect.recreateTemporary(Self.cuts), dialect.recreateTemporary(Self.personMap("m_cut_users")),
                            dialect.recreateTemporary(Self.personMap("m_cut_anons"))].joined(separator: ";\n"))
            let insertCut = try db.prepared("INSERT INTO \(temp("m_cuts")) (person, cut, read_from) VALUES (?, ?, ?)")
            let dropSessions = try db.prepared("DELETE FROM sessions WHERE blended_user_id = ? AND started_at >= ?")
            let dropViews = try db.prepared("DELETE FROM page_views WHERE blended_user_id = ? AND timestamp >= ?")
            for c in cuts {
                var readFrom = c.cut
                if let counted = keeper?.readFrom(c.person),
                   counted == Rollups.beginning || Timestamp.parse(counted).map({ day in Timestamp.parse(c.cut).map { day < $0 } ?? true }) ?? false {
                    readFrom = counted
                }
                try insertCut.perform([.text(c.person), .text(c.cut), .text(readFrom)])
                try dropSessions.perform([.text(c.person), .text(c.cut)])
                try dropViews.perform([.text(c.person), .text(c.cut)])
            }
            let (cutUsers, cutAnons, cutTable) = (temp("m_cut_users"), temp("m_cut_anons"), temp("m_cuts"))
            try db.execute([
                dialect.insertSkippingDuplicates(into: cutUsers, "SELECT person, person FROM \(cutTable)"),
                dialect.insertSkippingDuplicates(into: cutUsers, "SELECT a.id, a.final_id FROM _model_aliases a JOIN \(cutTable) c ON c.person = a.final_id"),
                dialect.insertSkippingDuplicates(into: cutAnons, "SELECT i.anonymous_id, i.user_id FROM identities i JOIN \(cutTable) c ON c.person = i.user_id"),
                dialect.insertSkippingDuplicates(into: cutAnons, "SELECT person, person FROM \(cutTable) WHERE person NOT IN (SELECT anonymous_id FROM identities)"),
            ].joined(separator: ";\n"))
            try rebuildActivity(.from(Dictionary(uniqueKeysWithValues: cuts.map { ($0.person, $0.kept) })), rollups: keeper)
        }
        try db.execute(Self.temporaryTables.map { "DROP TABLE IF EXISTS \(temp($0))" }.joined(separator: "; "))
        try keeper?.finish()
    }

    /// The tables whose calls are activity (sessions are made of them).
    var activityTables: [String] { ["pages", "screens", "tracks"].filter(callTables.contains) }

}
