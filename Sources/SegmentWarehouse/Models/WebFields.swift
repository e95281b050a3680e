import SegmentCore

/// What the models read out of a URL and a user agent: host, path and query of a URL, the
/// values of its query parameters, and a device class.
struct ParsedURL: Equatable {
    var host: String?
    var path: String?
    var query: String?

    /// Parses `scheme://user@host:port/path?query#fragment` leniently: a URL without a scheme
    /// (`/pricing?a=1`) has no host; the host is lowercased and loses its port.
    init(_ url: String) {
        var rest = Substring(url)
        // Searched byte by byte (the delimiters are ASCII): a search by Character walks grapheme
        // clusters, and was most of the models' URL work.
        if let hash = rest.utf8.firstIndex(of: UInt8(ascii: "#")) { rest = rest[..<hash] }
        if let question = rest.utf8.firstIndex(of: UInt8(ascii: "?")) {
            query = String(rest[rest.utf8.index(after: question)...])
            rest = rest[..<question]
        }
        if let afterScheme = Self.afterScheme(rest) {
            var authority = rest[afterScheme...]
            if let slash = authority.utf8.firstIndex(of: UInt8(ascii: "/")) {
                path = String(authority[slash...])
                authority = authority[..<slash]
            } else {
                path = "/"
            }
            if let at = authority.utf8.lastIndex(of: UInt8(ascii: "@")) { authority = authority[authority.utf8.index(after: at)...] }
            if authority.utf8.first == UInt8(ascii: "["), let close = authority.utf8.firstIndex(of: UInt8(ascii: "]")) {
                authority = authority[...close]
            } else if let colon = authority.utf8.firstIndex(of: UInt8(ascii: ":")) {
                authority = authority[..<colon]
            }
            host = authority.isEmpty ? nil : authority.lowercased()
        } else if rest.hasPrefix("//") {
            let authority = rest.dropFirst(2).prefix { $0 != "/" && $0 != ":" }
            host = authority.isEmpty ? nil : authority.lowercased()
            let afterHost = rest.dropFirst(2).drop { $0 != "/" }
            path = afterHost.isEmpty ? "/" : String(afterHost)
        } else {
            path = rest.isEmpty ? nil : String(rest)
        }
    }

    /// Where the authority starts when `text` begins with `scheme://`.
    private static func afterScheme(_ text: Substring) -> Substring.Index? {
        let utf8 = text.utf8
        var i = utf8.startIndex
        while i != utf8.endIndex {
            let c = utf8[i]
            if c == UInt8(ascii: ":") {
                let rest = utf8[utf8.index(after: i)...]
                guard rest.starts(with: "//".utf8), i != utf8.startIndex else { return nil }
                return utf8.index(i, offsetBy: 3)
            }
            // A scheme is letters, digits, + - . only.
            guard (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2B || c == 0x2D || c == 0x2E else { return nil }
            i = utf8.index(after: i)
        }
        return nil
    }

    /// The first value of query parameter `name`, percent-decoded (`+` is a space); nil when
    /// absent or empty.
    func parameter(_ name: String) -> String? {
        parameters([name])[0]
    }

    /// `parameter` of each of `names`, in one pass over the query: a key is decoded only
    /// when it holds `%` or `+`, a value only when its key is wanted.
    func parameters(_ names: [String]) -> [String?] {
        var values = [String?](repeating: nil, count: names.count)
        guard let query else { return values }
        var seen = [Bool](repeating: false, count: names.count)
        var left = names.count
        for pair in query.utf8.split(separator: UInt8(ascii: "&")) {
            let equals = pair.firstIndex(of: UInt8(ascii: "="))
            let rawKey = equals.map { pair[..<$0] } ?? pair
            let plain = !rawKey.contains(UInt8(ascii: "%")) && !rawKey.contains(UInt8(ascii: "+"))
            let decoded = plain ? nil : percentDecoded(Substring(rawKey))
            guard let i = names.indices.first(where: { n in
                !seen[n] && (decoded.map { $0 == names[n] } ?? rawKey.elementsEqual(names[n].utf8))
            }) else { continue }
            seen[i] = true
            let value = equals.map { percentDecoded(Substring(pair[pair.index(after: $0)...])) } ?? ""
            values[i] = value.isEmpty ? nil : value
            left -= 1
            if left == 0 { break }
        }
        return values
    }
}

/// `%41` → `A`, `+` → space; a malformed escape is kept as written, bytes that are not UTF-8
/// become U+FFFD.
func percentDecoded(_ text: Substring) -> String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(text.utf8.count)
    var utf8 = Array(text.utf8)[...]
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
    while let c = utf8.popFirst() {
        if c == UInt8(ascii: "+") {
            bytes.append(UInt8(ascii: " "))
        } else if c == UInt8(ascii: "%"), utf8.count >= 2, let hi = hex(utf8[utf8.startIndex]), let lo = hex(utf8[utf8.startIndex + 1]) {
            bytes.append(hi << 4 | lo)
            utf8 = utf8.dropFirst(2)
        } else {
            bytes.append(c)
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

enum DeviceClass {
    /// (The models compute it in SQL with `instr`, the same rule.) The first of iPad, iPhone, Android, Windows, Mac, Linux that the user agent contains
    /// (in that order: an iPhone's agent says "like Mac OS X", an Android's says "Linux"),
    /// else `other`.
    static func of(userAgent: String?) -> String {
        guard let userAgent else { return "other" }
        let bytes = Array(userAgent.utf8)
        for name in names where contains(bytes, name.utf8) { return name.text }
        return "other"
    }

    static let names: [(text: String, utf8: [UInt8])] = ["iPad", "iPhone", "Android", "Windows", "Mac", "Linux"].map { ($0, Array($0.utf8)) }

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == needle[0] && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}
