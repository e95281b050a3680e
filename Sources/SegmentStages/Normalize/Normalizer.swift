import SegmentCore

/// The top-level keys of the Segment Spec, recognised by length first so that a message's
/// keys are not compared against every name in turn.
enum TopLevelKey {
    case type, action, userId, anonymousId, messageId, receivedAt, sentAt, originalTimestamp, timestamp, context
    case integrations, event, name, category, groupId, previousId, from, to, properties, traits
    /// channel, version, projectId, writeKey, _metadata: dropped (docs/warehouse.md, Tables).
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

/// Turns one message object into a `Message` (docs/warehouse.md, Timestamps): type and ids checked,
/// timestamps parsed and corrected for client clock skew, and every property, trait and
/// context key flattened into a named, typed field.
///
/// Not thread-safe: each worker owns one, with its caches of names.
public struct Normalizer {
    /// The time this load started; stands in for a message with no timestamps at all.
    public let loadTime: Instant
    public let names: NameTable
    var nameCache = NameCache()
    var eventCache: [String: (table: Int32, slug: String)] = [:]
    /// Per column id: the serial and position of its last field in the list being deduplicated.
    var lastSeen: [(serial: UInt32, index: Int32)] = []
    var serial: UInt32 = 0

    public init(loadTime: Instant, names: NameTable = NameTable()) {
        self.loadTime = loadTime
        self.names = names
    }
    /// The snake-cased column prefix of each nested key path met so far.
    var prefixes: [Int32: String] = [:]


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
}
