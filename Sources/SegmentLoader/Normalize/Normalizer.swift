import Crypto

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

/// A message normalised to the Segment Spec, ready to be split into rows.
public struct Message: Sendable {
    public var type: CallType
    public var id: String
    /// The corrected `received_at`, which ranks copies of one messageId within a run.
    public var receivedAt: Instant
    public var userId: String?
    public var groupId: String?
    /// For track calls: the raw event name and its table.
    public var event: String?
    public var eventTable: String?
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
}

/// Why a message cannot be loaded, in words for a person reading `_rejects`.
public struct RejectReason: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Turns one message object into a `Message` (contract, section 2): type and ids checked,
/// timestamps parsed and corrected for client clock skew, and every property, trait and
/// context key flattened into a named, typed field.
///
/// Not thread-safe: each worker owns one, with its cache of key names.
public struct Normalizer {
    /// The time this load started; stands in for a message with no timestamps at all.
    public let loadTime: Instant
    private var nameCache: [NameKey: (prefix: String, column: String)] = [:]

    public init(loadTime: Instant) {
        self.loadTime = loadTime
    }

    static let notStored: Set<String> = [
        "type", "action", "channel", "version", "projectId", "writeKey", "_metadata", "integrations",
        "messageId", "userId", "anonymousId", "timestamp", "originalTimestamp", "sentAt", "receivedAt",
        "context",
    ]

    public mutating func normalize(_ json: JSONValue) throws(RejectReason) -> Message {
        guard case .object = json else {
            throw RejectReason("a message must be a JSON object, not \(json.typeName == "array" ? "an" : "a") \(json.typeName)")
        }
        // Type, with the pre-2014 `action` as fallback.
        let rawType: String
        switch json["type"] ?? json["action"] {
        case .string(let s)?: rawType = s
        case nil, .null?: throw RejectReason("missing type: the message has neither \"type\" nor \"action\"")
        case let other?: throw RejectReason("\"type\" must be a string, not a \(other.typeName)")
        }
        guard let type = CallType(rawValue: rawType.lowercased()) else {
            throw RejectReason("unsupported type \"\(rawType)\": only track, identify, page, screen, group and alias are loaded")
        }

        let legacyAlias = type == .alias && json["previousId"] == nil && json["from"] != nil
        let userId = try idText(json[legacyAlias ? "to" : "userId"], name: legacyAlias ? "to" : "userId")
        let anonymousId = try idText(json["anonymousId"], name: "anonymousId")
        guard userId != nil || anonymousId != nil else {
            throw RejectReason("missing id: the message needs a userId or an anonymousId")
        }

        // Timestamps. One that cannot be parsed counts as missing, and its raw value is kept in
        // `_extra` so nothing is lost.
        var extra: [(key: String, value: JSONValue)] = []
        let received = instant(json["receivedAt"], name: "receivedAt", extra: &extra)
        let sent = instant(json["sentAt"], name: "sentAt", extra: &extra)
        var original = instant(json["originalTimestamp"], name: "originalTimestamp", extra: &extra)
        var timestamp = instant(json["timestamp"], name: "timestamp", extra: &extra)
        let hasOriginal = original != nil
        if !hasOriginal {
            // Straight from a client: its timestamp is the original one.
            original = timestamp
            timestamp = nil
        }
        let receivedAt: Instant
        if let received {
            receivedAt = received
            if timestamp == nil {
                if let original {
                    // Segment's formula: timestamp = receivedAt - (sentAt - originalTimestamp),
                    // a missing sentAt standing in as receivedAt.
                    timestamp = received - ((sent ?? received) - original)
                } else {
                    timestamp = received
                }
            }
        } else {
            // A raw client batch that never passed through a collector.
            receivedAt = sent ?? original ?? loadTime
            if timestamp == nil { timestamp = original ?? sent ?? loadTime }
        }

        var message = Message(
            type: type, id: "", receivedAt: receivedAt, userId: userId, groupId: nil, event: nil, eventTable: nil,
            common: [], context: [], payload: [], discards: [], optedOutOfWarehouses: Self.optedOut(json["integrations"]))

        // messageId, or a stable id from the message's canonical content.
        let messageId = try idText(json["messageId"], name: "messageId")
        message.id = messageId ?? Self.derivedId(json)

        var common: [Field] = [
            Field(column: "id", key: "messageId", value: .text(message.id)),
            Field(column: "received_at", key: "receivedAt", value: .timestamp(normalized: Timestamp.format(receivedAt), raw: "")),
        ]
        if let anonymousId { common.append(Field(column: "anonymous_id", key: "anonymousId", value: .text(anonymousId))) }
        if let userId { common.append(Field(column: "user_id", key: legacyAlias ? "to" : "userId", value: .text(userId))) }
        if let sent { common.append(Field(column: "sent_at", key: "sentAt", value: .timestamp(normalized: Timestamp.format(sent), raw: ""))) }
        if let original {
            common.append(Field(column: "original_timestamp", key: hasOriginal ? "originalTimestamp" : "timestamp",
                                value: .timestamp(normalized: Timestamp.format(original), raw: "")))
        }
        if let timestamp {
            common.append(Field(column: "timestamp", key: "timestamp", value: .timestamp(normalized: Timestamp.format(timestamp), raw: "")))
        }

        var handled = Self.notStored
        var payloadSource: String?
        switch type {
        case .track:
            handled.insert("event")
            payloadSource = "properties"
            let event: String
            switch json["event"] {
            case .string(let s)? where !s.isEmpty: event = s
            case .int(let i)?: event = String(i)
            case nil, .null?, .string?: throw RejectReason("track without an event name")
            case let other?: throw RejectReason("\"event\" must be a string, not a \(other.typeName)")
            }
            message.event = event
            let table = Names.eventTable(for: event)
            message.eventTable = table
            common.append(Field(column: "event", key: "event", value: .text(table)))
            common.append(Field(column: "event_text", key: "event", value: .text(event)))
        case .page, .screen:
            payloadSource = "properties"
            for key in ["name", "category"] {
                handled.insert(key)
                if let value = json[key], !value.isNull {
                    common.append(Field(column: key, key: key, value: .text(Self.plainText(value))))
                }
            }
        case .identify:
            payloadSource = "traits"
        case .group:
            payloadSource = "traits"
            handled.insert("groupId")
            guard let groupId = try idText(json["groupId"], name: "groupId") else {
                throw RejectReason("group call without a groupId")
            }
            message.groupId = groupId
            common.append(Field(column: "group_id", key: "groupId", value: .text(groupId)))
        case .alias:
            let key = legacyAlias ? "from" : "previousId"
            handled.formUnion(["previousId", "from", "to"])
            guard let previous = try idText(json[key], name: key) else {
                throw RejectReason("alias call without a previousId")
            }
            common.append(Field(column: "previous_id", key: key, value: .text(previous)))
        }
        message.common = common

        if case .object(let members)? = json["context"] {
            var fields: [Field] = []
            flatten(members, keyPath: "context", columnPrefix: "context", extraPath: "context", into: &fields, extra: &extra, scope: .context)
            message.context = deduplicate(fields, discards: &message.discards)
        } else if let context = json["context"], !context.isNull {
            // Old libraries send `context.library` as a string; any scalar context is kept the same way.
            message.context = [Field(column: "context", key: "context", value: FieldValue.from(context))]
        }
        var payload: [Field] = []
        if let payloadSource {
            handled.insert(payloadSource)
            if case .object(let members)? = json[payloadSource] {
                flatten(members, keyPath: payloadSource, columnPrefix: "", extraPath: "", into: &payload, extra: &extra, scope: Scope(type))
            } else if let value = json[payloadSource], !value.isNull {
                extra.append((payloadSource, value))
            }
        }
        // Top-level keys the Spec does not define are kept, under their own names, in `_extra`.
        if case .object(let members) = json {
            for member in members where !handled.contains(member.key) && !(member.value.isNull) {
                extra.append((member.key, member.value))
            }
        }
        message.payload = deduplicate(payload, discards: &message.discards)
        if !extra.isEmpty {
            message.payload.append(Field(column: "_extra", key: "_extra", value: .json(JSONWriter.string(.object(extra)))))
        }
        return message
    }

