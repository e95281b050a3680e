/// Batch envelopes of the HTTP Tracking API and client libraries (docs/warehouse.md):
/// `{"batch":[...], "context":{...}, "integrations":{...}, "sentAt":..., "writeKey":...}`.
public enum Envelope {
    /// The messages a parsed line holds: the line itself, or the items of its batch with the
    /// envelope's `context` merged under theirs (item keys win) and its `sentAt` and
    /// `integrations` where an item has none. A non-object item stays as it is, for the
    /// normalizer to reject with its position.
    public static func messages(in line: JSONValue) -> [JSONValue] {
        guard case .array(let items)? = line["batch"] else { return [line] }
        let context = line["context"]
        let sentAt = line["sentAt"]
        let integrations = line["integrations"]
        return items.map { item in
            guard case .object(var members) = item else { return item }
            if let context, case .object(let outer) = context {
                if let i = members.lastIndex(where: { $0.key == "context" }), case .object(let inner) = members[i].value {
                    members[i].value = .object(merge(outer, under: inner))
                } else if !members.contains(where: { $0.key == "context" }) || item["context"]?.isNull == true {
                    members.removeAll { $0.key == "context" }
                    members.append(("context", .object(outer)))
                }
            }
            if let sentAt, item["sentAt"] == nil || item["sentAt"]?.isNull == true {
                members.removeAll { $0.key == "sentAt" }
                members.append(("sentAt", sentAt))
            }
            if let integrations, item["integrations"] == nil || item["integrations"]?.isNull == true {
                members.removeAll { $0.key == "integrations" }
                members.append(("integrations", integrations))
            }
            return .object(members)
        }
    }

    /// `outer`'s members with `inner`'s on top, recursively for nested objects
    /// (`context.library` from the envelope, `context.page` from the item).
    package static func merge(_ outer: [(key: String, value: JSONValue)], under inner: [(key: String, value: JSONValue)]) -> [(key: String, value: JSONValue)] {
        var result = JSONValue.object(outer).uniqueMembers ?? []
        for member in JSONValue.object(inner).uniqueMembers ?? [] {
            if let i = result.firstIndex(where: { $0.key == member.key }) {
                if case .object(let a) = result[i].value, case .object(let b) = member.value {
                    result[i].value = .object(merge(a, under: b))
                } else {
                    result[i].value = member.value
                }
            } else {
                result.append(member)
            }
        }
        return result
    }
}
