import SegmentCore

/// The top-level keys of the Segment Spec, recognised by length first so that a message's
/// keys are not compared against every name in turn.
enum TopLevelKey {
    case type, action, userId, anonymousId, messageId, receivedAt, sentAt, originalTimestamp, timestamp, context
    case integrations, event, name, category, groupId, previousId, from, to, properties, traits
    /// channel, version, projectId, writeKey, _metadata: dropped (contract, section 3).
    case notStored
    case other

    init(_ key: String) {
        switch key.utf8.count {
        case 2: self = key == "to" ? .to : .other
        case 4: self = key == "type" ? .type : key == "name" ? .name : key == "from" ? .from : .other
        case 5: self = key == "event" ? .event : .other
        case 6: self = key == "userId" ? .userId : key == "sentAt" ? .sentAt : key == "traits" ? .traits : key == "action" ? .action : .other
        case 7: self = key == "context" ? .context : key == "groupId" ? .groupId : key == "channel" || key == "version" ? .notStored : .other
        case 8: self = key == "category" ? .category : key == "writeKey" ? .notStored : .other
        case 9:
            self = key == "messageId" ? .messageId : key == "timestamp" ? .timestamp
                : key == "projectId" || key == "_metadata" ? .notStored : .other
        case 10: self = key == "receivedAt" ? .receivedAt : key == "properties" ? .properties : key == "previousId" ? .previousId : .other
        case 11: self = key == "anonymousId" ? .anonymousId : .other
        case 12: self = key == "integrations" ? .integrations : .other
        case 17: self = key == "originalTimestamp" ? .originalTimestamp : .other
        default: self = .other
        }
    }
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
/// Not thread-safe: each worker owns one, with its caches of names.
public struct Normalizer {
    /// The time this load started; stands in for a message with no timestamps at all.
    public let loadTime: Instant
    public let names: NameTable
    private var nameCache = NameCache()
    private var eventCache: [String: (table: Int32, slug: String)] = [:]
    /// Per column id: the serial and position of its last field in the list being deduplicated.
    private var lastSeen: [(serial: UInt32, index: Int32)] = []
    private var serial: UInt32 = 0

    public init(loadTime: Instant, names: NameTable = NameTable()) {
        self.loadTime = loadTime
        self.names = names
    }