    /// Flattens nested objects into fields named by their snake-cased path. Keys whose name is
    /// empty after normalization go to `extra` under their original path.
    private mutating func flatten(
        _ members: [(key: String, value: JSONValue)], keyPath: String, columnPrefix: String, extraPath: String,
        into fields: inout [Field], extra: inout [(key: String, value: JSONValue)], scope: Scope
    ) {
        for member in members {
            if member.value.isNull { continue }
            let names = self.names(prefix: columnPrefix, key: member.key, scope: scope)
            if names.prefix.isEmpty {
                extra.append((extraPath.isEmpty ? member.key : extraPath + "." + member.key, member.value))
                continue
            }
            let path = keyPath + "." + member.key
            if case .object(let nested) = member.value {
                flatten(nested, keyPath: path, columnPrefix: names.prefix,
                        extraPath: extraPath.isEmpty ? member.key : extraPath + "." + member.key,
                        into: &fields, extra: &extra, scope: scope)
                continue
            }
            fields.append(Field(column: names.column, key: path, value: FieldValue.from(member.value)))
        }
    }

    /// Which names a key may not take: none (context), or a call type's common columns.
    enum Scope: UInt8, Hashable {
        case context, track, identify, page, screen, group, alias

        init(_ type: CallType) {
            switch type {
            case .track: self = .track
            case .identify: self = .identify
            case .page: self = .page
            case .screen: self = .screen
            case .group: self = .group
            case .alias: self = .alias
            }
        }

