import SegmentCore

/// The Split stage's part of the models: the ids a file's admitted calls touch, recorded in
/// `_model_pending` inside the file's own transaction. The models are rebuilt from these at the
/// end of the run (`Models.build`); a run killed before that leaves them for the next run, so
/// the models are never silently stale.
///
/// A call touches its `user_id` (kind `user`) and its `anonymous_id` (kind `anon`); an alias
/// also touches its `previous_id` as both (a previous id is a user id or an anonymous id). Each
/// id keeps the `timestamp` of its earliest call since the last build: sessions that ended
/// before it cannot change.
package final class ModelTouches {
    /// Touched ids, each with the `timestamp` of its earliest call in the file.
    package private(set) var users: [String: String] = [:]
    package private(set) var anons: [String: String] = [:]

    package init() {}

    /// Notes the ids of a chunk's admitted messages.
    package func note(_ headers: [RecordCursor.Header], admitted: [Bool], in raw: UnsafeRawBufferPointer) {
        func touch(_ ids: inout [String: String], _ id: String, _ time: String) {
            if let earlier = ids[id], earlier <= time { return }
            ids[id] = time
        }
        for (i, header) in headers.enumerated() where admitted[i] {
            var cursor = RecordCursor(raw)
            cursor.offset = header.fieldsOffset
            var anonymousId: String?, previousId: String?, time = ""
            for _ in 0..<header.common {
                let (column, _, value) = cursor.field()
                switch column {
                case NameTable.anonymousId: anonymousId = value.idText
                case NameTable.previousId: previousId = value.idText
                case NameTable.timestamp: if case .timestamp(let normalized, _) = value { time = normalized.string }
                default: break
                }
            }
            if let userId = header.userId { touch(&users, userId.string, time) }
            if let anonymousId { touch(&anons, anonymousId, time) }
            if let previousId {
                touch(&users, previousId, time)
                touch(&anons, previousId, time)
            }
        }
    }

    package func reset() {
        users.removeAll()
        anons.removeAll()
    }
}

extension FieldView {
    /// An id column's value as text (ids are text in the warehouse; a number is kept as its digits).
    package var idText: String? {
        switch self {
        case .text(let bytes): return bytes.string
        case .int(let n): return String(n)
        case .bigNumber(let bytes): return bytes.string
        default: return nil
        }
    }
}