    public mutating func normalize(_ json: JSONValue) throws(RejectReason) -> Message {
        guard case .object(let members) = json else {
            throw RejectReason("a message must be a JSON object, not \(json.typeName == "array" ? "an" : "a") \(json.typeName)")
        }
        // One pass over the top level; for a duplicated key the last one wins.
        var typeValue: JSONValue?, actionValue: JSONValue?, userIdValue: JSONValue?, anonymousIdValue: JSONValue?
        var messageIdValue: JSONValue?, receivedValue: JSONValue?, sentValue: JSONValue?, originalValue: JSONValue?
        var timestampValue: JSONValue?, contextValue: JSONValue?, integrationsValue: JSONValue?, eventValue: JSONValue?
        var nameValue: JSONValue?, categoryValue: JSONValue?, groupIdValue: JSONValue?, previousIdValue: JSONValue?
        var fromValue: JSONValue?, toValue: JSONValue?, propertiesValue: JSONValue?, traitsValue: JSONValue?
        var others: [(key: String, value: JSONValue)] = []
        // A top-level key given twice: the last wins (as `json[key]` reads it), the others are recorded.
        var repeated: [(key: String, value: JSONValue, column: Int32)] = []
        for member in members {
            switch TopLevelKey(member.key) {
            case .type: if let old = typeValue { repeated.append((member.key, old, NameTable.extra)) }; typeValue = member.value
            case .action: if let old = actionValue { repeated.append((member.key, old, NameTable.extra)) }; actionValue = member.value
            case .userId: if let old = userIdValue { repeated.append((member.key, old, NameTable.userId)) }; userIdValue = member.value
            case .anonymousId: if let old = anonymousIdValue { repeated.append((member.key, old, NameTable.anonymousId)) }; anonymousIdValue = member.value
            case .messageId: if let old = messageIdValue { repeated.append((member.key, old, NameTable.id)) }; messageIdValue = member.value
            case .receivedAt: if let old = receivedValue { repeated.append((member.key, old, NameTable.receivedAt)) }; receivedValue = member.value
            case .sentAt: if let old = sentValue { repeated.append((member.key, old, NameTable.sentAt)) }; sentValue = member.value
            case .originalTimestamp: if let old = originalValue { repeated.append((member.key, old, NameTable.originalTimestamp)) }; originalValue = member.value
            case .timestamp: if let old = timestampValue { repeated.append((member.key, old, NameTable.timestamp)) }; timestampValue = member.value
            case .context: if let old = contextValue { repeated.append((member.key, old, NameTable.extra)) }; contextValue = member.value
            case .integrations: if let old = integrationsValue { repeated.append((member.key, old, NameTable.extra)) }; integrationsValue = member.value
            case .event: if let old = eventValue { repeated.append((member.key, old, NameTable.event)) }; eventValue = member.value
            case .name: if let old = nameValue { repeated.append((member.key, old, NameTable.name)) }; nameValue = member.value
            case .category: if let old = categoryValue { repeated.append((member.key, old, NameTable.category)) }; categoryValue = member.value
            case .groupId: if let old = groupIdValue { repeated.append((member.key, old, NameTable.groupId)) }; groupIdValue = member.value
            case .previousId: if let old = previousIdValue { repeated.append((member.key, old, NameTable.previousId)) }; previousIdValue = member.value
            case .from: if let old = fromValue { repeated.append((member.key, old, NameTable.extra)) }; fromValue = member.value
            case .to: if let old = toValue { repeated.append((member.key, old, NameTable.extra)) }; toValue = member.value
            case .properties: if let old = propertiesValue { repeated.append((member.key, old, NameTable.extra)) }; propertiesValue = member.value
            case .traits: if let old = traitsValue { repeated.append((member.key, old, NameTable.extra)) }; traitsValue = member.value
            case .notStored: continue
            case .other: others.append(member)
            }
        }
        // Type, with the pre-2014 `action` as fallback.
        let rawType: String
        switch typeValue ?? actionValue {
        case .string(let s)?: rawType = s
        case nil, .null?: throw RejectReason("missing type: the message has neither \"type\" nor \"action\"")
        case let other?: throw RejectReason("\"type\" must be a string, not a \(other.typeName)")
        }
        guard let type = CallType(rawValue: rawType) ?? CallType(rawValue: rawType.lowercased()) else {
            throw RejectReason("unsupported type \"\(rawType)\": only track, identify, page, screen, group and alias are loaded")
        }

        let legacyAlias = type == .alias && previousIdValue == nil && fromValue != nil
        let userId = try idText(legacyAlias ? toValue : userIdValue, name: legacyAlias ? "to" : "userId")
        let anonymousId = try idText(anonymousIdValue, name: "anonymousId")
        guard userId != nil || anonymousId != nil else {
            throw RejectReason("missing id: the message needs a userId or an anonymousId")
        }

        // Timestamps. One that cannot be parsed counts as missing, and its raw value is kept in
        // `_extra` so nothing is lost.
        var extra: [(key: String, value: JSONValue)] = []
        let received = instant(receivedValue, name: "receivedAt", extra: &extra)
        let sent = instant(sentValue, name: "sentAt", extra: &extra)
        var original = instant(originalValue, name: "originalTimestamp", extra: &extra)
        var timestamp = instant(timestampValue, name: "timestamp", extra: &extra)
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

        // messageId, or a stable id from the message's canonical content.
        let messageId = try idText(messageIdValue, name: "messageId") ?? Self.derivedId(json)
        var message = Message(
            type: type, id: messageId, receivedAt: receivedAt, userId: userId, groupId: nil, event: nil,
            table: NameTable.table(of: type), common: [], context: [], payload: [], discards: [],
            optedOutOfWarehouses: Self.optedOut(integrationsValue))
        for lost in repeated {
            message.discards.append(PendingDiscard(
                column: lost.column, key: nil, value: JSONWriter.string(lost.value),
                reason: "\(lost.key) appears more than once in the message; the last one was kept"))
        }

        var common: [Field] = []
        common.reserveCapacity(10)
        common.append(Field(column: NameTable.id, key: NameTable.keyMessageId, value: .text(messageId)))
        common.append(Field(column: NameTable.receivedAt, key: NameTable.keyReceivedAt, value: .timestamp(normalized: Timestamp.format(receivedAt), raw: "")))
        if let anonymousId { common.append(Field(column: NameTable.anonymousId, key: NameTable.keyAnonymousId, value: .text(anonymousId))) }
        if let userId { common.append(Field(column: NameTable.userId, key: legacyAlias ? NameTable.keyTo : NameTable.keyUserId, value: .text(userId))) }
        if let sent { common.append(Field(column: NameTable.sentAt, key: NameTable.keySentAt, value: .timestamp(normalized: Timestamp.format(sent), raw: ""))) }
        if let original {
            common.append(Field(column: NameTable.originalTimestamp, key: hasOriginal ? NameTable.keyOriginalTimestamp : NameTable.keyTimestamp,
                                value: .timestamp(normalized: Timestamp.format(original), raw: "")))
        }
        if let timestamp {
            common.append(Field(column: NameTable.timestamp, key: NameTable.keyTimestamp, value: .timestamp(normalized: Timestamp.format(timestamp), raw: "")))
        }

        var payloadValue: JSONValue?
        var payloadRoot = NameTable.rootProperties
        switch type {
        case .track:
            payloadValue = propertiesValue
            if let traitsValue { others.append(("traits", traitsValue)) }
            let event: String
            switch eventValue {
            case .string(let s)? where !s.isEmpty: event = s
            case .int(let i)?: event = String(i)
            case nil, .null?, .string?: throw RejectReason("track without an event name")
            case let other?: throw RejectReason("\"event\" must be a string, not a \(other.typeName)")
            }
            message.event = event
            let table = eventTable(for: event)
            message.table = table.table
            common.append(Field(column: NameTable.event, key: NameTable.keyEvent, value: .text(table.slug)))
            common.append(Field(column: NameTable.eventText, key: NameTable.keyEvent, value: .text(event)))
            for (key, value) in [("name", nameValue), ("category", categoryValue), ("groupId", groupIdValue), ("previousId", previousIdValue)] {
                if let value { others.append((key, value)) }
            }
        case .page, .screen:
            payloadValue = propertiesValue
            if let traitsValue { others.append(("traits", traitsValue)) }
            if let value = nameValue, !value.isNull {
                common.append(Field(column: NameTable.name, key: NameTable.keyName, value: .text(Self.plainText(value))))
            }
            if let value = categoryValue, !value.isNull {
                common.append(Field(column: NameTable.category, key: NameTable.keyCategory, value: .text(Self.plainText(value))))
            }
            for (key, value) in [("event", eventValue), ("groupId", groupIdValue), ("previousId", previousIdValue)] {
                if let value { others.append((key, value)) }
            }
        case .identify, .group:
            payloadValue = traitsValue
            // RudderStack's libraries send an identify's traits in context.traits only: they
            // are its traits then (the context keeps them too, as sent).
            if type == .identify, traitsValue == nil || traitsValue?.isNull == true,
               case .object? = contextValue?["traits"] {
                payloadValue = contextValue?["traits"]
            }
            payloadRoot = NameTable.rootTraits
            if let propertiesValue { others.append(("properties", propertiesValue)) }
            for (key, value) in [("event", eventValue), ("name", nameValue), ("category", categoryValue), ("previousId", previousIdValue)] {
                if let value { others.append((key, value)) }
            }
            if type == .group {
                guard let groupId = try idText(groupIdValue, name: "groupId") else {
                    throw RejectReason("group call without a groupId")
                }
                message.groupId = groupId
                common.append(Field(column: NameTable.groupId, key: NameTable.keyGroupId, value: .text(groupId)))
            } else if let groupIdValue {
                others.append(("groupId", groupIdValue))
            }
        case .alias:
            guard let previous = try idText(legacyAlias ? fromValue : previousIdValue, name: legacyAlias ? "from" : "previousId") else {
                throw RejectReason("alias call without a previousId")
            }
            common.append(Field(column: NameTable.previousId, key: legacyAlias ? NameTable.keyFrom : NameTable.keyPreviousId, value: .text(previous)))
            for (key, value) in [("event", eventValue), ("name", nameValue), ("category", categoryValue), ("groupId", groupIdValue),
                                 ("properties", propertiesValue), ("traits", traitsValue)] {
                if let value { others.append((key, value)) }
            }
        }
        if !legacyAlias {
            if let fromValue { others.append(("from", fromValue)) }
            if let toValue { others.append(("to", toValue)) }
        }
        message.common = common

        if case .object(let contextMembers)? = contextValue {
            var fields: [Field] = []
            fields.reserveCapacity(contextMembers.count * 2)
            flatten(contextMembers, parent: NameTable.keyContext, extraPath: "context", into: &fields, extra: &extra, scope: .context)
            message.context = deduplicate(fields, discards: &message.discards)
        } else if let contextValue, !contextValue.isNull {
            // Old libraries send `context.library` as a string; any scalar context is kept the same way.
            message.context = [Field(column: NameTable.context, key: NameTable.keyContext, value: FieldValue.from(contextValue))]
        }
        if case .object(let payloadMembers)? = payloadValue {
            var payload: [Field] = []
            payload.reserveCapacity(payloadMembers.count + 1)
            flatten(payloadMembers, parent: payloadRoot, extraPath: "", into: &payload, extra: &extra, scope: Scope(type))
            message.payload = deduplicate(payload, discards: &message.discards)
        } else if let payloadValue, !payloadValue.isNull {
            extra.append((type == .identify || type == .group ? "traits" : "properties", payloadValue))
        }
        // Top-level keys the Spec does not define are kept, under their own names, in `_extra`.
        for member in others where !member.value.isNull {
            extra.append(member)
        }
        if !extra.isEmpty {
            message.payload.append(Field(column: NameTable.extra, key: NameTable.extra, value: .json(JSONWriter.string(.object(extra)))))
        }
        return message
    }