        var reserved: Set<String> {
            switch self {
            case .context: return []
            case .track: return Set(CallType.track.commonColumns.map(\.name))
            case .identify: return Set(CallType.identify.commonColumns.map(\.name))
            case .page: return Set(CallType.page.commonColumns.map(\.name))
            case .screen: return Set(CallType.screen.commonColumns.map(\.name))
            case .group: return Set(CallType.group.commonColumns.map(\.name))
            case .alias: return Set(CallType.alias.commonColumns.map(\.name))
            }
        }
    }

    struct NameKey: Hashable {
        var prefix: String
        var key: String
        var scope: Scope
    }

    /// The snake-cased path so far (`prefix`, empty when the key has no ASCII name) and the
    /// final column name of a key under `prefix`, cached: the same keys recur on every line.
    private mutating func names(prefix: String, key: String, scope: Scope) -> (prefix: String, column: String) {
        let cacheKey = NameKey(prefix: prefix, key: key, scope: scope)
        if let cached = nameCache[cacheKey] { return cached }
        let part = snakeCase(key)
        var result = ("", "")
        if !part.isEmpty {
            let joined = prefix.isEmpty ? part : prefix + "_" + part
            result = (joined, columnName(joined, scope: scope))
        }
        if nameCache.count > 100_000 { nameCache.removeAll(keepingCapacity: true) }
        nameCache[cacheKey] = result
        return result
    }

    /// The final column name of a flattened path: SQL-safe, and `_`-prefixed when a property
    /// or trait would take a common column's name, the `context_` namespace or `_extra`.
    private func columnName(_ snake: String, scope: Scope) -> String {
        var name = Names.sqlSafe(snake)
        if scope != .context, scope.reserved.contains(name) || name.hasPrefix("context_") || name == "context" || name == "_extra" {
            name = Names.fitLength("_" + name)
        }
        return name
    }

    /// Keeps the last field of each column; the earlier ones become discards.
    private func deduplicate(_ fields: [Field], discards: inout [PendingDiscard]) -> [Field] {
        if fields.count < 2 { return fields }
        var lastIndex: [String: Int] = [:]
        lastIndex.reserveCapacity(fields.count)
        for (i, field) in fields.enumerated() { lastIndex[field.column] = i }
        if lastIndex.count == fields.count { return fields }
        var kept: [Field] = []
        kept.reserveCapacity(lastIndex.count)
        for (i, field) in fields.enumerated() {
            if lastIndex[field.column] == i {
                kept.append(field)
            } else {
                let winner = fields[lastIndex[field.column]!]
                discards.append(PendingDiscard(
                    column: field.column, value: field.value.jsonText,
                    reason: "\(field.key) and \(winner.key) both map to column \(field.column) in one message; the last one was kept"))
            }
        }
        return kept
    }

    /// An id as text: strings as they are, numbers in their JSON form; null and "" are absent.
    private func idText(_ value: JSONValue?, name: String) throws(RejectReason) -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let s)?: return s.isEmpty ? nil : s
        case .int(let i)?: return String(i)
        case .double(let d)?: return JSONWriter.formatDouble(d)
        case .bigNumber(let s)?: return s
        case let other?: throw RejectReason("\(name) must be a string or a number, not a \(other.typeName)")
        }
    }

    private func instant(_ value: JSONValue?, name: String, extra: inout [(key: String, value: JSONValue)]) -> Instant? {
        switch value {
        case nil, .null?: return nil
        case .string(let s)? where s.isEmpty: return nil
        case .string(let s)?:
            if let instant = Timestamp.parse(s) { return instant }
        default: break
        }
        extra.append((name, value!))
        return nil
    }

    private static func plainText(_ value: JSONValue) -> String {
        if case .string(let s) = value { return s }
        return JSONWriter.string(value)
    }

    /// `integrations.Warehouses.all == false`, or `integrations.All == false` without a
    /// Warehouses opt-in.
    static func optedOut(_ integrations: JSONValue?) -> Bool {
        guard let integrations else { return false }
        let warehouses = integrations["Warehouses"]
        if case .bool(let on)? = warehouses?["all"] { return !on }
        if case .bool(let on)? = warehouses { return !on }
        if case .bool(false)? = integrations["All"] { return true }
        return false
    }

    /// `sl-` and 32 hex digits of the SHA-256 of the message's canonical JSON (keys sorted,
    /// duplicates resolved), so the same message read twice gets the same id.
    static func derivedId(_ json: JSONValue) -> String {
        var bytes: [UInt8] = []
        JSONWriter.write(json, into: &bytes, sortedKeys: true)
        let digest = SHA256.hash(data: bytes)
        var hex = "sl-"
        for byte in digest.prefix(16) {
            hex += byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }
        return hex
    }
}
