/// The six Segment calls the warehouse loads.
public enum CallType: String, Sendable, CaseIterable {
    case track, identify, page, screen, group, alias

    /// The table that gets one row per call.
    public var table: String {
        switch self {
        case .track: return "tracks"
        case .identify: return "identifies"
        case .page: return "pages"
        case .screen: return "screens"
        case .group: return "groups"
        case .alias: return "aliases"
        }
    }

    /// Columns this call's tables have besides context, properties and traits, with their types.
    public var commonColumns: [(name: String, type: ColumnType)] {
        var columns: [(String, ColumnType)] = [
            ("id", .text), ("anonymous_id", .text), ("user_id", .text), ("received_at", .timestamp),
            ("sent_at", .timestamp), ("original_timestamp", .timestamp), ("timestamp", .timestamp),
            ("uuid_ts", .timestamp),
        ]
        switch self {
        case .track: columns += [("event", .text), ("event_text", .text)]
        case .page, .screen: columns += [("name", .text), ("category", .text)]
        case .group: columns += [("group_id", .text)]
        case .alias: columns += [("previous_id", .text)]
        case .identify: break
        }
        return columns
    }
}

/// A standard column of the Segment Spec that every table of a call type has from the start
/// (docs/warehouse.md, Tables), so that standard queries never fail on "no such column".
public struct SpecColumn: Sendable, Equatable {
    /// The column's name.
    public var name: String
    /// The source key the Spec puts there (`context.page.url`, `properties.url`).
    public var key: String
    /// A `context_*` column (else a property).
    public var isContext: Bool { key.hasPrefix("context.") }
}

extension CallType {
    /// The Spec's standard context fields, in every call and event table.
    package static let specContext: [SpecColumn] = [
        ("ip", "ip"), ("user_agent", "userAgent"), ("locale", "locale"), ("library_name", "library.name"),
        ("library_version", "library.version"), ("page_path", "page.path"), ("page_referrer", "page.referrer"),
        ("page_search", "page.search"), ("page_title", "page.title"), ("page_url", "page.url"),
        ("campaign_source", "campaign.source"), ("campaign_medium", "campaign.medium"), ("campaign_name", "campaign.name"),
        ("campaign_term", "campaign.term"), ("campaign_content", "campaign.content"),
    ].map { SpecColumn(name: "context_" + $0.0, key: "context." + $0.1) }

    /// The Spec's standard page and screen properties (`name` and `category` are common columns).
    package static let specPageProperties: [SpecColumn] = ["path", "referrer", "search", "title", "url"].map {
        SpecColumn(name: $0, key: "properties." + $0)
    }

    /// The Spec's columns that this call's tables (and, for track, every event table) are
    /// created with besides the common ones: page and screen properties, then context.
    public var specColumns: [SpecColumn] {
        switch self {
        case .page, .screen: return Self.specPageProperties + Self.specContext
        default: return Self.specContext
        }
    }
}

/// A message normalised to the Segment Spec, ready to be split into rows. Column, key and
/// table ids refer to the run's `NameTable`.
public struct Message: Sendable {
    public var type: CallType
    public var id: String
    /// The corrected `received_at`, which ranks copies of one messageId within a run.
    public var receivedAt: Instant
    public var userId: String?
    public var groupId: String?
    /// For track calls: the raw event name.
    public var event: String?
    /// The table that gets the full row: the event's table for a track, else the call's table.
    public var table: Int32
    /// Common columns (id, ids, timestamps, event, name, ...), except `uuid_ts`.
    public var common: [Field]
    /// `context_*` columns.
    public var context: [Field]
    /// Property or trait columns, including `_extra` when the message has keys without a
    /// column name or top-level keys the Spec does not define.
    public var payload: [Field]
    /// Values kept out of their column before any row exists: the earlier of several keys of
    /// this message that land on one column.
    public var discards: [PendingDiscard]
    /// Whether the message opted out of the Warehouses destination through `integrations`.
    public var optedOutOfWarehouses: Bool

    package init(type: CallType, id: String, receivedAt: Instant, userId: String?, groupId: String?, event: String?,
                 table: Int32, common: [Field], context: [Field], payload: [Field], discards: [PendingDiscard],
                 optedOutOfWarehouses: Bool) {
        self.type = type
        self.id = id
        self.receivedAt = receivedAt
        self.userId = userId
        self.groupId = groupId
        self.event = event
        self.table = table
        self.common = common
        self.context = context
        self.payload = payload
        self.discards = discards
        self.optedOutOfWarehouses = optedOutOfWarehouses
    }
}
