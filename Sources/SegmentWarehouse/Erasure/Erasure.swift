import Foundation
import SegmentCore
import SegmentStages

/// The ids of one erasure request, plain, held in memory for the request only: the ones given
/// and those they expand to (docs/warehouse.md, Erasure). A user id stands for every anonymous
/// id its calls carry and every id an alias joined to it (`previous_id`, either way along the
/// chain); an anonymous id stands for itself (it never expands to the users who logged in on
/// that device: their rows are theirs).
package struct ErasureIds: Sendable, Equatable {
    package var givenUsers: Set<String> = []
    package var givenAnons: Set<String> = []
    package var users: Set<String> = []
    package var anons: Set<String> = []

    package init(users: some Sequence<String>, anons: some Sequence<String>) {
        givenUsers = Set(users)
        givenAnons = Set(anons)
        self.users = givenUsers
        self.anons = givenAnons
    }

    /// Anonymous ids found from the given user ids (their calls, their aliases).
    package var expandedAnons: Int { anons.subtracting(givenAnons).count }
    /// User ids found through aliases.
    package var expandedUsers: Int { users.subtracting(givenUsers).count }
    package var isEmpty: Bool { users.isEmpty && anons.isEmpty }

    /// Each id's digest with its kind, as `_suppressions` keeps them.
    package var kindsAndDigests: [(kind: SuppressionList.Kind, digest: String)] {
        users.map { (.userId, SuppressionList.digest(.userId, $0)) } + anons.map { (.anonymousId, SuppressionList.digest(.anonymousId, $0)) }
    }

    /// Every id and what it is: `user_id:<id>`, `anonymous_id:<id>` (an id joined by an alias is
    /// both), for matching the lines of archives and rejects.
    package var suppression: SuppressionList {
        SuppressionList(digests: Set(kindsAndDigests.map(\.digest)))
    }
}

/// What one erasure removed, per table, and where the person's lines may still be.
package struct ErasureRemoval: Sendable {
    /// Rows removed per table (the models: their rows before minus after).
    package var rows: [String: Int64] = [:]
    package var total: Int64 { rows.values.reduce(0, +) }
    /// `_files` paths of the archives that can hold the person's lines: those of the loads
    /// that brought their messages and those their rejects came from.
    package var archives: [String] = []
    /// Profiles derived again from the calls left (accounts the person's group calls touched).
    package var accountsDerived = 0
    package var models: ModelBuild?
}

