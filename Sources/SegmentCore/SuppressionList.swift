/// The ids of people a warehouse forgot, as digests (docs/warehouse.md, Erasure): a later load,
/// a retry of rejects and the collector leave their messages out. A digest is the lower-case hex
/// SHA-256 of `user_id:<id>` or `anonymous_id:<id>`, so the list never holds an id itself and
/// anyone who has a message can tell whether it is suppressed.
///
/// A message is suppressed when its `userId` is a forgotten user id, or when it has no `userId`
/// and its `anonymousId` is a forgotten anonymous id: a message with someone else's `userId` on
/// a device the person once used is that other person's, and stays (the same rule `forget`
/// deletes rows by).
public struct SuppressionList: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case userId = "user_id"
        case anonymousId = "anonymous_id"

        /// `user_id:` or `anonymous_id:`, hashed before the id.
        var prefix: [UInt8] { self == .userId ? Self.userPrefix : Self.anonymousPrefix }
        private static let userPrefix = Array("user_id:".utf8)
        private static let anonymousPrefix = Array("anonymous_id:".utf8)
    }

    public private(set) var digests: Set<String>
    /// The same digests as 256-bit values: what a message is checked against, without the
    /// hex text (a load checks every message).
    private var keys: Set<Key>

    struct Key: Hashable, Sendable {
        var a: UInt64, b: UInt64, c: UInt64, d: UInt64

        init(_ bytes: UnsafeRawBufferPointer) {
            (a, b, c, d) = (bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self), bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                            bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self), bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        }

        init?(hex: String) {
            let raw = bytes(fromHex: hex)
            guard raw.count == 32 else { return nil }
            self = raw.withUnsafeBytes { Key($0) }
        }

        static func of(_ kind: Kind, _ id: String) -> Key {
            var hasher = SHA256Hasher()
            kind.prefix.withUnsafeBytes { hasher.update($0) }
            var id = id
            id.withUTF8 { hasher.update(UnsafeRawBufferPointer($0)) }
            return withUnsafeTemporaryAllocation(byteCount: SHA256Hasher.byteCount, alignment: 8) { out in
                hasher.finalize(into: out)
                return Key(UnsafeRawBufferPointer(out))
            }
        }
    }

    public init(digests: Set<String> = []) {
        self.digests = []
        keys = []
        for digest in digests { insert(digest) }
    }

    public static func == (a: SuppressionList, b: SuppressionList) -> Bool { a.digests == b.digests }

    public var isEmpty: Bool { keys.isEmpty }
    public var count: Int { digests.count }

    public static func digest(_ kind: Kind, _ id: String) -> String {
        hexString(SHA256Hasher.hash(kind.rawValue + ":" + id))
    }

    /// Adds a digest (64 hexadecimal digits, lower case).
    public mutating func insert(_ digest: String) {
        guard let key = Key(hex: digest) else { return }
        digests.insert(digest)
        keys.insert(key)
    }

    /// Whether a message with these ids is left out.
    @inline(__always)
    public func suppresses(userId: String?, anonymousId: String?) -> Bool {
        guard !keys.isEmpty else { return false }
        if let userId { return keys.contains(Key.of(.userId, userId)) }
        if let anonymousId { return keys.contains(Key.of(.anonymousId, anonymousId)) }
        return false
    }

    /// Whether a line that is no message (a reject) holds a forgotten id: any JSON string in
    /// it, or run of digits, taken as a user id or an anonymous id. Exact text, never a pattern.
    /// A load suppresses such a line; `forget` removes such rejects and archive lines.
    public func mentioned(in line: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !keys.isEmpty else { return false }
        var i = 0
        let n = line.count
        func check(_ start: Int, _ end: Int) -> Bool {
            guard end > start else { return false }
            let text = String(decoding: UnsafeBufferPointer(rebasing: line[start..<end]), as: UTF8.self)
            return keys.contains(Key.of(.userId, text)) || keys.contains(Key.of(.anonymousId, text))
        }
        while i < n {
            if line[i] == UInt8(ascii: "\"") {
                let start = i + 1
                var j = start
                while j < n && line[j] != UInt8(ascii: "\"") { j += line[j] == UInt8(ascii: "\\") ? 2 : 1 }
                if check(start, min(j, n)) { return true }
                i = j + 1
            } else if line[i] >= 48 && line[i] <= 57 {
                var j = i
                while j < n && line[j] >= 48 && line[j] <= 57 { j += 1 }
                if check(i, j) { return true }
                i = j
            } else {
                i += 1
            }
        }
        return false
    }

    /// The list as `suppressions export` writes it: a comment, then one digest per line, sorted.
    public func exported() -> String {
        var text = "# segment-loader suppression list: SHA-256 of \"user_id:<id>\" or \"anonymous_id:<id>\" of each forgotten id, one per line\n"
        for digest in digests.sorted() { text += digest + "\n" }
        return text
    }

    /// A problem with one line of an exported list.
    public struct Malformed: Error, CustomStringConvertible {
        public var line: Int
        public var text: String
        public var description: String {
            "line \(line) is not a digest (64 hexadecimal digits): \(text.prefix(80))"
        }
    }

    /// Reads an exported list: blank lines and lines starting with `#` are skipped.
    public static func parse(_ text: String) throws -> SuppressionList {
        var list = SuppressionList()
        var number = 0
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            number += 1
            let line = raw.trimmingBlanks()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let lower = line.lowercased()
            guard lower.utf8.count == 64, lower.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
                throw Malformed(line: number, text: String(line))
            }
            list.insert(lower)
        }
        return list
    }
}

extension Substring {
    fileprivate func trimmingBlanks() -> Substring {
        var s = self
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        while let first = s.first, first == " " || first == "\t" { s = s.dropFirst() }
        return s
    }
}
