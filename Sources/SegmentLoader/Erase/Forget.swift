import Foundation
import SegmentCore
import SegmentS3
import SegmentStages
import SegmentWarehouse
import SQLiteEngine

/// `forget`: one erasure request (docs/operations.md, Erasure requests). In one transaction the
/// person's rows go from every table, the accounts and models they touched are derived again,
/// their ids join the suppression list and the request is recorded, `pending`; then their
/// archives are rewritten (each replaced whole, `_files` told after), and the file is scrubbed
/// (SQLite: VACUUM, the WAL emptied; PostgreSQL: VACUUM); then `complete`. A request killed
/// after its commit is finished by the next `forget` or load.
public enum Forget {
    public struct Request: Sendable {
        public var users: [String] = []
        public var anons: [String] = []
        /// Rewrite the archives that hold their lines.
        public var archives = false
        public var dryRun = false
        /// The ids as given, when the warehouse holds them hashed (a pipeline's privacy
        /// rules): looked for in the archives' lines that are no message. Never stored.
        public var givenAsTyped: [String] = []
        public init() {}

        /// `--from FILE`: one id per line, `user_id:<id>` or `anonymous_id:<id>`; blank lines and
        /// `#` comments skipped.
        public mutating func add(list text: String, file: String) throws {
            var number = 0
            for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
                number += 1
                let line = String(raw)
                if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("#") { continue }
                if line.hasPrefix("user_id:"), line.count > 8 { users.append(String(line.dropFirst(8))) }
                else if line.hasPrefix("anonymous_id:"), line.count > 13 { anons.append(String(line.dropFirst(13))) }
                else { throw WarehouseError(message: "\(file):\(number): not an id: a line is user_id:<id> or anonymous_id:<id> (\(line.prefix(60)))") }
            }
        }
    }

    public struct Outcome: Sendable {
        public var erasureId: Int64?
        public var dryRun = false
        public var givenUsers = 0, givenAnons = 0, expandedAnons = 0, expandedUsers = 0
        public var rows: [String: Int64] = [:]
        public var suppressed = 0
        public var archivesRewritten: [(path: String, lines: Int)] = []
        public var archivesPending: [String] = []
        public var archiveProblems: [String] = []
        public var scrubNote: String?
        public var scrubbed = false
        public var resumed: [Int64] = []
        public var isSQLite = true
        /// `--resume` without ids: only what earlier runs left pending.
        public var resumeOnly = false

        public var totalRows: Int64 { rows.values.reduce(0, +) }

        public func render(database: String) -> String {
            var out: [String] = []
            for id in resumed { out.append("forget: finished erasure \(id), left pending by an earlier run") }
            if resumeOnly {
                if resumed.isEmpty { out.append("forget: no erasure of \(database) is pending") }
                return out.joined(separator: "\n")
            }
            let ids = "\(givenUsers) user id\(givenUsers == 1 ? "" : "s") and \(givenAnons) anonymous id\(givenAnons == 1 ? "" : "s") given"
                + ", expanded to \(expandedAnons) more anonymous id\(expandedAnons == 1 ? "" : "s") and \(expandedUsers) more user id\(expandedUsers == 1 ? "" : "s") (calls, aliases)"
            let head = dryRun ? "forget --dry-run: would remove" : "forget: removed"
            if totalRows == 0 {
                out.append("\(head) nothing from \(database): the ids match nobody in the warehouse (\(ids))"
                           + (dryRun ? "" : "; erasure \(erasureId ?? 0) recorded, and their ids are suppressed from now on"))
            } else {
                out.append("\(head) \(totalRows) rows from \(database)" + (dryRun ? "" : " (erasure \(erasureId ?? 0))") + ": \(ids)")
                for (table, n) in rows.sorted(by: { $0.key < $1.key }) { out.append("  \(table): \(n)") }
            }
            if !dryRun {
                out.append("  suppressed from now on: \(suppressed) id digest\(suppressed == 1 ? "" : "s") in _suppressions (later loads, retries and the collector leave their messages out)")
            }
            for archive in archivesRewritten {
                out.append("  archive \(dryRun ? "would be rewritten" : "rewritten"): \(archive.path) (\(archive.lines) line\(archive.lines == 1 ? "" : "s") \(dryRun ? "to remove" : "removed"))")
            }
            for problem in archiveProblems { out.append("  archive not rewritten: \(problem)") }
            if !dryRun {
                if let scrubNote { out.append("  not finished: \(scrubNote)") }
                else if scrubbed && totalRows > 0 {
                    out.append(isSQLite ? "  the file was rewritten (VACUUM) and its write-ahead log emptied: no byte of the removed rows is left in it"
                               : "  the tables were vacuumed; what PostgreSQL keeps in WAL archives and backups is in docs/operations.md")
                }
            }
            return out.joined(separator: "\n")
        }
    }

    struct DryRun: Error { var outcome: Outcome }

    public static func run(_ request: Request, options: LoadOptions, faults: TestFaults = .none) throws -> Outcome {
        let opened = try WarehouseLocation(options.database, schema: options.schema).openForErasure(options)
        defer { withExtendedLifetime(opened.lock) {} }
        let target = opened.target
        let db = target.erasureSession
        var outcome = Outcome()
        outcome.dryRun = request.dryRun
        // SQLite's models build sets its temporary storage, which cannot change inside a
        // transaction that has temporary tables: the session's own build serves there.
        outcome.isSQLite = target is Warehouse
        var rewriter = ArchiveErasure(objects: options.objects)
        rewriter.privacy = options.privacy
        try target.prepareErasure()
        if !request.dryRun {
            try Suppressions.create(db)
            (outcome.resumed, outcome.scrubNote) = try resume(target, rewriter: rewriter, options: options, faults: faults)
        }
        if request.users.isEmpty && request.anons.isEmpty {
            outcome.resumeOnly = true
            return outcome
        }
        let now = Timestamp.format(Instant(date: options.now()))
        let erasure = try Erasure(db: db)
        let ids = try erasure.expand(users: request.users, anons: request.anons)
        outcome.givenUsers = ids.givenUsers.count
        outcome.givenAnons = ids.givenAnons.count
        outcome.expandedAnons = ids.expandedAnons
        outcome.expandedUsers = ids.expandedUsers
        let loadId = request.dryRun ? 0 : try target.beginLoad(pipeline: "forget", startedAt: now)
        let destination = try target.destination(names: NameTable(), loadId: loadId, uuidTs: now,
                                                 columnLimit: options.columnLimit, eventTableLimit: options.eventTableLimit)
        let modelsBuilt = try Models.everBuilt(db)
        var models = options.models
        models.enabled = true
        var entries: [ArchiveErasure.Entry] = []
        // The models build's settings (SQLite: temporary storage) before the transaction, which
        // creates temporary tables before the build runs.
        if modelsBuilt { for statement in db.dialect.modelsBuildPreamble { try db.execute(statement) } }
        do {
            try db.inTransaction {
                let removal = try erasure.remove(ids, derive: { groups in
                    let derivation = ProfileDerivation()
                    derivation.touch(.accounts, ids: groups)
                    try derivation.derive(into: destination)
                }, buildModels: modelsBuilt ? {
                    outcome.isSQLite ? try Models.build(session: db, options: models, loadId: loadId, now: options.now())
                        : try destination.buildModels(models, loadId: loadId, now: options.now())
                } : nil)
                outcome.rows = removal.rows
                if request.archives {
                    // Lines that are no message: their ids as stored, and as typed (hashed ids).
                    let theirs = ids.suppression
                    var mentions = theirs
                    for id in request.givenAsTyped {
                        for kind in SuppressionList.Kind.allCases { mentions.insert(SuppressionList.digest(kind, id)) }
                    }
                    for path in removal.archives {
                        do {
                            let entry = try rewriter.find(in: path, suppression: theirs, mentions: mentions)
                            if !entry.drops.isEmpty { entries.append(entry) }
                        } catch {
                            outcome.archiveProblems.append("\(path): \(error)")
                        }
                    }
                    outcome.archivesRewritten = entries.map { ($0.path, $0.linesRemoved) }
                }
                if request.dryRun { throw DryRun(outcome: outcome) }
                faults.killPoint?.fire(.forget("removed"))
                let suppressed = ids.kindsAndDigests
                outcome.erasureId = try db.value("""
                    INSERT INTO _erasures (requested_at, status, digests, ids_given, ids_expanded, rows_removed, rows_total, archives_pending)
                    VALUES (?, 'pending', ?, ?, ?, ?, ?, ?) RETURNING id
                    """, [.text(now), .text(JSONWriter.string(.array(suppressed.map(\.digest).sorted().map { .string($0) }))),
                          .integer(Int64(ids.givenUsers.count + ids.givenAnons.count)),
                          .integer(Int64(ids.expandedAnons + ids.expandedUsers)),
                          .text(JSONWriter.string(.object(removal.rows.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) }))),
                          .integer(removal.total), .text(ArchiveErasure.Entry.list(entries))])?.integer
                let add = try db.prepared("""
                    INSERT INTO _suppressions (digest, kind, erasure_id, added_at)
                    SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM _suppressions WHERE digest = ?)
                    """)
                for (kind, digest) in suppressed.sorted(by: { $0.digest < $1.digest }) {
                    try add.perform([.text(digest), .text(kind.rawValue), .integer(outcome.erasureId ?? 0), .text(now), .text(digest)])
                }
                outcome.suppressed = suppressed.count
            }
        } catch let dry as DryRun {
            return dry.outcome
        }
        faults.killPoint?.fire(.forget("committed"))
        outcome.archivesRewritten = []
        // The run's `_loads` row ends with the request: archives and scrub included.
        var summary = RunSummary()
        defer {
            summary.finishedAt = Timestamp.format(Instant(date: options.now()))
            _ = target.recordEnd(id: loadId, summary: summary)
        }
        summary.outcome = .failed("the erasure's archives or scrub did not finish; run forget --resume")
        if let id = outcome.erasureId {
            let finished = try finish(id, target: target, rewriter: rewriter, options: options, faults: faults)
            outcome.archivesRewritten = finished.rewritten
            outcome.archiveProblems += finished.problems
            outcome.scrubNote = finished.scrubNote
            outcome.scrubbed = finished.scrubNote == nil
        }
        summary.outcome = outcome.scrubNote.map { .failed($0) } ?? .loaded
        return outcome
    }

    /// Finishes the requests an earlier run left pending; returns their ids.
    /// Also why the last could not finish, if it could not.
    static func resume(_ target: any ErasureScrub, rewriter: ArchiveErasure, options: LoadOptions,
                       faults: TestFaults) throws -> (ids: [Int64], note: String?) {
        let pending = try Suppressions.pending(target.erasureSession)
        var note: String?
        for id in pending {
            let finished = try finish(id, target: target, rewriter: rewriter, options: options, faults: faults)
            note = finished.scrubNote
            if note != nil { break }
        }
        return (pending, note)
    }

    /// A SQLite load finishes the erasures an earlier `forget` left pending before it reads
    /// anything (it holds the warehouse as `forget` does). Returns what it said.
    static func resumeBeforeLoad(_ target: any LoadTarget, options: LoadOptions) -> String? {
        guard let warehouse = target as? Warehouse, let pending = try? Suppressions.pending(warehouse.db), !pending.isEmpty else { return nil }
        do {
            let (ids, note) = try resume(warehouse, rewriter: ArchiveErasure(objects: options.objects), options: options, faults: .none)
            return "finished erasure\(ids.count == 1 ? "" : "s") \(ids.map(String.init).joined(separator: ", ")) left pending by a forget that was stopped" + (note.map { "; not yet complete: \($0)" } ?? "")
        } catch {
            return "could not finish the pending erasure (\(error)); run segment-loader forget --resume"
        }
    }

    /// A committed request's archives, one at a time, then the scrub.
    static func finish(_ id: Int64, target: any ErasureScrub, rewriter: ArchiveErasure, options: LoadOptions,
                       faults: TestFaults) throws -> (rewritten: [(path: String, lines: Int)], problems: [String], scrubNote: String?) {
        let db = target.erasureSession
        guard let row = try db.rows("SELECT archives_pending, rows_removed, rows_total FROM _erasures WHERE id = ?", [.integer(id)]).first else { return ([], [], nil) }
        var entries = ArchiveErasure.Entry.parse(row[0].text ?? "[]")
        var rewritten: [(String, Int)] = []
        var problems: [String] = []
        var number = 0
        while !entries.isEmpty {
            var entry = entries[0]
            number += 1
            do {
                let current = try rewriter.current(entry.path)
                var newETag: String?
                var newSize: Int64?
                if current.sha256 == entry.newSha256 {
                    newSize = current.size
                    newETag = current.etag
                } else if current.sha256 == entry.sha256, let made = try rewriter.rewrite(entry, folder: NSTemporaryDirectory()) {
                    entry.newSha256 = made.sha256
                    entries[0] = entry
                    try db.run("UPDATE _erasures SET archives_pending = ? WHERE id = ?", [.text(ArchiveErasure.Entry.list(entries)), .integer(id)])
                    newETag = try rewriter.replace(entry, with: made)
                    newSize = made.size
                    faults.killPoint?.fire(.forget("archive:\(number)"))
                } else {
                    problems.append("\(entry.path): it changed since the erasure read it (SHA-256 \(current.sha256)); its lines are suppressed at every load, rewrite it by hand")
                }
                entries.removeFirst()
                try db.inTransaction {
                    if let newSize, let sha = entry.newSha256 {
                        try db.run("UPDATE _files SET size = ?, sha256 = ?, etag = ? WHERE path = ? AND sha256 = ?",
                                   [.integer(newSize), .text(sha), newETag.map { .text($0) } ?? .null, .text(entry.path), .text(entry.sha256)])
                        try db.run("UPDATE _erasures SET archives_rewritten = archives_rewritten + 1, lines_removed = lines_removed + ? WHERE id = ?",
                                   [.integer(Int64(entry.linesRemoved)), .integer(id)])
                        rewritten.append((entry.path, entry.linesRemoved))
                    }
                    try db.run("UPDATE _erasures SET archives_pending = ? WHERE id = ?", [.text(ArchiveErasure.Entry.list(entries)), .integer(id)])
                }
            } catch {
                problems.append("\(entry.path): \(error)")
                return (rewritten, problems, "archive \(entry.path) could not be rewritten (\(error)); run forget --resume")
            }
        }
        faults.killPoint?.fire(.forget("scrub"))
        var tables: [String] = []
        if let text = row[1].text, case .object(let members)? = try? JSONParser.parse(text) { tables = members.map(\.key) }
        // Nothing removed (ids that match nobody): nothing of theirs is in the file to scrub.
        if (row[2].integer ?? 0) > 0, let note = try target.scrub(tables: tables) { return (rewritten, problems, note) }
        try db.run("UPDATE _erasures SET status = 'complete', scrubbed = 1, finished_at = ? WHERE id = ?",
                   [.text(Timestamp.format(Instant(date: options.now()))), .integer(id)])
        return (rewritten, problems, nil)
    }
}

/// `suppressions export`: the list, read from an existing warehouse without a lock.
public enum SuppressionExport {
    public static func list(database: String, schema: String?) throws -> SuppressionList {
        try Suppressions.list(try WarehouseLocation(database, schema: schema).reading())
    }
}
