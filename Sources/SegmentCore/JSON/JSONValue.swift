/// A parsed JSON value that keeps what the warehouse needs and Foundation loses:
/// object key order and duplicate keys (the last one wins, the others are reported),
/// integers as exact 64-bit values, and numbers that fit neither an `Int64` nor a `Double`
/// without losing digits as their original text.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    /// A number that does not fit in an `Int64` and that a `Double` would not round-trip.
    case bigNumber(String)
    case string(String)
    case array([JSONValue])
    /// Members in input order; a key may occur more than once.
    case object([(key: String, value: JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.int(a), .int(b)): return a == b
        case let (.double(a), .double(b)): return a == b
        case let (.bigNumber(a), .bigNumber(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// The last member named `key`, as a JSON reader that lets the last duplicate win would see it.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        for member in members.reversed() where member.key == key { return member.value }
        return nil
    }

    public var isNull: Bool { if case .null = self { return true } else { return false } }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The members of an object with duplicate keys removed (the last one kept, in the
    /// position of the first), or nil when this is not an object.
    public var uniqueMembers: [(key: String, value: JSONValue)]? {
        guard case .object(let members) = self else { return nil }
        if members.count < 2 { return members }
        var index: [String: Int] = [:]
        var out: [(key: String, value: JSONValue)] = []
        out.reserveCapacity(members.count)
        for member in members {
            if let at = index[member.key] {
                out[at].value = member.value
            } else {
                index[member.key] = out.count
                out.append(member)
            }
        }
        return out
    }

    /// A short name of the JSON type, for messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int, .double, .bigNumber: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}
