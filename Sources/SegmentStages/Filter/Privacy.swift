import Foundation
import SegmentCore

/// Fields removed or pseudonymised before a message is normalized (a pipeline's `privacy`),
/// for telemetry that must arrive anonymized. Paths are dotted keys into the message as the
/// Spec writes it (`context.ip`, `traits.email`, `properties.card.last4`); every member with
/// that name is affected, duplicates included. A hashed value becomes the lower-case hex
/// HMAC-SHA256 of its text (a string's characters, anything else its JSON text) under a key
/// that never appears in the pipeline file: it comes from an environment variable.
public struct Privacy: Sendable {
    public var drop: [[String]] = []
    public var hash: [[String]] = []
    /// The environment variable that holds the hashing key (required when `hash` is not empty).
    public var hashKeyVariable: String?
    package var key: [UInt8]?

    public init() {}

    public var isEmpty: Bool { drop.isEmpty && hash.isEmpty }

    /// Why the hashing key cannot be had, or nil when it is ready (or not needed).
    public mutating func loadKey(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        guard !hash.isEmpty else { return nil }
        guard let variable = hashKeyVariable else { return "privacy.hash needs privacy.hash_key_env, the environment variable that holds the key" }
        guard let value = environment[variable], !value.isEmpty else {
            return "privacy.hash_key_env names \(variable), which is not set or empty: export the hashing key in it (at least 16 characters)"
        }
        guard value.utf8.count >= 16 else { return "the hashing key in \(variable) is \(value.utf8.count) characters; use at least 16" }
        key = Array(value.utf8)
        return nil
    }

    /// The message with the configured fields dropped and hashed.
    public func apply(to message: JSONValue, hashing: Bool = true) -> JSONValue {
        var value = message
        for path in drop { value = Self.transform(value, path[...]) { _ in nil } }
        if hashing, let key {
            for path in hash { value = Self.transform(value, path[...]) { .string(Self.digest($0, key: key)) } }
        }
        return value
    }

    /// A whole line: the message itself, or each item of a batch envelope and the envelope's
    /// own `context`.
    public func applyToLine(_ line: JSONValue, hashing: Bool = true) -> JSONValue {
        var redacted = apply(to: line, hashing: hashing)
        guard case .object(var members) = redacted else { return redacted }
        for i in members.indices where members[i].key == "batch" {
            if case .array(let items) = members[i].value {
                members[i].value = .array(items.map { apply(to: $0, hashing: hashing) })
            }
        }
        redacted = .object(members)
        return redacted
    }

    package static func transform(_ value: JSONValue, _ path: ArraySlice<String>, _ change: (JSONValue) -> JSONValue?) -> JSONValue {
        guard let head = path.first, case .object(let members) = value else { return value }
        var out: [(key: String, value: JSONValue)] = []
        out.reserveCapacity(members.count)
        for member in members {
            if member.key != head {
                out.append(member)
            } else if path.count == 1 {
                if member.value.isNull { out.append(member); continue }
                if let changed = change(member.value) { out.append((member.key, changed)) }
            } else {
                out.append((member.key, transform(member.value, path.dropFirst(), change)))
            }
        }
        return .object(out)
    }

    /// An id as the warehouse holds it under these rules: its digest when the rules hash that
    /// field (`userId`, `anonymousId`), else the id itself (what `forget` looks for).
    public func stored(_ id: String, field: String) -> String {
        guard let key, hash.contains([field]) else { return id }
        return Self.digest(.string(id), key: key)
    }

    package static func digest(_ value: JSONValue, key: [UInt8]) -> String {
        let text: String
        if case .string(let s) = value { text = s } else { text = JSONWriter.string(value, sortedKeys: true) }
        return hexString(HMACSHA256(key: key).code(Array(text.utf8)))
    }
}
