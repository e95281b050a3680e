/// The ids of a message as the loader reads them from its JSON (before normalizing): `userId`
/// (or a legacy alias's `to`) and `anonymousId`, each a non-empty string or a number, as text.
/// The suppression list is applied to these wherever a message is seen whole: the collector,
/// and the rewrite of archives.
public enum MessageIds {
    public static func of(_ message: JSONValue) -> (userId: String?, anonymousId: String?) {
        var user = text(message["userId"])
        if user == nil, (message["type"] ?? message["action"])?.stringValue?.lowercased() == "alias", message["from"] != nil || message["to"] != nil {
            user = text(message["to"])
        }
        return (user, text(message["anonymousId"]))
    }

    static func text(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let s)?: return s.isEmpty ? nil : s
        case .int(let i)?: return String(i)
        case .double(let d)?: return JSONWriter.formatDouble(d)
        case .bigNumber(let s)?: return s
        default: return nil
        }
    }
}

extension SuppressionList {
    /// Whether a message, as JSON, is a forgotten person's.
    public func suppresses(_ message: JSONValue) -> Bool {
        guard !isEmpty else { return false }
        let ids = MessageIds.of(message)
        return suppresses(userId: ids.userId, anonymousId: ids.anonymousId)
    }
}
