/// The Split stage's part of the models: the ids a file's admitted calls touch, recorded in
/// `_model_pending` inside the file's own transaction. The models are rebuilt from these at the
/// end of the run (`Models.build`); a run killed before that leaves them for the next run, so
/// the models are never silently stale.
///
/// A call touches its `user_id` (kind `user`) and its `anonymous_id` (kind `anon`); an alias
/// also touches its `previous_id` as both (a previous id is a user id or an anonymous id).
final class ModelTouches {
    static let schema = """
        CREATE TABLE IF NOT EXISTS _model_pending (kind TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID
        """

    private var users = Set<String>()
    private var anons = Set<String>()
    private let insert: Statement

    init(db: Database) throws {
        try db.execute(Self.schema)
        insert = try db.prepare("INSERT OR IGNORE INTO _model_pending (kind, id) VALUES (?, ?)")
    }

    /// Notes the ids of a chunk's admitted messages.
    func note(_ headers: [RecordCursor.Header], admitted: [Bool], in raw: UnsafeRawBufferPointer) {
        for (i, header) in headers.enumerated() where admitted[i] {
            if let userId = header.userId { users.insert(userId.string) }
            var cursor = RecordCursor(raw)
            cursor.offset = header.fieldsOffset
            for _ in 0..<header.common {
                let (column, _, value) = cursor.field()
                guard column == NameTable.anonymousId || column == NameTable.previousId, let text = value.idText else { continue }
                if column == NameTable.anonymousId {
                    anons.insert(text)
                } else {
                    users.insert(text)
                    anons.insert(text)
                }
            }
        }
    }

    /// Writes what was noted into `_model_pending` (in the file's transaction) and forgets it.
    func record() throws {
        for id in users.sorted() { try insert.run([.text("user"), .text(id)]) }
        for id in anons.sorted() { try insert.run([.text("anon"), .text(id)]) }
        reset()
    }

    func reset() {
        users.removeAll()
        anons.removeAll()
    }
}

extension FieldView {
    /// An id column's value as text (ids are text in the warehouse; a number is kept as its digits).
    var idText: String? {
        switch self {
        case .text(let bytes): return bytes.string
        case .int(let n): return String(n)
        case .bigNumber(let bytes): return bytes.string
        default: return nil
        }
    }
}
