/// Why a line is not valid JSON, with the byte offset (0-based, within the line) where it went wrong.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var description: String { "invalid JSON at byte \(offset + 1): \(message)" }
}

/// A byte-level JSON reader (RFC 8259) for one NDJSON line.
///
/// It is several times faster than `JSONSerialization` on Segment messages because it works on
/// UTF-8 bytes, builds ASCII strings without validation passes, and keeps integers exact.
/// Invalid UTF-8 is an error (nothing is silently replaced); a lone `\u` surrogate escape
/// becomes U+FFFD, as JSON parsers in browsers do. Nesting deeper than `maxDepth` is refused
/// so hostile input cannot overflow the stack.
public struct JSONParser {
    public static let defaultMaxDepth = 256

    let bytes: UnsafeBufferPointer<UInt8>
    var pos: Int = 0
    let maxDepth: Int
    var scratch: [UInt8] = []
    /// Lone surrogate escapes replaced by U+FFFD so far.
    var replaced = 0

    private init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    /// Parses exactly one JSON value, allowing surrounding white space.
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        var replaced = 0
        return try parse(bytes, maxDepth: maxDepth, replacedSurrogates: &replaced)
    }

    /// The same, counting the lone surrogate escapes it replaced by U+FFFD (the caller records
    /// the original: the replacement is not reversible).
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int = defaultMaxDepth,
                             replacedSurrogates: inout Int) throws(JSONParseError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.pos != bytes.count {
            throw parser.error("unexpected \(parser.describeByte()) after the end of the value")
        }
        replacedSurrogates = parser.replaced
        return value
    }

    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        var copy = text
        let result: Result<JSONValue, JSONParseError> = copy.withUTF8 { buffer in
            do throws(JSONParseError) {
                return .success(try parse(buffer, maxDepth: maxDepth))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    func error(_ message: String) -> JSONParseError {
        JSONParseError(message: message, offset: pos)
    }

    func describeByte() -> String {
        guard pos < bytes.count else { return "end of line" }
        let b = bytes[pos]
        if b >= 0x21 && b < 0x7f { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x" + String(b, radix: 16)
    }

    mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0a, 0x0d: pos += 1
            default: return
            }
        }
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard pos < bytes.count else { throw error("unexpected end of line") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default:
            if bytes[pos] == UInt8(ascii: "N") || bytes[pos] == UInt8(ascii: "I") {
                throw error("NaN and Infinity are not JSON numbers")
            }
            throw error("unexpected \(describeByte())")
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard pos + count <= bytes.count else { throw error("unexpected end of line") }
        let start = literal.utf8Start
        for i in 0..<count where bytes[pos + i] != start[i] {
            throw error("unexpected \(describeByte())")
        }
        pos += count
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > maxDepth { throw error("nested deeper than \(maxDepth) levels") }
        pos += 1
        var members: [(key: String, value: JSONValue)] = []
        // Segment messages have 10-20 top-level keys and a handful in nested objects: start
        // big enough that the array rarely has to grow.
        members.reserveCapacity(depth == 1 ? 24 : 8)
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "}") {
            pos += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else {
                throw error("expected a member name in double quotes, found \(describeByte())")
            }
            let key = try parseString()
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else {
                throw error("expected ':' after member name, found \(describeByte())")
            }
            pos += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            members.append((key, value))
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of line inside an object") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
            throw error("expected ',' or '}' in an object, found \(describeByte())")
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > maxDepth { throw error("nested deeper than \(maxDepth) levels") }
        pos += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "]") {
            pos += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth))
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of line inside an array") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
            throw error("expected ',' or ']' in an array, found \(describeByte())")
        }
    }

    mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = pos
        var negative = false
        if bytes[pos] == UInt8(ascii: "-") {
            negative = true
            pos += 1
        }
        guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("a number needs digits") }
        if bytes[pos] == UInt8(ascii: "0"), pos + 1 < bytes.count, isDigit(bytes[pos + 1]) {
            throw error("a number may not have leading zeros")
        }
        var magnitude: UInt64 = 0
        var overflow = false
        while pos < bytes.count, isDigit(bytes[pos]) {
            let d = UInt64(bytes[pos] - UInt8(ascii: "0"))
            let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(d)
            if o1 || o2 { overflow = true }
            magnitude = m2
            pos += 1
        }
        var integral = true
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            integral = false
            pos += 1
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("a fraction needs digits") }
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            integral = false
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("an exponent needs digits") }
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if integral && !overflow {
            if !negative && magnitude <= UInt64(Int64.max) { return .int(Int64(magnitude)) }
            if negative && magnitude <= UInt64(Int64.max) + 1 {
                return .int(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
            }
        }
        let text = String(unsafeUninitializedCapacity: pos - start) { out in
            _ = out.initialize(fromContentsOf: UnsafeBufferPointer(rebasing: bytes[start..<pos]))
            return pos - start
        }
        // Up to 15 significant digits always survive a double; only longer numbers need the
        // round-trip check.
        // A double that came out 0 or subnormal from non-zero digits lost them (`1e-400`).
        let significant = significantDigits(start..<pos)
        if !overflow, significant <= 15, let d = Double(text), d.isFinite, d.isNormal || (d == 0 && significant == 0) {
            return .double(d)
        }
        return NumberText.classify(text)
    }

    /// Digits of a number's text from the first non-zero one, not counting the exponent.
    func significantDigits(_ range: Range<Int>) -> Int {
        var count = 0
        var leading = true
        for i in range {
            let b = bytes[i]
            if b == UInt8(ascii: "e") || b == UInt8(ascii: "E") { break }
            guard isDigit(b) else { continue }
            if leading && b == UInt8(ascii: "0") { continue }
            leading = false
            count += 1
        }
        return count
    }

    @inline(__always) func isDigit(_ b: UInt8) -> Bool {
        b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")
    }
}