/// Removes one person from every table the loader writes, in the caller's transaction.
package struct Erasure {
    package let db: any SQLSession
    /// Call and event tables by name, with their call type.
    let callTables: [String: String]
    var dialect: any SQLDialect { db.dialect }

    /// The tables whose rows carry `user_id` and `anonymous_id` and are not an event's.
    static let baseTables = ["identifies", "tracks", "pages", "screens", "groups", "aliases"]
    /// Where a forgotten person's models are brought back from: the start of time.
    static let beginning = "0001-01-01 00:00:00.000"

    package init(db: any SQLSession) throws {
        self.db = db
        var tables: [String: String] = [:]
        if try db.tableExists("_schema_tables") {
            for row in try db.rows("SELECT table_name, call_type FROM _schema_tables WHERE call_type <> 'profile'") {
                if let name = row[0].text, let kind = row[1].text { tables[name] = kind }
            }
        }
        callTables = tables
    }

    var presentBaseTables: [String] { Self.baseTables.filter { callTables[$0] != nil } }

    /// The given ids with everything they stand for, read from the call tables.
    package func expand(users: [String], anons: [String]) throws -> ErasureIds {
        var ids = ErasureIds(users: users, anons: anons)
        let bases = presentBaseTables
        let anonsOf = try bases.map { try db.prepared("SELECT DISTINCT anonymous_id FROM \(quoteIdentifier($0)) WHERE user_id = ? AND anonymous_id IS NOT NULL") }
        let hasAliases = callTables["aliases"] != nil
        let previousOf = hasAliases ? try db.prepared("SELECT DISTINCT previous_id FROM aliases WHERE user_id = ? AND previous_id IS NOT NULL") : nil
        let nextOf = hasAliases ? try db.prepared("SELECT DISTINCT user_id FROM aliases WHERE previous_id = ? AND user_id IS NOT NULL") : nil
        var users = Array(ids.users.sorted())
        var aliasQueue = Array(ids.anons.sorted())
        var seenForAlias = Set(aliasQueue)
        while !users.isEmpty || !aliasQueue.isEmpty {
            if let user = users.popLast() {
                for statement in anonsOf {
                    for row in try statement.rows([.text(user)]) { if let id = row[0].idText { ids.anons.insert(id) } }
                }
                if seenForAlias.insert(user).inserted { aliasQueue.append(user) }
                for row in try previousOf?.rows([.text(user)]) ?? [] {
                    guard let id = row[0].idText else { continue }
                    ids.anons.insert(id)
                    if ids.users.insert(id).inserted { users.append(id) }
                }
                continue
            }
            let id = aliasQueue.removeLast()
            for row in try nextOf?.rows([.text(id)]) ?? [] {
                guard let next = row[0].idText else { continue }
                if ids.users.insert(next).inserted { users.append(next) }
            }
        }
        return ids
    }

    /// A row is the person's when its user id is theirs, or it has none and its anonymous id is.
    func belongs(_ alias: String = "") -> String {
        let p = alias.isEmpty ? "" : alias + "."
        // `user_id IS NULL` kept off the user_id index: most rows are anonymous, and the
        // anonymous_id index finds theirs.
        return "(\(p)user_id IN (SELECT id FROM \(dialect.temporary("e_users"))) OR (\(dialect.unindexed(p + "user_id")) IS NULL AND \(p)anonymous_id IN (SELECT id FROM \(dialect.temporary("e_anons")))))"
    }


    /// Removes the person's rows. `derive` rebuilds the given accounts from the group calls
    /// left; `buildModels` brings the models up to date (nil: the models were never built).
    package func remove(_ ids: ErasureIds, derive: (Set<String>) throws -> Void,
                        buildModels: (() throws -> ModelBuild)?) throws -> ErasureRemoval {
        var removal = ErasureRemoval()
        try db.fillTemporaryIds("e_users", ids.users)
        try db.fillTemporaryIds("e_anons", ids.anons)
        let person = belongs()

        // Their message ids (an event table's rows are its tracks rows), with received_at for
        // the event tables' index.
        try db.execute(dialect.recreateTemporary(TableDefinition("e_messages", key: .columns(["id"], ordered: true), [
            .init("id", .text), .init("received_at", .timestamp),
        ])))
        let messages = dialect.temporary("e_messages")
        for table in presentBaseTables {
            try db.execute(dialect.insertSkippingDuplicates(into: messages, "SELECT id, received_at FROM \(quoteIdentifier(table)) WHERE \(person) AND id IS NOT NULL"))
        }
        var events = Set<String>()
        if callTables["tracks"] != nil {
            for row in try db.rows("SELECT DISTINCT event_text FROM tracks WHERE \(person)") { if let e = row[0].text { events.insert(e) } }
        }
        var groupIds = Set<String>()
        if callTables["groups"] != nil {
            for row in try db.rows("SELECT DISTINCT group_id FROM groups WHERE \(person) AND group_id IS NOT NULL") { if let g = row[0].idText { groupIds.insert(g) } }
        }

        // The seen-id set, and the loads that brought the messages (their archives hold the lines).
        var loadIds = Set<Int64>()
        let loadOf = try db.prepared("SELECT load_id FROM _message_ids WHERE id = ?")
        let unsee = try db.prepared("DELETE FROM _message_ids WHERE id = ?")
        var unseen: Int64 = 0
        var keys: [[UInt8]] = []
        try db.each("SELECT id FROM \(messages) ORDER BY id", []) { row in
            if let id = row.value(at: 0).text { keys.append(SeenIds.key(of: id)) }
        }
        for key in keys {
            for row in try loadOf.rows([.blob(key)]) { if let id = row[0].integer { loadIds.insert(id) } }
            unseen += Int64(try unsee.perform([.blob(key)]))
        }
        if unseen > 0 { removal.rows["_message_ids"] = unseen }

        // Event tables, through their received_at index.
        if !events.isEmpty {
            for row in try db.rows("SELECT table_name, event_names FROM _schema_tables WHERE call_type = 'track' AND table_name <> 'tracks' ORDER BY table_name") {
                guard let table = row[0].text, let names = row[1].text,
                      case .array(let items)? = try? JSONParser.parse(names),
                      items.contains(where: { $0.stringValue.map(events.contains) ?? false }) else { continue }
                let n = try db.run("""
                    DELETE FROM \(quoteIdentifier(table)) WHERE received_at IN (SELECT received_at FROM \(messages))
                      AND id IN (SELECT id FROM \(messages)) AND \(person)
                    """)
                if n > 0 { removal.rows[table] = Int64(n) }
            }
        }
        for table in presentBaseTables {
            let n = try db.run("DELETE FROM \(quoteIdentifier(table)) WHERE \(person)")
            if n > 0 { removal.rows[table] = Int64(n) }
        }
        let discards = try db.run("DELETE FROM _discards WHERE message_id IN (SELECT id FROM \(messages))")
        if discards > 0 { removal.rows["_discards"] = Int64(discards) }

        // Rejected lines that hold one of their ids.
        let theirs = ids.suppression
        var rejects: [(id: Int64, file: String)] = []
        try db.each("SELECT id, file, raw, redacted FROM _rejects ORDER BY id", []) { row in
            let bytes: [UInt8]
            switch row.value(at: 2) {
            case .text(let s): bytes = Array(s.utf8)
            case .blob(let b): bytes = b
            default: return
            }
            let raw = RejectRaw(code: row.value(at: 3).integer ?? 0, bytes: bytes)
            if raw.bytes.withUnsafeBufferPointer({ theirs.mentioned(in: $0) }), let id = row.value(at: 0).integer, let file = row.value(at: 1).text { rejects.append((id, file)) }
        }
        let dropReject = try db.prepared("DELETE FROM _rejects WHERE id = ?")
        for reject in rejects { try dropReject.perform([.integer(reject.id)]) }
        if !rejects.isEmpty { removal.rows["_rejects"] = Int64(rejects.count) }

        // Profiles: their users rows go; accounts their group calls touched are derived again
        // from the calls left, and go when none is left.
        if try db.tableExists("users") {
            let n = try db.run("DELETE FROM users WHERE id IN (SELECT id FROM \(dialect.temporary("e_users")))")
            if n > 0 { removal.rows["users"] = Int64(n) }
        }
        if !groupIds.isEmpty, try db.tableExists("accounts") {
            try db.fillTemporaryIds("e_groups", groupIds)
            let groups = dialect.temporary("e_groups")
            let touched = "SELECT count(*) FROM accounts WHERE id IN (SELECT id FROM \(groups))"
            let before = try db.value(touched)?.integer ?? 0
            try derive(groupIds)
            try db.run("DELETE FROM accounts WHERE id IN (SELECT id FROM \(groups)) AND id NOT IN (SELECT group_id FROM groups WHERE group_id IN (SELECT id FROM \(groups)))")
            let n = before - (try db.value(touched)?.integer ?? 0)
            if n > 0 { removal.rows["accounts"] = n }
            removal.accountsDerived = groupIds.count
        }

        // The models: every id of theirs touched from the start of time, built as a load's are.
        if let buildModels {
            // Their rows in each model (through the models' person indexes), before and after.
            let users = dialect.temporary("e_users"), anons = dialect.temporary("e_anons")
            let theirs = [
                "identities": "anonymous_id IN (SELECT id FROM \(anons)) OR user_id IN (SELECT id FROM \(users))",
                "page_views": "blended_user_id IN (SELECT id FROM \(users)) OR blended_user_id IN (SELECT id FROM \(anons))",
                "sessions": "blended_user_id IN (SELECT id FROM \(users)) OR blended_user_id IN (SELECT id FROM \(anons))",
                "_model_aliases": "id IN (SELECT id FROM \(users)) OR final_id IN (SELECT id FROM \(users))",
            ]
            func count(_ table: String) throws -> Int64 {
                try db.value("SELECT count(*) FROM \(table) WHERE \(theirs[table]!)")?.integer ?? 0
            }
            var before: [String: Int64] = [:]
            for table in theirs.keys { before[table] = try count(table) }
            let touch = try db.prepared("INSERT INTO _model_pending (kind, id, since) VALUES (?, ?, ?)")
            for user in ids.users.sorted() { try touch.perform([.text("user"), .text(user), .text(Self.beginning)]) }
            for anon in ids.anons.sorted() { try touch.perform([.text("anon"), .text(anon), .text(Self.beginning)]) }
            removal.models = try buildModels()
            for (table, rows) in before {
                let n = rows - (try count(table))
                if n != 0 { removal.rows[table] = n }
            }
        }

        // Their archives: those of the loads that brought their messages, those of their rejects.
        var paths = Set(rejects.map(\.file))
        let filesOf = try db.prepared("SELECT DISTINCT path FROM _files WHERE load_id = ? AND status IN ('loaded', 'partial')")
        for load in loadIds.sorted() {
            for row in try filesOf.rows([.integer(load)]) { if let p = row[0].text { paths.insert(p) } }
        }
        removal.archives = paths.sorted()
        try db.execute(["e_users", "e_anons", "e_messages", "e_groups"].map { "DROP TABLE IF EXISTS \(dialect.temporary($0))" }.joined(separator: "; "))
        return removal
    }

}