    /// An event's table id and slug, cached per raw name.
    private mutating func eventTable(for event: String) -> (table: Int32, slug: String) {
        if let cached = eventCache[event] { return cached }
        let table = Names.eventTable(for: event)
        let result = (names.id(table), table)
        if eventCache.count > 100_000 { eventCache.removeAll(keepingCapacity: true) }
        eventCache[event] = result
        return result
    }

    /// Flattens nested objects into fields named by their snake-cased path. Keys whose name is
    /// empty after normalization go to `extra` under their original path.
    private mutating func flatten(
        _ members: [(key: String, value: JSONValue)], parent: Int32, extraPath: String,
        into fields: inout [Field], extra: inout [(key: String, value: JSONValue)], scope: Scope
    ) {
        for member in members {
            if member.value.isNull { continue }
            let name = self.name(parent: parent, key: member.key, scope: scope)
            guard let name else {
                extra.append((extraPath.isEmpty ? member.key : extraPath + "." + member.key, member.value))
                continue
            }
            if case .object(let nested) = member.value {
                flatten(nested, parent: name.key, extraPath: extraPath.isEmpty ? member.key : extraPath + "." + member.key,
                        into: &fields, extra: &extra, scope: scope)
                continue
            }
            fields.append(Field(column: name.column, key: name.key, value: FieldValue.from(member.value)))
        }
    }