/// Decides whether a JSON number's text survives as a `Double`.
enum NumberText {
    /// `.double` when the double prints back with the same significant digits and exponent,
    /// otherwise `.bigNumber` keeping the text.
    static func classify(_ text: String) -> JSONValue {
        guard let d = Double(text), d.isFinite else { return .bigNumber(text) }
        if let a = significand(text), let b = significand(d.description), a == b {
            return .double(d)
        }
        return .bigNumber(text)
    }

    /// Significant decimal digits and the decimal exponent of a number's text, normalised so
    /// that `1.50e2`, `150` and `150.0` compare equal.
    static func significand(_ text: String) -> (digits: String, exponent: Int, negative: Bool)? {
        var digits: [UInt8] = []
        var exponent = 0
        var seenPoint = false
        var negative = false
        var utf8 = text.utf8[...]
        if utf8.first == UInt8(ascii: "-") { negative = true; utf8 = utf8.dropFirst() }
        var expPart = 0
        var i = utf8.startIndex
        while i < utf8.endIndex {
            let b = utf8[i]
            if b == UInt8(ascii: ".") {
                seenPoint = true
            } else if b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") {
                if digits.isEmpty && b == UInt8(ascii: "0") {
                    if seenPoint { exponent -= 1 }
                } else {
                    digits.append(b)
                    if !seenPoint { exponent += 1 }
                }
            } else if b == UInt8(ascii: "e") || b == UInt8(ascii: "E") {
                guard let e = Int(String(decoding: utf8[utf8.index(after: i)...], as: UTF8.self)) else { return nil }
                expPart = e
                break
            } else {
                return nil
            }
            i = utf8.index(after: i)
        }
        while digits.last == UInt8(ascii: "0") { digits.removeLast() }
        if digits.isEmpty { return ("0", 0, false) }
        return (String(decoding: digits, as: UTF8.self), exponent + expPart, negative)
    }
}
