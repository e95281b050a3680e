import Synchronization
import SegmentCore

/// Interned names of one run: every table, column and source-key path gets a small integer id
/// the first time any worker meets it, so the hot path compares and indexes integers instead of
/// hashing strings. Shared by the workers (through their own caches) and the writer.
public final class NameTable: Sendable {
    private let state: Mutex<(ids: [String: Int32], names: [String])>

    /// Names every run has, with fixed ids (`NameTable.id`, `NameTable.receivedAt`, ...).
    package static let fixed: [String] = [
        // common columns
        "id", "anonymous_id", "user_id", "received_at", "sent_at", "original_timestamp", "timestamp", "uuid_ts",
        "event", "event_text", "name", "category", "group_id", "previous_id", "_extra", "context",
        // their source keys
        "messageId", "anonymousId", "userId", "receivedAt", "sentAt", "originalTimestamp", "timestamp_key", "event_key",
        "name_key", "category_key", "groupId", "previousId", "from", "to", "context_key", "properties", "traits",
        // call tables
        "tracks", "identifies", "pages", "screens", "groups", "aliases", "users", "accounts",
    ]

    package static let id: Int32 = 0, anonymousId: Int32 = 1, userId: Int32 = 2, receivedAt: Int32 = 3, sentAt: Int32 = 4
    package static let originalTimestamp: Int32 = 5, timestamp: Int32 = 6, uuidTs: Int32 = 7, event: Int32 = 8, eventText: Int32 = 9
    package static let name: Int32 = 10, category: Int32 = 11, groupId: Int32 = 12, previousId: Int32 = 13, extra: Int32 = 14
    package static let context: Int32 = 15
    package static let keyMessageId: Int32 = 16, keyAnonymousId: Int32 = 17, keyUserId: Int32 = 18, keyReceivedAt: Int32 = 19
    package static let keySentAt: Int32 = 20, keyOriginalTimestamp: Int32 = 21, keyTimestamp: Int32 = 22, keyEvent: Int32 = 23
    package static let keyName: Int32 = 24, keyCategory: Int32 = 25, keyGroupId: Int32 = 26, keyPreviousId: Int32 = 27
    package static let keyFrom: Int32 = 28, keyTo: Int32 = 29, keyContext: Int32 = 30, rootProperties: Int32 = 31, rootTraits: Int32 = 32
    package static let tracks: Int32 = 33

    /// Source-key text for the fixed key ids whose spelling differs from a column's.
    package static let keySpelling: [Int32: String] = [
        keyTimestamp: "timestamp", keyEvent: "event", keyName: "name", keyCategory: "category", keyContext: "context",
    ]

    public init() {
        var ids: [String: Int32] = [:]
        for (i, name) in Self.fixed.enumerated() { ids[name] = Int32(i) }
        state = Mutex((ids, Self.fixed))
    }

    /// The id of `name`, interning it if new.
    public func id(_ name: String) -> Int32 {
        state.withLock { state in
            if let id = state.ids[name] { return id }
            let id = Int32(state.names.count)
            state.ids[name] = id
            state.names.append(name)
            return id
        }
    }

    public func name(_ id: Int32) -> String {
        state.withLock { $0.names[Int(id)] }
    }

    /// A source key's text (the fixed key ids carry a suffix to keep them apart from columns).
    public func keyName(_ id: Int32) -> String {
        Self.keySpelling[id] ?? name(id)
    }

    /// The id of a source key given as text (the reverse of `keyName`).
    public func keyId(_ spelling: String) -> Int32 {
        if let fixed = Self.keySpelling.first(where: { $0.value == spelling })?.key { return fixed }
        return id(spelling)
    }

    public var count: Int { state.withLock { $0.names.count } }

    package static func table(of type: CallType) -> Int32 {
        switch type {
        case .track: return 33
        case .identify: return 34
        case .page: return 35
        case .screen: return 36
        case .group: return 37
        case .alias: return 38
        }
    }

    package static let users: Int32 = 39, accounts: Int32 = 40
}