    /// Which names a key may not take: none (context), or a call type's common columns.
    package enum Scope: UInt8, Hashable {
        case context, track, identify, page, screen, group, alias

        package init(_ type: CallType) {
            switch type {
            case .track: self = .track
            case .identify: self = .identify
            case .page: self = .page
            case .screen: self = .screen
            case .group: self = .group
            case .alias: self = .alias
            }
        }

        package var callType: CallType? {
            switch self {
            case .context: return nil
            case .track: return .track
            case .identify: return .identify
            case .page: return .page
            case .screen: return .screen
            case .group: return .group
            case .alias: return .alias
            }
        }
    }

    /// A key path's id, its column's id, and the snake-cased path so far (for nested keys).
    package struct CachedName {
        package var key: Int32
        package var column: Int32
        package var prefix: String
    }

    /// The names of `key` under the path `parent`, cached: the same keys recur on every line.
    /// Nil when the key has no ASCII letters or digits (it goes to `_extra`).
    private mutating func name(parent: Int32, key: String, scope: Scope) -> CachedName? {
        let hash = NameCache.hash(key, parent: parent, scope: scope.rawValue)
        if let cached = nameCache.find(key, parent: parent, scope: scope.rawValue, hash: hash) { return cached.column < 0 ? nil : cached }
        let part = snakeCase(key)
        var result = CachedName(key: -1, column: -1, prefix: "")
        if !part.isEmpty {
            let parentPath = names.keyName(parent)
            let parentPrefix: String
            switch parent {
            case NameTable.rootProperties, NameTable.rootTraits: parentPrefix = ""
            case NameTable.keyContext: parentPrefix = "context"
            default: parentPrefix = prefixes[parent] ?? ""
            }
            let joined = parentPrefix.isEmpty ? part : parentPrefix + "_" + part
            result = CachedName(key: names.id(parentPath + "." + key), column: names.id(columnName(joined, scope: scope)), prefix: joined)
            prefixes[result.key] = joined
        }
        if nameCache.count > 100_000 { nameCache.removeAll() }
        nameCache.insert(key, parent: parent, scope: scope.rawValue, hash: hash, value: result)
        return result.column < 0 ? nil : result
    }

