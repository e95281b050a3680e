/// The Split stage's profiles: `users` (from `identifies`, by `user_id`) and `accounts` (from
/// `groups`, by `group_id`). The ids a file's admitted calls touch are noted as its chunks pass;
/// before the file commits, each touched profile is rebuilt from all of its calls in the
/// warehouse: each trait takes the value of the newest call (by timestamp, then received_at,
/// then id) that set it to something non-null, so loading an older archive later never
/// overwrites newer traits, whatever the order of the files.
final class ProfileDerivation {
    private struct Kind {
        let table: Int32
        let source: String
        let key: String
    }
    private static let users = Kind(table: NameTable.users, source: "identifies", key: "user_id")
    private static let accounts = Kind(table: NameTable.accounts, source: "groups", key: "group_id")

    private var touchedUsers = Set<String>()
    private var touchedAccounts = Set<String>()

    /// Notes the profiles a chunk's admitted messages touch.
    func note(_ headers: [RecordCursor.Header], admitted: [Bool]) {
        for (i, header) in headers.enumerated() where admitted[i] {
            if header.type == .identify, let userId = header.userId { touchedUsers.insert(userId.string) }
            if header.type == .group, let groupId = header.groupId { touchedAccounts.insert(groupId.string) }
        }
    }

    /// Forgets what was noted (a new file, or a file rolled back).
    func reset() {
        touchedUsers.removeAll()
        touchedAccounts.removeAll()
    }

    /// Rebuilds every touched profile and hands its row to the writer, in the file's transaction.
    func derive(into writer: Writer) throws {
        try derive(Self.users, ids: touchedUsers, into: writer)
        try derive(Self.accounts, ids: touchedAccounts, into: writer)
        reset()
    }

    private func derive(_ kind: Kind, ids: Set<String>, into writer: Writer) throws {
        guard !ids.isEmpty, let traits = writer.profileTraits(kind.table) else { return }
        let select = try writer.db.prepare("""
            SELECT \((["received_at"] + traits).map(quoteIdentifier).joined(separator: ", ")) FROM \(quoteIdentifier(kind.source))
            WHERE \(quoteIdentifier(kind.key)) = ? ORDER BY timestamp, received_at, id
            """)
        for id in ids.sorted() {
            var values = [SQLValue](repeating: .null, count: traits.count)
            var receivedAt = SQLValue.null
            select.bindText(id, at: 1)
            while try select.step() {
                receivedAt = select.value(at: 0)
                for i in 0..<traits.count {
                    let value = select.value(at: Int32(i + 1))
                    if value != .null { values[i] = value }
                }
            }
            select.reset()
            try writer.writeProfile(kind.table, id: id, receivedAt: receivedAt, traits: values)
        }
    }
}
