import SegmentCore

extension Normalizer {
    /// An event's table id and slug, cached per raw name.
    mutating func eventTable(for event: String) -> (table: Int32, slug: String) {
        if let cached = eventCache[event] { return cached }
        let table = Names.eventTable(for: event)
        let result = (names.id(table), table)
        if eventCache.count > 100_000 { eventCache.removeAll(keepingCapacity: true) }
        eventCache[event] = result
        return result
    }

    /// Flattens nested objects into fields named by their snake-cased path. Keys whose name is
    /// empty after normalization go to `extra` under their original path.
    mutating func flatten(
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
    mutating func name(parent: Int32, key: String, scope: Scope) -> CachedName? {
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

    /// The final column name of a flattened path: SQL-safe, and `_`-prefixed when a property
    /// or trait would take a common column's name, the `context_` namespace or `_extra`.
    func columnName(_ snake: String, scope: Scope) -> String {
        var name = Names.sqlSafe(snake)
        if let type = scope.callType,
           type.commonColumns.contains(where: { $0.name == name }) || name.hasPrefix("context_") || name == "context" || name == "_extra" {
            name = Names.fitLength("_" + name)
        }
        return name
    }

    /// Keeps the last field of each column; the earlier ones become discards.
    mutating func deduplicate(_ fields: [Field], discards: inout [PendingDiscard]) -> [Field] {
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
    func idText(_ value: JSONValue?, name: String) throws(RejectReason) -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let s)?: return s.isEmpty ? nil : s
        case .int(let i)?: return String(i)
        case .double(let d)?: return JSONWriter.formatDouble(d)
        case .bigNumber(let s)?: return s
        case let other?: throw RejectReason("\(name) must be a string or a number, not a \(other.typeName)")
        }
    }

    func instant(_ value: JSONValue?, name: String, extra: inout [(key: String, value: JSONValue)]) -> Instant? {
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

    static func plainText(_ value: JSONValue) -> String {
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