    /// The snake-cased column prefix of each nested key path met so far.
    private var prefixes: [Int32: String] = [:]

    /// The final column name of a flattened path: SQL-safe, and `_`-prefixed when a property
    /// or trait would take a common column's name, the `context_` namespace or `_extra`.
    private func columnName(_ snake: String, scope: Scope) -> String {
        var name = Names.sqlSafe(snake)
        if let type = scope.callType,
           type.commonColumns.contains(where: { $0.name == name }) || name.hasPrefix("context_") || name == "context" || name == "_extra" {
            name = Names.fitLength("_" + name)
        }
        return name
    }

    /// Keeps the last field of each column; the earlier ones become discards.
    private mutating func deduplicate(_ fields: [Field], discards: inout [PendingDiscard]) -> [Field] {
        if fields.count < 2 { return fields }
        serial &+= 1
        var duplicates = false
        for (i, field) in fields.enumerated() {
            let c = Int(field.column)
            if c >= lastSeen.count { lastSeen.append(contentsOf: repeatElement((serial: UInt32(0), index: Int32(0)), count: c + 64 - lastSeen.count)) }
            if lastSeen[c].serial == serial { duplicates = true }
            lastSeen[c] = (serial, Int32(i))
        }
        if !duplicates { return fields }
        var kept: [Field] = []
        kept.reserveCapacity(fields.count)
        for (i, field) in fields.enumerated() {
            let last = Int(lastSeen[Int(field.column)].index)
            if last == i {
                kept.append(field)
            } else {
                let winner = fields[last]
                let column = names.name(field.column)
                let reason = field.key == winner.key
                    ? "\(names.keyName(field.key)) appears more than once in one object; the last one was kept"
                    : "\(names.keyName(field.key)) and \(names.keyName(winner.key)) both map to column \(column) in one message; the last one was kept"
                discards.append(PendingDiscard(column: field.column, key: field.key, value: field.value.jsonText, reason: reason))
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
        case .string(let s)?:
            if let instant = Timestamp.parse(s) { return instant }
        case .int(let n)?:
            if let instant = Timestamp.epoch(Double(n), exact: n) { return instant }
        case .double(let d)?:
            if let instant = Timestamp.epoch(d, exact: nil) { return instant }
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
    package static func optedOut(_ integrations: JSONValue?) -> Bool {
        guard let integrations else { return false }
        let warehouses = integrations["Warehouses"]
        if case .bool(let on)? = warehouses?["all"] { return !on }
        if case .bool(let on)? = warehouses { return !on }
        if case .bool(false)? = integrations["All"] { return true }
        return false
    }

    /// `sl-` and 32 hex digits of the SHA-256 of the message's canonical JSON (keys sorted,
    /// duplicates resolved), so the same message read twice gets the same id.
    package static func derivedId(_ json: JSONValue) -> String {
        var bytes: [UInt8] = []
        JSONWriter.write(json, into: &bytes, sortedKeys: true)
        let digest = SHA256Hasher.hash(bytes)
        return "sl-" + hexString(digest.prefix(16))
    }
}
